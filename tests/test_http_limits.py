"""Bounded input, in-process: every bundled API through the ASGI app.

A body past the limit is refused 413 (before a byte is read when it says its size; after
the first chunk past the limit otherwise), headers past theirs 431, a body that does not
arrive in time 408, a media type the operation does not list 415, JSON with NaN,
Infinity, numbers past a double's range or nesting past the limit 400, each in the API's
own error shape (its error of that status, else its validation error's shape with that
status). Valid JSON nested 990 deep is accepted where the schema allows it; an error
quotes a bad value's prefix only; a non-ASCII Basic credential is the API's 401.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from jobmock import Mock, VirtualClock, bundled_names, resolve_spec
from jobmock.asgi import Limits, create_app
from jobmock.spec import ApiSpec, ErrorDef, Operation
from jobmock.validation import MAX_JSON_DEPTH, _accepts

APIS = bundled_names()
BASE = "http://mock.test"


def body_op(spec: ApiSpec) -> Operation | None:
    """The first submit operation that takes a JSON body (None: the API has none)."""
    return next((o for o in spec.submit_operations if o.body_schema is not None), None)


def path_of(spec: ApiSpec, op: Operation) -> str:
    path = op.path
    for p in op.parameters:
        if p.location == "path":
            path = path.replace("{" + p.name + "}", "demo")
    return path


def creds(spec: ApiSpec) -> dict[str, str]:
    """Tenant A's credentials, and no inline wait (croma would hold a submit 55 s)."""
    return {**spec.auth.headers_for(spec.demo_tenants()[0][1]), "Prefer": "wait=0"}


