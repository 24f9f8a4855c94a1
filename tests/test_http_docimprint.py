"""docimprint over HTTP: the mock's answers judged against openapi/docimprint.yaml.

Async submits and polls are driven with starlette's TestClient (clock and forced outcomes
through the control plane). Inline (``?sync=true`` and the focused endpoints' default)
answers need a request held open while the clock moves: those tests use httpx.AsyncClient
on httpx.ASGITransport under anyio and call ``mock.engine`` on the same event loop.
Expected statuses, headers, steps, costs and error bodies are read from the spec; every
JSON body is validated against the schema the spec documents for it (formats checked).
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from apihelpers import BASE, ApiHelpers, advance, force, held, job_count, json_values, only_job, serving
from jobmock import Mock, VirtualClock, resolve_spec
from jobmock.spec import Operation

SPEC = resolve_spec("docimprint")
OPS = {op.operation_id: op for op in SPEC.submit_operations}
EXTRACT, SUMMARIZE, QA, BATCH = OPS["extract"], OPS["summarize"], OPS["qa"], OPS["createBatchJob"]
STATUS = SPEC.status_operation
LC = SPEC.lifecycle
VALIDATION = SPEC.errors["validation"]
NOT_FOUND = SPEC.errors["not_found"]
LONGEST = SPEC.timing.queued[1] + SPEC.timing.running[1]
COMPLETE = LC.word("completed") or ""
FAILED = LC.word("failed") or ""
SOURCE = "https://example.com/report.pdf"
BODIES: dict[str, dict[str, Any]] = {
    "extract": {"source": SOURCE},
    "summarize": {"source": SOURCE},
    "qa": {"source": SOURCE, "question": "When was the report signed?"},
    "createBatchJob": {"items": [{"source": "https://example.com/a.pdf"},
                                 {"source": "https://example.com/b.pdf"},
                                 {"source": "https://example.com/c.pdf"}]},
}
#: Query that makes each submit answer at once (202).
ASYNC = {"extract": {}, "summarize": {"async": "true"}, "qa": {"async": "true"},
         "createBatchJob": {}}


# -- helpers --------------------------------------------------------------------------------

H = ApiHelpers(SPEC)
check, error_body, assert_retry_after, status_url = H.check, H.error_body, H.assert_retry_after, H.status_url
#: The job id from the places job_id_from names that an answer has (all present agree).
job_id_of = H.job_id_present
A, B = H.creds(0), H.creds(1)


def status_of(op: Operation, key: str) -> int:
    return op.responses[key].status


def queue(client: TestClient, name: str, headers: dict[str, str] = A) -> httpx.Response:
    op = OPS[name]
    return client.post(op.path, params=ASYNC[name], json=BODIES[name], headers=headers)


# -- queued jobs: submit and poll ------------------------------------------------------------------


@pytest.mark.parametrize("name", list(BODIES))
def test_queued_submit_answers_202_with_a_job_id(make_client: Any, name: str) -> None:
    _mock, client = make_client("docimprint")
    op = OPS[name]
    r = queue(client, name)
    assert r.status_code == status_of(op, "pending")
    body = check(op, r)
    job_id = job_id_of(op, r)
    assert body["job_id"] == r.headers["X-Job-Id"] == job_id
    assert r.headers["Location"] == f"{BASE}{status_url(job_id)}"
    assert op.job_type is not None
    assert body["status"] == LC.queued and body["type"] == op.job_type({})
    assert body["progress_pct"] == 0 and body["credits_charged"] == 0
    assert "bundle_id" not in body and "manifest_sha256" not in body
    assert_retry_after(r, LC.queued)


def test_extract_async_true_queues_like_the_default(make_client: Any) -> None:
    _mock, client = make_client("docimprint")
    r = client.post(EXTRACT.path, params={"async": "true"}, json=BODIES["extract"], headers=A)
    assert r.status_code == status_of(EXTRACT, "pending")
    assert check(EXTRACT, r)["status"] == LC.queued


@pytest.mark.parametrize("name", list(BODIES))
def test_progress_never_decreases_and_complete_carries_the_bundle(make_client: Any,
                                                                  name: str) -> None:
    _mock, client = make_client("docimprint")
    op = OPS[name]
    job_id = job_id_of(op, queue(client, name))
    force(client, job_id, COMPLETE, when="scheduled")
    pcts: list[int] = []
    messages: list[str | None] = []
    body: dict[str, Any] = {}
    for _ in range(int(LONGEST / 0.5) + 3):
        r = client.get(status_url(job_id))
        assert r.status_code == 200
        body = check(STATUS, r)
        word = body["status"]
        assert_retry_after(r, word)
        pcts.append(body["progress_pct"])
        messages.append(body["progress_message"])
        assert ("manifest_sha256" in body) == (word == COMPLETE)
        if LC.states[word] == "queued":
            assert "bundle_id" not in body and body["progress_message"] is None
        if not LC.is_terminal(word):
            assert body["credits_charged"] == 0 and "result" not in body
        if LC.is_terminal(word):
            break
        advance(client, 0.5)
    assert pcts == sorted(pcts), f"progress went down: {pcts}"
    steps = dict(SPEC.progress_steps)
    assert {p for p in pcts if 0 < p < 100} <= set(steps), pcts
    assert any(0 < p < 100 for p in pcts), "no progress step was ever seen"
    assert all(steps[p] == m for p, m in zip(pcts, messages, strict=True) if 0 < p < 100)
    assert body["status"] == COMPLETE and body["progress_pct"] == 100
    assert body["progress_message"] == SPEC.progress_done_message
    assert body["credits_charged"] == SPEC.credits_cost
    assert body["bundle_id"] and body["manifest_sha256"]
    if name == "extract":
        assert body["result"]["bundle_id"] == body["bundle_id"]
        assert body["result"]["manifest_sha256"] == body["manifest_sha256"]
    if name == "createBatchJob":
        items = body["result"]["items"]
        assert body["items_count"] == len(BODIES[name]["items"]) == len(items)
        assert [i["source"] for i in items] == [i["source"] for i in BODIES[name]["items"]]
        assert [i["index"] for i in items] == list(range(len(items)))
    if name in ("summarize", "qa"):
        assert body["result"]["source"] == SOURCE


def test_failed_job_has_a_structured_error_and_charges_nothing(make_client: Any) -> None:
    _mock, client = make_client("docimprint")
    job_id = job_id_of(EXTRACT, queue(client, "extract"))
    force(client, job_id, LC.running or "")
    advance(client, LONGEST / 2)
    before = check(STATUS, client.get(status_url(job_id)))
    force(client, job_id, FAILED)
    r = client.get(status_url(job_id))
    body = check(STATUS, r)
    assert body["status"] == FAILED and body["error"]["code"]
    assert body["credits_charged"] == 0
    assert "bundle_id" not in body and "manifest_sha256" not in body and "result" not in body
    assert body["progress_pct"] >= before["progress_pct"]
    assert_retry_after(r, FAILED)


# -- inline answers ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_extract_sync_true_holds_until_done_then_answers_200_bundle() -> None:
    mock = Mock(SPEC, clock=VirtualClock())
    async with serving(mock) as c:
        r, ran = await held(
            lambda: c.post(EXTRACT.path, params={"sync": "true"}, json=BODIES["extract"],
                           headers=A),
            lambda: c.post(f"/_jobmock/jobs/{only_job(mock)}/outcome",
                           json={"status": COMPLETE, "when": "scheduled"}),
            lambda: mock.engine.advance_clock(LONGEST),
        )
        assert ran == 2, "answered before the job could have completed"
        assert r.status_code == status_of(EXTRACT, COMPLETE)
        bundle = check(EXTRACT, r)
        job_id = job_id_of(EXTRACT, r)
        assert job_id == only_job(mock)
        assert re.fullmatch(r"[0-9a-f]{64}", bundle["manifest_sha256"]) and bundle["bundle_id"]
        job = check(STATUS, await c.get(status_url(job_id)))
        assert job["status"] == COMPLETE
        assert job["bundle_id"] == bundle["bundle_id"]
        assert job["manifest_sha256"] == bundle["manifest_sha256"]
        assert job["result"] == bundle


@pytest.mark.anyio
async def test_extract_with_store_false_is_answered_inline_with_200() -> None:
    """The document: stored extracts are async unless ?sync=true, so store=false is
    answered inline (issue 13: a mode switched by a body field); ?async=true still queues."""
    mock = Mock(SPEC, clock=VirtualClock())
    async with serving(mock) as c:
        r, ran = await held(
            lambda: c.post(EXTRACT.path, json={**BODIES["extract"], "store": False}, headers=A),
            lambda: c.post(f"/_jobmock/jobs/{only_job(mock)}/outcome",
                           json={"status": COMPLETE, "when": "scheduled"}),
            lambda: mock.engine.advance_clock(LONGEST),
        )
        assert ran == 2, "answered before the job could have completed"
        assert r.status_code == 200 == status_of(EXTRACT, COMPLETE)
        assert check(EXTRACT, r)["bundle_id"]
        queued = await c.post(EXTRACT.path, params={"async": "true"},
                              json={**BODIES["extract"], "store": False}, headers=A)
        assert queued.status_code == 202
        stored = await c.post(EXTRACT.path, json={**BODIES["extract"], "store": True}, headers=A)
        assert stored.status_code == 202


@pytest.mark.anyio
async def test_sync_wins_over_async_when_both_are_given() -> None:
    mock = Mock(SPEC, clock=VirtualClock())
    async with serving(mock) as c:
        r, ran = await held(
            lambda: c.post(EXTRACT.path, params={"sync": "true", "async": "true"},
                           json=BODIES["extract"], headers=A),
            lambda: c.post(f"/_jobmock/jobs/{only_job(mock)}/outcome", json={"status": COMPLETE}),
        )
        assert ran == 1 and r.status_code == status_of(EXTRACT, COMPLETE)
        check(EXTRACT, r)


@pytest.mark.anyio
async def test_extract_sync_job_that_fails_answers_422_with_its_error() -> None:
    mock = Mock(SPEC, clock=VirtualClock())
    async with serving(mock) as c:
        r, ran = await held(
            lambda: c.post(EXTRACT.path, params={"sync": "true"}, json=BODIES["extract"],
                           headers=A),
            lambda: c.post(f"/_jobmock/jobs/{only_job(mock)}/outcome", json={"status": FAILED}),
        )
        assert ran == 1
        assert r.status_code == status_of(EXTRACT, FAILED)
        body = check(EXTRACT, r)
        assert r.headers["X-Job-Id"] == only_job(mock)
        job = check(STATUS, await c.get(status_url(only_job(mock))))
        assert body["error"] == job["error"]


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["extract", "summarize", "qa"])
async def test_inline_wait_that_runs_out_answers_the_202_job_body(name: str) -> None:
    op = OPS[name]
    query = {"sync": "true"} if name == "extract" else {}
    limit = op.wait.max
    mock = Mock(SPEC, clock=VirtualClock())
    async with serving(mock) as c:
        await c.post("/_jobmock/advance", json={"mode": "manual"})
        r, ran = await held(
            lambda: c.post(op.path, params=query, json=BODIES[name], headers=A),
            lambda: mock.engine.advance_clock(limit - 0.001),
            lambda: mock.engine.advance_clock(0.001),
        )
        assert ran == 2, f"the inline wait was not {limit} s"
        assert r.status_code == status_of(op, "pending")
        body = check(op, r)
        assert body["job_id"] == r.headers["X-Job-Id"] and body["status"] == LC.queued
        assert_retry_after(r, LC.queued)


@pytest.mark.anyio
@pytest.mark.parametrize(("name", "field"), [("summarize", "summary"), ("qa", "answer")])
async def test_focused_endpoints_are_synchronous_by_default(name: str, field: str) -> None:
    op = OPS[name]
    mock = Mock(SPEC, clock=VirtualClock())
    async with serving(mock) as c:
        r, ran = await held(
            lambda: c.post(op.path, json=BODIES[name], headers=A),
            lambda: c.post(f"/_jobmock/jobs/{only_job(mock)}/outcome",
                           json={"status": COMPLETE, "when": "scheduled"}),
            lambda: mock.engine.advance_clock(LONGEST),
        )
        assert ran == 2
        assert r.status_code == status_of(op, COMPLETE)
        body = check(op, r)
        assert body[field]
        job_id = job_id_of(op, r)
        job = check(STATUS, await c.get(status_url(job_id)))
        assert job["status"] == COMPLETE and job["result"] == body


@pytest.mark.parametrize("name", ["summarize", "qa"])
def test_focused_endpoints_with_async_true_answer_202_and_the_job_holds_the_result(
        make_client: Any, name: str) -> None:
    _mock, client = make_client("docimprint")
    op = OPS[name]
    r = client.post(op.path, params={"async": "true"}, json=BODIES[name], headers=A)
    assert r.status_code == status_of(op, "pending")
    check(op, r)
    job_id = job_id_of(op, r)
    force(client, job_id, COMPLETE)
    job = check(STATUS, client.get(status_url(job_id)))
    assert job["result"]["source"] == SOURCE
    if name == "qa":
        assert job["result"]["question"] == BODIES["qa"]["question"]


# -- payment token ----------------------------------------------------------------------------


KEY = SPEC.auth.param


@pytest.mark.parametrize("name", list(BODIES))
@pytest.mark.parametrize(("headers", "error"), [
    ({}, SPEC.auth.missing),
    ({KEY: ""}, SPEC.auth.missing),
    ({KEY: "tok_unknown"}, SPEC.auth.invalid),
    ({"Authorization": "Bearer " + SPEC.demo_tenants()[0][1]}, SPEC.auth.missing),
])
def test_paid_calls_without_a_valid_payment_token_get_the_documented_error(
        make_client: Any, name: str, headers: dict[str, str], error: str) -> None:
    _mock, client = make_client("docimprint")
    op = OPS[name]
    r = client.post(op.path, params=ASYNC[name], json=BODIES[name], headers=headers)
    expected = SPEC.errors[error]
    assert r.status_code == expected.status
    assert check(op, r) == error_body(error)
    assert job_count(client) == 0


def test_reading_a_job_needs_no_payment_token(make_client: Any) -> None:
    _mock, client = make_client("docimprint")
    job_id = job_id_of(EXTRACT, queue(client, "extract"))
    for headers in ({}, B, {KEY: "garbage"}):
        r = client.get(status_url(job_id), headers=headers)
        assert r.status_code == 200
        assert check(STATUS, r)["job_id"] == job_id


def test_unknown_job_is_not_found(make_client: Any) -> None:
    _mock, client = make_client("docimprint")
    for job_id in ("job_abc123", "nope"):
        r = client.get(status_url(job_id))
        assert r.status_code == NOT_FOUND.status
        assert check(STATUS, r) == error_body("not_found")


# -- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "query", "body"), [
    ("extract", {}, {}),
    ("extract", {}, {"source": 42}),
    ("extract", {}, {"source": SOURCE, "store": "yes"}),
    ("extract", {"sync": "maybe"}, BODIES["extract"]),
    ("extract", {"async": "1"}, BODIES["extract"]),
    ("summarize", {"async": "true"}, {"question": "x"}),
    ("summarize", {"async": "yes"}, BODIES["summarize"]),
    ("qa", {"async": "true"}, {"source": SOURCE}),
    ("qa", {"async": "true"}, {"source": SOURCE, "question": ""}),
    ("createBatchJob", {}, {"items": []}),
    ("createBatchJob", {}, {"items": [{}]}),
    ("createBatchJob", {}, {"items": [{"source": SOURCE}], "mode": "summarize"}),
    ("createBatchJob", {}, [{"source": SOURCE}]),
])
def test_bad_body_or_query_is_the_validation_error(make_client: Any, name: str,
                                                   query: dict[str, str], body: Any) -> None:
    _mock, client = make_client("docimprint")
    op = OPS[name]
    r = client.post(op.path, params=query, json=body, headers=A)
    assert r.status_code == VALIDATION.status, r.text
    out = check(op, r)
    assert out == error_body("validation", message=out["error"]["message"])
    assert job_count(client) == 0


@pytest.mark.parametrize("source", ["report.pdf", "not a uri", "//example.com/a.pdf"])
def test_source_that_is_not_a_uri_is_the_validation_error(make_client: Any, source: str) -> None:
    # `format: uri` must be asserted on requests: the spec's own example error reads
    # "source: 'report.pdf' is not a 'uri'" (jsonschema checks "uri" only with rfc3987).
    _mock, client = make_client("docimprint")
    r = client.post(EXTRACT.path, json={"source": source}, headers=A)
    assert r.status_code == VALIDATION.status, r.text
    check(EXTRACT, r)
    assert job_count(client) == 0


@pytest.mark.parametrize("content", [b"{not json", b'{"source": }', b"\xff\xfe", b""])
def test_unparsable_body_is_the_validation_error(make_client: Any, content: bytes) -> None:
    _mock, client = make_client("docimprint")
    r = client.post(EXTRACT.path, content=content,
                    headers={**A, "Content-Type": "application/json"})
    assert r.status_code == VALIDATION.status
    check(EXTRACT, r)
    assert job_count(client) == 0


_json = json_values(text=10, items=3, keys=3, leaves=10)


@pytest.mark.parametrize("name", list(BODIES))
def test_any_json_body_gets_a_documented_answer(make_client: Any, name: str) -> None:
    _mock, client = make_client("docimprint")
    op = OPS[name]
    extra = st.fixed_dictionaries({}, optional={"source": _json | st.just(SOURCE),
                                                "items": _json, "question": _json,
                                                "webhook": _json})

    @settings(max_examples=30, derandomize=True, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(body=_json | extra, flag=st.sampled_from(["true", "false", "1", ""]))
    def one(body: Any, flag: str) -> None:
        query = {"async": "true"} if name in ("summarize", "qa") else {"async": flag}
        r = client.post(op.path, params=query, json=body, headers=A)
        assert r.status_code in (status_of(op, "pending"), VALIDATION.status), r.text
        check(op, r)

    one()
