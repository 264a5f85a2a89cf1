"""Small helpers for run metadata: numbers the UI can plot, tables a person can read."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import dagster as dg
import duckdb

_CELL_TYPES = (str, int, float, bool)  # what a TableRecord holds; anything else (dates, lists…) as text


def query_table(con: duckdb.DuckDBPyConnection, query: str, params: dict | None = None) -> dg.TableMetadataValue:
    """A query's result as a table in the UI, its columns typed as DuckDB types them, so an empty result still
    shows them (keep it small: LIMIT in the query)."""
    cur = con.execute(query, params or {})
    return rows_table([(name, str(kind)) for name, kind, *_ in cur.description], cur.fetchall())


def rows_table(columns: Sequence[tuple[str, str]], rows: Iterable[Sequence]) -> dg.TableMetadataValue:
    """Rows under (name, type) columns as a table in the UI: figures a step recorded, shown like a query's."""
    schema = dg.TableSchema([dg.TableColumn(name, kind) for name, kind in columns])
    names = [column.name for column in schema.columns]
    records = [dg.TableRecord({name: v if v is None or isinstance(v, _CELL_TYPES) else str(v)
                               for name, v in zip(names, row, strict=True)}) for row in rows]
    return dg.MetadataValue.table(records, schema)


def counts(prefix: str, mapping: dict) -> dict[str, int]:
    """{'up': 3} → {'prefix/up': 3}: one numeric series per key in the UI's plots."""
    return {f"{prefix}/{key}": int(value) for key, value in mapping.items()}
