"""Outbound of day 2 against the emulator: the pipeline's delivery, a raw httpx loop, and a re-run.

- `outbound_pipeline` (child): bootstrap (definition + event types, timed apart), then
  `deliver_accounts` and `deliver_events` for day 2: what the `shopimind_accounts` and
  `shopimind_events` assets call, with their ledger (in-flight marks, delivery_state, sync_log).
- `outbound_raw` (child): the same payloads (day 2's changed accounts, batches of `batch_size`, and
  day 2's pending events, one request each) rendered by DuckDB and posted by a thread pool sharing
  one `httpx.Client`, at the same concurrency, with no retries, no ledger and no validation; it
  streams from DuckDB as well. Afterwards (not timed) a sample of its payloads is compared with the
  pipeline's rendering of the same rows.
- `rerun` (child): the finished day again, as the first run was measured: the four processing assets
  through Dagster (their checks and publish included; no rebuild forced), then the three ShopiMind
  assets (what a re-run of the day's job does); the orchestrator counts requests.

The emulator runs in its own process (emulator_proc), a fresh one for the pipeline and for the raw
loop, so both start from the same empty state; its CPU use is reported: one uvicorn event loop
behind one lock, it can be the bottleneck of both.
"""

from __future__ import annotations

import json
import resource
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import duckdb
import httpx

from ...outbound.shopimind.accounts import AccountRow, account_record, deliver_accounts
from ...outbound.shopimind.assets import event_types
from ...outbound.shopimind.resources import ShopiMindResource
from ...outbound.shopimind.setup import ensure_definition, ensure_event_types, ensure_setup_cached
from ...outbound.shopimind.triggers import EventRow, deliver_events, trigger_body
from ...program import load_program
from ...settings import program_path
from ...warehouse.connection import connect
from ..emulator import EMULATOR_API_KEY
from .common import DAY2, Peak, measured, timed
from .processing import (
    PROCESSING_ASSETS,
    asset_job,
    bench_resources,
    copy_warehouse,
    discard,
    failures,
    run_details,
    run_job,
)

OUTBOUND_ASSETS = ("shopimind_setup", "shopimind_accounts", "shopimind_events")


def resource_for(args: dict) -> ShopiMindResource:
    return ShopiMindResource(api_key=EMULATOR_API_KEY, base_url=args["base_url"], concurrency=args["concurrency"],
                             batch_size=args["batch_size"], requests_per_second=args["rps"], deadline_s=6 * 3600.0)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _bootstrap(shopimind: ShopiMindResource) -> int:
    """The raw loop's emulator gets the same definition and event types (no ledger, not timed)."""
    with shopimind.client() as client:
        id_definition, _ = ensure_definition(client)
        ensure_event_types(client, event_types(load_program(program_path())))
    return id_definition


def outbound_pipeline(args: dict) -> dict:
    db = copy_warehouse(Path(args["db"]), Path(args["work"]) / f"outbound-{args['tag']}")
    shopimind = resource_for(args)
    program = load_program(program_path())
    settings = shopimind.settings(program.max_event_age_days)
    peak, out = Peak(), {}
    con = connect(db)
    try:
        # The baseline push of day 1 was recorded for the emulator's address at setup time. On a connection
        # of its own: rewriting every member's row would leave its blocks in the measured one's memory.
        con.execute("UPDATE account_sync_state SET destination = $d", {"d": shopimind.destination})
    finally:
        con.close()
    con = connect(db)  # as the assets open the warehouse
    try:
        with shopimind.client() as client:
            # What the shopimind_setup asset does: recorded with its hashes, so a re-run sends nothing.
            with measured(peak, out, "setup") as m:
                setup = ensure_setup_cached(con, client, shopimind.destination, event_types(program))
                m["requests"] = setup.requests
            id_definition, requests_before = setup.definition_id, client.stats["requests"]
            cpu = _cpu_s()
            with measured(peak, out, "accounts") as m:
                stats = deliver_accounts(con, client, DAY2, shopimind.destination, id_definition, settings)
                m.update(actions=stats["actions"], final=stats["final"], records=stats["final"].get("sent", 0),
                         not_attempted=stats["not_attempted"],
                         client_requests=client.stats["requests"] - requests_before)
            m["client_cpu_s"] = round(_cpu_s() - cpu, 2)
            requests_before = client.stats["requests"]
            cpu = _cpu_s()
            with measured(peak, out, "events") as m:
                stats = deliver_events(con, client, DAY2, shopimind.destination, settings)
                final = Counter()
                for (status, _), n in stats["final"].items():
                    final[status] += n
                m.update(actions={f"{a}/{c}": n for (a, c), n in stats["actions"].items()}, final=dict(final),
                         events=final.get("sent", 0), not_attempted=stats["not_attempted"],
                         client_requests=client.stats["requests"] - requests_before)
            m["client_cpu_s"] = round(_cpu_s() - cpu, 2)
            out["client_stats"] = dict(client.stats)
    finally:
        con.close()
    out["db"] = str(db)
    return out


