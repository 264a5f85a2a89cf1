"""The ShopiMind emulator in a process of its own, so its CPU is never charged to the client measured.

    python -m loyalty_pipeline.devtools.bench.emulator_proc      (prints {"base_url": ...}, then reads commands)

Commands on stdin, one JSON answer per line on stdout:
- `stats`: per-route request counters, the process's CPU seconds and RSS. `GET /_emulator/state`
  would deep-copy every record and history (hundreds of MB at 10M members), so the counters are
  read directly, under the emulator's lock.
- `quit`.
"""

from __future__ import annotations

import copy
import json
import resource
import subprocess
import sys

from ..emulator import Emulator
from .common import rss_mb


def main() -> None:
    emulator = Emulator(port=0).start()
    print(json.dumps({"base_url": emulator.base_url}), flush=True)
    try:
        for line in sys.stdin:
            command = line.strip()
            if command == "quit":
                break
            if command == "stats":
                store = emulator._store  # noqa: SLF001 - the counters without the full state copy
                with store.lock:
                    requests = copy.deepcopy(store.requests)
                usage = resource.getrusage(resource.RUSAGE_SELF)
                print(json.dumps({"requests": requests, "cpu_s": usage.ru_utime + usage.ru_stime,
                                  "rss_mb": rss_mb(), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}), flush=True)
    finally:
        emulator.stop()


class EmulatorProcess:
    """Start/stop the emulator process and read its counters from the bench orchestrator."""

    DATA_ROUTES = {"records": "POST /v1/custom-data-records/{id}", "triggers": "POST /v1/events/trigger/{code_name}"}

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "loyalty_pipeline.devtools.bench.emulator_proc"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.base_url = json.loads(self.proc.stdout.readline())["base_url"]

    def stats(self) -> dict:
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @staticmethod
    def delta(before: dict, after: dict) -> dict:
        """Requests per route between two `stats()`, the data routes named, plus emulator CPU used."""
        routes = {}
        for route, counter in after["requests"].items():
            n = counter["total"] - before["requests"].get(route, {}).get("total", 0)
            if n:
                routes[route] = n
        data = {name: routes.get(route, 0) for name, route in EmulatorProcess.DATA_ROUTES.items()}
        other = sum(n for route, n in routes.items() if route not in EmulatorProcess.DATA_ROUTES.values())
        return {"total": sum(routes.values()), **data, "other": other, "by_route": routes,
                "emulator_cpu_s": round(after["cpu_s"] - before["cpu_s"], 2),
                "emulator_rss_mb": after["rss_mb"]}


if __name__ == "__main__":
    main()
