"""The example specs of examples/specs/, written from public documentation: each validates,
its mock walks a job through every path of its lifecycle graph, and passes its own contract.

- ``openai-batch.yaml`` (OpenAI Batch API): a lifecycle graph (validating -> in_progress ->
  finalizing -> completed; failed from validating; expired from in_progress; cancelling ->
  cancelled on a cancel), epoch-second times with ``expires_at = created_at + 86400``,
  a cancel operation, and an ``after`` + ``limit`` list.
- ``azure-lro.yaml`` (Azure AI Document Intelligence analyze): a 202 with no body, the
  job id read from the last path segment of ``Operation-Location``, a required
  ``api-version`` on every call, and a delete operation.

Paths are forced two ways: a ``JobPlan`` (the core's submit hook, as scenarios use it)
walked by the timing model on a virtual clock, polled step by step so every intermediate
state is seen; and the control plane's ``POST /_jobmock/jobs/{id}/outcome``, one state at
a time. The seeded timing model is also shown to draw every path by itself. Expected
values are read from the spec wherever the spec states them.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from apihelpers import ApiHelpers
from jobmock import Mock, VirtualClock
from jobmock.asgi import create_app
from jobmock.cli import main
from jobmock.contract import CHECKS
from jobmock.contract.runner import RunOptions, run_machine
from jobmock.idsource import read as read_job_id
from jobmock.pointers import get as pointer_get
from jobmock.records import JobPlan
from jobmock.spec import ApiSpec, Operation, load_spec
from jobmock.testing import free_port, serve_mock

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "examples" / "specs"
OPENAI_FILE = SPECS / "openai-batch.yaml"
AZURE_FILE = SPECS / "azure-lro.yaml"
OPENAI = load_spec(OPENAI_FILE)
AZURE = load_spec(AZURE_FILE)
BASE = "http://mock.test"

#: A day, in seconds: OpenAI's completion window (expires_at = created_at + 86400).
DAY = 86400


# -- what the specs say --------------------------------------------------------------------


def only(spec: ApiSpec, role: str) -> Operation:
    ops = spec.operations_with(role)
    assert len(ops) == 1, (role, ops)
    return ops[0]


def graph_paths(spec: ApiSpec, *, drawn_only: bool = False) -> set[tuple[str, ...]]:
    """Every path of the spec's lifecycle graph from the queued word to a terminal word, as
    the timing model walks it (``timing.flow``; without one: queued, the running word, an
    outcome). ``drawn_only``: only moves of positive weight, i.e. paths the model draws."""
    lc, timing = spec.lifecycle, spec.timing

    def nexts(word: str) -> list[tuple[str, float]]:
        if timing.flow:
            step = timing.flow.get(word)
            return list(step.next) if step is not None and step.next else list(timing.outcomes)
        if word == lc.queued and lc.running is not None:
            return [(lc.running, 1.0)]
        return list(timing.outcomes)

    out: set[tuple[str, ...]] = set()

    def walk(trail: tuple[str, ...]) -> None:
        for word, weight in nexts(trail[-1]):
            if drawn_only and weight <= 0:
                continue
            if lc.is_terminal(word):
                out.add((*trail, word))
            else:
                walk((*trail, word))

    walk((lc.queued,))
    return out


def cancel_paths(spec: ApiSpec) -> set[tuple[str, ...]]:
    """For each non-terminal word a flow path passes through, that path cut there and
    ended the cancel's way (``via`` then ``to``)."""
    op = only(spec, "cancel")
    assert op.cancel_to is not None
    out = set()
    for path in graph_paths(spec):
        for i, word in enumerate(path):
            if not spec.lifecycle.is_terminal(word):
                end = (op.cancel_via, op.cancel_to) if op.cancel_via else (op.cancel_to,)
                out.add((*path[: i + 1], *end))
    return out


def stay(spec: ApiSpec, word: str) -> tuple[float, float]:
    """How long the timing model keeps a job in ``word``."""
    step = spec.timing.flow.get(word)
    if step is not None:
        return step.duration
    return spec.timing.queued if spec.lifecycle.states[word] == "queued" else spec.timing.running


def poll_step(spec: ApiSpec) -> float:
    """A clock step shorter than any state lasts, so polling after each step sees every state."""
    words = [w for w in spec.lifecycle.states if not spec.lifecycle.is_terminal(w)]
    return min(stay(spec, w)[0] for w in words) / 2


# -- driving a mock --------------------------------------------------------------------------


