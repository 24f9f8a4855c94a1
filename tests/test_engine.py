"""The pure engine (jobmock.engine), driven step by step on a virtual clock.

Expected values (status words, roles, limits, error names, costs, progress steps)
are read from the bundled specs, never copied from the engine.
"""

from __future__ import annotations

import copy
import re
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from jobmock import Advance, ApiSpec, Engine, Event, Job, VirtualClock, bundled_names, resolve_spec
from jobmock.errors import LimitExceeded
from jobmock.ids import IdMaker
from jobmock.journal import Journal
from jobmock.spec import TERMINAL_ROLES, build_spec

APIS = bundled_names()


# -- helpers ------------------------------------------------------------------------------


@dataclass
class Rec:
    """One event as it was when emitted (the Event holds the live, mutable job)."""

    kind: str
    job_id: str
    old: str | None
    new: str | None
    at: float
    clock_now: float
    progress_pct: int
    progress_message: str | None


@dataclass
class Recorder:
    clock: VirtualClock
    events: list[Rec] = field(default_factory=list)

    def __call__(self, ev: Event) -> None:
        self.events.append(Rec(ev.kind, ev.job.id, ev.old, ev.new, ev.at, self.clock.now(),
                               ev.job.progress_pct, ev.job.progress_message))

    def of(self, job: Job, kind: str | None = None) -> list[Rec]:
        return [e for e in self.events if e.job_id == job.id and (kind is None or e.kind == kind)]

    def transitions(self, job: Job) -> list[tuple[str | None, str | None]]:
        return [(e.old, e.new) for e in self.of(job, "transition")]


def make(api: str | ApiSpec, seed: int = 0, advance: Advance | None = None,
         ) -> tuple[Engine, VirtualClock, Recorder]:
    spec = resolve_spec(api)
    clock = VirtualClock()
    engine = Engine(spec, clock, seed=seed, advance=advance)
    rec = Recorder(clock)
    engine.subscribe(rec)
    return engine, clock, rec


def tenants(spec: ApiSpec) -> list[str]:
    return [t for t, _ in spec.demo_tenants()]


def submit(engine: Engine, tenant: str | None = None, *, trace: str = "trace-1",
           body: Any = None, key: str | None = None) -> Job:
    """Submit with the first submit operation and its documented example body."""
    spec = engine.spec
    op = spec.submit_operations[0]
    if body is None:
        body = copy.deepcopy(op.body_example) if op.body_example is not None else None
    if isinstance(body, dict) and spec.idempotency_pointer is not None:
        body.pop(spec.idempotency_pointer.lstrip("/"), None)
        if key is not None:
            body[spec.idempotency_pointer.lstrip("/")] = key
    params = {p.name: trace for p in op.parameters if p.location == "path"}
    job, created = engine.submit(op, tenant=tenant or tenants(spec)[0], body=body, params=params)
    assert created
    return job


def role(spec: ApiSpec, word: str) -> str:
    return spec.lifecycle.states[word]


def spec_with(api: str, **limits: Any) -> ApiSpec:
    """A copy of a bundled spec with x-jobmock.limits changed (e.g. queue_max=5)."""
    doc = copy.deepcopy(dict(resolve_spec(api).document))
    lim = doc["x-jobmock"].setdefault("limits", {})
    if "queue_max" in limits:
        lim["queue"]["max"] = limits["queue_max"]
    if "concurrency_max" in limits:
        lim["concurrency"]["max"] = limits["concurrency_max"]
    return build_spec(doc, f"{api}-modified.yaml", default_name=api)


def run_until_idle(engine: Engine, step: float = 0.5, limit: float = 10_000.0) -> None:
    clock = engine.clock
    start = clock.now()
    while any(not engine.is_terminal(j) for j in engine.jobs()):
        assert clock.now() - start < limit, "jobs never finished"
        engine.advance_clock(step)


