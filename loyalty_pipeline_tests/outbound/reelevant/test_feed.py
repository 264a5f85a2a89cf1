"""Reelevant "Loyalty Programme" datasource: field values, atomic files, `latest` never regresses."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import yaml

from loyalty_pipeline.devtools.bench.reelevant import make_snapshot, run_mode
from loyalty_pipeline.outbound.reelevant.feed import (
    FeedError,
    LoyaltyProgrammeRecord,
    atomic_file,
    feed_params,
    feed_sql,
    write_feed,
)
from loyalty_pipeline.program import load_program
from loyalty_pipeline.warehouse.connection import connect, prepare
from loyalty_pipeline_tests.harness import DEFAULT_PROGRAM, Pipeline, account

DAY = "2026-03-10"
FIELDS = list(LoyaltyProgrammeRecord.model_fields)
BENEFITS = {
    "Bronze": ["member_prices"],
    "Silver": ["member_prices", "free_delivery"],
    "Gold": ["member_prices", "free_delivery", "early_access"],
    "Platinum": ["member_prices", "free_delivery", "early_access", "birthday_gift", "personal_shopper"],
}


def records(path: Path) -> dict[str, dict]:
    lines = path.read_text(encoding="utf-8").splitlines()
    objects = [json.loads(line) for line in lines]
    assert [list(o) for o in objects] == [FIELDS] * len(objects)  # every key, in the model's order
    ids = [o["customer_id"] for o in objects]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    return {o["customer_id"]: o for o in objects}


def record(customer_id: str, **fields) -> dict:
    """The expected record: Bronze defaults from the harness's account(), overridden by `fields`."""
    base = {"customer_id": customer_id, "member": True, "tier": "Bronze", "points_balance": 100,
            "points_to_next_tier": 900, "next_tier": "Silver", "tier_benefits": BENEFITS["Bronze"],
            "points_expiration_date": None, "points_expiring": None, "member_since": "2025-06-01",
            "lifetime_points": 100}
    base.update(fields)
    if fields.get("tier") in BENEFITS and "tier_benefits" not in fields:
        base["tier_benefits"] = BENEFITS[fields["tier"]]
    return base


def feed_file(pipeline: Pipeline, name: str) -> Path:
    return pipeline.outbound / "reelevant" / name


def test_records_at_every_tier_on_the_points_balance_basis(pipeline: Pipeline):
    # data/program.yaml: tier_basis points_balance; Bronze 0, Silver 1000, Gold 5000, Platinum 15000.
    pipeline.write_accounts(DAY, [
        account("BRONZE", points=400, lifetime=7000),
        account("SILVER", points=1200, lifetime=1500, tier="Silver"),
        account("GOLD", points=6000, lifetime=6000, tier="gold"),              # alias, any case
        account("PLATINUM", points=20000, lifetime=30000, tier="VIP"),
        account("NOTIER", points=0, lifetime=0, tier=""),
        account("OPTEDOUT", points=50, lifetime=80, tier="", enrolled="false"),
        account("AHEAD", points=6200, lifetime=6200, tier="Silver"),           # platform not upgraded yet
        account("REFUNDED", points=-50, lifetime=300),
        account("EXPIRING", points=800, next_expiry_date="2026-04-30", next_expiry_amount=300),
        account("EXPIRES_TODAY", next_expiry_date=DAY, next_expiry_amount=20),
        account("STALE_EXPIRY", next_expiry_date="2026-02-28", next_expiry_amount=40),
        account("NO_SINCE", member_since=""),
    ])
    result = pipeline.run(DAY)

    got = records(feed_file(pipeline, f"{DAY}.jsonl"))
    assert got == {
        "AHEAD": record("AHEAD", tier="Silver", points_balance=6200, lifetime_points=6200,
                        next_tier="Gold", points_to_next_tier=0),          # never negative
        "BRONZE": record("BRONZE", points_balance=400, lifetime_points=7000, points_to_next_tier=600),
        "EXPIRES_TODAY": record("EXPIRES_TODAY", points_expiration_date=DAY, points_expiring=20),
        "EXPIRING": record("EXPIRING", points_balance=800, lifetime_points=800, points_to_next_tier=200,
                           points_expiration_date="2026-04-30", points_expiring=300),
        "GOLD": record("GOLD", tier="Gold", points_balance=6000, lifetime_points=6000,
                       next_tier="Platinum", points_to_next_tier=9000),
        "NOTIER": record("NOTIER", tier=None, tier_benefits=[], points_balance=0, lifetime_points=0,
                         next_tier="Bronze", points_to_next_tier=0),
        "NO_SINCE": record("NO_SINCE", member_since=None),
        "OPTEDOUT": record("OPTEDOUT", member=False, tier=None, tier_benefits=[], points_balance=50,
                           lifetime_points=80, next_tier="Bronze", points_to_next_tier=0),
        "PLATINUM": record("PLATINUM", tier="Platinum", points_balance=20000, lifetime_points=30000,
                           next_tier=None, points_to_next_tier=None),
        "REFUNDED": record("REFUNDED", points_balance=-50, lifetime_points=300, points_to_next_tier=1050),
        "SILVER": record("SILVER", tier="Silver", points_balance=1200, lifetime_points=1500,
                         next_tier="Gold", points_to_next_tier=3800),
        "STALE_EXPIRY": record("STALE_EXPIRY"),                            # past date: not "next"
    }
    for obj in got.values():
        LoyaltyProgrammeRecord.model_validate_json(json.dumps(obj))

    latest = feed_file(pipeline, "latest.jsonl")
    assert latest.read_bytes() == feed_file(pipeline, f"{DAY}.jsonl").read_bytes()
    manifest = json.loads(feed_file(pipeline, "latest.json").read_text())
    assert manifest["snapshot_date"] == DAY and manifest["rows"] == 12
    meta = result.asset_materializations_for_node("reelevant_datasource")[0].metadata
    assert (meta["records"].value, meta["members"].value, meta["non_members"].value) == (12, 11, 1)
    assert meta["tier/(none)"].value == 2 and meta["tier/Silver"].value == 2
    assert meta["latest_updated"].value is True
    assert sorted(p.name for p in (pipeline.outbound / "reelevant").iterdir()) == [
        f"{DAY}.jsonl", "latest.json", "latest.jsonl"]  # no temp file left behind


