"""The ``result`` operation role: a job's separate result resource. The mock answers the spec's
``response`` (here a 303 to the output file) when the job completed, ``when_unfinished`` (a
named error) before, and ``when_ended`` (a response) when it ended otherwise; the spec loader
refuses a result operation without them; the contract suite passes the mock and fails a
server that hands out a result before the job is done.

The spec is the openai-batch example with a result path added (OpenAI's own result is a file
of the Files API, which names no batch: the example keeps its paths).
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from jobmock.contract import CHECKS, ContractViolation
from jobmock.contract.runner import RunOptions, run_machine
from jobmock.contract.verdicts import VERDICTS
from jobmock.errors import SpecError
from jobmock.inprocess import InProcessMock
from jobmock.spec import ApiSpec, Operation, load_spec

ROOT = Path(__file__).resolve().parents[1]
BASE = "http://jobmock.test"
OPTIONS = RunOptions(examples=8, steps=25, shrink=False, budget=60.0)

RESULT_OP: dict[str, Any] = {
    "operationId": "getBatchOutput",
    "x-jobmock": {
        "role": "result",
        "job_id_param": "batch_id",
        "response": {"status": 303, "render": None, "headers": {
            "Location": "{base_url}/v1/files/{job.result.output_file_id}/content"}},
        "when_unfinished": {"error": "not_ready"},
        "when_ended": {"response": {"status": 200, "render": "batch"}},
    },
    "parameters": [{"$ref": "#/components/parameters/BatchId"}],
    "responses": {
        "303": {"description": "The output file.",
                "headers": {"Location": {"schema": {"type": "string"}}}},
        "200": {"description": "The batch, which ended without output.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Batch"}}}},
        "401": {"$ref": "#/components/responses/Unauthorized"},
        "404": {"$ref": "#/components/responses/NotFound"},
        "409": {"description": "The batch has not finished."},
    },
}


def write_spec(tmp_path: Path, change: Any = None) -> Path:
    doc = yaml.safe_load((ROOT / "examples" / "specs" / "openai-batch.yaml").read_text())
    doc["paths"]["/v1/batches/{batch_id}/output"] = {"get": copy.deepcopy(RESULT_OP)}
    doc["x-jobmock"]["errors"]["not_ready"] = {"status": 409, "body": {"error": {
        "message": "Batch {job.id} is {job.status}: no output yet.",
        "type": "invalid_request_error", "param": None, "code": "batch_not_ready"}}}
    if change is not None:
        change(doc)
    path = tmp_path / "openai-batch.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture
def spec(tmp_path: Path) -> ApiSpec:
    return load_spec(write_spec(tmp_path))


def in_process(spec: ApiSpec) -> InProcessMock:
    return InProcessMock(spec, base_url=BASE, seed=3, max_idle_polls=None)


def submit(api: InProcessMock, outcome: str) -> str:
    api.plan_next(outcome=outcome)
    r = httpx.post(f"{BASE}/v1/batches", headers=api.auth_headers(), json={
        "input_file_id": "file-abc123", "endpoint": "/v1/chat/completions",
        "completion_window": "24h"})
    assert r.status_code == 200, r.text
    job_id: str = r.json()["id"]
    return job_id


def result(api: InProcessMock, job_id: str, tenant: int = 0) -> httpx.Response:
    return httpx.get(f"{BASE}/v1/batches/{job_id}/output", headers=api.auth_headers(tenant))


def test_the_result_is_refused_until_done_then_redirects_to_the_output(spec: ApiSpec) -> None:
    with in_process(spec) as api:
        job_id = submit(api, "completed")
        early = result(api, job_id)
        assert early.status_code == 409, early.text
        assert early.json()["error"]["code"] == "batch_not_ready"
        assert f"Batch {job_id} is validating" in early.json()["error"]["message"]
        api.run_until_idle()
        done = result(api, job_id)
        assert done.status_code == 303 and done.content == b""
        assert done.headers["location"] == f"{BASE}/v1/files/file-output-{job_id}/content"
        assert result(api, job_id, tenant=1).status_code == 404  # another project's batch
        assert result(api, "batch_nope").status_code == 404


def test_a_job_that_ended_otherwise_gets_the_when_ended_answer(spec: ApiSpec) -> None:
    with in_process(spec) as api:
        job_id = submit(api, "failed")
        api.run_until_idle()
        r = result(api, job_id)
        assert r.status_code == 200 and r.json()["status"] == "failed" and r.json()["id"] == job_id


@pytest.mark.parametrize(("change", "where"), [
    (lambda doc: doc["paths"]["/v1/batches/{batch_id}/output"]["get"]["x-jobmock"].pop(
        "when_unfinished"), "when_unfinished"),
    (lambda doc: doc["paths"]["/v1/batches/{batch_id}/output"]["get"]["x-jobmock"].update(
        when_ended={"error": "no_such_error"}), "when_ended/error"),
    (lambda doc: doc["paths"]["/v1/batches/{batch_id}/output"]["get"]["x-jobmock"].pop(
        "response"), "response"),
])
def test_the_loader_refuses_an_incomplete_result_operation(tmp_path: Path, change: Any,
                                                           where: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(write_spec(tmp_path, change))
    assert where in str(caught.value)


def test_the_contract_suite_judges_the_result_and_passes_the_mock(spec: ApiSpec) -> None:
    before = CHECKS["result"].runs
    VERDICTS.reset(spec.name)
    with in_process(spec):
        run_machine(spec, BASE, OPTIONS, None)
    assert CHECKS["result"].runs > before
    assert VERDICTS.failed_checks(spec.name) == []


def test_a_server_handing_out_a_result_before_the_job_is_done_fails(spec: ApiSpec) -> None:
    VERDICTS.reset(spec.name)
    with in_process(spec) as api:
        op = next(o for o in spec.operations if o.role == "result")
        early = dataclasses.replace(op, when_unfinished=op.answer)  # a 303 while unfinished
        honest = api.mock.route

        def route(method: str, path: str) -> tuple[Operation | None, dict[str, str], bool]:
            found, params, exists = honest(method, path)
            return (early if found is op else found), params, exists

        api.mock.route = route  # type: ignore[method-assign]
        with pytest.raises(ContractViolation) as caught:
            run_machine(spec, BASE, OPTIONS, None)
    assert caught.value.check == "result", str(caught.value)[:1500]
    assert "answered 303" in caught.value.detail
