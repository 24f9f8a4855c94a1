"""Croma over HTTP: the mock's answers judged against openapi/croma.yaml.

Sync tests drive the ASGI app with starlette's TestClient and move the virtual clock
through the control plane (so the engine is only touched on the app's own thread).
Inline waits need a request held open while the clock moves: those tests use
httpx.AsyncClient on httpx.ASGITransport under anyio and call ``mock.engine`` on the
same event loop. Every expected status, header value and error body is read from the
spec; every JSON body is validated against the schema the spec documents for it.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from apihelpers import BASE, ApiHelpers, advance, force, held, job_count, json_values, only_job, serving
from jobmock import Mock, VirtualClock, resolve_spec
from jobmock.spec import Operation

SPEC = resolve_spec("croma")
SUBMITS = {op.operation_id: op for op in SPEC.submit_operations}
STATUS = SPEC.status_operation
LC = SPEC.lifecycle
WAIT_MAX = int(next(iter(SUBMITS.values())).wait.max)
WAIT_DEFAULT = next(iter(SUBMITS.values())).wait.default
#: The longest a job can take by the spec's timing model.
LONGEST = SPEC.timing.queued[1] + SPEC.timing.running[1]
VALIDATION = SPEC.errors["validation"]
PERSON = {"document_type": "CC", "document_number": "1020304050"}
#: The statuses x-jobmock gives a submit answer: job still pending, job completed in time.
PENDING = next(iter(SUBMITS.values())).responses["pending"].status
DONE = next(iter(SUBMITS.values())).responses["completed"].status


# -- helpers --------------------------------------------------------------------------------

H = ApiHelpers(SPEC)
check, error_body, job_id_of, assert_retry_after = H.check, H.error_body, H.job_id, H.assert_retry_after
A, B = H.creds(0), H.creds(1)
POLL = {**A, "Prefer": "wait=0"}


def body_for(op: Operation) -> dict[str, Any]:
    """The spec's own example request body of a submit operation."""
    assert isinstance(op.body_example, dict)
    return {k: v for k, v in op.body_example.items() if k != "callback_url"}


SICAAC = next(op for op in SPEC.submit_operations if op.path.endswith("/sicaac"))


def reachable(old: str, new: str) -> bool:
    seen, todo = {old}, [old]
    while todo:
        for nxt in LC.transitions.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return new in seen


def submit(client: TestClient, op: Operation = SICAAC, body: Any = None,
           headers: dict[str, str] | None = None) -> httpx.Response:
    return client.post(op.path, json=body_for(op) if body is None else body,
                       headers=POLL if headers is None else headers)


# -- submit and poll ------------------------------------------------------------------------


@pytest.mark.parametrize("op", SPEC.submit_operations, ids=lambda o: o.operation_id)
def test_poll_mode_submit_then_poll_to_terminal(make_client: Any, op: Operation) -> None:
    _mock, client = make_client("croma")
    r = submit(client, op)
    assert r.status_code == PENDING
    body = check(op, r)
    job_id = job_id_of(op, r)
    assert body["status"] == LC.queued and body["data"] is None and body["error"] is None
    assert r.headers["Location"] == body["status_url"] == f"{BASE}/jobs/{job_id}"
    assert "Prefer" in [v.strip() for v in r.headers["Vary"].split(",")]
    assert r.headers["Preference-Applied"] == "wait=0"
    assert_retry_after(r, body["status"])

    seen = [body["status"]]
    for _ in range(int(LONGEST) + 3):
        r = client.get(f"/jobs/{job_id}", headers=A)
        assert r.status_code == 200
        body = check(STATUS, r)
        assert body["id"] == job_id
        assert_retry_after(r, body["status"])
        assert (body["data"] is not None) == (LC.states[body["status"]] == "completed")
        assert (body["error"] is not None) == (LC.states[body["status"]] == "failed")
        if body["status"] != seen[-1]:
            assert reachable(seen[-1], body["status"]), [*seen, body["status"]]
            seen.append(body["status"])
        if LC.is_terminal(body["status"]):
            break
        advance(client, 1)
    assert LC.is_terminal(seen[-1]), f"never terminal: {seen}"
    # a terminal job never changes
    advance(client, 3600)
    assert client.get(f"/jobs/{job_id}", headers=A).json() == body


