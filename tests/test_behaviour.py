"""Client-behaviour checks (jobmock.behaviour): an impatient client is flagged by each check,
and only by it; a well-behaved client doing the same work passes every check.

Clients are scripted with httpx against the in-process mock (virtual clock: a client
"sleeps" by moving it). Expected statuses and Retry-After values come from the specs.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

import jobmock
from jobmock import behaviour, resolve_spec
from jobmock.asgi import create_app
from jobmock.behaviour import (
    CHECKS,
    AcceptedForgedWebhook,
    ClientBehaviourError,
    IgnoredPendingJob,
    NoBackoffAfter429,
    PolledAfterTerminal,
    PolledBeforeRetryAfter,
    ProcessedDuplicateWebhook,
    RetriedPermanentError,
    WebhookNotAcknowledged,
)
from jobmock.inprocess import InProcessMock

CROMA = resolve_spec("croma")
CLORO = resolve_spec("cloro")
SICAAC = next(op for op in CROMA.submit_operations if op.path.endswith("/sicaac"))
TASK_SUBMIT = CLORO.submit_operations[0]
PERSON = {"document_type": "CC", "document_number": "1020304050"}
TASK = {"taskType": "CHATGPT", "payload": {"prompt": "hello"}}
HOOK = "https://app.example.com/hooks/jobs"
RA = float(CROMA.retry_after_seconds or 0)
CLORO_RA = float(CLORO.retry_after_seconds or 0)
QUEUE_FULL_RA = float(CLORO.errors["queue_full"].headers["Retry-After"]({}))


def creds(spec: Any, index: int = 0) -> dict[str, str]:
    return dict(spec.auth.headers_for(spec.demo_tenants()[index][1]))


A = creds(CROMA)
POLL = {**A, "Prefer": "wait=0"}


@pytest.fixture
def croma() -> Iterator[tuple[InProcessMock, httpx.Client]]:
    with jobmock.mock("croma", seed=1) as api, httpx.Client(base_url=api.base_url) as client:
        yield api, client


@pytest.fixture
def cloro() -> Iterator[tuple[InProcessMock, httpx.Client]]:
    with jobmock.mock("cloro", seed=1) as api, httpx.Client(base_url=api.base_url) as client:
        yield api, client


def poll_until_terminal(api: InProcessMock, client: httpx.Client, path: str,
                        headers: dict[str, str], word_of: Callable[[Any], str],
                        patient: bool = True) -> str:
    """Poll ``path``, sleeping the Retry-After each answer asks for, until the job ends."""
    for _ in range(200):
        r = client.get(path, headers=headers)
        word = word_of(r.json())
        if api.spec.lifecycle.is_terminal(word):
            return word
        if patient:
            api.sleep(float(r.headers["Retry-After"]))
    raise AssertionError("the job never ended")


def croma_poll(api: InProcessMock, client: httpx.Client, job_id: str) -> str:
    return poll_until_terminal(api, client, f"/jobs/{job_id}", A, lambda b: b["status"])


def cloro_poll(api: InProcessMock, client: httpx.Client, task_id: str) -> str:
    return poll_until_terminal(api, client, f"/v1/task/{task_id}", creds(CLORO),
                               lambda b: b["task"]["status"])


# -- the scripts: each does one job of work, impatiently or well ----------------------------------------


def polls_early(api: InProcessMock, client: httpx.Client, patient: bool) -> None:
    r = client.post(SICAAC.path, json=PERSON, headers=POLL)
    if patient:
        api.sleep(float(r.headers["Retry-After"]))
    croma_poll(api, client, r.json()["id"])  # the impatient one polls at once after the 202


def polls_after_the_end(api: InProcessMock, client: httpx.Client, patient: bool) -> None:
    r = client.post(SICAAC.path, json=PERSON, headers=POLL)
    api.sleep(RA)
    job_id = r.json()["id"]
    croma_poll(api, client, job_id)
    if not patient:
        client.get(f"/jobs/{job_id}", headers=A)  # "just to be sure"
        client.get(f"/jobs/{job_id}", headers=A)


def ignores_the_202(api: InProcessMock, client: httpx.Client, patient: bool) -> None:
    api.plan_next(manual=True)  # the job cannot end within the wait
    r = client.post(SICAAC.path, json=PERSON, headers={**A, "Prefer": "wait=5"})
    assert r.status_code == SICAAC.responses["pending"].status
    if patient:
        api.sleep(float(r.headers["Retry-After"]))
        api.force(r.json()["id"], "completed")
        croma_poll(api, client, r.json()["id"])


def retries_a_400(api: InProcessMock, client: httpx.Client, patient: bool) -> None:
    bad = {"document_type": "CC"}
    r = client.post(SICAAC.path, json=bad, headers=POLL)
    assert r.status_code == CROMA.errors["validation"].status
    if patient:
        r = client.post(SICAAC.path, json=PERSON, headers=POLL)  # fixed the body first
        api.sleep(RA)
        croma_poll(api, client, r.json()["id"])
    else:
        api.sleep(10)
        client.post(SICAAC.path, json=bad, headers=POLL)
        client.get("/jobs/job_0000000000000000", headers=A)
        client.get("/jobs/job_0000000000000000", headers=A)


def hammers_after_a_429(api: InProcessMock, client: httpx.Client, patient: bool) -> None:
    api.refuse_next(1)
    r = client.post(TASK_SUBMIT.path, json=TASK, headers=creds(CLORO))
    assert r.status_code == 429
    if patient:
        api.sleep(float(r.headers["Retry-After"]))
    r = client.post(TASK_SUBMIT.path, json=TASK, headers=creds(CLORO))
    api.sleep(float(r.headers["Retry-After"]))
    cloro_poll(api, client, r.json()["task"]["id"])


def webhook_endpoint_fails(api: InProcessMock, client: httpx.Client, patient: bool) -> None:
    api.webhook_route(HOOK, 200) if patient else api.webhook_route(HOOK, 500, 200)
    client.post(SICAAC.path, json={**PERSON, "callback_url": HOOK}, headers=POLL)
    api.run_until_idle()


def lookup_then_probe(api: InProcessMock, client: httpx.Client, kind: str,
                      answer: Callable[[httpx.Request], httpx.Response]) -> None:
    """A lookup with a callback to ``answer``; once delivered, a ``kind`` probe of it."""
    api.router.post(HOOK).mock(side_effect=answer)
    job_id = client.post(SICAAC.path, json={**PERSON, "callback_url": HOOK},
                         headers=POLL).json()["id"]
    api.force(job_id, "completed")
    [delivery] = api.deliveries(job_id)
    assert delivery.state == "delivered"
    r = client.post(f"/_jobmock/webhooks/{delivery.id}/forge", json={"kind": kind})
    assert r.status_code == 200, r.text
    assert r.json()["attempts"][-1]["probe"] == kind


def trusts_any_signature(api: InProcessMock, client: httpx.Client, patient: bool) -> None:
    assert CROMA.webhooks is not None and CROMA.webhooks.signature is not None
    secret = CROMA.webhooks.signature.secret.encode()

    def answer(request: httpx.Request) -> httpx.Response:
        good = "sha256=" + hmac.new(secret, request.content, hashlib.sha256).hexdigest()
        signed = hmac.compare_digest(request.headers.get("x-croma-signature", ""), good)
        return httpx.Response(200 if signed or not patient else 401)

    lookup_then_probe(api, client, "forged", answer)


def processes_a_duplicate(api: InProcessMock, client: httpx.Client, patient: bool) -> None:
    seen: set[str] = set()
    api.webhook_route("https://app.example.com/hooks/next")

    def answer(request: httpx.Request) -> httpx.Response:
        delivery = request.headers["x-jobmock-delivery"]
        if patient and delivery in seen:
            return httpx.Response(200)  # seen: acknowledged, not processed again
        seen.add(delivery)
        # Processing it: the next lookup of this pipeline.
        client.post(SICAAC.path, headers=POLL, json={
            **PERSON, "callback_url": "https://app.example.com/hooks/next"})
        return httpx.Response(200)

    lookup_then_probe(api, client, "duplicate", answer)


SCRIPTS: dict[str, tuple[str, Callable[[InProcessMock, httpx.Client, bool], None],
                         type[ClientBehaviourError], str]] = {
    "retry_after": ("croma", polls_early, PolledBeforeRetryAfter,
                    "assert_client_honoured_retry_after"),
    "after_terminal": ("croma", polls_after_the_end, PolledAfterTerminal,
                       "assert_no_polling_after_terminal"),
    "ignored_job": ("croma", ignores_the_202, IgnoredPendingJob, "assert_no_ignored_jobs"),
    "permanent_4xx": ("croma", retries_a_400, RetriedPermanentError,
                      "assert_no_retried_permanent_errors"),
    "backoff_429": ("cloro", hammers_after_a_429, NoBackoffAfter429, "assert_backed_off_after_429"),
    "webhooks": ("croma", webhook_endpoint_fails, WebhookNotAcknowledged,
                 "assert_webhooks_acknowledged"),
    "webhook_receiver_verifies": ("croma", trusts_any_signature, AcceptedForgedWebhook,
                                  "assert_webhook_receiver_verifies"),
    "webhook_receiver_deduplicates": ("croma", processes_a_duplicate, ProcessedDuplicateWebhook,
                                      "assert_webhook_receiver_deduplicates"),
}


def run(name: str, patient: bool) -> InProcessMock:
    api_name, script, _, _ = SCRIPTS[name]
    with jobmock.mock(api_name, seed=1) as api, httpx.Client(base_url=api.base_url) as client:
        script(api, client, patient)
    return api


def test_every_check_has_a_script() -> None:
    assert set(SCRIPTS) == set(CHECKS)


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_the_impatient_client_is_flagged_by_this_check_and_no_other(name: str) -> None:
    api = run(name, patient=False)
    _, _, error, method = SCRIPTS[name]
    with pytest.raises(error) as caught:
        getattr(api, method)()
    assert caught.value.title == CHECKS[name].title
    assert str(caught.value).startswith(CHECKS[name].title)
    assert caught.value.findings and all(f.check == name for f in caught.value.findings)
    report = api.report()
    assert report["ok"] is False
    assert [c["name"] for c in report["checks"] if not c["passed"]] == [name]
    with pytest.raises(error):  # the catch-all assertion raises the same, specific error
        api.assert_client_behaved()


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_the_patient_client_passes_every_check(name: str) -> None:
    api = run(name, patient=True)
    api.assert_client_behaved()
    report = api.report()
    assert report["ok"] is True and report["findings"] == []
    assert report["requests"] == api.journal.total > 0
    assert f"{len(CHECKS)} of {len(CHECKS)} checks passed" in api.summary()


# -- what each finding says -------------------------------------------------------------------------


def test_an_early_poll_names_the_job_the_gap_and_the_retry_after(
        croma: tuple[InProcessMock, httpx.Client]) -> None:
    api, client = croma
    r = client.post(SICAAC.path, json=PERSON, headers=POLL)
    job_id = r.json()["id"]
    api.sleep(RA / 2)
    client.get(f"/jobs/{job_id}", headers=A)
    api.sleep(RA)  # exactly Retry-After after the last answer: allowed
    client.get(f"/jobs/{job_id}", headers=A)
    [finding] = behaviour.find(api.mock, "retry_after")["retry_after"]
    assert finding.job_id == job_id
    assert f"{RA / 2:g} s after an answer with Retry-After: {RA:g}" in finding.message
    first, second, _ = api.requests
    assert finding.requests == (first.seq, second.seq)


def test_only_polls_after_the_terminal_answer_count(croma: tuple[InProcessMock, httpx.Client]) -> None:
    api, client = croma
    job_id = client.post(SICAAC.path, json=PERSON, headers=POLL).json()["id"]
    api.force(job_id, "failed")
    api.sleep(RA)
    for _ in range(3):
        client.get(f"/jobs/{job_id}", headers=A)
    findings = behaviour.find(api.mock, "after_terminal")["after_terminal"]
    assert len(findings) == 2
    assert all("failed" in f.message for f in findings)


def test_a_job_with_a_webhook_url_need_not_be_polled(croma: tuple[InProcessMock, httpx.Client]) -> None:
    api, client = croma
    api.webhook_route(HOOK)
    client.post(SICAAC.path, json={**PERSON, "callback_url": HOOK}, headers=POLL)
    client.post(SICAAC.path, json=PERSON, headers=POLL)
    [finding] = behaviour.find(api.mock, "ignored_job")["ignored_job"]
    assert finding.job_id == api.jobs[1].id


def test_a_changed_request_after_a_4xx_is_not_a_retry(croma: tuple[InProcessMock, httpx.Client]) -> None:
    api, client = croma
    client.post(SICAAC.path, json={"document_type": "CC"}, headers=POLL)
    client.post(SICAAC.path, json={"document_type": "CC", "document_number": "x"}, headers=POLL)
    client.get("/jobs/job_1", headers={"Authorization": "Bearer wrong"})
    client.get("/jobs/job_1", headers=A)  # new credentials: not the same request
    assert behaviour.find(api.mock, "permanent_4xx") == {"permanent_4xx": []}
    client.get("/jobs/job_1", headers={"Authorization": "Bearer wrong"})
    [finding] = behaviour.find(api.mock, "permanent_4xx")["permanent_4xx"]
    assert f"answered {CROMA.errors[CROMA.auth.invalid].status}" in finding.message


def test_a_429_without_retry_after_still_asks_for_a_second(cloro: tuple[InProcessMock, httpx.Client]) -> None:
    api, client = cloro

    def strip(request: Any, response: Any, info: dict[str, Any]) -> Any:
        response.headers = [(k, v) for k, v in response.headers if k.lower() != "retry-after"]
        return response

    api.mock.response_hooks.append(strip)
    api.refuse_next(2)
    client.post(TASK_SUBMIT.path, json=TASK, headers=creds(CLORO))
    api.sleep(behaviour.DEFAULT_429_BACKOFF)
    client.post(TASK_SUBMIT.path, json=TASK, headers=creds(CLORO))
    client.post(TASK_SUBMIT.path, json=TASK, headers=creds(CLORO))
    [finding] = behaviour.find(api.mock, "backoff_429")["backoff_429"]
    assert f"asked for {behaviour.DEFAULT_429_BACKOFF:g} s" in finding.message
    assert QUEUE_FULL_RA > behaviour.DEFAULT_429_BACKOFF


def test_a_slow_webhook_answer_is_flagged_past_half_the_timeout() -> None:
    hooks = CROMA.webhooks
    assert hooks is not None
    timeout = hooks.retry.timeout
    for latency, slow in [(timeout / 2, False), (timeout / 2 + 1, True)]:
        with jobmock.mock("croma") as api, httpx.Client(base_url=api.base_url) as client:
            api.webhook_route(HOOK, latency=latency)
            job_id = client.post(SICAAC.path, json={**PERSON, "callback_url": HOOK},
                                 headers=POLL).json()["id"]
            api.force(job_id, "completed")
            findings = behaviour.find(api.mock, "webhooks", timed_webhooks=True)["webhooks"]
            assert bool(findings) == slow, (latency, findings)
            if slow:
                assert "slow" in findings[0].message
                api.assert_webhooks_acknowledged(slow_webhook=timeout)  # a laxer threshold
                # a server on a virtual clock cannot time its receiver: not judged there
                assert behaviour.client_report(api.mock)["ok"] is True


def test_several_failed_checks_raise_the_base_error_listing_all() -> None:
    with jobmock.mock("croma") as api, httpx.Client(base_url=api.base_url) as client:
        polls_early(api, client, patient=False)
        polls_after_the_end(api, client, patient=False)
    with pytest.raises(ClientBehaviourError) as caught:
        api.assert_client_behaved()
    assert type(caught.value) is ClientBehaviourError
    assert isinstance(caught.value, AssertionError)
    assert CHECKS["retry_after"].title in str(caught.value)
    assert CHECKS["after_terminal"].title in str(caught.value)
    api.assert_client_behaved("ignored_job", "permanent_4xx")  # the others pass


def test_unknown_check_names_are_refused() -> None:
    with jobmock.mock("croma") as api, pytest.raises(ValueError, match="unknown client-behaviour"):
        api.assert_client_behaved("patience")


def test_report_and_summary_over_the_control_plane_of_the_asgi_app() -> None:
    mock = jobmock.Mock(CROMA, clock=jobmock.VirtualClock())
    with TestClient(create_app(mock), base_url="http://mock.test") as client:
        job_id = client.post(SICAAC.path, json=PERSON, headers=POLL).json()["id"]
        client.get(f"/jobs/{job_id}", headers=A)
        report = client.get("/_jobmock/report").json()
    assert report["api"] == "croma" and report["requests"] == 2 and report["ok"] is False
    [finding] = report["findings"]
    assert finding["check"] == "retry_after" and finding["job_id"] == job_id
    assert finding["title"] == PolledBeforeRetryAfter.title
    assert {c["name"]: c["passed"] for c in report["checks"]} == {
        name: name != "retry_after" for name in CHECKS}
    summary = behaviour.client_summary(mock)
    assert "2 requests served" in summary
    assert f"{len(CHECKS) - 1} of {len(CHECKS)} checks passed" in summary
    assert f"FAIL {PolledBeforeRetryAfter.title} (1)" in summary
