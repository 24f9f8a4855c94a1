"""The contract suite exercises the delete role and pages through lists, judging by the spec:
the example specs' mocks pass with those checks run, and a server that loses a job between
pages, or answers a delete without deleting, fails the check that names it.

Runs in-process (the mock behind respx, on a virtual clock) with small Hypothesis budgets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jobmock.contract import CHECKS, ContractViolation
from jobmock.contract.runner import RunOptions, run_machine
from jobmock.contract.verdicts import VERDICTS
from jobmock.inprocess import InProcessMock
from jobmock.spec import ApiSpec, load_spec

ROOT = Path(__file__).resolve().parents[1]
BASE = "http://jobmock.test"
OPTIONS = RunOptions(examples=10, steps=30, shrink=False, budget=60.0)


def example(name: str) -> ApiSpec:
    return load_spec(ROOT / "examples" / "specs" / f"{name}.yaml")


def in_process(spec: ApiSpec) -> InProcessMock:
    return InProcessMock(spec, base_url=BASE, seed=3, max_idle_polls=None)


@pytest.mark.parametrize(("name", "wanted"), [
    ("google-lro", {"delete", "list", "list_pages"}),  # page tokens
    ("openai-batch", {"list", "list_pages"}),  # after + limit
    ("azure-lro", {"delete"}),
])
def test_the_mock_passes_with_delete_and_paging_judged(name: str, wanted: set[str]) -> None:
    spec = example(name)
    before = {n: c.runs for n, c in CHECKS.items()}
    VERDICTS.reset(spec.name)
    with in_process(spec):
        run_machine(spec, BASE, OPTIONS, None)
    ran = {n for n, c in CHECKS.items() if c.runs > before[n]}
    assert wanted <= ran, f"checks that never ran: {sorted(wanted - ran)}"
    assert VERDICTS.failed_checks(spec.name) == []


@pytest.mark.parametrize("name", ["google-lro", "openai-batch"])
def test_a_server_that_loses_a_job_between_pages_fails(name: str) -> None:
    spec = example(name)
    VERDICTS.reset(spec.name)
    with in_process(spec) as api:
        engine = api.mock.engine
        honest = engine.page

        def lossy(tenant: str | None, **kw: Any) -> Any:
            jobs, more = honest(tenant, **kw)
            # A page after the first skips its first job: nobody sees it on any page.
            return (jobs[1:], more) if kw.get("after") else (jobs, more)

        engine.page = lossy  # type: ignore[method-assign]
        with pytest.raises(ContractViolation) as caught:
            run_machine(spec, BASE, OPTIONS, None)
    assert caught.value.check == "list_pages", str(caught.value)[:1500]
    assert "never showed" in caught.value.detail


@pytest.mark.parametrize("name", ["google-lro", "azure-lro"])
def test_a_server_that_does_not_delete_fails(name: str) -> None:
    spec = example(name)
    VERDICTS.reset(spec.name)
    with in_process(spec) as api:
        api.mock.engine.delete = lambda job: None  # type: ignore[method-assign]
        with pytest.raises(ContractViolation) as caught:
            run_machine(spec, BASE, OPTIONS, None)
    assert caught.value.check == "delete", str(caught.value)[:1500]
    assert "still there" in caught.value.detail
