"""``jobmock contract`` against a served mock, as a user runs it.

- docimprint on a virtual clock (where ``?sync=true`` and the synchronous endpoints hold a
  request until a job ends, and nothing moves the clock but the suite) passes in well
  under 60 s: the stateless phase moves the clock while a request is held.
- A failing run prints the check, one line of what was expected and seen, the seed and the
  curl lines, without Hypothesis's trace (which ``-v`` adds); the closing table shows the
  check the mock's ``GET /_jobmock/faults`` names as FAILED, and every other row with a
  verdict (ok, not run with the reason, or not applicable with the reason).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx

from jobmock.bundled import resolve_spec
from jobmock.faults import set_faults
from jobmock.testing import serve_mock


def contract(*args: str, timeout: float = 150) -> tuple[int, str, float]:
    """Run ``jobmock contract ARGS`` in a child process (no terminal, bounded)."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "jobmock.cli", "contract", *args,
                           "-p", "no:cacheprovider"],
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "120"})
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


def test_docimprint_against_a_served_virtual_clock_passes_in_under_a_minute() -> None:
    spec = resolve_spec("docimprint")
    with serve_mock(spec, seed=2) as server:
        assert httpx.get(server.url + "/_jobmock/clock").json()["kind"] == "virtual"
        code, out, seconds = contract("docimprint", "--base-url", server.url)
    assert code == 0, out[-4000:]
    assert seconds < 60, seconds
    assert "test_stateless" not in out or "failed" not in out.splitlines()[-1]
    table = out[out.index("jobmock contract checks"):]
    assert "inline_wait      ok" in table  # held requests were answered: the clock moved


def test_a_failure_reads_as_check_expected_seen_seed_and_curl() -> None:
    spec = resolve_spec("croma")
    with serve_mock(spec, seed=3) as server:
        set_faults(server.mock, ["drop_retry_after"])
        caught_by = httpx.get(server.url + "/_jobmock/faults").json()[
            "available"]["drop_retry_after"]["caught_by"]
        code, out, _ = contract("croma", "--base-url", server.url, "--seed", "5",
                                "--examples", "4", "--steps", "15", "--budget", "60",
                                "-k", "state_machine")
        code_v, out_v, _ = contract("croma", "--base-url", server.url, "--seed", "5",
                                    "--examples", "4", "--steps", "15", "--budget", "60",
                                    "-k", "state_machine", "-v")
    assert code == 1 and code_v == 1
    assert f"[{caught_by}] FAILED:" in out
    assert "has no Retry-After" in out and "During handling" not in out
    assert "Seed 5: the same run again with `--seed 5`" in out
    assert "curl -i -X POST" in out
    hypothesis_trace = "Failing test case: <state machine>"
    assert hypothesis_trace not in out and hypothesis_trace in out_v
    table = out[out.index("jobmock contract checks"):]
    rows = {line.split()[0]: line for line in table.splitlines()[2:]
            if line.startswith("  ") and not line.startswith("   ")}
    assert "FAILED" in rows[caught_by]
    assert [n for n, line in rows.items() if "FAILED" in line] == [caught_by]
    assert "not applicable: the spec declares no concurrency limit" in rows["queue_order"]


def test_the_receiver_port_is_pinned_printed_and_used() -> None:
    import socket

    with socket.socket() as probe:  # a port free now (the receiver binds it below)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with serve_mock(resolve_spec("cloro"), seed=4, allow_private_callbacks=True) as server:
        code, out, _ = contract("cloro", "--base-url", server.url, "--receiver-port", str(port),
                                "--budget", "60", "-k", "webhook_retry_schedule")
        urls = {d["url"] for d in httpx.get(server.url + "/_jobmock/webhooks").json()["deliveries"]}
    assert code == 0, out[-4000:]
    assert f"webhook receiver listening at http://127.0.0.1:{port}/hook" in out
    assert out.index("listening at") < out.index("test_contract.py")  # before any test
    assert urls == {f"http://127.0.0.1:{port}/hook"}


def test_a_receiver_port_in_use_is_one_clear_error() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, _ = contract("cloro", "--receiver-port", str(port), "--collect-only")
    assert code == 4, out[-2000:]  # pytest's usage error
    assert f"--receiver-port {port}: cannot listen on 127.0.0.1:{port}" in out
    assert "Traceback" not in out