@pytest.mark.parametrize("word", sorted(LC.terminal_words))
def test_data_only_when_completed_error_only_when_failed(make_client: Any, word: str) -> None:
    _mock, client = make_client("croma")
    job_id = job_id_of(SICAAC, submit(client))
    force(client, job_id, word)
    r = client.get(f"/jobs/{job_id}", headers=A)
    body = check(STATUS, r)
    assert body["status"] == word
    assert_retry_after(r, word)
    role = LC.states[word]
    if role == "completed":
        assert body["data"]["source"] and body["error"] is None
    elif role == "failed":
        assert body["data"] is None and body["error"] is not None
    else:
        assert body["data"] is None and body["error"] is None


def test_forced_result_and_error_are_what_the_status_answer_shows(make_client: Any) -> None:
    _mock, client = make_client("croma")
    done = job_id_of(SICAAC, submit(client))
    failed = job_id_of(SICAAC, submit(client))
    result = {"source": "sicaac", "document_number": "99", "insolvency_cases": [{"n": 1}]}
    error = {"type": "upstream_error", "code": "timeout", "message": "Registry timed out."}
    force(client, done, LC.word("completed") or "", result=result)
    force(client, failed, LC.word("failed") or "", error=error)
    assert check(STATUS, client.get(f"/jobs/{done}", headers=A))["data"] == result
    assert check(STATUS, client.get(f"/jobs/{failed}", headers=A))["error"] == error


def test_queued_and_running_answers_carry_retry_after(make_client: Any) -> None:
    _mock, client = make_client("croma")
    job_id = job_id_of(SICAAC, submit(client))
    force(client, job_id, LC.running or "")
    r = client.get(f"/jobs/{job_id}", headers=A)
    assert check(STATUS, r)["status"] == LC.running
    assert_retry_after(r, LC.running or "")


# -- the Prefer header and inline waits -------------------------------------------------------


@pytest.mark.anyio
async def test_inline_wait_answers_200_data_when_the_job_completes_in_time() -> None:
    assert LONGEST < 30 <= WAIT_MAX
    mock = Mock(SPEC, clock=VirtualClock())
    async with serving(mock) as c:
        r, ran = await held(
            lambda: c.post(SICAAC.path, json=body_for(SICAAC), headers={**A, "Prefer": "wait=30"}),
            lambda: c.post(f"/_jobmock/jobs/{only_job(mock)}/outcome",
                           json={"status": LC.word("completed"), "when": "scheduled"}),
            lambda: mock.engine.advance_clock(LONGEST),
        )
        assert ran == 2, "answered before the job could have completed"
        assert r.status_code == DONE
        body = check(SICAAC, r)
        job_id = r.headers["X-Job-Id"]
        assert job_id == only_job(mock)
        assert r.headers["Preference-Applied"] == "wait=30"
        assert "Retry-After" not in r.headers
        polled = check(STATUS, await c.get(f"/jobs/{job_id}", headers=A))
        assert polled["status"] == LC.word("completed")
        assert body == {"data": polled["data"]}


@pytest.mark.anyio
async def test_inline_wait_that_runs_out_answers_202_envelope() -> None:
    mock = Mock(SPEC, clock=VirtualClock())
    async with serving(mock) as c:
        assert (await c.post("/_jobmock/advance", json={"mode": "manual"})).status_code == 200
        r, ran = await held(
            lambda: c.post(SICAAC.path, json=body_for(SICAAC), headers={**A, "Prefer": "wait=5"}),
            lambda: mock.engine.advance_clock(4.999),
            lambda: mock.engine.advance_clock(0.001),
        )
        assert ran == 2, "the wait did not last exactly the 5 s asked"
        assert r.status_code == PENDING
        body = check(SICAAC, r)
        assert body["status"] == LC.queued
        assert r.headers["X-Job-Id"] == body["id"]
        assert r.headers["Location"] == body["status_url"]
        assert r.headers["Preference-Applied"] == "wait=5"
        assert_retry_after(r, body["status"])


@pytest.mark.anyio
@pytest.mark.parametrize("asked", [WAIT_MAX + 1, 120, 999999])
async def test_prefer_wait_is_clamped_to_the_spec_maximum(asked: int) -> None:
    mock = Mock(SPEC, clock=VirtualClock())
    async with serving(mock) as c:
        await c.post("/_jobmock/advance", json={"mode": "manual"})
        r, ran = await held(
            lambda: c.post(SICAAC.path, json=body_for(SICAAC),
                           headers={**A, "Prefer": f"wait={asked}"}),
            lambda: mock.engine.advance_clock(WAIT_MAX - 0.001),
            lambda: mock.engine.advance_clock(0.001),
        )
        assert ran == 2
        assert r.status_code == PENDING
        assert r.headers["Preference-Applied"] == f"wait={WAIT_MAX}"
        check(SICAAC, r)


