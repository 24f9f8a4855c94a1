"""``jobmock serve`` as a process: starting, stopping, and what it prints.

- One SIGTERM stops a server holding 100 inline waits on a virtual clock (the waits can
  never end by themselves) within 2 s, on granian and on uvicorn: every waiting client gets
  the 202 job envelope, the client summary is printed once. A webhook attempt in flight
  does not hold the stop either. SIGINT, sent explicitly, stops it the same way.
- A port in use or out of range is one line on stderr and exit code 2, with no banner;
  ``--port 0`` prints the port it got; the banner's curl lines work against the spec.
- Ids: a random seed per start unless ``--seed`` pins it; ``--retain`` forgets jobs.

Every process is started through :class:`jobmock.testing.ServeProcess` (or
``subprocess.run`` with a timeout), so it is reaped whatever happens, and stopped with
SIGTERM, which a shell's background jobs and ``nohup`` do not ignore.
"""

from __future__ import annotations

import asyncio
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import pytest

from apihelpers import ApiHelpers
from jobmock import bundled_names, resolve_spec
from jobmock.receiver import WebhookReceiver
from jobmock.testing import ServeProcess

pytestmark = pytest.mark.live

SERVERS = ["granian", "uvicorn"]
HELD = 100
RUN_LIMIT = 60.0  # seconds: a guard against a hang, not a measurement


def ended_at(served: ServeProcess) -> dict[str, float]:
    """A dict that gets the monotonic time the process ends, from a watcher thread."""
    box: dict[str, float] = {}
    proc = served.proc
    assert proc is not None

    def watch() -> None:
        proc.wait()
        box["t"] = time.monotonic()

    threading.Thread(target=watch, daemon=True).start()
    return box


@pytest.mark.parametrize("server", SERVERS)
def test_one_sigterm_answers_100_held_inline_waits_and_stops_within_2_s(server: str) -> None:
    spec = resolve_spec("croma")
    helpers = ApiHelpers(spec)
    op = spec.submit_operations[0]
    headers = {**helpers.creds(0), "Prefer": "wait=55"}
    with ServeProcess("croma", "--clock", "virtual", "--server", server, "--seed", "1") as served:

        async def hold_and_stop() -> tuple[list[httpx.Response | BaseException], float, float]:
            limits = httpx.Limits(max_connections=HELD + 10)
            async with httpx.AsyncClient(base_url=served.url, timeout=RUN_LIMIT,
                                         limits=limits) as client:
                waits = [asyncio.create_task(client.post(op.path, json=op.body_example,
                                                         headers=headers))
                         for _ in range(HELD)]
                deadline = time.monotonic() + RUN_LIMIT
                while len((await client.get("/_jobmock/jobs", params={"limit": 1000})
                           ).json()["jobs"]) < HELD:
                    assert time.monotonic() < deadline, "the waits never all arrived"
                    await asyncio.sleep(0.05)
                assert not any(w.done() for w in waits)  # held: the clock never moves
                end = ended_at(served)
                assert served.proc is not None
                sent = time.monotonic()
                served.proc.send_signal(signal.SIGTERM)
                answers = await asyncio.gather(*waits, return_exceptions=True)
                answered = time.monotonic() - sent
            served.proc.wait(timeout=RUN_LIMIT)
            return answers, answered, end["t"] - sent

        answers, answered, stopped = asyncio.run(hold_and_stop())
    assert served.proc is not None and served.proc.returncode == 0, served.stderr
    assert stopped < 2.0, f"stopped {stopped:.2f} s after SIGTERM"
    assert answered < 2.0
    pending = op.responses["pending"].status
    for r in answers:
        assert isinstance(r, httpx.Response), r
        assert r.status_code == pending, r.text
        job_id = helpers.job_id(op, r)
        assert r.json()["id"] == job_id and not spec.lifecycle.is_terminal(r.json()["status"])
    assert len({helpers.job_id(op, r) for r in answers if isinstance(r, httpx.Response)}) == HELD
    assert served.stdout.count("jobmock stopped.") == 1
    assert served.stdout.count("Client behaviour") == 1
    assert "Traceback" not in served.stderr, served.stderr


@pytest.mark.parametrize("server", SERVERS)
def test_a_webhook_attempt_in_flight_does_not_hold_the_stop(server: str) -> None:
    spec = resolve_spec("croma")
    helpers = ApiHelpers(spec)
    op = spec.submit_operations[0]
    assert spec.webhooks is not None
    with WebhookReceiver() as receiver, ServeProcess(
            "croma", "--clock", "virtual", "--server", server, "--allow-private-callbacks",
            "--webhook-timeout", "30") as served:
        receiver.fail_next(1, delay=8)  # holds the attempt far longer than a stop may take
        body = {**op.body_example, "callback_url": receiver.url}
        r = httpx.post(served.url + op.path, json=body,
                       headers={**helpers.creds(0), "Prefer": "wait=0"}, timeout=10)
        assert r.status_code == op.responses["pending"].status, r.text
        httpx.post(served.url + "/_jobmock/clock/advance",
                   json={"seconds": spec.timing.queued[1] + spec.timing.running[1] + 1},
                   timeout=RUN_LIMIT)
        deadline = time.monotonic() + RUN_LIMIT
        while not receiver.received:  # the attempt reached the receiver, which holds it
            assert time.monotonic() < deadline, "no webhook attempt arrived"
            time.sleep(0.05)
        end = ended_at(served)
        assert served.proc is not None
        sent = time.monotonic()
        served.proc.send_signal(signal.SIGTERM)
        served.proc.wait(timeout=RUN_LIMIT)
    assert served.proc.returncode == 0, served.stderr
    assert end["t"] - sent < 2.0
    assert "Traceback" not in served.stderr, served.stderr


