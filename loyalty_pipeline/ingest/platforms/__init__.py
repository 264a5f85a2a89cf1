"""The loyalty platforms whose exports the ingest reads: one module each, canonical text columns out."""

from __future__ import annotations

from types import ModuleType

from ..files import ExportError
from . import canonical, loyaltylion, voucherify, yotpo

# program.yaml `source.platform` → adapter: accounts_sql / activities_sql(file, encoding, column_map) give SQL
# carrying its own source_line, or a readers.Relation that the ingest numbers (ingest/steps.py).
ADAPTERS: dict[str, ModuleType] = {
    "canonical": canonical, "yotpo": yotpo, "loyaltylion": loyaltylion, "voucherify": voucherify,
}


def adapter(platform: str) -> ModuleType:
    try:
        return ADAPTERS[platform]
    except KeyError as exc:
        raise ExportError(f"source.platform {platform!r} has no adapter; known: {', '.join(ADAPTERS)}") from exc
