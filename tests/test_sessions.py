"""Sessions (``X-Jobmock-Session``): isolated namespaces of one mock server.

- The book: valid names only (400), at most ``limit`` live (503), idle ones dropped.
- In-process: a session has its own jobs, clock and reset; the default mock is untouched.
- A served mock (``jobmock serve`` as a process): two ``jobmock contract`` runs at the same
  time both pass, each in a session of its own, and a third session's job and a
  default-session job are untouched by their resets; a bad name gets the API's 400 shape.
"""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from apihelpers import ApiHelpers
from jobmock import resolve_spec
from jobmock.inprocess import InProcessMock
from jobmock.sessions import SESSION_HEADER, SessionBook, SessionRefused, session_name
from jobmock.testing import ServeProcess


class Clockwork:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_names_are_bounded_and_plain() -> None:
    assert session_name({}) is None
    assert session_name({"x-jobmock-session": "ci-job_7.a"}) == "ci-job_7.a"
    assert session_name({}, {"session": "q"}) == "q"
    for bad in ("a b", "x" * 65, "ü", "a/b"):
        with pytest.raises(SessionRefused) as info:
            session_name({"x-jobmock-session": bad})
        assert info.value.status == 400


def test_the_book_makes_on_first_use_caps_and_expires_idle_sessions() -> None:
    now = Clockwork()
    made: list[str] = []
    dropped: list[str] = []
    book: SessionBook[str] = SessionBook(lambda n: made.append(n) or f"mock-{n}", idle=10,
                                         limit=2, on_drop=lambda n, _m: dropped.append(n),
                                         now=now)
    assert book.get("a") == "mock-a" and book.get("a") == "mock-a"
    assert made == ["a"]
    book.get("b")
    with pytest.raises(SessionRefused) as info:
        book.get("c")
    assert info.value.status == 503
    now.t = 8
    book.get("a")  # used: stays
    now.t = 15
    assert book.expire() == ["b"] and dropped == ["b"]
    assert book.get("c") == "mock-c"
    assert book.names() == ["a", "c"]


def test_in_process_sessions_have_their_own_jobs_clock_and_reset() -> None:
    spec = resolve_spec("croma")
    helpers = ApiHelpers(spec)
    op = spec.submit_operations[0]
    with InProcessMock("croma", seed=1) as api:
        client = httpx.Client(base_url=api.base_url)
        headers = {**helpers.creds(0), "Prefer": "wait=0"}
        r0 = client.post(op.path, json=op.body_example, headers=headers)
        r1 = client.post(op.path, json=op.body_example, headers={**headers, SESSION_HEADER: "s1"})
        assert r0.status_code == r1.status_code == 202
        mine = api.session("s1")
        assert [j.id for j in api.jobs] != [j.id for j in mine.jobs]
        assert len(api.jobs) == len(mine.jobs) == 1
        mine.advance(3600)
        assert mine.now > api.now
        reset = client.post("/_jobmock/reset", json={}, headers={SESSION_HEADER: "s1"})
        assert reset.status_code == 200
        assert mine.jobs == [] and len(api.jobs) == 1
        bad = client.get("/jobs/x", headers={**headers, SESSION_HEADER: "no good"})
        assert bad.status_code == 400
        assert "X-Jobmock-Session" in bad.text
        assert bad.json()["error"]["type"] == "invalid_request_error"  # croma's error shape


def contract_process(api: str, base_url: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "jobmock.cli", "contract", api, "--base-url",
                             base_url, "-p", "no:cacheprovider"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                            env={**os.environ, "COLUMNS": "120"})


@pytest.mark.live
def test_two_contract_runs_in_their_own_sessions_pass_and_leave_other_jobs_alone() -> None:
    spec = resolve_spec("croma")
    helpers = ApiHelpers(spec)
    op = spec.submit_operations[0]
    headers = {**helpers.creds(0), "Prefer": "wait=0"}
    with ServeProcess("croma", "--clock", "virtual", "--seed", "1") as served, \
            httpx.Client(base_url=served.url, timeout=30) as client:
        assert client.get("/_jobmock/health").json()["sessions"]["header"] == SESSION_HEADER
        mine = client.post(op.path, json=op.body_example, headers=headers).json()
        theirs = client.post(op.path, json=op.body_example,
                             headers={**headers, SESSION_HEADER: "bystander"}).json()
        runs = [contract_process("croma", served.url) for _ in range(2)]
        outputs = []
        for run in runs:
            try:
                out, _ = run.communicate(timeout=300)
            finally:
                if run.poll() is None:
                    run.kill()
                    run.wait()
            outputs.append((run.returncode, out))
        for code, out in outputs:
            assert code == 0, out[-3000:]
        jobs = client.get("/_jobmock/jobs").json()["jobs"]
        assert [j["id"] for j in jobs] == [mine["id"]]  # the runs' resets were their own
        kept = client.get("/_jobmock/jobs", headers={SESSION_HEADER: "bystander"}).json()
        assert [j["id"] for j in kept["jobs"]] == [theirs["id"]]
        names = client.get("/_jobmock/health").json()["sessions"]["names"]
        assert "bystander" in names
        assert len([n for n in names if n.startswith("contract-")]) == 2
        bad = client.get(f"/jobs/{mine['id']}", headers={**headers, SESSION_HEADER: "a b"})
        assert bad.status_code == 400
        assert "X-Jobmock-Session" in bad.text
