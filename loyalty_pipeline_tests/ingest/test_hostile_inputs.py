"""Inputs an adversary (or an odd export) brings, beyond the catalogue (issue 13, ingest side).

Same rules as test_catalogue.py: every case writes a real export (under a real path) and calls the
ingest and snapshot steps on a real DuckDB file, as their assets do (helpers.ingest_day), then reads it. A row
ends in `snapshots` or `quarantine` (file, line, field, value, reason; raw = snapshot + quarantine);
a file that cannot be read fails the day naming the file and what to fix, and writes nothing.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from loyalty_pipeline.program import ProgramError, load_program
from loyalty_pipeline_tests.harness import ACCOUNT_HEADER, Pipeline, account
from loyalty_pipeline_tests.ingest.helpers import counts, ingest_day
from loyalty_pipeline_tests.ingest.test_catalogue import (
    DAY,
    fails,
    ingest,
    member,
    pipeline_for,
    quarantine,
    render,
    snapshot,
    write,
)


def canonical_csv(rows: list[dict], header: list[str] = ACCOUNT_HEADER, newline: str = "\n") -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, extrasaction="ignore", lineterminator=newline)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def write_export(pipeline: Pipeline, name: str, content: str | bytes) -> Path:
    path = pipeline.exports / DAY / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def record(shape: str, cid: str, **values) -> dict:
    """catalogue.member() for every shape; a canonical one is written by canonical_row()."""
    return member("yotpo" if shape == "canonical" else shape, cid, **values)


def canonical_row(row: dict) -> dict:
    """A record("canonical", …) (Yotpo's JSON names) under the canonical column names."""
    names = {"third_party_id": "customer_id", "email": "email", "opt_in": "enrolled",
             "points_balance": "points_balance", "points_earned": "lifetime_points", "vip_tier_name": "tier",
             "vip_tier_entry_date": "tier_since", "opted_in_at": "member_since",
             "next_points_expire_on": "next_expiry_date", "next_points_expire_amount": "next_expiry_amount"}
    return {names[k]: "" if v is None else str(v).lower() if isinstance(v, bool) else v
            for k, v in row.items() if k in names}


def text_of(shape: str, rows: list[dict], newline: str = "\n") -> str:
    if shape == "canonical":
        return canonical_csv([canonical_row(r) for r in rows], newline=newline)
    return render(shape, rows)


def line_of(shape: str, index: int) -> int:
    """The file line of rows[index]: a CSV counts its header."""
    return index + (2 if shape in ("canonical", "yotpo_csv") else 1)


def fails_as(tmp_path: Path, shape: str, content: str | bytes, *expected: str) -> str:
    """catalogue.fails() for these shapes too: canonical (CSV) and canonical_jsonl."""
    as_file = {"canonical": ("yotpo_csv", {"platform": "canonical"}),
               "canonical_jsonl": ("yotpo", {"platform": "canonical"})}
    file_shape, source = as_file.get(shape, (shape, {}))
    return fails(tmp_path, file_shape, content, *expected, **source)


def succeeds(pipeline: Pipeline, raw: int) -> None:
    day = ingest_day(pipeline, DAY)
    assert day.success, day.message
    assert counts(pipeline, DAY)[0] == raw
    assert sum(counts(pipeline, DAY)[1:]) == raw  # raw = snapshot + quarantine


def ingest_rows(tmp_path: Path, shape: str, rows: list[dict]) -> Pipeline:
    if shape != "canonical":
        return ingest(tmp_path, shape, rows)
    pipeline = pipeline_for(tmp_path, shape)
    write_export(pipeline, "accounts.csv", text_of(shape, rows))
    succeeds(pipeline, raw=len(rows))
    return pipeline


# -- item 3: an explicit column_map wins -------------------------------------------------------------------

@pytest.mark.parametrize("shape", ["canonical", "yotpo_csv"])
def test_an_explicit_column_map_wins_over_a_header_that_happens_to_exist(tmp_path, shape):
    # The shop's own id is "Shopify ID"; the file also has a stale `customer_id` column, before it.
    pipeline = pipeline_for(tmp_path, shape, column_map={"Shopify ID": "customer_id"})
    if shape == "canonical":
        rows = [{**account("legacy-1"), "Shopify ID": "S1"}, {**account("legacy-2"), "Shopify ID": "S2"}]
        content = canonical_csv(rows, ACCOUNT_HEADER + ["Shopify ID"])
    else:
        rows = [{**record(shape, "legacy-1"), "customer_id": "legacy-1", "Shopify ID": "S1"},
                {**record(shape, "legacy-2"), "customer_id": "legacy-2", "Shopify ID": "S2"}]
        rows = [{k: v for k, v in r.items() if k != "Third Party ID"} for r in rows]
        content = render(shape, rows)
    write_export(pipeline, "accounts.csv", content)
    succeeds(pipeline, raw=2)
    assert snapshot(pipeline, "customer_id") == [("S1",), ("S2",)]


@pytest.mark.parametrize("shape", ["canonical", "yotpo_csv"])
def test_a_conflict_the_column_map_does_not_settle_fails_naming_both_headers(tmp_path, shape):
    column_map = {"Shopify ID": "customer_id", "Customer Ref": "customer_id"}
    if shape == "canonical":
        rows = [{**account("C1"), "Shopify ID": "S1", "Customer Ref": "R1"}]
        header = [h for h in ACCOUNT_HEADER if h != "customer_id"] + ["Shopify ID", "Customer Ref"]
        content = canonical_csv(rows, header)
    else:
        rows = [{**record(shape, "C1"), "Shopify ID": "S1", "Customer Ref": "R1"}]
        content = render(shape, rows)
    pipeline = pipeline_for(tmp_path, shape, column_map=column_map)
    path = write_export(pipeline, "accounts.csv", content)
    day = ingest_day(pipeline, DAY)
    message = day.message
    assert not day.success
    assert str(path) in message and "'Shopify ID', 'Customer Ref' could all be customer_id" in message, message
    assert pipeline.table("raw_accounts", DAY) == []


def test_a_column_map_header_that_could_never_match_is_refused(tmp_path):
    # Headers are read trimmed: " Shopify ID" would silently never apply.
    with pytest.raises(ProgramError, match=r"source\.column_map: .*' Shopify ID' are blank or padded"):
        load_program(pipeline_for(tmp_path, "canonical", column_map={" Shopify ID": "customer_id"}).program_path)


# -- items 5 and 11: dates, ids ----------------------------------------------------------------------------

@pytest.mark.parametrize("shape", ["canonical", "loyaltylion"])
def test_dates_outside_1900_2099_are_sentinels(tmp_path, shape):
    # 99999-01-01 is a date to DuckDB but to no consumer (Python's dates end in 9999): it never reaches
    # the snapshot. 9999-12-31 is the usual "never"; 2099-12-31 is still a date.
    rows = [record(shape, "C1", tier_since="99999-01-01"), record(shape, "C2", member_since="9999-12-31"),
            record(shape, "C3", expiry_date="2100-01-01", expiry_amount=5),
            record(shape, "C4", expiry_date="2099-12-31", expiry_amount=5)]
    pipeline = ingest_rows(tmp_path, shape, rows)
    assert quarantine(pipeline) == []
    assert snapshot(pipeline, "customer_id, tier_since::VARCHAR, member_since::VARCHAR, "
                              "next_expiry_date::VARCHAR, dq_flags") == [
        ("C1", None, "2025-06-01", None, ["sentinel_date"]),
        ("C2", "2026-01-01", None, None, ["sentinel_date"]),
        ("C3", "2026-01-01", "2025-06-01", None, ["sentinel_date"]),
        ("C4", "2026-01-01", "2025-06-01", "2099-12-31", []),
    ]


@pytest.mark.parametrize("shape", ["canonical", "loyaltylion"])
def test_words_duckdb_reads_as_dates_are_invalid_dates(tmp_path, shape):
    words = ["infinity", "-infinity", "epoch", "now", "today", "allballs"]
    rows = [record(shape, f"C{i}", member_since=word) for i, word in enumerate(words)]
    pipeline = ingest_rows(tmp_path, shape, rows)
    assert quarantine(pipeline) == [
        (line_of(shape, i), f"C{i}", "member_since", word, "invalid_date") for i, word in enumerate(words)]


@pytest.mark.parametrize("shape", ["canonical", "yotpo"])
def test_an_id_with_a_control_character_is_quarantined(tmp_path, shape):
    rows = [record(shape, "C1\x00x"), record(shape, "C2\t"), record(shape, "C3")]
    pipeline = ingest_rows(tmp_path, shape, rows)
    assert quarantine(pipeline) == [
        (line_of(shape, 0), "C1\x00x", "customer_id", "C1\x00x", "invalid_id"),
        (line_of(shape, 1), "C2\t", "customer_id", "C2\t", "invalid_id"),
    ]
    assert snapshot(pipeline, "customer_id") == [("C3",)]


def test_activities_follow_the_same_rules(tmp_path):
    pipeline = pipeline_for(tmp_path, "canonical")
    write_export(pipeline, "accounts.csv", canonical_csv([account("C1")]))
    write_export(pipeline, "activities.csv", (
        "customer_id,occurred_at,points,reason\n"
        "C1,2026-03-10T10:00:00Z,5,order\nC\x001,2026-03-10T10:00:00Z,5,order\n"
        "C1,epoch,5,order\nC1,infinity,5,order\nC1,99999-01-01T00:00:00Z,5,order\n"))
    succeeds(pipeline, raw=1)
    assert pipeline.query("SELECT source_line, customer_id, field, value, reason FROM quarantine "
                          "WHERE kind = 'activities' ORDER BY ALL") == [
        (3, "C\x001", "customer_id", "C\x001", "invalid_id"),
        (4, "C1", "occurred_at", "epoch", "invalid_timestamp"),
        (5, "C1", "occurred_at", "infinity", "invalid_timestamp"),
        (6, "C1", "occurred_at", "99999-01-01T00:00:00Z", "invalid_timestamp"),
    ]
    assert pipeline.query("SELECT source_line FROM activities") == [(2,)]


# -- item 7: paths are data --------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
@pytest.mark.parametrize(("root", "sibling"), [("glob/ex*", "glob/exfoo"), ("glob/e[x]", "glob/ex"),
                                               ("o'brien/exports", None)])
def test_an_exports_root_is_a_path_never_a_pattern(tmp_path, fmt, root, sibling):
    # DuckDB would read `ex*` as a pattern matching `exfoo` too, and `e[x]` as one matching `ex`.
    pipeline = Pipeline(tmp_path)
    pipeline.exports = tmp_path / root
    for folder, ids in ((pipeline.exports, ["C1"]), (sibling and tmp_path / sibling, ["X1", "X2"])):
        if folder:
            path = folder / DAY / f"accounts.{fmt}"
            path.parent.mkdir(parents=True)
            path.write_bytes(_export_bytes(tmp_path, [account(i) for i in ids], fmt))
    succeeds(pipeline, raw=1)
    assert pipeline.query("SELECT customer_id, source_file FROM snapshots") == [
        ("C1", str(pipeline.exports / DAY / f"accounts.{fmt}"))]


def _export_bytes(tmp_path: Path, rows: list[dict], fmt: str) -> bytes:
    """Canonical rows as a CSV, JSON Lines or Parquet file's bytes (DuckDB writes them at a plain path)."""
    import duckdb

    plain = tmp_path / "plain.csv"
    plain.write_text(canonical_csv(rows))
    if fmt != "csv":
        out = plain.with_suffix(f".{fmt}")
        duckdb.sql(f"COPY (SELECT * FROM read_csv('{plain}', all_varchar=true)) TO '{out}' "
                   f"(FORMAT {'json' if fmt == 'jsonl' else 'parquet'})")
        plain = out
    return plain.read_bytes()


# -- item 8: files that used to crash ------------------------------------------------------------------------

@pytest.mark.parametrize("shape", ["canonical", "yotpo_csv"])
def test_a_cr_only_csv_is_read_line_by_line(tmp_path, shape):
    # Old Mac line ends: a lone CR. Lines are counted the same way.
    rows = [record(shape, "C1"), record(shape, "C2", balance="12a"), record(shape, "C3")]
    pipeline = pipeline_for(tmp_path, shape)
    write_export(pipeline, "accounts.csv", text_of(shape, rows).replace("\n", "\r"))
    succeeds(pipeline, raw=3)
    assert quarantine(pipeline) == [(3, "C2", "points_balance", "12a", "invalid_integer")]
    assert snapshot(pipeline, "customer_id, source_line") == [("C1", 2), ("C3", 4)]


@pytest.mark.parametrize("shape", ["canonical_jsonl", "yotpo"])
def test_a_first_json_line_nested_100k_deep_fails_naming_file_and_line(tmp_path, shape):
    deep = '{"a":' * 100_000 + "1" + "}" * 100_000
    fails_as(tmp_path, shape, deep + "\n", "line 1", "nested too deeply")


@pytest.mark.parametrize("shape", ["canonical", "yotpo_csv"])
def test_a_duplicated_header_fails_naming_it(tmp_path, shape):
    if shape == "canonical":
        header = ACCOUNT_HEADER + ["points_balance"]
        content = ",".join(header) + "\nC1,c1@example.com,true,100,150,Bronze,,,,,999\n"
        expected = "header 'points_balance' appears 2 times (columns 4, 11)"
    else:
        row = record(shape, "C1")
        content = ",".join([*row, "Points Balance"]) + "\n" + ",".join([*row.values(), "999"]) + "\n"
        expected = "header 'Points Balance' appears 2 times (columns 4, 11)"
    fails_as(tmp_path, shape, content, expected, "keep one")


@pytest.mark.parametrize("shape", ["canonical", "yotpo_csv"])
def test_a_duplicated_header_no_column_uses_is_ignored(tmp_path, shape):
    rows = [{**(account("C1") if shape == "canonical" else record(shape, "C1")), "Note": "x"}]
    header = [*rows[0], "Note"]
    text = ",".join(header) + "\n" + "".join(",".join([*map(str, r.values()), "y"]) + "\n" for r in rows)
    pipeline = pipeline_for(tmp_path, shape)
    write_export(pipeline, "accounts.csv", text)
    succeeds(pipeline, raw=1)
    assert snapshot(pipeline, "customer_id") == [("C1",)]


FIFTY_MB = 50 << 20


@pytest.mark.parametrize("shape", ["canonical_csv", "canonical_jsonl", "yotpo"])
def test_a_50_mb_line_is_read(tmp_path, shape):
    big = "x" * FIFTY_MB  # in a field no column uses
    pipeline = pipeline_for(tmp_path, "yotpo" if shape == "yotpo" else "canonical")
    if shape == "canonical_csv":
        rows = [{**account("C1"), "note": ""}, {**account("C2"), "note": big}, {**account("C3"), "note": ""}]
        write_export(pipeline, "accounts.csv", canonical_csv(rows, ACCOUNT_HEADER + ["note"]))
    elif shape == "canonical_jsonl":
        rows = [{**account("C1")}, {**account("C2"), "note": big}, {**account("C3")}]
        write_export(pipeline, "accounts.jsonl", "".join(json.dumps({k: str(v) for k, v in r.items()}) + "\n"
                                                          for r in rows))
    else:
        write(pipeline, shape, render(shape, [record(shape, "C1"), record(shape, "C2", raw={"note": big}),
                                              record(shape, "C3")]))
    succeeds(pipeline, raw=3)
    first = 2 if shape == "canonical_csv" else 1
    assert snapshot(pipeline, "customer_id, source_line") == [("C1", first), ("C2", first + 1), ("C3", first + 2)]


@pytest.mark.parametrize("shape", ["canonical", "yotpo"])
def test_a_line_over_the_limit_fails_naming_file_and_line(tmp_path, monkeypatch, shape):
    monkeypatch.setattr("loyalty_pipeline.ingest.readers.MAX_LINE_BYTES", 1 << 20)
    if shape == "canonical":
        content = canonical_csv([account("C1"), account("C2", email="x" * (2 << 20)), account("C3")])
    else:
        content = render(shape, [record(shape, "C1"), record(shape, "C2", raw={"note": "x" * (2 << 20)})])
    fails_as(tmp_path, shape, content, f"line {3 if shape == 'canonical' else 2} is longer than 1 MiB", "re-export")


def test_a_line_of_the_limit_reaches_duckdb_and_is_read(tmp_path, monkeypatch):
    # DuckDB counts a line's end in its own limit: the readers leave room for it.
    monkeypatch.setattr("loyalty_pipeline.ingest.readers.MAX_LINE_BYTES", 1 << 20)
    row = canonical_csv([account("C2")], newline="\r\n").split("\r\n")[1]
    note = "x" * ((1 << 20) - len(row) - len(",") - 1)  # the row + CR: exactly the limit
    pipeline = pipeline_for(tmp_path, "canonical")
    write_export(pipeline, "accounts.csv", canonical_csv(
        [{**account("C1"), "note": ""}, {**account("C2"), "note": note}], ACCOUNT_HEADER + ["note"], "\r\n"))
    succeeds(pipeline, raw=2)
    assert snapshot(pipeline, "customer_id, source_line") == [("C1", 2), ("C2", 3)]


@pytest.mark.parametrize(("name", "content"), [
    ("activities.csv", b""), ("activities.jsonl", b""), ("activities.parquet", b""),
    ("activities.csv", b"customer_id,occurred_at,points,reason\n"), ("activities.jsonl", b"\n\n"),
])
def test_an_empty_activities_file_is_a_day_without_movements(tmp_path, name, content):
    pipeline = pipeline_for(tmp_path, "canonical")
    write_export(pipeline, "accounts.csv", canonical_csv([account("C1")]))
    write_export(pipeline, name, content)
    succeeds(pipeline, raw=1)
    assert pipeline.query("SELECT count(*) FROM raw_activities") == [(0,)]
    assert pipeline.query("SELECT kind, rows FROM export_files ORDER BY kind") == [("accounts", 1), ("activities", 0)]


# -- item 11: lineage --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("shape", "newline"), [("canonical", "\n"), ("canonical", "\r\n"), ("yotpo_csv", "\n")])
def test_csv_source_line_is_the_physical_line(tmp_path, shape, newline):
    # A quoted field over three lines, then a blank line: the next records start further down.
    note = f'a "quoted"{newline}note{newline}{newline}on lines'
    rows = [record(shape, "C1"), record(shape, "C2", email=note), record(shape, "C3", balance="12a"),
            record(shape, "C4")]
    lines = text_of(shape, rows, newline).split(newline)
    # header, C1, C2 (4 lines: 3 inside its quoted field), then C3 after a blank line, C4.
    text = newline.join(lines[:6] + [""] + lines[6:])
    pipeline = pipeline_for(tmp_path, shape)
    write_export(pipeline, "accounts.csv", text)
    succeeds(pipeline, raw=4)
    assert quarantine(pipeline) == [(8, "C3", "points_balance", "12a", "invalid_integer")]
    assert snapshot(pipeline, "customer_id, source_line") == [("C1", 2), ("C2", 3), ("C4", 9)]


@pytest.mark.parametrize("shape", ["yotpo", "loyaltylion", "voucherify"])
def test_platform_jsonl_source_line_is_the_physical_line(tmp_path, shape):
    # Numbered like a CSV file's records (no window): blank lines and lines of spaces shift the next ones.
    c1, c2, c3 = render(shape, [record(shape, "C1"), record(shape, "C2", balance="12a"),
                                record(shape, "C3")]).splitlines()
    pipeline = pipeline_for(tmp_path, shape)
    write(pipeline, shape, c1 + "\n\n  \n" + c2 + "\n\n" + c3 + "\n")
    succeeds(pipeline, raw=3)
    assert [r[:2] + r[3:] for r in quarantine(pipeline)] == [(4, "C2", "12a", "invalid_integer")]
    assert snapshot(pipeline, "customer_id, source_line") == [("C1", 1), ("C3", 6)]


@pytest.mark.parametrize("shape", ["yotpo", "loyaltylion", "voucherify"])
def test_a_broken_platform_record_fails_the_day_naming_its_physical_line(tmp_path, shape):
    c1, c2 = render(shape, [record(shape, "C1"), record(shape, "C2")]).splitlines()
    fails(tmp_path, shape, c1 + "\n\n" + c2[:-5] + "\n" + c2 + "\n", "line 3: not a complete JSON object")


def test_canonical_jsonl_source_line_is_the_physical_line(tmp_path):
    records = [json.dumps({k: str(v) for k, v in account(cid, points=p).items()})
               for cid, p in (("C1", 1), ("C2", "12a"), ("C3", 3))]
    pipeline = pipeline_for(tmp_path, "canonical")
    write_export(pipeline, "accounts.jsonl", records[0] + "\n\n  \n" + records[1] + "\n\n" + records[2] + "\n")
    succeeds(pipeline, raw=3)
    assert quarantine(pipeline) == [(4, "C2", "points_balance", "12a", "invalid_integer")]
    assert snapshot(pipeline, "customer_id, source_line") == [("C1", 1), ("C3", 6)]
