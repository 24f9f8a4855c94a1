"""A forced outcome's error or result must fit the spec's status body: the control plane
refuses one that would make the mock serve a body that breaks its own spec."""

from __future__ import annotations

from typing import Any

from conftest import tenant_headers


def submit_cloro(client: Any) -> str:
    r = client.post("/v1/task", headers=tenant_headers("cloro"),
                    json={"taskType": "CHATGPT", "payload": {"prompt": "hi"}})
    assert r.status_code == 200, r.text
    return str(r.json()["task"]["id"])


def test_an_error_that_breaks_the_schema_is_refused_and_the_job_is_untouched(make_client: Any) -> None:
    mock, client = make_client("cloro")
    task = submit_cloro(client)
    r = client.post(f"/_jobmock/jobs/{task}/outcome", json={"status": "FAILED", "error": {"message": "x"}})
    assert r.status_code == 400
    assert "code" in r.json()["error"]
    assert mock.engine.get(task).status == "QUEUED"


def test_an_error_that_fits_is_served(make_client: Any) -> None:
    _mock, client = make_client("cloro")
    task = submit_cloro(client)
    error = {"code": "PROVIDER_DOWN", "message": "The provider did not answer."}
    r = client.post(f"/_jobmock/jobs/{task}/outcome", json={"status": "FAILED", "error": error})
    assert r.status_code == 200, r.text
    polled = client.get(f"/v1/task/{task}", headers=tenant_headers("cloro")).json()
    assert polled["task"]["status"] == "FAILED" and polled["error"] == error
