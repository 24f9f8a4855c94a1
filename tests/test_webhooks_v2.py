"""Webhooks v2 (issue 14), in-process: signing schemes, events and filters, per-job order,
delivery semantics (410, Retry-After, 3xx, jitter, due-time retries, redelivery) and the
modes that keep a test tool from sending traffic to strangers.

Attempts go to a real loopback :class:`~jobmock.receiver.WebhookReceiver` through a
:class:`~jobmock.senders.SyncSender`, on a virtual clock. Signatures are verified with
independent implementations: the ``standardwebhooks`` package (Standard Webhooks) and
Python's ``hmac`` (Stripe-style and hex), never with ``jobmock.signing``.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from jobmock import Mock, Request, VirtualClock, resolve_spec
from jobmock.receiver import WebhookReceiver
from jobmock.senders import SyncSender
from jobmock.spec import ApiSpec, build_spec, load_spec
from jobmock.stack import Stack
from jobmock.webhooks import DeliveryBook
from webhookhelpers import with_pointer

REPLICATE = Path(__file__).resolve().parent.parent / "examples" / "specs" / "replicate.yaml"
JOBS = 100


def replicate_doc() -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(dict(load_spec(REPLICATE).document))
    return doc


def variant(doc: dict[str, Any], **webhooks: Any) -> ApiSpec:
    """The Replicate example with ``x-jobmock.webhooks`` keys replaced."""
    doc = copy.deepcopy(doc)
    doc["x-jobmock"]["webhooks"].update(webhooks)
    for key in [k for k, v in webhooks.items() if v is None]:
        del doc["x-jobmock"]["webhooks"][key]
    return build_spec(doc, str(REPLICATE))


@pytest.fixture
def senders() -> Iterator[list[SyncSender]]:
    made: list[SyncSender] = []
    yield made
    for s in made:
        s.close()


def make(spec: ApiSpec | str, senders: list[SyncSender], *, start: float | None = None,
         **kwargs: Any) -> Mock:
    """A mock on a virtual clock (starting now, so timestamps are fresh) with a SyncSender."""
    spec = resolve_spec(spec) if isinstance(spec, str) else spec
    mock = Mock(spec, clock=VirtualClock(time.time() if start is None else start),
                allow_private_callbacks=True, **kwargs)
    senders.append(SyncSender(book(mock)))
    return mock


def book(mock: Mock) -> DeliveryBook:
    assert mock.webhooks is not None
    return mock.webhooks


def call(mock: Mock, method: str, path: str, body: Any = None,
         headers: dict[str, str] | None = None) -> Any:
    raw = json.dumps(body).encode() if body is not None else b""
    answer = Stack(mock).handle(Request(method, path, headers=headers or {}, body=raw,
                                        base_url="http://mock.test"))
    assert not hasattr(answer, "deadline"), "no inline wait here"
    return answer


def predict(mock: Mock, url: str | None, events: list[str] | None = None, i: int = 0) -> str:
    body: dict[str, Any] = {"version": "v1", "input": {"text": f"item {i}"}}
    if url is not None:
        body["webhook"] = url
    if events is not None:
        body["webhook_events_filter"] = events
    headers = {**mock.spec.auth.headers_for(mock.spec.demo_tenants()[0][1]),
               "content-type": "application/json"}
    answer = call(mock, "POST", "/v1/predictions", body, headers)
    assert answer.status == 201, answer.body
    return str(answer.json()["id"])


def settle(mock: Mock, limit: int = 100_000) -> None:
    """Advance from due entry to due entry until nothing is scheduled."""
    for _ in range(limit):
        nxt = mock.engine.next_due()
        if nxt is None:
            return
        mock.engine.advance_clock(max(0.0, nxt - mock.clock.now()))
    raise AssertionError("still scheduled")


def secret_of(spec: ApiSpec) -> str:
    assert spec.webhooks is not None and spec.webhooks.signature is not None
    return spec.webhooks.signature.secret


# -- 4. signing schemes --------------------------------------------------------------------


def test_standard_webhooks_signatures_verify_with_the_standardwebhooks_package(
        senders: list[SyncSender], webhook_receiver: WebhookReceiver) -> None:
    spec = load_spec(REPLICATE)
    mock = make(spec, senders)
    verifier = Webhook(secret_of(spec))
    ids = [predict(mock, webhook_receiver.url, ["completed"], i) for i in range(JOBS)]
    settle(mock)
    got = webhook_receiver.wait_for(JOBS, timeout=10)
    assert len(got) == JOBS
    verified = 0
    for r in got:
        data = verifier.verify(r.body, r.headers)  # raises on a bad signature or timestamp
        assert data == json.loads(r.body)
        verified += 1
        assert r.header("webhook-id") == r.header("x-jobmock-delivery")
        changed = bytearray(r.body)
        changed[len(changed) // 2] ^= 1
        with pytest.raises(WebhookVerificationError):
            verifier.verify(bytes(changed), r.headers)
    assert verified == JOBS
    assert {json.loads(r.body)["id"] for r in got} == set(ids)
    print(f"\nstandard webhooks: {verified} of {JOBS} verified by the standardwebhooks package")


def test_a_stale_timestamp_fails_standard_webhooks_verification(
        senders: list[SyncSender], webhook_receiver: WebhookReceiver) -> None:
    spec = load_spec(REPLICATE)
    mock = make(spec, senders, start=time.time() - 3600)  # the mock's clock is an hour behind
    predict(mock, webhook_receiver.url, ["completed"])
    settle(mock)
    [r] = webhook_receiver.wait_for(1)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret_of(spec)).verify(r.body, r.headers)


def test_key_rotation_signs_with_every_secret_and_a_retry_keeps_its_id(
        senders: list[SyncSender], webhook_receiver: WebhookReceiver) -> None:
    old = "whsec_" + base64.b64encode(b"the-previous-key-of-this-account").decode()
    doc = replicate_doc()
    sig = dict(doc["x-jobmock"]["webhooks"]["signature"], previous_secrets=[old])
    spec = variant(doc, signature=sig)
    mock = make(spec, senders)
    webhook_receiver.fail_next(1, status=500)
    predict(mock, webhook_receiver.url, ["completed"])
    settle(mock)
    first, second = webhook_receiver.wait_for(2)
    for r in (first, second):
        assert len(str(r.header("webhook-signature")).split(" ")) == 2
        for secret in (secret_of(spec), old):  # either key alone verifies it
            Webhook(secret).verify(r.body, r.headers)
    assert first.header("webhook-id") == second.header("webhook-id")
    assert first.body == second.body
    assert int(str(second.header("webhook-timestamp"))) - int(str(first.header("webhook-timestamp"))) \
        == pytest.approx(spec.webhooks.retry.delays[0] if spec.webhooks else 0, abs=1)


def test_stripe_style_signatures_verify_with_hmac(
        senders: list[SyncSender], webhook_receiver: WebhookReceiver) -> None:
    secret = "whsec_stripe_style_demo"
    spec = variant(replicate_doc(), signature={"scheme": "stripe", "secret": secret})
    mock = make(spec, senders)
    for i in range(10):
        predict(mock, webhook_receiver.url, ["completed"], i)
    settle(mock)
    got = webhook_receiver.wait_for(10)
    for r in got:
        header = str(r.header("Stripe-Signature"))
        fields = dict(p.split("=", 1) for p in header.split(","))
        expected = hmac.new(secret.encode(), fields["t"].encode() + b"." + r.body,
                            hashlib.sha256).hexdigest()
        assert hmac.compare_digest(fields["v1"], expected)
        assert abs(int(fields["t"]) - time.time()) < 600
        spoiled = hmac.new(secret.encode(), fields["t"].encode() + b"." + r.body + b" ",
                           hashlib.sha256).hexdigest()
        assert fields["v1"] != spoiled


def test_the_wrong_signature_fault_breaks_standard_webhooks_signatures(
        senders: list[SyncSender], webhook_receiver: WebhookReceiver) -> None:
    spec = load_spec(REPLICATE)
    mock = make(spec, senders)
    book(mock).wrong_signature = True
    predict(mock, webhook_receiver.url, ["completed"])
    settle(mock)
    [r] = webhook_receiver.wait_for(1)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret_of(spec)).verify(r.body, r.headers)


# -- 5. events and filters -----------------------------------------------------------------


@pytest.mark.parametrize(("chosen", "expected"), [
    (["start"], ["start"]),
    (["completed"], ["completed"]),
    (["start", "output", "completed"], ["start", "output", "completed"]),
    (None, ["output", "completed"]),  # the spec's filter_default
    ([], []),
])
def test_the_request_event_filter_chooses_the_deliveries(
        senders: list[SyncSender], webhook_receiver: WebhookReceiver,
        chosen: list[str] | None, expected: list[str]) -> None:
    mock = make(load_spec(REPLICATE), senders)
    job_id = predict(mock, webhook_receiver.url, chosen)
    settle(mock)
    assert [d.event for d in book(mock).for_job(job_id)] == expected
    got = webhook_receiver.wait_for(len(expected))
    statuses = [json.loads(r.body)["status"] for r in got]
    assert statuses == [{"start": "processing", "output": "processing"}.get(e, "succeeded")
                        for e in expected]


def test_the_event_name_is_available_to_headers(
        senders: list[SyncSender], webhook_receiver: WebhookReceiver) -> None:
    spec = variant(replicate_doc(), headers={"x-event": "{event}", "x-job": "{job.id}"})
    mock = make(spec, senders)
    job_id = predict(mock, webhook_receiver.url, ["start", "output", "completed"])
    settle(mock)
    got = webhook_receiver.wait_for(3)
    assert [r.header("x-event") for r in got] == ["start", "output", "completed"]
    assert {r.header("x-job") for r in got} == {job_id}


def test_events_can_be_named_by_terminal_role(
        senders: list[SyncSender], webhook_receiver: WebhookReceiver) -> None:
    spec = variant(replicate_doc(), events=["failed"], filter_from=None, filter_default=None,
                   event_names={"failed": "prediction.failed"})
    mock = make(spec, senders)
    job_id = predict(mock, webhook_receiver.url)
    other = predict(mock, webhook_receiver.url, i=1)
    mock.engine.force(job_id, "failed")
    mock.engine.force(other, "succeeded")
    mock.engine.run_due()
    settle(mock)
    assert [d.event for d in book(mock).for_job(job_id)] == ["prediction.failed"]
    assert book(mock).for_job(other) == []


# -- 2. ordered delivery per job -------------------------------------------------------------


def _docimprint(mock: Mock, url: str, i: int = 0) -> str:
    spec = mock.spec
    assert spec.webhooks is not None
    body = with_pointer({"source": f"https://example.com/doc-{i}.pdf"}, spec.webhooks.url_pointer, url)
    headers = {**spec.auth.headers_for(spec.demo_tenants()[0][1]), "content-type": "application/json"}
    answer = call(mock, "POST", "/v1/extract", body, headers)
    assert answer.status == 202, answer.body
    return str(answer.header("x-job-id") or answer.json()["job_id"])


def test_a_jobs_next_event_waits_until_the_one_before_is_delivered(
        senders: list[SyncSender], webhook_receiver: WebhookReceiver) -> None:
    mock = make("docimprint", senders)
    webhook_receiver.fail_next(1, status=500)  # the first progress event fails once
    job_id = _docimprint(mock, webhook_receiver.url)
    settle(mock)
    deliveries = book(mock).for_job(job_id)
    assert all(d.state == "delivered" for d in deliveries)
    got = webhook_receiver.wait_for(len(deliveries) + 1)
    order = [json.loads(r.body)["job"]["progress_pct"] for r in got]
    assert order == sorted(order), order  # the retry of 1 came before 2 was sent
    first_retry = deliveries[0].attempts[1]
    assert deliveries[1].attempts[0].sent_at is not None
    assert first_retry.sent_at is not None and deliveries[1].attempts[0].sent_at >= first_retry.sent_at


def test_parallel_ordering_does_not_hold_the_next_event(
        senders: list[SyncSender], webhook_receiver: WebhookReceiver) -> None:
    doc = copy.deepcopy(dict(resolve_spec("docimprint").document))
    doc["x-jobmock"]["webhooks"]["ordering"] = "parallel"
    mock = make(build_spec(doc, "docimprint-parallel.yaml"), senders)
    webhook_receiver.fail_next(1, status=500)
    job_id = _docimprint(mock, webhook_receiver.url)
    settle(mock)
    deliveries = book(mock).for_job(job_id)
    assert deliveries[1].attempts[0].sent_at is not None
    assert deliveries[1].attempts[0].sent_at < (deliveries[0].attempts[1].sent_at or 0)


def test_different_jobs_never_wait_on_each_other(
        senders: list[SyncSender], webhook_receiver: WebhookReceiver) -> None:
    mock = make(load_spec(REPLICATE), senders)
    webhook_receiver.fail_always(status=500)
    stuck = predict(mock, webhook_receiver.url + "?stuck", ["completed"])
    mock.engine.force(stuck, "succeeded")
    mock.engine.run_due()
    other = predict(mock, webhook_receiver.url, ["completed"], 1)
    mock.engine.force(other, "succeeded")
    mock.engine.run_due()
    [s] = book(mock).for_job(stuck)
    assert s.state == "retrying"
    [d] = book(mock).for_job(other)
    assert len(d.attempts) == 1 and d.attempts[0].sent_at == mock.clock.now()


# -- 6. delivery semantics -------------------------------------------------------------------


def test_410_gone_stops_every_delivery_to_that_url(
        senders: list[SyncSender], webhook_receiver: WebhookReceiver) -> None:
    mock = make(load_spec(REPLICATE), senders)
    webhook_receiver.fail_next(1, status=410)
    job_id = predict(mock, webhook_receiver.url, ["start", "output", "completed"])
    later = predict(mock, webhook_receiver.url, ["completed"], 1)
    elsewhere = predict(mock, webhook_receiver.url + "?other", ["completed"], 2)
    settle(mock)
    first, *rest = book(mock).for_job(job_id)
    assert first.state == "gone" and len(first.attempts) == 1
    assert [(d.state, len(d.attempts)) for d in rest] == [("gone", 0), ("gone", 0)]
    assert [(d.state, len(d.attempts)) for d in book(mock).for_job(later)] == [("gone", 0)]
    assert [d.state for d in book(mock).for_job(elsewhere)] == ["delivered"]
    assert len(webhook_receiver.wait_for(2)) == 2


@pytest.mark.parametrize("status", [429, 503])
def test_a_receivers_retry_after_is_honoured(
        senders: list[SyncSender], webhook_receiver: WebhookReceiver, status: int) -> None:
    mock = make("cloro", senders)
    assert mock.spec.webhooks is not None
    first_delay = mock.spec.webhooks.retry.delays[0]
    webhook_receiver.fail_next(1, status=status, retry_after=str(int(first_delay * 3)))
    webhook_receiver.fail_next(1, status=status, retry_after="1")  # shorter: the schedule wins
    body = with_pointer({"taskType": "CHATGPT", "payload": {"prompt": "x"}}, "/webhook/url",
                        webhook_receiver.url)
    headers = {**mock.spec.auth.headers_for(mock.spec.demo_tenants()[0][1]),
               "content-type": "application/json"}
    job_id = call(mock, "POST", "/v1/task", body, headers).json()["task"]["id"]
    mock.engine.force(job_id, "COMPLETED")
    mock.engine.run_due()
    settle(mock)
    [d] = book(mock).for_job(job_id)
    a1, a2, a3 = d.attempts
    assert a1.retry_after == first_delay * 3
    assert a2.sent_at - a1.sent_at == pytest.approx(first_delay * 3)  # type: ignore[operator]
    assert a3.sent_at - a2.scheduled_at == pytest.approx(mock.spec.webhooks.retry.delays[1])  # type: ignore[operator]
    assert d.state == "delivered"


@pytest.mark.parametrize("status", [301, 302, 307])
def test_a_redirect_counts_as_a_failure(
        senders: list[SyncSender], webhook_receiver: WebhookReceiver, status: int) -> None:
    mock = make(load_spec(REPLICATE), senders)
    webhook_receiver.fail_next(1, status=status)
    job_id = predict(mock, webhook_receiver.url, ["completed"])
    settle(mock)
    [d] = book(mock).for_job(job_id)
    assert [a.status for a in d.attempts] == [status, 200]
    assert d.state == "delivered"
    assert len(webhook_receiver.wait_for(2)) == 2  # the redirect was not followed


def test_retries_are_due_from_the_attempts_due_time_not_its_answer() -> None:
    """In-process a receiver's latency moves the clock: the next attempt still comes its
    delay after the failed one was due (croma: 60 s), not 60 s after the slow answer."""
    import httpx

    from jobmock.inprocess import mock as inprocess_mock

    hooks = resolve_spec("croma").webhooks
    assert hooks is not None
    with inprocess_mock("croma") as api, httpx.Client(base_url=api.base_url) as client:
        api.webhook_route("https://hooks.example.com/in", 500, 500, 200, latency=7.0)
        r = client.post("/v1/lookups/sicaac", headers={**api.auth_headers(), "Prefer": "wait=0"},
                        json={"document_type": "CC", "document_number": "1020304050",
                              "callback_url": "https://hooks.example.com/in"})
        api.force(r.json()["id"], "completed")
        api.run_until_idle()
        [d] = api.deliveries()
    sent = [a.sent_at or 0.0 for a in d.attempts]
    assert [b - a for a, b in itertools.pairwise(sent)] == list(hooks.retry.delays[:2])
    assert all((a.finished_at or 0) - (a.sent_at or 0) == 7.0 for a in d.attempts)


def test_jitter_spreads_delays_within_the_bound_and_repeats_by_seed(
        senders: list[SyncSender], webhook_receiver: WebhookReceiver) -> None:
    doc = replicate_doc()
    retry = dict(doc["x-jobmock"]["webhooks"]["retry"], jitter=0.5)
    spec = variant(doc, retry=retry)
    assert spec.webhooks is not None
    delays = spec.webhooks.retry.delays

    def gaps(seed: int) -> list[float]:
        mock = make(spec, senders, seed=seed)
        webhook_receiver.fail_always(status=500)
        job_id = predict(mock, webhook_receiver.url, ["completed"])
        settle(mock)
        [d] = book(mock).for_job(job_id)
        return [b.scheduled_at - a.scheduled_at for a, b in zip(d.attempts, d.attempts[1:],
                                                                 strict=False)]

    one, again, other = gaps(1), gaps(1), gaps(2)
    assert one == again
    assert one != other
    assert one != list(delays)
    for got, nominal in zip(one, delays, strict=True):
        assert nominal * 0.5 <= got <= nominal * 1.5


def test_redeliver_sends_a_delivery_again_with_its_id_and_body(
        senders: list[SyncSender], webhook_receiver: WebhookReceiver) -> None:
    mock = make(load_spec(REPLICATE), senders)
    job_id = predict(mock, webhook_receiver.url, ["completed"])
    settle(mock)
    [d] = book(mock).for_job(job_id)
    assert d.state == "delivered"
    webhook_receiver.fail_always(status=500)
    answer = call(mock, "POST", f"/_jobmock/webhooks/{d.id}/redeliver")
    assert answer.status == 200, answer.body
    listed = answer.json()
    assert [a["number"] for a in listed["attempts"]] == [1, 2]
    assert listed["attempts"][1]["redelivery"] is True and listed["attempts"][1]["status"] == 500
    assert listed["state"] == "exhausted"
    settle(mock)
    assert len(d.attempts) == 2  # a redelivery is tried once
    first, second = webhook_receiver.wait_for(2)
    assert first.body == second.body and first.header("webhook-id") == second.header("webhook-id")
    assert second.header("x-jobmock-attempt") == "2"
    assert call(mock, "POST", "/_jobmock/webhooks/whd_999999/redeliver").status == 404


def test_redeliver_refuses_a_delivery_still_in_progress(
        senders: list[SyncSender], webhook_receiver: WebhookReceiver) -> None:
    mock = make(load_spec(REPLICATE), senders)
    webhook_receiver.fail_always(status=500)
    job_id = predict(mock, webhook_receiver.url, ["completed"])
    mock.engine.force(job_id, "succeeded")
    mock.engine.run_due()
    [d] = book(mock).for_job(job_id)
    assert d.state == "retrying"
    answer = call(mock, "POST", f"/_jobmock/webhooks/{d.id}/redeliver")
    assert answer.status == 409 and "retrying" in answer.json()["error"]


# -- 3. no traffic to strangers ----------------------------------------------------------------


def test_record_mode_lists_every_attempt_and_sends_nothing(
        senders: list[SyncSender], webhook_receiver: WebhookReceiver) -> None:
    mock = make("cloro", senders)
    book(mock).configure(mode="record", record_status=500)
    policy = mock.spec.webhooks.retry if mock.spec.webhooks else None
    assert policy is not None
    body = with_pointer({"taskType": "CHATGPT", "payload": {"prompt": "x"}}, "/webhook/url",
                        webhook_receiver.url)
    headers = {**mock.spec.auth.headers_for(mock.spec.demo_tenants()[0][1]),
               "content-type": "application/json"}
    job_id = call(mock, "POST", "/v1/task", body, headers).json()["task"]["id"]
    settle(mock)
    [d] = book(mock).for_job(job_id)
    assert d.state == "exhausted" and [a.status for a in d.attempts] == [500] * policy.attempts
    sent = [a.sent_at or 0 for a in d.attempts]
    assert [b - a for a, b in itertools.pairwise(sent)] == list(policy.delays)
    with pytest.raises(TimeoutError):
        webhook_receiver.wait_for(1, timeout=0.3)


def test_off_mode_makes_no_deliveries(senders: list[SyncSender],
                                      webhook_receiver: WebhookReceiver) -> None:
    mock = make(load_spec(REPLICATE), senders)
    book(mock).configure(mode="off")
    predict(mock, webhook_receiver.url, ["start", "output", "completed"])
    settle(mock)
    assert book(mock).deliveries() == []


def test_an_attempt_outside_the_allowlist_is_refused_and_never_sent(
        senders: list[SyncSender], webhook_receiver: WebhookReceiver) -> None:
    mock = make(load_spec(REPLICATE), senders)
    book(mock).configure(allow_hosts=["hooks.example.com"])
    job_id = predict(mock, webhook_receiver.url, ["completed"])
    settle(mock)
    [d] = book(mock).for_job(job_id)
    assert d.state == "refused" and len(d.attempts) == 1
    assert (d.attempts[0].error or "").startswith("refused: 127.0.0.1 is not an allowed")
    with pytest.raises(TimeoutError):
        webhook_receiver.wait_for(1, timeout=0.3)
    book(mock).configure(allow_hosts=["hooks.example.com", "127.0.0.1"])
    allowed = predict(mock, webhook_receiver.url, ["completed"], 1)
    settle(mock)
    assert [x.state for x in book(mock).for_job(allowed)] == ["delivered"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"mode": "loud"}, "webhook mode must be one of"),
    ({"record_status": 42}, "100-599"),
    ({"allow_hosts": [" ", ""]}, "at least one host"),
])
def test_configure_refuses_what_it_cannot_do(senders: list[SyncSender], kwargs: dict[str, Any],
                                             message: str) -> None:
    mock = make(load_spec(REPLICATE), senders)
    with pytest.raises(ValueError, match=message):
        book(mock).configure(**kwargs)


# -- the spec -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "where"), [
    ({"signature": {"scheme": "standard-webhooks", "secret": "whsec_not base64!"}},
     "/x-jobmock/webhooks/signature/secret"),
    ({"signature": {"secret": "s"}}, "/x-jobmock/webhooks/signature"),
    ({"events": ["begun"]}, "/x-jobmock/webhooks/events"),
    ({"ordering": "random"}, "/x-jobmock/webhooks/ordering"),
    ({"retry": {"delays": [1], "jitter": 2}}, "/x-jobmock/webhooks/retry/jitter"),
])
def test_a_wrong_webhooks_block_fails_at_load_naming_the_key(change: dict[str, Any],
                                                             where: str) -> None:
    from jobmock.errors import SpecError

    with pytest.raises(SpecError) as caught:
        variant(replicate_doc(), **change)
    assert where in str(caught.value)


def test_cli_refuses_a_webhook_secret_the_scheme_cannot_use(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from jobmock.cli import main

    result = CliRunner().invoke(main, ["serve", str(REPLICATE), "--webhook-secret", "plain"])
    assert result.exit_code == 2
    assert "--webhook-secret" in result.output and "whsec_" in result.output
