"""The respx adapter (``jobmock.mock``): the ASGI app's behaviour, through httpx clients in-process.

The first part runs the same behaviour tests three ways: on the ASGI app (starlette's
TestClient, as in ``test_http_*.py``), and through the respx adapter with an
``httpx.Client`` and with an ``httpx.AsyncClient``. Each test drives a :class:`Driver`
(requests and the control plane, both over HTTP), so its body is identical for the three.
The contract suite's state machine then judges every bundled API through the adapter.
The rest covers what only the adapter does: inline waits that move the virtual clock
instead of blocking, auto-advance, routing (base URL, other hosts, pass-through),
webhooks through the router, the decorator, and the Python API.

Expected statuses, headers and bodies are read from the specs.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from respx.models import AllMockedAssertionError
from starlette.testclient import TestClient

import jobmock
from jobmock import Mock, VirtualClock, resolve_spec
from jobmock.asgi import create_app
from jobmock.contract.runner import RunOptions, run_machine
from jobmock.contract.violations import ContractViolation
from jobmock.dispatch import Request, Response
from jobmock.inprocess import InProcessMock
from jobmock.receiver import WebhookReceiver
from jobmock.spec import ApiSpec, Operation

CROMA = resolve_spec("croma")
CLORO = resolve_spec("cloro")
SICAAC = next(op for op in CROMA.submit_operations if op.path.endswith("/sicaac"))
PERSON = {"document_type": "CC", "document_number": "1020304050"}
TASK = {"taskType": "CHATGPT", "payload": {"prompt": "What is the weather in New York?"}}
HOOK = "https://app.example.com/hooks/jobs"
DRIVERS = ["asgi", "respx-sync", "respx-async"]


def creds(spec: ApiSpec, index: int = 0) -> dict[str, str]:
    return spec.auth.headers_for(spec.demo_tenants()[index][1])


def status_path(spec: ApiSpec, job_id: str) -> str:
    op = spec.status_operation
    return op.path.replace("{" + (op.job_id_param or "id") + "}", job_id)


def job_id_of(op: Operation, response: httpx.Response) -> str:
    kind, _, where = op.job_id_from[0].partition(":")
    if kind == "header":
        return str(response.headers[where])
    value: Any = response.json()
    for part in where.strip("/").split("/"):
        value = value[part]
    return str(value)


def word_at(spec: ApiSpec, body: Any) -> str:
    value = body
    for part in spec.lifecycle.status_pointer.strip("/").split("/"):
        value = value[part]
    return str(value)


def reachable(spec: ApiSpec, old: str, new: str) -> bool:
    seen, todo = {old}, [old]
    while todo:
        for nxt in spec.lifecycle.transitions.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return new in seen


# -- three ways to reach a mock ---------------------------------------------------------------------


class Driver:
    """HTTP to one mock: the API and its control plane. ``base`` is where the API lives."""

    mock: Mock
    base: str

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def advance(self, seconds: float) -> None:
        r = self.request("POST", "/_jobmock/clock/advance", json={"seconds": seconds})
        assert r.status_code == 200, r.text

    def force(self, job_id: str, status: str, **extra: Any) -> None:
        r = self.request("POST", f"/_jobmock/jobs/{job_id}/outcome", json={"status": status, **extra})
        assert r.status_code == 200, r.text

    def jobs(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/_jobmock/jobs").json()["jobs"])


class AsgiDriver(Driver):
    def __init__(self, mock: Mock) -> None:
        self.mock, self.base = mock, "http://mock.test"
        self.client = TestClient(create_app(mock), base_url=self.base)
        self.client.__enter__()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, path, **kwargs)

    def close(self) -> None:
        self.client.__exit__(None, None, None)


class RespxSyncDriver(Driver):
    def __init__(self, api: InProcessMock) -> None:
        self.api, self.mock, self.base = api, api.mock, api.base_url
        self.client = httpx.Client(base_url=self.base)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, path, **kwargs)

    def close(self) -> None:
        self.client.close()
        self.api.stop()


class RespxAsyncDriver(Driver):
    """An ``httpx.AsyncClient`` on one event loop of its own, driven from sync test code."""

    def __init__(self, api: InProcessMock) -> None:
        self.api, self.mock, self.base = api, api.mock, api.base_url
        self.loop = asyncio.new_event_loop()
        self.client = httpx.AsyncClient(base_url=self.base)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.loop.run_until_complete(self.client.request(method, path, **kwargs))

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()
        self.api.stop()


@pytest.fixture
def connect() -> Iterator[Callable[..., Driver]]:
    """``connect(kind, api, **mock_options)``: a driver of a fresh mock on a virtual clock."""
    drivers: list[Driver] = []

    def make(kind: str, api: str, **options: Any) -> Driver:
        driver: Driver
        if kind == "asgi":
            driver = AsgiDriver(Mock(resolve_spec(api), clock=VirtualClock(), **options))
        else:
            active = jobmock.mock(api, **options).start()
            driver = RespxSyncDriver(active) if kind == "respx-sync" else RespxAsyncDriver(active)
        drivers.append(driver)
        return driver

    yield make
    for d in drivers:
        d.close()


# -- the same behaviour tests, three ways ---------------------------------------------------------------


@pytest.mark.parametrize("kind", DRIVERS)
def test_croma_submit_then_poll_to_terminal(connect: Callable[..., Driver], kind: str) -> None:
    d = connect(kind, "croma", seed=4)
    lc = CROMA.lifecycle
    r = d.request("POST", SICAAC.path, json=PERSON, headers={**creds(CROMA), "Prefer": "wait=0"})
    assert r.status_code == SICAAC.responses["pending"].status
    job_id = job_id_of(SICAAC, r)
    body = r.json()
    assert body["status"] == lc.queued
    assert r.headers["Location"] == body["status_url"] == f"{d.base}/jobs/{job_id}"
    assert r.headers["Retry-After"] == str(CROMA.retry_after_seconds)
    seen = [body["status"]]
    longest = CROMA.timing.queued[1] + CROMA.timing.running[1]
    for _ in range(int(longest) + 3):
        r = d.request("GET", f"/jobs/{job_id}", headers=creds(CROMA))
        assert r.status_code == CROMA.status.status
        body = r.json()
        word = body["status"]
        if lc.states[word] in CROMA.retry_after_roles:
            assert r.headers["Retry-After"] == str(CROMA.retry_after_seconds)
        else:
            assert "Retry-After" not in r.headers
        if word != seen[-1]:
            assert reachable(CROMA, seen[-1], word), [*seen, word]
            seen.append(word)
        if lc.is_terminal(word):
            break
        d.advance(1)
    assert lc.is_terminal(seen[-1]), seen
    d.advance(3600)
    assert d.request("GET", f"/jobs/{job_id}", headers=creds(CROMA)).json() == body


@pytest.mark.parametrize("kind", DRIVERS)
@pytest.mark.parametrize("word", sorted(CROMA.lifecycle.terminal_words))
def test_croma_forced_outcome_shows_data_only_when_completed(
        connect: Callable[..., Driver], kind: str, word: str) -> None:
    d = connect(kind, "croma")
    r = d.request("POST", SICAAC.path, json=PERSON, headers={**creds(CROMA), "Prefer": "wait=0"})
    job_id = job_id_of(SICAAC, r)
    d.force(job_id, word)
    body = d.request("GET", f"/jobs/{job_id}", headers=creds(CROMA)).json()
    role = CROMA.lifecycle.states[word]
    assert body["status"] == word
    assert (body["data"] is not None) == (role == "completed")
    assert (body["error"] is not None) == (role == "failed")


@pytest.mark.parametrize("kind", DRIVERS)
def test_croma_auth_and_tenancy_errors_are_the_documented_ones(
        connect: Callable[..., Driver], kind: str) -> None:
    d = connect(kind, "croma")
    job_id = job_id_of(SICAAC, d.request("POST", SICAAC.path, json=PERSON,
                                         headers={**creds(CROMA), "Prefer": "wait=0"}))
    missing = CROMA.errors[CROMA.auth.missing]
    r = d.request("GET", f"/jobs/{job_id}")
    assert r.status_code == missing.status and r.json() == missing.body({})
    foreign = d.request("GET", f"/jobs/{job_id}", headers=creds(CROMA, 1))
    unknown = d.request("GET", "/jobs/job_0000000000000000", headers=creds(CROMA, 1))
    expected = CROMA.errors[CROMA.auth.foreign_job]
    assert foreign.status_code == unknown.status_code == expected.status
    assert foreign.json() == unknown.json() == expected.body({})


@pytest.mark.parametrize("kind", DRIVERS)
@pytest.mark.parametrize("content", [b"{}", b"[]", b"{not json", b'{"document_type": "XX"}'])
def test_croma_bad_body_is_the_validation_error_and_creates_no_job(
        connect: Callable[..., Driver], kind: str, content: bytes) -> None:
    d = connect(kind, "croma")
    r = d.request("POST", SICAAC.path, content=content,
                  headers={**creds(CROMA), "Prefer": "wait=0", "Content-Type": "application/json"})
    validation = CROMA.errors["validation"]
    assert r.status_code == validation.status
    assert r.json() == validation.body({"message": r.json()["error"]["message"]})
    assert d.jobs() == []


@pytest.mark.parametrize("kind", DRIVERS)
def test_cloro_task_to_completion_with_credits_and_idempotency(
        connect: Callable[..., Driver], kind: str) -> None:
    d = connect(kind, "cloro", seed=2)
    submit = CLORO.submit_operations[0]
    body = {**TASK, "idempotencyKey": "order-17"}
    r = d.request("POST", submit.path, json=body, headers=creds(CLORO))
    assert r.status_code == submit.responses["pending"].status
    task_id = job_id_of(submit, r)
    assert word_at(CLORO, r.json()) == CLORO.lifecycle.queued
    assert r.headers["Retry-After"] == str(CLORO.retry_after_seconds)
    assert r.json()["credits"] == {"creditsToCharge": CLORO.credits_cost, "creditsCharged": 0}
    again = d.request("POST", submit.path, json=body, headers=creds(CLORO))
    assert job_id_of(submit, again) == task_id and len(d.jobs()) == 1
    d.force(task_id, "completed")
    r = d.request("GET", status_path(CLORO, task_id), headers=creds(CLORO))
    done = r.json()
    assert word_at(CLORO, done) == CLORO.lifecycle.word("completed")
    assert done["credits"]["creditsCharged"] == CLORO.credits_cost
    assert done["response"]["text"] == f"Mock answer to: {TASK['payload']['prompt']}"
    assert "Retry-After" not in r.headers


@pytest.mark.parametrize("kind", DRIVERS)
def test_cloro_runs_at_most_the_concurrency_limit_in_fifo_order(
        connect: Callable[..., Driver], kind: str) -> None:
    d = connect(kind, "cloro", seed=5)
    limit = CLORO.limits.concurrency_max
    assert limit is not None
    submit = CLORO.submit_operations[0]
    ids = [job_id_of(submit, d.request("POST", submit.path, json=TASK, headers=creds(CLORO)))
           for _ in range(limit + 3)]
    d.advance(CLORO.timing.queued[1])
    by_id = {j["id"]: j for j in d.jobs()}
    running = [i for i in ids if by_id[i]["role"] == "running"]
    assert len(running) == limit
    assert running == ids[:limit], "the queue is not FIFO"


@pytest.mark.parametrize("kind", DRIVERS)
def test_control_plane_and_journal_through_the_adapter(
        connect: Callable[..., Driver], kind: str) -> None:
    d = connect(kind, "croma")
    health = d.request("GET", "/_jobmock/health").json()
    assert health["status"] == "ok" and health["api"] == CROMA.name
    d.request("POST", SICAAC.path, json=PERSON, headers={**creds(CROMA), "Prefer": "wait=0"})
    d.request("GET", "/jobs/nope", headers=creds(CROMA))
    entries = d.request("GET", "/_jobmock/requests").json()["requests"]
    assert [(e["method"], e["path"], e["status"]) for e in entries] == [
        ("POST", SICAAC.path, SICAAC.responses["pending"].status),
        ("GET", "/jobs/nope", CROMA.errors["not_found"].status)]
    assert entries[0]["retry_after"] == str(CROMA.retry_after_seconds)
    assert entries[0]["job_status"] == CROMA.lifecycle.queued
    assert d.request("POST", "/_jobmock/reset", json={}).status_code == 200
    assert d.jobs() == [] and d.request("GET", "/_jobmock/requests").json()["requests"] == []


@pytest.mark.parametrize("api", jobmock.bundled_names())
def test_contract_state_machine_passes_through_the_respx_adapter(api: str) -> None:
    """The contract suite's Hypothesis state machine (HTTP only) judges each API in-process."""
    spec = resolve_spec(api)
    with jobmock.mock(api) as active:
        # Counted by a hook: the suite resets the mock (and its journal) before each example.
        answered: list[int] = []

        def count(request: Any, response: Any, info: Any) -> Any:
            answered.append(response.status)
            return response

        active.mock.response_hooks.append(count)
        unfinished = run_machine(spec, active.base_url, RunOptions(examples=4, steps=20), None)
        assert answered, "the suite never reached the adapter"
    assert isinstance(unfinished, list)


