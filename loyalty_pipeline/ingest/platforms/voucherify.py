"""Voucherify: JSON Lines of loyalty members, one per line, in either API's shape.

* Loyalty v1 (legacy): an item of `GET /v1/loyalties/{campaignId}/members` (a loyalty-card voucher:
  `loyalty_card.{points, balance, next_expiration_date, next_expiration_points}`, `active`,
  `created_at`, `holder_id`). The item names its customer by `holder_id` only and carries no tier, so
  the extraction must join two responses to it: the customer (`GET /v1/customers/{holder_id}`, under
  `customer`) and the member's tiers (the `GET /v1/loyalties/members/{memberId}/tiers` list, under
  `tiers`: `data[0]` is the tier, `data: []` none).
* Loyalty v2: a membership (`GET /v2/loyalties/programs/{programId}/memberships/by-member-id/{memberId}`:
  `member.{customer_id, status, created_at}`, `cards[].card.{balance.points, lifetime_bucket.points.total,
  next_expiration.{date, points}}`, `cards[].tier_progress`, null without a tier). The member names its
  customer by Voucherify's id (`member.customer_id`): the extraction joins the customer
  (`GET /v1/customers/{customer_id}`) under `customer`. The first card is read.

A join missing from every record fails the day, naming it; missing from one record, that row is
quarantined (`missing_field`, or `missing_id` for the customer).

* `customer.source_id` (or a `holder.source_id`) is the shop's customer id; it may be an email. The
  email may be null.
* Balance = v1 `loyalty_card.balance` / v2 `balance.points`. Lifetime = v1 `loyalty_card.points` / v2
  `lifetime_bucket.points.total`: every point ever added to the card (earned and added), expired,
  spent and subtracted ones included, so spending and expiry do not lower it.
* Member = v2 `member.status` ACTIVE (INACTIVE / DELETED are not; a bare v2 member object's `status`
  too), else the v1 voucher's `active` flag.
* Tier = v1 `tiers.data[0].name` (tier_since its `expiration.start_date`) / v2
  `tier_progress.current.name` (no start date is read); matched by name through the program's aliases.
* member_since = the v1 card's / v2 member's `created_at`.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..adapter import PullSpec
from ..files import ExportFile
from ..jsonl import first_text, flag_text, id_text, records_sql, text
from ..readers import Relation
from . import canonical

NAME = "voucherify"
EMAIL_IS_KEY = False

# Loyalty v1: the campaign's members, the customers listing joined by holder_id, each member's tiers
# (ingest/pull/voucherify.py), with the X-App-Id / X-App-Token headers.
PULL = PullSpec(
    reference="https://docs.voucherify.io/reference/list-members",
    base_url="https://api.voucherify.io",
    versions={"v1": None,
              "v2": ("Loyalty v2 is a BETA API (docs.voucherify.io/api-reference/programs/list-members): its "
                     "member listing carries no cards, a member's cards take one call each, and no published "
                     "v2 member carries the tier progress the adapter reads; pull a v1 campaign, or drop "
                     "v2 memberships as a file")},
    credentials={"app_id_env": "VOUCHERIFY_APP_ID", "app_token_env": "VOUCHERIFY_APP_TOKEN"},
    required=("campaign_id",),
    max_page_size=100,  # `limit`: 1..100
    # Business plans allow 100 requests a minute (docs.voucherify.io/docs/limits); Organization plans 2,000.
    requests_per_second=1.5,
)

V2_CARD = "$.cards[0]"
PATHS = {
    "customer.source_id": "$.customer.source_id",
    "holder.source_id": "$.holder.source_id",
    "customer.email": "$.customer.email",
    "holder.email": "$.holder.email",
    "member.status": "$.member.status",
    "status": "$.status",
    "active": "$.active",
    "loyalty_card.points": "$.loyalty_card.points",
    "loyalty_card.balance": "$.loyalty_card.balance",
    "loyalty_card.next_expiration_date": "$.loyalty_card.next_expiration_date",
    "loyalty_card.next_expiration_points": "$.loyalty_card.next_expiration_points",
    "card.balance": f"{V2_CARD}.card.balance.points",
    "card.lifetime": f"{V2_CARD}.card.lifetime_bucket.points.total",
    "card.next_expiration.date": f"{V2_CARD}.card.next_expiration.date",
    "card.next_expiration.points": f"{V2_CARD}.card.next_expiration.points",
    "tier.name": "$.tiers.data[0].name",
    "tier.start_date": "$.tiers.data[0].expiration.start_date",
    "tier_progress.name": f"{V2_CARD}.tier_progress.current.name",
    "member.created_at": "$.member.created_at",
    "created_at": "$.created_at",
}
REQUIRED = {
    "customer_id": ("customer.source_id", "holder.source_id"),
    "enrolled": ("member.status", "status", "active"),
    "points_balance": ("loyalty_card.balance", "cards[0].card.balance.points"),
    "lifetime_points": ("loyalty_card.points", "cards[0].card.lifetime_bucket.points.total"),
    "tier": ("tiers.data", "cards[0].tier_progress"),
}
HINTS = {
    "customer_id": "join each member's customer (GET /v1/customers/{holder_id} for a v1 member, "
                   "/{member.customer_id} for a v2 membership) as `customer`",
    "tier": "join each v1 member's GET /v1/loyalties/members/{memberId}/tiers list as `tiers` "
            "(v2 memberships carry cards[].tier_progress)",
}

_status = f"upper(trim({first_text(text('member.status'), text('status'))}))"
SELECT = {
    "customer_id": first_text(id_text("customer.source_id"), id_text("holder.source_id")),
    "email": first_text(text("customer.email"), text("holder.email")),
    "enrolled": (f"(CASE WHEN {_status} = 'ACTIVE' THEN 'true' WHEN {_status} IN ('INACTIVE', 'DELETED') "
                 f"THEN 'false' ELSE coalesce({text('member.status')}, {text('status')}, {flag_text('active')}) END)"),
    "points_balance": first_text(text("loyalty_card.balance"), text("card.balance")),
    "lifetime_points": first_text(text("loyalty_card.points"), text("card.lifetime")),
    "tier": first_text(text("tier.name"), text("tier_progress.name")),
    "tier_since": text("tier.start_date"),
    "member_since": first_text(text("member.created_at"), text("created_at")),
    "next_expiry_date": first_text(text("loyalty_card.next_expiration_date"), text("card.next_expiration.date")),
    "next_expiry_amount": first_text(text("loyalty_card.next_expiration_points"),
                                     text("card.next_expiration.points")),
}


def accounts_sql(file: ExportFile, encoding: str, column_map: Mapping[str, str] | None = None) -> Relation:
    return records_sql(file, encoding, paths=PATHS, required=REQUIRED, select=SELECT, hints=HINTS)


activities_sql = canonical.activities_sql  # a day's point movements use the canonical columns