# -- lifecycle on time ------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
def test_a_job_starts_queued_with_draws_inside_the_spec_ranges(api: str) -> None:
    engine, clock, rec = make(api, seed=7)
    spec = engine.spec
    job = submit(engine)
    assert job.status == spec.lifecycle.queued
    assert role(spec, job.status) == "queued"
    assert job.created_at == job.updated_at == clock.now()
    lo, hi = spec.timing.queued
    assert lo <= job.queued_for <= hi
    lo, hi = spec.timing.running
    assert lo <= job.running_for <= hi
    assert job.outcome in dict(spec.timing.outcomes)
    assert job.started_at is None and job.completed_at is None
    assert [(e.kind, e.old, e.new, e.at) for e in rec.events] == [
        ("created", None, spec.lifecycle.queued, clock.now())]


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_job_moves_to_running_and_its_outcome_at_the_drawn_times(api: str, seed: int) -> None:
    engine, clock, rec = make(api, seed=seed)
    spec, lc = engine.spec, engine.spec.lifecycle
    job = submit(engine)
    t0 = clock.now()

    start = t0 + job.queued_for
    engine.advance_clock(job.queued_for / 2)
    assert job.status == lc.queued

    # Step a little past the due time: the transition carries the due time, not the target.
    engine.advance_clock(start - clock.now() + 0.001)
    assert job.status == lc.running
    assert job.started_at == start
    assert job.started_at < clock.now()
    assert job.attempt_count == 1

    end = start + job.running_for
    engine.advance_clock(job.running_for / 2)
    assert job.status == lc.running

    engine.advance_clock(end - clock.now() + 0.001)
    assert job.status == job.outcome
    assert job.completed_at == end
    assert job.completed_at < clock.now()

    assert rec.transitions(job) == [(lc.queued, lc.running), (lc.running, job.outcome)]
    starts = rec.of(job, "transition")
    assert starts[0].at == job.started_at
    assert starts[1].at == job.completed_at
    assert [e.at for e in rec.of(job)] == sorted(e.at for e in rec.of(job))
    assert [h[0] for h in job.history] == [lc.queued, lc.running, job.outcome]
    if role(spec, job.outcome) == "completed":
        assert job.result is not None
    if job.outcome in spec.outcome_errors:
        assert job.error is not None


@pytest.mark.parametrize("api", APIS)
def test_outcomes_follow_the_spec_weights_loosely(api: str) -> None:
    # Every drawn outcome is one of the spec's outcomes, and the most likely one appears.
    engine, _, _ = make(api, seed=11)
    words = dict(engine.spec.timing.outcomes)
    drawn = [submit(engine, trace=f"t{i}").outcome for i in range(60)]
    assert set(drawn) <= set(words)
    assert max(words, key=lambda w: words[w]) in drawn


def test_failed_outcome_renders_the_spec_error_and_completed_the_result() -> None:
    engine, _, _ = make("croma", seed=0)
    spec = engine.spec
    failed = spec.lifecycle.word("failed")
    completed = spec.lifecycle.word("completed")
    assert failed is not None and completed is not None
    a, b = submit(engine), submit(engine)
    engine.force(a.id, failed, when="scheduled")
    engine.force(b.id, completed, when="scheduled")
    run_until_idle(engine)
    assert a.status == failed and a.result is None
    assert a.error == spec.outcome_errors[failed]({"job": engine.view(a)})
    assert b.status == completed and b.error is None
    assert b.result["document_number"] == b.request["document_number"]


# -- determinism ----------------------------------------------------------------------------


def _play(api: str, seed: int) -> tuple[list[Any], list[tuple[str, str, str | None, float]]]:
    engine, _, rec = make(api, seed=seed)
    jobs = [submit(engine, tenants(engine.spec)[i % 2], trace=f"t{i}") for i in range(15)]
    run_until_idle(engine)
    plan = [(j.id, j.queued_for, j.running_for, j.outcome, j.status) for j in jobs]
    return plan, [(e.kind, e.job_id, e.new, e.at) for e in rec.events]


@pytest.mark.parametrize("api", APIS)
def test_the_same_seed_gives_the_same_ids_timings_outcomes_and_events(api: str) -> None:
    assert _play(api, 42) == _play(api, 42)


@pytest.mark.parametrize("api", APIS)
def test_a_different_seed_gives_different_ids_and_timings(api: str) -> None:
    plan_a, _ = _play(api, 1)
    plan_b, _ = _play(api, 2)
    assert {p[0] for p in plan_a}.isdisjoint({p[0] for p in plan_b})
    assert [p[1:3] for p in plan_a] != [p[1:3] for p in plan_b]


def test_reset_forgets_jobs_and_replays_the_seed() -> None:
    engine, _, _ = make("croma", seed=5)
    first = [(j.id, j.queued_for, j.outcome) for j in (submit(engine) for _ in range(3))]
    engine.advance_clock(100)
    engine.reset()
    assert list(engine.jobs()) == []
    assert engine.next_due() is None
    again = [(j.id, j.queued_for, j.outcome) for j in (submit(engine) for _ in range(3))]
    assert again == first


# -- ids ----------------------------------------------------------------------------------------

ID_PATTERNS = {
    "job_{hex:16}": r"job_[0-9a-f]{16}",
    "job_{hex:12}": r"job_[0-9a-f]{12}",
    "{nanoid:21}": r"[A-Za-z0-9_-]{21}",
    "{uuid}": r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
}


