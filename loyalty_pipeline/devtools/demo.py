"""`make demo`: two weeks of a simulated program, processed day by day on the embedded defaults."""

from __future__ import annotations

import datetime as dt
import os
import shutil

import yaml

from .. import settings
from ..cli import run_days
from ..operations.summary import print_summary
from ..program import load_program
from .emulator.local import local_shopimind, print_holdings
from .sample.generator import generate_sample
from .sample.platforms import DEFAULT_FORMAT


def run_demo(*, members: int = 2000, days: int = 14, platform: str | None = None) -> int:
    # A copy of program.yaml for the demo: read from `platform`'s export, and tolerating the unknown tier
    # names the sample injects on purpose (by default one stops the day's outbound: docs/operations.md, tiers_known).
    raw = yaml.safe_load(settings.program_path().read_text(encoding="utf-8"))
    source = raw.setdefault("source", {})
    source["platform"] = platform or source.get("platform", "canonical")
    raw.setdefault("operations", {})["unknown_tier_floor"] = members
    path = settings.warehouse_path().parent / f"program.demo.{source['platform']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8")
    os.environ["LOYALTY_PROGRAM"] = str(path)
    program = load_program(path)
    platform = program.source.platform
    end = dt.datetime.now(program.tz).date() - dt.timedelta(days=1)
    start = end - dt.timedelta(days=days - 1)
    print(f"Generating {days} days of {platform} exports for {members} members ({start} … {end}) "
          f"in {settings.exports_dir()}")
    for i in range(days):  # a previous demo in another shape would leave a second accounts file
        shutil.rmtree(settings.exports_dir() / (start + dt.timedelta(days=i)).isoformat(), ignore_errors=True)
    generate_sample(settings.exports_dir(), members=members, days=days, end=end, seed=42,
                    fmt=DEFAULT_FORMAT[platform], bad_row_rate=0.005, program=program, platform=platform)
    print(f"Processing {start} … {end} into {settings.warehouse_path()}")
    with local_shopimind() as shopimind:  # the bundled emulator, unless SHOPIMIND_* name another
        if not run_days(start, end):
            return 1
        print_summary(settings.warehouse_path())
        print_holdings(shopimind)
    return 0
