"""Job retention: a terminal job is kept ``Engine.retain`` clock seconds, then forgotten.

Its polls answer the spec's not-found; the store, the heap and every index (idempotency
keys, gates, waiting queues, watches) and the webhook deliveries of the job shrink with
it; so what the engine holds stays bounded by the rate of submits, not their number.
Sizes are counted (``Engine.footprint``); nothing here measures time or memory.
"""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from apihelpers import ApiHelpers
from jobmock import Mock, VirtualClock, resolve_spec
from jobmock.asgi import create_app
from jobmock.spec import ApiSpec


def make(api: str, retain: float, **options: Any) -> Mock:
    mock = Mock(resolve_spec(api), clock=VirtualClock(), seed=3, **options)
    mock.engine.retain = retain
    return mock


def longest(spec: ApiSpec) -> float:
    return spec.timing.queued[1] + spec.timing.running[1]


def test_footprint_stays_bounded_while_five_thousand_jobs_come_and_go() -> None:
    spec = resolve_spec("croma")
    op = spec.submit_operations[0]
    retain, rate, total = 60.0, 10, 5000  # 10 jobs a clock second, kept a minute
    mock = make("croma", retain)
    engine = mock.engine
    # Alive at once: those submitted in the last (retain + longest life) seconds.
    bound = rate * (retain + longest(spec) + 1)
    peak: dict[str, int] = {}
    for i in range(total):
        engine.submit(op, tenant="org_a", body=dict(op.body_example))
        if i % rate == rate - 1:
            engine.advance_clock(1.0)
            for key, value in engine.footprint().items():
                peak[key] = max(peak.get(key, 0), value)
    assert total > 5 * bound  # forgetting is what keeps it below
    assert peak["jobs"] <= bound, peak
    assert peak["heap"] <= 4 * bound, peak  # a start, a finish, a forget a job, at most
    engine.advance_clock(retain + longest(spec) + 1)
    assert engine.footprint() == {"jobs": 0, "heap": 0, "idempotency_keys": 0, "gates": 0,
                                  "waiting": 0, "watched": 0}


def test_without_retention_every_job_is_kept() -> None:
    spec = resolve_spec("croma")
    op = spec.submit_operations[0]
    mock = make("croma", 0)
    for _ in range(200):
        mock.engine.submit(op, tenant="org_a", body=dict(op.body_example))
    mock.engine.advance_clock(365 * 86400)
    assert mock.engine.footprint()["jobs"] == 200
    assert all(mock.engine.is_terminal(job) for job in mock.engine.jobs())


def test_a_forgotten_job_polls_as_the_specs_not_found() -> None:
    spec = resolve_spec("croma")
    helpers = ApiHelpers(spec)
    op = spec.submit_operations[0]
    mock = make("croma", 600)
    with TestClient(create_app(mock), base_url="http://mock.test") as client:
        r = client.post(op.path, json=op.body_example,
                        headers={**helpers.creds(0), "Prefer": "wait=0"})
        job_id = r.headers["X-Job-Id"]
        assert client.post(f"/_jobmock/jobs/{job_id}/outcome",
                           json={"status": "completed"}).status_code == 200
        ended = mock.engine.get(job_id)
        assert ended is not None and ended.completed_at is not None
        client.post("/_jobmock/clock/advance", json={"seconds": 599})
        assert client.get(helpers.status_url(job_id), headers=helpers.creds(0)).status_code == 200
        client.post("/_jobmock/clock/advance", json={"seconds": 2})
        gone = client.get(helpers.status_url(job_id), headers=helpers.creds(0))
        listed = client.get("/_jobmock/jobs").json()["jobs"]
    assert gone.status_code == spec.errors["not_found"].status
    assert gone.json() == helpers.error_body("not_found")
    assert listed == []
    assert mock.engine.get(job_id) is None


