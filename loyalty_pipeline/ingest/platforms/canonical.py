"""The canonical export: our own column names (columns.py), in CSV, Parquet or JSON Lines."""

from __future__ import annotations

from collections.abc import Mapping

from ..columns import ACCOUNT_COLUMNS, ACTIVITY_COLUMNS, relation_sql
from ..files import ExportFile
from ..readers import Relation

NAME = "canonical"
EMAIL_IS_KEY = False

REQUIRED_ACCOUNT_COLUMNS = ["customer_id", "enrolled", "points_balance", "lifetime_points", "tier"]
REQUIRED_ACTIVITY_COLUMNS = ["customer_id", "points"]


def accounts_sql(file: ExportFile, encoding: str, column_map: Mapping[str, str] | None = None) -> Relation | str:
    return relation_sql(file, ACCOUNT_COLUMNS, REQUIRED_ACCOUNT_COLUMNS, encoding, column_map)


def activities_sql(file: ExportFile, encoding: str, column_map: Mapping[str, str] | None = None
                   ) -> Relation | str:
    # Optional: an empty file (0 bytes, blank lines, or a header only) is a day without movements.
    return relation_sql(file, ACTIVITY_COLUMNS, REQUIRED_ACTIVITY_COLUMNS, encoding, column_map, optional=True)
