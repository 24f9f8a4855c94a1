"""The engine: jobs, their lifecycle, the scheduler and the limits. Pure and synchronous.

The engine reads its spec and its clock and nothing else: no HTTP, no asyncio,
no sleeping. Every transition is an entry due at a clock time in one heap;
:meth:`Engine.run_due` fires, in time order, every entry due by ``clock.now()``.
Advancing a virtual clock and calling ``run_due`` therefore plays a whole
schedule deterministically.

How a job advances is a policy (:class:`Advance`): by time (the spec's timing
model, drawn per job from the seeded generator), after N polls, or only when
told (:meth:`Engine.force`).
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from . import pointers, steering
from .clock import Clock
from .errors import InsufficientCredits, LimitExceeded
from .ids import IdMaker
from .lifecycle import draw_path
from .records import Advance, Event, Job, JobPlan, JobView, epoch_ms
from .spec import TERMINAL_ROLES, ApiSpec, Operation
from .steering import (  # the heap entry kinds, shared with the steering functions
    _CALL,
    _DEADLINE,
    _FINISH,
    _FORGET,
    _PROGRESS,
    _READY,
    _START,
    _STEP,
)
from .store import JobStore, MemoryStore
from .templates import iso

__all__ = ["CALL_KIND", "DEADLINE_KIND", "Advance", "Engine", "Event", "Job", "JobPlan",
           "JobView", "Timer", "Watch"]

#: The schedule's entry kinds that are not transitions: a timer, an inline wait's deadline.
CALL_KIND, DEADLINE_KIND = _CALL, _DEADLINE


@dataclass(slots=True)
class Timer:
    """A callback due at a clock time, from :meth:`Engine.call_at`; cancel with :meth:`cancel`."""

    when: float
    callback: Callable[[], None]
    done: bool = False
    #: Part of the state replicas share (a webhook attempt), not of one process (a delay).
    shared: bool = False

    def cancel(self) -> None:
        self.done = True


@dataclass(slots=True)
class Watch:
    """A registration from :meth:`Engine.watch`: fires once, at the job's end or the deadline."""

    job_id: str
    deadline: float
    callback: Callable[[Job, bool], None]
    done: bool = False

    def cancel(self) -> None:
        self.done = True