# -- the raw loop ---------------------------------------------------------------------------------

RAW_ACCOUNTS = """
SELECT s.customer_id,
       to_json({'contact_id': {'by': 'id_customer', 'value': s.customer_id}, 'points_balance': s.points_balance,
                'tier': coalesce(s.tier, ''), 'tier_since': s.tier_since, 'next_expiry_date': s.next_expiry_date,
                'next_expiry_amount': s.next_expiry_amount, 'customer_id': s.customer_id})::VARCHAR AS record
FROM snapshots s LEFT JOIN account_sync_state a ON a.customer_id = s.customer_id
WHERE s.snapshot_date = $day AND s.enrolled
  AND (a.customer_id IS NULL
       OR (s.points_balance, coalesce(s.tier, ''), s.tier_since, s.next_expiry_date, s.next_expiry_amount)
          IS DISTINCT FROM (a.points_balance, a.tier, a.tier_since, a.next_expiry_date, a.next_expiry_amount))
ORDER BY s.customer_id"""

RAW_EVENTS = """
SELECT event_key, code_name,
       '{"contact":' || json_object('email', email)
       || ',"metaData":' || json_merge_patch(metadata, json_object('event_key', event_key)) || '}' AS body
FROM loyalty_events  -- without an email an event is unaddressable: the pipeline does not send it either
WHERE snapshot_date = $day AND status = 'pending' AND coalesce(email, '') <> ''
ORDER BY code_name, event_key"""


class RawSender:
    """Posts bodies with `concurrency` threads and one httpx.Client; at most 2 x concurrency queued."""

    def __init__(self, base_url: str, concurrency: int) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=httpx.Timeout(30.0, connect=5.0),
                                 headers={"spm-api-key": EMULATOR_API_KEY, "Content-Type": "application/json",
                                          "Accept": "application/json"},
                                 limits=httpx.Limits(max_connections=concurrency + 2,
                                                     max_keepalive_connections=concurrency + 2))
        self.concurrency = concurrency
        self.statuses: Counter = Counter()
        self.lock = threading.Lock()

    def _post(self, slots: threading.BoundedSemaphore, path: str, body: bytes) -> None:
        try:
            status: int | str = self.http.post(path, content=body).status_code
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        finally:
            slots.release()
        with self.lock:
            self.statuses[status] += 1

    def send_all(self, requests) -> None:
        slots = threading.BoundedSemaphore(self.concurrency * 2)
        with ThreadPoolExecutor(self.concurrency) as pool:
            for path, body in requests:
                slots.acquire()
                pool.submit(self._post, slots, path, body)

    def close(self) -> None:
        self.http.close()


def _stream(con: duckdb.DuckDBPyConnection, query: str, size: int):
    cursor = con.cursor()
    cursor.execute(query, {"day": DAY2})
    while rows := cursor.fetchmany(size):
        yield rows
    cursor.close()


