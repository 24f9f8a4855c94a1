"""``pytest contract_tests/`` under pytest-xdist (the repository's ``pytest`` runs workers).

- Against the suite's own mocks (``--dist loadfile``, as the repository runs it), the suite
  runs on one worker, and the closing table it made is printed by the controller, every
  API's rows in it.
- Judging one given server (``--base-url``) keeps the run in one process, and says so: one
  session on that server, one receiver, one table.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from jobmock.testing import ServeProcess

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 300  # seconds: a guard against a hung run, not a measurement


def suite(*args: str) -> subprocess.CompletedProcess[str]:
    """``pytest contract_tests/ ARGS`` from the repository root (its addopts apply), on 2
    workers, its stateless phase only, one example per operation."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(ROOT / "contract_tests"),
         "-n", "2", "-k", "test_stateless", "--contract-examples", "1", *args],
        capture_output=True, text=True, timeout=LIMIT, stdin=subprocess.DEVNULL, cwd=ROOT,
        env={**os.environ, "COLUMNS": "120"})


def test_the_workers_closing_tables_reach_the_controller() -> None:
    run = suite("--api", "enrich", "--api", "bronid", "-v")
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    assert "2 workers" in out, out[-4000:]
    # Every test of one API ran on one worker (the suite is one file).
    for api in ("enrich", "bronid"):
        workers = {line.split("]")[0] for line in out.splitlines()
                   if line.startswith("[gw") and f"[{api}:" in line}
        assert len(workers) == 1, (api, workers)
    table = out[out.index("jobmock contract checks"):]
    for api in ("enrich", "bronid"):
        assert re.search(rf"^{api}( \(seed 0\))?$", table, re.MULTILINE), table
    assert "webhook receiver listening" not in out  # the controller starts none


def test_judging_one_server_keeps_the_run_in_one_process() -> None:
    with ServeProcess("croma", "--clock", "virtual", "--seed", "1") as server:
        run = suite("--api", "croma", "--base-url", server.url)
        sessions = httpx.get(server.url + "/_jobmock/health").json()["sessions"]["names"]
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    assert "jobmock contract: --base-url needs one process: pytest-xdist's workers are off" in out
    assert "workers [" not in out, out[-4000:]
    assert len([n for n in sessions if n.startswith("contract-")]) == 1, sessions
    table = out[out.index("jobmock contract checks"):]
    assert re.search(r"^croma( \(seed 0\))?$", table, re.MULTILINE), table
