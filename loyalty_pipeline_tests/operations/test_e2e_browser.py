"""The Dagster UI in headless Chromium (Debian's `chromium`): the asset graph and the daily partitions
are shown. Screenshots go to $SCREENSHOT_DIR (default /tmp/loyalty-ui-screenshots; `-s` prints them)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import dagster as dg
import pytest

from loyalty_pipeline.definitions import build_defs
from loyalty_pipeline.defs.resources import OutboundResource, ProgramResource, WarehouseResource
from loyalty_pipeline_tests.harness import DEFAULT_PROGRAM, account, day
from loyalty_pipeline_tests.operations.servers import DagsterServers

NO_NUX = "nux:\n  enabled: false\n"   # no "join the community" dialog over the page


def chromium() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary:
        return binary
    if os.environ.get("CI"):
        pytest.fail("chromium is missing in CI: .ci/run installs Debian's `chromium` (apt-get, as root)")
    pytest.skip("chromium is not installed: `apt-get install --no-install-recommends chromium` to run this test")


def browse(url: str, profile: Path, *, screenshot: Path | None = None, budget_ms: int = 20000,
           window: str = "1400,900") -> str:
    """The page's DOM after its scripts ran (and a screenshot, if asked)."""
    args = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
            f"--window-size={window}"]
    args += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    proc = subprocess.run([*args, url], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def materialize_two_days(root: Path, home: Path) -> None:
    exports = root / "exports"
    for offset, points in ((0, 100), (1, 1500)):
        folder = exports / day(offset)
        folder.mkdir(parents=True)
        row = account("C1", points=points, tier="Silver" if points >= 1000 else "Bronze")
        (folder / "accounts.csv").write_text(",".join(row) + "\n" + ",".join(str(v) for v in row.values()) + "\n")
    defs = build_defs({
        "program": ProgramResource(program_path=str(DEFAULT_PROGRAM), exports_dir=str(exports)),
        "warehouse": WarehouseResource(path=str(root / "warehouse" / "loyalty.duckdb")),
        "outbound": OutboundResource(dir=str(root / "outbound"))})
    job = defs.resolve_job_def("daily_job")
    keys = (dg.AssetSelection.all() - dg.AssetSelection.groups("shopimind")).resolve(defs.resolve_asset_graph())
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        for offset in (0, 1):
            result = job.execute_in_process(partition_key=day(offset), instance=instance, raise_on_error=False,
                                            asset_selection=list(keys & job.asset_layer.executable_asset_keys))
            assert result.success
    finally:
        instance.dispose()


def test_the_ui_shows_the_asset_graph_and_the_daily_partitions(tmp_path: Path):
    chromium()
    with DagsterServers(tmp_path, {"LOYALTY_EXPORTS_DIR": str(tmp_path / "exports"),
                                   "LOYALTY_WAREHOUSE": str(tmp_path / "warehouse" / "loyalty.duckdb")},
                        extra_yaml=NO_NUX) as servers:
        materialize_two_days(tmp_path, servers.home)
        servers.start_webserver()
        lineage = f"{servers.url}/assets/shopimind_events?view=lineage&lineageScope=upstream&lineageDepth=10"
        partitions = f"{servers.url}/assets/loyalty_snapshot?view=partitions"
        # Wide enough for the graph to draw full asset nodes (checks, partitions) rather than a zoomed-out outline.
        graph_dom = browse(lineage, tmp_path / "profile", window="2200,1000")
        partitions_dom = browse(partitions, tmp_path / "profile")
        # One partition's page: its materialization and metadata (the list itself is virtualised).
        one_day_dom = browse(f"{partitions}&partition={day(1)}", tmp_path / "profile")
        out = Path(os.environ.get("SCREENSHOT_DIR", Path(tempfile.gettempdir()) / "loyalty-ui-screenshots"))
        out.mkdir(parents=True, exist_ok=True)
        shots = {name: out / f"{name}.png" for name in ("asset_graph", "partitions")}
        for old in shots.values():
            old.unlink(missing_ok=True)
        browse(lineage, tmp_path / "profile", screenshot=shots["asset_graph"], window="2200,1000")
        browse(partitions, tmp_path / "profile", screenshot=shots["partitions"])

    for asset in ("loyalty_export", "loyalty_snapshot", "account_deltas", "loyalty_events", "shopimind_events"):
        assert asset in graph_dom, f"{asset} not in the lineage graph"
    for group in ("ingest", "snapshots", "events", "shopimind"):
        assert f">{group}<" in graph_dom
    assert re.search(r">\d{3,} partitions<", graph_dom), "the daily assets' partition counts are not shown"
    text = re.sub(r"<[^>]+>", " ", partitions_dom)
    assert re.search(r"\d{3,} Partitions Selected", text), "no daily partitions listed"
    assert re.search(r"Materialized\s*\(\s*2\s*\)", text), "the two materialized days are not shown"
    one_day = re.sub(r"<[^>]+>", " ", one_day_dom)
    assert day(1) in one_day and "quarantine_preview" in one_day and "members" in one_day
    for path in shots.values():
        assert path.stat().st_size > 20_000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        print(f"screenshot: {path}")
