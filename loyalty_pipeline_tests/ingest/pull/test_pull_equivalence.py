"""A pulled day is a dropped day: three fixture days pulled from each platform's stand-in (the vendors'
published objects, fixtures/README.md) give the same snapshots, quarantine, deltas and events as the
same objects written as files by hand, through the real daily steps on a real DuckDB file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from loyalty_pipeline.devtools.standins import LoyaltyLionStandIn, VoucherifyStandIn
from loyalty_pipeline.ingest.pull.run import pull_export
from loyalty_pipeline_tests.ingest.pull import helpers as h

DAYS = [h.D1, h.D2, h.D3]


def test_loyaltylion_pulled_days_are_the_files_written_by_hand(tmp_path: Path):
    with LoyaltyLionStandIn() as api:
        program = h.pull_program(tmp_path / "pulled", "loyaltylion", api.base_url, page_size=3)
        for day in DAYS:
            api.customers = h.objects("loyaltylion", day)
            pulled = pull_export(program, tmp_path / "pulled" / "exports", day, today=day, environ=h.LL_ENV, **h.FAST)
            # The objects as served, one line each in the API's order: byte for byte the hand-written file.
            by_hand = h.as_file(tmp_path / "by_hand" / "exports" / day.isoformat() / "accounts.jsonl", api.customers)
            assert pulled.path.read_bytes() == by_hand.read_bytes()
            manifest = json.loads(pulled.path.with_name("accounts.manifest.json").read_text())
            assert manifest == pulled.manifest and pulled.path.stat().st_mode & 0o777 == 0o644
            assert (manifest["source"], manifest["platform"], manifest["api_version"], manifest["base_url"]) == (
                "api", "loyaltylion", "v2", api.base_url)
            assert (manifest["business_date"], manifest["file"], manifest["rows"], manifest["sha256"]) == (
                day.isoformat(), "accounts.jsonl", len(api.customers), hashlib.sha256(by_hand.read_bytes()).hexdigest())
            assert manifest["listings"] == {"customers": {"pages": -(-len(api.customers) // 3),
                                                          "rows": len(api.customers)}}
            assert manifest["last_cursor"]["customers"] and manifest["started_at"] <= manifest["finished_at"]
    got = h.outcome(tmp_path / "pulled", program, tmp_path / "pulled" / "exports", DAYS, h.D3)
    assert got == h.outcome(tmp_path / "by_hand", program, tmp_path / "by_hand" / "exports", DAYS, h.D3)
    assert got["events"]  # the fixture days do change: there are events to compare


# A root with glob characters: the join reads the staged listings as data, never as a pattern.
@pytest.mark.parametrize(("page_size", "root"), [(2, "pulled"), (100, "pul[l]ed*")])
def test_voucherify_pulled_days_join_customers_and_tiers_as_the_adapter_reads_them(tmp_path: Path, page_size: int,
                                                                                   root: str):
    with VoucherifyStandIn(campaign_id="camp_7s3uXI44aKfIk5IhmeOPr6ic") as api:
        program = h.pull_program(tmp_path / "pulled", "voucherify", api.base_url, page_size=page_size,
                               campaign_id="camp_7s3uXI44aKfIk5IhmeOPr6ic")
        for day in DAYS:
            members = h.objects("voucherify_v1", day)
            api.load(members)
            pulled = pull_export(program, tmp_path / root / "exports", day, today=day, environ=h.VF_ENV, **h.FAST)
            if root != "pulled":
                (tmp_path / "pulled" / "exports" / day.isoformat()).mkdir(parents=True, exist_ok=True)
                pulled.path.replace(tmp_path / "pulled" / "exports" / day.isoformat() / pulled.path.name)
            h.as_file(tmp_path / "by_hand" / "exports" / day.isoformat() / "accounts.jsonl", members)
            # One listing of customers for all members, and one tiers request per member.
            tiers = [r for r in api.served() if r[1].endswith("/tiers")]
            assert len(tiers) == len(members)
            api.requests.clear()
    got = h.outcome(tmp_path / "pulled", program, tmp_path / "pulled" / "exports", DAYS, h.D3)
    assert got == h.outcome(tmp_path / "by_hand", program, tmp_path / "by_hand" / "exports", DAYS, h.D3)
    assert got["events"]
