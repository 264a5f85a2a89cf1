"""Time and peak memory of writing the Reelevant feed for N members (default 1 000 000).

    .venv/bin/python -m loyalty_pipeline.devtools.bench.reelevant [--rows N] [--keep DIR]

Builds an N-member snapshot directly in a scratch DuckDB file (no export, no ingest), then runs each
way of writing the file in a fresh process, so each peak RSS is its own:

- feed:    what the pipeline does (`write_feed`): DuckDB renders JSON, pydantic validates each
           batch of 10 000 lines as written, atomic rename;
- copy:    DuckDB `COPY (...) TO ... (FORMAT json)`: the floor, no validation;
- objects: Arrow batches → Python dicts → pydantic models → `model_dump_json()` per record.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pydantic import TypeAdapter

from ...outbound.reelevant.feed import LoyaltyProgrammeRecord, feed_params, feed_sql, write_feed
from ...program import load_program
from ...settings import program_path
from ...warehouse.connection import connect, prepare

DAY = dt.date(2026, 3, 1)
MODES = ("feed", "copy", "objects")


def make_snapshot(db: Path, rows: int) -> None:
    """N members over every tier (a tenth with none, a tenth not enrolled), set-based in DuckDB."""
    program = load_program(program_path())
    con = connect(db)
    try:
        prepare(con, program)
        n_tiers = len(program.tiers)
        con.execute(f"""
            INSERT INTO snapshots BY NAME
            WITH m AS (
                SELECT i, hash(i) AS h,
                       CASE WHEN i % 10 = 3 THEN NULL ELSE 1 + (hash(i) >> 8) % {n_tiers} END AS r
                FROM range($rows) AS t(i)
            )
            SELECT $day AS snapshot_date, 'C' || lpad(i::VARCHAR, 9, '0') AS customer_id,
                   'c' || i || '@example.com' AS email, i % 10 <> 7 AS enrolled,
                   coalesce(t.threshold, 0) + (h % 997)::BIGINT AS points_balance,
                   coalesce(t.threshold, 0) + (h % 997)::BIGINT + (h % 5000)::BIGINT AS lifetime_points,
                   t.name AS tier, t.rank AS tier_rank, DATE '2025-01-01' AS tier_since,
                   DATE '2020-01-01' + (h % 2000)::INTEGER AS member_since,
                   CASE WHEN i % 3 = 0 THEN $day + (h % 400)::INTEGER END AS next_expiry_date,
                   CASE WHEN i % 3 = 0 THEN (h % 300)::BIGINT END AS next_expiry_amount,
                   []::VARCHAR[] AS dq_flags, 'bench' AS source_file, i + 2 AS source_line
            FROM m LEFT JOIN tiers t ON t.rank = m.r
        """, {"rows": rows, "day": DAY})
    finally:
        con.close()


def run_mode(mode: str, db: Path, out: Path) -> dict:
    program = load_program(program_path())
    con = connect(db)
    prepare(con, program)
    started = time.perf_counter()
    columns = f"SELECT * FROM ({feed_sql()}) AS f ORDER BY f.customer_id"
    if mode == "feed":
        stats = write_feed(con, DAY, program, out)
        rows, path = stats["rows"], Path(stats["path"])
    elif mode == "copy":
        path = out / "copy.jsonl"
        con.execute(f"COPY ({columns}) TO $path (FORMAT json)", {**feed_params(DAY, program), "path": str(path)})
        rows = sum(1 for _ in path.open("rb"))
    elif mode == "objects":
        path = out / "objects.jsonl"
        adapter = TypeAdapter(list[LoyaltyProgrammeRecord])
        rows = 0
        with path.open("w", encoding="utf-8") as fh:
            for batch in con.sql(columns, params=feed_params(DAY, program)).to_arrow_reader(10_000):
                records = adapter.validate_python(batch.to_pylist())
                fh.write("".join(r.model_dump_json() + "\n" for r in records))
                rows += len(records)
    else:
        raise SystemExit(f"unknown mode {mode}")
    elapsed = time.perf_counter() - started
    con.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return {"mode": mode, "rows": rows, "seconds": round(elapsed, 2), "peak_rss_mb": round(peak_mb),
            "file_mb": round(path.stat().st_size / 1e6)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "DB", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, db, out = args.child
        print(json.dumps(run_mode(mode, Path(db), Path(out))))
        return
    with tempfile.TemporaryDirectory(prefix="reelevant-bench-") as scratch:
        root = args.keep or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        db = root / "bench.duckdb"
        db.unlink(missing_ok=True)
        started = time.perf_counter()
        make_snapshot(db, args.rows)
        print(f"snapshot of {args.rows:,} members built in {time.perf_counter() - started:.1f}s", flush=True)
        for mode in args.modes.split(","):
            out = root / mode
            out.mkdir(exist_ok=True)
            result = subprocess.run(
                [sys.executable, "-m", "loyalty_pipeline.devtools.bench.reelevant", "--child", mode, str(db), str(out)],
                check=True, capture_output=True, text=True)
            print(result.stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
