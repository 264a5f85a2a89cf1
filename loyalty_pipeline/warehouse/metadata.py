"""Small helpers for run metadata: numbers the UI can plot, Markdown a person can read."""

from __future__ import annotations

import dagster as dg
import duckdb


def md_query(con: duckdb.DuckDBPyConnection, query: str, params: dict | None = None) -> dg.MetadataValue:
    """A query's result as a Markdown table (keep it small: LIMIT in the query)."""
    cur = con.execute(query, params or {})
    return md_table([d[0] for d in cur.description], cur.fetchall())


def md_table(names: list[str], rows: list) -> dg.MetadataValue:
    """Rows as a Markdown table under `names` (keep it small)."""
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join("" if v is None else str(v).replace("|", "\\|") for v in row) + " |"
              for row in rows]
    return dg.MetadataValue.md("\n".join(lines) if rows else "_none_")


def counts(prefix: str, mapping: dict) -> dict[str, int]:
    """{'up': 3} → {'prefix/up': 3}: one numeric series per key in the UI's plots."""
    return {f"{prefix}/{key}": int(value) for key, value in mapping.items()}