def shape(value: Any) -> Any:
    """The keys of an error body, recursively (the values differ: messages, times)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    return type(value).__name__


def client_for(api: str, limits: Limits | None = None) -> tuple[Mock, TestClient]:
    mock = Mock(resolve_spec(api), clock=VirtualClock())
    return mock, TestClient(create_app(mock, limits=limits), base_url=BASE)


def validation_answer(spec: ApiSpec, client: TestClient) -> httpx.Response:
    """The API's answer to a small invalid request: a body that is not an object, or (an
    API whose submit takes no body) an empty path parameter. Its validation error."""
    op = body_op(spec)
    if op is None:
        op = spec.submit_operations[0]
        r = client.request(op.method, path_of(spec, op).replace("demo", ""), headers=creds(spec))
    else:
        r = client.post(path_of(spec, op), content=b"[1, 2, 3]",
                        headers={**creds(spec), "Content-Type": "application/json"})
    assert r.status_code == spec.errors["validation"].status, r.text
    return r


def submit(spec: ApiSpec) -> tuple[str, str]:
    op = body_op(spec) or spec.submit_operations[0]
    return op.method, path_of(spec, op)


# -- 413 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
def test_a_body_past_the_limit_is_413_in_the_apis_error_shape(api: str) -> None:
    spec = resolve_spec(api)
    mock, client = client_for(api, Limits(max_body=1000))
    with client:
        method, path = submit(spec)
        r = client.request(method, path, content=b'{"x": "' + b"a" * 2000 + b'"}',
                           headers={**creds(spec), "Content-Type": "application/json"})
        assert r.status_code == 413, r.text
        assert "1000 bytes" in r.text
        assert r.headers["connection"] == "close"
        own = next((e for e in spec.errors.values() if e.status == 413), None)
        if own is None:  # no 413 error of its own: its validation error's shape
            bad = validation_answer(spec, client)
            assert shape(r.json()) == shape(bad.json())
            if isinstance(bad.json().get("statusCode"), int):  # a wrapper that echoes it
                assert r.json()["statusCode"] == 413
        assert list(mock.engine.jobs()) == []
        assert client.get("/_jobmock/requests").json()  # journaled like any answer


def test_a_spec_with_a_413_error_answers_with_it() -> None:
    spec = resolve_spec("croma")
    own = ErrorDef("too_large", 413, lambda ctx: {"too_large": ctx["message"]}, {})
    mock = Mock(dataclasses.replace(spec, errors={**spec.errors, "too_large": own}),
                clock=VirtualClock())
    with TestClient(create_app(mock, limits=Limits(max_body=10)), base_url=BASE) as client:
        method, path = submit(spec)
        r = client.request(method, path, content=b"x" * 11, headers=creds(spec))
    assert r.status_code == 413
    assert r.json() == {"too_large": "the request body is larger than 10 bytes"}


def test_a_control_plane_body_past_the_limit_is_a_plain_413() -> None:
    _, client = client_for("croma", Limits(max_body=100))
    with client:
        r = client.post("/_jobmock/scenario", content=b"x" * 101)
    assert r.status_code == 413 and r.json() == {"error": "the request body is larger than 100 bytes"}


async def call(app: Any, scope_headers: list[tuple[bytes, bytes]],
               receive: Callable[[], Any], method: str = "POST", path: str = "/v1/task",
               ) -> tuple[int, bytes]:
    """One raw ASGI request; the status and body sent."""
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
             "query_string": b"", "headers": scope_headers, "scheme": "http",
             "server": ("mock.test", 80)}
    await app(scope, receive, send)
    await app.aclose()
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def test_an_announced_size_past_the_limit_is_refused_before_reading() -> None:
    spec = resolve_spec("cloro")
    app = create_app(Mock(spec, clock=VirtualClock()), limits=Limits(max_body=1000))
    headers = [(k.lower().encode(), v.encode()) for k, v in creds(spec).items()]

    async def receive() -> dict[str, Any]:
        raise AssertionError("the body was read")

    status, _ = asyncio.run(call(app, [*headers, (b"content-length", b"1001")], receive))
    assert status == 413
    status, _ = asyncio.run(call(app, [*headers, (b"content-length", b"9" * 5000)], receive))
    assert status == 413


def test_a_chunked_body_is_read_only_until_it_passes_the_limit() -> None:
    spec = resolve_spec("cloro")
    app = create_app(Mock(spec, clock=VirtualClock()), limits=Limits(max_body=10_000))
    headers = [(k.lower().encode(), v.encode()) for k, v in creds(spec).items()]
    reads = 0

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"x" * 1000, "more_body": reads < 1000}

    status, _ = asyncio.run(call(app, [*headers, (b"transfer-encoding", b"chunked")], receive))
    assert status == 413
    assert reads == 11  # the 11th chunk passes 10,000 bytes; the other 989 are never read


def test_a_body_in_many_chunks_within_the_limit_is_read_whole() -> None:
    spec = resolve_spec("cloro")
    mock = Mock(spec, clock=VirtualClock())
    app = create_app(mock)
    op = body_op(spec)
    assert op is not None
    raw = json.dumps({**op.body_example, "pad": "p" * 300_000}).encode()
    chunks = [raw[i:i + 1000] for i in range(0, len(raw), 1000)]
    headers = [(k.lower().encode(), v.encode()) for k, v in creds(spec).items()]

    async def receive() -> dict[str, Any]:
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    status, _ = asyncio.run(call(app, [*headers, (b"content-type", b"application/json")],
                                 receive, path=op.path))
    assert status < 300
    assert [job.request["pad"] for job in mock.engine.jobs()] == ["p" * 300_000]


# -- 408, 431 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
def test_a_body_that_does_not_arrive_in_time_is_408(api: str) -> None:
    spec = resolve_spec(api)
    app = create_app(Mock(spec, clock=VirtualClock()), limits=Limits(read_timeout=0.05))
    headers = [(k.lower().encode(), v.encode()) for k, v in creds(spec).items()]
    first = True

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b'{"a', "more_body": True}
        await asyncio.Event().wait()  # the rest never comes
        raise AssertionError

    method, path = submit(spec)
    status, body = asyncio.run(call(app, [*headers, (b"content-length", b"100")], receive,
                                    method=method, path=path))
    assert status == 408
    assert "did not arrive within 0.05 s" in body.decode()


@pytest.mark.parametrize("api", APIS)
def test_headers_past_the_limit_are_431_in_the_apis_shape(api: str) -> None:
    spec = resolve_spec(api)
    _, client = client_for(api, Limits(max_headers=4096))
    with client:
        r = client.get(spec.status_operation.path, headers={**creds(spec), "X-Pad": "p" * 5000})
        assert r.status_code == 431
        assert "at most 4096" in r.text and "p" * 50 not in r.text
        ok = client.get("/_jobmock/health", headers={"X-Pad": "p" * 3000})
        assert ok.status_code == 200


# -- media types ------------------------------------------------------------------------------


@pytest.mark.parametrize("api", [a for a in APIS if body_op(resolve_spec(a)) is not None])
@pytest.mark.parametrize("ctype", ["application/xml", "application/x-www-form-urlencoded",
                                   "text/plain", "application/vnd.api+json", "json",
                                   "application/json; charset=latin-1"])
def test_a_media_type_the_operation_does_not_list_is_415(api: str, ctype: str) -> None:
    spec = resolve_spec(api)
    op = body_op(spec)
    assert op is not None
    mock, client = client_for(api)
    with client:
        r = client.post(path_of(spec, op), content=json.dumps(op.body_example),
                        headers={**creds(spec), "Content-Type": ctype})
        bad = validation_answer(spec, client)
    assert r.status_code == 415, r.text
    assert shape(r.json()) == shape(bad.json())
    assert list(mock.engine.jobs()) == []


@pytest.mark.parametrize("api", [a for a in APIS if body_op(resolve_spec(a)) is not None])
@pytest.mark.parametrize("ctype", ["application/json", "Application/JSON; charset=UTF-8",
                                   'application/json;charset="utf-8"', None])
def test_json_with_utf8_or_without_a_content_type_is_accepted(api: str, ctype: str | None,
                                                              ) -> None:
    spec = resolve_spec(api)
    op = body_op(spec)
    assert op is not None
    mock, client = client_for(api)
    headers = {**creds(spec), **({"Content-Type": ctype} if ctype else {})}
    with client:
        r = client.post(path_of(spec, op), content=json.dumps(op.body_example).encode(),
                        headers=headers)
    assert r.status_code < 300, r.text
    assert len(list(mock.engine.jobs())) == 1


def test_media_ranges_match_as_rfc_9110_says() -> None:
    assert _accepts("application/json", "application/json")
    assert _accepts("*/*", "text/plain")
    assert _accepts("application/*", "application/xml")
    assert _accepts("application/*+json", "application/vnd.api+json")
    assert not _accepts("application/*+json", "application/xml")
    assert not _accepts("application/json", "application/vnd.api+json")
    assert not _accepts("text/*", "application/json")


# -- JSON -------------------------------------------------------------------------------------


@pytest.mark.parametrize("api", [a for a in APIS if body_op(resolve_spec(a)) is not None])
@pytest.mark.parametrize("bad", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400",
                                 b"1" * 400])
def test_non_finite_and_out_of_range_numbers_are_400_and_never_stored(api: str, bad: bytes,
                                                                      ) -> None:
    spec = resolve_spec(api)
    op = body_op(spec)
    assert op is not None
    mock, client = client_for(api)
    raw = json.dumps({**op.body_example, "extra": "HERE"}).encode().replace(b'"HERE"', bad)
    with client:
        r = client.post(path_of(spec, op), content=raw,
                        headers={**creds(spec), "Content-Type": "application/json"})
        listing = client.get("/_jobmock/jobs")
    assert r.status_code == spec.errors["validation"].status, r.text
    assert "not valid JSON" in r.text and "1" * 60 not in r.text
    assert list(mock.engine.jobs()) == []
    assert listing.status_code == 200


def nested(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 else {"n": value}
    return value


@pytest.mark.parametrize("api", ["cloro", "docimprint"])
def test_json_nested_990_deep_is_accepted_where_the_schema_allows_it(api: str) -> None:
    spec = resolve_spec(api)
    op = body_op(spec)
    assert op is not None
    body = json.loads(json.dumps(op.body_example))
    free = body["payload"] if api == "cloro" else body  # the parts the schema leaves open
    free["deep"] = nested(990)
    mock, client = client_for(api)
    with client:
        r = client.post(path_of(spec, op), json=body, headers=creds(spec))
        listing = client.get("/_jobmock/jobs")
    assert r.status_code < 300, r.text
    (job,) = mock.engine.jobs()
    stored = job.request["payload"] if api == "cloro" else job.request
    assert stored["deep"] == nested(990)
    assert listing.status_code == 200


def test_json_nested_past_the_limit_is_400_not_a_crash() -> None:
    spec = resolve_spec("cloro")
    op = body_op(spec)
    assert op is not None
    mock, client = client_for("cloro")
    for depth in (MAX_JSON_DEPTH + 1, 50_000):
        raw = (b'{"taskType": "CHATGPT", "payload": {"prompt": "hi", "deep": '
               + b"[" * depth + b"]" * depth + b"}}")
        with client:
            r = client.post(op.path, content=raw,
                            headers={**creds(spec), "Content-Type": "application/json"})
        assert r.status_code == 400, r.text
        assert f"nests deeper than {MAX_JSON_DEPTH} levels" in r.text
    assert list(mock.engine.jobs()) == []


@pytest.mark.parametrize("api", [a for a in APIS if body_op(resolve_spec(a)) is not None])
def test_an_error_quotes_only_a_prefix_of_a_bad_value(api: str) -> None:
    spec = resolve_spec(api)
    op = body_op(spec)
    assert op is not None
    _, client = client_for(api)
    huge = "Z" * 1_000_000
    with client:
        as_value = client.post(path_of(spec, op), json={**op.body_example, **{
            k: huge for k in list(op.body_example)[:1]}}, headers=creds(spec))
        as_key = client.post(path_of(spec, op), json={**op.body_example, huge: 1},
                             headers=creds(spec))
    bad = [r for r in (as_value, as_key) if r.status_code >= 400]
    assert bad, "neither a huge value nor a huge key was refused"
    for r in bad:
        assert len(r.content) < 2000, len(r.content)
        assert "Z" * 41 not in r.text


# -- credentials ------------------------------------------------------------------------------


def test_bronid_non_ascii_basic_credentials_are_its_401() -> None:
    spec = resolve_spec("bronid")
    _, client = client_for("bronid")
    status = spec.status_operation
    poll = status.path.replace("{trace}", "t").replace("{type}", "watchlist").replace(
        "{jobId}", "x" * 21)
    with client:
        for raw in (b"Basic \xe9", b"Basic \xe9\xe9==", "Basic " + base64.b64encode(
                b"\xff\xfe:x").decode()):
            value = raw if isinstance(raw, bytes) else raw.encode()
            for method, path in (("POST", "/v5/verifications/t/watchlist"), ("GET", poll)):
                r = client.request(method, path, headers=[(b"authorization", value)])
                assert r.status_code == spec.errors[spec.auth.invalid].status, (raw, r.text)
                assert r.json()["error"]["type"] == "unauthorized"
