"""End to end: the real webserver and daemon; a backfill of missed days launched through the GraphQL
API the UI's "Materialize → backfill" uses. Every day succeeds, in an order that makes each day's
deltas compare with the day before, with no DuckDB lock error, and every event reaches ShopiMind once."""

from __future__ import annotations

import csv
import datetime as dt
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import duckdb

from loyalty_pipeline.program import load_program
from loyalty_pipeline.shopimind.emulator import EMULATOR_API_KEY, Emulator
from loyalty_pipeline_tests.harness import ACCOUNT_HEADER, DEFAULT_PROGRAM, account
from loyalty_pipeline_tests.operations.servers import DagsterServers


def _missed_days() -> list[str]:
    # Up to yesterday in the program's zone: the last partition, so nothing after it joins the backfill
    # (a backfill also recomputes the next day's deltas, through the day-before mapping: README).
    yesterday = dt.datetime.now(load_program(DEFAULT_PROGRAM).tz).date() - dt.timedelta(days=1)
    return [(yesterday - dt.timedelta(days=n)).isoformat() for n in (2, 1, 0)]


DAYS = _missed_days()
LOCK_MARKERS = ("Could not set lock", "Conflicting lock", "is locked by another process")

LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
  }
}"""
STATUS = """
query Status($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status numPartitions }
    ... on Error { message }
  }
}"""
ASSETS = "{ assetNodes { assetKey { path } isPartitioned } }"


def write_exports(root: Path) -> None:
    members = {f"C{i:02}": 100 + 10 * i for i in range(30)}
    for offset, partition in enumerate(DAYS):
        if offset == 1:
            members |= {"C01": 1200, "C02": 1300}           # two upgrades to Silver
        if offset == 2:
            members |= {"C03": 5200, "C04": members["C04"] + 60}   # Gold, and some points
        folder = root / partition
        folder.mkdir(parents=True)
        with (folder / "accounts.csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=ACCOUNT_HEADER, extrasaction="ignore", lineterminator="\n")
            writer.writeheader()
            tiers = ((5000, "Gold"), (1000, "Silver"), (0, "Bronze"))
            writer.writerows(account(cid, points=p, tier=next(t for floor, t in tiers if p >= floor))
                             for cid, p in members.items())


def test_backfill_of_missed_days_through_the_webserver(tmp_path: Path):
    exports, warehouse = tmp_path / "exports", tmp_path / "warehouse" / "loyalty.duckdb"
    write_exports(exports)
    with Emulator() as emulator:
        env = {"LOYALTY_EXPORTS_DIR": str(exports), "LOYALTY_WAREHOUSE": str(warehouse),
               "LOYALTY_OUTBOUND_DIR": str(tmp_path / "outbound"),
               "SHOPIMIND_BASE_URL": emulator.base_url, "SHOPIMIND_API_KEY": EMULATOR_API_KEY}
        with DagsterServers(tmp_path, env) as servers:
            started = time.monotonic()
            servers.start_daemon()
            servers.start_webserver()
            print(f"webserver ready after {time.monotonic() - started:.0f}s")
            # What the UI does: every asset of the graph, a range of partitions.
            keys = [node["assetKey"] for node in servers.graphql(ASSETS)["assetNodes"]]
            launched = servers.graphql(LAUNCH, {"params": {
                "assetSelection": keys, "partitionNames": DAYS, "title": "missed days"}})
            result = launched["launchPartitionBackfill"]
            assert result["__typename"] == "LaunchBackfillSuccess", result
            backfill_id = result["backfillId"]

            deadline, status = time.monotonic() + 300, None
            while time.monotonic() < deadline:
                status = servers.graphql(STATUS, {"id": backfill_id})["partitionBackfillOrError"]
                if status.get("status") not in ("REQUESTED", "CANCELING"):
                    break
                time.sleep(2)
            assert status["status"] == "COMPLETED_SUCCESS", (status, servers.log("daemon"))
            print(f"backfill of {len(DAYS)} days done after {time.monotonic() - started:.0f}s")

            instance = dg.DagsterInstance.from_config(str(servers.home))
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
            logs = "\n".join(servers.log(name) for name in ("daemon", "webserver"))
            for run in runs:
                logs += "\n".join(str(e.user_message) + str(e.dagster_event and e.dagster_event.event_specific_data)
                                  for e in instance.all_logs(run.run_id))
            daily = [k for k in keys if k["path"][0] != "shopimind_setup"]
            materialized = {k["path"][0]: instance.get_materialized_partitions(dg.AssetKey(k["path"]))
                            for k in daily}
            instance.dispose()
        history = emulator.state()["histories"]

    assert runs and {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
    assert not [m for m in LOCK_MARKERS if m in logs]
    assert "Asset check 'done_by_deadline'" not in logs   # freshness is not judged mid-backfill
    assert materialized == {k["path"][0]: set(DAYS) for k in daily}
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        order = con.execute("SELECT DISTINCT snapshot_date::VARCHAR, previous_snapshot_date::VARCHAR "
                            "FROM account_deltas ORDER BY 1").fetchall()
        sent = {k for (k,) in con.execute(
            "SELECT key FROM delivery_state WHERE kind = 'event' AND status = 'sent'").fetchall()}
        upgrades = con.execute("SELECT count(*) FROM loyalty_events WHERE code_name = 'loyalty.tier_upgraded'"
                               ).fetchone()[0]
    finally:
        con.close()
    assert order == [(DAYS[0], None), (DAYS[1], DAYS[0]), (DAYS[2], DAYS[1])]
    keys_sent = Counter(h["payload"]["metaData"]["event_key"] for h in history)
    assert upgrades == 3 and len(sent) >= upgrades
    assert set(keys_sent) == sent and set(keys_sent.values()) == {1}
