"""The five analyst queries of docs/analysts.md run against the analysts' catalog of a real pipeline run."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import duckdb

from loyalty_pipeline.devtools.emulator import EMULATOR_API_KEY, Emulator
from loyalty_pipeline.outbound.shopimind.resources import ShopiMindResource
from loyalty_pipeline.program import load_program
from loyalty_pipeline.settings import PROJECT_ROOT
from loyalty_pipeline_tests.harness import DEFAULT_PROGRAM, Pipeline, account
from loyalty_pipeline_tests.operations.helpers import program_with


def documented_queries() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", (PROJECT_ROOT / "docs" / "analysts.md").read_text(), flags=re.S)


def test_the_documented_analyst_queries_answer_from_analytics_duckdb(tmp_path: Path):
    queries = documented_queries()
    assert len(queries) == 5
    yesterday = dt.datetime.now(load_program(DEFAULT_PROGRAM).tz).date() - dt.timedelta(days=1)
    days = [(yesterday - dt.timedelta(days=1)).isoformat(), yesterday.isoformat()]
    with Emulator() as emulator:
        # Day 2's "Diamond" row is quarantined (question 5); tolerated, so that the day is delivered.
        pipe = Pipeline(tmp_path, program_path=program_with(tmp_path, unknown_tier_floor=1),
                        shopimind=ShopiMindResource(api_key=EMULATOR_API_KEY, base_url=emulator.base_url))
        pipe.write_accounts(days[0], [account("C1", points=900), account("C2", points=100, next_expiry_date=days[1],
                                                                       next_expiry_amount=40), account("", points=1)])
        pipe.write_accounts(days[1], [account("C1", points=1200, tier="Silver"), account("C2", points=150),
                                      account("C3", tier="Diamond")])
        for day in days:
            pipe.run(day)

    con = duckdb.connect(str(pipe.warehouse.parent / "analytics.duckdb"), read_only=True)
    try:
        tiers, upgrades, liability, events, quarantine = (con.execute(q).fetchall() for q in queries)
    finally:
        con.close()
    assert [(str(r[0]), *r[1:]) for r in tiers] == [(days[0], 2, 0), (days[1], 1, 1)]   # Bronze, Silver
    assert [(r[1], r[3], r[4]) for r in upgrades] == [("C1", "Bronze", "Silver")]
    assert liability == [("Bronze", 1, 150, 0), ("Silver", 1, 1200, 0)]
    # (type, sent, suppressed, unaddressable, rejected, to_retry, not_sent_yet): C1's upgrade, C1's and C2's
    # points, sent once
    assert events == [("loyalty.points_earned", 2, 0, 0, 0, 0, 0), ("loyalty.tier_upgraded", 1, 0, 0, 0, 0, 0)]
    assert {(str(r[0]), r[2], r[3]) for r in quarantine} == {(days[0], "missing_id", 1), (days[1], "unknown_tier", 1)}
