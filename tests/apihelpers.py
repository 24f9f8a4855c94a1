"""Helpers shared by the HTTP tests of the bundled APIs (tests/test_http_*.py).

:class:`ApiHelpers` reads what a test expects from one spec: tenant credentials, the
schema the spec documents for an answer (``check`` validates a body against it, formats
checked), rendered error bodies, the job id where ``job_id_from`` says it is, and the
Retry-After rule. The module-level functions drive the control plane of a mock behind a
starlette ``TestClient`` (``advance``, ``force``, ...) or hold an inline wait open on an
``httpx.AsyncClient`` in the test's own event loop (``serving``, ``held``, ``only_job``).
"""

from __future__ import annotations

import contextlib
import inspect
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import httpx
import jsonschema
from hypothesis import strategies as st
from starlette.testclient import TestClient

from jobmock import Mock
from jobmock.asgi import create_app
from jobmock.spec import ApiSpec, Operation
from jobmock.validation import schema_validator

#: The base URL the test clients use.
BASE = "http://mock.test"


def resolve(document: Any, node: Any) -> Any:
    """``node`` with its ``$ref`` chain (``#/...`` pointers into ``document``) followed."""
    while isinstance(node, dict) and "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


class ApiHelpers:
    """Expectations read from ``spec``; ``noun`` names a job in failure messages."""

    def __init__(self, spec: ApiSpec, noun: str = "job") -> None:
        self.spec = spec
        self.noun = noun

    def creds(self, index: int) -> dict[str, str]:
        """The auth headers of demo tenant ``index``."""
        return self.spec.auth.headers_for(self.spec.demo_tenants()[index][1])

    def resolve(self, node: Any) -> Any:
        """``node`` with its ``$ref`` chain into the spec's document followed."""
        return resolve(self.spec.document, node)

    def documented(self, op: Operation, status: int) -> jsonschema.Draft202012Validator:
        """A validator (formats checked) for the body the spec documents for ``op`` at ``status``."""
        responses = self.resolve(self.spec.document["paths"][op.path])[op.method.lower()]["responses"]
        assert str(status) in responses, f"{op.operation_id} documents no {status} answer"
        schema = self.resolve(responses[str(status)])["content"]["application/json"]["schema"]
        return schema_validator(self.spec, schema).evolve(
            format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)

    def check(self, op: Operation, response: httpx.Response) -> Any:
        """The JSON body of ``response``, after checking it matches the documented schema."""
        body = response.json()
        errors = [f"/{'/'.join(map(str, e.absolute_path))}: {e.message}"
                  for e in self.documented(op, response.status_code).iter_errors(body)]
        assert not errors, f"{op.operation_id} {response.status_code} body breaks its schema: {errors}"
        return body

    def error_body(self, name: str, **ctx: Any) -> Any:
        """The body the spec's error template ``name`` renders."""
        return self.spec.errors[name].body(ctx)

    @staticmethod
    def job_id_sources(op: Operation, response: httpx.Response) -> list[Any]:
        """What each place ``op``'s job_id_from names holds in ``response`` (None if absent)."""
        found: list[Any] = []
        for source in op.job_id_from:
            kind, _, where = source.partition(":")
            if kind == "header":
                found.append(response.headers.get(where))
            else:
                value: Any = response.json()
                for part in where.strip("/").split("/"):
                    value = value.get(part) if isinstance(value, dict) else None
                found.append(value)
        return found

    def job_id(self, op: Operation, response: httpx.Response) -> str:
        """The job id, from every place the spec's job_id_from names; they must agree."""
        found = self.job_id_sources(op, response)
        assert found and all(isinstance(v, str) and v for v in found), found
        assert len(set(found)) == 1, \
            f"job id sources disagree: {dict(zip(op.job_id_from, found, strict=True))}"
        return str(found[0])

    def job_id_present(self, op: Operation, response: httpx.Response) -> str:
        """The job id from the places job_id_from names that this answer has; all agree."""
        ids = self.job_id_sources(op, response)
        present = {v for v in ids if v is not None}
        assert len(present) == 1, ids
        return str(present.pop())

    def assert_retry_after(self, response: httpx.Response, status_word: str) -> None:
        """Retry-After is a non-negative integer while the job is not terminal, absent after."""
        value = response.headers.get("Retry-After")
        if self.spec.lifecycle.states[status_word] in self.spec.retry_after_roles:
            assert value is not None and re.fullmatch(r"[0-9]+", value), value
            assert int(value) == self.spec.retry_after_seconds
        else:
            assert value is None, f"Retry-After {value!r} on a {status_word} {self.noun}"

    def status_url(self, job_id: str) -> str:
        """The status operation's path for ``job_id`` (its only path parameter)."""
        status = self.spec.status_operation
        return status.path.replace("{" + (status.job_id_param or "id") + "}", job_id)


