"""What a pull survives (429 with Retry-After, 5xx, a dropped connection) and what stops it, writing no
export: a cursor loop, a listing that never ends (the deadline), an API that stays down; resuming
within the day, and only within it; today only; a dropped export kept. Real HTTP on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest

from loyalty_pipeline.devtools.standins import LoyaltyLionStandIn, VoucherifyStandIn
from loyalty_pipeline.ingest.pull.client import PullError
from loyalty_pipeline.ingest.pull.run import pull_export
from loyalty_pipeline.ingest.pull.staging import CHECKPOINT, Staging, staging_name
from loyalty_pipeline_tests.ingest.pull.helpers import D1, D2, FAST, LL_ENV, VF_ENV, as_file, objects, pull_program

CUSTOMERS = objects("loyaltylion", D2)  # 8 published customer objects


def customers(n: int) -> list[dict]:
    """n customer objects: the published ones again with new ids (keys and nesting untouched)."""
    return [{**CUSTOMERS[i % len(CUSTOMERS)], "id": 9000 + i, "merchant_id": str(70000 + i)} for i in range(n)]


@pytest.fixture
def api():
    with LoyaltyLionStandIn(CUSTOMERS) as stand_in:
        yield stand_in


def export_of(root: Path, day: dt.date) -> Path:
    return root / "exports" / day.isoformat() / "accounts.jsonl"


def test_throttling_server_errors_and_a_dropped_connection_are_retried(tmp_path: Path, api: LoyaltyLionStandIn):
    program = pull_program(tmp_path, "loyaltylion", api.base_url, page_size=3)
    api.inject("429", "500", "drop", "503", "429")
    start = time.monotonic()
    pulled = pull_export(program, tmp_path / "exports", D2, today=D2, environ=LL_ENV, **FAST)
    assert pulled.manifest["requests"] == 3 + 5  # three pages, five faults
    assert time.monotonic() - start >= 2 * api.retry_after_s  # both 429s waited their Retry-After
    assert export_of(tmp_path, D2).read_bytes() == as_file(tmp_path / "by_hand.jsonl", CUSTOMERS).read_bytes()


def test_a_cursor_loop_stops_the_pull_naming_the_page_and_writes_nothing(tmp_path: Path, api: LoyaltyLionStandIn):
    api.customers, api.loop = customers(20), True
    program = pull_program(tmp_path, "loyaltylion", api.base_url, page_size=3)
    with pytest.raises(PullError, match=r"page 2 of the customers listing: .*cursor of a page already read.*no export"):
        pull_export(program, tmp_path / "exports", D2, today=D2, environ=LL_ENV, **FAST)
    assert not export_of(tmp_path, D2).exists() and not export_of(tmp_path, D2).with_suffix(".manifest.json").exists()


def test_a_listing_that_never_ends_stops_at_the_deadline_and_writes_nothing(tmp_path: Path, api: LoyaltyLionStandIn):
    api.endless = True  # every page names a next one, with new cursors: only the deadline can stop it
    program = pull_program(tmp_path, "loyaltylion", api.base_url, page_size=3, deadline_minutes=0.02)
    start = time.monotonic()
    with pytest.raises(PullError, match=r"stopped at page \d+ of GET /v2/customers: run deadline reached"):
        pull_export(program, tmp_path / "exports", D2, today=D2, environ=LL_ENV, **FAST)
    assert time.monotonic() - start < 1.2 + 1.0
    assert len(api.requests) > 10 and not export_of(tmp_path, D2).exists()


def test_an_api_that_stays_down_fails_the_pull_and_the_next_pull_today_resumes(tmp_path: Path, api: LoyaltyLionStandIn):
    api.customers = customers(10)
    program = pull_program(tmp_path, "loyaltylion", api.base_url, page_size=3)
    api.down_after = 2  # pages 1 and 2 served, then 503 and 503 again
    with pytest.raises(PullError, match=r"stopped at page 3 of GET /v2/customers: .*Service unavailable.*"
                                        r"no export was written \(the 2 pages read are kept"):
        pull_export(program, tmp_path / "exports", D2, today=D2, environ=LL_ENV, max_retries=2, **FAST)
    assert not export_of(tmp_path, D2).exists()
    staged = tmp_path / "exports" / D2.isoformat() / staging_name("accounts")
    assert json.loads((staged / CHECKPOINT).read_text())["phases"]["customers"]["pages"] == 2

    api.down_after = None
    api.requests.clear()
    pulled = pull_export(program, tmp_path / "exports", D2, today=D2, environ=LL_ENV, **FAST)
    assert pulled.manifest["resumed"] is True
    assert [r[2].get("cursor") is None for r in api.requests] == [False, False]  # pages 3 and 4 only
    assert export_of(tmp_path, D2).read_bytes() == as_file(tmp_path / "by_hand.jsonl", api.customers).read_bytes()
    assert not staged.exists()


class Killed(BaseException):
    """The process dying at that point: nothing after it runs (its flock goes with it, as here)."""


def test_a_pull_killed_after_publishing_leaves_the_next_pull_today_a_whole_export(
        tmp_path: Path, api: LoyaltyLionStandIn, monkeypatch: pytest.MonkeyPatch):
    """Killed between publishing the export and removing its staging folder, a pull leaves no checkpoint
    to resume from: for LoyaltyLion the staged file is the export, moved away by the publish, and a
    resumed pull refilled it with NUL bytes up to the checkpoint's length and published that over it."""
    api.customers = customers(10)
    by_hand = as_file(tmp_path / "by_hand.jsonl", api.customers).read_bytes()
    program = pull_program(tmp_path, "loyaltylion", api.base_url, page_size=3)

    def killed(staging: Staging) -> None:
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(Staging, "discard", killed)
        with pytest.raises(Killed):
            pull_export(program, tmp_path / "exports", D2, today=D2, environ=LL_ENV, **FAST)
    assert export_of(tmp_path, D2).read_bytes() == by_hand  # published before the kill
    staged = tmp_path / "exports" / D2.isoformat() / staging_name("accounts")
    assert staged.is_dir() and not (staged / CHECKPOINT).exists()  # a published export has no live checkpoint

    api.requests.clear()
    pulled = pull_export(program, tmp_path / "exports", D2, today=D2, environ=LL_ENV, **FAST)
    assert b"\0" not in export_of(tmp_path, D2).read_bytes()
    assert export_of(tmp_path, D2).read_bytes() == by_hand
    assert (pulled.manifest["rows"], pulled.manifest["resumed"]) == (10, False)
    assert len(api.requests) == 4  # pulled again from page 1: nothing to resume
    assert not staged.exists()


