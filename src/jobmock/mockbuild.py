"""Building a configured :class:`~jobmock.dispatch.Mock` from a name and options: what the
in-process mock, the pytest plugin and the live-server helper share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .bundled import resolve_spec
from .clock import Clock, make_clock
from .dispatch import Mock
from .engine import Advance
from .faults import set_faults
from .scenarios import install_scenario
from .spec import ApiSpec

__all__ = ["build_mock"]


def build_mock(api: str | Path | ApiSpec, *, seed: int = 0, clock: str | Clock = "virtual",
               speed: float = 1.0, advance: str | Advance | None = None, polls: int = 1,
               scenario: Any = None, faults: tuple[str, ...] | list[str] = (),
               allow_private_callbacks: bool = False, webhook_secret: str | None = None,
               webhook_timeout: float | None = None, journal_size: int = 10_000,
               **mock_options: Any) -> Mock:
    """A :class:`Mock` of ``api`` (a bundled name, a spec path, or an :class:`ApiSpec`).

    ``clock``: ``"virtual"`` (default), ``"real"`` (sped up by ``speed``) or a clock object.
    ``advance``: how jobs advance, ``"time"`` (default), ``"polls"`` (every ``polls`` reads
    move a job one step) or ``"manual"`` (only :meth:`force`), or an :class:`Advance`.
    ``scenario``: a scenario file or mapping (see :mod:`jobmock.scenarios`).
    ``faults``: deliberate contract violations (see :mod:`jobmock.faults`).
    Other keywords go to :class:`Mock` as they are.
    """
    spec = resolve_spec(api)
    the_clock = make_clock(clock, speed) if isinstance(clock, str) else clock
    policy = advance if isinstance(advance, Advance) or advance is None else Advance(advance, polls)
    m = Mock(spec, clock=the_clock, seed=seed, journal_size=journal_size,
             allow_private_callbacks=allow_private_callbacks, advance=policy,
             webhook_secret=webhook_secret, webhook_timeout=webhook_timeout, **mock_options)
    if faults:
        set_faults(m, faults)
    if scenario is not None:
        install_scenario(m, scenario)
    return m
