"""The warehouse schema as numbered migrations: `migrations/NNNN_<what>.sql`, each applied once.

Opening the warehouse read-write (connection.connect) applies, in number order, the migrations not
yet recorded in table `schema_migrations`, each in one transaction with its record: a failed one
leaves nothing behind and is tried again at the next connection. 0001_initial is the schema from
before migrations, written to be a no-op on a warehouse made by it. A schema change is a new file
with the next number; an applied file is never edited (the warehouses that ran it would not see it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import duckdb

from .connection import transaction

_FILE = re.compile(r"^(?P<version>\d{4})_(?P<name>\w+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """The migrations of migrations/, in number order (two files with one number are a bug)."""
    found = []
    for entry in resources.files(__package__).joinpath("migrations").iterdir():
        if match := _FILE.match(entry.name):
            found.append(Migration(int(match["version"]), match["name"], entry.read_text()))
    found.sort(key=lambda m: m.version)
    if dupes := sorted({m.version for m in found if [n.version for n in found].count(m.version) > 1}):
        raise RuntimeError(f"warehouse migrations numbered twice: {dupes}")
    return found


def migrate(con: duckdb.DuckDBPyConnection, pending: list[Migration] | None = None) -> list[Migration]:
    """Apply the migrations (default: migrations()) not yet recorded; returns those applied now."""
    con.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER NOT NULL, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)")
    applied = {version for (version,) in con.execute("SELECT version FROM schema_migrations").fetchall()}
    done = []
    for migration in migrations() if pending is None else pending:
        if migration.version in applied:
            continue
        with transaction(con):
            con.execute(migration.sql)
            con.execute("INSERT INTO schema_migrations VALUES ($version, $name, now())",
                        {"version": migration.version, "name": migration.name})
        done.append(migration)
    return done