def test_a_checkpoint_whose_files_are_shorter_than_it_says_is_not_resumed(tmp_path: Path, api: LoyaltyLionStandIn):
    """A checkpoint describes a prefix of its files; one whose file is gone (or shorter) describes none,
    and resuming from it would fill the gap with NUL bytes: the pull starts over."""
    api.customers = customers(10)
    program = pull_program(tmp_path, "loyaltylion", api.base_url, page_size=3)
    api.down_after = 2
    with pytest.raises(PullError):
        pull_export(program, tmp_path / "exports", D2, today=D2, environ=LL_ENV, max_retries=1, **FAST)
    staged = tmp_path / "exports" / D2.isoformat() / staging_name("accounts")
    (staged / "customers.jsonl").unlink()  # the 2 pages the checkpoint names are gone

    api.down_after = None
    api.requests.clear()
    pulled = pull_export(program, tmp_path / "exports", D2, today=D2, environ=LL_ENV, **FAST)
    assert pulled.manifest["resumed"] is False and api.requests[0][2].get("cursor") is None
    assert export_of(tmp_path, D2).read_bytes() == as_file(tmp_path / "by_hand.jsonl", api.customers).read_bytes()


def test_a_pull_read_with_other_settings_is_not_resumed_but_started_over(tmp_path: Path, api: LoyaltyLionStandIn):
    api.customers = customers(10)
    api.down_after = 2
    with pytest.raises(PullError):
        pull_export(pull_program(tmp_path, "loyaltylion", api.base_url, page_size=3), tmp_path / "exports", D2,
                    today=D2, environ=LL_ENV, max_retries=1, **FAST)
    api.down_after = None
    api.requests.clear()
    pulled = pull_export(pull_program(tmp_path, "loyaltylion", api.base_url, page_size=4), tmp_path / "exports", D2,
                         today=D2, environ=LL_ENV, **FAST)
    assert pulled.manifest["resumed"] is False and api.requests[0][2].get("cursor") is None
    assert export_of(tmp_path, D2).read_bytes() == as_file(tmp_path / "by_hand.jsonl", api.customers).read_bytes()


def test_an_unfinished_pull_is_never_resumed_on_another_day(tmp_path: Path, api: LoyaltyLionStandIn):
    api.customers = customers(10)
    program = pull_program(tmp_path, "loyaltylion", api.base_url, page_size=3)
    api.inject("503", "503", "503", "503")  # page 1 of D1 fails
    with pytest.raises(PullError):
        pull_export(program, tmp_path / "exports", D1, today=D1, environ=LL_ENV, max_retries=3, **FAST)
    staged_d1 = tmp_path / "exports" / D1.isoformat() / staging_name("accounts")
    assert staged_d1.is_dir()
    api.requests.clear()
    pull_export(program, tmp_path / "exports", D2, today=D2, environ=LL_ENV, **FAST)
    assert api.requests[0][2].get("cursor") is None  # D2 starts from page 1
    assert not staged_d1.exists() and not export_of(tmp_path, D1).exists()  # D1's can never be finished
    assert export_of(tmp_path, D2).exists()