@pytest.mark.parametrize("server", SERVERS)
def test_sigint_sent_to_it_stops_it_cleanly_too(server: str) -> None:
    served = ServeProcess("enrich", "--clock", "virtual", "--server", server).start()
    try:
        assert httpx.get(served.url + "/_jobmock/health", timeout=10).status_code == 200
    finally:
        code = served.stop(signal.SIGINT)  # the server handles it even if we ignore SIGINT
    assert code == 0, served.stderr
    assert served.stdout.rstrip().endswith("jobmock stopped.")
    assert "Traceback" not in served.stderr


# -- starting -----------------------------------------------------------------------------------


def serve_once(*args: str) -> subprocess.CompletedProcess[str]:
    """``jobmock serve ARGS`` expected to end by itself (it is reaped on a timeout too)."""
    return subprocess.run([sys.executable, "-m", "jobmock.cli", "serve", *args],
                          capture_output=True, text=True, timeout=RUN_LIMIT)


@pytest.mark.parametrize("server", SERVERS)
def test_a_port_in_use_is_one_line_and_exit_2_before_any_banner(server: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = serve_once("croma", "--port", str(port), "--server", server)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "in use" in done.stderr


@pytest.mark.parametrize("port", ["99999", "65536", "-1"])
def test_a_port_out_of_range_is_one_line_and_exit_2(port: str) -> None:
    done = serve_once("croma", "--port", port)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip() == (f"jobmock serve: port {port} is out of range: give 0 to "
                                   f"65535 (0 picks a free one)")


@pytest.mark.parametrize("server", SERVERS)
def test_port_0_prints_the_port_it_got_and_serves_there(server: str) -> None:
    with ServeProcess("croma", "--clock", "virtual", "--server", server) as served:
        assert served.port > 0
        assert f"control plane: {served.url}/_jobmock/health" in served.stdout
        assert httpx.get(served.url + "/_jobmock/health", timeout=10).json()["api"] == "croma"


def curl(line: str) -> dict[str, Any]:
    """The request a banner's curl line sends: method, headers, body, URL."""
    words = shlex.split(line)
    assert words[0] == "curl"
    request: dict[str, Any] = {"method": "GET", "headers": {}, "content": None}
    it = iter(words[1:])
    for word in it:
        if word == "-X":
            request["method"] = next(it)
        elif word == "-H":
            name, _, value = next(it).partition(": ")
            request["headers"][name] = value
        elif word == "-d":
            request["content"] = next(it).encode()
        elif word.startswith("http"):
            request["url"] = word
    return request


@pytest.mark.parametrize("api", bundled_names())
def test_the_banners_curl_lines_are_answered_as_the_spec_documents(api: str) -> None:
    spec = resolve_spec(api)
    helpers = ApiHelpers(spec)
    with ServeProcess(api, "--clock", "virtual") as served:
        lines = [line.strip() for line in served.stdout.splitlines()
                 if line.strip().startswith("curl ")]
        assert len(lines) == 2, served.stdout
        submit = curl(lines[0])
        r = httpx.request(timeout=10, **submit)
        op = spec.submit_operations[0]  # the one the banner shows
        assert r.status_code < 300, r.text
        job_id = helpers.job_id_present(op, r)
        poll = curl(lines[1].replace("JOB_ID", job_id))
        p = httpx.request(timeout=10, **poll)
    assert p.status_code == spec.status.status, p.text
    helpers.check(spec.status_operation, p)


def first_job(served: ServeProcess) -> tuple[str, str]:
    """The banner's seed and the id of a first job submitted."""
    spec = resolve_spec("cloro")
    helpers = ApiHelpers(spec)
    op = spec.submit_operations[0]
    r = httpx.post(served.url + op.path, json={"taskType": "CHATGPT", "payload": {"prompt": "hi"}},
                   headers=helpers.creds(0), timeout=10)
    seed = served.stdout.split("seed: ", 1)[1].split()[0]
    return seed, helpers.job_id_present(op, r)


def test_ids_differ_across_starts_unless_the_seed_is_pinned() -> None:
    runs = []
    for args in ((), (), ("--seed", "7"), ("--seed", "7")):
        with ServeProcess("cloro", "--clock", "virtual", *args) as served:
            runs.append(first_job(served))
    (seed_a, id_a), (seed_b, id_b), pinned_a, pinned_b = runs
    assert seed_a != seed_b and id_a != id_b
    assert pinned_a == pinned_b == ("7", pinned_a[1])


def test_retain_forgets_a_finished_job_after_that_much_clock_time() -> None:
    spec = resolve_spec("enrich")
    helpers = ApiHelpers(spec)
    op = spec.submit_operations[0]
    with (ServeProcess("enrich", "--clock", "virtual", "--retain", "30") as served,
          httpx.Client(base_url=served.url, timeout=10) as client):
        r = client.post(op.path, json=op.body_example, headers=helpers.creds(0))
        job_id = helpers.job_id_present(op, r)
        client.post(f"/_jobmock/jobs/{job_id}/outcome", json={"status": "completed"})
        client.post("/_jobmock/clock/advance", json={"seconds": 29})
        kept = client.get(helpers.status_url(job_id), headers=helpers.creds(0))
        client.post("/_jobmock/clock/advance", json={"seconds": 2})
        gone = client.get(helpers.status_url(job_id), headers=helpers.creds(0))
    assert kept.status_code == spec.status.status
    assert gone.status_code == spec.errors["not_found"].status
    assert gone.json() == helpers.error_body("not_found")