def json_values(text: int, items: int, keys: int, leaves: int) -> st.SearchStrategy[Any]:
    """Any JSON value: strings up to ``text`` characters, lists up to ``items`` items,
    objects up to ``keys`` keys (names up to 8 characters), ``leaves`` scalars at most."""
    return st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=text),
        lambda inner: st.lists(inner, max_size=items) | st.dictionaries(st.text(max_size=8), inner,
                                                                         max_size=keys),
        max_leaves=leaves,
    )


# -- the control plane, through a TestClient ---------------------------------------------------


def advance(client: TestClient, seconds: float) -> None:
    """Move the mock's virtual clock by ``seconds``."""
    r = client.post("/_jobmock/clock/advance", json={"seconds": seconds})
    assert r.status_code == 200, r.text


def post_outcome(client: TestClient, job_id: str, status: str, **extra: Any) -> httpx.Response:
    """Ask the control plane to force ``job_id`` to ``status``; the answer, unchecked."""
    return client.post(f"/_jobmock/jobs/{job_id}/outcome", json={"status": status, **extra})


def force(client: TestClient, job_id: str, status: str, **extra: Any) -> httpx.Response:
    """Force ``job_id`` to ``status`` through the control plane, which must accept it."""
    r = post_outcome(client, job_id, status, **extra)
    assert r.status_code == 200, r.text
    return r


def job_count(client: TestClient) -> int:
    """How many jobs the mock holds."""
    return len(client.get("/_jobmock/jobs").json()["jobs"])


def statuses(client: TestClient, tenant: str | None = None) -> dict[str, str]:
    """Every job's status word by id (only ``tenant``'s if given), in submission order."""
    query = {"tenant": tenant} if tenant else {}
    return {j["id"]: j["status"] for j in client.get("/_jobmock/jobs", params=query).json()["jobs"]}


# -- inline waits: a request held open while the test moves the clock ----------------------------


@contextlib.asynccontextmanager
async def serving(mock: Mock) -> AsyncIterator[httpx.AsyncClient]:
    """An AsyncClient on the mock's ASGI app, in this event loop."""
    app = create_app(mock)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
            yield c
    finally:
        await app.aclose()


async def held(send: Callable[[], Awaitable[httpx.Response]],
               *steps: Callable[[], Any]) -> tuple[httpx.Response, int]:
    """Start ``send()``; once every task is blocked, run ``steps`` one at a time until it
    answers. Returns the answer and how many steps ran before it came."""
    box: dict[str, httpx.Response] = {}

    async def go() -> None:
        box["r"] = await send()

    ran = 0
    async with anyio.create_task_group() as tg:
        tg.start_soon(go)
        await anyio.wait_all_tasks_blocked()
        for step in steps:
            if "r" in box:
                break
            result = step()
            if inspect.isawaitable(result):
                await result
            ran += 1
            await anyio.wait_all_tasks_blocked()
        assert "r" in box, f"no answer after all {len(steps)} steps"
    return box["r"], ran


def only_job(mock: Mock) -> str:
    """The id of the mock's one and only job."""
    jobs = list(mock.engine.jobs())
    assert len(jobs) == 1
    return jobs[0].id

