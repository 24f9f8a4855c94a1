"""`jobmock serve` as a user starts it, with what makes it observable: an access log line per
request and one per webhook attempt (--log-level info --log-format json), CORS for a
browser app (--cors), a scenario by its catalog name, the dashboard and the endpoint index."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobmock import resolve_spec
from jobmock.receiver import WebhookReceiver
from jobmock.testing import free_port

SPEC = resolve_spec("cloro")
ORIGIN = "http://app.example.test"
STARTUP_LIMIT = 30.0  # seconds: a guard against a hung start, not a measurement


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    port = free_port()
    log = tmp_path / "stderr.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobmock.cli", "serve", "cloro", "--port", str(port),
             "--clock", "virtual", "--scenario", "cloro/queue-limit-429", "--log-level", "info",
             "--log-format", "json", "--cors", ORIGIN, "--allow-private-callbacks"],
            stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL, text=True)
    try:
        yield proc, f"http://127.0.0.1:{port}", log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def _wait_healthy(proc: subprocess.Popen[str], base: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_LIMIT
    while True:
        if proc.poll() is not None:
            pytest.fail(f"jobmock serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(base + "/_jobmock/health", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"jobmock serve did not answer {base}/_jobmock/health")
        time.sleep(0.05)


def _lines(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


@pytest.mark.live
def test_serve_logs_each_request_and_webhook_attempt_answers_cors_and_takes_catalog_names(
        served: tuple[subprocess.Popen[str], str, Path]) -> None:
    proc, base, log = served
    _wait_healthy(proc, base, log)
    auth = SPEC.auth.headers_for(SPEC.demo_tenants()[0][1])
    with httpx.Client(base_url=base, timeout=10.0) as client, WebhookReceiver() as receiver:
        assert client.get("/_jobmock/scenario").json()["loaded"] == "queue-limit-429"

        # CORS: the preflight a browser sends before a JSON POST with a credential
        pre = client.options("/v1/task", headers={
            "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert pre.status_code == 204
        assert pre.headers["access-control-allow-origin"] == ORIGIN
        assert "POST" in pre.headers["access-control-allow-methods"]
        assert pre.headers["access-control-allow-headers"] == "authorization, content-type"
        other = client.options("/v1/task", headers={"Origin": "http://evil.test",
                                                    "Access-Control-Request-Method": "POST"})
        assert other.status_code == 403 and "access-control-allow-origin" not in other.headers

        r = client.post("/v1/task", headers={**auth, "Origin": ORIGIN}, json={
            "taskType": "CHATGPT", "payload": {"prompt": "hi"}, "webhook": {"url": receiver.url}})
        assert r.status_code == 200, r.text
        job_id = r.json()["task"]["id"]
        assert r.headers["access-control-allow-origin"] == ORIGIN
        assert "retry-after" in r.headers["access-control-expose-headers"].split(", ")
        poll = client.get(f"/v1/task/{job_id}", headers={**auth, "Origin": ORIGIN})
        assert poll.headers["access-control-allow-origin"] == ORIGIN
        assert "access-control-allow-origin" not in client.get(
            "/_jobmock/health", headers={"Origin": ORIGIN}).headers  # the control plane: same-origin

        # the scenario keeps tasks queued 600 s, then running 30 s
        assert client.post("/_jobmock/clock/advance", json={"seconds": 700}).status_code == 200
        receiver.wait_for(1, timeout=10)
        page = client.get("/_jobmock/ui")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        paths = {e["path"] for e in client.get("/_jobmock/").json()["endpoints"]}
        assert {"/_jobmock/ui", "/_jobmock/jobs/{id}/timeline", "/_jobmock/clock/advance"} <= paths

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, log.read_text()
    lines = _lines(log)
    requests = [x for x in lines if x.get("event") == "request"]
    submit = next(x for x in requests if x["method"] == "POST" and x["path"] == "/v1/task")
    assert (submit["status"], submit["job_id"], submit["tenant"], submit["operation"]) == (
        200, job_id, "org_a", "createTask")
    assert isinstance(submit["duration_ms"], float) and submit["duration_ms"] >= 0
    assert submit["logger"] == "jobmock.access" and submit["level"] == "info"
    polled = next(x for x in requests if x["path"] == f"/v1/task/{job_id}")
    assert (polled["method"], polled["status"], polled["job_id"]) == ("GET", 200, job_id)
    assert any(x["method"] == "OPTIONS" and x["status"] == 204 for x in requests)
    hooks = [x for x in lines if x.get("event") == "webhook"]
    assert hooks and hooks[0]["job_id"] == job_id and hooks[0]["attempt"] == 1
    assert hooks[0]["status"] == 200 and hooks[0]["url"] == receiver.url
    assert "Traceback" not in log.read_text()
