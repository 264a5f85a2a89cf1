"""Yotpo Loyalty & Referrals (formerly Swell).

Two shapes of the same customers:

* `accounts.jsonl`: one customer object per line, as `GET /api/v2/customers` returns it or as the
  webhooks embed it. The two spell several fields differently (`opt_in` / `is_opt_in`,
  `opted_in_at` / `loyalty_opt_in_date`, `next_points_expire_on` / `loyalty_next_points_expire_on`…):
  both are read, the API name first.
* `accounts.csv`: the dashboard customer export. Its full header set is undocumented, so headers are
  matched loosely against the names below and `source.column_map` (header → canonical column) names
  the others.

Email is Yotpo's key: a second row with the same email is a duplicate member even under another id.
`third_party_id` (its typo twin `thirty_party_id` when absent) is the shop's customer id, kept as text.
Opt-in flags follow the 1/null convention: null (or an empty CSV cell) is "not opted in".
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace

from . import canonical
from .canonical import ACCOUNT_COLUMNS
from .files import ExportFile
from .jsonl import first_text, flag_text, id_text, records_sql, text
from .readers import Relation

EMAIL_IS_KEY = True

PATHS = {
    name: f"$.{name}"
    for name in (
        "third_party_id", "thirty_party_id", "email", "opt_in", "is_opt_in", "points_balance", "points_earned",
        "vip_tier_name", "vip_tier_entry_date", "opted_in_at", "loyalty_opt_in_date", "next_points_expire_on",
        "loyalty_next_points_expire_on", "next_points_expire_amount", "loyalty_next_points_expire_amount",
    )
}
REQUIRED = ["email", ("third_party_id", "thirty_party_id"), ("opt_in", "is_opt_in"), "points_balance",
            "points_earned", "vip_tier_name"]
SELECT = {
    "customer_id": first_text(id_text("third_party_id"), id_text("thirty_party_id")),
    "email": text("email"),
    "enrolled": first_text(flag_text("opt_in"), flag_text("is_opt_in")),
    "points_balance": text("points_balance"),
    "lifetime_points": text("points_earned"),
    "tier": text("vip_tier_name"),
    "tier_since": text("vip_tier_entry_date"),
    "member_since": first_text(text("opted_in_at"), text("loyalty_opt_in_date")),
    "next_expiry_date": first_text(text("next_points_expire_on"), text("loyalty_next_points_expire_on")),
    "next_expiry_amount": first_text(text("next_points_expire_amount"), text("loyalty_next_points_expire_amount")),
}

# Dashboard CSV headers, normalised (lower case, runs of other characters → "_"), per canonical column.
CSV_HEADERS = {
    "customer_id": ("third_party_id", "thirty_party_id", "customer_id", "shop_customer_id", "external_id"),
    "email": ("email", "customer_email", "email_address"),
    "enrolled": ("opt_in", "is_opt_in", "opted_in", "loyalty_opt_in", "opt_in_status"),
    "points_balance": ("points_balance", "current_points_balance", "point_balance"),
    "lifetime_points": ("points_earned", "total_points_earned", "lifetime_points"),
    "tier": ("vip_tier_name", "vip_tier", "tier", "tier_name"),
    "tier_since": ("vip_tier_entry_date", "tier_entry_date", "vip_tier_start_date"),
    "member_since": ("opted_in_at", "loyalty_opt_in_date", "opt_in_date"),
    "next_expiry_date": ("next_points_expire_on", "loyalty_next_points_expire_on", "points_expiration_date"),
    "next_expiry_amount": ("next_points_expire_amount", "loyalty_next_points_expire_amount", "points_to_expire"),
}
CSV_REQUIRED = ["customer_id", "email", "enrolled", "points_balance", "lifetime_points", "tier"]


def accounts_sql(file: ExportFile, encoding: str, column_map: Mapping[str, str] | None = None) -> str | Relation:
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
    relation = canonical.relation_sql(file, ACCOUNT_COLUMNS, CSV_REQUIRED, encoding, column_map,
                                      known=known_header, missing=_missing_columns)
    return replace(relation, records=(
        "SELECT * REPLACE (CASE WHEN trim(coalesce(enrolled, '')) = '' THEN 'false' ELSE enrolled END "
        f"AS enrolled) FROM ({relation.records})"))
