"""LoyaltyLion: JSON Lines of `GET /v2/customers` objects (the shape its webhooks embed too).

* `merchant_id` is the shop's customer id (a string; `id` is LoyaltyLion's own and is not used).
* The balance is `points_approved`. Lifetime = approved + spent: points count as earned once they are
  approved, as LoyaltyLion's tiers count them. Pending points are awaiting the approval period (and are
  declined when the order is refunded), so they are neither earned nor lifetime yet: a pending purchase
  sends no `loyalty.points_earned` and a declined one lowers nothing. Spent points were approved before
  being spent. LoyaltyLion's own "lifetime points" also count pending and expired points; expired
  points are not on the customer object, so a program that expires points sees lifetime fall by the
  expired amount (docs/platforms.md). A non-integer part is quarantined as
  `lifetime_points` with the part named in the value, e.g. `points_spent=12a`.
* Member = `enrolled` and not `blocked` (null = false; `blocked` may be absent).
* The tier comes from `loyalty_tier_membership` (null or absent = no tier): `loyalty_tier.name`
  through the program's aliases, `started_at` as tier_since.
* The customer object carries no expiry. When the export merges the
  `customer.approaching_points_expiration` webhook into it (`expire_points_at`, `points_to_expire`),
  those become next_expiry_date / next_expiry_amount; otherwise they are null.
* Tier bounds come back as decimal strings, divided by 100 for points-based tiers: `tiers_sql` gives
  them in points, for comparing with the program's thresholds.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..adapter import PullSpec
from ..encoding import text_shape, utf8_path
from ..files import ExportFile
from ..jsonl import flag_text, id_text, integer_sum, lines_reader, parse_bool, records_sql, text
from ..readers import Relation
from . import canonical

NAME = "loyaltylion"
EMAIL_IS_KEY = False

# GET /v2/customers, cursor-paginated, with an API key as Bearer token (ingest/pull/loyaltylion.py).
PULL = PullSpec(
    reference="https://developers.loyaltylion.com/api-reference/v2/resources/customers/list-customers",
    base_url="https://api.loyaltylion.com",
    versions={"v2": None},
    credentials={"api_key_env": "LOYALTYLION_API_KEY"},
    max_page_size=500,  # `limit`: 1..500
    requests_per_second=10.0,  # the API allows 20 per second (api-reference/introduction): half, for the shop's others
)

PATHS = {
    "merchant_id": "$.merchant_id",
    "email": "$.email",
    "enrolled": "$.enrolled",
    "blocked": "$.blocked",
    "points_approved": "$.points_approved",
    "points_spent": "$.points_spent",
    "tier_name": "$.loyalty_tier_membership.loyalty_tier.name",
    "started_at": "$.loyalty_tier_membership.started_at",
    "enrolled_at": "$.enrolled_at",
    "expire_points_at": "$.expire_points_at",
    "points_to_expire": "$.points_to_expire",
}
REQUIRED = {"customer_id": "merchant_id", "email": "email", "enrolled": "enrolled", "points_balance": "points_approved",
            "lifetime_points": "points_spent"}

_enrolled, _blocked = flag_text("enrolled"), f"coalesce({flag_text('blocked')}, 'false')"
SELECT = {
    "customer_id": id_text("merchant_id"),
    "email": text("email"),
    # An invalid flag reaches validation as written (the blocked one named), to be quarantined.
    "enrolled": (f"(CASE WHEN {parse_bool(_enrolled)} IS NULL THEN {_enrolled} "
                 f"WHEN {parse_bool(_blocked)} IS NULL THEN 'blocked=' || {_blocked} "
                 f"ELSE CAST({parse_bool(_enrolled)} AND NOT {parse_bool(_blocked)} AS VARCHAR) END)"),
    "points_balance": text("points_approved"),
    "lifetime_points": integer_sum({f: text(f) for f in ("points_approved", "points_spent")}),
    "tier": text("tier_name"),
    "tier_since": text("started_at"),
    "member_since": text("enrolled_at"),
    "next_expiry_date": text("expire_points_at"),
    "next_expiry_amount": text("points_to_expire"),
}


def accounts_sql(file: ExportFile, encoding: str, column_map: Mapping[str, str] | None = None) -> Relation:
    return records_sql(file, encoding, paths=PATHS, required=REQUIRED, select=SELECT)


activities_sql = canonical.activities_sql  # a day's point movements use the canonical columns


def tiers_sql(file: ExportFile, encoding: str = "utf-8") -> str:
    """SQL: the tiers the export's memberships name, with their bounds back in points (×100).

    The program's tiers are points-based (tier_basis), so the bounds are read as points tiers' (the
    API divides those by 100). `number` is the tier's place in the hierarchy (1 = first), as the API
    reference documents it; real objects also carry `position`, whose base LoyaltyLion's own examples
    disagree on (the API reference: number 2 / position 1; the webhook page: position 2 for the second
    tier), so it is listed as sent and never taken for the number. An open top tier has a NULL upper
    bound.
    """
    tier = "json_extract(json(line), '$.loyalty_tier_membership.loyalty_tier')"
    path = utf8_path(file, encoding)
    return f"""
        SELECT DISTINCT t ->> '$.name' AS name,
               CAST(t ->> '$.number' AS INTEGER) AS number,
               CAST(t ->> '$.position' AS INTEGER) AS position,
               CAST(t ->> '$.lower_bound' AS DECIMAL(18, 2)) * 100 AS lower_bound_points,
               CAST(t ->> '$.upper_bound' AS DECIMAL(18, 2)) * 100 AS upper_bound_points
        FROM (SELECT {tier} AS t FROM {lines_reader(path, text_shape(file, encoding).longest_line)}
              WHERE trim(line) <> '')
        WHERE json_type(t) = 'OBJECT'
        ORDER BY lower_bound_points, name"""
