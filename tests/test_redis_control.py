"""Two replicas on one real ``redis-server`` are one mock for the control plane too.

Each test runs two ASGI apps in this process (each its own Mock, Redis connection pool
and replica name, as two ``jobmock serve --store redis://`` processes would), attached to
one fresh session on the store, and talks to each through httpx:

- a fault switched on through A changes the answers B gives, and switched off through B is
  gone on A (and a fault's memory of the jobs it has seen is shared);
- a scenario loaded through A plays on B, its rule counters counting requests on both;
- the request journal read on B lists the requests A answered, numbered once across both,
  masked alike, and capped at the journal's size;
- the advance mode set on A is B's;
- a reset on B resets jobs, the journal and the scenario's counters on A too (the faults
  and the scenario stay, as on one mock).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from apihelpers import ApiHelpers
from jobmock import Mock, resolve_spec
from jobmock.asgi import create_app
from jobmock.clock import VirtualClock
from jobmock.redisstore import RedisStore
from jobmock.replicas import RedisServer

pytestmark = pytest.mark.live

SPEC = resolve_spec("croma")
HELP = ApiHelpers(SPEC)
SUBMIT = next(o for o in SPEC.submit_operations if o.operation_id == "lookupPoliciaNacional")
BASE = "http://127.0.0.1:8000"
_sessions = itertools.count()


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with RedisServer() as server:
        yield server.url


@contextlib.asynccontextmanager
async def replicas(url: str, journal_size: int = 10_000,
                   ) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two replicas of croma on ``url``, in a session of their own; a client on each."""
    session = f"control-{next(_sessions)}"
    stores = [RedisStore(url), RedisStore(url)]
    apps = []
    for store in stores:
        mock = Mock(SPEC, clock=VirtualClock(), seed=5, journal_size=journal_size)
        app = create_app(mock)
        app.shared = store.attach(mock, session)
        apps.append(app)
    async with contextlib.AsyncExitStack() as stack:
        a, b = [await stack.enter_async_context(httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=BASE, timeout=10))
            for app in apps]
        try:
            yield a, b
        finally:
            for app in apps:
                await app.aclose()
            for store in stores:
                await store.aclose()


async def submit(http: httpx.AsyncClient, tenant: int = 0) -> str:
    r = await http.post(SUBMIT.path, json=SUBMIT.body_example,
                        headers={**HELP.creds(tenant), "Prefer": "wait=0"})
    assert r.status_code == 202, r.text
    return HELP.job_id(SUBMIT, r)


async def poll(http: httpx.AsyncClient, job: str) -> httpx.Response:
    r = await http.get(HELP.status_url(job), headers=HELP.creds(0))
    assert r.status_code == 200, r.text
    return r