@pytest.mark.parametrize(("fault", "check"), [("wrong_status_word", "poll_schema"),
                                              ("missing_location", "submit_answer")])
def test_the_contract_state_machine_catches_a_fault_through_the_respx_adapter(
        fault: str, check: str) -> None:
    with jobmock.mock("croma", faults=[fault]) as active, \
            pytest.raises(ContractViolation, match=rf"\[{check}\]"):
        run_machine(CROMA, active.base_url, RunOptions(examples=4, steps=20, shrink=False), None)


# -- inline waits on the virtual clock ----------------------------------------------------------------


WAIT_MAX = int(SICAAC.wait.max)


def _croma_submit(client: httpx.Client, prefer: str) -> httpx.Response:
    return client.post(SICAAC.path, json=PERSON, headers={**creds(CROMA), "Prefer": prefer})


def test_inline_wait_answers_when_the_job_ends_and_moves_the_clock_exactly_there() -> None:
    with jobmock.mock("croma", seed=1) as api:
        api.plan_next(outcome="completed", queued_for=1.5, running_for=7.25)
        start = api.now
        with httpx.Client(base_url=api.base_url) as client:
            r = _croma_submit(client, "wait=30")
        assert r.status_code == SICAAC.responses["completed"].status
        assert r.headers["Preference-Applied"] == "wait=30"
        assert "Retry-After" not in r.headers
        [job] = api.jobs
        assert r.headers["X-Job-Id"] == job.id and job.status == "completed"
        assert r.json() == {"data": job.result}
        assert api.now - start == pytest.approx(1.5 + 7.25)
        assert api.now == job.completed_at