@pytest.mark.parametrize("api", APIS)
def test_job_ids_follow_the_spec_template_and_are_unique(api: str) -> None:
    engine, _, _ = make(api, seed=9)
    pattern = ID_PATTERNS[engine.spec.ids]
    ids = [submit(engine, trace=f"t{i}").id for i in range(50)]
    assert all(re.fullmatch(pattern, i) for i in ids), ids[:3]
    assert len(set(ids)) == len(ids)


def test_id_maker_tokens() -> None:
    import random

    make_id = IdMaker("x-{seq}-{hex:4}-{nanoid:3}", random.Random(0))
    first, second = make_id(), make_id()
    assert re.fullmatch(r"x-1-[0-9a-f]{4}-[A-Za-z0-9_-]{3}", first)
    assert second.startswith("x-2-")
    assert uuid.UUID(IdMaker("{uuid}", random.Random(0))()).version == 4
    assert IdMaker("{uuid}", random.Random(3))() == IdMaker("{uuid}", random.Random(3))()
    assert IdMaker("fixed", random.Random(0))() == "fixed"


# -- advance_clock ---------------------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
def test_advance_clock_fires_every_due_transition_in_time_order_at_its_due_time(api: str) -> None:
    engine, clock, rec = make(api, seed=4)
    jobs = [submit(engine, tenants(engine.spec)[i % 2], trace=f"t{i}") for i in range(12)]
    target = clock.now() + 10_000
    fired = engine.advance_clock(10_000)
    assert clock.now() == target
    assert fired >= 2 * len(jobs)
    assert all(engine.is_terminal(j) for j in jobs)
    later = [e for e in rec.events if e.kind != "created"]
    assert [e.at for e in later] == sorted(e.at for e in later)
    # Each event carries its due time, and the clock read that time when it fired.
    assert all(e.at == e.clock_now for e in later)
    assert all(e.at < target for e in later)
    for j in jobs:
        assert j.started_at is not None
        assert j.completed_at == j.started_at + j.running_for
        if engine.spec.limits.concurrency_max is None:
            assert j.started_at == j.created_at + j.queued_for
        else:
            assert j.started_at >= j.created_at + j.queued_for


def test_advance_clock_returns_nothing_fired_when_nothing_is_due() -> None:
    engine, _, _ = make("croma")
    assert engine.advance_clock(5) == 0
    job = submit(engine)
    assert engine.next_due() == pytest.approx(job.created_at + job.queued_for)
    assert engine.advance_clock(job.queued_for / 3) == 0
    assert engine.advance_clock(job.queued_for) == 1


def test_advance_clock_needs_a_virtual_clock() -> None:
    from jobmock import RealClock

    engine = Engine(resolve_spec("croma"), RealClock())
    with pytest.raises(TypeError):
        engine.advance_clock(1)


# -- cloro: concurrency, queue limit, idempotency, credits ------------------------------------------


def _running_counts(engine: Engine, rec: Recorder) -> dict[str, list[int]]:
    """Per tenant, the count of running jobs after each transition event."""
    tenant_of = {j.id: j.tenant for j in engine.jobs()}
    roles = engine.spec.lifecycle.states
    running: dict[str, int] = defaultdict(int)
    history: dict[str, list[int]] = defaultdict(list)
    for e in rec.events:
        if e.kind != "transition":
            continue
        t = tenant_of[e.job_id]
        assert t is not None
        if roles[e.new or ""] == "running":
            running[t] += 1
        if roles[e.old or ""] == "running":
            running[t] -= 1
        history[t].append(running[t])
    return history


def test_cloro_concurrency_limit_is_never_exceeded_and_starts_are_fifo() -> None:
    engine, _, rec = make("cloro", seed=3)
    limit = engine.spec.limits.concurrency_max
    assert limit is not None
    a, b = tenants(engine.spec)
    jobs_a = [submit(engine, a) for _ in range(3 * limit)]
    jobs_b = [submit(engine, b) for _ in range(3)]
    run_until_idle(engine, step=0.25)

    counts = _running_counts(engine, rec)
    assert max(counts[a]) == limit  # the limit binds ...
    assert max(counts[b]) <= limit  # ... and is per tenant
    for jobs in (jobs_a, jobs_b):
        starts = sorted(jobs, key=lambda j: (j.started_at, j.seq))
        assert [j.seq for j in starts] == [j.seq for j in jobs]
    # Tenant b is not held back by tenant a's full slots.
    for j in jobs_b:
        assert j.started_at == pytest.approx(j.created_at + j.queued_for)


def test_cloro_a_waiting_job_starts_as_soon_as_a_slot_frees() -> None:
    engine, _, _ = make("cloro", seed=8)
    limit = engine.spec.limits.concurrency_max
    assert limit is not None
    jobs = [submit(engine) for _ in range(limit + 5)]
    run_until_idle(engine, step=0.25)
    ends = {j.completed_at for j in jobs}
    readies = [j.created_at + j.queued_for for j in jobs]
    assert any(j.started_at is not None and j.started_at > r for j, r in zip(jobs, readies,
                                                                             strict=True))
    for i, j in enumerate(jobs):
        assert j.started_at is not None
        # Started when it became ready, when an earlier job (FIFO head) became ready,
        # or when a slot freed.
        assert (j.started_at in ends or any(j.started_at == r for r in readies[: i + 1])), j