class Api:
    """A mock of ``spec`` on a virtual clock, behind a TestClient (the ASGI app in-process)."""

    def __init__(self, spec: ApiSpec, client: TestClient, mock: Mock) -> None:
        self.spec = spec
        self.client = client
        self.mock = mock
        self.helpers = ApiHelpers(spec)
        self.submit_op = spec.submit_operations[0]
        self.status_op = spec.status_operation

    def creds(self, tenant: int = 0) -> dict[str, str]:
        return self.helpers.creds(tenant)

    def advance(self, seconds: float) -> None:
        r = self.client.post("/_jobmock/clock/advance", json={"seconds": seconds})
        assert r.status_code == 200, r.text

    def now(self) -> float:
        return float(self.client.get("/_jobmock/clock").json()["epoch"])

    def plan_next(self, **plan: Any) -> None:
        """The next submit gets this ``JobPlan`` (what a scenario's job rule does)."""
        used: list[bool] = []

        def hook(*_args: Any) -> JobPlan | None:
            if used:
                return None
            used.append(True)
            return JobPlan(**plan)

        self.mock.submit_hooks.append(hook)

    def control(self, job_id: str) -> dict[str, Any]:
        r = self.client.get(f"/_jobmock/jobs/{job_id}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def history(self, job_id: str) -> list[str]:
        return [h["status"] for h in self.control(job_id)["history"]]

    def force(self, job_id: str, word: str) -> httpx.Response:
        return self.client.post(f"/_jobmock/jobs/{job_id}/outcome", json={"status": word})

    def word(self, body: Any) -> str:
        word = pointer_get(body, self.spec.lifecycle.status_pointer)
        assert isinstance(word, str), body
        return word

    def check(self, op: Operation, r: httpx.Response) -> Any:
        """The body, after checking it against the schema the spec documents for it."""
        return self.helpers.check(op, r)

    def walk(self, url: str, tenant: int = 0, step: float | None = None,
             limit: int = 100_000) -> tuple[list[str], httpx.Response]:
        """Poll ``url``, moving the clock ``step`` seconds between polls, until the job ends;
        the status words seen (each once, in order) and the last answer. Every answer must
        match the spec's status schema."""
        step = step or poll_step(self.spec)
        seen: list[str] = []
        for _ in range(limit):
            r = self.client.get(url, headers=self.creds(tenant))
            assert r.status_code == self.spec.status.status, r.text
            word = self.word(self.check(self.status_op, r))
            if not seen or seen[-1] != word:
                seen.append(word)
            if self.spec.lifecycle.is_terminal(word):
                return seen, r
            self.advance(step)
        raise AssertionError(f"{url} never ended: {seen}")


@pytest.fixture
def make_api() -> Iterator[Callable[..., Api]]:
    clients: list[TestClient] = []

    def make(spec: ApiSpec, seed: int = 1) -> Api:
        mock = Mock(spec, clock=VirtualClock(), seed=seed)
        client = TestClient(create_app(mock), base_url=BASE)
        client.__enter__()
        clients.append(client)
        return Api(spec, client, mock)

    yield make
    for c in clients:
        c.__exit__(None, None, None)


# -- both specs: they validate, their mocks pass their own contract --------------------------------


@pytest.mark.parametrize("path", [OPENAI_FILE, AZURE_FILE], ids=lambda p: p.stem)
def test_validate_accepts_it(path: Path) -> None:
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok"), result.output


@pytest.mark.parametrize("spec", [OPENAI, AZURE], ids=lambda s: s.name)
def test_the_state_machine_passes_on_its_own_mock(spec: ApiSpec) -> None:
    """The suite's state machine (as in tests/test_sixth_api.py), long enough that every
    role's rules run: cancel and list where the spec has them."""
    before = {name: check.runs for name, check in CHECKS.items()}
    with serve_mock(spec, seed=2) as server:
        run_machine(spec, server.url, RunOptions(examples=25, steps=30, shrink=False), None)
    ran = {name for name, check in CHECKS.items() if check.runs > before[name]}
    wanted = {"submit_answer", "poll_schema", "lifecycle", "outcome_fields", "auth", "errors"}
    wanted |= {role for role in ("cancel", "list") if spec.operations_with(role)}
    if spec.document["x-jobmock"].get("contract"):
        wanted.add("invariants")
    assert wanted <= ran, f"checks that never ran: {sorted(wanted - ran)}"


def _contract_cli(path: Path) -> subprocess.CompletedProcess[str]:
    """``jobmock contract FILE`` as a user runs it: the state machine and schemathesis's
    stateless phase on every operation, against a mock the suite starts itself."""
    return subprocess.run([sys.executable, "-m", "jobmock.cli", "contract", str(path)],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)


def test_jobmock_contract_passes_azure() -> None:
    proc = _contract_cli(AZURE_FILE)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]