def test_inline_wait_that_runs_out_answers_the_pending_envelope_after_exactly_the_wait() -> None:
    with jobmock.mock("croma", advance="manual") as api:
        start = api.now
        with httpx.Client(base_url=api.base_url) as client:
            r = _croma_submit(client, "wait=5")
        assert r.status_code == SICAAC.responses["pending"].status
        assert r.json()["status"] == CROMA.lifecycle.queued
        assert r.headers["Retry-After"] == str(CROMA.retry_after_seconds)
        assert api.now - start == 5


@pytest.mark.parametrize("asked", [WAIT_MAX + 1, 999999])
def test_inline_wait_is_clamped_to_the_spec_maximum(asked: int) -> None:
    with jobmock.mock("croma", advance="manual") as api:
        start = api.now
        with httpx.Client(base_url=api.base_url) as client:
            r = _croma_submit(client, f"wait={asked}")
        assert r.headers["Preference-Applied"] == f"wait={WAIT_MAX}"
        assert api.now - start == WAIT_MAX


@pytest.mark.anyio
async def test_inline_wait_with_an_async_client_does_not_block() -> None:
    async with jobmock.mock("croma", seed=3) as api:
        api.plan_next(outcome="failed", queued_for=0.5, running_for=2)
        start = api.now
        async with httpx.AsyncClient(base_url=api.base_url) as client:
            r = await client.post(SICAAC.path, json=PERSON, headers=creds(CROMA))
        # no Prefer: the spec's default wait applies; the job fails within it
        assert SICAAC.wait.default > 2.5
        assert r.status_code == SICAAC.responses[CROMA.lifecycle.word("failed") or ""].status
        assert r.json() == {"error": CROMA.outcome_errors["failed"]({})}
        assert api.now - start == pytest.approx(2.5)


