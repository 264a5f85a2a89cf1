"""Source adapters: each loyalty platform's export → canonical text columns (see canonical.py)."""

from __future__ import annotations

from types import ModuleType

from . import canonical, loyaltylion, voucherify, yotpo
from .files import ExportError, ExportFile, find_export

# program.yaml `source.platform` → adapter: accounts_sql / activities_sql(file, encoding, column_map) give SQL
# carrying its own source_line, or a readers.Relation that the ingest numbers (warehouse/daily.py).
ADAPTERS: dict[str, ModuleType] = {
    "canonical": canonical, "yotpo": yotpo, "loyaltylion": loyaltylion, "voucherify": voucherify,
}


def adapter(platform: str) -> ModuleType:
    try:
        return ADAPTERS[platform]
    except KeyError as exc:
        raise ExportError(f"source.platform {platform!r} has no adapter; known: {', '.join(ADAPTERS)}") from exc


__all__ = ["ADAPTERS", "ExportError", "ExportFile", "adapter", "find_export"]
