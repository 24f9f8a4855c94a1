"""The cross-field invariants ``not_before`` and ``names_job``: the seed specs' mocks keep them,
and a server whose poll answers break one (a time earlier than the one it may not precede, a
status URL naming another job) fails the ``invariants`` check with words that say which.

Runs in-process (the mock behind respx, on a virtual clock) with small Hypothesis budgets.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from jobmock.contract import CHECKS, ContractViolation
from jobmock.contract.checks import _instant, _names_job
from jobmock.contract.runner import RunOptions, run_machine
from jobmock.contract.verdicts import VERDICTS
from jobmock.dispatch import Request, Response
from jobmock.errors import SpecError
from jobmock.inprocess import InProcessMock
from jobmock.spec import ApiSpec, load_spec

ROOT = Path(__file__).resolve().parents[1]
BASE = "http://jobmock.test"
OPTIONS = RunOptions(examples=6, steps=20, shrink=False, budget=60.0)


def seed(name: str) -> ApiSpec:
    return load_spec(ROOT / "openapi" / f"{name}.yaml")


def example(name: str) -> ApiSpec:
    return load_spec(ROOT / "examples" / "specs" / f"{name}.yaml")


def in_process(spec: ApiSpec) -> InProcessMock:
    return InProcessMock(spec, base_url=BASE, seed=3, max_idle_polls=None)


def test_instants_compare_iso_and_epoch_times() -> None:
    assert _instant("2026-01-05T10:00:00Z") == _instant("2026-01-05T11:00:00+01:00")
    assert _instant("2026-01-05T10:00:00") == _instant("2026-01-05T10:00:00Z")  # naive is UTC
    assert _instant(1767607200) == _instant(1767607200000) == _instant("2026-01-05T10:00:00Z")
    assert _instant(None) is None and _instant(True) is None and _instant("soon") is None


@pytest.mark.parametrize(("text", "prefix", "names"), [
    ("https://api.example/jobs/job_1", None, True),
    ("/jobs/job_1?api-version=2024", None, True),
    ("https://api.example/v1/operations/job_1:cancel", None, True),
    ("operations/job_1", None, True),
    ("https://api.example/jobs/job_12", None, False),  # a longer id is another job
    ("https://api.example/jobs/xjob_1", None, False),
    ("https://api.example/jobs?id=job_1", None, False),  # the query names nothing
    ("https://api.example/ops/op-job_1", "op-", True),
    ("https://api.example/ops/op-job_12", "op-", False),
    ("https://job_1.example/jobs/other", None, False),  # the host is not the path
])
def test_names_job_reads_whole_segments_or_a_prefix(text: str, prefix: str | None, names: bool) -> None:
    assert _names_job(text, "job_1", prefix) is names


def test_not_before_needs_other(tmp_path: Path) -> None:
    text = (ROOT / "openapi" / "enrich.yaml").read_text()
    text = text.replace("kind: not_before, pointer: /updated_at, other: /created_at,",
                        "kind: not_before, pointer: /updated_at,")
    (tmp_path / "enrich.yaml").write_text(text)
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path / "enrich.yaml")
    assert "not_before" in str(caught.value)


@pytest.mark.parametrize("name", ["croma", "enrich", "bronid", "examples/openai-batch"])
def test_the_mock_keeps_the_cross_field_invariants(name: str) -> None:
    spec = example(name.split("/")[1]) if "/" in name else seed(name)
    before = CHECKS["invariants"].runs
    VERDICTS.reset(spec.name)
    with in_process(spec):
        run_machine(spec, BASE, OPTIONS, None)
    assert CHECKS["invariants"].runs > before
    assert VERDICTS.failed_checks(spec.name) == []


def breaking(operation: str, field: str, value: Any) -> Any:
    """A response hook that sets ``field`` of every 200 answer of ``operation`` to ``value``."""

    def hook(request: Request, response: Response, info: dict[str, Any]) -> Response:
        body = response.json() if response.status == 200 else None
        if info["operation"] != operation or not isinstance(body, dict) or field not in body:
            return response
        body[field] = value
        return dataclasses.replace(response, body=json.dumps(body).encode())

    return hook


def test_an_update_time_before_the_creation_time_fails() -> None:
    spec = seed("enrich")
    VERDICTS.reset(spec.name)
    with in_process(spec) as api:
        api.mock.response_hooks.append(breaking("getEnrichJob", "updated_at", "2000-01-01T00:00:00Z"))
        with pytest.raises(ContractViolation) as caught:
            run_machine(spec, BASE, OPTIONS, None)
    assert caught.value.check == "invariants", str(caught.value)[:1500]
    assert "earlier than /created_at" in caught.value.detail


def test_an_epoch_seconds_completion_before_the_start_fails() -> None:
    spec = example("openai-batch")
    VERDICTS.reset(spec.name)
    with in_process(spec) as api:
        api.mock.response_hooks.append(breaking("retrieveBatch", "in_progress_at", 4102444800))
        with pytest.raises(ContractViolation) as caught:
            run_machine(spec, BASE, OPTIONS, None)
    assert caught.value.check == "invariants", str(caught.value)[:1500]
    assert "earlier than /in_progress_at 4102444800" in caught.value.detail


def test_a_status_url_naming_another_job_fails() -> None:
    spec = seed("croma")
    VERDICTS.reset(spec.name)
    with in_process(spec) as api:
        api.mock.response_hooks.append(
            breaking("getJob", "status_url", f"{BASE}/jobs/job_0000000000000000"))
        with pytest.raises(ContractViolation) as caught:
            run_machine(spec, BASE, OPTIONS, None)
    assert caught.value.check == "invariants", str(caught.value)[:1500]
    assert "does not name job" in caught.value.detail


def test_an_assumed_not_before_is_not_judged() -> None:
    spec = seed("croma")  # its not_before is assumed: the document shows no timestamps
    VERDICTS.reset(spec.name)
    with in_process(spec) as api:
        api.mock.response_hooks.append(breaking("getJob", "updated_at", "2000-01-01T00:00:00Z"))
        run_machine(spec, BASE, OPTIONS, None)
    assert "invariants" not in VERDICTS.failed_checks(spec.name)