def test_a_job_that_is_not_terminal_is_never_forgotten() -> None:
    spec = resolve_spec("croma")
    op = spec.submit_operations[0]
    mock = make("croma", 10)
    mock.engine.set_advance(mock.engine.advance.__class__("manual"))
    job, _ = mock.engine.submit(op, tenant="org_a", body=dict(op.body_example))
    mock.engine.advance_clock(10_000)
    assert mock.engine.get(job.id) is job
    mock.engine.force(job.id, "failed")
    mock.engine.advance_clock(9)
    assert mock.engine.get(job.id) is job
    mock.engine.advance_clock(1)
    assert mock.engine.get(job.id) is None


def test_an_idempotency_key_is_forgotten_with_its_job() -> None:
    spec = resolve_spec("cloro")
    op = spec.submit_operations[0]
    mock = make("cloro", 60)
    body = {"taskType": "CHATGPT", "payload": {"prompt": "hi"}, "idempotencyKey": "k-1"}
    first, created = mock.engine.submit(op, tenant="org_a", body=body)
    again, created_again = mock.engine.submit(op, tenant="org_a", body=body)
    assert created and not created_again and again is first
    assert mock.engine.footprint()["idempotency_keys"] == 1
    mock.engine.advance_clock(longest(spec) + 61)
    assert mock.engine.get(first.id) is None
    assert mock.engine.footprint()["idempotency_keys"] == 0
    fresh, created = mock.engine.submit(op, tenant="org_a", body=body)
    assert created and fresh.id != first.id


def test_a_gate_is_dropped_when_its_last_run_ends() -> None:
    spec = resolve_spec("bronid")
    op = spec.submit_operations[0]
    mock = make("bronid", 60)
    for trace in ("t1", "t2", "t3"):
        mock.engine.submit(op, tenant="org_a", params={"trace": trace})
    assert mock.engine.footprint()["gates"] == 3
    mock.engine.advance_clock(longest(spec) + 1)
    assert mock.engine.footprint()["gates"] == 0
    mock.engine.advance_clock(60)
    assert mock.engine.footprint()["jobs"] == 0


def submit_with_callback(mock: Mock) -> str:
    spec = mock.spec
    assert spec.webhooks is not None
    op = spec.submit_operations[0]
    body = {**op.body_example, "callback_url": "http://127.0.0.1:9/hook"}
    job, _ = mock.engine.submit(op, tenant="org_a", body=body, callback_url=body["callback_url"])
    return job.id


def test_the_deliveries_of_a_forgotten_job_are_forgotten() -> None:
    mock = make("croma", 60, allow_private_callbacks=True)
    book = mock.webhooks
    assert book is not None
    book.set_sender(lambda delivery, attempt: book.report(delivery, attempt, status=200))
    job_id = submit_with_callback(mock)
    mock.engine.advance_clock(longest(mock.spec) + 1)
    assert [d.state for d in book.for_job(job_id)] == ["delivered"]
    mock.engine.advance_clock(60)
    assert book.for_job(job_id) == [] and book.deliveries() == []


def test_a_delivery_in_flight_when_its_job_is_forgotten_ends_then_goes() -> None:
    mock = make("croma", 1, allow_private_callbacks=True)
    book = mock.webhooks
    assert book is not None
    held: list[Any] = []
    book.set_sender(lambda delivery, attempt: held.append((delivery, attempt)))
    job_id = submit_with_callback(mock)
    mock.engine.advance_clock(longest(mock.spec) + 2)
    assert mock.engine.get(job_id) is None  # forgotten while its webhook is being sent
    (delivery, attempt), = held
    assert book.deliveries() == [delivery]
    book.report(delivery, attempt, status=500)  # a retry is still due: kept
    assert book.deliveries() == [delivery] and delivery.state == "retrying"
    mock.engine.advance_clock(10 * sum(delivery.policy.delays) + 1)
    for d, a in held[1:]:
        book.report(d, a, status=200)
    assert delivery.state == "delivered"
    assert book.deliveries() == []
