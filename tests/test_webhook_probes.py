"""The receiver side (issue 14, item 7): forged, stale and duplicate deliveries sent on request
(``POST /_jobmock/webhooks/{id}/forge``), the verdicts ``webhook_receiver_verifies`` and
``webhook_receiver_deduplicates``, and delivery ids that never repeat across resets.

Standard Webhooks probes are checked with the independent ``standardwebhooks`` package: a
forged one fails its signature check, a stale one is "too old", a duplicate verifies under
the original's id. Receivers here are respx routes of the in-process mock, so they can act
on a webhook by calling the API (what the deduplication verdict watches), or a real
loopback :class:`~jobmock.receiver.WebhookReceiver` behind a served mock.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

import jobmock
from jobmock import Mock, VirtualClock, behaviour, load_spec
from jobmock.inprocess import InProcessMock
from jobmock.receiver import WebhookReceiver
from jobmock.testing import serve_mock

REPLICATE = Path(__file__).resolve().parent.parent / "examples" / "specs" / "replicate.yaml"
SPEC = load_spec(REPLICATE)
HOOK = "https://app.example.com/hooks/replicate"
NEXT = "https://app.example.com/hooks/next"
assert SPEC.webhooks is not None and SPEC.webhooks.signature is not None
SECRET = SPEC.webhooks.signature.secret
TOLERANCE = SPEC.webhooks.signature.tolerance
Answer = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def api() -> Iterator[InProcessMock]:
    # The clock starts at the wall clock's now, so the package's 5-minute window applies.
    with jobmock.mock(REPLICATE, clock=VirtualClock(time.time())) as mocked:
        yield mocked


def predict(api: InProcessMock, client: httpx.Client, url: str = HOOK) -> str:
    body = {"version": "v1", "input": {"text": "hi"}, "webhook": url,
            "webhook_events_filter": ["completed"]}
    r = client.post("/v1/predictions", json=body, headers=api.auth_headers())
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def delivered(api: InProcessMock, client: httpx.Client, answer: Answer) -> str:
    """A prediction whose completed webhook went to ``answer``; the delivery's id."""
    api.router.post(HOOK).mock(side_effect=answer)
    job_id = predict(api, client)
    api.force(job_id, "succeeded")
    [d] = api.deliveries(job_id)
    assert d.state == "delivered"
    return d.id


def forge(client: httpx.Client, delivery_id: str, kind: Any) -> httpx.Response:
    return client.post(f"/_jobmock/webhooks/{delivery_id}/forge", json={"kind": kind})


def recording(into: list[httpx.Request], status: Callable[[httpx.Request], int]) -> Answer:
    def answer(request: httpx.Request) -> httpx.Response:
        into.append(request)
        return httpx.Response(status(request))

    return answer


def first_ok(status: int) -> Answer:
    """A receiver that answers the first request 200 and every later one ``status``."""
    calls: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(200 if len(calls) == 1 else status)

    return answer


def verifying(into: list[httpx.Request]) -> Answer:
    """A receiver that checks each Standard Webhooks signature with the package: 400 if bad."""
    def status(request: httpx.Request) -> int:
        try:
            Webhook(SECRET).verify(request.content, dict(request.headers))
        except WebhookVerificationError:
            return 400
        return 200

    return recording(into, status)


# -- what each probe is, judged by the standardwebhooks package ---------------------------------


def test_each_probe_is_what_it_says_to_the_standardwebhooks_package(api: InProcessMock) -> None:
    got: list[httpx.Request] = []
    with httpx.Client(base_url=api.base_url) as client:
        delivery_id = delivered(api, client, recording(got, lambda r: 200))
        for kind in ("forged", "stale", "duplicate"):
            r = forge(client, delivery_id, kind)
            assert r.status_code == 200, r.text
            assert r.json()["state"] == "delivered"  # a probe leaves the delivery over
    original, forged, stale, duplicate = got
    verifier = Webhook(SECRET)
    verifier.verify(original.content, dict(original.headers))
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        verifier.verify(forged.content, dict(forged.headers))
    with pytest.raises(WebhookVerificationError, match="too old"):
        verifier.verify(stale.content, dict(stale.headers))
    assert int(original.headers["webhook-timestamp"]) - int(stale.headers["webhook-timestamp"]) \
        > TOLERANCE
    verifier.verify(duplicate.content, dict(duplicate.headers))  # a valid re-send
    assert duplicate.headers["webhook-id"] == original.headers["webhook-id"] == delivery_id
    assert duplicate.content == forged.content == stale.content == original.content
    # A forged or stale copy carries an id of its own, so deduplication can't hide it.
    ids = {r.headers["webhook-id"] for r in (original, forged, stale)}
    assert len(ids) == 3
    [d] = api.deliveries()
    assert [a.probe for a in d.attempts] == [None, "forged", "stale", "duplicate"]


