"""The registry of the loyalty platforms whose exports the ingest reads: every module of this package.

Each module is one platform's adapter (ingest/adapter.py: its NAME, EMAIL_IS_KEY, accounts_sql and
activities_sql). The registry discovers them, so adding a platform is adding its module here (and its
tests): program.yaml validation (program.py), the ingest and the simulator's choices read PLATFORMS.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable

from ..adapter import Adapter
from ..files import ExportError


def discover(path: Iterable[str], package: str) -> dict[str, Adapter]:
    """The adapters of the modules in `path` (package `package`) by NAME, canonical first, then by name."""
    found: dict[str, Adapter] = {}
    for info in pkgutil.iter_modules(path):
        module = importlib.import_module(f"{package}.{info.name}")
        if not isinstance(module, Adapter):
            raise TypeError(f"{module.__name__} is in the platforms package but is no adapter: it must define "
                            "NAME, EMAIL_IS_KEY, accounts_sql and activities_sql (ingest/adapter.py)")
        if module.NAME in found:
            raise TypeError(f"{module.__name__} and {found[module.NAME].__name__} both call themselves {module.NAME!r}")
        found[module.NAME] = module
    return dict(sorted(found.items(), key=lambda item: (item[0] != "canonical", item[0])))


PLATFORMS: dict[str, Adapter] = discover(__path__, __name__)


def adapter(platform: str) -> Adapter:
    try:
        return PLATFORMS[platform]
    except KeyError as exc:
        raise ExportError(f"source.platform {platform!r} has no adapter; known: {', '.join(PLATFORMS)}") from exc
