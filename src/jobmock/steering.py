"""How a job is steered from outside its timing model: polls under a polls policy, forced
statuses, cancel, delete, and paging through a tenant's jobs.

Functions of an :class:`~jobmock.engine.Engine`, which calls them from its methods of the
same names; kept apart so the engine module stays small. Pure and synchronous like it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .lifecycle import walk_from
from .records import Job
from .specmodel import TERMINAL_ROLES

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["cancel", "delete", "force", "jump", "page", "read"]

# heap entry kinds, shared with the engine
_START, _PROGRESS, _FINISH, _READY, _DEADLINE, _CALL, _FORGET, _STEP = range(8)


def read(engine: Engine, job: Job) -> None:
    """Record a poll of ``job``; under the ``polls`` policy this may move it one step."""
    job.polls += 1
    if job.advance.mode != "polls" or engine.is_terminal(job):
        return
    if job.polls % job.advance.polls:
        return
    now = engine.clock.now()
    if engine.role(job) == "queued":
        limit = engine.spec.limits.concurrency_max
        if limit is not None and engine._running.get(job.tenant, 0) >= limit:
            return
        waiting = engine._waiting.get(job.tenant)
        if waiting and job.id in waiting:
            waiting.remove(job.id)
        engine._start(job, now)
        return
    at = next((i for i, (w, _) in enumerate(job.path) if w == job.status), None)
    if at is not None and at + 1 < len(job.path):
        engine._step(job, now, at + 1)
    else:
        engine._finish(job, now, job.outcome)

def force(engine: Engine, job_id: str, status: str, *, error: Any = None, result: Any = None,
          when: str = "now") -> Job:
    """Force ``job_id`` to ``status`` (a status word or a role).

    ``when="now"`` moves it at once (through running if the lifecycle requires);
    ``when="scheduled"`` only replaces the outcome it will reach. Raises
    :class:`KeyError` for an unknown job and :class:`ValueError` for a move the
    lifecycle does not allow.
    """
    engine.run_due()
    job = engine.store.get(job_id)
    if job is None:
        raise KeyError(job_id)
    lc = engine.spec.lifecycle
    word = status if status in lc.states else lc.word(status)
    if word is None:
        raise ValueError(f"{status!r} is neither a status word {sorted(lc.states)} "
                         f"nor a role of this API")
    if engine.is_terminal(job):
        raise ValueError(f"job {job_id} is already {job.status}; a terminal job never changes")
    if when not in ("now", "scheduled"):
        raise ValueError(f"when must be 'now' or 'scheduled', got {when!r}")
    role = lc.states[word]
    if error is not None:
        job.forced_error = error
    if result is not None:
        job.forced_result = result
    now = engine.clock.now()
    if role in TERMINAL_ROLES:
        if lc.route(job.status, word) is None:
            raise ValueError(f"{job.status!r} cannot reach {word!r} by this API's transitions")
        if when == "scheduled":
            end = job.path[-1][0] if job.path else job.status
            if not lc.can_move(end, word):
                raise ValueError(f"a scheduled outcome is reached from the job's last state "
                                 f"{end!r}, which cannot move to {word!r}; force it now")
            job.outcome = word
            return job
        engine._dequeue(job)
        engine._finish(job, now, word)
    elif role != "queued":
        route = lc.route(job.status, word) if job.status != word else None
        if route is None:
            state = "queued" if engine.role(job) == "queued" else "not queued"
            raise ValueError(f"job {job_id} is {job.status} ({state}), which cannot move to "
                             f"{word!r} by this API's transitions")
        if engine.role(job) == "queued":
            limit = engine.spec.limits.concurrency_max
            if limit is not None and engine._running.get(job.tenant, 0) >= limit:
                raise ValueError(f"tenant {job.tenant!r} already runs {limit} jobs "
                                 f"(limits.concurrency.max)")
            engine._dequeue(job)
            if [w for w, _ in job.path[:len(route)]] != list(route):
                # Make the job's path start with this route, then go on by the flow.
                rest, outcome = walk_from(engine.spec, engine.rng, word)
                stay = _stay(engine, word)
                job.path = (*((w, 0.0) for w in route[:-1]), (word, stay), *rest)
                job.outcome, job.running_for = outcome, sum(d for _, d in job.path)
            # Starting claims the run (and a gate, where there is one) as a timed start does.
            engine._start(job, now)
            return job
        for step in route[:-1]:
            engine._move(job, step, now)
        engine._jump(job, word, now)
    else:
        raise ValueError(f"cannot force a job back to {word!r}")
    return job

def cancel(engine: Engine, job: Job, to: str, via: str | None = None) -> bool:
    """Cancel ``job``: straight to the terminal word ``to``, or through the transient
    ``via`` first (for ``timing.flow[via].for`` seconds). Whatever was due by now has
    fired first, so a cancel racing completion ends in exactly one terminal state,
    decided by the clock. Returns False when the job had already ended."""
    engine.run_due()
    if engine.is_terminal(job) or (via is not None and job.status == via):
        return not engine.is_terminal(job)
    if not engine.spec.lifecycle.can_move(job.status, via or to):
        return False  # this state can't be canceled: answered like an ended job
    now = engine.clock.now()
    engine._dequeue(job)
    job.outcome = to
    if via is None:
        engine._finish(job, now, to)
        return True
    job.gen += 1  # what was scheduled for the old path no longer fires
    engine._move(job, via, now)
    step = engine.spec.timing.flow.get(via)
    stay = engine.rng.uniform(*step.duration) if step is not None else 0.0
    engine._push(now + stay, _FINISH, job)
    return True

def delete(engine: Engine, job: Job) -> None:
    """Forget ``job``: its entries, gate and idempotency key go with it."""
    engine._dequeue(job)
    job.gen += 1
    lc = engine.spec.lifecycle
    role = lc.states[job.status]
    if role == "queued":
        engine._queued[job.tenant] = engine._queued.get(job.tenant, 1) - 1
    elif role not in TERMINAL_ROLES and role == "running":
        engine._running[job.tenant] = engine._running.get(job.tenant, 1) - 1
    if job.gate_key is not None and job.id in engine._gates.get(job.gate_key, []):
        engine._gates[job.gate_key].remove(job.id)
    if job.credits_to_charge is not None and role not in TERMINAL_ROLES:
        engine._held[job.tenant] = engine._held.get(job.tenant, 0) - job.credits_to_charge
    engine._fire_watches(job)
    engine._forget(job, engine.clock.now())

def page(engine: Engine, tenant: str | None, *, limit: int, after: str | None = None,
         where: Mapping[str, str] | None = None) -> tuple[list[Job], bool]:
    """The tenant's jobs, newest first, after the job ``after`` (exclusive), filtered by
    ``where`` (job field -> value); and whether more follow."""
    out: list[Job] = []
    seen_cursor = after is None
    for job in reversed(list(engine.store)):
        if job.tenant != tenant:
            continue
        if not seen_cursor:
            seen_cursor = job.id == after
            continue
        if where and any(str(getattr(job, f)) != v for f, v in where.items()):
            continue
        if len(out) == limit:
            return out, True
        out.append(job)
    return out, False

def jump(engine: Engine, job: Job, word: str, at: float) -> None:
    """Move a job to the non-terminal ``word`` now, and go on from there: along its path
    if ``word`` is on it, else along a continuation drawn from that state's own ``next``
    (``timing.flow``) to an outcome it can reach."""
    job.gen += 1  # the old schedule no longer fires
    engine._move(job, word, at)
    index = next((i for i, (w, _) in enumerate(job.path) if w == word), None)
    if index is None:
        rest, outcome = walk_from(engine.spec, engine.rng, word)
        step = engine.spec.timing.flow.get(word)
        stay = engine.rng.uniform(*(step.duration if step else engine.spec.timing.running))
        job.path, job.outcome, index = ((word, stay), *rest), outcome, 0
    job.running_for = sum(d for _, d in job.path[index:])
    if job.advance.mode != "time":
        return
    due = at
    for i in range(index + 1, len(job.path)):
        due += job.path[i - 1][1]
        engine._push(due, _STEP, job, i)
    engine._push(due + job.path[-1][1], _FINISH, job)


def _stay(engine: Engine, word: str) -> float:
    step = engine.spec.timing.flow.get(word)
    return engine.rng.uniform(*(step.duration if step else engine.spec.timing.running))
