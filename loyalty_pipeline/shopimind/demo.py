"""`make demo` / `make dev` side of ShopiMind: deliver to a local emulator unless told otherwise."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from .emulator import EMULATOR_API_KEY, Emulator

KEY_ENV, URL_ENV = "SHOPIMIND_API_KEY", "SHOPIMIND_BASE_URL"


@contextmanager
def local_shopimind(port: int = 0) -> Iterator[Emulator | None]:
    """An emulator on 127.0.0.1 with SHOPIMIND_* pointing at it, for as long as the block runs. If the
    environment already names a ShopiMind (key and URL), that one is used and nothing is started."""
    if os.environ.get(KEY_ENV) and os.environ.get(URL_ENV):
        print(f"ShopiMind: delivering to {os.environ[URL_ENV]} (from {URL_ENV})")
        yield None
        return
    saved = {name: os.environ.get(name) for name in (KEY_ENV, URL_ENV)}
    with Emulator(port=port) as emulator:
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
