"""`loyalty-devtools`: the demo, simulated exports and the ShopiMind emulator (none of it is the pipeline)."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from .. import settings
from ..program import load_program
from .sample.generator import generate_sample
from .sample.platforms import DEFAULT_FORMAT, FORMATS, simulated_platforms


def _date(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


def cmd_generate(args: argparse.Namespace) -> int:
    program = load_program(settings.program_path())
    dirs = generate_sample(
        Path(args.out), members=args.members, days=args.days, end=args.end, seed=args.seed,
        fmt=args.format or DEFAULT_FORMAT[args.platform], bad_row_rate=args.bad_row_rate, program=program,
        platform=args.platform,
    )
    print(f"wrote {len(dirs)} days to {args.out} ({dirs[0].name} … {dirs[-1].name})")
    if program.source.platform != args.platform:
        print(f"note: {settings.program_path()} reads source.platform {program.source.platform}; "
              f"set it to {args.platform} to process these files")
    return 0


def cmd_emulator(args: argparse.Namespace) -> int:
    from .emulator import serve

    serve(host=args.host, port=args.port)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(members=args.members, days=args.days, platform=args.platform, pull=args.pull)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="loyalty-devtools", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="sample exports → every day → summary (what `make demo` runs)")
    demo.add_argument("--members", type=int, default=2000)
    demo.add_argument("--days", type=int, default=14)
    demo.add_argument("--platform", choices=simulated_platforms(), default=None,
                      help="export shape to simulate and read (default: program.yaml source.platform)")
    demo.add_argument("--pull", action="store_true",
                      help="pull each day from a local API stand-in (with --platform loyaltylion) instead of files")
    demo.set_defaults(func=cmd_demo)

    gen = sub.add_parser("generate-sample", help="write simulated daily exports")
    gen.add_argument("--members", type=int, default=2000)
    gen.add_argument("--days", type=int, default=14)
    gen.add_argument("--end", type=_date, default=dt.date.today() - dt.timedelta(days=1))
    gen.add_argument("--out", default=str(settings.exports_dir()))
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument("--format", choices=["csv", "parquet", "jsonl"], default=None,
                     help="default: the platform's first (" + ", ".join(
                         f"{p}: {'/'.join(formats)}" for p, formats in FORMATS.items()) + ")")
    gen.add_argument("--bad-row-rate", type=float, default=0.005)
    gen.add_argument("--platform", choices=simulated_platforms(), default="canonical")
    gen.set_defaults(func=cmd_generate)

    emu = sub.add_parser("emulator", help="serve the ShopiMind emulator on 127.0.0.1")
    emu.add_argument("--host", default="127.0.0.1")
    emu.add_argument("--port", type=int, default=8765)
    emu.set_defaults(func=cmd_emulator)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)
