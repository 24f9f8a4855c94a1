"""Webhooks v2 (issue 14) against real ``jobmock serve`` processes, over HTTP only.

- One ``POST /_jobmock/clock/advance`` plays a whole retry schedule: cloro's 5 attempts,
  exactly 120 / 240 / 480 / 960 s apart, against a receiver that always answers 500, all
  answered before the advance answers.
- docimprint's progress webhooks arrive in order at a receiver that serves one request at
  a time, under a fast clock: 100 of 100 jobs.
- The contract suite's stateless phase against a real-clock croma mock makes the server
  contact no host at all (no ``--receiver-url``): ``GET /_jobmock/webhooks`` lists nothing.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobmock import resolve_spec
from jobmock.receiver import WebhookReceiver
from jobmock.testing import free_port

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parent.parent
STARTUP_LIMIT = 30.0  # seconds: a guard against a hung start, not a measurement


@contextmanager
def serve(*args: str) -> Iterator[str]:
    """``jobmock serve ARGS`` on a free port; yields its base URL once it answers."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "jobmock.cli", "serve", *args, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_LIMIT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jobmock serve exited with {proc.returncode}: {proc.communicate()[0]}")
            try:
                if httpx.get(base + "/_jobmock/health", timeout=2.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jobmock serve did not answer {base}/_jobmock/health")
            time.sleep(0.05)
        yield base
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate(timeout=10)


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def auth(api: str) -> dict[str, str]:
    spec = resolve_spec(api)
    return spec.auth.headers_for(spec.demo_tenants()[0][1])


# -- 1. one advance plays a whole schedule ---------------------------------------------------


def test_one_advance_over_http_plays_cloros_whole_schedule_exactly(
        webhook_receiver: WebhookReceiver) -> None:
    spec = resolve_spec("cloro")
    assert spec.webhooks is not None
    delays = list(spec.webhooks.retry.delays)
    webhook_receiver.fail_always(status=500)
    with serve("cloro", "--clock", "virtual", "--allow-private-callbacks",
               "--webhook-timeout", "2") as base, httpx.Client(base_url=base, timeout=60) as client:
        r = client.post("/v1/task", headers=auth("cloro"),
                        json={"taskType": "CHATGPT", "payload": {"prompt": "hi"},
                              "webhook": {"url": webhook_receiver.url}})
        assert r.status_code == 200, r.text
        job_id = r.json()["task"]["id"]
        started = time.perf_counter()
        moved = client.post("/_jobmock/clock/advance", json={"seconds": 2000})
        wall = time.perf_counter() - started
        assert moved.status_code == 200, moved.text
        [d] = client.get("/_jobmock/webhooks", params={"job_id": job_id}).json()["deliveries"]
    assert d["state"] == "exhausted"  # the advance answered after the last attempt's answer
    attempts = d["attempts"]
    assert [a["status"] for a in attempts] == [500] * spec.webhooks.retry.attempts
    sent = [epoch(a["sent_at"]) for a in attempts]
    assert [round(b - a, 3) for a, b in itertools.pairwise(sent)] == delays
    assert all(a["sent_at"] == a["scheduled_at"] == a["finished_at"] for a in attempts)
    got = webhook_receiver.wait_for(len(attempts))
    assert [r.header("x-jobmock-attempt") for r in got] == [str(n) for n in range(1, 6)]
    print(f"\ncloro over HTTP: {len(attempts)} attempts, gaps {delays} s, one advance in "
          f"{wall * 1000:.0f} ms wall")


# -- 2. ordered delivery per job under a fast clock ---------------------------------------------


class _OneAtATime:
    """A webhook receiver that serves one request at a time and notes what came, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int | None]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.0: the connection closes after each answer, so the next request (on any
            # connection) is served only once this one is answered.
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                receiver.seen.append((body["job"]["job_id"], body["event"],
                                      body["job"].get("progress_pct")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.server.request_queue_size = 1024
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> _OneAtATime:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)
        self.server.server_close()


def _wait_settled(client: httpx.Client, jobs: int, timeout: float = 120.0) -> list[dict[str, Any]]:
    """Poll until every job ended and every delivery is over (bounded; backs off)."""
    deadline = time.monotonic() + timeout
    pause = 0.1
    while True:
        deliveries: list[dict[str, Any]] = client.get("/_jobmock/webhooks").json()["deliveries"]
        ended = sum(1 for d in deliveries if d["event"] in ("job.complete", "job.failed")
                    and d["state"] in ("delivered", "exhausted"))
        if ended == jobs and all(d["state"] in ("delivered", "exhausted") for d in deliveries):
            return deliveries
        if time.monotonic() > deadline:
            pytest.fail(f"{ended} of {jobs} jobs' last webhooks delivered after {timeout} s")
        time.sleep(pause)
        pause = min(2 * pause, 1.0)


def test_docimprint_progress_webhooks_arrive_in_order_under_a_fast_clock() -> None:
    jobs = 100
    spec = resolve_spec("docimprint")
    steps = len(spec.progress_steps)
    with _OneAtATime() as receiver, serve("docimprint", "--speed", "50", "--seed", "3",
                                          "--allow-private-callbacks") as base, \
            httpx.Client(base_url=base, timeout=30) as client:
        ids = []
        for i in range(jobs):
            r = client.post("/v1/extract", headers=auth("docimprint"),
                            json={"source": f"https://example.com/doc-{i}.pdf",
                                  "webhook": receiver.url})
            assert r.status_code == 202, r.text
            ids.append(r.headers["x-job-id"])
        deliveries = _wait_settled(client, jobs)
    by_job: dict[str, list[tuple[str, int | None]]] = {}
    for job_id, event, pct in receiver.seen:
        by_job.setdefault(job_id, []).append((event, pct))
    in_order = 0
    for job_id in ids:
        seen = by_job[job_id]
        listed = [d for d in deliveries if d["job_id"] == job_id]
        assert len(seen) == len(listed) == steps + 1, (job_id, seen)
        events = [e for e, _ in seen]
        pcts = [p or 0 for _, p in seen]
        assert events[:-1] == ["job.progress"] * steps and events[-1] in ("job.complete",
                                                                            "job.failed"), seen
        assert pcts[:-1] == sorted(pcts[:-1]), seen
        in_order += 1
    assert in_order == jobs
    print(f"\ndocimprint x50: {in_order} of {jobs} jobs' {steps + 1} webhooks arrived in order")


# -- 3. no traffic to strangers ------------------------------------------------------------------


def test_the_stateless_phase_makes_a_real_clock_croma_mock_contact_no_host() -> None:
    with serve("croma") as base:  # a real clock, webhooks delivered as in production
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
             str(ROOT / "contract_tests"), "-k", "test_stateless", "--api", "croma",
             "--base-url", base, "--contract-examples", "3"],
            capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL, cwd=ROOT)
        # The suite ran in a session of its own (the server offers sessions): look there,
        # and in the default session, which must have seen nothing.
        names = httpx.get(base + "/_jobmock/health").json()["sessions"]["names"]
        suite = [{"X-Jobmock-Session": n} for n in names if n.startswith("contract-")]
        assert len(suite) == 1, names
        journal = httpx.get(base + "/_jobmock/requests", params={"limit": "100000"},
                            headers=suite[0]).json()
        deliveries = httpx.get(base + "/_jobmock/webhooks", headers=suite[0]).json()["deliveries"]
        deliveries += httpx.get(base + "/_jobmock/webhooks").json()["deliveries"]
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    submits = [e for e in journal["requests"]
               if str(e.get("operation") or "").startswith("lookup") and e["status"] in (200, 202)]
    assert submits, "the stateless phase created no job: nothing was judged"
    hosts = {d["url"] for d in deliveries}
    assert deliveries == [], f"webhook deliveries to {sorted(hosts)[:5]}"
    print(f"\nstateless phase against croma: {journal['total']} requests, {len(submits)} jobs "
          f"created, 0 webhook deliveries")