def test_cloro_queue_limit_is_exact() -> None:
    spec = spec_with("cloro", queue_max=5)
    engine, clock, rec = make(spec, seed=1)
    limit = spec.limits.queue_max
    assert limit == 5
    a, b = tenants(spec)
    jobs = [submit(engine, a) for _ in range(limit)]
    created = len(rec.events)
    with pytest.raises(LimitExceeded) as info:
        submit(engine, a)
    assert info.value.error_name == spec.limits.queue_error
    assert spec.limits.queue_error in spec.errors
    assert len(list(engine.jobs())) == limit
    assert len(rec.events) == created  # no job, no event
    # Another tenant has its own queue.
    submit(engine, b)
    # Once the FIFO head leaves the queue (with any job ready before it), exactly as many
    # more fit as left.
    head_ready = jobs[0].created_at + jobs[0].queued_for
    engine.advance_clock(head_ready - clock.now() + 0.001)
    still_queued = sum(1 for j in jobs if j.status == spec.lifecycle.queued)
    assert still_queued < limit
    for _ in range(limit - still_queued):
        submit(engine, a)
    with pytest.raises(LimitExceeded):
        submit(engine, a)


def test_cloro_idempotency_key_returns_the_same_job_and_creates_none() -> None:
    engine, _, rec = make("cloro", seed=2)
    a, b = tenants(engine.spec)
    first = submit(engine, a, key="k-1")
    assert first.idempotency_key == "k-1"
    op = engine.spec.submit_operations[0]
    body = {"taskType": "CHATGPT", "idempotencyKey": "k-1", "payload": {"prompt": "other"}}
    again, created = engine.submit(op, tenant=a, body=body)
    assert again is first and created is False
    assert len(list(engine.jobs())) == 1
    assert [e.kind for e in rec.events] == ["created"]
    # The key is per tenant; another key is another job.
    other_tenant, created_b = engine.submit(op, tenant=b, body=body)
    assert created_b and other_tenant.id != first.id
    other_key = submit(engine, a, key="k-2")
    assert other_key.id != first.id
    # A replay after the job ended answers the ended job.
    run_until_idle(engine)
    replay, created = engine.submit(op, tenant=a, body=body)
    assert replay is first and not created and engine.is_terminal(replay)


def test_cloro_idempotent_replay_is_answered_even_when_the_queue_is_full() -> None:
    spec = spec_with("cloro", queue_max=2)
    engine, _, _ = make(spec)
    first = submit(engine, key="k")
    submit(engine)
    op = spec.submit_operations[0]
    job, created = engine.submit(op, tenant=tenants(spec)[0], body={"idempotencyKey": "k"})
    assert job is first and not created
    with pytest.raises(LimitExceeded):
        submit(engine, key="new")


@pytest.mark.parametrize("api", ["cloro", "docimprint"])
def test_credits_are_charged_on_the_spec_outcomes_only(api: str) -> None:
    engine, _, _ = make(api, seed=6)
    spec = engine.spec
    cost = spec.credits_cost
    assert cost is not None and spec.credits_charge_on
    failed = spec.lifecycle.word("failed")
    assert failed is not None and failed not in spec.credits_charge_on
    charged_word = next(iter(spec.credits_charge_on))
    win, lose = submit(engine), submit(engine)
    engine.force(win.id, charged_word, when="scheduled")
    engine.force(lose.id, failed, when="scheduled")
    assert win.credits_to_charge == cost and win.credits_charged == 0
    engine.advance_clock(win.queued_for)
    assert win.credits_charged == 0  # not while queued or running
    run_until_idle(engine)
    assert win.status == charged_word and win.credits_charged == cost
    assert lose.status == failed and lose.credits_charged == 0 and lose.credits_to_charge == cost


def test_croma_has_no_credits() -> None:
    engine, _, _ = make("croma")
    job = submit(engine)
    run_until_idle(engine)
    assert job.credits_to_charge is None and job.credits_charged is None


# -- bronid: the gate ---------------------------------------------------------------------------