@pytest.mark.anyio
@pytest.mark.parametrize("prefer", [None, "respond-async", "handling=lenient", "wait=abc",
                                    "return=minimal, handling=strict"])
async def test_without_a_usable_wait_the_default_wait_applies(prefer: str | None) -> None:
    mock = Mock(SPEC, clock=VirtualClock())
    headers = dict(A) if prefer is None else {**A, "Prefer": prefer}
    async with serving(mock) as c:
        await c.post("/_jobmock/advance", json={"mode": "manual"})
        r, ran = await held(
            lambda: c.post(SICAAC.path, json=body_for(SICAAC), headers=headers),
            lambda: mock.engine.advance_clock(WAIT_DEFAULT - 0.001),
            lambda: mock.engine.advance_clock(0.001),
        )
        assert ran == 2, "an unknown preference changed the wait"
        assert r.status_code == PENDING
        check(SICAAC, r)


@pytest.mark.parametrize("prefer", ["wait=0", "respond-async, wait=0", "wait=0, handling=lenient",
                                    "WAIT = 0"])
def test_wait_zero_among_other_preferences_answers_202_at_once(make_client: Any,
                                                                prefer: str) -> None:
    _mock, client = make_client("croma")
    r = client.post(SICAAC.path, json=body_for(SICAAC), headers={**A, "Prefer": prefer})
    assert r.status_code == PENDING
    assert r.headers["Preference-Applied"] == "wait=0"
    check(SICAAC, r)


@pytest.mark.anyio
@pytest.mark.parametrize("word", sorted(w for w in LC.terminal_words if LC.states[w] != "completed"))
async def test_job_ending_badly_within_the_wait_gets_an_error_status_never_200_data_null(
        word: str) -> None:
    # Issue 11, item 2: the document's 200 is `{ "data": ... }` of a completed lookup. A job
    # that fails, is canceled or expires within the wait gets the error status x-jobmock gives
    # its word (LookupFailed: 502, 503, 504) with the API's error shape, and X-Job-Id.
    rdef = SICAAC.responses[word]
    assert rdef.status >= 500 and rdef.status not in (DONE, PENDING)
    mock = Mock(SPEC, clock=VirtualClock())
    async with serving(mock) as c:
        r, ran = await held(
            lambda: c.post(SICAAC.path, json=body_for(SICAAC), headers={**A, "Prefer": "wait=30"}),
            lambda: c.post(f"/_jobmock/jobs/{only_job(mock)}/outcome", json={"status": word}),
        )
        assert ran == 1
        job_id = only_job(mock)
        assert r.headers["X-Job-Id"] == job_id
        assert r.status_code == rdef.status
        body = check(SICAAC, r)
        assert set(body) == {"error"}, "no data (null or not) in a failure's answer"
        assert r.headers["Preference-Applied"] == "wait=30"
        assert "Retry-After" not in r.headers
        polled = check(STATUS, await c.get(f"/jobs/{job_id}", headers=A))
        assert polled["status"] == word and polled["data"] is None
        if LC.states[word] == "failed":
            assert body["error"] == polled["error"] == SPEC.outcome_errors[word]({}), \
                "the answer carries the job's own error"
        else:
            assert polled["error"] is None, "the document gives only a failed job an error"
            assert body["error"]["code"] == f"job_{word}"


@pytest.mark.anyio
async def test_a_forced_error_is_the_error_of_the_inline_answer() -> None:
    error = {"type": "upstream_error", "code": "registry_timeout", "message": "SICAAC timed out."}
    mock = Mock(SPEC, clock=VirtualClock())
    async with serving(mock) as c:
        r, ran = await held(
            lambda: c.post(SICAAC.path, json=body_for(SICAAC), headers=A),
            lambda: c.post(f"/_jobmock/jobs/{only_job(mock)}/outcome",
                           json={"status": LC.word("failed"), "error": error}),
        )
        assert ran == 1
        assert r.status_code == SICAAC.responses[LC.word("failed") or ""].status
        assert check(SICAAC, r) == {"error": error}


