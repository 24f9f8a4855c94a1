"""Clocks: the engine's only source of time.

Every clock answers ``now()`` in seconds since the epoch (a float). The engine
never reads the wall clock itself, so a :class:`VirtualClock` makes a 30-minute
schedule run as fast as a test advances it.
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "RealClock", "ScaledClock", "VirtualClock", "make_clock"]

#: 2026-01-01T00:00:00Z: where a virtual clock starts unless told otherwise.
DEFAULT_EPOCH = 1767225600.0


class Clock(Protocol):
    """What the engine needs of time."""

    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    @property
    def speed(self) -> float:
        """Clock seconds per wall second; 0 for a clock that only moves when told."""
        ...


class RealClock:
    """The wall clock."""

    speed = 1.0

    def now(self) -> float:
        return time.time()


class ScaledClock:
    """The wall clock, sped up: ``speed`` clock seconds pass per wall second."""

    def __init__(self, speed: float, origin: float | None = None) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self._speed = speed
        self.adopt(time.time() if origin is None else origin)

    def adopt(self, origin: float) -> None:
        """Run as a clock that started, reading wall time, at wall time ``origin``: replicas
        sharing one origin read the same time."""
        #: The wall time this clock started at (and read then).
        self.origin = origin
        self._origin = origin + (time.time() - origin) * self._speed
        self._mono = time.monotonic()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> float:
        return self._origin + (time.monotonic() - self._mono) * self._speed


class VirtualClock:
    """A clock that moves only when :meth:`advance` or :meth:`set` is called."""

    speed = 0.0

    def __init__(self, start: float = DEFAULT_EPOCH) -> None:
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (never backwards) and return the new time."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back: advance({seconds})")
        self._now += seconds
        return self._now

    def set(self, when: float) -> None:
        """Move to ``when``, which must not be in the past."""
        if when < self._now:
            raise ValueError(f"a clock cannot go back: set({when}) < now {self._now}")
        self._now = when


def make_clock(kind: str = "real", speed: float = 1.0) -> Clock:
    """Build a clock by name: ``real`` (optionally sped up) or ``virtual``."""
    if kind == "virtual":
        return VirtualClock()
    if kind == "real":
        return RealClock() if speed == 1.0 else ScaledClock(speed)
    raise ValueError(f"unknown clock {kind!r}: expected 'real' or 'virtual'")