async def ok(http: httpx.AsyncClient, method: str, path: str, body: Any = None) -> Any:
    r = await http.request(method, "/_jobmock/" + path, json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_fault_set_on_one_replica_is_seen_on_the_other_and_cleared_there(
        redis_url: str) -> None:
    async def scenario() -> None:
        async with replicas(redis_url) as (a, b):
            job = await submit(a)
            assert "retry-after" in (await poll(b, job)).headers  # croma: while queued
            await ok(a, "POST", "faults", {"faults": ["drop_retry_after", "terminal_changes"]})
            assert "retry-after" not in (await poll(b, job)).headers
            assert (await ok(b, "GET", "faults"))["enabled"] == ["drop_retry_after",
                                                                "terminal_changes"]
            # terminal_changes: the first terminal answer is honest, later ones are not, on
            # whichever replica they come from (the fault's memory is shared).
            await ok(a, "POST", "clock/advance", {"seconds": 3600})
            first = (await poll(a, job)).json()["status"]
            assert (await poll(b, job)).json()["status"] != first
            await ok(b, "POST", "faults", {"faults": []})
            assert (await ok(a, "GET", "faults"))["enabled"] == []
            assert (await poll(a, job)).json()["status"] == first
            fresh = await submit(b)
            assert "retry-after" in (await poll(a, fresh)).headers

    asyncio.run(scenario())


SCENARIO = {
    "api": "croma",
    "description": "The second submit, on whichever replica, is answered 503.",
    "rules": [{"name": "second submit", "match": {"operation": "lookupPoliciaNacional",
                                                  "nth": [2]},
               "response": {"status": 503, "body": {"error": "busy"}}}],
}


def test_a_scenario_loaded_on_one_replica_plays_on_the_other(redis_url: str) -> None:
    async def scenario() -> None:
        async with replicas(redis_url) as (a, b):
            await submit(a)  # forgotten: loading a scenario starts from a clean state
            assert (await ok(a, "POST", "scenario", SCENARIO))["loaded"] == "scenario"
            assert (await ok(b, "GET", "jobs"))["jobs"] == []
            await submit(a)  # the first submit: as usual
            second = await b.post(SUBMIT.path, json=SUBMIT.body_example,
                                  headers={**HELP.creds(0), "Prefer": "wait=0"})
            assert second.status_code == 503 and second.json() == {"error": "busy"}
            await submit(a)  # the third: as usual again
            for http in (a, b):
                seen = await ok(http, "GET", "scenario")
                assert seen["loaded"] == "scenario"
                assert [(r["matched"], r["applied"]) for r in seen["rules"]] == [(3, 1)]

    asyncio.run(scenario())


def test_the_journal_read_on_one_replica_lists_the_others_requests_and_stays_capped(
        redis_url: str) -> None:
    async def scenario() -> None:
        async with replicas(redis_url, journal_size=5) as (a, b):
            job = await submit(a)
            for http in (a, b, a, b, b, a):
                await poll(http, job)
            for reader in (a, b):
                journal = await ok(reader, "GET", "requests")
                assert journal["total"] == 7 and journal["size"] == 5
                entries = journal["requests"]
                assert [e["seq"] for e in entries] == [3, 4, 5, 6, 7]
                assert {e["job_id"] for e in entries} == {job}
                # one masking key: the same credential reads alike whoever journaled it
                assert len({e["headers"]["authorization"] for e in entries}) == 1
            page = await ok(b, "GET", "requests?after=4&limit=2")
            assert [e["seq"] for e in page["requests"]] == [5, 6] and page["next"] == 6

    asyncio.run(scenario())


def test_the_advance_mode_set_on_one_replica_is_the_others(redis_url: str) -> None:
    async def scenario() -> None:
        async with replicas(redis_url) as (a, b):
            await ok(a, "POST", "advance", {"mode": "manual"})
            assert await ok(b, "GET", "advance") == {"mode": "manual", "polls": 1}
            job = await submit(b)
            await ok(a, "POST", "clock/advance", {"seconds": 3600})
            assert (await poll(a, job)).json()["status"] == "queued"  # manual: never moves

    asyncio.run(scenario())


def test_a_reset_on_one_replica_resets_all_of_it_on_the_other(redis_url: str) -> None:
    async def scenario() -> None:
        async with replicas(redis_url) as (a, b):
            await ok(a, "POST", "scenario", SCENARIO)
            await ok(a, "POST", "faults", {"faults": ["terminal_changes"]})
            job = await submit(a)
            await ok(a, "POST", "clock/advance", {"seconds": 3600})
            await poll(b, job)
            await ok(b, "POST", "reset", {})
            seen = await ok(a, "GET", "scenario")
            assert [(r["matched"], r["applied"]) for r in seen["rules"]] == [(0, 0)]
            journal = await ok(a, "GET", "requests")
            assert journal["total"] == 0 and journal["requests"] == []
            assert (await ok(a, "GET", "jobs"))["jobs"] == []
            assert (await ok(a, "GET", "faults"))["enabled"] == ["terminal_changes"]
            job = await submit(b)  # the first submit since the reset: not the rule's second
            await poll(a, job)
            journal = await ok(b, "GET", "requests")
            assert [e["seq"] for e in journal["requests"]] == [1, 2]

    asyncio.run(scenario())
