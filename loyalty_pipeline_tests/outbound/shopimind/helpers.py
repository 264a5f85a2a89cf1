"""Delivery scenario helpers: a pipeline wired to an emulator, and what the emulator holds."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import dagster as dg

from loyalty_pipeline.devtools.emulator import Emulator
from loyalty_pipeline.outbound.shopimind.resources import KEY_ENV, ShopiMindResource
from loyalty_pipeline_tests.harness import Pipeline, failure_messages

# Fast, patient settings for tests: tiny backoffs, no wait for histories (the emulator lists at once).
# slice_members: every scenario selects its accounts and departures in slices of 2 members (a handful of
# slices), so a selection that loses, repeats or reorders a member between slices fails them.
FAST = {"backoff_base_s": 0.01, "backoff_max_s": 0.05, "history_visibility_s": 0.0, "deadline_s": 120.0,
        "slice_members": 2}
TRIGGER_ROUTE = "POST /v1/events/trigger/{code_name}"
RECORDS_ROUTE = "POST /v1/custom-data-records/{id}"


def shopimind_for(emulator: Emulator, **overrides) -> ShopiMindResource:
    """The resource as deployed: the key through dg.EnvVar (the caller sets the variable)."""
    return ShopiMindResource(api_key=dg.EnvVar(KEY_ENV), base_url=emulator.base_url, **{**FAST, **overrides})


def delivery_pipeline(root: Path, emulator: Emulator, *, today: str, **overrides) -> Pipeline:
    return Pipeline(root, today=today, shopimind=shopimind_for(emulator, **overrides))


def history_keys(emulator: Emulator) -> Counter:
    """How many times ShopiMind recorded each event_key."""
    return Counter(h["payload"]["metaData"].get("event_key") for h in emulator.state()["histories"])


def records_by_customer(emulator: Emulator) -> dict[str, list[tuple]]:
    """LoyaltyAccount rows per shop customer id (the emulator stores the resolved contact id)."""
    state = emulator.state()
    customers = {c["id_contact"]: c.get("id_customer") for c in state["contacts"]}
    out: dict[str, list[tuple]] = {}
    for rows in state["records"].values():
        for r in rows:
            out.setdefault(customers[r["contact_id"]], []).append(
                (r["points_balance"], r["tier"], r["tier_since"], r["next_expiry_date"], r["next_expiry_amount"]))
    return out


def expected_records(pipeline: Pipeline, day: str) -> dict[str, list[tuple]]:
    rows = pipeline.query(
        "SELECT customer_id, points_balance, coalesce(tier, ''), tier_since::VARCHAR, next_expiry_date::VARCHAR, "
        "next_expiry_amount FROM snapshots WHERE snapshot_date = $day AND enrolled", {"day": day})
    return {r[0]: [tuple(r[1:])] for r in rows}


def pending_keys(pipeline: Pipeline) -> Counter:
    return Counter(k for (k,) in pipeline.query("SELECT event_key FROM loyalty_events WHERE status = 'pending'"))


def route_calls(emulator: Emulator, route: str) -> int:
    return emulator.state()["requests"].get(route, {}).get("total", 0)


def run_until_settled(pipeline: Pipeline, day: str, attempts: int = 6) -> int:
    """Re-run a day until it succeeds, as ops (or the next schedule tick) would; returns the runs made."""
    for n in range(1, attempts + 1):
        result = pipeline.run(day, expect_success=False)
        if result.success:
            return n
    raise AssertionError(f"{day} still failing after {attempts} runs:\n{failure_messages(result)}")


def materialization(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == asset]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def next_day(day: str, n: int = 1) -> str:
    return (dt.date.fromisoformat(day) + dt.timedelta(days=n)).isoformat()