def test_bronid_second_submit_while_one_runs_for_the_trace_is_refused() -> None:
    engine, _, rec = make("bronid", seed=1)
    gate = engine.spec.limits.gate
    assert gate is not None
    first = submit(engine, trace="tr-1")
    engine.advance_clock(first.queued_for)
    assert role(engine.spec, first.status) == "running"
    before = len(list(engine.jobs()))
    with pytest.raises(LimitExceeded) as info:
        submit(engine, trace="tr-1")
    assert info.value.error_name == gate.error
    assert info.value.error_name in engine.spec.errors
    assert info.value.context["conflict"]["id"] == first.id  # type: ignore[index]
    assert len(list(engine.jobs())) == before
    # Another trace is free.
    other = submit(engine, trace="tr-2")
    assert other.status == engine.spec.lifecycle.queued
    # Once the first ends, the trace is free again.
    engine.advance_clock(first.running_for)
    assert engine.is_terminal(first)
    submit(engine, trace="tr-1")
    assert len([e for e in rec.events if e.kind == "created"]) == 3


def test_bronid_gate_does_not_block_while_the_holder_is_pending() -> None:
    engine, _, _ = make("bronid", seed=1)
    first = submit(engine, trace="tr-1")
    second = submit(engine, trace="tr-1")
    assert first.status == second.status == engine.spec.lifecycle.queued


@pytest.mark.parametrize("seed", range(12))
def test_bronid_of_two_pending_jobs_for_a_trace_the_later_dispatch_is_rejected(seed: int) -> None:
    # Issue 11, items 3 and 4: the first dispatch claims the gate whichever run's listener
    # starts first (it was a coin flip on queued_for), and the rejected run was claimed
    # (attemptCount 1, startedAt) before it lost the gate.
    engine, _, rec = make("bronid", seed=seed)
    gate = engine.spec.limits.gate
    assert gate is not None and gate.claim_conflict is not None
    lc = engine.spec.lifecycle
    first = submit(engine, trace="tr-1")
    later = submit(engine, trace="tr-1")
    assert first.queued_for != later.queued_for
    run_until_idle(engine)
    assert first.status == first.outcome
    assert first.conflicting_job_id is None
    assert later.status == gate.claim_conflict
    assert later.conflicting_job_id == first.id
    assert rec.transitions(later) == [(lc.queued, gate.claim_conflict)]
    tried = later.created_at + later.queued_for
    assert later.completed_at == later.started_at == tried
    assert later.attempt_count == 1


def test_the_gate_race_was_tried_both_ways() -> None:
    """The seeds above include a later dispatch due to start first, and one due second."""
    later_first = set()
    for seed in range(12):
        engine, _, _ = make("bronid", seed=seed)
        first, later = submit(engine, trace="tr-1"), submit(engine, trace="tr-1")
        later_first.add(later.queued_for < first.queued_for)
    assert later_first == {True, False}


# -- docimprint: progress --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_docimprint_progress_never_decreases_and_reaches_100_on_complete(seed: int) -> None:
    engine, _, rec = make("docimprint", seed=seed)
    spec = engine.spec
    complete = spec.lifecycle.word("completed")
    assert complete is not None
    job = submit(engine)
    engine.force(job.id, complete, when="scheduled")
    seen: list[int] = [job.progress_pct]
    while not engine.is_terminal(job):
        engine.advance_clock(0.3)
        seen.append(job.progress_pct)
    assert seen == sorted(seen)
    progress = rec.of(job, "progress")
    assert [(e.progress_pct, e.progress_message) for e in progress] == list(spec.progress_steps)
    assert [e.at for e in progress] == sorted(e.at for e in progress)
    n = len(spec.progress_steps)
    assert job.started_at is not None
    for i, e in enumerate(progress):
        assert e.at == pytest.approx(job.started_at + job.running_for * (i + 1) / (n + 1))
        assert e.old == e.new == spec.lifecycle.running
    kinds = [e.kind for e in rec.of(job)]
    assert kinds == ["created", "transition", *["progress"] * n, "transition"]
    assert job.status == complete
    assert job.progress_pct == 100
    assert job.progress_message == spec.progress_done_message


def test_docimprint_failed_job_keeps_its_last_progress() -> None:
    engine, _, _ = make("docimprint", seed=0)
    failed = engine.spec.lifecycle.word("failed")
    assert failed is not None
    job = submit(engine)
    engine.advance_clock(job.queued_for + job.running_for * 0.6)
    pct = job.progress_pct
    assert 0 < pct < 100
    engine.force(job.id, failed)
    run_until_idle(engine)
    assert job.status == failed and job.progress_pct == pct


# -- advance policies --------------------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
def test_polls_policy_moves_one_step_every_n_reads(api: str) -> None:
    engine, clock, rec = make(api, seed=3, advance=Advance("polls", 2))
    lc = engine.spec.lifecycle
    job = submit(engine)
    engine.advance_clock(10_000)
    assert job.status == lc.queued
    engine.read(job)
    assert job.status == lc.queued
    engine.read(job)
    assert job.status == lc.running
    assert job.started_at == clock.now()
    engine.read(job)
    assert job.status == lc.running
    engine.read(job)
    assert job.status == job.outcome
    assert job.polls == 4
    for _ in range(4):
        engine.read(job)
    assert job.status == job.outcome
    assert rec.transitions(job) == [(lc.queued, lc.running), (lc.running, job.outcome)]