def test_inline_wait_on_a_manual_job_lasts_the_whole_wait() -> None:
    with jobmock.mock("croma") as api, httpx.Client(base_url=api.base_url) as client:
        api.plan_next(manual=True)  # a manual job cannot end by itself
        start = api.now
        r = _croma_submit(client, "wait=20")
        assert api.now - start == 20
        assert r.status_code == SICAAC.responses["pending"].status


def test_response_delay_moves_the_clock_and_drop_raises_like_a_closed_connection() -> None:
    with jobmock.mock("croma") as api:
        mode: dict[str, Any] = {"delay": 3.0, "drop": False}

        def hook(request: Request, response: Response, info: dict[str, Any]) -> Response:
            response.delay, response.drop = mode["delay"], mode["drop"]
            return response

        api.mock.response_hooks.append(hook)
        with httpx.Client(base_url=api.base_url) as client:
            start = api.now
            assert client.get("/jobs/x", headers=creds(CROMA)).status_code == 404
            assert api.now - start == 3.0
            mode.update(delay=0.0, drop=True)
            with pytest.raises(httpx.RemoteProtocolError):
                client.get("/jobs/x", headers=creds(CROMA))


# -- auto-advance ---------------------------------------------------------------------------------


def _tight_poll_loop(api: InProcessMock, client: httpx.Client) -> tuple[str, int]:
    """A client that never sleeps: polls until the job ends."""
    r = _croma_submit(client, "wait=0")
    job_id = r.json()["id"]
    for polls in itertools.count(1):
        body = client.get(f"/jobs/{job_id}", headers=creds(CROMA)).json()
        if CROMA.lifecycle.is_terminal(body["status"]):
            return body["status"], polls
        if polls > 1000:
            raise AssertionError("the job never ended")
    raise AssertionError("unreachable")


