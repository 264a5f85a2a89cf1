"""`make demo` / `make dev` side of ShopiMind: deliver to a local emulator unless told otherwise.

`python -m loyalty_pipeline.devtools.emulator.local CMD…` runs CMD (e.g. `dagster dev`) with SHOPIMIND_* pointing
at an emulator served by this process on 127.0.0.1:8765 (or a free port if taken).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from ...outbound.shopimind.resources import KEY_ENV, URL_ENV
from .server import Emulator
from .store import EMULATOR_API_KEY


@contextmanager
def local_shopimind(port: int = 0) -> Iterator[Emulator | None]:
    """An emulator on 127.0.0.1 with SHOPIMIND_* pointing at it, for as long as the block runs. If the
    environment already names a ShopiMind (key and URL), that one is used and nothing is started."""
    if os.environ.get(KEY_ENV) and os.environ.get(URL_ENV):
        print(f"ShopiMind: delivering to {os.environ[URL_ENV]} (from {URL_ENV})")
        yield None
        return
    saved = {name: os.environ.get(name) for name in (KEY_ENV, URL_ENV)}
    emulator = Emulator(port=port)
    try:
        emulator.start()
    except OSError:  # the port is taken (another emulator?): any free one will do
        emulator = Emulator(port=0).start()
    with emulator:
        os.environ.update({KEY_ENV: EMULATOR_API_KEY, URL_ENV: emulator.base_url})
        print(f"ShopiMind: delivering to the bundled emulator at {emulator.base_url} "
              f"(set {KEY_ENV} and {URL_ENV} to use another)")
        try:
            yield emulator
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def print_holdings(emulator: Emulator | None) -> None:
    """What ShopiMind now holds: LoyaltyAccount records, and events triggered per code_name."""
    if emulator is None:
        return
    state = emulator.state()
    definitions = {str(d["id_definition"]): d["name"] for d in state["definitions"]}
    print("\n== What ShopiMind (the emulator) now holds")
    for id_definition, rows in state["records"].items():
        print(f"custom data {definitions.get(id_definition, id_definition)}: {len(rows)} records")
    triggered = Counter(h["code_name"] for h in state["histories"])
    keys = Counter(h["payload"]["metaData"].get("event_key") for h in state["histories"])
    print(f"events triggered: {sum(triggered.values())} ({sum(n > 1 for n in keys.values())} event keys "
          "received more than once)")
    for code_name in sorted(state["triggered"]):
        print(f"  {code_name:<36} {triggered.get(code_name, 0):>7}")
    calls = {route: c["total"] for route, c in state["requests"].items()}
    print(f"requests: {sum(calls.values())} ({', '.join(f'{r} {n}' for r, n in sorted(calls.items()))})")


def run_with_local_shopimind(argv: list[str], port: int = 8765) -> int:
    """Run a command (the Dagster UI) while this process serves the emulator it delivers to."""
    with local_shopimind(port=port):
        child = subprocess.Popen(argv)
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the child to handle
        try:
            return child.wait()
        finally:
            signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":
    sys.exit(run_with_local_shopimind(sys.argv[1:]))
