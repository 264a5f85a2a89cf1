"""A destination's bootstrap as one delivery run sees it (ShopiMind: the LoyaltyAccount definition and
the event types): asked for lazily, before the first request that relies on it, so a day with nothing to
send makes no setup request; re-run once per run when the destination says it is gone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# setup(heal) -> what requests need (ShopiMind: the definition id); heal=True sets it up again from scratch.
Setup = Callable[[bool], Any]


class Bootstrap:
    """`what` and `where` name it in errors ("the LoyaltyAccount definition", "ShopiMind"). Without `setup`,
    `target` is used as it is and a `SetupGone` stops the run; with `setup` and a known `target`, setup is
    only asked to heal. `Bootstrap()`: a destination with nothing to set up."""

    def __init__(self, setup: Setup | None = None, what: str = "the setup", where: str = "the destination",
                 target: Any = None) -> None:
        self.setup, self.what, self.where, self.target = setup, what, where, target
        self.ready_done = setup is None or target is not None
        self.healed = False

    def ready(self) -> Any:
        if not self.ready_done:
            self.target = self.setup(False)
            self.ready_done = True
        return self.target

    def can_heal(self) -> bool:
        return self.setup is not None and not self.healed

    def heal(self) -> Any:
        """Set up again (a setup that fails raises: what was refused stays failed, retried next run)."""
        self.healed = self.ready_done = True
        self.target = self.setup(True)
        return self.target

    def gone_hint(self) -> str:
        """What a "gone" refusal means now, for the error recorded with it."""
        if self.can_heal():
            return (f"{self.what} is not there (deleted, or a reset shop): setup is re-run and this retried "
                    "once")
        if self.healed:
            return (f"{self.what} is still refused after setup was re-run in this run (deleted again?); check "
                    f"it in {self.where}, then re-run")
        return f"{self.what} changed during the run; re-run to set it up"