def test_auto_advance_retry_after_moves_time_as_a_patient_client_would() -> None:
    with jobmock.mock("croma", auto_advance="retry-after") as api:
        api.plan_next(outcome="completed", queued_for=1, running_for=9)
        with httpx.Client(base_url=api.base_url) as client:
            word, polls = _tight_poll_loop(api, client)
        assert word == CROMA.lifecycle.word("completed")
        gaps = [b.at - a.at for a, b in itertools.pairwise(api.requests)]
        assert gaps and all(g == CROMA.retry_after_seconds for g in gaps)
        assert polls == len(gaps)
        api.assert_client_honoured_retry_after()


def test_auto_advance_by_seconds_moves_the_clock_before_each_api_request() -> None:
    with jobmock.mock("croma", auto_advance=0.5) as api:
        with httpx.Client(base_url=api.base_url) as client:
            start = api.now
            for _ in range(4):
                client.get("/jobs/x", headers=creds(CROMA))
            client.get("/_jobmock/health")  # the control plane is not an API request
        assert api.now - start == 2.0


def test_auto_advance_waits_out_a_429_retry_after() -> None:
    with jobmock.mock("cloro", auto_advance="retry-after") as api:
        api.refuse_next(1)
        submit = CLORO.submit_operations[0]
        with httpx.Client(base_url=api.base_url) as client:
            first = client.post(submit.path, json=TASK, headers=creds(CLORO))
            second = client.post(submit.path, json=TASK, headers=creds(CLORO))
        assert first.status_code == CLORO.errors["queue_full"].status == 429
        assert second.status_code == submit.responses["pending"].status
        a, b = api.requests
        assert b.at - a.at == float(first.headers["Retry-After"])
        api.assert_backed_off_after_429()


def test_without_auto_advance_a_tight_loop_polls_before_retry_after() -> None:
    with jobmock.mock("croma", advance="polls", polls=2) as api:
        with httpx.Client(base_url=api.base_url) as client:
            _tight_poll_loop(api, client)
        with pytest.raises(jobmock.behaviour.PolledBeforeRetryAfter):
            api.assert_client_honoured_retry_after()


@pytest.mark.parametrize("bad", ["sometimes", -1.0])
def test_auto_advance_rejects_unknown_policies(bad: Any) -> None:
    with pytest.raises(ValueError, match="auto_advance"):
        jobmock.mock("croma", auto_advance=bad)


def test_auto_advance_needs_a_virtual_clock() -> None:
    with pytest.raises(ValueError, match="virtual"):
        jobmock.mock("croma", clock="real", auto_advance="retry-after")


# -- routing -----------------------------------------------------------------------------------------


def test_base_url_defaults_to_the_specs_first_server() -> None:
    for name in jobmock.bundled_names():
        spec = resolve_spec(name)
        assert jobmock.mock(name).base_url == spec.document["servers"][0]["url"].rstrip("/")