def test_time_policy_ignores_reads() -> None:
    engine, _, _ = make("croma")
    job = submit(engine)
    for _ in range(10):
        engine.read(job)
    assert job.status == engine.spec.lifecycle.queued
    assert job.polls == 10


def test_polls_policy_respects_the_concurrency_limit() -> None:
    spec = spec_with("cloro", concurrency_max=1)
    engine, _, _ = make(spec, advance=Advance("polls", 1))
    a, b = submit(engine), submit(engine)
    engine.read(a)
    engine.read(b)
    assert a.status == spec.lifecycle.running
    assert b.status == spec.lifecycle.queued
    engine.read(a)
    engine.read(b)
    assert engine.is_terminal(a)
    assert b.status == spec.lifecycle.running


def test_advance_policy_is_validated() -> None:
    with pytest.raises(ValueError, match="mode"):
        Advance("sometimes")
    with pytest.raises(ValueError, match="polls"):
        Advance("polls", 0)


@pytest.mark.parametrize("api", APIS)
def test_manual_policy_moves_only_when_forced(api: str) -> None:
    engine, clock, rec = make(api, seed=2, advance=Advance("manual"))
    lc = engine.spec.lifecycle
    job = submit(engine)
    engine.advance_clock(10_000)
    for _ in range(5):
        engine.read(job)
    assert job.status == lc.queued
    assert engine.next_due() is None
    engine.force(job.id, "running")  # a role
    assert job.status == lc.running and job.started_at == clock.now()
    engine.advance_clock(10_000)
    assert job.status == lc.running
    completed = lc.word("completed")
    assert completed is not None
    engine.force(job.id, "completed")
    assert job.status == completed and job.completed_at == clock.now()
    assert rec.transitions(job) == [(lc.queued, lc.running), (lc.running, completed)]


def test_set_advance_applies_to_later_jobs() -> None:
    engine, _, _ = make("croma", advance=Advance("manual"))
    manual = submit(engine)
    engine.set_advance(Advance("time"))
    timed = submit(engine)
    engine.advance_clock(1_000)
    assert manual.status == engine.spec.lifecycle.queued
    assert engine.is_terminal(timed)


# -- force ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
def test_force_now_to_a_terminal_word_goes_through_the_lifecycle(api: str) -> None:
    engine, clock, rec = make(api, seed=1)
    lc = engine.spec.lifecycle
    failed = lc.word("failed")
    assert failed is not None
    job = submit(engine)
    engine.advance_clock(job.queued_for / 2)
    engine.force(job.id, failed, error={"why": "forced"})
    assert job.status == failed
    assert job.error == {"why": "forced"}
    assert job.completed_at == clock.now()
    for old, new in rec.transitions(job):
        assert old is not None and new is not None and lc.can_move(old, new), (old, new)
    # Nothing scheduled for it fires later; its pending entries are cancelled.
    assert engine.next_due() is None
    snapshot = (job.status, job.updated_at, len(rec.events))
    engine.advance_clock(10_000)
    assert (job.status, job.updated_at, len(rec.events)) == snapshot


@pytest.mark.parametrize("api", APIS)
def test_force_scheduled_replaces_the_outcome_only(api: str) -> None:
    engine, _, _ = make(api, seed=1)
    lc = engine.spec.lifecycle
    completed = lc.word("completed")
    assert completed is not None
    job = submit(engine)
    engine.force(job.id, completed, when="scheduled", result={"forced": True})
    assert job.status == lc.queued
    engine.advance_clock(job.queued_for)
    assert job.status == lc.running
    engine.advance_clock(job.running_for)
    assert job.status == completed
    assert job.result == {"forced": True}
    assert job.started_at is not None
    assert job.completed_at == job.started_at + job.running_for


@pytest.mark.parametrize("api", APIS)
def test_force_of_a_terminal_job_raises_and_changes_nothing(api: str) -> None:
    engine, _, rec = make(api, seed=1)
    lc = engine.spec.lifecycle
    job = submit(engine)
    run_until_idle(engine)
    before = (job.status, job.result, job.error, job.completed_at, len(rec.events))
    for word in lc.states:
        for when in ("now", "scheduled"):
            with pytest.raises(ValueError):
                engine.force(job.id, word, when=when)
    assert (job.status, job.result, job.error, job.completed_at, len(rec.events)) == before


