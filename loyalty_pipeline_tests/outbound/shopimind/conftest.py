"""The ShopiMind emulator on 127.0.0.1, its key in the environment as a deployment sets it (a module
that needs another key or none defines its own `emulator`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from loyalty_pipeline.devtools.emulator import Emulator
from loyalty_pipeline.outbound.shopimind.resources import KEY_ENV


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with Emulator() as emu:
        monkeypatch.setenv(KEY_ENV, emu.api_key)
        yield emu
