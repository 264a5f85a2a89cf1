"""Yotpo Loyalty & Referrals (formerly Swell).

Two shapes of the same customers:

* `accounts.jsonl`: one customer object per line, as `GET /api/v2/customers` returns it or as the
  webhooks embed it. The two spell several fields differently (`opt_in` / `is_opt_in`,
  `opted_in_at` / `loyalty_opt_in_date`, `next_points_expire_on` / `loyalty_next_points_expire_on`…):
  both are read, the API name first. Yotpo leaves `vip_tier_name` out of a customer with no tier (its
  points-expiration-reminder example): an absent tier is no tier. Programs that expire points on
  inactivity give only `points_expire_at` (the date the customer's points expire): without a
  `next_points_expire_on`, it is the next expiry, and the whole balance is at risk unless an amount is
  given.
* `accounts.csv`: a dashboard customer export or report. Its header set is undocumented, so headers
  are matched loosely against the names below and `source.column_map` (header → canonical column)
  names the others. The customer report merchants download (`email, points_earned, points_balance,
  vip_tier, opt_in_date, loyalty_eligible, created_at`) has no shop customer id: the member is then
  keyed by the address itself (`customer_id` = the trimmed, lower-cased email), and ShopiMind finds
  the contact by email (outbound/shopimind/models.py `contact_of`).

Email is Yotpo's key: a second row with the same email is a duplicate member even under another id.
`third_party_id` (its typo twin `thirty_party_id` when absent) is the shop's customer id, kept as text.
Opt-in flags follow the 1/null convention: null (or an empty CSV cell) is "not opted in".
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace

from ..adapter import PullSpec
from ..columns import ACCOUNT_COLUMNS, header, relation_sql, resolve_columns
from ..encoding import utf8_path
from ..files import ExportFile
from ..jsonl import first_text, flag_text, id_text, is_integer, records_sql, text
from ..readers import Relation
from . import canonical

NAME = "yotpo"
EMAIL_IS_KEY = True  # a second row with the same email is a duplicate member

PULL = PullSpec(refused=(
    "Yotpo Loyalty & Referrals documents no listing of its customers to pull from: its API "
    "(loyaltyapi.yotpo.com/reference/fetch-customer-details, GET /api/v2/customers with x-guid and x-api-key) "
    "returns one customer looked up by email, customer id or phone, and Yotpo's other customer listings "
    "(develop.yotpo.com/reference/introduction-to-customers) are SMS & Email contacts or a deprecated "
    "reviews summary, not the loyalty customer object; drop the dashboard's customer export in the exports "
    "folder instead (docs/pull.md)"))

PATHS = {
    name: f"$.{name}"
    for name in (
        "third_party_id", "thirty_party_id", "email", "opt_in", "is_opt_in", "points_balance", "points_earned",
        "vip_tier_name", "vip_tier_entry_date", "opted_in_at", "loyalty_opt_in_date", "next_points_expire_on",
        "loyalty_next_points_expire_on", "next_points_expire_amount", "loyalty_next_points_expire_amount",
        "points_expire_at",
    )
}
REQUIRED = {"customer_id": ("third_party_id", "thirty_party_id"), "email": "email",
            "enrolled": ("opt_in", "is_opt_in"), "points_balance": "points_balance", "lifetime_points": "points_earned"}

_batch_date = first_text(text("next_points_expire_on"), text("loyalty_next_points_expire_on"))
_amount = first_text(text("next_points_expire_amount"), text("loyalty_next_points_expire_amount"))
_balance = text("points_balance")
# Expiry on inactivity puts the whole (positive) balance at risk on points_expire_at.
_whole_balance = (f"(CASE WHEN {is_integer(_balance)} THEN CAST(greatest(CAST(trim({_balance}) AS BIGINT), 0) "
                  f"AS VARCHAR) ELSE {_balance} END)")
SELECT = {
    "customer_id": first_text(id_text("third_party_id"), id_text("thirty_party_id")),
    "email": text("email"),
    "enrolled": first_text(flag_text("opt_in"), flag_text("is_opt_in")),
    "points_balance": _balance,
    "lifetime_points": text("points_earned"),
    "tier": text("vip_tier_name"),
    "tier_since": text("vip_tier_entry_date"),
    "member_since": first_text(text("opted_in_at"), text("loyalty_opt_in_date")),
    "next_expiry_date": first_text(_batch_date, text("points_expire_at")),
    "next_expiry_amount": (f"(CASE WHEN {_batch_date} IS NULL AND {text('points_expire_at')} IS NOT NULL "
                           f"THEN coalesce({_amount}, {_whole_balance}) ELSE {_amount} END)"),
}

# Dashboard CSV headers, normalised (lower case, runs of other characters → "_"), per canonical column.
CSV_HEADERS = {
    "customer_id": ("third_party_id", "thirty_party_id", "customer_id", "shop_customer_id", "external_id"),
    "email": ("email", "customer_email", "email_address"),
    "enrolled": ("opt_in", "is_opt_in", "opted_in", "loyalty_opt_in", "opt_in_status", "loyalty_eligible"),
    "points_balance": ("points_balance", "current_points_balance", "point_balance"),
    "lifetime_points": ("points_earned", "total_points_earned", "lifetime_points"),
    "tier": ("vip_tier_name", "vip_tier", "tier", "tier_name"),
    "tier_since": ("vip_tier_entry_date", "tier_entry_date", "vip_tier_start_date"),
    "member_since": ("opted_in_at", "loyalty_opt_in_date", "opt_in_date"),
    "next_expiry_date": ("next_points_expire_on", "loyalty_next_points_expire_on", "points_expiration_date"),
    "next_expiry_amount": ("next_points_expire_amount", "loyalty_next_points_expire_amount", "points_to_expire"),
}
CSV_REQUIRED = ["email", "enrolled", "points_balance", "lifetime_points", "tier"]  # customer_id: else the email


def accounts_sql(file: ExportFile, encoding: str, column_map: Mapping[str, str] | None = None) -> Relation:
    if file.format == "csv":
        return _dashboard_csv_sql(file, encoding, column_map or {})
    return records_sql(file, encoding, paths=PATHS, required=REQUIRED, select=SELECT)


activities_sql = canonical.activities_sql  # a day's point movements use the canonical columns


def normalise_header(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


_KNOWN_HEADERS = {alias: column for column, aliases in CSV_HEADERS.items() for alias in aliases}


def known_header(name: str) -> str | None:
    """The canonical column a dashboard header is known as (loosely: see normalise_header)."""
    return _KNOWN_HEADERS.get(normalise_header(name))


def _missing_columns(file: ExportFile, missing: list[str], present: Sequence[str]) -> str:
    return (f"{file.path}: no column for {', '.join(missing)} (Yotpo names such as "
            f"{', '.join(repr(CSV_HEADERS[c][0]) for c in missing)}); found {', '.join(present)}. "
            "Map the shop's headers in program.yaml source.column_map, e.g. {'Points Earned': lifetime_points}")


def _dashboard_csv_sql(file: ExportFile, encoding: str, column_map: Mapping[str, str]) -> Relation:
    relation = relation_sql(file, ACCOUNT_COLUMNS, CSV_REQUIRED, encoding, column_map,
                                      known=known_header, missing=_missing_columns)
    present = header(file, encoding, utf8_path(file, encoding)) or []
    has_id = "customer_id" in resolve_columns(file, present, ACCOUNT_COLUMNS, column_map, known_header)
    # Without an id column the address is the member's id (a cell without "@" identifies no one).
    customer_id = "customer_id" if has_id else "CASE WHEN contains(email, '@') THEN lower(trim(email)) END"
    return replace(relation, records=(
        "SELECT * REPLACE (CASE WHEN trim(coalesce(enrolled, '')) = '' THEN 'false' ELSE enrolled END "
        f"AS enrolled, {customer_id} AS customer_id) FROM ({relation.records})"))
