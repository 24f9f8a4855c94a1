"""Regression tests for engine bugs the property tests found.

Scheduled outcomes, forced starts, and manual jobs under a concurrency limit.
"""

from __future__ import annotations

import contextlib
import copy

import pytest

from jobmock import Advance, ApiSpec, Engine, VirtualClock, resolve_spec
from jobmock.spec import build_spec


def _cloro(concurrency: int) -> ApiSpec:
    doc = copy.deepcopy(dict(resolve_spec("cloro").document))
    doc["x-jobmock"]["limits"]["concurrency"]["max"] = concurrency
    return build_spec(doc, "cloro-modified.yaml", default_name="cloro")


def test_bug1_a_scheduled_outcome_never_leaves_the_lifecycle() -> None:
    spec = resolve_spec("bronid")
    engine = Engine(spec, VirtualClock(), seed=1)
    moves: list[tuple[str, str]] = []
    engine.subscribe(lambda ev: moves.append((ev.old, ev.new)) if ev.kind == "transition" else None)
    job, _ = engine.submit("dispatchWatchlist", tenant="org_a", params={"trace": "t"})
    gate = spec.limits.gate
    assert gate is not None and gate.claim_conflict is not None
    with contextlib.suppress(ValueError):  # refusing is fine
        engine.force(job.id, gate.claim_conflict, when="scheduled")
    engine.advance_clock(100)
    for old, new in moves:
        assert spec.lifecycle.can_move(old, new), (old, new)


def test_bug2_a_forced_start_respects_the_concurrency_limit() -> None:
    spec = _cloro(1)
    engine = Engine(spec, VirtualClock(), seed=1)
    a, _ = engine.submit("createTask", tenant="org_a", body={})
    b, _ = engine.submit("createTask", tenant="org_a", body={})
    engine.force(a.id, "running")
    with pytest.raises(ValueError):
        engine.force(b.id, "running")
    assert b.status == spec.lifecycle.queued


def test_bug3_a_manual_job_does_not_block_later_time_jobs() -> None:
    spec = resolve_spec("cloro")
    engine = Engine(spec, VirtualClock(), seed=1, advance=Advance("manual"))
    manual, _ = engine.submit("createTask", tenant="org_a", body={})
    engine.set_advance(Advance("time"))
    timed, _ = engine.submit("createTask", tenant="org_a", body={})
    engine.advance_clock(1_000)
    assert manual.status == spec.lifecycle.queued
    assert engine.is_terminal(timed)