def test_force_rejects_unknown_jobs_statuses_and_moves() -> None:
    engine, _, _ = make("croma")
    lc = engine.spec.lifecycle
    job = submit(engine)
    with pytest.raises(KeyError):
        engine.force("job_nope", "completed")
    with pytest.raises(ValueError, match="neither a status word"):
        engine.force(job.id, "exploded")
    with pytest.raises(ValueError, match="back to"):
        engine.force(job.id, lc.queued)
    with pytest.raises(ValueError, match="when"):
        engine.force(job.id, "failed", when="later")
    engine.force(job.id, "running")
    with pytest.raises(ValueError, match="not queued"):
        engine.force(job.id, "running")
    assert job.status == lc.running


def test_force_refuses_an_unreachable_terminal_word() -> None:
    engine, _, _ = make("bronid")
    gate = engine.spec.limits.gate
    assert gate is not None and gate.claim_conflict is not None
    job = submit(engine)
    engine.force(job.id, "running")
    # running cannot reach rejected in bronid's lifecycle
    with pytest.raises(ValueError, match="cannot reach"):
        engine.force(job.id, gate.claim_conflict)
    assert job.status == engine.spec.lifecycle.running


# -- watch ----------------------------------------------------------------------------------------------


def test_watch_fires_once_at_the_job_end() -> None:
    engine, clock, _ = make("croma", seed=2)
    job = submit(engine)
    calls: list[tuple[str, bool, float]] = []
    engine.watch(job, clock.now() + 10_000, lambda j, done: calls.append((j.id, done, clock.now())))
    engine.advance_clock(job.queued_for)
    assert calls == []
    engine.advance_clock(20_000)
    assert calls == [(job.id, True, job.completed_at)]


def test_watch_fires_once_at_the_deadline() -> None:
    engine, clock, _ = make("croma", seed=2)
    job = submit(engine)
    deadline = clock.now() + job.queued_for / 2
    calls: list[tuple[bool, float, str]] = []
    engine.watch(job, deadline, lambda j, done: calls.append((done, clock.now(), j.status)))
    engine.advance_clock(10_000)
    assert engine.is_terminal(job)
    assert calls == [(False, deadline, engine.spec.lifecycle.queued)]


def test_watch_of_an_ended_job_fires_at_once() -> None:
    engine, clock, _ = make("croma", seed=2)
    job = submit(engine)
    run_until_idle(engine)
    calls: list[bool] = []
    w = engine.watch(job, clock.now() + 5, lambda j, done: calls.append(done))
    assert calls == [True] and w.done
    engine.advance_clock(10)
    assert calls == [True]


def test_a_cancelled_watch_never_fires() -> None:
    engine, clock, _ = make("croma", seed=2)
    job = submit(engine)
    calls: list[bool] = []
    early = engine.watch(job, clock.now() + 0.1, lambda j, done: calls.append(done))
    late = engine.watch(job, clock.now() + 10_000, lambda j, done: calls.append(done))
    early.cancel()
    late.cancel()
    engine.advance_clock(20_000)
    assert engine.is_terminal(job)
    assert calls == []


def test_run_due_skips_cancelled_and_fired_watches() -> None:
    # The same guarantees when a ticker calls run_due() on a clock moved elsewhere.
    engine, clock, _ = make("croma", seed=2)
    job = submit(engine)
    calls: list[tuple[str, bool]] = []
    cancelled = engine.watch(job, clock.now() + 0.1, lambda j, done: calls.append(("c", done)))
    ended = engine.watch(job, clock.now() + 10_000, lambda j, done: calls.append(("e", done)))
    cancelled.cancel()
    clock.advance(job.queued_for + job.running_for + 1)
    engine.run_due()
    assert calls == [("e", True)] and ended.done
    clock.advance(20_000)
    engine.run_due()
    assert calls == [("e", True)]


def test_watch_fires_on_a_forced_end_and_several_watches_each_fire_once() -> None:
    engine, clock, _ = make("croma", advance=Advance("manual"))
    job = submit(engine)
    calls: list[tuple[int, bool]] = []

    def recorder(i: int) -> Callable[[Job, bool], None]:
        return lambda j, done: calls.append((i, done))

    for i in range(3):
        engine.watch(job, clock.now() + 100, recorder(i))
    engine.force(job.id, "failed")
    engine.advance_clock(1_000)
    assert sorted(calls) == [(0, True), (1, True), (2, True)]


def test_a_pending_deadline_is_the_next_due_entry() -> None:
    engine, clock, _ = make("croma", advance=Advance("manual"))
    job = submit(engine)
    assert engine.next_due() is None
    w = engine.watch(job, clock.now() + 3, lambda j, done: None)
    assert engine.next_due() == clock.now() + 3
    w.cancel()
    assert engine.next_due() is None


# -- timers ---------------------------------------------------------------------------------------------