def test_jobmock_contract_passes_openai() -> None:
    proc = _contract_cli(OPENAI_FILE)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]


# -- OpenAI Batch API ---------------------------------------------------------------------------

OPENAI_BODY = {"input_file_id": "file-abc123", "endpoint": "/v1/chat/completions",
               "completion_window": "24h"}
OPENAI_TIMES = ("created_at", "in_progress_at", "expires_at", "finalizing_at", "completed_at",
                "failed_at", "expired_at", "cancelling_at", "cancelled_at")
#: The time field set when a batch reaches each word (the reference's Batch object).
ENTERED = {"in_progress": "in_progress_at", "finalizing": "finalizing_at",
           "completed": "completed_at", "failed": "failed_at", "expired": "expired_at",
           "cancelling": "cancelling_at", "cancelled": "cancelled_at"}


def batch(api: Api, tenant: int = 0, **extra: Any) -> dict[str, Any]:
    r = api.client.post(api.submit_op.path, json={**OPENAI_BODY, **extra},
                        headers=api.creds(tenant))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = api.check(api.submit_op, r)
    return body


def batch_url(batch_id: str) -> str:
    return OPENAI.status_operation.path.replace("{batch_id}", batch_id)


def cancel_url(batch_id: str) -> str:
    return only(OPENAI, "cancel").path.replace("{batch_id}", batch_id)


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def entered_at(api: Api, batch_id: str) -> dict[str, int]:
    """When the mock's history says the batch entered each word, in whole epoch seconds."""
    return {h["status"]: int(epoch(h["at"])) for h in api.control(batch_id)["history"]}


def test_openai_graph_is_the_documented_one() -> None:
    assert graph_paths(OPENAI) == {
        ("validating", "failed"),
        ("validating", "in_progress", "expired"),
        ("validating", "in_progress", "finalizing", "completed"),
    }
    assert cancel_paths(OPENAI) == {
        ("validating", "cancelling", "cancelled"),
        ("validating", "in_progress", "cancelling", "cancelled"),
        ("validating", "in_progress", "finalizing", "cancelling", "cancelled"),
    }


@pytest.mark.parametrize("path", sorted(graph_paths(OPENAI)), ids="->".join)
def test_openai_a_planned_path_is_polled_state_by_state(make_api: Callable[..., Api],
                                                        path: tuple[str, ...]) -> None:
    """Plan the path, then poll on a clock moved in steps shorter than any state lasts:
    every state of the path is seen, in order, and the batch's times follow it."""
    api = make_api(OPENAI)
    api.plan_next(path=path[1:-1], outcome=path[-1])
    created = batch(api)
    assert created["status"] == path[0] == OPENAI.lifecycle.queued
    seen, last = api.walk(batch_url(created["id"]))
    assert tuple(seen) == path
    assert tuple(api.history(created["id"])) == path
    final = last.json()
    at = entered_at(api, created["id"])
    for word, field in ENTERED.items():
        if word not in ("finalizing", "cancelling"):  # see test_openai_times_per_state
            assert final[field] == (at[word] if word in path else None), (field, final)
    assert (final["output_file_id"] is not None) == (path[-1] == "completed")
    assert (final["errors"] is not None) == (path[-1] == "failed")
    if path[-1] == "failed":
        assert final["errors"] == OPENAI.document["x-jobmock"]["outcomes"]["failed"]["error"]
        assert final["request_counts"] == {"total": 0, "completed": 0, "failed": 0}


@pytest.mark.parametrize("path", sorted(graph_paths(OPENAI)), ids="->".join)
def test_openai_the_control_plane_forces_each_path_state_by_state(
        make_api: Callable[..., Api], path: tuple[str, ...]) -> None:
    api = make_api(OPENAI)
    batch_id = batch(api)["id"]
    for word in path[1:]:
        r = api.force(batch_id, word)
        assert r.status_code == 200, (word, r.text)
        got = api.check(api.status_op, api.client.get(batch_url(batch_id), headers=api.creds()))
        assert got["status"] == word
    assert tuple(api.history(batch_id)) == path


