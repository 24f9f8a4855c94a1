"""The control plane under /_jobmock/, over HTTP (starlette TestClient on the ASGI app).

What it must do is stated in jobmock.control's docstring (and the README); values about
the API (its name, status words, document) are read from the spec.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from jobmock import Mock, RealClock, VirtualClock, bundled_names, resolve_spec
from jobmock.asgi import create_app
from jobmock.clock import DEFAULT_EPOCH
from jobmock.templates import iso

BASE = "http://mock.test"
CROMA = resolve_spec("croma")
LC = CROMA.lifecycle
SICAAC = next(op for op in CROMA.submit_operations if op.path.endswith("/sicaac"))
BODY = {"document_type": "CC", "document_number": "1020304050"}
TENANTS = CROMA.demo_tenants()
LONGEST = CROMA.timing.queued[1] + CROMA.timing.running[1]


def creds(index: int) -> dict[str, str]:
    return {**CROMA.auth.headers_for(TENANTS[index][1]), "Prefer": "wait=0"}


A, B = creds(0), creds(1)


def submit(client: TestClient, headers: dict[str, str] = A) -> str:
    r = client.post(SICAAC.path, json=BODY, headers=headers)
    assert r.status_code == SICAAC.responses["pending"].status, r.text
    return str(r.headers["X-Job-Id"])


def poll(client: TestClient, job_id: str) -> httpx.Response:
    return client.get(f"/jobs/{job_id}", headers=A)


def word(client: TestClient, job_id: str) -> str:
    return str(poll(client, job_id).json()["status"])


def advance(client: TestClient, seconds: float) -> httpx.Response:
    return client.post("/_jobmock/clock/advance", json={"seconds": seconds})


def outcome(client: TestClient, job_id: str, **body: Any) -> httpx.Response:
    return client.post(f"/_jobmock/jobs/{job_id}/outcome", json=body)


def assert_bad(r: httpx.Response, status: int) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"]


# -- health and clock ------------------------------------------------------------------------


@pytest.mark.parametrize("api", bundled_names())
def test_health_names_the_api_and_its_clock(make_client: Any, api: str) -> None:
    _mock, client = make_client(api)
    r = client.get("/_jobmock/health")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["status"] == "ok"
    assert body["api"] == resolve_spec(api).name
    assert body["jobs"] == 0
    assert body["clock"]["kind"] == "virtual" and body["clock"]["speed"] == 0
    assert body["clock"]["epoch"] == DEFAULT_EPOCH


def test_health_counts_jobs(make_client: Any) -> None:
    _mock, client = make_client("croma")
    submit(client)
    submit(client, B)
    assert client.get("/_jobmock/health").json()["jobs"] == 2


def test_clock_reports_time_kind_speed_and_next_due(make_client: Any) -> None:
    _mock, client = make_client("croma")
    body = client.get("/_jobmock/clock").json()
    assert body == {"now": iso(DEFAULT_EPOCH), "epoch": DEFAULT_EPOCH, "kind": "virtual",
                    "speed": 0.0, "next_due": None}
    submit(client)
    nxt = client.get("/_jobmock/clock").json()["next_due"]
    assert nxt is not None and nxt > body["now"]


def test_clock_advance_moves_time_and_fires_what_fell_due(make_client: Any) -> None:
    assert CROMA.timing.queued[0] > 0.1, "nothing may fall due in the first 0.1 s"
    _mock, client = make_client("croma")
    job_id = submit(client)
    r = advance(client, 0.1)
    assert r.status_code == 200
    body = r.json()
    assert body["epoch"] == pytest.approx(DEFAULT_EPOCH + 0.1)
    assert body["fired"] == 0 and word(client, job_id) == LC.queued
    body = advance(client, LONGEST).json()
    assert body["fired"] >= 2
    assert body["epoch"] == pytest.approx(DEFAULT_EPOCH + 0.1 + LONGEST)
    assert LC.is_terminal(word(client, job_id))
    assert client.get("/_jobmock/clock").json()["epoch"] == body["epoch"]
    assert advance(client, 0).status_code == 200


@pytest.mark.parametrize("payload", [{}, {"seconds": -1}, {"seconds": "5"}, {"seconds": True},
                                     {"seconds": None}, [5]])
def test_clock_advance_refuses_a_bad_amount(make_client: Any, payload: Any) -> None:
    _mock, client = make_client("croma")
    assert_bad(client.post("/_jobmock/clock/advance", json=payload), 400)
    assert client.get("/_jobmock/clock").json()["epoch"] == DEFAULT_EPOCH


def test_clock_advance_on_a_real_clock_is_409(make_mock: Any) -> None:
    mock = make_mock("croma", clock=RealClock())
    with TestClient(create_app(mock), base_url=BASE) as client:
        assert client.get("/_jobmock/clock").json()["kind"] == "real"
        assert_bad(advance(client, 5), 409)


# -- jobs -----------------------------------------------------------------------------------------


def test_jobs_lists_every_job_with_counts_and_filters(make_client: Any) -> None:
    _mock, client = make_client("croma")
    a1, a2, b1 = submit(client), submit(client), submit(client, B)
    assert outcome(client, a2, status="failed").status_code == 200
    body = client.get("/_jobmock/jobs").json()
    assert [j["id"] for j in body["jobs"]] == [a1, a2, b1]
    assert body["counts"] == {LC.queued: 2, "failed": 1}
    by_status = client.get("/_jobmock/jobs", params={"status": LC.queued}).json()["jobs"]
    assert [j["id"] for j in by_status] == [a1, b1]
    by_tenant = client.get("/_jobmock/jobs", params={"tenant": TENANTS[1][0]}).json()["jobs"]
    assert [j["id"] for j in by_tenant] == [b1]
    both = client.get("/_jobmock/jobs", params={"tenant": TENANTS[0][0], "status": "failed"})
    assert [j["id"] for j in both.json()["jobs"]] == [a2]
    bogus = client.get("/_jobmock/jobs", params={"status": "nope"})
    assert_bad(bogus, 400)
    assert all(word in bogus.json()["error"] for word in LC.states), "it names the valid words"


def test_job_detail_shows_tenant_request_plan_and_history(make_client: Any) -> None:
    _mock, client = make_client("croma")
    job_id = submit(client)
    advance(client, LONGEST)
    r = client.get(f"/_jobmock/jobs/{job_id}")
    assert r.status_code == 200
    job = r.json()
    final = poll(client, job_id).json()
    assert job["id"] == job_id and job["tenant"] == TENANTS[0][0]
    assert job["operation"] == SICAAC.operation_id and job["request"] == BODY
    assert job["status"] == final["status"] and job["role"] == LC.states[final["status"]]
    assert job["planned"]["outcome"] in LC.terminal_words
    assert job["planned"]["queued_for"] <= CROMA.timing.queued[1]
    history = [h["status"] for h in job["history"]]
    assert history[0] == LC.queued and history[-1] == final["status"]
    assert [h["at"] for h in job["history"]] == sorted(h["at"] for h in job["history"])
    assert job["completed_at"] == job["history"][-1]["at"]


def test_unknown_job_detail_is_404(make_client: Any) -> None:
    _mock, client = make_client("croma")
    assert_bad(client.get("/_jobmock/jobs/nope"), 404)


# -- forced outcomes ------------------------------------------------------------------------------


def test_outcome_now_ends_the_job_at_once(make_client: Any) -> None:
    _mock, client = make_client("croma")
    job_id = submit(client)
    r = outcome(client, job_id, status="expired")
    assert r.status_code == 200 and r.json()["status"] == "expired"
    assert word(client, job_id) == "expired"
    history = [h["status"] for h in r.json()["history"]]
    assert history[0] == LC.queued and history[-1] == "expired"
    assert all(LC.can_move(a, b) for a, b in itertools.pairwise(history))


def test_outcome_accepts_a_role_and_moves_to_its_word(make_client: Any) -> None:
    mock, client = make_client("enrich")
    spec = mock.spec
    r = client.post(spec.submit_operations[0].path, json={"transactions": ["x"]},
                    headers=spec.auth.headers_for(spec.demo_tenants()[0][1]))
    job_id = r.json()["job_id"]
    assert outcome(client, job_id, status="running").json()["status"] == spec.lifecycle.running
    done = outcome(client, job_id, status="completed").json()
    assert done["status"] == spec.lifecycle.word("completed") and done["role"] == "completed"


def test_outcome_scheduled_changes_only_where_the_job_ends(make_client: Any) -> None:
    _mock, client = make_client("croma")
    job_id = submit(client)
    r = outcome(client, job_id, status="failed", when="scheduled",
                error={"type": "t", "code": "c", "message": "m"})
    assert r.status_code == 200
    assert r.json()["status"] == LC.queued and r.json()["planned"]["outcome"] == "failed"
    assert word(client, job_id) == LC.queued
    advance(client, LONGEST)
    final = poll(client, job_id).json()
    assert final["status"] == "failed" and final["error"] == {"type": "t", "code": "c",
                                                              "message": "m"}


def test_outcome_running_starts_a_queued_job(make_client: Any) -> None:
    _mock, client = make_client("croma")
    job_id = submit(client)
    assert outcome(client, job_id, status=LC.running).json()["status"] == LC.running
    assert word(client, job_id) == LC.running
    assert_bad(outcome(client, job_id, status=LC.running), 409)


def test_outcome_on_a_terminal_job_is_409_and_changes_nothing(make_client: Any) -> None:
    _mock, client = make_client("croma")
    job_id = submit(client)
    outcome(client, job_id, status="completed")
    before = poll(client, job_id).json()
    for status in ("failed", "canceled", LC.running):
        assert_bad(outcome(client, job_id, status=status), 409)
        assert_bad(outcome(client, job_id, status=status, when="scheduled"), 409)
    assert poll(client, job_id).json() == before


def test_outcome_back_to_queued_is_409(make_client: Any) -> None:
    _mock, client = make_client("croma")
    job_id = submit(client)
    outcome(client, job_id, status=LC.running)
    assert_bad(outcome(client, job_id, status=LC.queued), 409)
    assert word(client, job_id) == LC.running


def test_outcome_for_an_unknown_job_is_404(make_client: Any) -> None:
    _mock, client = make_client("croma")
    assert_bad(outcome(client, "nope", status="failed"), 404)


@pytest.mark.parametrize("payload", [{}, {"status": 3}, [1], "failed"])
def test_outcome_with_a_malformed_body_is_400(make_client: Any, payload: Any) -> None:
    _mock, client = make_client("croma")
    job_id = submit(client)
    assert_bad(client.post(f"/_jobmock/jobs/{job_id}/outcome", json=payload), 400)
    assert_bad(client.post(f"/_jobmock/jobs/{job_id}/outcome", content=b"{nope",
                           headers={"Content-Type": "application/json"}), 400)
    assert word(client, job_id) == LC.queued


@pytest.mark.parametrize("payload", [{"status": "bogus"}, {"status": "failed", "when": "later"}])
def test_outcome_with_an_unknown_status_or_when_is_a_bad_request(make_client: Any,
                                                                 payload: Any) -> None:
    # Bug: control.py's docstring says "a bad control request gets 400"; an unknown
    # status word or `when` raises ValueError in Engine.force and is answered 409.
    _mock, client = make_client("croma")
    job_id = submit(client)
    assert_bad(outcome(client, job_id, **payload), 400)
    assert word(client, job_id) == LC.queued


# -- the request journal -------------------------------------------------------------------------


def test_requests_journal_records_api_requests_in_order(make_client: Any) -> None:
    _mock, client = make_client("croma")
    job_id = submit(client)
    poll(client, job_id)
    client.get(f"/jobs/{job_id}", headers=B)
    client.get("/_jobmock/health")
    body = client.get("/_jobmock/requests").json()
    entries = body["requests"]
    assert body["total"] == 3 and len(entries) == 3
    assert [(e["method"], e["path"], e["status"]) for e in entries] == [
        ("POST", SICAAC.path, SICAAC.responses["pending"].status),
        ("GET", f"/jobs/{job_id}", CROMA.status.status),
        ("GET", f"/jobs/{job_id}", CROMA.errors[CROMA.auth.foreign_job].status)]
    assert [e["seq"] for e in entries] == [1, 2, 3]
    assert [e["tenant"] for e in entries] == [TENANTS[0][0], TENANTS[0][0], TENANTS[1][0]]
    assert entries[0]["operation"] == SICAAC.operation_id and entries[0]["job_id"] == job_id
    assert entries[0]["headers"]["prefer"] == "wait=0"
    last = client.get("/_jobmock/requests", params={"limit": 1}).json()["requests"]
    assert [e["seq"] for e in last] == [3]
    assert client.get("/_jobmock/requests", params={"limit": 0}).json()["requests"] == []
    assert_bad(client.get("/_jobmock/requests", params={"limit": "x"}), 400)
    assert_bad(client.get("/_jobmock/requests", params={"limit": "-1"}), 400)


def test_requests_journal_is_bounded_by_journal_size(make_client: Any) -> None:
    _mock, client = make_client("croma", journal_size=3)
    job_id = submit(client)
    for _ in range(6):
        poll(client, job_id)
    body = client.get("/_jobmock/requests").json()
    assert body["size"] == 3 and body["total"] == 7
    assert [e["seq"] for e in body["requests"]] == [5, 6, 7]


# -- advance policy -------------------------------------------------------------------------------


def test_advance_policy_defaults_to_time(make_client: Any) -> None:
    _mock, client = make_client("croma")
    assert client.get("/_jobmock/advance").json() == {"mode": "time", "polls": 1}


@pytest.mark.parametrize("n", [1, 3])
def test_polls_policy_moves_a_job_one_step_every_n_polls(make_client: Any, n: int) -> None:
    _mock, client = make_client("croma")
    before = submit(client)
    r = client.post("/_jobmock/advance", json={"mode": "polls", "polls": n})
    assert r.json() == {"mode": "polls", "polls": n}
    assert client.get("/_jobmock/advance").json() == {"mode": "polls", "polls": n}
    job_id = submit(client)
    advance(client, LONGEST * 10)
    assert LC.is_terminal(word(client, before)), "the policy changed a job submitted before it"
    seen = [word(client, job_id) for _ in range(3 * n)]
    running = LC.running
    assert seen[: n - 1] == [LC.queued] * (n - 1)
    assert seen[n - 1: 2 * n - 1] == [running] * n
    assert LC.is_terminal(seen[2 * n - 1]) and len(set(seen[2 * n - 1:])) == 1


def test_manual_policy_moves_jobs_only_when_forced(make_client: Any) -> None:
    _mock, client = make_client("croma")
    client.post("/_jobmock/advance", json={"mode": "manual"})
    job_id = submit(client)
    advance(client, LONGEST * 10)
    assert [word(client, job_id) for _ in range(3)] == [LC.queued] * 3
    outcome(client, job_id, status="completed")
    assert word(client, job_id) == "completed"


@pytest.mark.parametrize("payload", [{"mode": "sometimes"}, {"mode": "polls", "polls": 0},
                                     {"mode": "polls", "polls": "x"}, {"mode": "polls",
                                                                      "polls": None}])
def test_advance_policy_refuses_bad_settings(make_client: Any, payload: Any) -> None:
    _mock, client = make_client("croma")
    assert_bad(client.post("/_jobmock/advance", json=payload), 400)
    assert client.get("/_jobmock/advance").json() == {"mode": "time", "polls": 1}


# -- spec, reset, unknown paths ---------------------------------------------------------------------


@pytest.mark.parametrize("api", bundled_names())
def test_spec_is_the_served_openapi_document(make_client: Any, api: str) -> None:
    _mock, client = make_client(api)
    r = client.get("/_jobmock/spec")
    assert r.status_code == 200
    spec = resolve_spec(api)
    # The tenants' credentials and the webhook signing secret, wherever the document states
    # them, are the only change: redacted.
    secrets = [c for creds in spec.auth.tenants.values() for c in creds]
    if spec.webhooks is not None and spec.webhooks.signature is not None:
        secrets.append(spec.webhooks.signature.secret)
    text = json.dumps(spec.document)
    for secret in sorted(secrets, key=len, reverse=True):
        assert secret not in r.text
        text = text.replace(secret, "[redacted]")
    assert r.json() == json.loads(text)


def test_reset_forgets_jobs_and_journal_but_keeps_the_clock(make_client: Any) -> None:
    _mock, client = make_client("croma")
    job_id = submit(client)
    advance(client, 5)
    r = client.post("/_jobmock/reset", json={})
    assert r.status_code == 200
    assert client.get("/_jobmock/jobs").json() == {"jobs": [], "counts": {}, "next": None}
    assert client.get("/_jobmock/requests").json()["requests"] == []
    assert client.get("/_jobmock/health").json()["jobs"] == 0
    assert client.get("/_jobmock/clock").json()["epoch"] == DEFAULT_EPOCH + 5
    r = poll(client, job_id)
    assert r.status_code == CROMA.errors["not_found"].status
    assert client.get("/_jobmock/requests").json()["total"] == 1


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/_jobmock/ui/nothing"), ("GET", "/_jobmock/nothing"), ("PUT", "/_jobmock/health"),
    ("POST", "/_jobmock/jobs"), ("DELETE", "/_jobmock/jobs/x"), ("GET", "/_jobmock/clock/advance"),
    ("GET", "/_jobmock/reset"), ("GET", "/_jobmock/jobs/x/outcome/more"),
])
def test_unknown_control_path_is_404(make_client: Any, method: str, path: str) -> None:
    _mock, client = make_client("croma")
    assert_bad(client.request(method, path), 404)


def test_control_plane_needs_no_api_credentials_and_is_not_journaled(make_mock: Any) -> None:
    mock = make_mock("croma")
    assert isinstance(mock.clock, VirtualClock)
    with TestClient(create_app(mock), base_url=BASE) as client:
        for path in ("/_jobmock/health", "/_jobmock/clock", "/_jobmock/jobs", "/_jobmock/spec"):
            assert client.get(path).status_code == 200
        assert client.get("/_jobmock/requests").json()["total"] == 0


def test_each_mock_has_its_own_state() -> None:
    one, two = (Mock(CROMA, clock=VirtualClock()) for _ in range(2))
    with TestClient(create_app(one), base_url=BASE) as c1, \
            TestClient(create_app(two), base_url=BASE) as c2:
        submit(c1)
        advance(c1, 10)
        assert c2.get("/_jobmock/health").json()["jobs"] == 0
        assert c2.get("/_jobmock/clock").json()["epoch"] == DEFAULT_EPOCH
