"""A Hypothesis state machine over the engine, once per bundled spec.

Rules submit jobs, move a virtual clock by random amounts, read jobs and force
them; after every step the invariants below must hold. What is allowed is read
from the spec (lifecycle transitions, limits, the gate), not from the engine.

Invariants:
- every status change follows ``lifecycle.transitions`` (checked on the event stream),
  and the event stream agrees with the store;
- a terminal job never changes (status, result, error, completed_at) and emits nothing;
- never more running jobs per tenant than ``limits.concurrency.max``; under that limit
  the scheduler starts each tenant's jobs in FIFO order and leaves no slot idle while
  the FIFO head is ready;
- queued jobs per tenant never exceed ``limits.queue.max``, and a submit is refused
  exactly when the queue is full;
- at most one job per gate key is running (bronid);
- event times never go backwards and never run ahead of the clock; a job left to the
  clock ends exactly ``running_for`` after it started.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from jobmock import ApiSpec, Engine, Event, Job, VirtualClock, bundled_names, resolve_spec
from jobmock.errors import LimitExceeded
from jobmock.spec import ROLES, TERMINAL_ROLES, build_spec

SETTINGS = settings(
    max_examples=100,
    stateful_step_count=30,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _tight_cloro() -> ApiSpec:
    """cloro with limits small enough for 30 steps to reach them."""
    doc = copy.deepcopy(dict(resolve_spec("cloro").document))
    doc["x-jobmock"]["limits"]["queue"]["max"] = 4
    doc["x-jobmock"]["limits"]["concurrency"]["max"] = 2
    return build_spec(doc, "cloro-tight.yaml", default_name="cloro")


SPECS: dict[str, ApiSpec] = {name: resolve_spec(name) for name in bundled_names()}
SPECS["cloro-tight"] = _tight_cloro()

TRACES = ("trace-a", "trace-b")
KEYS = ("key-1", "key-2")


class EngineMachine(RuleBasedStateMachine):
    spec: ClassVar[ApiSpec]
    jobs = Bundle("jobs")

    def __init__(self) -> None:
        super().__init__()
        spec = self.spec
        self.lc = spec.lifecycle
        self.limit = spec.limits.concurrency_max
        self.clock = VirtualClock()
        self.engine = Engine(spec, self.clock, seed=0)
        self.engine.subscribe(self._on_event)
        self.tenants = [t for t, _ in spec.demo_tenants()]
        self.violations: list[str] = []
        self.status: dict[str, str] = {}
        self.progress: dict[str, int] = {}
        self.frozen: dict[str, tuple[Any, ...]] = {}
        self.running: dict[str | None, set[str]] = defaultdict(set)
        self.scheduled_starts: dict[str | None, list[int]] = defaultdict(list)
        self.forcing: str | None = None  # the job a force() call is moving
        self.forced: set[str] = set()  # jobs moved by force(now) (no timing promise)
        self.keys: dict[tuple[str, str], str] = {}
        self.last_at = self.clock.now()

    # -- the event stream ----------------------------------------------------------------

    def _violate(self, message: str) -> None:
        self.violations.append(message)

    def _on_event(self, ev: Event) -> None:
        job, states = ev.job, self.lc.states
        if ev.at < self.last_at:
            self._violate(f"event time went back: {ev.at} < {self.last_at}")
        if ev.at > self.clock.now():
            self._violate(f"event at {ev.at} is ahead of the clock {self.clock.now()}")
        self.last_at = max(self.last_at, ev.at)
        if ev.kind == "created":
            if job.id in self.status:
                self._violate(f"{job.id} created twice")
            if ev.new != self.lc.queued:
                self._violate(f"{job.id} created as {ev.new}, not {self.lc.queued}")
            self.status[job.id] = self.lc.queued
            return
        if job.id in self.frozen or states[self.status[job.id]] in TERMINAL_ROLES:
            self._violate(f"{ev.kind} event for terminal job {job.id}: {ev.old} -> {ev.new}")
        if ev.kind == "progress":
            if not (ev.old == ev.new == self.status[job.id]) or states[ev.new] != "running":
                self._violate(f"progress event outside running: {ev.old}/{ev.new}")
            if job.progress_pct < self.progress.get(job.id, 0):
                self._violate(f"progress of {job.id} went down to {job.progress_pct}")
            self.progress[job.id] = job.progress_pct
            return
        assert ev.kind == "transition", ev.kind
        assert ev.old is not None and ev.new is not None
        if ev.old != self.status[job.id]:
            self._violate(f"{job.id}: transition from {ev.old}, but it was {self.status[job.id]}")
        if not self.lc.can_move(ev.old, ev.new):
            self._violate(f"{job.id}: {ev.old} -> {ev.new} is not in lifecycle.transitions")
        self.status[job.id] = ev.new
        old_role, new_role = states[ev.old], states[ev.new]
        if old_role == "running":
            self.running[job.tenant].discard(job.id)
        if new_role == "running":
            self.running[job.tenant].add(job.id)
            by_scheduler = self.forcing != job.id
            if by_scheduler:
                self.scheduled_starts[job.tenant].append(job.seq)
                if self.limit is not None and len(self.running[job.tenant]) > self.limit:
                    self._violate(f"{len(self.running[job.tenant])} running for {job.tenant}, "
                                  f"limit {self.limit}")

    # -- helpers ---------------------------------------------------------------------------

    def _role(self, job: Job) -> str:
        return self.lc.states[job.status]

    def _tenant_jobs(self, tenant: str | None, role: str) -> list[Job]:
        return [j for j in self.engine.jobs() if j.tenant == tenant and self._role(j) == role]

    # -- rules -------------------------------------------------------------------------------

    @rule(target=jobs, data=st.data(), tenant_index=st.integers(0, 1),
          trace=st.sampled_from(TRACES), key=st.none() | st.sampled_from(KEYS))
    def submit(self, data: st.DataObject, tenant_index: int, trace: str,
               key: str | None) -> Any:
        spec, engine = self.spec, self.engine
        tenant = self.tenants[tenant_index]
        op = data.draw(st.sampled_from(spec.submit_operations), label="operation")
        body = copy.deepcopy(op.body_example) if op.body_example is not None else {}
        pointer = spec.idempotency_pointer
        if isinstance(body, dict) and pointer is not None:
            body.pop(pointer.lstrip("/"), None)
            if key is not None:
                body[pointer.lstrip("/")] = key
        else:
            key = None
        params = {p.name: trace for p in op.parameters if p.location == "path"}
        job_type = str(op.job_type({"request": {"body": body, "params": params}})
                       if op.job_type else op.operation_id)

        replay = self.keys.get((tenant, key)) if key is not None else None
        queued = len(self._tenant_jobs(tenant, "queued"))
        gate = spec.limits.gate
        holders = [j for j in engine.jobs()
                   if gate is not None and j.tenant == tenant and j.params == params
                   and j.type == job_type and self._role(j) in gate.blocks_submit_while]
        n_events = len(self.status)
        try:
            job, created = engine.submit(op, tenant=tenant, body=body, params=params)
        except LimitExceeded as exc:
            assert replay is None, "an idempotent replay was refused"
            if spec.limits.queue_max is not None and queued >= spec.limits.queue_max:
                assert exc.error_name == spec.limits.queue_error
            else:
                assert gate is not None and holders, f"refused without cause: {exc}"
                assert exc.error_name == gate.error
                conflict = exc.context["conflict"]
                assert isinstance(conflict, dict)
                assert conflict["id"] in {j.id for j in holders}
            assert len(self.status) == n_events, "a refused submit created a job"
            return multiple()
        if replay is not None:
            assert job.id == replay and not created
            return multiple()
        assert created
        assert spec.limits.queue_max is None or queued < spec.limits.queue_max, \
            "accepted past the queue limit"
        assert not holders, "accepted while the gate was held"
        assert job.status == self.lc.queued and self.status[job.id] == self.lc.queued
        if key is not None:
            self.keys[(tenant, key)] = job.id
        return job

    @rule(seconds=st.sampled_from([0.0, 0.1, 0.5, 1.0]) | st.floats(0, 3) | st.floats(3, 25))
    def advance(self, seconds: float) -> None:
        before = self.clock.now()
        self.engine.advance_clock(seconds)
        assert self.clock.now() == before + seconds
        nxt = self.engine.next_due()
        assert nxt is None or nxt > self.clock.now(), "something due was left unfired"

    @rule(job=jobs)
    def read(self, job: Job) -> None:
        before = (job.status, job.updated_at)
        self.engine.read(job)
        assert (job.status, job.updated_at) == before, "a read moved a job on the time policy"

    @rule(job=jobs, data=st.data(), when=st.sampled_from(["now", "scheduled"]))
    def force(self, job: Job, data: st.DataObject, when: str) -> None:
        lc, engine = self.lc, self.engine
        # A status word of this spec, or a role (which the engine maps to its first word).
        target = data.draw(st.sampled_from([*sorted(lc.states), *ROLES]), label="target")
        word = target if target in lc.states else lc.word(target)
        if self._role(job) in TERMINAL_ROLES:
            before = (job.status, job.completed_at)
            with pytest.raises(ValueError):
                engine.force(job.id, target, when=when)
            assert (job.status, job.completed_at) == before
            return
        if word is None:
            with pytest.raises(ValueError):
                engine.force(job.id, target, when=when)
            return
        new_role = lc.states[word]
        if new_role in TERMINAL_ROLES:
            reachable = lc.can_move(job.status, word) or (
                lc.running is not None and lc.can_move(job.status, lc.running)
                and lc.can_move(lc.running, word))
            if when == "scheduled" and lc.running is not None \
                    and not lc.can_move(lc.running, word):
                # A scheduled outcome is reached from running, so it must be a move out of it.
                with pytest.raises(ValueError):
                    engine.force(job.id, target, when=when)
                return
            if not reachable:
                with pytest.raises(ValueError):
                    engine.force(job.id, target, when=when)
                return
            status_before = job.status
            self._force(job, target, when)
            if when == "scheduled":
                assert job.status == status_before and job.outcome == word
            else:
                assert job.status == word
        elif new_role == "running":
            if self._role(job) != "queued":
                with pytest.raises(ValueError):
                    engine.force(job.id, target, when=when)
                return
            if self.limit is not None and len(self._tenant_jobs(job.tenant, "running")) \
                    >= self.limit:
                # A forced start respects the tenant's concurrency limit.
                with pytest.raises(ValueError):
                    engine.force(job.id, target, when=when)
                return
            self._force(job, target, when)
            gate = self.spec.limits.gate
            assert job.status == lc.running or (
                gate is not None and job.status == gate.claim_conflict)
        else:
            with pytest.raises(ValueError):
                engine.force(job.id, target, when=when)

    def _force(self, job: Job, target: str, when: str) -> None:
        self.forcing = job.id
        try:
            self.engine.force(job.id, target, when=when)
        finally:
            self.forcing = None
        word = target if target in self.lc.states else self.lc.word(target)
        if when == "now" or (word is not None and self.lc.states[word] == "running"):
            # A forced start happens at once whatever ``when`` says.
            self.forced.add(job.id)

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def no_violation_in_the_event_stream(self) -> None:
        assert not self.violations, self.violations

    @invariant()
    def events_agree_with_the_store(self) -> None:
        assert {j.id: j.status for j in self.engine.jobs()} == self.status

    @invariant()
    def a_terminal_job_never_changes(self) -> None:
        for job in self.engine.jobs():
            if self._role(job) not in TERMINAL_ROLES:
                continue
            snap = (job.status, copy.deepcopy(job.result), copy.deepcopy(job.error),
                    job.completed_at)
            assert job.completed_at is not None
            if job.id in self.frozen:
                assert snap == self.frozen[job.id], f"terminal job {job.id} changed"
            else:
                self.frozen[job.id] = snap

    @invariant()
    def concurrency_limit_and_fifo(self) -> None:
        if self.limit is None:
            return
        now = self.clock.now()
        for tenant in self.tenants:
            running = self._tenant_jobs(tenant, "running")
            assert len(running) <= self.limit
            starts = self.scheduled_starts[tenant]
            assert starts == sorted(starts), f"not FIFO: {starts}"
            queued = self._tenant_jobs(tenant, "queued")
            if queued and len(running) < self.limit:
                head = min(queued, key=lambda j: j.seq)
                assert head.created_at + head.queued_for > now, \
                    f"a slot is idle while the FIFO head {head.id} is ready"

    @invariant()
    def queue_limit(self) -> None:
        queue_max = self.spec.limits.queue_max
        if queue_max is None:
            return
        for tenant in self.tenants:
            assert len(self._tenant_jobs(tenant, "queued")) <= queue_max

    @invariant()
    def gate_holds_one_runner(self) -> None:
        if self.spec.limits.gate is None:
            return
        keys = [(j.tenant, j.type, tuple(sorted(j.params.items())))
                for j in self.engine.jobs() if self._role(j) == "running"]
        assert len(keys) == len(set(keys)), "two jobs hold one gate"

    @invariant()
    def time_driven_jobs_keep_their_drawn_timing(self) -> None:
        gate = self.spec.limits.gate
        for job in self.engine.jobs():
            if job.id in self.forced or self._role(job) not in TERMINAL_ROLES:
                continue
            if gate is not None and job.status == gate.claim_conflict:
                assert job.conflicting_job_id is not None
                continue
            assert job.status == job.outcome
            assert job.started_at is not None
            assert job.completed_at == job.started_at + job.running_for
            assert job.started_at >= job.created_at + job.queued_for
            if self.limit is None:
                assert job.started_at == job.created_at + job.queued_for


def _machine(name: str) -> type[EngineMachine]:
    return type(f"EngineMachine_{name.replace('-', '_')}", (EngineMachine,),
                {"spec": SPECS[name]})


@pytest.mark.parametrize("name", sorted(SPECS))
def test_engine_state_machine(name: str) -> None:
    run_state_machine_as_test(_machine(name), settings=SETTINGS)
