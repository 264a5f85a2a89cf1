"""Invariants 1 and 3: the partition is the business date; nothing is lost; broken files fail the day."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest

from loyalty_pipeline_tests.harness import ACCOUNT_HEADER, Pipeline, account, failure_messages

DAY = "2026-03-10"


def test_partition_is_the_business_date_not_the_run_date(pipeline: Pipeline):
    pipeline.write_accounts(DAY, [account("C1"), account("C2")])
    pipeline.run(DAY)  # runs "today" (2026-11), processes the export dated 2026-03-10
    assert pipeline.query("SELECT DISTINCT snapshot_date::VARCHAR FROM snapshots") == [(DAY,)]
    assert pipeline.query("SELECT snapshot_date::VARCHAR, rows FROM export_files") == [(DAY, 2)]


def test_the_lineage_names_the_file_by_its_own_sha256(pipeline: Pipeline):
    """What `sha256sum` prints for the file as the vendor sent it: how ops match a day to a file."""
    path = pipeline.write_accounts(DAY, [account(f"C{i}") for i in range(30_000)])  # 2 MB: read in pieces
    pipeline.run(DAY)
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert pipeline.query("SELECT sha256, bytes FROM export_files") == [(expected, path.stat().st_size)]


def test_a_missing_export_fails_naming_the_expected_paths(pipeline: Pipeline):
    result = pipeline.run(DAY, expect_success=False)
    assert not result.success
    message = failure_messages(result)
    assert f"{DAY}/accounts.csv" in message and "accounts.parquet" in message


def test_every_bad_row_is_quarantined_with_its_reason_and_counts_reconcile(pipeline: Pipeline):
    rows = [
        account("C1", points=1200, lifetime=3000, tier="Silver"),               # line 2: good
        account("", points=10),                                                 # line 3: missing id
        account("C3", points="12a"),                                            # line 4
        account("C4", points="1.5"),                                            # line 5: not rounded
        account("C5", lifetime="-3"),                                           # line 6
        account("C6", tier="Diamond"),                                          # line 7
        account("C7", member_since="2026-13-45"),                               # line 8
        account("C1", points=999),                                              # line 9: duplicate
        account("1.2345e+12"),                                                  # line 10: float id
        account("C8", enrolled="maybe"),                                        # line 11
        account("C9", email="not-an-email", points=-40, lifetime=100, tier_since="0001-01-01", tier="GOLD"),  # flags
        account("C10", tier=" loyal SILVER "),                                  # alias, spaced
    ]
    pipeline.write_accounts(DAY, rows)
    pipeline.run(DAY, expect_success=False)  # C6's unknown tier stops the day's outbound (tiers_known)

    quarantined = pipeline.query(
        "SELECT source_line, customer_id, field, value, reason FROM quarantine ORDER BY source_line")
    assert quarantined == [
        (3, None, "customer_id", None, "missing_id"),
        (4, "C3", "points_balance", "12a", "invalid_integer"),
        (5, "C4", "points_balance", "1.5", "invalid_integer"),
        (6, "C5", "lifetime_points", "-3", "negative_lifetime"),
        (7, "C6", "tier", "Diamond", "unknown_tier"),
        (8, "C7", "member_since", "2026-13-45", "invalid_date"),
        (9, "C1", "customer_id", "C1", "duplicate_member"),
        (10, "1.2345e+12", "customer_id", "1.2345e+12", "id_in_scientific_notation"),
        (11, "C8", "enrolled", "maybe", "invalid_boolean"),
    ]
    assert pipeline.query("SELECT DISTINCT source_file FROM quarantine")[0][0].endswith(f"{DAY}/accounts.csv")

    snap = {r[0]: r[1:] for r in pipeline.query(
        "SELECT customer_id, email, points_balance, tier, tier_since, dq_flags, source_line FROM snapshots")}
    assert snap["C1"][1:] == (1200, "Silver", dt.date(2026, 1, 1), [], 2)  # first line wins
    assert snap["C9"] == (None, -40, "Gold", None, ["invalid_email", "negative_balance", "sentinel_date"], 12)
    assert snap["C10"][2] == "Silver"

    raw, members, quarantine = pipeline.query(
        "SELECT (SELECT count(*) FROM raw_accounts), (SELECT count(*) FROM snapshots), "
        "(SELECT count(*) FROM quarantine)")[0]
    assert raw == len(rows) == members + quarantine
    checks = {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
              for e in pipeline.run(DAY, expect_success=False).all_events
              if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    assert {"one_row_per_customer": True, "rows_reconcile": True}.items() <= checks.items()  # + operations checks


def test_all_problems_of_a_row_are_kept(pipeline: Pipeline):
    pipeline.write_accounts(DAY, [account("C0"), account("C1", points="x", lifetime=5, tier="Diamond")])
    pipeline.run(DAY, expect_success=False)  # the unknown tier stops the day's outbound (tiers_known)
    (problems,) = pipeline.query("SELECT problems FROM quarantine")[0]
    assert [p["reason"] for p in json.loads(problems)] == ["invalid_integer", "unknown_tier"]


def test_values_are_parsed_as_the_file_is_read_and_only_refused_ones_keep_their_text(pipeline: Pipeline):
    """raw_accounts holds typed values; the text of a typed value survives only where its column refused
    it, in `problems` (field, value as written, reason), which quarantine reports."""
    pipeline.write_accounts(DAY, [account("C1", points=" 1200 ", tier_since="2026-02-03T10:00:00Z"),
                                  account("C2", points="12a", lifetime=" 7 ", enrolled="maybe")])
    pipeline.run(DAY)
    assert pipeline.query("SELECT source_line, customer_id, enrolled, points_balance, lifetime_points, tier, "
                          "tier_since, problems FROM raw_accounts ORDER BY source_line") == [
        (2, "C1", True, 1200, 1200, "Bronze", dt.date(2026, 2, 3), None),
        (3, "C2", None, None, 7, "Bronze", dt.date(2026, 1, 1),
         [{"field": "enrolled", "value": "maybe", "reason": "invalid_boolean"},
          {"field": "points_balance", "value": "12a", "reason": "invalid_integer"}]),
    ]
    assert pipeline.query("SELECT source_line, field, value, reason FROM quarantine") == [
        (3, "enrolled", "maybe", "invalid_boolean")]


def _broken_files():
    good = ",".join(ACCOUNT_HEADER) + "\nC1,a@b.co,true,10,10,Bronze,,,,\n"
    return {
        "missing column": ((",".join(h for h in ACCOUNT_HEADER if h != "lifetime_points")
                            + "\nC1,a@b.co,true,10,Bronze,,,,\n").encode(), "lifetime_points"),
        "truncated last line": ((good + "C2,c@d.co,tr").encode(), "line 3"),
        "not utf-8": ((good + "C3,caf\xe9@x.fr,true,1,1,Bronze,,,,\n").encode("latin-1"), "not utf-8"),
        "empty file": (b"", "empty"),
        "header only": ((",".join(ACCOUNT_HEADER) + "\n").encode(), "no rows"),
    }


@pytest.mark.parametrize("case", list(_broken_files()))
def test_a_broken_file_fails_the_day_clearly_and_writes_nothing(pipeline: Pipeline, case: str):
    content, expected = _broken_files()[case]
    path = pipeline.exports / DAY / "accounts.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)

    result = pipeline.run(DAY, expect_success=False)

    message = failure_messages(result)
    assert not result.success
    assert str(path) in message and expected in message, message
    if pipeline.warehouse.exists():
        for table in ("raw_accounts", "snapshots", "quarantine", "export_files", "account_deltas"):
            assert pipeline.table(table, DAY) == [], table


def test_a_broken_rewrite_keeps_the_days_previous_good_state(pipeline: Pipeline):
    path = pipeline.write_accounts(DAY, [account("C1"), account("C2")])
    pipeline.run(DAY)
    before = pipeline.table("snapshots", DAY)
    path.write_text(path.read_text() + "C3,x@y.co,tr")  # truncated rewrite
    assert not pipeline.run(DAY, expect_success=False).success
    assert pipeline.table("snapshots", DAY) == before
    assert pipeline.query("SELECT count(*) FROM raw_accounts") == [(2,)]


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_parquet_and_jsonl_exports_give_the_same_snapshot_as_csv(tmp_path, fmt: str):
    import duckdb

    rows = [account("0004521000123", points=1200, lifetime=3000, tier="Silver"), account("C2", points="7")]
    csv_pipe = Pipeline(tmp_path / "csv")
    csv_path = csv_pipe.write_accounts(DAY, rows)
    csv_pipe.run(DAY)

    other = Pipeline(tmp_path / fmt)
    target = other.exports / DAY / f"accounts.{fmt}"
    target.parent.mkdir(parents=True)
    options = "(FORMAT parquet)" if fmt == "parquet" else "(FORMAT json)"
    duckdb.sql(f"COPY (SELECT * FROM read_csv('{csv_path}', all_varchar=true)) TO '{target}' {options}")
    other.run(DAY)

    columns = "customer_id, email, enrolled, points_balance, lifetime_points, tier, tier_since"
    query = f"SELECT {columns} FROM snapshots ORDER BY customer_id"
    assert other.query(query) == csv_pipe.query(query)
    assert other.query("SELECT customer_id FROM snapshots ORDER BY 1")[0] == ("0004521000123",)


def test_rerunning_a_day_changes_nothing(pipeline: Pipeline):
    pipeline.write_accounts("2026-03-09", [account("C1"), account("C2", points=5)])
    pipeline.write_accounts(DAY, [account("C1", points=300), account("", points=1), account("C3")])
    pipeline.run("2026-03-09")
    pipeline.run(DAY)
    tables = ("raw_accounts", "snapshots", "quarantine", "account_deltas", "export_files")
    before = {t: pipeline.table(t) for t in tables}
    pipeline.run(DAY)
    pipeline.run("2026-03-09")
    assert {t: pipeline.table(t) for t in tables} == before
