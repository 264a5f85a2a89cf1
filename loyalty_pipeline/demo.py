"""`make demo`: two weeks of a simulated program, processed day by day on the embedded defaults."""

from __future__ import annotations

import datetime as dt

from . import settings
from .cli import run_days
from .program import load_program
from .report import print_summary
from .shopimind.demo import local_shopimind, print_holdings


def run_demo(*, members: int = 2000, days: int = 14) -> int:
    from .sample.generator import generate_sample

    program = load_program(settings.program_path())
    end = dt.datetime.now(program.tz).date() - dt.timedelta(days=1)
    start = end - dt.timedelta(days=days - 1)
    print(f"Generating {days} days of exports for {members} members ({start} … {end}) "
          f"in {settings.exports_dir()}")
    generate_sample(settings.exports_dir(), members=members, days=days, end=end, seed=42,
                    fmt="csv", bad_row_rate=0.005, program=program)
    print(f"Processing {start} … {end} into {settings.warehouse_path()}")
    with local_shopimind() as shopimind:  # the bundled emulator, unless SHOPIMIND_* name another
        if not run_days(start, end):
            return 1
        print_summary(settings.warehouse_path())
        print_holdings(shopimind)
    return 0
