"""End to end, on the real `dagster-webserver` and `dagster-daemon` (127.0.0.1, temp DAGSTER_HOME, the
ShopiMind emulator on a free port):
- a backfill of missed days launched through the GraphQL API the UI's "Materialize → backfill" uses:
  every day succeeds, in an order that makes each day's deltas compare with the day before, with no
  DuckDB lock error, and every event reaches ShopiMind once;
- the UI in headless Chromium (Debian's `chromium`) shows the asset graph and the daily partitions.
  Screenshots go to $SCREENSHOT_DIR (default /tmp/loyalty-ui-screenshots; `-s` prints the paths).
Both share one webserver and daemon (module fixture) to keep the suite short."""

from __future__ import annotations

import csv
import datetime as dt
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from loyalty_pipeline.devtools.emulator import EMULATOR_API_KEY, Emulator
from loyalty_pipeline.program import load_program
from loyalty_pipeline_tests.harness import ACCOUNT_HEADER, DEFAULT_PROGRAM, account
from loyalty_pipeline_tests.operations.servers import DagsterServers

pytestmark = pytest.mark.real  # dagster-webserver, dagster-daemon and Chromium, in their own processes


def _missed_days() -> list[str]:
    # Up to yesterday in the program's zone: the last partition, so nothing after it joins the backfill
    # (a backfill also recomputes the next day's deltas, through the day-before mapping: README).
    yesterday = dt.datetime.now(load_program(DEFAULT_PROGRAM).tz).date() - dt.timedelta(days=1)
    return [(yesterday - dt.timedelta(days=n)).isoformat() for n in (2, 1, 0)]


DAYS = _missed_days()
NO_NUX = "nux:\n  enabled: false\n"   # no "join the community" dialog over the pages
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


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Exports of three missed days, the emulator, and the webserver + daemon pointed at them."""
    root = tmp_path_factory.mktemp("e2e")
    exports, warehouse = root / "exports", root / "warehouse" / "loyalty.duckdb"
    write_exports(exports)
    with Emulator() as emulator:
        env = {"LOYALTY_EXPORTS_DIR": str(exports), "LOYALTY_WAREHOUSE": str(warehouse),
               "LOYALTY_OUTBOUND_DIR": str(root / "outbound"),
               "SHOPIMIND_BASE_URL": emulator.base_url, "SHOPIMIND_API_KEY": EMULATOR_API_KEY}
        with DagsterServers(root, env, extra_yaml=NO_NUX) as servers:
            started = time.monotonic()
            servers.start_daemon()
            servers.start_webserver()
            print(f"webserver ready after {time.monotonic() - started:.0f}s")
            yield servers, emulator, warehouse


def test_backfill_of_missed_days_through_the_webserver(site):
    servers, emulator, warehouse = site
    started = time.monotonic()
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
    try:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        logs = "\n".join(servers.log(name) for name in ("daemon", "webserver"))
        for run in runs:
            logs += "\n".join(str(e.user_message) + str(e.dagster_event and e.dagster_event.event_specific_data)
                              for e in instance.all_logs(run.run_id))
        daily = [k for k in keys if k["path"][0] != "shopimind_setup"]
        materialized = {k["path"][0]: instance.get_materialized_partitions(dg.AssetKey(k["path"]))
                        for k in daily}
        freshness = {k["path"][0]: instance.get_latest_asset_check_evaluation_record(
            dg.AssetCheckKey(dg.AssetKey(k["path"]), "freshness_check")) for k in daily}
    finally:
        instance.dispose()
    history = emulator.state()["histories"]

    assert runs and {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
    assert not [m for m in LOCK_MARKERS if m in logs]
    assert materialized == {k["path"][0]: set(DAYS) for k in daily}
    # The backfill runs the freshness checks of its assets too; they judge the partition expected now,
    # so once the missed days up to yesterday are in, every daily asset is fresh.
    assert {asset: record and record.status.value for asset, record in freshness.items()} == {
        asset: "SUCCEEDED" for asset in freshness}
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


# -- the UI in a browser -------------------------------------------------------------------------------------

def chromium() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary:
        return binary
    if os.environ.get("CI"):
        pytest.fail("chromium is missing in CI: .ci/run installs Debian's `chromium` (apt-get, as root)")
    pytest.skip("chromium is not installed: `apt-get install --no-install-recommends chromium` to run this test")


def browse(url: str, profile: Path, *, screenshot: Path | None = None, window: str = "1400,900") -> str:
    """The page's DOM once its scripts ran (virtual time does not advance while requests are pending)."""
    args = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--virtual-time-budget=20000",
            f"--window-size={window}"]
    args += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    proc = subprocess.run([*args, url], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_the_ui_shows_the_asset_graph_and_the_daily_partitions(site, tmp_path: Path):
    chromium()
    servers = site[0]
    instance = dg.DagsterInstance.from_config(str(servers.home))
    try:   # 3 after the backfill test; whatever it is, the UI must say the same
        done = sorted(instance.get_materialized_partitions(dg.AssetKey("loyalty_snapshot")))
    finally:
        instance.dispose()
    profile = tmp_path / "profile"
    lineage = f"{servers.url}/assets/shopimind_events?view=lineage&lineageScope=upstream&lineageDepth=10"
    partitions = f"{servers.url}/assets/loyalty_snapshot?view=partitions"
    # Wide enough for the graph to draw full asset nodes (checks, partitions), not a zoomed-out outline.
    graph_dom = browse(lineage, profile, window="2200,1000")
    partitions_text = re.sub(r"<[^>]+>", " ", browse(partitions, profile))
    out = Path(os.environ.get("SCREENSHOT_DIR", Path(tempfile.gettempdir()) / "loyalty-ui-screenshots"))
    out.mkdir(parents=True, exist_ok=True)
    shots = {"asset_graph": out / "asset_graph.png", "partitions": out / "partitions.png"}
    for old in shots.values():
        old.unlink(missing_ok=True)
    browse(lineage, profile, screenshot=shots["asset_graph"], window="2200,1000")
    browse(partitions, profile, screenshot=shots["partitions"])

    for asset in ("loyalty_export", "loyalty_snapshot", "account_deltas", "loyalty_events", "shopimind_events"):
        assert asset in graph_dom, f"{asset} not in the lineage graph"
    for group in ("ingest", "snapshots", "events", "shopimind"):
        assert f">{group}<" in graph_dom
    assert re.search(r">\d{3,} partitions<", graph_dom), "the daily assets' partition counts are not shown"
    assert re.search(r"\d{3,} Partitions Selected", partitions_text), "no daily partitions listed"
    assert re.search(rf"Materialized\s*\(\s*{len(done)}\s*\)", partitions_text), partitions_text[-3000:]
    if done:   # one partition's page: its materialization and metadata (the list itself is virtualised)
        one_day = re.sub(r"<[^>]+>", " ", browse(f"{partitions}&partition={done[-1]}", profile))
        assert done[-1] in one_day and "quarantine_preview" in one_day and "members" in one_day
    for path in shots.values():
        assert path.stat().st_size > 20_000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        print(f"screenshot: {path}")