def test_openai_the_seeded_timing_model_draws_every_path(make_api: Callable[..., Api]) -> None:
    """Left alone, the seeded model draws every path of the graph, in about the spec's odds."""
    api = make_api(OPENAI, seed=7)
    ids = [batch(api)["id"] for _ in range(400)]
    api.advance(3600)
    jobs = {j["id"]: j for j in api.client.get("/_jobmock/jobs", params={"limit": 1000}).json()["jobs"]}
    drawn: dict[tuple[str, ...], int] = {}
    for batch_id in ids:
        path = tuple(h["status"] for h in jobs[batch_id]["history"])
        drawn[path] = drawn.get(path, 0) + 1
    assert set(drawn) == graph_paths(OPENAI, drawn_only=True)
    failed = drawn[("validating", "failed")] / len(ids)
    assert 0.005 < failed < 0.08, drawn  # the spec's weight: 0.03


def test_openai_times_are_epoch_seconds_and_expire_a_day_after_creation(
        make_api: Callable[..., Api]) -> None:
    api = make_api(OPENAI)
    api.advance(0.7)  # not on a whole second: the times are whole seconds all the same
    api.plan_next(queued_for=2.5, running_for=30.0, path=("in_progress", "finalizing"),
                  outcome="completed")
    created = batch(api)
    now = api.now()
    assert created["created_at"] == int(now)
    assert created["expires_at"] == created["created_at"] + DAY
    _, last = api.walk(batch_url(created["id"]))
    body = last.json()
    for field in OPENAI_TIMES:
        value = body[field]
        assert value is None or (type(value) is int and value >= 0), (field, value)
    assert body["expires_at"] == body["created_at"] + DAY
    assert body["created_at"] <= body["in_progress_at"] <= body["finalizing_at"] \
        <= body["completed_at"] < body["expires_at"]
    assert body["in_progress_at"] == int(now + 2.5)
    assert body["completed_at"] == int(now + 2.5 + 30.0)


def test_openai_times_per_state(make_api: Callable[..., Api]) -> None:
    """Each time field is null until the batch enters its state, then the second it did
    (the mock's history, read with ``{job.entered_s.<word>}``), and keeps it."""
    api = make_api(OPENAI)
    api.plan_next(path=("in_progress", "finalizing"), outcome="completed")
    batch_id = batch(api)["id"]
    step = poll_step(OPENAI)
    statuses = []
    while True:
        body = api.check(api.status_op, api.client.get(batch_url(batch_id), headers=api.creds()))
        statuses.append(body["status"])
        at = entered_at(api, batch_id)
        for word, field in ENTERED.items():
            if word not in at:
                assert body[field] is None, (body["status"], field)
            else:
                assert body[field] == at[word], (body["status"], field, body[field], at)
        if OPENAI.lifecycle.is_terminal(body["status"]):
            break
        api.advance(step)
    assert set(statuses) == {"validating", "in_progress", "finalizing", "completed"}


# cancel ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(cancel_paths(OPENAI)), ids="->".join)
def test_openai_cancel_mid_flight_passes_through_cancelling(make_api: Callable[..., Api],
                                                          path: tuple[str, ...]) -> None:
    """Cancel in each non-terminal state of the documented path: the answer is the batch,
    `cancelling`; polls see `cancelling` for a while, then `cancelled`, never another end."""
    api = make_api(OPENAI)
    cancel_op = only(OPENAI, "cancel")
    in_state = path[-3]
    api.plan_next(path=("in_progress", "finalizing"), outcome="completed")
    batch_id = batch(api)["id"]
    step = poll_step(OPENAI)
    while api.word(api.client.get(batch_url(batch_id), headers=api.creds()).json()) != in_state:
        api.advance(step)
    now = api.now()
    r = api.client.post(cancel_url(batch_id), headers=api.creds())
    assert r.status_code == 200, r.text
    body = api.check(cancel_op, r)
    assert body["status"] == cancel_op.cancel_via == "cancelling"
    assert body["cancelling_at"] == int(now) and body["cancelled_at"] is None
    # Cancelling again while cancelling: the batch, unchanged.
    again = api.client.post(cancel_url(batch_id), headers=api.creds())
    assert again.status_code == 200 and again.json() == body
    seen, last = api.walk(batch_url(batch_id))
    assert seen == ["cancelling", "cancelled"]
    final = last.json()
    assert final["cancelled_at"] is not None and final["cancelled_at"] >= int(now)
    assert final["output_file_id"] is None and final["completed_at"] is None
    assert tuple(api.history(batch_id)) == path
    lo, hi = stay(OPENAI, "cancelling")
    assert lo <= final["cancelled_at"] - int(now) <= hi + 1
    # A terminal batch never changes.
    api.advance(DAY)
    assert api.client.get(batch_url(batch_id), headers=api.creds()).json() == final


