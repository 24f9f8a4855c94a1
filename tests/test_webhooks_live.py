"""Webhooks from a live ``jobmock serve`` process to a faulty loopback receiver.

The server runs cloro on a virtual clock (``--clock virtual --allow-private-callbacks
--webhook-timeout 0.3``); this test moves its clock through the control plane, waits for
the attempts in flight by polling ``GET /_jobmock/webhooks`` (bounded), and checks the
journal against what the receiver (the ``webhook_receiver`` fixture) actually got.
Expected values (retry delays, attempt count, status roles, where the callback URL goes)
are read from the spec.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import webhookhelpers as wh
from jobmock import resolve_spec
from jobmock.ports import free_port
from jobmock.receiver import WebhookReceiver
from jobmock.spec import ApiSpec

pytestmark = pytest.mark.live

API = "cloro"
JOBS = 1000


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """A ``jobmock serve cloro --clock virtual ...`` process; yields its base URL."""
    port = free_port()
    log = (tmp_path / "server.log").open("wb")
    cmd = [sys.executable, "-m", "jobmock.cli", "serve", API, "--clock", "virtual",
           "--allow-private-callbacks", "--webhook-timeout", str(wh.WEBHOOK_TIMEOUT),
           "--port", str(port), "--seed", "5",
           "--retain", "0"]  # keep every job: the journal is reconciled over the whole run
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                log.flush()
                pytest.fail(f"jobmock serve exited with {proc.returncode}: "
                            f"{(tmp_path / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(base + "/_jobmock/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("jobmock serve did not answer /_jobmock/health within 60 s")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def _body(spec: ApiSpec, i: int, url: str) -> dict[str, Any]:
    assert spec.webhooks is not None
    return wh.with_pointer({"taskType": "CHATGPT", "payload": {"prompt": f"prompt {i}"}},
                           spec.webhooks.url_pointer, url)


def _settle(client: httpx.Client, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Poll the journal until no attempt is in flight (bounded); return the deliveries.

    Each poll has the server list every delivery (about 2 MB by the end), which takes its
    event loop away from the sender, so polls back off.
    """
    deadline = time.monotonic() + timeout
    pause = 0.1
    while True:
        deliveries: list[dict[str, Any]] = client.get("/_jobmock/webhooks").json()["deliveries"]
        sending = [d["id"] for d in deliveries if d["state"] in ("pending", "sending")]
        if not sending:
            return deliveries
        if time.monotonic() > deadline:
            pytest.fail(f"{len(sending)} deliveries still in flight after {timeout} s: {sending[:5]}")
        time.sleep(pause)
        pause = min(2 * pause, 1.0)


def _check_receiver(receiver: WebhookReceiver,
                    deliveries: list[dict[str, Any]]) -> tuple[list[Any], int]:
    """The receiver got exactly the attempts the journal lists (bar never-connected ones)."""
    answers = {(d["id"], a["number"]): (a["error"], a["status"]) for d in deliveries for a in d["attempts"]}
    return wh.check_receiver_saw(receiver, Counter(answers.keys()), answers, wait=10)


