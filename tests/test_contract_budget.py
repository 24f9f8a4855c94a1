"""Time bounds of a contract run: the budget, bounded shrinking, the seed.

Against a real-time server (the independent enrich server of test_contract_independent) a
run ends within its budget and says what it did not run; a failing run ends within about
twice a clean one; shrinking stops at its bounds and keeps the smallest violation; a seed
gives the same run again and another seed another run.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from jobmock.bundled import resolve_spec
from jobmock.contract import ContractViolation
from jobmock.contract.budget import RunBudget, ShrinkGuard, StopRun
from jobmock.contract.runner import RunOptions, run_machine
from jobmock.contract.verdicts import VERDICTS
from jobmock.testing import serve_mock
from test_contract_independent import enrich_app, serve

ENRICH = resolve_spec("enrich")


def test_a_run_ends_within_its_budget_and_says_what_it_did_not_run() -> None:
    VERDICTS.reset("enrich")
    options = RunOptions(examples=200, steps=25, budget=3.0, shrink=False)
    started = time.monotonic()
    with serve(enrich_app()) as url:
        run_machine(ENRICH, url, options, None)
    elapsed = time.monotonic() - started
    assert elapsed < 3.0 + 8, elapsed  # a started example finishes its settling (short here)
    notes = VERDICTS.api("enrich").notes
    assert any("not run" in n and "budget" in n for n in notes), notes


def test_a_failing_real_time_run_ends_within_twice_a_clean_one() -> None:
    options = RunOptions(examples=4, steps=20, budget=60.0, shrink=True)
    times = []
    for broken in ({}, {"reverse_results": True}):
        started = time.monotonic()
        with serve(enrich_app(**broken)) as url:
            try:
                run_machine(ENRICH, url, options, None)
            except ContractViolation as violation:
                assert violation.check == "invariants"
                assert "Seed 0" in violation.report()
        times.append(time.monotonic() - started)
    clean, failing = times
    assert failing <= 2 * clean + 5, (clean, failing)


def test_shrinking_stops_at_its_bounds_and_keeps_the_smallest_violation() -> None:
    guard = ShrinkGuard(RunBudget(100.0), steps=3, seconds=60.0)
    guard.start_example()
    assert guard.examples == 1
    big = ContractViolation("lifecycle", "t", "d", "curl a\ncurl b")
    small = ContractViolation("lifecycle", "t", "d", "curl a")
    guard.failure(big, 8)
    guard.failure(small, 2)
    guard.failure(big, 5)
    assert guard.best is small
    for _ in range(3):
        guard.start_example()
    with pytest.raises(StopRun):
        guard.start_example()
    assert guard.stopped == "shrinking stopped after 3 examples"
    timed = ShrinkGuard(RunBudget(100.0), steps=100, seconds=0.0)
    timed.failure(small, 1)
    time.sleep(0.01)  # the shrink clock must have moved past zero seconds
    with pytest.raises(StopRun):
        timed.start_example()
    assert timed.stopped.startswith("shrinking stopped after")


def test_no_example_starts_after_the_budget() -> None:
    guard = ShrinkGuard(RunBudget(0.0))
    with pytest.raises(StopRun):
        guard.start_example()
    assert guard.stopped.startswith("the budget")


def _requests_of_a_run(seed: int) -> list[tuple[str, str, bytes]]:
    """Every submit the suite sent in one run (a hook on the mock: it outlives its resets)."""
    sent: list[tuple[str, str, bytes]] = []

    def record(request: Any, response: Any, info: Any) -> Any:
        if request.method == "POST":
            sent.append((request.method, request.path, request.body))
        return response

    with serve_mock(ENRICH, seed=1) as server:
        server.mock.response_hooks.append(record)
        run_machine(ENRICH, server.url, RunOptions(examples=5, steps=12, seed=seed), None)
    return sent


def test_a_seed_gives_the_same_run_and_another_seed_another() -> None:
    first, again, other = _requests_of_a_run(0), _requests_of_a_run(0), _requests_of_a_run(7)
    assert first and first == again
    assert other != first