@pytest.mark.parametrize("word", sorted(OPENAI.lifecycle.terminal_words))
def test_openai_cancel_after_the_end_is_refused_and_changes_nothing(
        make_api: Callable[..., Api], word: str) -> None:
    api = make_api(OPENAI)
    cancel_op = only(OPENAI, "cancel")
    if word == cancel_op.cancel_to:  # ended by a cancel
        batch_id = batch(api)["id"]
        assert api.client.post(cancel_url(batch_id), headers=api.creds()).status_code == 200
    else:  # ended on its own
        path = next(p for p in sorted(graph_paths(OPENAI)) if p[-1] == word)
        api.plan_next(path=path[1:-1], outcome=word)
        batch_id = batch(api)["id"]
    _, last = api.walk(batch_url(batch_id))
    assert last.json()["status"] == word
    r = api.client.post(cancel_url(batch_id), headers=api.creds())
    assert cancel_op.when_terminal_error is not None
    error = OPENAI.errors[cancel_op.when_terminal_error]
    assert r.status_code == error.status == 409
    assert r.json() == api.helpers.error_body(cancel_op.when_terminal_error)
    assert api.client.get(batch_url(batch_id), headers=api.creds()).json() == last.json()


@pytest.mark.parametrize("margin", [0.0, 0.001], ids=["at-completion", "just-before"])
def test_openai_a_cancel_racing_completion_ends_one_way_decided_by_the_clock(
        make_api: Callable[..., Api], margin: float) -> None:
    """A cancel at the very instant the batch completes finds it completed (409); a cancel
    1 ms earlier wins (cancelling, then cancelled, never completed). The same seed and
    clock give the same answers, byte for byte."""

    def race(seed: int) -> list[Any]:
        api = make_api(OPENAI, seed=seed)
        api.plan_next(queued_for=2.0, running_for=10.0, path=("in_progress", "finalizing"),
                      outcome="completed")
        batch_id = batch(api)["id"]
        api.advance(2.0)  # it starts now, and ends running_for seconds later
        running_for = api.control(batch_id)["planned"]["running_for"]
        assert running_for == pytest.approx(10.0)
        api.advance(running_for - margin)
        r = api.client.post(cancel_url(batch_id), headers=api.creds())
        api.advance(3600)
        final = api.client.get(batch_url(batch_id), headers=api.creds()).json()
        return [r.status_code, r.json(), final, api.history(batch_id)]

    first = race(5)
    status, answer, final, history = first
    if margin == 0.0:
        assert status == 409 and final["status"] == "completed"
        assert history == ["validating", "in_progress", "finalizing", "completed"]
    else:
        assert status == 200 and answer["status"] == "cancelling"
        assert final["status"] == "cancelled"
        assert history == ["validating", "in_progress", "finalizing", "cancelling", "cancelled"]
    assert race(5) == first


def test_openai_cancel_of_another_projects_or_an_unknown_batch_is_404(
        make_api: Callable[..., Api]) -> None:
    api = make_api(OPENAI)
    batch_id = batch(api)["id"]
    for url, tenant in ((cancel_url(batch_id), 1), (cancel_url("batch_nope"), 0)):
        r = api.client.post(url, headers=api.creds(tenant))
        assert r.status_code == 404
        assert r.json() == api.helpers.error_body("not_found")
    assert api.client.get(batch_url(batch_id), headers=api.creds()).json()["status"] == "validating"


# list -----------------------------------------------------------------------------------------


def listing(api: Api, tenant: int = 0, **query: Any) -> dict[str, Any]:
    r = api.client.get(only(OPENAI, "list").path, params=query, headers=api.creds(tenant))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = api.check(only(OPENAI, "list"), r)
    return body


