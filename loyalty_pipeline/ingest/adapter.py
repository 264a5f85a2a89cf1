"""What a platform module provides: the `Adapter` protocol every module of ingest/platforms/ satisfies.

A module, not a class: its constants and two functions. The registry (platforms/__init__.py) checks
each module against this protocol when it discovers it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from .files import ExportFile
from .readers import Relation


@runtime_checkable
class Adapter(Protocol):
    NAME: str  # what program.yaml `source.platform` calls the platform
    EMAIL_IS_KEY: bool  # the platform keys members by email: a second row with the same email is a duplicate

    def accounts_sql(self, file: ExportFile, encoding: str, column_map: Mapping[str, str] | None = None
                     ) -> Relation | str:
        """The accounts file as canonical text columns (columns.ACCOUNT_COLUMNS, plus `absent`: the
        columns a JSON Lines record lacks, else NULL): SQL carrying its own `source_line`, or a Relation
        that the ingest numbers. The ingest parses the typed ones (sql/typed_accounts.sql)."""
        ...

    def activities_sql(self, file: ExportFile, encoding: str, column_map: Mapping[str, str] | None = None
                       ) -> Relation | str:
        """The optional activities file, the same way (columns.ACTIVITY_COLUMNS, plus `absent`)."""
        ...
