"""The engine's plain records: jobs, plans, advance policies, events.

Leaves of the core: both the engine and the job stores import them; they import only the
spec model and the time formatting of :mod:`jobmock.templates`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .spec import ApiSpec
from .templates import iso

__all__ = ["Advance", "Event", "Job", "JobPlan", "JobView", "Revised", "epoch_ms", "epoch_s",
           "track_revisions"]

#: Where revisions come from: one counter for the process, so a revision never repeats.
_REVISIONS = itertools.count(1)


class Revised:
    """A record whose ``rev`` changes on every assignment to it, once
    :func:`track_revisions` is on: a shared store saves only the records a turn changed.
    Off (the default, one process in memory), assignments cost nothing extra."""

    __slots__ = ()


def _revising_setattr(self: Any, name: str, value: Any) -> None:
    object.__setattr__(self, name, value)
    object.__setattr__(self, "rev", next(_REVISIONS))


def track_revisions() -> None:
    """Count revisions of every :class:`Revised` record from now on (a shared store)."""
    Revised.__setattr__ = _revising_setattr  # type: ignore[method-assign]


@dataclass(frozen=True, slots=True)
class Advance:
    """How jobs advance: ``time`` (default), ``polls`` (every ``polls`` reads move a job one
    step), or ``manual`` (only :meth:`Engine.force` moves a job)."""

    mode: str = "time"
    polls: int = 1

    def __post_init__(self) -> None:
        if self.mode not in ("time", "polls", "manual"):
            raise ValueError(f"advance mode must be time, polls or manual, got {self.mode!r}")
        if self.polls < 1:
            raise ValueError(f"polls must be at least 1, got {self.polls}")


@dataclass(frozen=True, slots=True)
class JobPlan:
    """Overrides of what the timing model would draw for one job (None: draw as usual).

    ``polls``: under this plan the job moves one step every ``polls`` reads instead of by
    time. ``error`` / ``result`` replace what the outcome would carry. ``progress``
    replaces the spec's progress steps (``(pct, message)`` pairs, spread over the run).
    """

    queued_for: float | None = None
    running_for: float | None = None
    outcome: str | None = None
    error: Any = None
    result: Any = None
    polls: int | None = None
    manual: bool = False
    progress: tuple[tuple[int, str], ...] | None = None
    #: The non-terminal status words to pass through after queued, in order (a lifecycle
    #: graph's path; durations are still drawn, ``running_for`` spread over them).
    path: tuple[str, ...] | None = None


@dataclass(slots=True)
class Job(Revised):
    """One job. Fields are the engine's; a spec's templates read them through :class:`JobView`."""

    id: str
    seq: int
    tenant: str | None
    type: str
    operation_id: str
    request: Any
    params: dict[str, str]
    query: dict[str, str]
    status: str
    created_at: float
    updated_at: float
    queued_for: float
    running_for: float
    outcome: str
    advance: Advance
    started_at: float | None = None
    completed_at: float | None = None
    attempt_count: int = 0
    progress_pct: int = 0
    progress_message: str | None = None
    result: Any = None
    error: Any = None
    forced_error: Any = None
    forced_result: Any = None
    idempotency_key: str | None = None
    conflicting_job_id: str | None = None
    credits_to_charge: int | None = None
    credits_charged: int | None = None
    callback_url: str | None = None
    base_url: str | None = None
    items_count: int | None = None
    gate_key: str | None = None
    progress_steps: tuple[tuple[int, str], ...] | None = None
    #: The states after queued and the seconds in each, drawn at creation (see Timing.flow).
    path: tuple[tuple[str, float], ...] = ()
    polls: int = 0
    gen: int = 0
    history: list[tuple[str, float]] = field(default_factory=list)
    #: Changes on every assignment when revisions are tracked (see :class:`Revised`).
    rev: int = field(default=0, compare=False, repr=False)

    def as_dict(self, spec: ApiSpec) -> dict[str, Any]:
        """A plain view for the control plane and the Python API."""
        return {
            "id": self.id, "tenant": self.tenant, "type": self.type,
            "operation": self.operation_id, "status": self.status,
            "role": spec.lifecycle.states[self.status],
            "created_at": iso(self.created_at), "updated_at": iso(self.updated_at),
            "started_at": iso(self.started_at), "completed_at": iso(self.completed_at),
            "attempt_count": self.attempt_count, "progress_pct": self.progress_pct,
            "progress_message": self.progress_message, "result": self.result,
            "error": self.error, "request": self.request, "params": self.params,
            "idempotency_key": self.idempotency_key,
            "conflicting_job_id": self.conflicting_job_id,
            "credits_to_charge": self.credits_to_charge,
            "credits_charged": self.credits_charged, "callback_url": self.callback_url,
            "planned": {"queued_for": self.queued_for, "running_for": self.running_for,
                        "path": [{"status": w, "for": d} for w, d in self.path],
                        "outcome": self.outcome, "advance": self.advance.mode},
            "polls": self.polls,
            "history": [{"status": s, "at": iso(t)} for s, t in self.history],
        }


def _entered(job: Job, fmt: Callable[[float], Any]) -> dict[str, Any]:
    """Status word -> when the job first entered it (``{job.entered_s.finalizing}``)."""
    out: dict[str, Any] = {}
    for word, at in job.history:
        out.setdefault(word, fmt(at))
    return out


def epoch_s(t: float | None) -> int | None:
    """Whole epoch seconds (OpenAI's ``created_at``), or None."""
    return None if t is None else int(t)


def epoch_ms(t: float | None) -> int | None:
    return None if t is None else round(t * 1000)


_FIELDS: dict[str, Callable[[Job, ApiSpec], Any]] = {
    "id": lambda j, s: j.id,
    "type": lambda j, s: j.type,
    "status": lambda j, s: j.status,
    "role": lambda j, s: s.lifecycle.states[j.status],
    "tenant": lambda j, s: j.tenant,
    "created_at": lambda j, s: iso(j.created_at),
    "created_at_ms": lambda j, s: epoch_ms(j.created_at),
    "updated_at": lambda j, s: iso(j.updated_at),
    "updated_at_ms": lambda j, s: epoch_ms(j.updated_at),
    "started_at": lambda j, s: iso(j.started_at),
    "started_at_ms": lambda j, s: epoch_ms(j.started_at),
    "completed_at": lambda j, s: iso(j.completed_at),
    "completed_at_ms": lambda j, s: epoch_ms(j.completed_at),
    "created_at_s": lambda j, s: epoch_s(j.created_at),
    "updated_at_s": lambda j, s: epoch_s(j.updated_at),
    "started_at_s": lambda j, s: epoch_s(j.started_at),
    "completed_at_s": lambda j, s: epoch_s(j.completed_at),
    "entered": lambda j, s: _entered(j, iso),
    "entered_s": lambda j, s: _entered(j, epoch_s),
    "entered_ms": lambda j, s: _entered(j, epoch_ms),
    "attempt_count": lambda j, s: j.attempt_count,
    "progress_pct": lambda j, s: j.progress_pct,
    "progress_message": lambda j, s: j.progress_message,
    "result": lambda j, s: j.result,
    "error": lambda j, s: j.error,
    "request": lambda j, s: j.request,
    "params": lambda j, s: j.params,
    "query": lambda j, s: j.query,
    "idempotency_key": lambda j, s: j.idempotency_key,
    "conflicting_job_id": lambda j, s: j.conflicting_job_id,
    "credits_to_charge": lambda j, s: j.credits_to_charge,
    "credits_charged": lambda j, s: j.credits_charged,
    "callback_url": lambda j, s: j.callback_url,
    "items_count": lambda j, s: j.items_count,
}


class JobView:
    """A read-only mapping of a job's template fields (see ``ARCHITECTURE.md``), computed on use."""

    __slots__ = ("job", "spec")

    def __init__(self, job: Job, spec: ApiSpec) -> None:
        self.job = job
        self.spec = spec

    def get(self, name: str, default: Any = None) -> Any:
        f = _FIELDS.get(name)
        return f(self.job, self.spec) if f is not None else default


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened to a job: ``created``, ``transition``, ``progress``, or
    ``forgotten`` (its retention ran out and the engine dropped it)."""

    kind: str
    job: Job
    at: float
    old: str | None = None
    new: str | None = None
