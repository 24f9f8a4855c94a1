"""Enrich over HTTP: the mock's answers judged against openapi/enrich.yaml.

Driven with starlette's TestClient; the virtual clock and forced outcomes go through the
control plane. Expected statuses, headers and error bodies are read from the spec; every
JSON body is validated against the schema the spec documents for it (formats checked).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from apihelpers import BASE, ApiHelpers, advance, job_count, json_values
from apihelpers import post_outcome as force
from jobmock import resolve_spec
from jobmock.asgi import create_app

SPEC = resolve_spec("enrich")
SUBMIT = SPEC.submit_operations[0]
STATUS = SPEC.status_operation
LC = SPEC.lifecycle
LONGEST = SPEC.timing.queued[1] + SPEC.timing.running[1]
VALIDATION = SPEC.errors["validation"]
PENDING = SUBMIT.responses["pending"].status
TXS = ["NETFLIX.COM 866-579-7172 CA", "SQ *BLUE BOTTLE COFFEE OAKLAND CA", "AMZN Mktp US*2K4TY7X31",
       "UBER *TRIP HELP.UBER.COM", "SPOTIFY P0123456"]


# -- helpers --------------------------------------------------------------------------------

H = ApiHelpers(SPEC)
check, error_body, assert_retry_after, status_url = H.check, H.error_body, H.assert_retry_after, H.status_url
A, B = H.creds(0), H.creds(1)


def job_id_of(response: httpx.Response) -> str:
    return H.job_id(SUBMIT, response)


def submit(client: TestClient, txs: list[str] = TXS, headers: dict[str, str] = A) -> httpx.Response:
    return client.post(SUBMIT.path, json={"transactions": txs}, headers=headers)


# -- submit and poll --------------------------------------------------------------------------


def test_submit_answers_the_documented_202(make_client: Any) -> None:
    mock, client = make_client("enrich")
    r = submit(client)
    assert r.status_code == PENDING
    body = check(SUBMIT, r)
    job_id = job_id_of(r)
    assert body["status"] == LC.queued
    assert_retry_after(r, body["status"])
    assert mock.engine.get(job_id) is not None


@pytest.mark.parametrize("outcome", sorted(LC.terminal_words))
def test_results_empty_until_complete_then_one_per_transaction_in_order(
        make_client: Any, outcome: str) -> None:
    assert SPEC.timing.running[0] > 0.5, "polls 0.5 s apart must see the job processing"
    _mock, client = make_client("enrich")
    job_id = job_id_of(submit(client))
    assert force(client, job_id, outcome, when="scheduled").status_code == 200
    seen: list[str] = []
    body: dict[str, Any] = {}
    for _ in range(int(LONGEST / 0.5) + 3):
        r = client.get(status_url(job_id), headers=A)
        assert r.status_code == 200
        body = check(STATUS, r)
        assert body["id"] == job_id
        word = body["status"]
        if not seen or seen[-1] != word:
            seen.append(word)
        assert_retry_after(r, word)
        role = LC.states[word]
        if role == "queued":
            assert "total" not in body
        else:
            assert body["total"] == len(TXS)
        if role != "completed":
            assert body["results"] == []
        if LC.is_terminal(word):
            break
        advance(client, 0.5)
    assert seen[0] == LC.queued and seen[-1] == outcome, seen
    assert LC.running in seen, f"never seen processing: {seen}"
    if LC.states[outcome] == "completed":
        assert [res["transaction"] for res in body["results"]] == TXS
    # terminal answers never change
    advance(client, 3600)
    assert client.get(status_url(job_id), headers=A).json() == body


def test_total_appears_once_processing(make_client: Any) -> None:
    _mock, client = make_client("enrich")
    job_id = job_id_of(submit(client, TXS[:2]))
    assert "total" not in check(STATUS, client.get(status_url(job_id), headers=A))
    assert force(client, job_id, LC.running or "").status_code == 200
    body = check(STATUS, client.get(status_url(job_id), headers=A))
    assert body["status"] == LC.running and body["total"] == 2 and body["results"] == []


def test_a_job_failed_while_queued_has_no_total_one_failed_while_processing_has(
        make_client: Any) -> None:
    # Issue 11, item 9: `total` is "present once the job has been picked up for processing".
    failed = LC.word("failed") or ""
    assert LC.can_move(LC.queued, failed), "enrich lets a queued job fail without starting"
    _mock, client = make_client("enrich")
    never_started = job_id_of(submit(client, TXS[:2]))
    assert force(client, never_started, failed).status_code == 200
    body = check(STATUS, client.get(status_url(never_started), headers=A))
    assert body["status"] == failed and "total" not in body
    picked_up = job_id_of(submit(client, TXS[:3]))
    assert force(client, picked_up, LC.running or "").status_code == 200
    assert force(client, picked_up, failed).status_code == 200
    body = check(STATUS, client.get(status_url(picked_up), headers=A))
    assert body["status"] == failed and body["total"] == 3


def test_jobs_are_independent(make_client: Any) -> None:
    _mock, client = make_client("enrich")
    first = job_id_of(submit(client, TXS[:1]))
    second = job_id_of(submit(client, TXS[1:4]))
    assert first != second
    for job_id in (first, second):
        force(client, job_id, LC.word("completed") or "")
    assert [x["transaction"] for x in client.get(status_url(first), headers=A).json()["results"]] \
        == TXS[:1]
    assert [x["transaction"] for x in client.get(status_url(second), headers=A).json()["results"]] \
        == TXS[1:4]


# -- authentication --------------------------------------------------------------------------------


KEY = SPEC.auth.param


@pytest.mark.parametrize(("headers", "error"), [
    ({}, SPEC.auth.missing),
    ({KEY: ""}, SPEC.auth.missing),
    ({KEY: "   "}, SPEC.auth.missing),
    ({KEY: "sk_test_enrich_revoked"}, SPEC.auth.invalid),
    ({KEY: "Bearer " + SPEC.demo_tenants()[0][1]}, SPEC.auth.invalid),
    ({KEY: SPEC.demo_tenants()[0][1].upper()}, SPEC.auth.invalid),
    ({"Authorization": "Bearer " + SPEC.demo_tenants()[0][1]}, SPEC.auth.missing),
])
def test_bad_credentials_get_the_documented_error(make_client: Any, headers: dict[str, str],
                                                  error: str) -> None:
    _mock, client = make_client("enrich")
    job_id = job_id_of(submit(client))
    expected = SPEC.errors[error]
    r = submit(client, headers=headers)
    assert r.status_code == expected.status
    assert check(SUBMIT, r) == error_body(error)
    assert job_count(client) == 1
    r = client.get(status_url(job_id), headers=headers)
    assert r.status_code == expected.status
    assert check(STATUS, r) == error_body(error)


def test_another_tenants_job_is_the_documented_auth_error_leaking_nothing(
        make_client: Any) -> None:
    _mock, client = make_client("enrich")
    job_id = job_id_of(submit(client))
    force(client, job_id, LC.word("completed") or "")
    r = client.get(status_url(job_id), headers=B)
    expected = SPEC.errors[SPEC.auth.foreign_job]
    assert r.status_code == expected.status
    assert check(STATUS, r) == error_body(SPEC.auth.foreign_job)
    assert job_id not in r.text and TXS[0] not in r.text and "Retry-After" not in r.headers
    assert client.get(status_url(job_id), headers=A).status_code == 200


def test_unknown_job_is_not_found(make_client: Any) -> None:
    _mock, client = make_client("enrich")
    for job_id in ("84c8a82d-1234-5678-abcd-ef0123456789", "not-a-uuid"):
        r = client.get(status_url(job_id), headers=A)
        assert r.status_code == SPEC.errors["not_found"].status
        assert check(STATUS, r) == error_body("not_found")


# -- validation ----------------------------------------------------------------------------------


MAX_ITEMS = H.resolve(SPEC.document["components"]["schemas"]["EnrichAsyncRequest"])[
    "properties"]["transactions"]["maxItems"]


@pytest.mark.parametrize("content", [
    b"{}",
    b'{"transactions": []}',
    b'{"transactions": [""]}',
    b'{"transactions": [1, 2]}',
    b'{"transactions": "NETFLIX"}',
    b'{"transactions": ["a"], "extra": true}',
    b'{"transaction": ["a"]}',
    b'["a", "b"]', b"null", b"1",
    b"{not json", b'{"transactions": ["a",]}', b"\xff\xfe",
    b"",
    ('{"transactions": [' + ",".join(['"t"'] * (MAX_ITEMS + 1)) + "]}").encode(),
])
def test_bad_body_is_the_validation_error(make_client: Any, content: bytes) -> None:
    _mock, client = make_client("enrich")
    r = client.post(SUBMIT.path, content=content, headers={**A, "Content-Type": "application/json"})
    assert r.status_code == VALIDATION.status
    body = check(SUBMIT, r)
    assert body == error_body("validation", message=body["error"]) and body["error"]
    assert job_count(client) == 0


def test_the_largest_documented_batch_is_accepted(make_client: Any) -> None:
    _mock, client = make_client("enrich")
    assert submit(client, [f"tx {i}" for i in range(MAX_ITEMS)]).status_code == PENDING


def test_deeply_nested_json_is_a_validation_error_not_a_crash(make_mock: Any) -> None:
    # Bug: json.loads raises RecursionError (not a ValueError) and the mock answers 500.
    mock = make_mock("enrich")
    with TestClient(create_app(mock), base_url=BASE, raise_server_exceptions=False) as client:
        depth = 5000
        content = b'{"transactions": ' + b"[" * depth + b"]" * depth + b"}"
        r = client.post(SUBMIT.path, content=content,
                        headers={**A, "Content-Type": "application/json"})
        assert r.status_code == VALIDATION.status, r.text
        check(SUBMIT, r)


def test_lone_surrogate_in_a_transaction_never_makes_a_500(make_mock: Any) -> None:
    # Bug: json_response encodes with ensure_ascii=False, so a client's "\ud800" escape
    # (valid JSON, accepted by the schema) crashes every later answer that echoes it.
    mock = make_mock("enrich")
    with TestClient(create_app(mock), base_url=BASE, raise_server_exceptions=False) as client:
        r = client.post(SUBMIT.path, content=b'{"transactions": ["caf\\ud800"]}',
                        headers={**A, "Content-Type": "application/json"})
        assert r.status_code in (PENDING, VALIDATION.status)
        if r.status_code == PENDING:
            job_id = job_id_of(r)
            forced = force(client, job_id, LC.word("completed") or "")
            assert forced.status_code == 200, forced.text
            r = client.get(status_url(job_id), headers=A)
            assert r.status_code == 200, r.text
            check(STATUS, r)


_json = json_values(text=10, items=4, keys=3, leaves=10)


def test_any_json_body_gets_a_documented_answer(make_client: Any) -> None:
    _mock, client = make_client("enrich")

    @settings(max_examples=60, derandomize=True, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(body=_json | st.fixed_dictionaries({"transactions": st.lists(_json, max_size=4)}))
    def one(body: Any) -> None:
        r = client.post(SUBMIT.path, json=body, headers=A)
        assert r.status_code in (PENDING, VALIDATION.status), r.text
        check(SUBMIT, r)

    one()

