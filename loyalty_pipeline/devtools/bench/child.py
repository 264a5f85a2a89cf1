"""One bench stage in a fresh interpreter: `python -m loyalty_pipeline.devtools.bench.child '<json request>'`.

The request names the stage, its arguments and where to write the JSON result (see common.run_child).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path


def generate(args: dict) -> dict:
    from ...program import load_program
    from ...settings import program_path
    from ..sample.generator import generate_sample
    from .common import DAY2

    out = Path(args["out"])
    started = time.perf_counter()
    dirs = generate_sample(out, members=args["members"], days=args["days"], end=DAY2, seed=args["seed"],
                           fmt=args["fmt"], bad_row_rate=args["bad_row_rate"], program=load_program(program_path()))
    files = {f"{d.name}/{f.name}": f.stat().st_size for d in dirs for f in sorted(d.iterdir())
             if f.suffix in (".csv", ".parquet")}
    return {"seconds": round(time.perf_counter() - started, 2), "bytes": files}


def stages() -> dict:
    from . import outbound, processing

    return {
        "generate": generate,
        "prepare_base": processing.prepare_base,
        "processing": processing.processing,
        "outbound_pipeline": outbound.outbound_pipeline,
        "outbound_raw": outbound.outbound_raw,
        "rerun": outbound.rerun,
    }


def main() -> None:
    request = json.loads(sys.argv[1])
    result = stages()[request["stage"]](request["args"])
    Path(request["result"]).write_text(json.dumps(result, default=_default, indent=1))


def _default(value: object) -> object:
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


if __name__ == "__main__":
    main()