class Engine:
    """Holds every job of one API and moves them along the spec's lifecycle."""

    def __init__(self, spec: ApiSpec, clock: Clock, *, seed: int = 0,
                 store: JobStore | None = None, advance: Advance | None = None,
                 retain: float = 0.0) -> None:
        self.spec = spec
        self.clock = clock
        self.seed = seed
        self.store: JobStore = store if store is not None else MemoryStore()
        self.advance = advance or Advance()
        #: Clock seconds a terminal job is kept after it ends, then forgotten (its polls
        #: answer not-found); 0 keeps every job. Applies to jobs that end from now on.
        self.retain = retain
        self._ops: dict[str, Operation] = {o.operation_id: o for o in spec.operations}
        self._subscribers: list[Callable[[Event], None]] = []
        self._schedule_listeners: list[Callable[[float], None]] = []
        #: Switched off only by the mock's deliberate faults (jobmock.faults).
        self.enforce_gate = True
        self.honour_idempotency = True
        #: Under a concurrency limit, start the newest waiting job first (a deliberate fault).
        self.queue_lifo = False
        self._reset_state()

    # -- state ------------------------------------------------------------------

    def _reset_state(self) -> None:
        self.rng = random.Random(self.seed)
        self._ids = IdMaker(self.spec.ids, random.Random(f"ids-{self.seed}"))
        self._heap: list[tuple[float, int, int, str, int, Any]] = []
        self._counter = 0
        self._seq = 0
        self._queued: dict[str | None, int] = {}
        self._running: dict[str | None, int] = {}
        self._waiting: dict[str | None, deque[str]] = {}
        self._gates: dict[str, list[str]] = {}
        self._idempotency: dict[tuple[str | None, str], str] = {}
        self._watches: dict[str, list[Watch]] = {}
        self._now = self.clock.now()
        #: Credit balances by tenant (absent: no limit), and credits held by unfinished jobs.
        self._balances: dict[str | None, int] = {
            t: b for t, b in self.spec.credits_balances.items()}
        self._held: dict[str | None, int] = {}

    def reset(self) -> None:
        """Forget every job and pending entry; the generator restarts from the seed."""
        for watches in self._watches.values():
            for w in watches:
                w.done = True
        for entry in self._heap:
            if entry[2] == _CALL:
                entry[5].done = True
        self.store.clear()
        self._reset_state()

    def subscribe(self, callback: Callable[[Event], None]) -> None:
        """Call ``callback`` with every :class:`Event`, synchronously, in order."""
        self._subscribers.append(callback)

    def on_schedule(self, callback: Callable[[float], None]) -> None:
        """Call ``callback(due)`` whenever an entry is scheduled (an adapter's ticker wakes)."""
        self._schedule_listeners.append(callback)

    def _emit(self, event: Event) -> None:
        for s in self._subscribers:
            s(event)

    def _push(self, due: float, kind: int, job: Job, payload: Any = None) -> None:
        self._counter += 1
        heapq.heappush(self._heap, (due, self._counter, kind, job.id, job.gen, payload))
        for listener in self._schedule_listeners:
            listener(due)

    # -- reading ------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        return self.store.get(job_id)

    def jobs(self) -> Iterator[Job]:
        return iter(self.store)

    def role(self, job: Job) -> str:
        return self.spec.lifecycle.states[job.status]

    def is_terminal(self, job: Job) -> bool:
        return self.spec.lifecycle.states[job.status] in TERMINAL_ROLES

    def view(self, job: Job) -> JobView:
        return JobView(job, self.spec)

    def next_due(self) -> float | None:
        """When the earliest pending entry is due, or None."""
        while self._heap:
            due, _, kind, job_id, gen, payload = self._heap[0]
            if kind in (_DEADLINE, _CALL):
                if not payload.done:
                    return due
            else:
                job = self.store.get(job_id)
                if job is not None and job.gen == gen:
                    return due
            heapq.heappop(self._heap)
        return None

    def counts(self) -> dict[str, int]:
        """Jobs by status word."""
        out: dict[str, int] = {}
        for job in self.store:
            out[job.status] = out.get(job.status, 0) + 1
        return out

    def footprint(self) -> dict[str, int]:
        """How much the engine holds: jobs stored, heap entries, and the entries of each
        index (idempotency keys, gates, waiting queues, watched jobs). Retention bounds them."""
        return {"jobs": len(self.store), "heap": len(self._heap),
                "idempotency_keys": len(self._idempotency), "gates": len(self._gates),
                "waiting": sum(len(q) for q in self._waiting.values()),
                "watched": len(self._watches)}

    def credits(self) -> dict[str, dict[str, int | None]]:
        """Each tenant's credits: ``balance`` (None: no limit), ``held`` by its unfinished
        jobs, and ``available`` (balance less held) to the next submit."""
        out: dict[str, dict[str, int | None]] = {}
        for tenant in self.spec.auth.tenants:
            balance, held = self._balances.get(tenant), self._held.get(tenant, 0)
            out[tenant] = {"balance": balance, "held": held,
                           "available": None if balance is None else balance - held}
        return out

    def set_credits(self, tenant: str, balance: int) -> None:
        """Set ``tenant``'s credit balance (until :meth:`reset`, which restores the spec's)."""
        if tenant not in self.spec.auth.tenants:
            raise KeyError(tenant)
        self._balances[tenant] = balance

    # -- submitting -----------------------------------------------------------------

    def submit(self, operation: Operation | str, *, tenant: str | None, body: Any = None,
               params: Mapping[str, str] | None = None, query: Mapping[str, str] | None = None,
               callback_url: str | None = None, request_context: Mapping[str, Any] | None = None,
               base_url: str | None = None, plan: JobPlan | None = None) -> tuple[Job, bool]:
        """Create a job (or return the one its idempotency key names).

        Returns ``(job, created)``. Raises :class:`InsufficientCredits` when the
        tenant's available credits are below the job's cost, :class:`LimitExceeded`
        when the queue limit or the gate refuses it; then no job is created.
        """
        self.run_due()
        op = self._ops[operation] if isinstance(operation, str) else operation
        spec = self.spec
        now = self.clock.now()
        key = None
        if spec.idempotency_pointer is not None:
            raw = pointers.get(body, spec.idempotency_pointer)
            key = raw if isinstance(raw, str) and raw else None
            if key is not None and self.honour_idempotency:
                existing = self._idempotency.get((tenant, key))
                if existing is not None and (job := self.store.get(existing)) is not None:
                    return job, False
        ctx: dict[str, Any] = {"request": dict(request_context or {}), "tenant": tenant,
                               "now": iso(now), "now_ms": epoch_ms(now)}
        ctx["request"].setdefault("body", body)
        ctx["request"].setdefault("params", dict(params or {}))
        ctx["request"].setdefault("query", dict(query or {}))
        job_type = str(op.job_type(ctx)) if op.job_type else op.operation_id
        cost = op.credits if op.credits is not None else spec.credits_cost
        balance = self._balances.get(tenant)
        if cost and balance is not None and balance - self._held.get(tenant, 0) < cost:
            available = balance - self._held.get(tenant, 0)
            raise InsufficientCredits(f"the job costs {cost} credits; {available} are available")
        lim = spec.limits
        if lim.queue_max is not None and self._queued.get(tenant, 0) >= lim.queue_max:
            raise LimitExceeded(f"queue limit of {lim.queue_max} jobs reached",
                                error_name=lim.queue_error)
        gate_key = None
        if lim.gate is not None and self.enforce_gate:
            gctx = {**ctx, "job": {"params": dict(params or {}), "type": job_type,
                                   "tenant": tenant, "request": body}}
            gate_key = f"{tenant}|{lim.gate.key(gctx)}"
            for other_id in self._gates.get(gate_key, ()):
                other = self.store.get(other_id)
                if other is not None and self.role(other) in lim.gate.blocks_submit_while:
                    raise LimitExceeded(
                        f"a {job_type} job is already in flight: {other.id}",
                        error_name=lim.gate.error,
                        context={"conflict": {"id": other.id, "status": other.status}},
                    )
        self._seq += 1
        queued_for, path, outcome = draw_path(spec, self.rng, plan)
        running_for = sum(d for _, d in path)
        advance = self.advance
        if plan is not None:
            if plan.manual:
                advance = Advance("manual")
            elif plan.polls is not None:
                advance = Advance("polls", plan.polls)
        items = pointers.get(body, op.items_pointer) if op.items_pointer else None
        job = Job(
            id=self._new_id(), seq=self._seq, tenant=tenant, type=job_type,
            operation_id=op.operation_id, request=body, params=dict(params or {}),
            query=dict(query or {}), status=spec.lifecycle.queued, created_at=now,
            updated_at=now, queued_for=queued_for, running_for=running_for, outcome=outcome,
            advance=advance, idempotency_key=key, callback_url=callback_url, base_url=base_url,
            items_count=len(items) if isinstance(items, list) else None,
            credits_to_charge=cost, credits_charged=0 if cost is not None else None,
            gate_key=gate_key, path=path,
        )
        if plan is not None:
            job.forced_error, job.forced_result = plan.error, plan.result
            job.progress_steps = plan.progress
        job.history.append((job.status, now))
        self.store.put(job)
        self._queued[tenant] = self._queued.get(tenant, 0) + 1
        if key is not None:
            self._idempotency[(tenant, key)] = job.id
        if cost is not None:
            self._held[tenant] = self._held.get(tenant, 0) + cost
        if gate_key is not None:
            self._gates.setdefault(gate_key, []).append(job.id)
        self._emit(Event("created", job, now, None, job.status))
        if lim.concurrency_max is not None and job.advance.mode == "time":
            self._waiting.setdefault(tenant, deque()).append(job.id)
        if job.advance.mode == "time":
            kind = _READY if lim.concurrency_max is not None else _START
            self._push(now + queued_for, kind, job)
        return job, True

    def _new_id(self) -> str:
        for _ in range(100):
            candidate = self._ids()
            if self.store.get(candidate) is None:
                return candidate
        raise RuntimeError(f"could not draw a fresh id from template {self.spec.ids!r}")

    # -- time ------------------------------------------------------------------------

    def run_due(self, until: float | None = None) -> int:
        """Fire every entry due by ``until`` (default: the clock's now), in time order.

        Returns how many entries fired.
        """
        limit = self.clock.now() if until is None else until
        fired = 0
        heap = self._heap
        while heap and heap[0][0] <= limit:
            due, _, kind, job_id, gen, payload = heapq.heappop(heap)
            if kind == _DEADLINE:
                watch: Watch = payload
                if not watch.done:
                    watch.done = True
                    job = self.store.get(job_id)
                    if job is not None:
                        watch.callback(job, False)
                    fired += 1
                continue
            if kind == _CALL:
                timer: Timer = payload
                if not timer.done:
                    timer.done = True
                    timer.callback()
                    fired += 1
                continue
            job = self.store.get(job_id)
            if job is None or job.gen != gen:
                continue
            self._now = max(self._now, due)
            fired += 1
            if kind == _START:
                self._start(job, due)
            elif kind == _READY:
                self._pump(job.tenant, due)
            elif kind == _PROGRESS:
                self._progress(job, due, payload)
            elif kind == _FINISH:
                self._finish(job, due, job.outcome)
            elif kind == _FORGET:
                self._forget(job, due)
            elif kind == _STEP:
                self._step(job, due, payload)
        return fired

    def advance_clock(self, seconds: float) -> int:
        """Move a virtual clock forward and fire what fell due, entry by entry."""
        advance = getattr(self.clock, "advance", None)
        if advance is None:
            raise TypeError("only a virtual clock can be advanced")
        target = self.clock.now() + seconds
        fired = 0
        # Step through due times so callbacks observe the clock at each entry's time.
        while (nxt := self.next_due()) is not None and nxt <= target:
            if nxt > self.clock.now():
                self.clock.set(nxt)  # type: ignore[attr-defined]
            fired += self.run_due()
        # (a callback may have moved the clock past the target: an in-process slow receiver)
        self.clock.set(max(target, self.clock.now()))  # type: ignore[attr-defined]
        return fired + self.run_due()

    # -- transitions -----------------------------------------------------------------

    def _move(self, job: Job, new: str, at: float) -> None:
        old = job.status
        lc = self.spec.lifecycle
        old_role, new_role = lc.states[old], lc.states[new]
        job.status = new
        job.updated_at = max(at, job.updated_at)
        job.history.append((new, job.updated_at))
        if old_role == "queued" and new_role != "queued":
            self._queued[job.tenant] = self._queued.get(job.tenant, 1) - 1
        if old_role == "running" and new_role != "running":
            self._running[job.tenant] = self._running.get(job.tenant, 1) - 1
        if new_role == "running" and old_role != "running":
            self._running[job.tenant] = self._running.get(job.tenant, 0) + 1
        if new_role in TERMINAL_ROLES:
            job.completed_at = job.updated_at
            job.gen += 1  # cancels anything still scheduled for it
            if job.gate_key is not None:
                holders = self._gates.get(job.gate_key, [])
                if job.id in holders:
                    holders.remove(job.id)
                if not holders:
                    self._gates.pop(job.gate_key, None)
            if self.retain > 0:
                self._push(job.completed_at + self.retain, _FORGET, job)
        self._emit(Event("transition", job, job.updated_at, old, new))
        if new_role in TERMINAL_ROLES:
            self._fire_watches(job)
            if old_role == "running" and self.spec.limits.concurrency_max is not None:
                self._pump(job.tenant, job.updated_at)

    def _pump(self, tenant: str | None, at: float) -> None:
        """Start waiting jobs of ``tenant`` in FIFO order while the concurrency limit allows."""
        limit = self.spec.limits.concurrency_max
        waiting = self._waiting.get(tenant)
        while waiting and (limit is None or self._running.get(tenant, 0) < limit):
            head = waiting[-1] if self.queue_lifo else waiting[0]
            job = self.store.get(head)
            if job is None or self.role(job) != "queued":
                waiting.pop() if self.queue_lifo else waiting.popleft()
                continue
            if job.advance.mode == "time" and job.created_at + job.queued_for > at:
                break  # the head is not ready yet; FIFO holds the rest behind it
            if job.advance.mode != "time":
                break
            waiting.pop() if self.queue_lifo else waiting.popleft()
            self._start(job, at)

    def _start(self, job: Job, at: float) -> None:
        if self.role(job) != "queued":
            return
        gate = self.spec.limits.gate
        if gate is not None and gate.claim_conflict is not None and job.gate_key is not None:
            holder = self._gate_holder(job)
            if holder is not None:
                # The run is claimed (an attempt, a start time), then the gate is not.
                job.started_at = at
                job.attempt_count += 1
                job.conflicting_job_id = holder.id
                self._finish(job, at, gate.claim_conflict)
                return
        if not job.path:
            # It ends straight from queued: it never ran, so it has no start time.
            self._finish(job, at, job.outcome)
            return
        job.started_at = at
        job.attempt_count += 1
        self._move(job, job.path[0][0], at)
        if job.advance.mode == "time":
            self._schedule_running(job, at)

    def _gate_holder(self, job: Job) -> Job | None:
        """The run that holds ``job``'s gate, or None: one running, else the first dispatched
        before ``job`` and still waiting. The first run claims the gate; whichever run starts
        first, a later dispatch never takes the gate from an earlier one."""
        others = [o for i in self._gates.get(job.gate_key or "", ())
                  if (o := self.store.get(i)) is not None and o.id != job.id]
        running = next((o for o in others if self.role(o) == "running"), None)
        return running or next(
            (o for o in others if self.role(o) == "queued" and o.seq < job.seq), None)

    def _schedule_running(self, job: Job, at: float) -> None:
        steps = self._steps(job)
        n = len(steps)
        for i in range(n):
            self._push(at + job.running_for * (i + 1) / (n + 1), _PROGRESS, job, i)
        due = at
        for index in range(1, len(job.path)):
            due += job.path[index - 1][1]
            self._push(due, _STEP, job, index)
        self._push(at + job.running_for, _FINISH, job)

    def _step(self, job: Job, at: float, index: int) -> None:
        """Move ``job`` to the ``index``-th state of its path (a lifecycle graph's next state)."""
        word = job.path[index][0]
        if self.is_terminal(job) or job.status == word:
            return
        self._move(job, word, at)

    def _steps(self, job: Job) -> tuple[tuple[int, str], ...]:
        return job.progress_steps if job.progress_steps is not None else self.spec.progress_steps

    def _progress(self, job: Job, at: float, index: int) -> None:
        pct, message = self._steps(job)[index]
        if pct < job.progress_pct or self.role(job) == "queued" or self.is_terminal(job):
            return
        job.progress_pct, job.progress_message = pct, message
        job.updated_at = max(at, job.updated_at)
        self._emit(Event("progress", job, job.updated_at, job.status, job.status))

    def _finish(self, job: Job, at: float, word: str) -> None:
        """End ``job`` with the terminal status ``word``, through the states the transitions
        require on the way (the shortest route), all at ``at``."""
        lc = self.spec.lifecycle
        spec = self.spec
        if lc.states[job.status] in TERMINAL_ROLES:
            return
        if not lc.can_move(job.status, word):
            for step in (lc.route(job.status, word) or (word,))[:-1]:
                if job.started_at is None:
                    job.started_at = at
                    job.attempt_count = max(job.attempt_count, 1)
                self._move(job, step, at)
        role = lc.states[word]
        ctx = {"job": JobView(job, spec), "now": iso(at), "now_ms": epoch_ms(at), "tenant": job.tenant}
        if role == "completed":
            if job.forced_result is not None:
                job.result = job.forced_result
            else:
                renderer = spec.outcome_results.get(word) or self._ops[job.operation_id].result
                job.result = renderer(ctx) if renderer is not None else {}
            if spec.progress_steps:
                job.progress_pct, job.progress_message = 100, spec.progress_done_message
        if job.forced_error is not None:
            job.error = job.forced_error
        elif word in spec.outcome_errors:
            job.error = spec.outcome_errors[word](ctx)
        if job.credits_to_charge is not None:
            charged = job.credits_to_charge if word in spec.credits_charge_on else 0
            job.credits_charged = charged
            # The hold taken at submit ends; only an outcome in charge_on is charged.
            self._held[job.tenant] = self._held.get(job.tenant, 0) - job.credits_to_charge
            if job.tenant in self._balances:
                self._balances[job.tenant] -= charged
        self._move(job, word, at)

    # -- policies, forcing, cancel, delete, paging (in jobmock.steering) ------------------

    def read(self, job: Job) -> None:
        """Record a poll of ``job``; under the ``polls`` policy this may move it one step."""
        steering.read(self, job)

    def force(self, job_id: str, status: str, *, error: Any = None, result: Any = None,
              when: str = "now") -> Job:
        """Force ``job_id`` to ``status`` (a status word or a role); see :func:`steering.force`."""
        return steering.force(self, job_id, status, error=error, result=result, when=when)

    def cancel(self, job: Job, to: str, via: str | None = None) -> bool:
        """Cancel ``job`` (to ``to``, through ``via``); False if it had ended or can't be."""
        return steering.cancel(self, job, to, via)

    def delete(self, job: Job) -> None:
        """Forget ``job``: its entries, gate, idempotency key and held credits go with it."""
        steering.delete(self, job)

    def page(self, tenant: str | None, *, limit: int, after: str | None = None,
             where: Mapping[str, str] | None = None) -> tuple[list[Job], bool]:
        """The tenant's jobs, newest first, after ``after``; and whether more follow."""
        return steering.page(self, tenant, limit=limit, after=after, where=where)

    def _jump(self, job: Job, word: str, at: float) -> None:
        steering.jump(self, job, word, at)

    def _dequeue(self, job: Job) -> None:
        waiting = self._waiting.get(job.tenant)
        if waiting and job.id in waiting:
            waiting.remove(job.id)

    def _forget(self, job: Job, at: float) -> None:
        """Drop a terminal job whose retention ran out, and every index entry naming it."""
        self.store.delete(job.id)
        if job.idempotency_key is not None:
            index = (job.tenant, job.idempotency_key)
            if self._idempotency.get(index) == job.id:
                del self._idempotency[index]
        self._watches.pop(job.id, None)
        self._emit(Event("forgotten", job, at))

    def set_advance(self, advance: Advance) -> None:
        """Switch the policy for jobs submitted from now on."""
        self.advance = advance

    def terminal_due(self, job: Job) -> float | None:
        """When ``job`` is scheduled to reach a terminal status, if that is known now."""
        if self.is_terminal(job):
            return job.completed_at
        if job.advance.mode != "time":
            return None
        if self.role(job) == "running" and job.started_at is not None:
            return job.started_at + job.running_for
        if self.spec.limits.concurrency_max is None:
            return job.created_at + job.queued_for + job.running_for
        return None

    # -- waiting ---------------------------------------------------------------------------

    def watch(self, job: Job, deadline: float, callback: Callable[[Job, bool], None]) -> Watch:
        """Call ``callback(job, True)`` when ``job`` ends, or ``callback(job, False)`` at
        ``deadline``, whichever comes first, once. Cancel with :meth:`Watch.cancel`."""
        w = Watch(job.id, deadline, callback)
        job = self.store.get(job.id) or job  # the state may have been restored meanwhile
        if self.is_terminal(job):
            w.done = True
            callback(job, True)
            return w
        self._watches.setdefault(job.id, []).append(w)
        self._counter += 1
        heapq.heappush(self._heap, (deadline, self._counter, _DEADLINE, job.id, 0, w))
        for listener in self._schedule_listeners:
            listener(deadline)
        return w

    def call_at(self, when: float, callback: Callable[[], None], *, shared: bool = False,
                ) -> Timer:
        """Call ``callback()`` once the clock reaches ``when`` (from :meth:`run_due`).

        ``shared``: the timer is part of the mock's state (replicas on a shared store run
        it once, wherever it falls due); ``callback`` must then be a picklable
        ``functools.partial`` of a method of the engine or the delivery book.
        """
        timer = Timer(when, callback, shared=shared)
        self._counter += 1
        heapq.heappush(self._heap, (when, self._counter, _CALL, "", 0, timer))
        for listener in self._schedule_listeners:
            listener(when)
        return timer

    def after_restore(self) -> None:
        """The state was replaced (a shared store's snapshot): fire the inline waits whose
        job ended or is gone, and tell schedule listeners when the next entry is due."""
        for job_id in list(self._watches):
            job = self.store.get(job_id)
            if job is not None and self.is_terminal(job):
                self._fire_watches(job)
        nxt = self.next_due()
        if nxt is not None:
            for listener in self._schedule_listeners:
                listener(nxt)

    def _fire_watches(self, job: Job) -> None:
        for w in self._watches.pop(job.id, ()):
            if not w.done:
                w.done = True
                w.callback(job, True)