def test_call_at_fires_once_at_its_time_in_order_with_transitions() -> None:
    engine, clock, _ = make("croma", seed=2)
    job = submit(engine)
    start = job.created_at + job.queued_for
    seen: list[tuple[str, float, str]] = []
    engine.call_at(start + 0.5, lambda: seen.append(("late", clock.now(), job.status)))
    engine.call_at(start - 0.1, lambda: seen.append(("early", clock.now(), job.status)))
    assert engine.next_due() == start - 0.1
    engine.advance_clock(10_000)
    lc = engine.spec.lifecycle
    assert seen == [("early", start - 0.1, lc.queued), ("late", start + 0.5, lc.running)]
    engine.advance_clock(10_000)
    assert len(seen) == 2


def test_a_cancelled_timer_never_fires_and_reset_cancels_timers() -> None:
    engine, clock, _ = make("croma")
    seen: list[str] = []
    timer = engine.call_at(clock.now() + 1, lambda: seen.append("cancelled"))
    timer.cancel()
    assert engine.next_due() is None
    kept = engine.call_at(clock.now() + 2, lambda: seen.append("reset"))
    engine.reset()
    assert kept.done
    engine.advance_clock(10)
    clock.advance(10)
    engine.run_due()
    assert seen == []


# -- counts and views ---------------------------------------------------------------------------------


def test_counts_and_as_dict() -> None:
    engine, _, _ = make("croma", seed=1)
    spec = engine.spec
    jobs = [submit(engine) for _ in range(3)]
    assert engine.counts() == {spec.lifecycle.queued: 3}
    run_until_idle(engine)
    assert sum(engine.counts().values()) == 3
    assert all(role(spec, w) in TERMINAL_ROLES for w in engine.counts())
    d = jobs[0].as_dict(spec)
    assert d["id"] == jobs[0].id and d["status"] == jobs[0].status
    assert d["role"] == role(spec, jobs[0].status)
    assert [h["status"] for h in d["history"]] == [h[0] for h in jobs[0].history]
    assert d["completed_at"].endswith("Z")


# -- journal -------------------------------------------------------------------------------------------


def _record(journal: Journal, i: int) -> None:
    journal.record(at=float(i), method="GET", path=f"/jobs/{i}", query="", headers={},
                   status=200, operation="getJob", tenant="org_a", job_id=str(i),
                   duration_ms=0.1)


def test_journal_keeps_the_last_n_and_counts_all() -> None:
    journal = Journal(size=3)
    for i in range(1, 8):
        _record(journal, i)
    assert len(journal) == 3
    assert journal.total == 7
    assert [e.seq for e in journal] == [5, 6, 7]
    assert [e.path for e in journal] == ["/jobs/5", "/jobs/6", "/jobs/7"]
    assert next(iter(journal)).as_dict()["job_id"] == "5"


def test_journal_under_its_size_keeps_everything_and_clear_resets() -> None:
    journal = Journal(size=10)
    for i in range(4):
        _record(journal, i)
    assert len(journal) == journal.total == 4
    journal.clear()
    assert len(journal) == 0 and journal.total == 0 and list(journal) == []
    _record(journal, 9)
    assert [e.seq for e in journal] == [1]


def test_journal_entries_recorded_cheaply_read_as_scrubbed_entries() -> None:
    """record_request defers building the entry; what a reader gets is what scrub + record
    give, masked as keep_secrets said when the request came, in order, within the size."""
    spec = resolve_spec("croma")
    journal = Journal(size=3)
    headers = {"authorization": "Bearer sk_test_croma_org_a", "prefer": "wait=0"}

    def request(i: int) -> None:
        journal.record_request(spec, headers, "", "org_a", float(i), "GET", f"/jobs/{i}", 200,
                               "getJob", str(i), 0.1, "2", "queued", 0)

    request(1)
    journal.keep_secrets = True
    request(2)
    journal.keep_secrets = False
    masked, _ = journal.scrub(spec, headers, "", "org_a")
    last = journal.last()
    assert last is not None and last.seq == 2 and last.headers == headers  # kept as sent
    request(3)
    request(4)
    entries = list(journal)
    assert [e.seq for e in entries] == [2, 3, 4] and journal.total == 4
    assert entries[1].headers == masked and "sk_test" not in str(entries[1].as_dict())
    third = entries[1]
    assert (third.path, third.status, third.operation, third.tenant, third.job_id,
            third.retry_after, third.job_status) == ("/jobs/3", 200, "getJob", "org_a", "3",
                                                     "2", "queued")
    assert journal.last() is entries[-1]


def test_journal_iteration_is_a_snapshot() -> None:
    journal = Journal(size=2)
    _record(journal, 1)
    it = iter(journal)
    _record(journal, 2)
    _record(journal, 3)
    assert [e.seq for e in it] == [1]
