"""Time limits of one contract run: the budget, the request timeout, bounded shrinking.

A run is given ``budget`` wall-clock seconds (``--budget``). Every phase draws from it
(the state machine, the probes, the webhook schedule, the stateless phase); when it is
spent the suite stops starting work and reports what it did not finish. A run ends within
``budget + MARGIN`` seconds: past the budget only a request already in flight (at most
``REQUEST_TIMEOUT`` plus its inline wait) and the replay of a failure already found (its
settling bounded by ``REPLAY_SETTLE``) may still run.

Shrinking a failure is bounded too (:class:`ShrinkGuard`): against a real-time server it
re-runs examples in real time, so it stops after a number of attempts or seconds, and the
report then says the reproduction may not be minimal.
"""

from __future__ import annotations

import time
import unittest
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MARGIN", "REPLAY_SETTLE", "REQUEST_TIMEOUT", "RunBudget", "ShrinkGuard", "StopRun",
           "is_final_replay"]

#: Seconds any one request may take beyond the inline wait it asks for.
REQUEST_TIMEOUT = 20.0
#: Seconds the replay of a failing example may wait for its jobs to end.
REPLAY_SETTLE = 15.0
#: A run ends within its budget plus this: a request in flight, a failure's replay, slack.
MARGIN = REQUEST_TIMEOUT + REPLAY_SETTLE + 10.0


@dataclass(slots=True)
class RunBudget:
    """Wall-clock seconds for one run (or one phase of it), from ``started``."""

    seconds: float
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def left(self) -> float:
        return self.seconds - self.elapsed

    @property
    def over(self) -> bool:
        return self.left <= 0

    @property
    def deadline(self) -> float:
        return self.started + self.seconds

    def share(self, fraction: float, *, at_least: float = 0.0) -> RunBudget:
        """A phase's budget, starting now: ``fraction`` of what is left (never past it)."""
        left = max(0.0, self.left)
        return RunBudget(min(left, max(at_least, left * fraction)))


def is_final_replay() -> bool:
    """Whether Hypothesis is replaying the failing example it will report."""
    try:
        from hypothesis.control import current_build_context

        return bool(current_build_context().is_final)
    except Exception:  # outside a Hypothesis test: nothing to replay
        return False


class StopRun(unittest.SkipTest):
    """Ends a Hypothesis run at once (Hypothesis re-raises skip exceptions without shrinking):
    the budget ended, or shrinking reached its bounds."""


@dataclass(slots=True)
class ShrinkGuard:
    """Bounds a run: no example starts after the budget ended, and after the first failure at
    most ``steps`` examples or ``seconds`` are spent shrinking it.

    Against a real-time server ``seconds`` defaults to the time the failure took to find
    (so a failing run takes at most about twice a clean one); against a virtual clock only
    the run's budget and ``steps`` bound it. When shrinking is cut short the smallest
    violation seen so far (:attr:`best`) is the one reported, and the report says it may not
    be minimal.
    """

    budget: RunBudget
    steps: int = 150
    seconds: float | None = None
    failed_at: float | None = None
    attempts: int = 0
    stopped: str = ""
    examples: int = 0
    #: The violation with the fewest requests seen so far, and that count.
    best: Any = None
    best_size: int = 0

    def failure(self, violation: Any = None, size: int = 0) -> None:
        """Note a failure (the first one starts the shrink clock) and keep the smallest."""
        if self.failed_at is None:
            self.failed_at = time.monotonic()
            if self.seconds is None:
                self.seconds = max(5.0, self.failed_at - self.budget.started)
        if violation is not None and (self.best is None or size < self.best_size):
            self.best, self.best_size = violation, size

    @property
    def shrinking(self) -> bool:
        return self.failed_at is not None

    def start_example(self) -> None:
        """Called as an example starts; raises :class:`StopRun` when the run must end."""
        if is_final_replay():
            return
        if self.failed_at is None:
            if self.budget.over:
                self.stopped = f"the budget ({self.budget.seconds:.0f}s) ended"
                raise StopRun(self.stopped)
            self.examples += 1
            return
        self.attempts += 1
        spent = time.monotonic() - self.failed_at
        if self.attempts > self.steps:
            self.stopped = f"shrinking stopped after {self.steps} examples"
        elif self.seconds is not None and spent > self.seconds:
            self.stopped = f"shrinking stopped after {spent:.0f}s"
        elif self.budget.over:
            self.stopped = "shrinking stopped when the run's budget ended"
        if self.stopped:
            raise StopRun(self.stopped)
