"""examples/specs/google-lro.yaml: a shape with no status word (AIP-151), one YAML file.

The lifecycle is derived from ``done`` and which of ``response``/``error`` is set; ids are
read from ``operations/<id>``; ``:cancel`` and ``:wait`` are custom methods on the status
path; the list pages with opaque tokens. The contract suite judges the mock from the spec.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from jobmock import load_spec
from jobmock.cli import main
from jobmock.contract.runner import RunOptions, run_machine
from jobmock.idsource import read as read_id
from jobmock.testing import serve_mock

SPEC = Path(__file__).resolve().parents[1] / "examples" / "specs" / "google-lro.yaml"
A = {"Authorization": "Bearer ya29.test-owner-a"}
B = {"Authorization": "Bearer ya29.test-owner-b"}


def start(client: httpx.Client) -> tuple[str, dict[str, Any]]:
    r = client.post("/v1/projects/demo-project/documents:process", headers=A,
                    json={"uri": "gs://b/x.pdf"})
    assert r.status_code == 200, r.text
    op = r.json()
    job_id = read_id(("body:/name|after:operations/",), r.headers.get, op)
    assert job_id is not None
    return job_id, op


def test_validate_accepts_it() -> None:
    result = CliRunner().invoke(main, ["validate", str(SPEC)])
    assert result.exit_code == 0, result.output


def test_every_path_of_its_lifecycle_is_walked_over_http() -> None:
    spec = load_spec(SPEC)
    seen: set[str] = set()
    with serve_mock(spec, seed=5) as server, httpx.Client(base_url=server.url) as client:
        for _ in range(12):
            job_id, op = start(client)
            assert op["done"] is False and "response" not in op and "error" not in op
            seen.add(spec.lifecycle.status_of(op))
            client.post("/_jobmock/clock/advance", json={"seconds": 10})
            done = client.get(f"/v1/operations/{job_id}", headers=A).json()
            assert done["done"] is True
            assert ("response" in done) != ("error" in done)
            seen.add(spec.lifecycle.status_of(done))
        job_id, _ = start(client)
        r = client.post(f"/v1/operations/{job_id}:cancel", headers=A)
        assert (r.status_code, r.json()) == (200, {})
        canceled = client.get(f"/v1/operations/{job_id}", headers=A).json()
        assert canceled["error"]["code"] == 1
        seen.add(spec.lifecycle.status_of(canceled))
        again = client.post(f"/v1/operations/{job_id}:cancel", headers=A)
        assert again.status_code == 200
        assert client.get(f"/v1/operations/{job_id}", headers=A).json() == canceled
    assert seen == set(spec.lifecycle.states)


def test_wait_holds_until_done_and_list_pages_with_tokens() -> None:
    spec = load_spec(SPEC)
    with serve_mock(spec, seed=5) as server, httpx.Client(base_url=server.url,
                                                         timeout=20) as client:
        job_id, _ = start(client)
        answer: dict[str, Any] = {}
        waiter = threading.Thread(target=lambda: answer.update(
            r=client.post(f"/v1/operations/{job_id}:wait", headers=A)))
        waiter.start()
        for _ in range(200):
            entries = client.get("/_jobmock/requests").json()["requests"]
            if any(e["path"].endswith(":wait") for e in entries) or not waiter.is_alive():
                break
            waiter.join(0.01)
        assert waiter.is_alive(), "the wait answered before the job was done"
        client.post("/_jobmock/clock/advance", json={"seconds": 10})
        waiter.join(10)
        assert answer["r"].status_code == 200 and answer["r"].json()["done"] is True
        ids = [job_id] + [start(client)[0] for _ in range(4)]
        start_b = client.post("/v1/projects/other/documents:process", headers=B,
                              json={"uri": "gs://b/y.pdf"}).json()["name"]
        listed, token = [], None
        for _ in range(6):
            page = client.get("/v1/operations", headers=A,
                              params={"pageSize": 2, **({"pageToken": token} if token else {})})
            assert page.status_code == 200
            listed += [o["name"] for o in page.json()["operations"]]
            token = page.json().get("nextPageToken")
            if token is None:
                break
        assert listed == [f"operations/{i}" for i in reversed(ids)]
        assert start_b not in listed
        assert client.delete(f"/v1/operations/{job_id}", headers=A).json() == {}
        assert client.get(f"/v1/operations/{job_id}", headers=A).status_code == 404


def test_a_malformed_operation_name_is_answered_not_found() -> None:
    """The operation documents 404, not 400: a name that breaks its pattern names no job."""
    spec = load_spec(SPEC)
    with serve_mock(spec) as server, httpx.Client(base_url=server.url) as client:
        r = client.get("/v1/operations/bad*name", headers=A)
        assert r.status_code == 404
        assert json.loads(r.text)["error"]["status"] == "NOT_FOUND"


@pytest.mark.live
def test_the_contract_suite_passes_on_its_mock() -> None:
    spec = load_spec(SPEC)
    with serve_mock(spec, seed=1) as server:
        run_machine(spec, server.url, RunOptions(examples=8, steps=25, shrink=False), None)