def outbound_raw(args: dict) -> dict:
    shopimind = resource_for(args)
    id_definition = _bootstrap(shopimind)  # the same emulator state as the pipeline's: not timed
    batch = args["batch_size"]
    con = duckdb.connect(args["db"], read_only=True)
    peak, out = Peak(), {}
    sender = RawSender(shopimind.destination, args["concurrency"])
    try:
        counted = Counter()

        def account_requests():
            path = f"/v1/custom-data-records/{id_definition}"
            for rows in _stream(con, RAW_ACCOUNTS, batch * 64):
                for i in range(0, len(rows), batch):
                    chunk = rows[i:i + batch]
                    counted["records"] += len(chunk)
                    yield path, ("[" + ",".join(r[1] for r in chunk) + "]").encode()

        def event_requests():
            for rows in _stream(con, RAW_EVENTS, 2048):
                for _, code_name, body in rows:
                    counted["events"] += 1
                    yield f"/v1/events/trigger/{quote(code_name, safe='')}", body.encode()

        cpu = _cpu_s()
        with measured(peak, out, "accounts") as m:
            sender.send_all(account_requests())
            m.update(records=counted["records"], statuses={str(k): v for k, v in sender.statuses.items()})
        m["client_cpu_s"] = round(_cpu_s() - cpu, 2)
        sender.statuses.clear()
        cpu = _cpu_s()
        with measured(peak, out, "events") as m:
            sender.send_all(event_requests())
            m.update(events=counted["events"], statuses={str(k): v for k, v in sender.statuses.items()})
        m["client_cpu_s"] = round(_cpu_s() - cpu, 2)
        out["payloads_equal"] = same_payloads(con, args.get("sample", 200))
    finally:
        sender.close()
        con.close()
    return out


def same_payloads(con: duckdb.DuckDBPyConnection, sample: int) -> dict:
    """The raw loop's JSON equals the pipeline's rendering (pydantic models) of the same rows."""
    accounts = con.execute(
        f"SELECT r.record, s.customer_id, s.snapshot_date, s.points_balance, coalesce(s.tier, ''), s.tier_since, "
        f"s.next_expiry_date, s.next_expiry_amount, NULL FROM ({RAW_ACCOUNTS} LIMIT $n) r JOIN snapshots s "
        "ON s.snapshot_date = $day AND s.customer_id = r.customer_id", {"day": DAY2, "n": sample}).fetchall()
    events = con.execute(
        f"SELECT r.body, e.event_key, e.snapshot_date, e.customer_id, e.email, e.code_name, e.metadata "
        f"FROM ({RAW_EVENTS}) r JOIN loyalty_events e USING (event_key) USING SAMPLE {sample} ROWS",
        {"day": DAY2}).fetchall()
    bad_accounts = sum(json.loads(r[0]) != account_record(AccountRow._make(r[1:])) for r in accounts)
    bad_events = sum(json.loads(r[0]) != json.loads(trigger_body(EventRow._make(r[1:]))) for r in events)
    return {"accounts_checked": len(accounts), "accounts_different": bad_accounts,
            "events_checked": len(events), "events_different": bad_events,
            "equal": bad_accounts == 0 and bad_events == 0 and len(accounts) + len(events) > 0}


# -- re-running the finished day ------------------------------------------------------------------

def rerun(args: dict) -> dict:
    """Day 2 again on the warehouse its first run left: the processing assets, then the outbound ones."""
    import dagster as dg

    db = Path(args["db"])
    peak, out = Peak(), {}
    job = asset_job(bench_resources(args, db), PROCESSING_ASSETS, "bench_processing")
    # As for the first run (processing.py): the process's first Dagster instance is made before the timer.
    instance, out["instance_s"] = timed(dg.DagsterInstance.ephemeral)
    with measured(peak, out, "processing") as m:
        result = run_job(job, DAY2, instance=instance)
    if not result.success:
        raise RuntimeError(f"re-running the processing of {DAY2} failed: {failures(result)}")
    m.update(run_details(result))
    job = asset_job(bench_resources(args, db, resource_for(args)), OUTBOUND_ASSETS, "bench_outbound")
    with measured(peak, out, "outbound") as m:
        result = run_job(job, DAY2, instance=instance)
        m["success"] = result.success
    m["failures"] = failures(result)
    if args.get("remove_db", True):
        discard(db)
    return out

