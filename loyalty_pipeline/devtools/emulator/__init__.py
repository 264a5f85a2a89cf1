"""Local ShopiMind API v1 emulator: custom data definitions/records and events over real HTTP.

contract.py validates what the API accepts, store.py holds the state and behaviour (faults included),
server.py serves them; local.py runs a command against one (`make dev`, `make demo`).
"""

from .server import Emulator, serve
from .store import EMULATOR_API_KEY, EmulatorConfig

__all__ = ["EMULATOR_API_KEY", "Emulator", "EmulatorConfig", "serve"]