def test_openai_list_is_newest_first_and_pages_with_after_and_limit(
        make_api: Callable[..., Api]) -> None:
    api = make_api(OPENAI)
    mine: list[str] = []
    theirs: list[str] = []
    for i in range(7):
        mine.append(batch(api, metadata={"n": str(i)})["id"])
        if i % 3 == 0:
            theirs.append(batch(api, tenant=1)["id"])
        api.advance(1.3)
    newest_first = mine[::-1]
    whole = listing(api)
    assert [b["id"] for b in whole["data"]] == newest_first
    assert whole["object"] == "list" and whole["has_more"] is False
    assert (whole["first_id"], whole["last_id"]) == (newest_first[0], newest_first[-1])
    # Pages of 3: 3 + 3 + 1, chained by after = last_id.
    pages, after = [], None
    while True:
        page = listing(api, limit=3, **({"after": after} if after else {}))
        pages.append([b["id"] for b in page["data"]])
        assert page["first_id"] == pages[-1][0] and page["last_id"] == pages[-1][-1]
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert pages == [newest_first[0:3], newest_first[3:6], newest_first[6:7]]
    # Never another project's batch, either way round.
    assert [b["id"] for b in listing(api, tenant=1)["data"]] == theirs[::-1]
    # Assumed in the spec: a cursor naming no batch of yours gives an empty last page.
    for cursor in (theirs[0], "batch_unknown"):
        page = listing(api, after=cursor)
        assert (page["data"], page["has_more"], page["first_id"], page["last_id"]) == \
            ([], False, None, None)


def test_openai_list_agrees_with_get(make_api: Callable[..., Api]) -> None:
    api = make_api(OPENAI, seed=3)
    ids = [batch(api)["id"] for _ in range(6)]
    api.client.post(cancel_url(ids[2]), headers=api.creds())
    for _ in range(12):
        listed = {b["id"]: b for b in listing(api)["data"]}
        assert set(listed) == set(ids)
        for batch_id in ids:
            got = api.client.get(batch_url(batch_id), headers=api.creds()).json()
            assert listed[batch_id] == got
        api.advance(4.0)


def test_openai_list_limits(make_api: Callable[..., Api]) -> None:
    api = make_api(OPENAI)
    page = only(OPENAI, "list").paging
    assert page is not None
    for _ in range(page.default_limit + 2):
        batch(api)
    default = listing(api)
    assert len(default["data"]) == page.default_limit and default["has_more"] is True
    for bad in (0, page.max_limit + 1, "x"):
        r = api.client.get(only(OPENAI, "list").path, params={"limit": bad}, headers=api.creds())
        assert r.status_code == OPENAI.errors["validation"].status, (bad, r.text)
    assert listing(api, tenant=1)["data"] == []
    empty = listing(api, tenant=1)
    assert (empty["first_id"], empty["last_id"], empty["has_more"]) == (None, None, False)


# -- Azure Document Intelligence analyze ------------------------------------------------------------

API_VERSION = {"api-version": "2024-11-30"}
ANALYZE_BODY = {"urlSource": "https://example.com/invoice.pdf"}
MODEL = "prebuilt-layout"


def analyze(api: Api, tenant: int = 0, model: str = MODEL,
            query: dict[str, str] | None = None) -> httpx.Response:
    path = api.submit_op.path.replace("{modelId}", model)
    return api.client.post(path, params=API_VERSION if query is None else query,
                           json=ANALYZE_BODY, headers=api.creds(tenant))


def monitor(r: httpx.Response) -> str:
    """The Operation-Location URL as a path + query for the test client."""
    parts = urlsplit(r.headers["Operation-Location"])
    return f"{parts.path}?{parts.query}"


def test_azure_analyze_is_a_bodiless_202_whose_operation_location_names_the_job(
        make_api: Callable[..., Api]) -> None:
    api = make_api(AZURE)
    r = analyze(api)
    pending = api.submit_op.responses["pending"]
    assert r.status_code == pending.status == 202
    assert r.content == b"" and pending.render is None
    assert "content-type" not in r.headers
    assert r.headers["Retry-After"] == str(AZURE.retry_after_seconds)
    location = r.headers["Operation-Location"]
    jobs = api.client.get("/_jobmock/jobs").json()["jobs"]
    assert len(jobs) == 1
    job_id = jobs[0]["id"]
    assert read_job_id(api.submit_op.job_id_from, r.headers.get, None) == job_id
    assert location == (f"{BASE}/documentModels/{MODEL}/analyzeResults/{job_id}"
                        f"?api-version={API_VERSION['api-version']}")
    # The monitor URL, as given, is what a client polls.
    polled = api.client.get(monitor(r), headers=api.creds())
    assert polled.status_code == 200
    assert api.check(api.status_op, polled)["status"] == AZURE.lifecycle.queued