def test_probes_are_listed_and_never_retried(api: InProcessMock) -> None:
    with httpx.Client(base_url=api.base_url) as client:
        delivery_id = delivered(api, client, first_ok(500))
        assert forge(client, delivery_id, "forged").status_code == 200
        api.run_until_idle()
        listed = client.get("/_jobmock/webhooks").json()["deliveries"]
    [d] = listed
    assert d["state"] == "delivered" and len(d["attempts"]) == 2
    assert d["attempts"][1]["probe"] == "forged" and d["attempts"][1]["status"] == 500


@pytest.mark.parametrize(("kind", "status", "needle"), [
    ("bogus", 400, "kind must be one of forged, stale, duplicate"),
    (None, 400, "kind must be one of"),
    (["forged"], 400, "kind must be one of"),
])
def test_a_bad_kind_is_a_400(api: InProcessMock, kind: Any, status: int, needle: str) -> None:
    with httpx.Client(base_url=api.base_url) as client:
        delivery_id = delivered(api, client, lambda r: httpx.Response(200))
        r = forge(client, delivery_id, kind)
    assert r.status_code == status and needle in r.json()["error"]


def test_what_cannot_be_sent_is_refused(api: InProcessMock) -> None:
    with httpx.Client(base_url=api.base_url) as client:
        assert forge(client, "whd_nothing_000001", "forged").status_code == 404
        api.router.post(HOOK).mock(return_value=httpx.Response(500))
        job_id = predict(api, client)
        api.force(job_id, "succeeded")
        [d] = api.deliveries(job_id)
        r = forge(client, d.id, "duplicate")
        assert r.status_code == 409 and "retrying" in r.json()["error"]
        api.run_until_idle()
        assert d.state == "exhausted"
        api.mock.webhooks.configure(mode="record")  # type: ignore[union-attr]
        r = forge(client, d.id, "duplicate")
        assert r.status_code == 409 and "'record' mode" in r.json()["error"]


def test_croma_refuses_a_stale_probe_and_a_forged_one_of_an_unsigned_tenant() -> None:
    hook = "https://app.example.com/hooks/croma"
    person = {"document_type": "CC", "document_number": "1020304050", "callback_url": hook}
    with jobmock.mock("croma") as api, httpx.Client(base_url=api.base_url) as client:
        api.webhook_route(hook)
        ids = []
        for tenant in (0, 1):  # croma signs org_a's callbacks only
            ids.append(client.post("/v1/lookups/sicaac", json=person, headers={
                **api.auth_headers(tenant), "Prefer": "wait=0"}).json()["id"])
            api.force(ids[-1], "completed")
        signed, unsigned = (api.deliveries(i)[0] for i in ids)
        r = forge(client, signed.id, "stale")
        assert r.status_code == 409 and "signs no timestamp" in r.json()["error"]
        r = forge(client, unsigned.id, "forged")
        assert r.status_code == 409 and "not signed" in r.json()["error"]
        assert forge(client, unsigned.id, "duplicate").status_code == 200
        assert forge(client, signed.id, "forged").status_code == 200


# -- the verdicts ---------------------------------------------------------------------------------


def test_a_verifying_receiver_passes_and_one_that_trusts_everything_is_flagged(
        api: InProcessMock) -> None:
    got: list[httpx.Request] = []
    with httpx.Client(base_url=api.base_url) as client:
        delivery_id = delivered(api, client, verifying(got))
        for kind in ("forged", "stale"):
            forge(client, delivery_id, kind)
        api.assert_webhook_receiver_verifies()
        api.assert_webhooks_acknowledged()  # the 400s to probes are not unacknowledged webhooks
        assert [r.headers.get("webhook-id") == delivery_id for r in got] == [True, False, False]
        api.router.post(HOOK).mock(return_value=httpx.Response(204))
        for kind in ("forged", "stale"):
            forge(client, delivery_id, kind)
        with pytest.raises(behaviour.AcceptedForgedWebhook) as caught:
            api.assert_webhook_receiver_verifies()
    forged, stale = caught.value.findings
    assert "a forged copy of webhook" in forged.message and "answered 204 (accepted it)" in forged.message
    assert "past the spec's tolerance" in stale.message
    assert forged.delivery_id == delivery_id


@pytest.mark.parametrize("status", [500, 302])
def test_a_probe_answered_other_than_4xx_is_flagged(api: InProcessMock, status: int) -> None:
    with httpx.Client(base_url=api.base_url) as client:
        delivery_id = delivered(api, client, first_ok(status))
        forge(client, delivery_id, "forged")
        forge(client, delivery_id, "duplicate")
    found = behaviour.find(api.mock, "webhook_receiver_verifies", "webhook_receiver_deduplicates")
    [verifies] = found["webhook_receiver_verifies"]
    [dedup] = found["webhook_receiver_deduplicates"]
    assert f"was answered {status}" in verifies.message
    assert f"was answered {status}" in dedup.message and "acknowledges it (2xx)" in dedup.message


