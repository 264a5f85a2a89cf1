"""`make bench`: speed and memory of one day's run at N members, against bare references.

    python -m loyalty_pipeline.devtools.bench [--members 1000000] [--repeats 3] [--formats csv,parquet]
                                     [--out bench/results] [--skip-outbound] ...

1. Generates two days of the simulated program (loyalty_pipeline.devtools.sample) per format.
2. Processing of day 2, as users run it: the whole in-process Dagster run of the four processing
   assets with their blocking checks and the analysts' publish (rebuild forced, day 1 done), then
   the bare DuckDB reference reading both days' files, in one child per (format, repeat).
3. Outbound of day 2 against the emulator (own process): the pipeline's delivery and a raw httpx
   loop with the same payloads and concurrency; then a re-run of the finished day (requests counted).
4. Writes <out>/<timestamp>.json and .md and prints the tables. See the README, "Benchmark".
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ...settings import PROJECT_ROOT
from . import report
from .common import load_average, run_child
from .emulator_proc import EmulatorProcess
from .processing import discard


def machine() -> dict:
    import duckdb

    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "mem_gib": round(mem_kb / 1024 ** 2, 1), "platform": platform.platform(),
            "python": platform.python_version(), "duckdb": duckdb.__version__, "git": git_revision()}


def git_revision() -> str | None:
    """HEAD, with "+dirty" when tracked files differ from it (the code measured is the working tree)."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                             text=True, check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "loyalty_pipeline"],
                               cwd=PROJECT_ROOT, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return None
    return (rev + ("+dirty" if dirty else "")) or None


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m loyalty_pipeline.devtools.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--members", type=int, default=1_000_000)
    p.add_argument("--repeats", type=int, default=3, help="runs per measurement; medians are reported")
    p.add_argument("--outbound-repeats", type=int, help="default: --repeats")
    p.add_argument("--formats", default="csv,parquet")
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench" / "results")
    p.add_argument("--work", type=Path, help="scratch directory, kept (default: a temporary one, removed); "
                                             "exports already generated there for the same arguments are reused")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--bad-row-rate", type=float, default=0.0,
                   help="extra bad rows (the reference only handles clean files; default 0)")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight (pipeline and raw loop)")
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--rps", type=float, default=0.0,
                   help="client-side rate limit of the pipeline (0 = none; the raw loop has none)")
    p.add_argument("--memory-limit", help="DuckDB memory_limit for pipeline and reference (default: the pipeline's "
                        "LOYALTY_DUCKDB_MEMORY_LIMIT; the reference: DuckDB's)")
    p.add_argument("--skip-outbound", action="store_true")
    p.add_argument("--skip-rerun", action="store_true")
    p.add_argument("--skip-raw", action="store_true",
                   help="no raw httpx loop (as long as the pipeline's delivery): no pipeline / raw ratio")
    return p.parse_args(argv)