def test_a_base_url_with_a_path_prefix_serves_under_it() -> None:
    with jobmock.mock("croma", base_url="http://localhost:9999/croma/") as api:
        with httpx.Client() as client:
            r = client.post("http://localhost:9999/croma" + SICAAC.path, json=PERSON,
                            headers={**creds(CROMA), "Prefer": "wait=0"})
            assert r.status_code == SICAAC.responses["pending"].status
            assert r.headers["Location"] == f"http://localhost:9999/croma/jobs/{r.json()['id']}"
            with pytest.raises(AllMockedAssertionError):
                client.get("http://localhost:9999/other" + SICAAC.path)
        assert api.requests[0].path == SICAAC.path


def test_other_hosts_fail_unless_pass_through() -> None:
    with jobmock.mock("croma"), httpx.Client() as client, \
            pytest.raises(AllMockedAssertionError):
        client.get("https://elsewhere.example/x")


def test_routes_of_your_own_sit_beside_the_api() -> None:
    with jobmock.mock("croma") as api:
        route = api.router.get("https://flags.example/v1/flags").respond(json={"poll": True})
        with httpx.Client() as client:
            assert client.get("https://flags.example/v1/flags").json() == {"poll": True}
            assert client.get(api.url("/_jobmock/health")).status_code == 200
        assert route.call_count == 1
        assert api.api_route.call_count == 1


@pytest.mark.live
def test_pass_through_reaches_the_network() -> None:
    with WebhookReceiver() as receiver, jobmock.mock("croma", pass_through=True), \
            httpx.Client() as client:
        r = client.post(receiver.url, content=b"hello")
        assert r.status_code == 200
        assert [x.body for x in receiver.received] == [b"hello"]


def test_leaving_the_context_stops_routing_but_keeps_the_state() -> None:
    api = jobmock.mock("croma")
    with api, httpx.Client(base_url=api.base_url) as client:
        _croma_submit(client, "wait=0")
    assert len(api.jobs) == 1 and len(api.requests) == 1
    with httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(599))) as other:
        assert other.get(api.url("/jobs/x")).status_code == 599  # no longer intercepted


def test_assert_all_called_is_respx_s_check_on_exit() -> None:
    api = jobmock.mock("croma", assert_all_called=True)
    with pytest.raises(AssertionError, match="not called"), api:
        pass


def test_a_mock_cannot_be_entered_twice_at_once() -> None:
    with jobmock.mock("croma") as api, pytest.raises(RuntimeError, match="already active"):
        api.start()


# -- the decorator -------------------------------------------------------------------------------------


def test_decorator_gives_each_call_a_fresh_mock_as_the_jobmock_argument() -> None:
    seen: list[InProcessMock] = []

    @jobmock.mock("croma", seed=2)
    def lookup(document_number: str, jobmock: InProcessMock) -> int:
        seen.append(jobmock)
        with httpx.Client(base_url=jobmock.base_url) as client:
            r = client.post(SICAAC.path, json={**PERSON, "document_number": document_number},
                            headers={**creds(CROMA), "Prefer": "wait=0"})
        return r.status_code

    import inspect

    assert list(inspect.signature(lookup).parameters) == ["document_number"]
    assert lookup("1020304050") == lookup("1020304051") == SICAAC.responses["pending"].status
    first, second = seen
    assert first is not second and len(first.jobs) == len(second.jobs) == 1
    assert first.jobs[0].id == second.jobs[0].id, "same seed, fresh mock: same first id"


def test_decorator_on_a_coroutine_function() -> None:
    @jobmock.mock("cloro")
    async def submit() -> int:
        async with httpx.AsyncClient() as client:
            r = await client.post(CLORO.server_url + CLORO.submit_operations[0].path,  # type: ignore[operator]
                                  json=TASK, headers=creds(CLORO))
        return r.status_code

    assert asyncio.run(submit()) == CLORO.submit_operations[0].responses["pending"].status


# -- webhooks through the router ---------------------------------------------------------------------


def _croma_job_with_callback(api: InProcessMock, client: httpx.Client) -> str:
    r = client.post(SICAAC.path, json={**PERSON, "callback_url": HOOK},
                    headers={**creds(CROMA), "Prefer": "wait=0"})
    assert r.status_code == SICAAC.responses["pending"].status
    return str(r.json()["id"])


