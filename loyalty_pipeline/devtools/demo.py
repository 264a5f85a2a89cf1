"""`make demo`: two weeks of a simulated program, processed day by day on the embedded defaults.

`make demo PLATFORM=loyaltylion PULL=1` (`--pull`): no file is dropped; each day's export is pulled from
a local LoyaltyLion stand-in serving that day's simulated customers (devtools/standins), with the clock
set to that day (LOYALTY_TODAY) for the pull, then the day is processed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from .. import settings
from ..cli import pull_today, run_days
from ..ingest.platforms import loyaltylion
from ..operations.summary import print_summary
from ..program import load_program
from .emulator.local import local_shopimind, print_holdings
from .sample.generator import generate_sample
from .sample.platforms import DEFAULT_FORMAT
from .standins.loyaltylion import API_KEY, LoyaltyLionStandIn

PULLED_PLATFORM = loyaltylion.NAME  # the platform whose stand-in serves the simulated days


def run_demo(*, members: int = 2000, days: int = 14, platform: str | None = None, pull: bool = False) -> int:
    # A copy of program.yaml for the demo: read from `platform`'s export, and tolerating the unknown tier
    # names the sample injects on purpose (by default one stops the day's outbound: docs/operations.md, tiers_known).
    raw = yaml.safe_load(settings.program_path().read_text(encoding="utf-8"))
    source = raw.setdefault("source", {})
    source["platform"] = platform or source.get("platform", "canonical")
    if pull and source["platform"] != PULLED_PLATFORM:
        print(f"the pull demo serves simulated days from a {PULLED_PLATFORM} stand-in: "
              f"run `make demo PLATFORM={PULLED_PLATFORM} PULL=1`")
        return 2
    raw.setdefault("operations", {})["unknown_tier_floor"] = members
    path = settings.warehouse_path().parent / f"program.demo.{source['platform']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)

    def write_program() -> None:
        path.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8")
        os.environ["LOYALTY_PROGRAM"] = str(path)

    write_program()
    program = load_program(path)
    platform = program.source.platform
    end = dt.datetime.now(program.tz).date() - dt.timedelta(days=1)
    start = end - dt.timedelta(days=days - 1)
    # Pulled, the simulated exports are what the stand-in serves, not files in the exports folder.
    out = settings.warehouse_path().parent / "demo-api" / platform if pull else settings.exports_dir()
    print(f"Generating {days} days of {platform} exports for {members} members ({start} … {end}) in {out}")
    for i in range(days):  # a previous demo in another shape would leave a second accounts file
        for folder in (out, settings.exports_dir()):
            shutil.rmtree(folder / (start + dt.timedelta(days=i)).isoformat(), ignore_errors=True)
    generate_sample(out, members=members, days=days, end=end, seed=42, fmt=DEFAULT_FORMAT[platform],
                    bad_row_rate=0.005, program=program, platform=platform)
    with local_shopimind() as shopimind:  # the bundled emulator, unless SHOPIMIND_* name another
        if pull:
            with loyaltylion_stand_in() as api:
                source["pull"] = {"enabled": True, "base_url": api.base_url}
                write_program()
                print(f"Pulling each day from the {platform} stand-in at {api.base_url}, then processing it "
                      f"into {settings.warehouse_path()}")
                for day in (start + dt.timedelta(days=i) for i in range(days)):
                    api.customers = _objects(out / day.isoformat() / f"{program.source.accounts_file}.jsonl")
                    with _today(day):
                        pulled = pull_today()
                    if not pulled or not run_days(day, day):
                        return 1
        else:
            print(f"Processing {start} … {end} into {settings.warehouse_path()}")
            if not run_days(start, end):
                return 1
        print_summary(settings.warehouse_path())
        print_holdings(shopimind)
    return 0


@contextmanager
def loyaltylion_stand_in() -> Iterator[LoyaltyLionStandIn]:
    """The stand-in, with the pull's credential variable naming its key for as long as the block runs."""
    with _env(loyaltylion.PULL.credentials["api_key_env"], API_KEY), LoyaltyLionStandIn() as api:
        yield api


def _today(day: dt.date):
    """The injected clock (ProgramResource.today_date) on `day`: an API is pulled for today only."""
    return _env("LOYALTY_TODAY", day.isoformat())


@contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    """`name` = `value` in this process's environment for as long as the block runs."""
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


def _objects(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
