"""Where files for other systems are written: one folder per destination (e.g. reelevant/)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg


class OutboundResource(dg.ConfigurableResource):
    """Where files for other systems are written: one folder per destination (e.g. reelevant/)."""

    dir: str

    def folder(self, destination: str) -> Path:
        return Path(self.dir) / destination
