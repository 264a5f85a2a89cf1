"""LoyaltyLion: JSON Lines of `GET /v2/customers` objects (the shape its webhooks embed too).

* `merchant_id` is the shop's customer id (a string; `id` is LoyaltyLion's own and is not used).
* The balance is `points_approved`; lifetime = approved + pending + spent (expired points are not
  exposed, so they are not in it). A non-integer part is quarantined as `lifetime_points` with the
  part named in the value, e.g. `points_pending=12a`.
* Member = `enrolled` and not `blocked` (null = false; `blocked` may be absent).
* The tier comes from `loyalty_tier_membership` (null = no tier): `loyalty_tier.name` through the
  program's aliases, `started_at` as tier_since.
* The customer object carries no expiry. When the export merges the
  `customer.approaching_points_expiration` webhook into it (`expire_points_at`, `points_to_expire`),
  those become next_expiry_date / next_expiry_amount; otherwise they are null.
* Tier bounds come back as decimal strings, divided by 100 for points-based tiers: `tiers_sql` gives
  them in points, for comparing with the program's thresholds.
"""

from __future__ import annotations

from collections.abc import Mapping

from . import canonical
from .encoding import utf8_path
from .files import ExportFile
from .jsonl import flag_text, id_text, integer_sum, lines_reader, parse_bool, records_sql, text

PATHS = {
    "merchant_id": "$.merchant_id",
    "email": "$.email",
    "enrolled": "$.enrolled",
    "blocked": "$.blocked",
    "points_approved": "$.points_approved",
    "points_pending": "$.points_pending",
    "points_spent": "$.points_spent",
    "tier_name": "$.loyalty_tier_membership.loyalty_tier.name",
    "started_at": "$.loyalty_tier_membership.started_at",
    "enrolled_at": "$.enrolled_at",
    "expire_points_at": "$.expire_points_at",
    "points_to_expire": "$.points_to_expire",
}
REQUIRED = ["merchant_id", "email", "enrolled", "points_approved", "points_pending", "points_spent",
            "loyalty_tier_membership"]

_enrolled, _blocked = flag_text("enrolled"), f"coalesce({flag_text('blocked')}, 'false')"
SELECT = {
    "customer_id": id_text("merchant_id"),
    "email": text("email"),
    # An invalid flag reaches validation as written (the blocked one named), to be quarantined.
    "enrolled": (f"(CASE WHEN {parse_bool(_enrolled)} IS NULL THEN {_enrolled} "
                 f"WHEN {parse_bool(_blocked)} IS NULL THEN 'blocked=' || {_blocked} "
                 f"ELSE CAST({parse_bool(_enrolled)} AND NOT {parse_bool(_blocked)} AS VARCHAR) END)"),
    "points_balance": text("points_approved"),
    "lifetime_points": integer_sum({f: text(f) for f in ("points_approved", "points_pending", "points_spent")}),
    "tier": text("tier_name"),
    "tier_since": text("started_at"),
    "member_since": text("enrolled_at"),
    "next_expiry_date": text("expire_points_at"),
    "next_expiry_amount": text("points_to_expire"),
}


def accounts_sql(file: ExportFile, encoding: str, column_map: Mapping[str, str] | None = None) -> str:
    return records_sql(file, encoding, paths=PATHS, required=REQUIRED, select=SELECT)


activities_sql = canonical.activities_sql  # a day's point movements use the canonical columns


def tiers_sql(file: ExportFile, encoding: str = "utf-8") -> str:
    """SQL: the tiers the export's memberships name, with their bounds back in points (×100).

    The program's tiers are points-based (tier_basis), so the bounds are read as points tiers' (the
    API divides those by 100). `number` or `position` is the tier's sequence (payloads use either);
    an open top tier has a NULL upper bound.
    """
    tier = "json_extract(json(line), '$.loyalty_tier_membership.loyalty_tier')"
    return f"""
        SELECT DISTINCT t ->> '$.name' AS name,
               coalesce(t ->> '$.number', t ->> '$.position')::INTEGER AS number,
               CAST(t ->> '$.lower_bound' AS DECIMAL(18, 2)) * 100 AS lower_bound_points,
               CAST(t ->> '$.upper_bound' AS DECIMAL(18, 2)) * 100 AS upper_bound_points
        FROM (SELECT {tier} AS t FROM {lines_reader(utf8_path(file, encoding))} WHERE trim(line) <> '')
        WHERE json_type(t) = 'OBJECT'
        ORDER BY number, name"""
