"""The render cache never serves a stale state (jobmock.rendercache).

Two mocks of one spec and seed take the same steps: one caches poll answers, the other
renders every poll. A Hypothesis state machine (derandomized) interleaves submits, clock
moves, forced transitions, faults switched on and off, resets and polls (another host,
a query string, HEAD, the other tenant); every answer of the cached mock must be byte for
byte the uncached one's. The teeth tests key the cache wrongly on purpose (no job state,
no request, no clock) and the same machine must then fail.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from jobmock import ApiSpec, Mock, VirtualClock, resolve_spec
from jobmock.dispatch import Request, Response
from jobmock.faults import applicability, set_faults
from jobmock.records import Advance
from jobmock.rendercache import RenderCache, job_state
from jobmock.spec import build_spec
from jobmock.validation import ensure_recursion_headroom

# A mock raises the recursion limit when it is built (see jobmock.validation): done here,
# before Hypothesis runs, which would otherwise warn that the limit changed under it.
ensure_recursion_headroom()

SETTINGS = settings(max_examples=100, stateful_step_count=40, derandomize=True, deadline=None,
                    database=None, suppress_health_check=[HealthCheck.too_slow])
#: Enough examples that the wrongly keyed caches of the teeth tests are always caught.
TEETH = settings(SETTINGS, max_examples=60)

SUBMIT = "/v1/lookups/policia-nacional"
BODIES = [{"document_type": "CC", "document_number": "1020304050"},
          {"document_type": "CE", "document_number": "998877"}]
WORDS = ["queued", "running", "completed", "failed", "canceled", "expired"]


def _croma_reading_now() -> ApiSpec:
    """croma whose poll answer carries the clock's time in a header."""
    doc = copy.deepcopy(dict(resolve_spec("croma").document))
    doc["x-jobmock"]["status"]["headers"] = {"X-Polled-At": "{now}"}
    return build_spec(doc, "croma-now.yaml", default_name="croma")


CROMA = resolve_spec("croma")
CROMA_NOW = _croma_reading_now()
#: The faults that apply to croma (the others are refused when switched on).
FAULTS = sorted(name for name, why in applicability(CROMA).items() if why is None)


def _answer(response: Any) -> tuple[int, list[tuple[str, str]], bytes, float, bool]:
    assert isinstance(response, Response), response
    return (response.status, list(response.headers), response.body, response.delay,
            response.drop)


class CacheAgainstRender(RuleBasedStateMachine):
    """Every poll answer of a caching mock equals a rendering mock's, step for step."""

    spec: ClassVar[ApiSpec] = CROMA
    advance: ClassVar[Advance | None] = None

    def __init__(self) -> None:
        super().__init__()
        self.cached = Mock(self.spec, clock=VirtualClock(), seed=7, advance=self.advance)
        self.plain = Mock(self.spec, clock=VirtualClock(), seed=7, advance=self.advance)
        self.plain.renders = None
        self.creds = [self.spec.auth.headers_for(c) for _, c in self.spec.demo_tenants()]
        self.ids: list[str] = []

    def _both(self, request: Request) -> Response:
        mine, theirs = self.cached.dispatch(request), self.plain.dispatch(request)
        assert _answer(mine) == _answer(theirs), (
            f"{request.method} {request.path}?{request.query_string} Host "
            f"{request.base_url}: the cached answer differs from a fresh render")
        assert isinstance(mine, Response)
        return mine

    @rule(body=st.sampled_from(BODIES), tenant=st.sampled_from([0, 1]))
    def submit(self, body: dict[str, str], tenant: int) -> None:
        raw = json.dumps(body).encode()
        answer = self._both(Request("POST", SUBMIT, headers={
            **self.creds[tenant], "prefer": "wait=0", "content-type": "application/json"},
            body=raw))
        if answer.status == 202:
            self.ids.append(answer.json()["id"])

    @rule(seconds=st.sampled_from([0.001, 0.3, 1.0, 2.5, 8.0, 30.0]))
    def move_clock(self, seconds: float) -> None:
        for mock in (self.cached, self.plain):
            mock.engine.advance_clock(seconds)

    @rule(pick=st.integers(0, 20), word=st.sampled_from(WORDS))
    def force(self, pick: int, word: str) -> None:
        if not self.ids:
            return
        job_id = self.ids[pick % len(self.ids)]
        outcomes = []
        for mock in (self.cached, self.plain):
            try:
                mock.engine.force(job_id, word, result={"forced": pick} if pick % 2 else None)
                outcomes.append(None)
            except Exception as exc:  # both mocks must refuse alike
                outcomes.append(type(exc))
        assert outcomes[0] == outcomes[1]

    @rule(names=st.sets(st.sampled_from(FAULTS), max_size=2))
    def switch_faults(self, names: set[str]) -> None:
        for mock in (self.cached, self.plain):
            set_faults(mock, names)

    @rule(pick=st.integers(0, 20), tenant=st.sampled_from([0, 0, 1]),
          host=st.sampled_from(["mock.test", "mock.test", "other.test:8080"]),
          query=st.sampled_from(["", "", "view=full"]),
          method=st.sampled_from(["GET", "GET", "HEAD"]))
    def poll(self, pick: int, tenant: int, host: str, query: str, method: str) -> None:
        job_id = self.ids[pick % len(self.ids)] if self.ids else "job_0000000000000000"
        self._both(Request(method, f"/jobs/{job_id}", query={"view": "full"} if query else {},
                           headers={**self.creds[tenant], "host": host},
                           base_url=f"http://{host}", query_string=query))

    @invariant()
    def every_job_polled(self) -> None:
        """After every step, each job is polled by both tenants (one of them reads 404)."""
        for job_id in self.ids[-8:]:
            for creds in self.creds:
                self._both(Request("GET", f"/jobs/{job_id}", headers=creds))

    @rule()
    def reset(self) -> None:
        for mock in (self.cached, self.plain):
            mock.reset()
        self.ids.clear()