def test_webhooks_are_posted_through_the_router_signed() -> None:
    hooks = CROMA.webhooks
    assert hooks is not None and hooks.signature is not None
    with jobmock.mock("croma", seed=1) as api, httpx.Client(base_url=api.base_url) as client:
        route = api.webhook_route(HOOK)
        job_id = _croma_job_with_callback(api, client)
        api.run_until_idle()
        [call] = route.calls
        body = call.request.content
        assert json.loads(body)["id"] == job_id
        polled = client.get(f"/jobs/{job_id}", headers=creds(CROMA)).json()
        assert json.loads(body) == polled
        sig = call.request.headers[hooks.signature.header]
        import hashlib
        import hmac

        digest = hmac.new(hooks.signature.secret.encode(), body, hashlib.sha256).hexdigest()
        assert sig == hooks.signature.format.replace("{hex}", digest)
        [delivery] = api.deliveries(job_id)
        assert delivery.state == "delivered"
        api.assert_webhooks_acknowledged()


def test_an_unrouted_webhook_fails_and_is_retried_on_schedule() -> None:
    hooks = CROMA.webhooks
    assert hooks is not None
    with jobmock.mock("croma") as api, httpx.Client(base_url=api.base_url) as client:
        job_id = _croma_job_with_callback(api, client)
        api.run_until_idle()
        [delivery] = api.deliveries(job_id)
        assert delivery.state == "exhausted"
        assert len(delivery.attempts) == hooks.retry.attempts
        assert all(a.error and "no respx route" in a.error for a in delivery.attempts)
        gaps = [b.sent_at - a.sent_at for a, b in itertools.pairwise(delivery.attempts)]  # type: ignore[operator]
        assert gaps == list(hooks.retry.delays)


def test_webhook_latency_past_the_timeout_is_a_timeout() -> None:
    hooks = CROMA.webhooks
    assert hooks is not None
    with jobmock.mock("croma") as api, httpx.Client(base_url=api.base_url) as client:
        api.webhook_route(HOOK, latency=hooks.retry.timeout + 1)
        job_id = _croma_job_with_callback(api, client)
        api.force(job_id, "completed")
        [delivery] = api.deliveries(job_id)
        first = delivery.attempts[0]
        assert first.status is None and first.error is not None and "timeout" in first.error
        assert delivery.state == "retrying"


@pytest.mark.live
@pytest.mark.parametrize("spelling", ["127.0.0.1", "127.1", "localhost"])
def test_a_loopback_webhook_receiver_gets_the_webhook_over_the_network(
        webhook_receiver: WebhookReceiver, spelling: str) -> None:
    url = webhook_receiver.url.replace("127.0.0.1", spelling, 1)
    with jobmock.mock("croma", allow_private_callbacks=True) as api, \
            httpx.Client(base_url=api.base_url) as client:
        r = client.post(SICAAC.path, json={**PERSON, "callback_url": url},
                        headers={**creds(CROMA), "Prefer": "wait=0"})
        api.force(r.json()["id"], "completed")
        webhook_receiver.wait_for(1, timeout=5)
        assert webhook_receiver.received[0].json()["id"] == r.json()["id"]
        [delivery] = api.webhooks
        assert delivery.state == "delivered"


def test_a_full_cloro_job_with_webhook_retries_end_to_end() -> None:
    """Submit, run, fail four deliveries, succeed on the fifth: the 30-minute schedule in-process."""
    hooks = CLORO.webhooks
    assert hooks is not None
    started = time.perf_counter()
    submit = CLORO.submit_operations[0]
    with jobmock.mock("cloro", seed=11) as api, httpx.Client(base_url=api.base_url) as client:
        failures = [500] * (hooks.retry.attempts - 1)
        route = api.webhook_route(HOOK, *failures, 200)
        r = client.post(submit.path, json={**TASK, "webhook": {"url": HOOK}}, headers=creds(CLORO))
        task_id = job_id_of(submit, r)
        api.plan_next(outcome="COMPLETED")  # (applies to later tasks: this one drew its own)
        idle_after = api.run_until_idle()
        final = client.get(status_path(CLORO, task_id), headers=creds(CLORO)).json()
    wall = time.perf_counter() - started
    print(f"\nfull cloro job + {hooks.retry.attempts} webhook attempts "
          f"({idle_after / 60:.1f} clock minutes): {wall * 1000:.1f} ms wall")
    [delivery] = api.deliveries(task_id)
    assert route.call_count == hooks.retry.attempts
    assert [a.status for a in delivery.attempts] == [*failures, 200]
    assert delivery.state == "delivered"
    sent = [a.sent_at for a in delivery.attempts]
    assert [b - a for a, b in itertools.pairwise(sent)] == list(hooks.retry.delays)  # type: ignore[operator]
    bodies = {c.request.content for c in route.calls}
    assert len(bodies) == 1
    delivered = json.loads(bodies.pop())
    assert delivered["task"] == final["task"] and delivered["credits"] == final["credits"]
    assert CLORO.lifecycle.is_terminal(delivered["task"]["status"])


