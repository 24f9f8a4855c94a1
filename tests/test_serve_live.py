"""`jobmock serve` as users start it: a real process on a loopback port.

Starts ``python -m jobmock.cli serve croma --clock virtual``, drives one job to a terminal
status over real HTTP (moving the clock through the control plane), checks the banner,
then stops it with SIGTERM (as a container or CI script does; SIGINT is ignored by a shell's
background jobs and ``nohup``, so no test relies on it) and checks it exits cleanly.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from jobmock import resolve_spec
from jobmock.testing import free_port

SPEC = resolve_spec("croma")
LC = SPEC.lifecycle
STARTUP_LIMIT = 30.0  # seconds: a guard against a hung start, not a measurement


@pytest.fixture
def served() -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobmock.cli", "serve", "croma", "--port", str(port),
         "--clock", "virtual"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


def wait_healthy(proc: subprocess.Popen[str], base: str) -> dict[str, object]:
    deadline = time.monotonic() + STARTUP_LIMIT
    while True:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"jobmock serve exited with {proc.returncode}:\n{out}\n{err}")
        try:
            r = httpx.get(base + "/_jobmock/health", timeout=2.0)
            if r.status_code == 200:
                body: dict[str, object] = r.json()
                return body
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"jobmock serve did not answer {base}/_jobmock/health")
        time.sleep(0.05)


@pytest.mark.live
def test_serve_croma_submit_advance_poll_banner_and_clean_stop(
        served: tuple[subprocess.Popen[str], str]) -> None:
    proc, base = served
    health = wait_healthy(proc, base)
    assert health["status"] == "ok" and health["api"] == SPEC.name
    assert health["clock"]["kind"] == "virtual"  # type: ignore[index]

    (tenant, credential), (other_tenant, other_credential) = SPEC.demo_tenants()
    headers = {**SPEC.auth.headers_for(credential), "Prefer": "wait=0"}
    op = SPEC.submit_operations[0]
    with httpx.Client(base_url=base, timeout=10.0) as client:
        r = client.post(op.path, json=op.body_example, headers=headers)
        assert r.status_code == op.responses["pending"].status, r.text
        job_id = r.headers["X-Job-Id"]
        assert r.json()["id"] == job_id
        assert r.headers["Location"] == f"{base}/jobs/{job_id}"
        assert r.headers["Retry-After"] == str(SPEC.retry_after_seconds)

        step = 1.0
        longest = SPEC.timing.queued[1] + SPEC.timing.running[1]
        body = r.json()
        for _ in range(int(longest / step) + 3):
            r = client.get(f"/jobs/{job_id}", headers=headers)
            assert r.status_code == SPEC.status.status
            body = r.json()
            if LC.is_terminal(body["status"]):
                assert "Retry-After" not in r.headers
                break
            assert r.headers["Retry-After"] == str(SPEC.retry_after_seconds)
            moved = client.post("/_jobmock/clock/advance", json={"seconds": step})
            assert moved.status_code == 200
        assert LC.is_terminal(body["status"]), body
        assert body["id"] == job_id
        jobs = client.get("/_jobmock/jobs").json()["jobs"]
        assert [(j["id"], j["tenant"], j["status"]) for j in jobs] == [
            (job_id, tenant, body["status"])]

    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err}"
    assert "Traceback" not in err and "Traceback" not in out, err

    banner = out.splitlines()
    assert banner[0].startswith(f"jobmock serving {SPEC.name}") and base in banner[0]
    assert f"tenant {tenant}: {credential}" in banner
    assert f"tenant {other_tenant}: {other_credential}" in banner
    curls = [line.strip() for line in banner if line.strip().startswith("curl ")]
    assert len(curls) == 2, banner
    submit_curl, poll_curl = curls
    assert f"-X {op.method}" in submit_curl and f"{base}{op.path}" in submit_curl
    assert SPEC.auth.headers_for(credential)["Authorization"] in submit_curl
    assert "Prefer: wait=0" in submit_curl
    assert "-X GET" in poll_curl and f"{base}/jobs/JOB_ID" in poll_curl
    assert SPEC.auth.headers_for(credential)["Authorization"] in poll_curl
    assert out.rstrip().endswith("jobmock stopped.")


def test_granian_serves_as_many_requests_at_once_as_the_process_may_hold_sockets(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Held inline waits are requests in flight: granian's default cap (the backlog, 1024)
    held the 1,025th back unread, so serve gives it the open-files limit, within bounds."""
    import resource

    from jobmock import serving

    for soft, expected in ((20_000, 20_000), (256, serving.BACKLOG),
                           (10**7, serving.MAX_IN_FLIGHT),
                           (resource.RLIM_INFINITY, serving.MAX_IN_FLIGHT)):
        monkeypatch.setattr(resource, "getrlimit", lambda _which, s=soft: (s, s))
        assert serving.in_flight() == expected
