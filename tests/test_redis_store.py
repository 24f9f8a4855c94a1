"""The Redis store: replicas of one mock on a real ``redis-server`` (``.ci/run`` installs it).

- The snapshot: a mock's shared state restored into another mock of the spec gives the
  same jobs and the same future; bytes that would build any other class are refused.
- Two ``jobmock serve --store redis://`` processes are one mock: a job submitted on one is
  polled on the other, a clock advanced on either moves both, each transition fires once
  (one webhook per job event), an inline wait held on one is answered when the other
  finishes its job, sessions are shared too, and a restarted replica joins without
  resetting anything or reissuing an id.
- kill -9 of one replica in the middle of 300 jobs with webhooks being retried: no job is
  lost, every attempt the mock records reached the receiver and nothing it does not
  record did, every delivery ends on the survivor, and the only attempt sent twice is
  one the dead replica had in flight (re-sent under the same delivery id and number).
- The contract suite passes for all five APIs with requests alternating between two
  replicas (a round-robin proxy in front).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import pickle
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from apihelpers import ApiHelpers
from jobmock import Mock, bundled_names, resolve_spec
from jobmock.clock import VirtualClock
from jobmock.dispatch import Request
from jobmock.receiver import WebhookReceiver
from jobmock.redisstore import RedisStore, StoreUnavailable
from jobmock.replicas import RedisServer, RoundRobinProxy
from jobmock.snapshot import Snapshot, SnapshotError, capture, restore
from jobmock.testing import ServeProcess
from webhookhelpers import ATTEMPT_HEADER, DELIVERY_HEADER, with_pointer

pytestmark = pytest.mark.live

GUARD = 150.0  # seconds: a bound against a hang, not a measurement


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with RedisServer() as server:
        yield server.url


def _submit(mock: Mock, body: Any, creds: dict[str, str]) -> None:
    op = mock.spec.submit_operations[0]
    headers = {k.lower(): v for k, v in creds.items()}
    headers.update({"content-type": "application/json", "prefer": "wait=0"})
    mock.dispatch(Request(method=op.method.upper(), path=op.path, query={}, headers=headers,
                          body=json.dumps(body).encode(), base_url="http://127.0.0.1"))


@pytest.mark.parametrize("api", bundled_names())
def test_a_restored_snapshot_has_the_same_jobs_and_the_same_future(api: str) -> None:
    spec = resolve_spec(api)
    helpers = ApiHelpers(spec)
    first, second = Mock(spec, clock=VirtualClock(), seed=1), Mock(spec, clock=VirtualClock(),
                                                                   seed=2)
    for _ in range(4):
        _submit(first, spec.submit_operations[0].body_example, helpers.creds(0))
    restore(second, capture(first))
    assert [j.as_dict(spec) for j in second.engine.jobs()] == \
        [j.as_dict(spec) for j in first.engine.jobs()]
    for mock in (first, second):
        mock.engine.advance_clock(7200)
        _submit(mock, spec.submit_operations[0].body_example, helpers.creds(0))
    assert [j.as_dict(spec) for j in second.engine.jobs()] == \
        [j.as_dict(spec) for j in first.engine.jobs()]  # same draws: same ids and outcomes
    assert second.clock.now() == first.clock.now()


def test_a_snapshot_that_would_build_another_class_is_refused() -> None:
    spec = resolve_spec("croma")
    mock = Mock(spec, clock=VirtualClock())
    buffer = io.BytesIO()
    pickle.dump({"spec": "croma", "x": os.system}, buffer)
    with pytest.raises(SnapshotError, match=r"may not build posix\.system"):
        restore(mock, Snapshot(buffer.getvalue()))
    with pytest.raises(SnapshotError, match="not a jobmock snapshot"):
        restore(mock, Snapshot(b"garbage"))
    good = capture(mock)
    with pytest.raises(SnapshotError, match="not one"):  # a record that is not a job
        restore(mock, Snapshot(good.core, {"x": pickle.dumps({"id": "x"})}))
    other = Mock(resolve_spec("cloro"), clock=VirtualClock())
    with pytest.raises(SnapshotError):
        restore(mock, capture(other))


def test_a_replica_stalled_past_its_lease_cannot_overwrite_what_another_did(
        redis_url: str) -> None:
    spec = resolve_spec("croma")
    helpers = ApiHelpers(spec)
    body = spec.submit_operations[0].body_example

    async def scenario() -> tuple[list[str], list[str]]:
        stores = [RedisStore(redis_url, lease=0.2), RedisStore(redis_url, lease=0.2)]
        mocks = [Mock(spec, clock=VirtualClock(), seed=1), Mock(spec, clock=VirtualClock(),
                                                                seed=1)]
        a, b = (s.attach(m, "stall-test") for s, m in zip(stores, mocks, strict=True))
        async with a.turn():
            mocks[0].reset()

        async def stalled() -> None:
            async with a.turn():
                _submit(mocks[0], body, helpers.creds(0))
                await asyncio.sleep(0.6)  # past the lock's lease: b takes the lock meanwhile

        task = asyncio.create_task(stalled())
        await asyncio.sleep(0.3)
        async with b.turn():
            _submit(mocks[1], body, helpers.creds(1))
        with pytest.raises(StoreUnavailable, match="moved on"):
            await task
        async with a.turn():  # a reloads: its dropped turn is gone, b's job is there
            pass
        result = ([j.id for j in mocks[0].engine.jobs()], [j.id for j in mocks[1].engine.jobs()])
        for store in stores:
            await store.aclose()
        return result

    on_a, on_b = asyncio.run(scenario())
    assert on_a == on_b and len(on_b) == 1


def _serve(api: str, redis_url: str, *args: str) -> ServeProcess:
    return ServeProcess(api, "--store", redis_url, *args)


def test_two_replicas_are_one_mock(redis_url: str) -> None:
    spec = resolve_spec("croma")
    helpers = ApiHelpers(spec)
    op = spec.submit_operations[0]
    args = ("--clock", "virtual", "--seed", "3", "--webhooks", "record",
            "--allow-private-callbacks")
    receiver_url = "http://127.0.0.1:9/hook"  # recorded, never sent
    body = with_pointer(dict(op.body_example), spec.webhooks.url_pointer, receiver_url) \
        if spec.webhooks is not None else op.body_example
    with _serve("croma", redis_url, *args) as a, _serve("croma", redis_url, *args) as b, \
            httpx.Client(timeout=30) as http:
        assert http.get(a.url + "/_jobmock/health").json()["store"]["kind"] == "redis"
        http.post(a.url + "/_jobmock/reset", json={})
        ids = []
        for i, server in enumerate([a, b] * 5):
            r = http.post(server.url + op.path, json=body,
                          headers={**helpers.creds(i % 2), "Prefer": "wait=0"})
            assert r.status_code == 202, r.text
            ids.append(helpers.job_id(op, r))
        assert len(set(ids)) == 10  # one id sequence across both
        polled = http.get(b.url + helpers.status_url(ids[0]), headers=helpers.creds(0))
        assert polled.status_code == 200 and polled.json()["id"] == ids[0]
        moved = http.post(b.url + "/_jobmock/clock/advance", json={"seconds": 3600}).json()
        assert http.get(a.url + "/_jobmock/clock").json()["epoch"] == moved["epoch"]
        for server in (a, b):
            jobs = http.get(server.url + "/_jobmock/jobs").json()["jobs"]
            assert [j["id"] for j in jobs] == ids
            assert all(j["role"] in ("completed", "failed") for j in jobs), jobs
        deliveries = http.get(a.url + "/_jobmock/webhooks").json()["deliveries"]
        assert sorted(d["job_id"] for d in deliveries) == sorted(ids)  # each event once
        session = {"X-Jobmock-Session": "shared-s"}
        r = http.post(a.url + op.path, json=op.body_example,
                      headers={**helpers.creds(0), "Prefer": "wait=0", **session})
        in_session = helpers.job_id(op, r)
        seen = http.get(b.url + "/_jobmock/jobs", headers=session).json()["jobs"]
        assert [j["id"] for j in seen] == [in_session]
        assert len(http.get(b.url + "/_jobmock/jobs").json()["jobs"]) == 10


def test_an_inline_wait_held_on_one_replica_ends_when_the_other_finishes_the_job(
        redis_url: str) -> None:
    spec = resolve_spec("croma")
    helpers = ApiHelpers(spec)
    op = spec.submit_operations[0]
    args = ("--clock", "virtual", "--seed", "4")
    with _serve("croma", redis_url, *args) as a, _serve("croma", redis_url, *args) as b:
        httpx.post(a.url + "/_jobmock/reset", json={})

        async def scenario() -> tuple[httpx.Response, float]:
            async with httpx.AsyncClient(timeout=GUARD) as http:
                held = asyncio.create_task(http.post(
                    a.url + op.path, json=op.body_example,
                    headers={**helpers.creds(0), "Prefer": "wait=55"}))
                for _ in range(400):
                    if (await http.get(b.url + "/_jobmock/jobs")).json()["jobs"]:
                        break
                    await asyncio.sleep(0.025)
                assert not held.done()  # held on a: the virtual clock has not moved
                started = time.monotonic()
                await http.post(b.url + "/_jobmock/clock/advance", json={"seconds": 40})
                answer = await held
                return answer, time.monotonic() - started

        answer, took = asyncio.run(scenario())
    assert answer.status_code == 200, answer.text  # croma: a finished job inside the wait
    assert answer.json()["data"] is not None  # croma's finished envelope: the job's data
    print(f"\ninline wait on replica A answered {took * 1000:.0f} ms after B's clock move")


def test_a_restarted_replica_joins_without_resetting_or_reissuing_ids(redis_url: str) -> None:
    spec = resolve_spec("cloro")
    helpers = ApiHelpers(spec)
    op = spec.submit_operations[0]
    args = ("--clock", "virtual")  # a random seed per start: ids come from the shared state
    body = {k: v for k, v in op.body_example.items() if k != "idempotencyKey"}  # 5 jobs, not 1
    with httpx.Client(timeout=30) as http:
        with _serve("cloro", redis_url, *args) as first:
            http.post(first.url + "/_jobmock/reset", json={})
            ids = {helpers.job_id(op, http.post(first.url + op.path, json=body,
                                                headers=helpers.creds(0))) for _ in range(5)}
            assert len(ids) == 5
            epoch = http.post(first.url + "/_jobmock/clock/advance",
                              json={"seconds": 90}).json()["epoch"]
        with _serve("cloro", redis_url, *args) as again:
            jobs = http.get(again.url + "/_jobmock/jobs").json()["jobs"]
            assert {j["id"] for j in jobs} == ids
            assert http.get(again.url + "/_jobmock/clock").json()["epoch"] == epoch
            more = {helpers.job_id(op, http.post(again.url + op.path, json=body,
                                                 headers=helpers.creds(0))) for _ in range(5)}
    assert not more & ids


def resent_keys(deliveries: list[dict[str, Any]]) -> set[tuple[str, int]]:
    """The attempts a replica sent again because the one sending them stopped."""
    return {(d["id"], a["number"]) for d in deliveries for a in d["attempts"] if a["resent"]}


def _settled(http: httpx.Client, base: str, count: int) -> tuple[list[dict[str, Any]], bool]:
    jobs = http.get(base + "/_jobmock/jobs", params={"limit": 1000}).json()["jobs"]
    deliveries = http.get(base + "/_jobmock/webhooks").json()["deliveries"]
    done = (len(jobs) == count and all(j["role"] in ("completed", "failed") for j in jobs)
            and len(deliveries) == count
            and all(d["state"] in ("delivered", "exhausted") for d in deliveries))
    return deliveries, done


def test_kill_9_of_a_replica_mid_run_loses_no_job_and_no_webhook_attempt(
        redis_url: str) -> None:
    spec = resolve_spec("cloro")
    assert spec.webhooks is not None
    helpers = ApiHelpers(spec)
    op = spec.submit_operations[0]
    jobs = 300
    args = ("--clock", "real", "--speed", "50", "--allow-private-callbacks",
            "--webhook-timeout", "5", "--retain", "0")
    with WebhookReceiver() as receiver, _serve("cloro", redis_url, *args) as a, \
            _serve("cloro", redis_url, *args) as b, RoundRobinProxy([a.url, b.url]) as proxy, \
            httpx.Client(timeout=30) as http:
        http.post(a.url + "/_jobmock/reset", json={})
        receiver.fail_next(jobs * 3, status=500)  # the first 900 answers fail: retries
        body = with_pointer({k: v for k, v in op.body_example.items() if k != "idempotencyKey"},
                            spec.webhooks.url_pointer, receiver.url)
        ids = []
        t0 = time.monotonic()
        for i in range(jobs):
            r = http.post(proxy.url + op.path, json=body, headers=helpers.creds(i % 2))
            assert r.status_code in (200, 201, 202), r.text
            ids.append(helpers.job_id(op, r))
        receiver.wait_for(jobs, timeout=GUARD)  # webhooks under way, most mid-schedule
        assert a.proc is not None
        a.proc.kill()  # SIGKILL: no goodbye
        a.proc.wait(timeout=10)
        killed_at = len(receiver.received)
        t_kill = time.monotonic() - t0
        deadline = time.monotonic() + GUARD
        deliveries, done = _settled(http, b.url, jobs)
        while not done:
            assert time.monotonic() < deadline, Counter(d["state"] for d in deliveries)
            time.sleep(0.5)
            deliveries, done = _settled(http, b.url, jobs)
        listed = {j["id"] for j in http.get(b.url + "/_jobmock/jobs",
                                            params={"limit": 1000}).json()["jobs"]}
        t_settled = time.monotonic() - t0
        time.sleep(1.0)  # the last answers' requests are all in
        got = Counter((r.header(DELIVERY_HEADER), int(r.header(ATTEMPT_HEADER) or 0))
                      for r in receiver.received)
    assert listed == set(ids), "a job the mock acknowledged is gone"
    recorded = Counter((d["id"], a_["number"]) for d in deliveries for a_ in d["attempts"])
    assert sum(recorded.values()) > 2 * jobs  # retries happened
    lost = [k for k in recorded if k not in got]
    stranger = [k for k in got if k not in recorded]
    twice = {k: n for k, n in got.items() if n > 1}
    print(f"\nkill -9 at {t_kill:.1f} s, after {killed_at} of {sum(recorded.values())} attempts "
          f"(settled at {t_settled:.1f} s): {len(listed)} jobs kept, {len(lost)} attempts lost, "
          f"{len(twice)} sent twice, {len(resent_keys(deliveries))} taken over")
    assert not lost, f"attempts recorded but never received: {lost[:5]}"
    assert not stranger, f"attempts received but not recorded: {stranger[:5]}"
    assert set(twice) <= resent_keys(deliveries), "an attempt was sent twice that no replica had to take over"


def test_the_contract_suite_passes_with_requests_alternating_between_two_replicas(
        redis_url: str) -> None:
    args = ("--clock", "virtual", "--seed", "1", "--allow-private-callbacks")
    failures = []
    for api in bundled_names():
        with _serve(api, redis_url, *args) as a, _serve(api, redis_url, *args) as b, \
                RoundRobinProxy([a.url, b.url]) as proxy:
            run = subprocess.run(
                [sys.executable, "-m", "jobmock.cli", "contract", api, "--base-url", proxy.url,
                 "--examples", "4", "-p", "no:cacheprovider"], capture_output=True, text=True,
                timeout=600,
                stdin=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "120"})
            if run.returncode != 0:
                failures.append(f"{api}: {run.stdout[-2500:]}")
            assert min(proxy.served) > 50  # both replicas answered many requests
    assert not failures, "\n".join(failures)