# -- the Python API ------------------------------------------------------------------------------------


def test_jobs_job_force_journal_and_reset() -> None:
    with jobmock.mock("croma") as api, httpx.Client(base_url=api.base_url) as client:
        ids = [_croma_submit(client, "wait=0").json()["id"] for _ in range(3)]
        assert [j.id for j in api.jobs] == ids
        assert api.job(ids[1]).status == CROMA.lifecycle.queued
        with pytest.raises(KeyError):
            api.job("nope")
        assert api.force(ids[0], "failed", error={"code": "x"}).error == {"code": "x"}
        with pytest.raises(ValueError, match="terminal"):
            api.force(ids[0], "completed")
        assert [e.job_id for e in api.journal] == ids
        assert api.advance(60) > 0
        assert all(CROMA.lifecycle.is_terminal(j.status) for j in api.jobs)
        api.reset()
        assert api.jobs == [] and api.requests == []


def test_advance_needs_a_virtual_clock() -> None:
    with jobmock.mock("croma", clock="real") as api, pytest.raises(TypeError, match="virtual"):
        api.advance(1)


def test_plan_next_and_refuse_next_check_their_arguments() -> None:
    api = jobmock.mock("croma")
    with pytest.raises(ValueError, match="terminal"):
        api.plan_next(outcome="running")
    with pytest.raises(ValueError, match="errors"):
        api.refuse_next(error="no_such_error")
    with pytest.raises(ValueError, match="errors"):
        api.refuse_next()  # croma has no queue limit to name


def test_plan_next_counts_down() -> None:
    with jobmock.mock("croma") as api, httpx.Client(base_url=api.base_url) as client:
        api.plan_next(2, queued_for=100.0, outcome="expired")
        for _ in range(3):
            _croma_submit(client, "wait=0")
        first, second, third = api.jobs
        assert first.queued_for == second.queued_for == 100.0
        assert first.outcome == second.outcome == "expired"
        assert CROMA.timing.queued[0] <= third.queued_for <= CROMA.timing.queued[1]


@pytest.mark.parametrize("api_name", ["croma", "cloro"])
def test_credential_helpers_present_a_demo_tenant(api_name: str) -> None:
    spec = resolve_spec(api_name)
    with jobmock.mock(api_name) as api, httpx.Client(base_url=api.base_url) as client:
        assert api.credential(1) == spec.demo_tenants()[1][1]
        path = status_path(spec, "no-such-job")
        anonymous = client.get(path)
        known = client.get(path, headers=api.auth_headers(), params=api.auth_params())
        assert anonymous.status_code == spec.errors[spec.auth.missing].status
        assert known.status_code == spec.errors["not_found"].status


def test_scenario_option_goes_to_install_scenario(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[Any] = []
    from jobmock import mockbuild

    monkeypatch.setattr(mockbuild, "install_scenario", lambda mock, source: loaded.append(source))
    jobmock.mock("croma", scenario={"name": "x"})
    assert loaded == [{"name": "x"}]


def test_import_jobmock_stays_light_and_mock_loads_on_use() -> None:
    code = ("import sys, jobmock; heavy = ('respx', 'jobmock.inprocess', 'starlette', 'uvicorn');"
            "print([m for m in heavy if m in sys.modules]);"
            "jobmock.mock; print('jobmock.inprocess' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    first, second = out.stdout.split("\n")[:2]
    assert first == "[]"
    assert second == "True"
    assert re.search(r"mock\s+mock an API in-process", jobmock.__doc__ or "")