# -- callback_url -------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/hook", "https://localhost/hook", "https://127.1/hook",
    "https://10.1.2.3/hook", "https://192.168.0.10/hook", "https://172.16.5.4/hook",
    "https://169.254.169.254/latest/meta-data", "https://[::1]/hook",
    "https://[::ffff:127.0.0.1]/hook", "https://0.0.0.0/hook", "https://user@127.0.0.1/hook",
    "http://hooks.example.com/croma", "ftp://hooks.example.com/croma", "hooks.example.com/croma",
])
def test_private_loopback_or_non_https_callback_url_is_a_validation_error(
        make_client: Any, url: str) -> None:
    _mock, client = make_client("croma")
    r = submit(client, body={**PERSON, "callback_url": url})
    assert r.status_code == VALIDATION.status
    body = check(SICAAC, r)
    assert body == error_body("validation", message=body["error"]["message"])
    assert job_count(client) == 0


def test_public_https_callback_url_is_accepted_and_stored(make_client: Any) -> None:
    mock, client = make_client("croma")
    url = "https://hooks.example.com/croma?x=1"
    r = submit(client, body={**PERSON, "callback_url": url})
    assert r.status_code == PENDING
    job_id = job_id_of(SICAAC, r)
    job = mock.engine.get(job_id)
    assert job is not None and job.callback_url == url
    assert client.get(f"/_jobmock/jobs/{job_id}").json()["callback_url"] == url


def test_loopback_callback_url_is_accepted_when_private_callbacks_are_allowed(
        make_client: Any) -> None:
    mock, client = make_client("croma", allow_private_callbacks=True)
    r = submit(client, body={**PERSON, "callback_url": "https://127.0.0.1:9000/hook"})
    assert r.status_code == PENDING
    assert mock.engine.get(job_id_of(SICAAC, r)).callback_url == "https://127.0.0.1:9000/hook"  # type: ignore[union-attr]


def test_callbacks_are_signed_only_for_the_organizations_the_spec_names(make_client: Any) -> None:
    # Issue 11, item 7: "reach out if you want it enabled for your callbacks": signing is off
    # unless the organization asked; the spec says demo org_a did and org_b did not.
    assert SPEC.webhooks is not None and SPEC.webhooks.signature is not None
    sig = SPEC.webhooks.signature
    (signed, _), (unsigned, _) = SPEC.demo_tenants()
    assert sig.enabled_for == (signed,)
    # deliver_webhooks=False: attempts are made and journaled, never sent anywhere
    mock, client = make_client("croma", deliver_webhooks=False)
    url = "https://hooks.example.com/croma"
    jobs = {tenant: job_id_of(SICAAC, submit(client, body={**PERSON, "callback_url": url},
                                              headers={**creds, "Prefer": "wait=0"}))
            for tenant, creds in ((signed, A), (unsigned, B))}
    advance(client, LONGEST + 1)
    assert mock.webhooks is not None
    for tenant, job_id in jobs.items():
        [delivery] = mock.webhooks.for_job(job_id)
        [attempt] = delivery.attempts
        assert attempt.headers["x-croma-job-id"] == job_id
        if tenant == signed:
            digest = hmac.new(sig.secret.encode(), delivery.body, hashlib.sha256).hexdigest()
            assert attempt.headers[sig.header] == f"sha256={digest}"
        else:
            assert sig.header not in {k.lower() for k in attempt.headers}
    listed = {d["job_id"]: d["signed"] for d in client.get("/_jobmock/webhooks").json()["deliveries"]}
    assert listed == {jobs[signed]: True, jobs[unsigned]: False}


@pytest.mark.anyio
async def test_callback_url_answers_202_right_away_without_prefer() -> None:
    # Bug: the vendor document (and the JobAccepted description) says a callback_url
    # gets "a 202 right away"; the mock holds the request for the default wait.
    mock = Mock(SPEC, clock=VirtualClock())
    async with serving(mock) as c:
        r, ran = await held(
            lambda: c.post(SICAAC.path, json={**PERSON, "callback_url": "https://hooks.example.com/c"},
                           headers=A),
            lambda: mock.engine.advance_clock(WAIT_DEFAULT),
        )
        assert ran == 0, "the request was held although it carried a callback_url"
        assert r.status_code == PENDING
        check(SICAAC, r)


# -- authentication -----------------------------------------------------------------------------


def _auth_cases() -> list[tuple[dict[str, str], str]]:
    return [
        ({}, SPEC.auth.missing),
        ({"Authorization": ""}, SPEC.auth.missing),
        ({"Authorization": "Bearer sk_test_croma_nobody"}, SPEC.auth.invalid),
        ({"Authorization": "Bearer"}, SPEC.auth.invalid),
        ({"Authorization": "Bearer "}, SPEC.auth.invalid),
        ({"Authorization": "Basic !!!"}, SPEC.auth.invalid),
        ({"Authorization": SPEC.demo_tenants()[0][1]}, SPEC.auth.invalid),
        ({"Authorization": "Token " + SPEC.demo_tenants()[0][1]}, SPEC.auth.invalid),
        ({"Authorization": "Bearer " + SPEC.demo_tenants()[0][1] + "x"}, SPEC.auth.invalid),
    ]