def test_two_pulls_of_one_day_never_run_at_once(tmp_path: Path, api: LoyaltyLionStandIn):
    program = pull_program(tmp_path, "loyaltylion", api.base_url)
    folder = tmp_path / "exports" / D2.isoformat()
    folder.mkdir(parents=True)
    with Staging.open(folder, "accounts", {"another": "pull"}):  # a pull of D2 at work
        with pytest.raises(PullError, match="another pull of 2026-03-02 is running"):
            pull_export(program, tmp_path / "exports", D2, today=D2, environ=LL_ENV)
    assert api.requests == [] and not export_of(tmp_path, D2).exists()


def test_only_today_can_be_pulled(tmp_path: Path, api: LoyaltyLionStandIn):
    program = pull_program(tmp_path, "loyaltylion", api.base_url)
    with pytest.raises(PullError, match=r"cannot pull 2026-03-01: an API serves the members as they are now, so only "
                                        r"today's export \(2026-03-02, Europe/Paris\) can be pulled"):
        pull_export(program, tmp_path / "exports", D1, today=D2, environ=LL_ENV)
    assert api.requests == [] and not (tmp_path / "exports" / D1.isoformat()).exists()


def test_a_dropped_export_is_never_doubled_by_a_pull(tmp_path: Path, api: LoyaltyLionStandIn):
    program = pull_program(tmp_path, "loyaltylion", api.base_url)
    dropped = tmp_path / "exports" / D2.isoformat() / "accounts.csv"
    dropped.parent.mkdir(parents=True)
    dropped.write_text("customer_id\n")
    with pytest.raises(PullError, match=r"already holds a dropped export \(accounts.csv\)"):
        pull_export(program, tmp_path / "exports", D2, today=D2, environ=LL_ENV)
    assert api.requests == []


def test_a_refused_key_names_the_variable_never_its_value(tmp_path: Path, api: LoyaltyLionStandIn):
    program = pull_program(tmp_path, "loyaltylion", api.base_url)
    wrong = "pat_wrong0000000000000000000000000"
    with pytest.raises(PullError) as info:
        pull_export(program, tmp_path / "exports", D2, today=D2, environ={"LOYALTYLION_API_KEY": wrong})
    assert "answered 401 (Authentication is required): check LOYALTYLION_API_KEY" in str(info.value)
    assert wrong not in str(info.value) and not export_of(tmp_path, D2).exists()
    with pytest.raises(PullError, match="LOYALTYLION_API_KEY is not set"):
        pull_export(program, tmp_path / "exports", D2, today=D2, environ={})


def test_voucherify_listings_past_their_last_page_continue_from_the_last_created_at(tmp_path: Path):
    published = objects("voucherify_v1", D2)
    # 120 members (the published objects again with new ids), created a minute apart, except that the 97th
    # to the 101st share one instant (01:36): across the 99th page, where both listings start a new window.
    members = []
    for i in range(120):
        source = published[i % len(published)]
        created = dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=96 if 96 <= i <= 100 else i)
        customer = {**source["customer"], "id": f"cust_{i:024d}", "source_id": f"shop-{i}"}
        members.append({**source, "id": f"v_{i:032d}", "holder_id": customer["id"], "customer": customer,
                        "created_at": created.isoformat(timespec="milliseconds").replace("+00:00", "Z")})
    with VoucherifyStandIn(members, campaign_id="camp_1") as api:
        program = pull_program(tmp_path, "voucherify", api.base_url, page_size=1, campaign_id="camp_1")
        pulled = pull_export(program, tmp_path / "exports", D2, today=D2, environ=VF_ENV, **FAST)
        listing = [r[2] for r in api.served("/v1/loyalties/camp_1/members")]
        customers_listing = [r[2] for r in api.served("/v1/customers")]
    assert [q["page"] for q in listing[97:101]] == ["98", "99", "1", "2"]
    assert listing[99]["created_at[after]"] == "2024-01-01T01:35:59.999Z"  # just before the 99th's instant
    assert customers_listing[99]["starting_after"] == "2024-01-01T01:35:59.999Z"
    lines = [json.loads(line) for line in pulled.path.read_text().splitlines()]
    assert [m["id"] for m in lines] == [m["id"] for m in members]  # each member once, in created_at order
    assert all(m["customer"]["source_id"] == f"shop-{int(m['id'][2:])}" and m["tiers"]["data"] for m in lines)