def test_lifetime_basis_and_a_lowest_tier_above_zero(tmp_path: Path):
    program = yaml.safe_load(DEFAULT_PROGRAM.read_text())
    program["tier_basis"] = "lifetime_points"
    program["tiers"][0]["threshold"] = 100  # Bronze needs 100 lifetime points
    path = tmp_path / "program.yaml"
    path.write_text(yaml.safe_dump(program))
    pipeline = Pipeline(tmp_path, program_path=path)
    pipeline.write_accounts(DAY, [
        account("NEWBIE", points=30, lifetime=30, tier=""),
        account("SPENDER", points=200, lifetime=4200, tier="Silver"),
        account("TOP", points=10, lifetime=16000, tier="Platinum"),
    ])
    pipeline.run(DAY)
    got = records(feed_file(pipeline, f"{DAY}.jsonl"))
    assert {k: (v["tier"], v["next_tier"], v["points_to_next_tier"], v["tier_benefits"]) for k, v in got.items()} == {
        "NEWBIE": (None, "Bronze", 70, []),
        "SPENDER": ("Silver", "Gold", 800, BENEFITS["Silver"]),     # 5000 - 4200 lifetime, not balance
        "TOP": ("Platinum", None, None, BENEFITS["Platinum"]),
    }


def test_the_sql_columns_are_the_model_fields(pipeline: Pipeline):
    pipeline.write_accounts(DAY, [account("C1")])
    pipeline.run(DAY)
    program = load_program(DEFAULT_PROGRAM)
    con = connect(pipeline.warehouse)
    try:
        prepare(con, program)
        columns = [d[0] for d in con.execute(f"SELECT * FROM ({feed_sql()}) LIMIT 0",
                                             feed_params(dt.date.fromisoformat(DAY), program)).description]
    finally:
        con.close()
    assert columns == FIELDS


def test_backfilling_an_older_day_leaves_latest_alone(pipeline: Pipeline):
    pipeline.write_accounts("2026-03-05", [account("C1", points=500)])
    pipeline.write_accounts("2026-03-03", [account("C1", points=300), account("C2")])
    pipeline.run("2026-03-05")
    newest = feed_file(pipeline, "2026-03-05.jsonl").read_bytes()

    result = pipeline.run("2026-03-03")  # a backfill of an older day
    assert records(feed_file(pipeline, "2026-03-03.jsonl"))["C1"]["points_balance"] == 300
    assert feed_file(pipeline, "latest.jsonl").read_bytes() == newest
    assert json.loads(feed_file(pipeline, "latest.json").read_text())["snapshot_date"] == "2026-03-05"
    meta = result.asset_materializations_for_node("reelevant_datasource")[0].metadata
    assert meta["latest_updated"].value is False and meta["latest_date"].value == "2026-03-05"

    # Re-running the newest day (corrected export) does replace latest.
    pipeline.write_accounts("2026-03-05", [account("C1", points=550)])
    pipeline.run("2026-03-05")
    assert records(feed_file(pipeline, "latest.jsonl"))["C1"]["points_balance"] == 550
    assert records(feed_file(pipeline, "2026-03-03.jsonl"))["C1"]["points_balance"] == 300  # untouched
    # Re-running a day reproduces its bytes exactly.
    again = feed_file(pipeline, "2026-03-03.jsonl").read_bytes()
    pipeline.run("2026-03-03")
    assert feed_file(pipeline, "2026-03-03.jsonl").read_bytes() == again