@pytest.mark.parametrize(("headers", "error"), _auth_cases())
def test_bad_credentials_get_the_documented_error_on_submit_and_poll(
        make_client: Any, headers: dict[str, str], error: str) -> None:
    _mock, client = make_client("croma")
    job_id = job_id_of(SICAAC, submit(client))
    expected = SPEC.errors[error]
    r = client.post(SICAAC.path, json=body_for(SICAAC), headers={**headers, "Prefer": "wait=0"})
    assert r.status_code == expected.status
    assert check(SICAAC, r) == error_body(error)
    assert job_count(client) == 1
    r = client.get(f"/jobs/{job_id}", headers=headers)
    assert r.status_code == expected.status
    assert check(STATUS, r) == error_body(error)
    assert job_id not in r.text


def test_another_tenants_job_reads_exactly_like_an_unknown_job(make_client: Any) -> None:
    _mock, client = make_client("croma")
    job_id = job_id_of(SICAAC, submit(client))
    foreign = client.get(f"/jobs/{job_id}", headers=B)
    unknown = client.get("/jobs/job_0000000000000000", headers=B)
    expected = SPEC.errors[SPEC.auth.foreign_job]
    assert foreign.status_code == unknown.status_code == expected.status
    assert check(STATUS, foreign) == check(STATUS, unknown) == error_body(SPEC.auth.foreign_job)
    assert job_id not in foreign.text and "Retry-After" not in foreign.headers
    # and the owner still reads it
    assert client.get(f"/jobs/{job_id}", headers=A).status_code == 200


def test_unknown_job_is_not_found(make_client: Any) -> None:
    _mock, client = make_client("croma")
    r = client.get("/jobs/no-such-job", headers=A)
    assert r.status_code == SPEC.errors["not_found"].status
    assert check(STATUS, r) == error_body("not_found")


# -- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [
    b"{}",
    b'{"document_type": "CC"}',
    b'{"document_type": "XX", "document_number": "1020304050"}',
    b'{"document_type": "CC", "document_number": "x"}',
    b'{"document_type": "CC", "document_number": 1020304050}',
    b'{"document_type": "CC", "document_number": "1020304050", "extra": 1}',
    b'{"document_type": "CC", "document_number": "1020304050", "callback_url": 7}',
    b'[]', b'"CC"', b"null", b"42",
    b"{not json", b'{"document_type": "CC",}', b"\xff\xfe\x00",
    b"",
])
def test_bad_body_is_the_validation_error(make_client: Any, content: bytes) -> None:
    _mock, client = make_client("croma")
    r = client.post(SICAAC.path, content=content,
                    headers={**POLL, "Content-Type": "application/json"})
    assert r.status_code == VALIDATION.status
    body = check(SICAAC, r)
    assert body == error_body("validation", message=body["error"]["message"])
    assert body["error"]["message"]
    assert job_count(client) == 0


def test_ruc_lookup_validates_against_its_own_schema(make_client: Any) -> None:
    _mock, client = make_client("croma")
    sunat = next(op for op in SPEC.submit_operations if op.body_example and "ruc" in op.body_example)
    assert submit(client, sunat, body=PERSON).status_code == VALIDATION.status
    assert submit(client, sunat, body={"ruc": "123"}).status_code == VALIDATION.status
    assert submit(client, sunat).status_code == PENDING


_json = json_values(text=12, items=4, keys=4, leaves=12)
_bodies = _json | st.fixed_dictionaries(
    {"document_type": st.sampled_from(["CC", "CE", "PA", "XX", ""]),
     "document_number": st.text(max_size=24)},
    optional={"callback_url": st.text(max_size=30), "x": _json},
)


def test_any_json_body_gets_a_documented_answer(make_client: Any) -> None:
    _mock, client = make_client("croma")

    @settings(max_examples=60, derandomize=True, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(body=_bodies)
    def one(body: Any) -> None:
        r = client.post(SICAAC.path, json=body, headers=POLL)
        assert r.status_code in (PENDING, VALIDATION.status), r.text
        check(SICAAC, r)

    one()
