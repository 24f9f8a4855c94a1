"""The gate check judges "in flight" from facts only.

A bronid mock whose running job finishes just before a second dispatch of the same run is
answered (a submit hook completes it first, so the gate is free and the dispatch is
accepted, as a real server would when the job ends between two observations) is not
failed: the suite's poll after the dispatch shows the job ended, so it cannot prove the
run was still in flight. The same mock ignoring the gate outright is failed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import pytest

from jobmock.bundled import resolve_spec
from jobmock.contract import ContractViolation
from jobmock.contract.runner import RunOptions, run_machine
from jobmock.contract.verdicts import VERDICTS
from jobmock.faults import set_faults
from jobmock.testing import serve_mock

BRONID = resolve_spec("bronid")
OPTIONS = RunOptions(examples=8, steps=20, shrink=False)


def test_a_job_that_ends_between_two_observations_is_not_called_in_flight() -> None:
    VERDICTS.reset(BRONID.name)
    finished: list[str] = []
    with serve_mock(BRONID, seed=3) as server:
        engine = server.mock.engine

        def finish_the_run_first(op: Any, request: Any, tenant: Any, body: Any) -> None:
            trace = unquote(request.path.split("/")[3])  # /v5/verifications/{trace}/watchlist
            for job in list(engine.jobs()):
                if (job.tenant == tenant and job.params.get("trace") == trace
                        and engine.role(job) == "running"):
                    engine.force(job.id, "completed")
                    finished.append(job.id)

        server.mock.submit_hooks.append(finish_the_run_first)
        run_machine(BRONID, server.url, OPTIONS, None)
    assert finished, "no second dispatch met a running job: the case was not exercised"
    assert VERDICTS.api(BRONID.name).rows["limits"].runs > 0
    assert VERDICTS.failed_checks(BRONID.name) == []


def test_a_gate_that_is_ignored_is_still_caught() -> None:
    with serve_mock(BRONID, seed=3) as server:
        set_faults(server.mock, ["gate_ignored"])
        with pytest.raises(ContractViolation) as caught:
            run_machine(BRONID, server.url, OPTIONS, None)
    assert caught.value.check == "limits"
