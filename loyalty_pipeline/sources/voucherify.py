"""Voucherify: JSON Lines of loyalty members (loyalty-card vouchers of one campaign).

Each line is a member as `GET /v1/loyalties/{campaignId}/members` returns it, with its customer
(`customer`, or `holder`, holding `source_id` and `email`) and its tier as the
`GET /v1/loyalties/members/{memberId}/tiers` list response under `tiers` (`data[0]`; `data: []` = no
tier). Tiers are `{from, to}` point ranges; the tier is matched by name through the program's aliases.

* `customer.source_id` is the shop's customer id; it may be an email. The email may be null.
* Balance = `loyalty_card.balance`; lifetime = `loyalty_card.points` (the points ever added: the
  SDKs disagree on whether expired points are subtracted, the API reference says they are not).
* Member = v2 `status` ACTIVE (INACTIVE / DELETED are not), else the v1 voucher's `active` flag.
* tier_since = the tier's `expiration.start_date`; member_since = the card's `created_at`;
  next expiry = `loyalty_card.next_expiration_date` / `next_expiration_points`.
"""

from __future__ import annotations

from collections.abc import Mapping

from . import canonical
from .files import ExportFile
from .jsonl import first_text, flag_text, id_text, records_sql, text

PATHS = {
    "customer.source_id": "$.customer.source_id",
    "holder.source_id": "$.holder.source_id",
    "customer.email": "$.customer.email",
    "holder.email": "$.holder.email",
    "status": "$.status",
    "active": "$.active",
    "loyalty_card.points": "$.loyalty_card.points",
    "loyalty_card.balance": "$.loyalty_card.balance",
    "loyalty_card.next_expiration_date": "$.loyalty_card.next_expiration_date",
    "loyalty_card.next_expiration_points": "$.loyalty_card.next_expiration_points",
    "tier.name": "$.tiers.data[0].name",
    "tier.start_date": "$.tiers.data[0].expiration.start_date",
    "created_at": "$.created_at",
}
REQUIRED = [("customer.source_id", "holder.source_id"), ("status", "active"), "loyalty_card.points",
            "loyalty_card.balance", "tiers.data"]

_status = f"upper(trim({text('status')}))"
SELECT = {
    "customer_id": first_text(id_text("customer.source_id"), id_text("holder.source_id")),
    "email": first_text(text("customer.email"), text("holder.email")),
    "enrolled": (f"(CASE WHEN {_status} = 'ACTIVE' THEN 'true' WHEN {_status} IN ('INACTIVE', 'DELETED') "
                 f"THEN 'false' ELSE coalesce({text('status')}, {flag_text('active')}) END)"),
    "points_balance": text("loyalty_card.balance"),
    "lifetime_points": text("loyalty_card.points"),
    "tier": text("tier.name"),
    "tier_since": text("tier.start_date"),
    "member_since": text("created_at"),
    "next_expiry_date": text("loyalty_card.next_expiration_date"),
    "next_expiry_amount": text("loyalty_card.next_expiration_points"),
}


def accounts_sql(file: ExportFile, encoding: str, column_map: Mapping[str, str] | None = None) -> str:
    return records_sql(file, encoding, paths=PATHS, required=REQUIRED, select=SELECT)


activities_sql = canonical.activities_sql  # a day's point movements use the canonical columns