def test_a_receiver_that_processes_a_duplicate_is_flagged_one_that_deduplicates_passes(
        api: InProcessMock) -> None:
    seen: set[str] = set()
    dedupe = [True]
    api.webhook_route(NEXT)
    with httpx.Client(base_url=api.base_url) as client:
        def answer(request: httpx.Request) -> httpx.Response:
            msg_id = request.headers["webhook-id"]
            if dedupe[0] and msg_id in seen:
                return httpx.Response(200)
            seen.add(msg_id)
            client.get(f"/v1/predictions/{request.read() and json.loads(request.content)['id']}",
                       headers=api.auth_headers())  # processing: read the prediction
            return httpx.Response(200)

        delivery_id = delivered(api, client, answer)
        forge(client, delivery_id, "duplicate")
        api.assert_webhook_receiver_deduplicates()
        dedupe[0] = False
        forge(client, delivery_id, "duplicate")
        with pytest.raises(behaviour.ProcessedDuplicateWebhook) as caught:
            api.assert_webhook_receiver_deduplicates()
    [finding] = caught.value.findings
    assert "was processed again" in finding.message and "GET /v1/predictions/" in finding.message
    assert len(finding.requests) == 2  # the request made for the original, and the repeat


def test_where_processing_cannot_be_seen_the_report_says_so(api: InProcessMock) -> None:
    with httpx.Client(base_url=api.base_url) as client:
        delivery_id = delivered(api, client, lambda r: httpx.Response(200))
        forge(client, delivery_id, "duplicate")
        report = api.report()
    row = next(c for c in report["checks"] if c["name"] == "webhook_receiver_deduplicates")
    assert row["passed"] is True
    [note] = row["notes"]
    assert delivery_id in note and "can't be seen over HTTP" in note


def answered(client: httpx.Client, count: int) -> None:
    """Until the served mock has recorded ``count`` answered attempts (each read is a round
    trip: the sender records an answer once the receiver's reply is read)."""
    for _ in range(2000):
        [d] = client.get("/_jobmock/webhooks").json()["deliveries"]
        if sum(1 for a in d["attempts"] if a["finished_at"] is not None) >= count:
            return
    raise AssertionError(f"{count} answered attempts were not recorded")


def test_probes_over_a_served_mock_reach_a_real_receiver_and_are_judged() -> None:
    with WebhookReceiver() as receiver, serve_mock(
            SPEC, clock=VirtualClock(time.time()), allow_private_callbacks=True) as server, \
            httpx.Client(base_url=server.url, timeout=10) as client:
        body = {"version": "v1", "input": {"text": "hi"}, "webhook": receiver.url,
                "webhook_events_filter": ["completed"]}
        credential = SPEC.demo_tenants()[0][1]
        job_id = client.post("/v1/predictions", json=body,
                             headers=SPEC.auth.headers_for(credential)).json()["id"]
        client.post(f"/_jobmock/jobs/{job_id}/outcome", json={"status": "succeeded"})
        [original] = receiver.wait_for(1)
        delivery_id = original.header("webhook-id")
        assert delivery_id is not None
        answered(client, 1)
        receiver.fail_next(1, status=401)  # refuses the forged one; accepts the stale one
        for n, kind in enumerate(("forged", "stale"), start=2):
            assert forge(client, delivery_id, kind).status_code == 200
            answered(client, n)
        report = client.get("/_jobmock/report").json()
    _, forged, stale = receiver.received
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(forged.body, forged.headers)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(SECRET).verify(stale.body, stale.headers)
    [finding] = [f for f in report["findings"] if f["check"] == "webhook_receiver_verifies"]
    assert "a stale copy" in finding["message"] and "answered 200" in finding["message"]


# -- delivery ids never repeat across resets ------------------------------------------------------


def delivery_ids(mock: Mock, runs: int) -> list[str]:
    """Ids of one delivery per run, with a reset between runs (record mode: nothing sent)."""
    assert mock.webhooks is not None
    mock.webhooks.configure(mode="record")
    ids = []
    for _ in range(runs):
        job = mock.engine.submit(SPEC.submit_operations[0].operation_id, tenant="org_a",
                                 body={"webhook": HOOK, "webhook_events_filter": ["completed"]},
                                 base_url="http://mock.test", callback_url=HOOK)[0]
        mock.engine.force(job.id, "succeeded")
        mock.engine.run_due()
        ids += [d.id for d in mock.webhooks.for_job(job.id)]
        mock.reset()
    return ids


def test_delivery_ids_never_repeat_across_resets_and_differ_by_seed() -> None:
    first = delivery_ids(Mock(SPEC, seed=1), 3)
    assert len(first) == len(set(first)) == 3
    again = delivery_ids(Mock(SPEC, seed=1), 3)
    assert again == first  # a pinned seed repeats a run, ids included (as job ids do)
    other = delivery_ids(Mock(SPEC, seed=2), 3)
    assert not set(other) & set(first)  # a fresh start draws a fresh seed: fresh ids