def test_thousand_cloro_jobs_against_a_live_server_and_a_faulty_receiver(
    server: str, webhook_receiver: WebhookReceiver
) -> None:
    """Fails until BUG-2 is fixed (attempts recorded as ``timeout: PoolTimeout`` that were
    never sent: the AsyncSender's pool is smaller than its concurrency)."""
    started = time.perf_counter()
    spec = resolve_spec(API)
    assert spec.webhooks is not None
    policy = spec.webhooks.retry
    delays = list(policy.delays)
    roles = spec.lifecycle.states
    plan = wh.load_faults(webhook_receiver, JOBS * policy.attempts, seed=77)
    headers = spec.auth.headers_for(spec.demo_tenants()[0][1])
    op = spec.submit_operations[0]
    # while jobs still run, step the clock far enough that many of them end per step
    job_step = 10 * (spec.timing.queued[1] + spec.timing.running[1])

    with httpx.Client(base_url=server, timeout=30) as client:
        job_ids: list[str] = []
        for i in range(JOBS):
            response = client.post(op.path, json=_body(spec, i, webhook_receiver.url),
                                   headers=headers)
            assert response.status_code == 200, response.text
            job_ids.append(response.json()["task"]["id"])
        assert len(set(job_ids)) == JOBS
        submitted = time.perf_counter()

        rounds = 0
        for rounds in range(1, 10 * JOBS):  # noqa: B007 - reported below
            counts = client.get("/_jobmock/jobs", params={"limit": 0}).json()["counts"]
            working = sum(n for word, n in counts.items() if roles[word] not in wh.TERMINAL_ROLES)
            clock = client.get("/_jobmock/clock").json()
            if clock["next_due"] is None:
                assert working == 0
                break
            # While jobs run, steps far enough that many end per step; then one step past the
            # whole retry schedule: one advance plays every attempt in clock order (issue 14).
            step = job_step if working else sum(delays) + 1
            answer = client.post("/_jobmock/clock/advance", json={"seconds": step})
            assert answer.status_code == 200, answer.text
            deliveries = _settle(client)
            _check_receiver(webhook_receiver, deliveries)
        else:
            pytest.fail("the clock never ran out of due entries")

        jobs = {}
        page: dict[str, Any] = {"next": None}
        for _ in range(JOBS):  # the control plane lists jobs a page at a time
            query = {"limit": "1000", **({"after": page["next"]} if page["next"] else {})}
            page = client.get("/_jobmock/jobs", params=query).json()
            jobs.update({j["id"]: j for j in page["jobs"]})
            if page["next"] is None:
                break
        deliveries = _settle(client)

    # none lost: every job ended and has exactly one delivery (cloro fires on terminal only)
    assert sorted(jobs) == sorted(job_ids)
    assert all(roles[j["status"]] in wh.TERMINAL_ROLES for j in jobs.values())
    assert sorted(d["job_id"] for d in deliveries) == sorted(job_ids)
    states: Counter[str] = Counter()
    for d in deliveries:
        states[d["state"]] += 1
        attempts = d["attempts"]
        n = len(attempts)
        assert d["max_attempts"] == policy.attempts
        assert 1 <= n <= policy.attempts, (d["id"], n)
        assert [a["number"] for a in attempts] == list(range(1, n + 1))
        assert d["url"] == webhook_receiver.url
        assert attempts[0]["scheduled_at"] == jobs[d["job_id"]]["completed_at"]
        for a in attempts:
            assert a["sent_at"] >= a["scheduled_at"]  # never early (same ISO format: sortable)
            assert a["finished_at"] is not None
            assert (a["status"] is None) != (a["error"] is None)
        for prev, nxt in itertools.pairwise(attempts):
            gap = wh.epoch(nxt["scheduled_at"]) - wh.epoch(prev["scheduled_at"])
            assert gap == pytest.approx(delays[prev["number"] - 1], abs=0.002)
        ok = [a["status"] is not None and 200 <= a["status"] < 300 for a in attempts]
        if d["state"] == "delivered":
            assert ok[-1] and not any(ok[:-1])
        else:
            assert d["state"] == "exhausted"
            assert n == policy.attempts and not any(ok)
    assert set(states) == {"delivered", "exhausted"}

    got, unconnected = _check_receiver(webhook_receiver, deliveries)
    by_id = {d["id"]: d for d in deliveries}
    answered: Counter[str] = Counter()
    for r in got:
        d = by_id[r.header(wh.DELIVERY_HEADER)]
        attempt = d["attempts"][int(r.header(wh.ATTEMPT_HEADER) or 0) - 1]
        assert r.json()["task"]["id"] == d["job_id"]
        sent_headers = {k.lower(): v for k, v in attempt["headers"].items()}
        assert sent_headers[wh.DELIVERY_HEADER] == d["id"]
        for name, value in sent_headers.items():
            assert r.header(name) == value, name
        word = r.answered.split(" ")[0]
        answered[word] += 1
        if attempt["status"] is not None:
            assert word == str(attempt["status"])
        if word == "dropped":
            assert attempt["error"]
    bodies = {d["id"]: {r.body for r in got if r.header(wh.DELIVERY_HEADER) == d["id"]}
              for d in deliveries}
    assert all(len(b) <= 1 for b in bodies.values())  # one body per delivery, across retries
    errors = Counter((a["error"] or "").split(":")[0] for d in deliveries for a in d["attempts"]
                     if a["error"])
    assert answered["dropped"] > 0 and errors["timeout"] > 0
    total = sum(len(d["attempts"]) for d in deliveries)
    print(f"\nlive {API}: {JOBS} jobs submitted in {submitted - started:.1f} s; {dict(states)}; "
          f"{total} attempts in {rounds} clock steps; receiver answers {dict(answered)}; "
          f"server saw errors {dict(errors)}; never connected {unconnected}; "
          f"fault plan {dict(plan)}; {time.perf_counter() - started:.1f} s wall")