@pytest.mark.parametrize("path", sorted(graph_paths(AZURE, drawn_only=True)), ids="->".join)
def test_azure_a_planned_path_is_polled_state_by_state(make_api: Callable[..., Api],
                                                       path: tuple[str, ...]) -> None:
    api = make_api(AZURE)
    api.plan_next(outcome=path[-1])
    r = analyze(api)
    step = poll_step(AZURE)
    seen: list[str] = []
    url = monitor(r)
    while True:
        got = api.client.get(url, headers=api.creds())
        body = api.check(api.status_op, got)
        word = body["status"]
        if not seen or seen[-1] != word:
            seen.append(word)
        api.helpers.assert_retry_after(got, word)
        role = AZURE.lifecycle.states[word]
        assert ("analyzeResult" in body) == (role == "completed")
        assert ("error" in body) == (role == "failed")
        assert epoch(body["createdDateTime"]) <= epoch(body["lastUpdatedDateTime"])
        if AZURE.lifecycle.is_terminal(word):
            break
        api.advance(step)
    assert tuple(seen) == path
    if path[-1] == "succeeded":
        result = body["analyzeResult"]
        assert result["modelId"] == MODEL and result["apiVersion"] == API_VERSION["api-version"]
        assert result["stringIndexType"] == "textElements"


@pytest.mark.parametrize("path", sorted(graph_paths(AZURE)), ids="->".join)
def test_azure_the_control_plane_forces_every_path(make_api: Callable[..., Api],
                                                   path: tuple[str, ...]) -> None:
    """Including `canceled`, which this API reaches only when forced (weight 0, no cancel)."""
    api = make_api(AZURE)
    url = monitor(analyze(api))
    job_id = api.client.get("/_jobmock/jobs").json()["jobs"][0]["id"]
    for word in path[1:]:
        assert api.force(job_id, word).status_code == 200
        assert api.check(api.status_op, api.client.get(url, headers=api.creds()))["status"] == word
    assert tuple(api.history(job_id)) == path


def test_azure_every_terminal_word_is_on_some_path() -> None:
    reached = {p[-1] for p in graph_paths(AZURE)}
    assert reached == AZURE.lifecycle.terminal_words


def test_azure_query_options_reach_the_result(make_api: Callable[..., Api]) -> None:
    api = make_api(AZURE)
    api.plan_next(outcome="succeeded")
    r = analyze(api, query={**API_VERSION, "stringIndexType": "utf16CodeUnit",
                            "outputContentFormat": "markdown"})
    _, last = api.walk(monitor(r))
    result = last.json()["analyzeResult"]
    assert (result["stringIndexType"], result["contentFormat"]) == ("utf16CodeUnit", "markdown")


@pytest.mark.parametrize("query", [{}, {"api-version": "2023-07-31"}], ids=["missing", "other"])
def test_azure_every_call_needs_the_api_version(make_api: Callable[..., Api],
                                                query: dict[str, str]) -> None:
    api = make_api(AZURE)
    url = monitor(analyze(api)).split("?")[0]
    validation = AZURE.errors["validation"]
    for r in (analyze(api, query=query),
              api.client.get(url, params=query, headers=api.creds()),
              api.client.delete(url, params=query, headers=api.creds())):
        assert r.status_code == validation.status, r.text
        assert r.json()["error"]["code"] == "InvalidRequest"
    assert len(api.client.get("/_jobmock/jobs").json()["jobs"]) == 1


def test_azure_a_result_is_only_found_under_its_model_and_resource(
        make_api: Callable[..., Api]) -> None:
    api = make_api(AZURE)
    url = monitor(analyze(api))
    not_found = api.helpers.error_body("not_found")
    for r in (api.client.get(url.replace(MODEL, "prebuilt-read"), headers=api.creds()),
              api.client.get(url, headers=api.creds(1))):
        assert r.status_code == 404 and r.json() == not_found
    for headers, name in (({}, "missing_key"),
                          ({"Ocp-Apim-Subscription-Key": "not-a-key"}, "invalid_key")):
        r = api.client.get(url, headers=headers)
        assert r.status_code == 401 and r.json() == api.helpers.error_body(name)


def test_azure_delete_forgets_the_result(make_api: Callable[..., Api]) -> None:
    api = make_api(AZURE)
    url = monitor(analyze(api))
    assert api.client.delete(url, headers=api.creds(1)).status_code == 404
    r = api.client.delete(url, headers=api.creds())
    assert r.status_code == 204 and r.content == b""
    assert api.client.get(url, headers=api.creds()).status_code == 404
    assert api.client.delete(url, headers=api.creds()).status_code == 404
    api.advance(3600)  # nothing scheduled for it fires
    assert api.client.get("/_jobmock/jobs").json()["jobs"] == []


# -- jobmock serve, as users start it ------------------------------------------------------------------


