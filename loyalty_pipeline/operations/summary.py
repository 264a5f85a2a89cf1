"""What the warehouse holds, day by day: the summary `make demo` prints."""

from __future__ import annotations

from pathlib import Path

from ..events.catalogue import CATALOGUE
from ..warehouse.connection import connect

# One column per event type (code_name without "loyalty."), then the split by status.
_EVENTS_PER_DAY = f"""
        SELECT d.day,
               {", ".join(f"count(e.event_key) FILTER (e.code_name = '{code}') AS {code.removeprefix('loyalty.')}"
                          for code in CATALOGUE)},
               count(e.event_key) FILTER (e.status = 'pending') AS pending,
               count(e.event_key) FILTER (e.status = 'suppressed_stale') AS suppressed_stale
        FROM (SELECT DISTINCT snapshot_date AS day FROM snapshots) d
        LEFT JOIN loyalty_events e ON e.snapshot_date = d.day
        GROUP BY d.day ORDER BY d.day"""

SECTIONS = {
    "Members per day (snapshots)": """
        SELECT snapshot_date AS day, count(*) AS members, count(*) FILTER (enrolled) AS enrolled,
               sum(points_balance) AS points_liability
        FROM snapshots GROUP BY ALL ORDER BY day""",
    "Rows quarantined, by reason (table quarantine has file, line, field and value)": """
        SELECT day, sum(n)::BIGINT AS rows,
               string_agg(kind || ':' || reason || '=' || n, ', ' ORDER BY kind, reason) AS why
        FROM (SELECT snapshot_date AS day, kind, reason, count(*) AS n FROM quarantine GROUP BY ALL)
        GROUP BY day ORDER BY day""",
    "Deltas by kind (tier moves in the last columns)": """
        SELECT snapshot_date AS day, any_value(gap_days) AS gap,
               count(*) FILTER (change_kind = 'new') AS new,
               count(*) FILTER (change_kind = 'changed') AS changed,
               count(*) FILTER (change_kind = 'removed') AS removed,
               count(*) FILTER (tier_direction = 'up') AS up,
               count(*) FILTER (tier_direction = 'down') AS down,
               count(*) FILTER (tier_direction = 'joined') AS joined,
               count(*) FILTER (tier_direction = 'left') AS "left"
        FROM account_deltas GROUP BY ALL ORDER BY day""",
    "Events per type per day (and by status)": _EVENTS_PER_DAY,
}


def print_summary(warehouse: Path, sections: dict[str, str] | None = None) -> None:
    con = connect(warehouse, read_only=True)
    try:
        for title, query in (sections or SECTIONS).items():
            print(f"\n== {title}")
            con.sql(query).show(max_rows=200, max_width=200)
    finally:
        con.close()