def generate(args: argparse.Namespace, work: Path, fmt: str) -> dict:
    exports = work / f"exports-{fmt}"
    marker = exports / ".bench.json"
    spec = {"members": args.members, "days": 2, "seed": args.seed, "fmt": fmt, "bad_row_rate": args.bad_row_rate}
    if marker.exists() and json.loads(marker.read_text()).get("spec") == spec:
        log(f"reusing {exports}")
        return {**json.loads(marker.read_text())["result"], "reused": True}
    shutil.rmtree(exports, ignore_errors=True)
    log(f"generating {args.members:,} members x 2 days as {fmt}")
    result = run_child("generate", {**spec, "out": str(exports)}, work)
    marker.write_text(json.dumps({"spec": spec, "result": result}))
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    outbound_repeats = args.outbound_repeats if args.outbound_repeats is not None else args.repeats
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    scratch = None
    if args.work:
        work = args.work.resolve()
        work.mkdir(parents=True, exist_ok=True)
    else:
        scratch = tempfile.mkdtemp(prefix="loyalty-bench-")
        work = Path(scratch)
    settings = {"concurrency": args.concurrency, "batch_size": args.batch_size, "rps": args.rps,
                "memory_limit": args.memory_limit, "bad_row_rate": args.bad_row_rate, "seed": args.seed}
    result: dict = {"meta": {"timestamp": stamp, "members": args.members, "repeats": args.repeats,
                             "formats": formats, "machine": machine(), "load_before": load_average(),
                             "settings": settings, "work": str(work)}}
    started = time.perf_counter()
    try:
        run(args, formats, outbound_repeats, work, result)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    result["meta"]["load_after"] = load_average()
    result["meta"]["git_after"] = git_revision()
    result["meta"]["total_s"] = round(time.perf_counter() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{stamp}.json"
    result["targets"] = report.targets(result, report.load_history(args.out, exclude=path))
    path.write_text(json.dumps(result, indent=1, default=str))
    path.with_suffix(".md").write_text(report.render_markdown(result))
    print("\n" + report.render_text(result) + "\n", flush=True)
    log(f"wrote {path} and {path.with_suffix('.md')} in {result['meta']['total_s']} s")
    return 0


def run(args: argparse.Namespace, formats: list[str], outbound_repeats: int, work: Path, result: dict) -> None:
    common = {"work": str(work), "memory_limit": args.memory_limit}
    delivery = {"concurrency": args.concurrency, "batch_size": args.batch_size, "rps": args.rps}
    result["generate"] = {fmt: generate(args, work, fmt) for fmt in formats}

    bases = {}
    for fmt in formats:
        log(f"day 1 ({fmt}) into the base warehouse (setup, not timed)")
        bases[fmt] = {"base": str(work / f"base-{fmt}.duckdb"), "exports": str(work / f"exports-{fmt}")}
        run_child("prepare_base", {**common, **bases[fmt], "destination": "bench"}, work)

    processed_db = None  # day 2 processed by the pipeline (first format, first repeat): outbound's input
    result["processing"] = {fmt: {"runs": []} for fmt in formats}
    for i in range(args.repeats):
        for fmt in formats:
            keep = processed_db is None and fmt == formats[0]
            out = run_child("processing", {**common, **bases[fmt], "tag": f"{fmt}-{i}", "keep_pipeline_db": keep},
                            work)
            if keep:
                processed_db = out.pop("pipeline_db")
            result["processing"][fmt]["runs"].append(out)
            log(f"processing {fmt} #{i + 1}: Dagster run {out['pipeline']['seconds']:.2f} s, reference "
                f"{out['reference']['seconds']:.2f} s, ratio {out['ratio']}, peak {out['pipeline']['peak_rss_mb']} / "
                f"{out['reference']['peak_rss_mb']} MB, same rows: {out['verify']['same']}")
    for fmt in formats:
        result["processing"][fmt]["summary"] = report.summarize_processing(result["processing"][fmt]["runs"])
    first = result["processing"][formats[0]]
    result["churn"] = report.churn(first["runs"][0])

    if args.skip_outbound:
        discard(Path(processed_db))
        return
    rounds, reruns = [], []
    for i in range(outbound_repeats):
        with EmulatorProcess() as emulator:
            before = emulator.stats()
            pipeline = run_child("outbound_pipeline", {**common, **delivery, "db": processed_db, "tag": str(i),
                                                       "base_url": emulator.base_url}, work)
            after = emulator.stats()
            pipeline_requests = EmulatorProcess.delta(before, after)
            log(f"outbound pipeline #{i + 1}: accounts {pipeline['accounts']['seconds']:.1f} s, events "
                f"{pipeline['events']['seconds']:.1f} s, {pipeline_requests['total']:,} requests")
            if not args.skip_rerun:
                rerun = run_child("rerun", {**common, **delivery, "db": pipeline["db"], "base_url": emulator.base_url,
                                            "exports": bases[formats[0]]["exports"]}, work)
                rerun["requests"] = EmulatorProcess.delta(after, emulator.stats())
                reruns.append(rerun)
                log(f"re-run #{i + 1}: processing {rerun['processing']['seconds']:.2f} s, outbound "
                    f"{rerun['outbound']['seconds']:.2f} s, {rerun['requests']['total']} requests")
            else:
                discard(Path(pipeline["db"]))
        if args.skip_raw:
            rounds.append(report.outbound_round(pipeline, pipeline_requests))
            continue
        with EmulatorProcess() as emulator:
            before = emulator.stats()
            raw = run_child("outbound_raw", {**common, **delivery, "db": processed_db, "base_url": emulator.base_url},
                            work)
            raw_requests = EmulatorProcess.delta(before, emulator.stats())
        rounds.append(report.outbound_round(pipeline, pipeline_requests, raw, raw_requests))
        log(f"outbound raw #{i + 1}: accounts {raw['accounts']['seconds']:.1f} s, "
            f"events {raw['events']['seconds']:.1f} s; pipeline / raw = {rounds[-1]['ratio']}")
    discard(Path(processed_db))
    summary = report.summarize_outbound(rounds)
    result["outbound"] = {"rounds": rounds, "summary": summary,
                          "requests_vs_change": report.requests_vs_change(summary, result["churn"], args.batch_size)}
    if reruns:
        result["rerun"] = {"runs": reruns,
                           "summary": report.summarize_rerun(reruns, first["summary"]["pipeline_s"])}


if __name__ == "__main__":
    sys.exit(main())