def test_a_failure_mid_write_replaces_nothing(pipeline: Pipeline, tmp_path: Path):
    pipeline.write_accounts(DAY, [account(f"C{i:02d}", points=i) for i in range(20)])
    pipeline.run(DAY)
    out = pipeline.outbound / "reelevant"
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    program = load_program(DEFAULT_PROGRAM)
    con = connect(pipeline.warehouse)
    try:
        prepare(con, program)
        con.execute("UPDATE snapshots SET points_balance = 1000 + points_balance")  # new content...
        con.execute("UPDATE snapshots SET lifetime_points = -1 WHERE customer_id = 'C17'")  # ...invalid late
        with pytest.raises(FeedError, match=r"record 18 .*C17.*lifetime_points: Input should be greater"):
            write_feed(con, dt.date.fromisoformat(DAY), program, out, batch_rows=2)  # 8 batches written
    finally:
        con.close()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # same files, same bytes, no temp


def test_a_reader_sees_the_old_file_or_the_new_one_never_a_partial_one(tmp_path: Path):
    target = tmp_path / "feed.jsonl"
    target.write_bytes(b"old\n")
    with atomic_file(target) as fh:
        fh.write(b"new first half\n")
        fh.flush()
        assert target.read_bytes() == b"old\n"
    assert target.read_bytes() == b"new first half\n"

    with pytest.raises(RuntimeError), atomic_file(target) as fh:
        fh.write(b"doomed")
        raise RuntimeError("crash while writing")
    assert target.read_bytes() == b"new first half\n"
    assert os.listdir(tmp_path) == ["feed.jsonl"]

    # A reader polling while the file is rewritten many times only ever sees complete versions.
    versions = {(b"%d\n" % n) * 50_000 for n in range(10)}
    seen: set[bytes] = set()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.add(target.read_bytes())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(5):
            for n in range(10):
                with atomic_file(target) as fh:
                    for _ in range(50_000):
                        fh.write(b"%d\n" % n)
    finally:
        stop.set()
        reader.join()
    assert seen - {b"new first half\n"} <= versions and len(seen) > 1


def test_no_snapshot_and_unknown_tiers_fail_with_a_message(pipeline: Pipeline, tmp_path: Path):
    pipeline.write_accounts(DAY, [account("C1", tier="Silver")])
    pipeline.run(DAY)
    program = load_program(DEFAULT_PROGRAM)
    con = connect(pipeline.warehouse)
    try:
        prepare(con, program)
        with pytest.raises(FeedError, match="no snapshot for 2026-03-11"):
            write_feed(con, dt.date(2026, 3, 11), program, tmp_path / "out")
        con.execute("UPDATE snapshots SET tier = 'Diamond'")  # a tier program.yaml no longer has
        with pytest.raises(FeedError, match=r"\['Diamond'\] are not in program.yaml"):
            write_feed(con, dt.date.fromisoformat(DAY), program, tmp_path / "out")
    finally:
        con.close()
    assert not list((tmp_path / "out").iterdir())


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from loyalty_pipeline.outbound.reelevant.feed import atomic_file
    with atomic_file(Path(sys.argv[1])) as fh:
        fh.write(b'{"customer_id": "half a line')
        fh.flush()
        print("writing", flush=True)
        time.sleep(120)
""")


def start_writer(target: Path) -> subprocess.Popen:
    """A real process inside atomic_file, writing `target`, until it is killed."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    return proc


@pytest.mark.real  # a writer process killed with SIGKILL
def test_a_writer_killed_mid_write_leaves_a_temp_file_the_next_write_removes(pipeline: Pipeline):
    out = pipeline.outbound / "reelevant"
    out.mkdir(parents=True)
    live = start_writer(out / "2026-03-09.jsonl")
    live_temp = set(os.listdir(out))
    killed = start_writer(out / f"{DAY}.jsonl")
    try:
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(timeout=30)
        [left] = set(os.listdir(out)) - live_temp
        assert left.startswith(f".{DAY}.jsonl.") and left.endswith(".tmp") and len(live_temp) == 1

        pipeline.write_accounts(DAY, [account("C1")])
        result = pipeline.run(DAY)

        # The killed writer's file is gone; a live writer's is never touched.
        assert set(os.listdir(out)) == {f"{DAY}.jsonl", "latest.json", "latest.jsonl", *live_temp}
        [feed] = [e.materialization for e in result.get_asset_materialization_events()
                  if e.asset_key.to_user_string() == "reelevant_datasource"]
        assert feed.metadata["leftovers_removed"].value == 1
    finally:
        live.kill()
        live.wait(timeout=30)


def test_the_bench_writes_under_a_folder_with_a_quote(tmp_path: Path):
    root = tmp_path / "o'brien [1]"
    root.mkdir()
    make_snapshot(root / "bench.duckdb", 50)
    result = run_mode("copy", root / "bench.duckdb", root)
    assert result["rows"] == 50 and (root / "copy.jsonl").exists()