@pytest.mark.live
def test_jobmock_serve_walks_an_openai_batch_over_http() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobmock.cli", "serve", str(OPENAI_FILE), "--port", str(port),
         "--clock", "virtual", "--seed", "4"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                if httpx.get(base + "/_jobmock/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "jobmock serve did not start"
            time.sleep(0.05)
        creds = ApiHelpers(OPENAI).creds(0)
        with httpx.Client(base_url=base, headers=creds, timeout=10) as http:
            created = http.post("/v1/batches", json=OPENAI_BODY).json()
            schema = ApiHelpers(OPENAI).documented(OPENAI.status_operation, 200)
            seen: list[str] = []
            for _ in range(2000):
                body = http.get(batch_url(created["id"])).json()
                errors = [e.message for e in schema.iter_errors(body)]
                assert not errors, errors
                if not seen or seen[-1] != body["status"]:
                    seen.append(body["status"])
                if OPENAI.lifecycle.is_terminal(body["status"]):
                    break
                http.post("/_jobmock/clock/advance", json={"seconds": poll_step(OPENAI)})
            assert tuple(seen) in graph_paths(OPENAI), seen
    finally:
        proc.terminate()
        proc.communicate(timeout=10)



# -- model bugs met while writing these specs (issue 13) ------------------------------------------
# Regressions of model bugs found while writing these specs (once strict xfails).


def _legal(spec: ApiSpec, words: list[str]) -> list[tuple[str, str]]:
    """The moves of ``words`` that lifecycle.transitions does not allow."""
    return [(a, b) for a, b in itertools.pairwise(words)
            if not spec.lifecycle.can_move(a, b)]


def test_regression_forcing_a_running_word_never_ends_the_job(make_api: Callable[..., Api]) -> None:
    api = make_api(OPENAI)
    for _ in range(500):
        batch_id = batch(api)["id"]
        if not api.control(batch_id)["planned"]["path"]:
            break
    else:
        pytest.fail("no batch was drawn to fail while validating")
    r = api.force(batch_id, "in_progress")
    assert r.status_code != 200 or r.json()["status"] == "in_progress", r.json()["status"]


def test_regression_a_forced_transient_state_ends_by_its_own_next(make_api: Callable[..., Api]) -> None:
    api = make_api(OPENAI)
    batch_id = batch(api)["id"]
    assert api.force(batch_id, "cancelling").status_code == 200
    api.advance(3600)
    history = api.history(batch_id)
    assert not _legal(OPENAI, history), history


@pytest.mark.parametrize("plan", [{"path": ("finalizing",), "outcome": "completed"},
                                  {"path": ("in_progress",), "outcome": "completed"},
                                  {"path": ("in_progress", "finalizing"), "outcome": "expired"}],
                         ids=["bad-path", "outcome-unreachable", "outcome-off-graph"])
def test_regression_a_plan_that_breaks_the_transitions_is_refused(make_api: Callable[..., Api],
                                                           plan: dict[str, Any]) -> None:
    api = make_api(OPENAI)
    api.plan_next(**plan)
    try:
        batch_id = batch(api)["id"]
    except ValueError:
        return  # refused: what it should do
    api.advance(3600)
    history = api.history(batch_id)
    assert not _legal(OPENAI, history), history


def test_regression_a_scenario_can_force_the_documented_completed_path() -> None:
    from jobmock.errors import ScenarioError
    from jobmock.scenarios import load_scenario

    source = {"api": str(OPENAI_FILE), "name": "completes-via-finalizing", "description": "d",
              "rules": [{"match": {"operation": "createBatch"},
                         "job": {"path": ["in_progress", "finalizing"], "outcome": "completed"}}]}
    try:
        load_scenario(source)
    except ScenarioError as exc:
        raise AssertionError(str(exc)) from exc


def test_regression_cancel_obeys_the_transitions(tmp_path: Path, make_api: Callable[..., Api]) -> None:
    text = OPENAI_FILE.read_text().replace("finalizing: [completed, cancelling]",
                                           "finalizing: [completed]")
    assert "finalizing: [completed]" in text
    variant = tmp_path / "openai-batch-no-cancel-while-finalizing.yaml"
    variant.write_text(text)
    spec = load_spec(variant)
    api = make_api(spec)
    api.plan_next(path=("in_progress", "finalizing"), outcome="completed")
    batch_id = batch(api)["id"]
    while api.word(api.client.get(batch_url(batch_id), headers=api.creds()).json()) != "finalizing":
        api.advance(poll_step(spec))
    api.client.post(cancel_url(batch_id), headers=api.creds())
    api.advance(3600)
    history = api.history(batch_id)
    assert not _legal(spec, history), history