class CacheAgainstRenderNow(CacheAgainstRender):
    """The same, for a spec whose poll answer reads the clock."""

    spec = CROMA_NOW


class CacheAgainstRenderPolls(CacheAgainstRender):
    """The same, with jobs moved by polls (a poll changes the job it answers)."""

    advance = Advance("polls", 2)


@pytest.mark.parametrize("machine", [CacheAgainstRender, CacheAgainstRenderNow,
                                     CacheAgainstRenderPolls], ids=["croma", "now", "polls"])
def test_cached_poll_answers_equal_fresh_renders(machine: type[CacheAgainstRender]) -> None:
    run_state_machine_as_test(machine, settings=SETTINGS)


def test_the_cache_serves_unchanged_jobs() -> None:
    """Repeated polls of a job that did not change are answered from the cache."""
    mock = Mock(CROMA, clock=VirtualClock(), seed=1)
    creds = CROMA.auth.headers_for(CROMA.demo_tenants()[0][1])
    ack = mock.dispatch(Request("POST", SUBMIT, headers={**creds, "prefer": "wait=0"},
                                body=json.dumps(BODIES[0]).encode()))
    assert isinstance(ack, Response)
    poll = Request("GET", f"/jobs/{ack.json()['id']}", headers=creds)
    first = mock.dispatch(poll)
    again = [mock.dispatch(poll) for _ in range(5)]
    assert mock.renders is not None and mock.renders.hits == 5
    assert all(_answer(a) == _answer(first) for a in again)
    # An answer handed out is a copy: a hook that edits it leaves the cache alone.
    assert isinstance(first, Response)
    first.headers.append(("X-Edited", "1"))
    assert ("X-Edited", "1") not in _answer(mock.dispatch(poll))[1]
    mock.reset()
    assert len(mock.renders) == 0


# -- teeth: a wrongly keyed cache is caught ------------------------------------------------


@pytest.fixture
def unkeyed_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The cache keyed on the job's id only: a job's changes go unseen."""
    monkeypatch.setattr("jobmock.rendercache.job_state", lambda job: (job.id,))
    yield


@pytest.fixture
def unkeyed_request(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The cache keyed without the request (host, query, method)."""
    get, put = RenderCache.get, RenderCache.put
    monkeypatch.setattr(RenderCache, "get", lambda self, job, spec, key: get(self, job, spec, ()))
    monkeypatch.setattr(RenderCache, "put",
                        lambda self, job, spec, key, rendered: put(self, job, spec, (), rendered))
    yield


@pytest.mark.usefixtures("unkeyed_state")
def test_teeth_a_cache_blind_to_job_state_fails() -> None:
    assert job_state is not None
    with pytest.raises(AssertionError, match="differs from a fresh render"):
        run_state_machine_as_test(CacheAgainstRender, settings=TEETH)


@pytest.mark.usefixtures("unkeyed_request")
def test_teeth_a_cache_blind_to_the_request_fails() -> None:
    with pytest.raises(AssertionError, match="differs from a fresh render"):
        run_state_machine_as_test(CacheAgainstRender, settings=TEETH)


def test_teeth_a_cache_blind_to_the_clock_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Mock.__init__

    def blind(self: Mock, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self._reads_clock = False  # as if no template read {now}

    monkeypatch.setattr(Mock, "__init__", blind)
    with pytest.raises(AssertionError, match="differs from a fresh render"):
        run_state_machine_as_test(CacheAgainstRenderNow, settings=TEETH)
