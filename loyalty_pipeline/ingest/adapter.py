"""What a platform module provides: the `Adapter` protocol every module of ingest/platforms/ satisfies.

A module, not a class: its constants and two functions. The registry (platforms/__init__.py) checks
each module against this protocol when it discovers it. A module may also say what the platform's API
offers a pull of the day's export (`PULL`, a `PullSpec`: ingest/pull/, docs/pull.md); program.yaml
validation reads it, so `source.pull` is refused, with the reason, for a platform that cannot be pulled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class PullSpec:
    """What a platform's public API offers ingest/pull/ (the platform module's `PULL`)."""

    refused: str | None = None  # why the platform's export cannot be pulled at all (then nothing else matters)
    reference: str = ""  # the API reference page the pull follows
    base_url: str = ""  # the API root, without the version
    versions: Mapping[str, str | None] = field(default_factory=dict)  # api_version → None (pulled) or why not;
    # the first is the default
    credentials: Mapping[str, str] = field(default_factory=dict)  # source.pull setting → default environment variable
    required: tuple[str, ...] = ()  # other source.pull settings the platform needs (e.g. campaign_id)
    max_page_size: int = 100  # the most the listing serves per page (the default page size)
    requests_per_second: float = 1.0  # the default client-side rate: the documented limit, or under it
