"""A bad-input corpus against a real ``jobmock serve`` of every bundled API, on both servers.

Malformed and hostile bodies, encodings, sizes, media types, header garbage (through a
client and as raw bytes on a socket), job id spellings, query strings and methods. The
server must answer every one without a 5xx and without a hang (a request still unanswered
after :data:`CLIENT_TIMEOUT` seconds; the server's read timeout is shorter), and be alive
and healthy afterwards. Counts per API are in the failure message.

The server runs ``--clock real --speed 1000`` (an inline wait a bad ``Prefer`` falls back
to ends in milliseconds) and ``--webhooks record``: a callback URL in the corpus is never
called.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from jobmock import bundled_names, resolve_spec
from jobmock.pointers import without
from jobmock.spec import ApiSpec, Operation
from jobmock.testing import ServeProcess

pytestmark = pytest.mark.live

CLIENT_TIMEOUT = 10.0
READ_TIMEOUT = "2"

BAD_BODIES: list[bytes] = [
    b"{", b"}", b"[", b"nul", b"\x00", b"\xff\xfe\x00", b'{"a":', b'{"a" 1}', b"[1,]",
    b"{'a': 1}", b"1", b"true", b'"str"', b"null", b"[]", b"{}", b"NaN", b"-Infinity",
    b'{"a": NaN}', b'{"a": 1e400}', b'{"a": -1e400}', b'{"a": 1e-400}', b'{"a": -0}',
    b'{"a": ' + b"9" * 400 + b"}", b'{"a": ' + b"9" * 5000 + b"}", b'{"a": "\\ud800"}',
    b'{"a": "\\u0000"}', b'{"\\ud800": 1}', bytes(range(256)), b"\xef\xbb\xbf{}",
    "{}".encode("utf-16"), "{}".encode("utf-32"), b"[" * 990 + b"]" * 990,
    b"[" * 5000 + b"]" * 5000, b"[" * 100_000, b'{"a":' * 3000 + b"1" + b"}" * 3000,
    b" " * 100_000, b'{"a": "' + b"x" * 1_000_000 + b'"}',
    json.dumps({f"k{i}": i for i in range(50_000)}).encode(),
    b'{"a": 1, "a": 2}', b"\n\t\r {} \n",
]
ODD_VALUES: list[Any] = [
    None, 0, -1, 2**63, 1e308, "", " ", "x" * 100_000, [], {}, True, "\u0000", "\U0001f4a5",
    "../../etc/passwd", "<script>alert(1)</script>", "' OR 1=1 --", "%s%n", [None] * 1000,
    {"$ref": "#/"}, "\ud800",
]
CONTENT_TYPES = [
    "application/xml", "application/x-www-form-urlencoded", "multipart/form-data",
    "text/plain", "a/b/c", "", ";", "application/json; charset=utf-16",
    "application/json;;;", "application/json; charset=" + "x" * 5000, "*/*",
    "application/json, text/plain", "APPLICATION/JSON", "application/problem+json",
]
JOB_IDS = [
    "", " ", "%00", "%2F", "..", "%2E%2E", "a" * 10_000, "%E3%82%B8%E3%83%A7%E3%83%96",
    "%ff%fe", "null", "0", "-1", "1e400", "NaN", "%27%20OR%201%3D1", "%0d%0aX-Injected:%201",
    "job/extra/segments", "%252F", "%u0041", "\\", "~", "%",
]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "FOO", "get"]
QUERIES = ["a=%ff", "a=" + "x" * 10_000, "a=1&a=2&a=3", "%=%", "&&&", "a", "=", "a=%00",
           "wait=" + "9" * 400, "limit=-1&after=%ff"]
RAW_REQUESTS = [
    b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", b"GET /\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-A: \xff\xfe\x80\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n folded\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nabcde",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"9" * 40 + b"\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
    b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 2000 + b"\r\n",
    b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\n\x00\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\"",  # never finished
]


class Tally:
    """Every answer, by what it was: a 5xx or a hang is a failure, anything else is fine."""

    def __init__(self) -> None:
        self.sent = 0
        self.failures: list[str] = []
        self.statuses: dict[int, int] = {}

    def note(self, what: str, status: int | None, error: str | None = None,
             documented: frozenset[int] = frozenset()) -> None:
        """``documented``: the 5xx statuses the operation documents as an answer (croma's
        502-504 for a job that fails within an inline wait); never 500."""
        self.sent += 1
        if status is not None:
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status >= 500 and (status == 500 or status not in documented):
                self.failures.append(f"{what}: {status}")
        elif error is not None:
            self.failures.append(f"{what}: {error}")

    def send(self, client: httpx.Client, what: str, method: str, url: str,
             documented: frozenset[int], **kw: Any) -> None:
        try:
            r = client.request(method, url, **kw)
        except httpx.TimeoutException as exc:
            self.note(what, None, f"hang ({type(exc).__name__})")
        except httpx.TransportError:
            self.note(what, None)  # the server closed the connection: an answer, not a hang
        else:
            self.note(what, r.status_code, documented=documented)


def raw_status(port: int, data: bytes) -> tuple[int | None, str | None]:
    """Send ``data`` as is; the status the server answers, or (None, why) on a hang."""
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as s:
        try:
            s.sendall(data)
        except OSError:
            return None, None  # closed on us mid-send: refused, not hung
        buf = b""
        try:
            while b"\r\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    return None, None  # closed without an answer: refused, not hung
                buf += chunk
        except TimeoutError:
            return None, "hang"
        except OSError:
            return None, None
    parts = buf.split(b" ", 2)
    return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None), None


def creds(spec: ApiSpec) -> dict[str, str]:
    return spec.auth.headers_for(spec.demo_tenants()[0][1])


def path_for(op: Operation, job_id: str = "demo") -> str:
    """``op``'s path: ``job_id`` as the job id, an accepted value in any other parameter."""
    path = op.path
    for p in op.parameters:
        if p.location == "path":
            enum = p.schema.get("enum")
            value = job_id if p.name == op.job_id_param else str(enum[0]) if enum else "demo"
            path = path.replace("{" + p.name + "}", value)
    return path


def safe_example(spec: ApiSpec, op: Operation) -> Any:
    """The operation's example body, without a callback URL (nobody asked for traffic)."""
    body = json.loads(json.dumps(op.body_example)) if op.body_example is not None else {}
    if spec.webhooks is not None and isinstance(body, dict):
        body = without(body, spec.webhooks.url_pointer)
    return body


def documented_5xx(op: Operation) -> frozenset[int]:
    return frozenset(int(s) for s in op.documented_statuses
                     if s.isdigit() and 500 < int(s) < 600)


def corpus(spec: ApiSpec) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(what, method, path, request keywords) for every request of the corpus."""
    a = {**creds(spec), "Prefer": "wait=0"}  # no inline wait but where Prefer is the garbage
    status = spec.status_operation
    for op in spec.submit_operations[:2]:
        path = path_for(op)
        json_a = {**a, "Content-Type": "application/json"}
        for i, raw in enumerate(BAD_BODIES):
            yield f"{op.operation_id} bad body {i}", op.method, path, {"content": raw,
                                                                       "headers": json_a}
        example = safe_example(spec, op)
        if isinstance(example, dict):
            for key in list(example)[:4]:
                for j, value in enumerate(ODD_VALUES):
                    body = {**example, key: value}
                    raw = json.dumps(body, allow_nan=False).encode("utf-8", "surrogatepass")
                    yield f"{op.operation_id} {key}=odd {j}", op.method, path, {
                        "content": raw, "headers": json_a}
        for ctype in CONTENT_TYPES:
            yield f"{op.operation_id} ctype {ctype[:30]!r}", op.method, path, {
                "content": json.dumps(example).encode(), "headers": {**a, "Content-Type": ctype}}
        yield f"{op.operation_id} body 5 MB", op.method, path, {
            "content": b"x" * (5 * 1024 * 1024), "headers": json_a}
        for prefer in ("wait=-1", "wait=99999999999", "wait=abc", "wait=1e400", "wait=" + "9" * 400,
                       "wait=5, wait=0", "respond-async"):
            yield f"{op.operation_id} Prefer {prefer[:20]}", op.method, path, {
                "content": json.dumps(example).encode(), "headers": {**json_a, "Prefer": prefer}}
    for job_id in JOB_IDS:
        yield f"poll id {job_id[:30]!r}", "GET", path_for(status, job_id), {"headers": a}
    for method in METHODS:
        for path in (path_for(spec.submit_operations[0]), path_for(status, "x"), "/",
                     "/_jobmock/health"):
            yield f"{method} {path}", method, path, {"headers": a}
    for query in QUERIES:
        yield f"query {query[:30]!r}", "GET", path_for(status, "x") + "?" + query, {"headers": a}
    for name, value in _auth_garbage(spec):
        yield f"auth {value[:30]!r}", "GET", path_for(status, "x"), {
            "headers": {name: value.encode()}}
    yield "headers 20 KB", "GET", path_for(status, "x"), {"headers": {**a, "X-Pad": "p" * 20_000}}
    yield "500 headers", "GET", path_for(status, "x"), {
        "headers": [*a.items(), *((f"X-H{i}", "v") for i in range(500))]}


def _auth_garbage(spec: ApiSpec) -> Iterator[tuple[str, str]]:
    name = spec.auth.param if spec.auth.location == "header" else "Authorization"
    for value in ("", " ", "Bearer", "Bearer  ", "Basic", "Basic ====", "Basic é",
                  "Basic " + base64.b64encode(b"no-colon").decode(),
                  "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(), "Bearer " + "t" * 10_000,
                  "Digest x", "bearer sk_test", "x" * 5000, "Basic " + "A" * 10_001):
        yield name, value


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
@pytest.mark.parametrize("api", bundled_names())
def test_a_bad_input_corpus_gets_no_5xx_no_hang_and_the_server_lives(api: str, server: str,
                                                                      ) -> None:
    spec = resolve_spec(api)
    tally = Tally()
    with ServeProcess(api, "--clock", "real", "--speed", "1000", "--server", server,
                      "--webhooks", "record", "--read-timeout", READ_TIMEOUT) as served, \
            httpx.Client(base_url=served.url, timeout=CLIENT_TIMEOUT) as client:
        documented = frozenset().union(*(documented_5xx(o) for o in spec.submit_operations))
        requests = list(corpus(spec))
        for what, method, path, kw in requests:
            tally.send(client, what, method, served.url + path, documented, **kw)
        for i, data in enumerate(RAW_REQUESTS):
            status, hung = raw_status(served.port, data)
            tally.note(f"raw request {i}", status, hung)
        health = client.get("/_jobmock/health")
        assert served.proc is not None
        alive = served.proc.poll() is None
    assert alive, served.stderr[-3000:]
    assert health.status_code == 200
    assert tally.sent == len(requests) + len(RAW_REQUESTS) > 150
    assert not tally.failures, (f"{len(tally.failures)} of {tally.sent} failed: "
                                f"{tally.failures[:20]}; statuses {tally.statuses}")
    assert "Traceback" not in served.stderr, served.stderr[-3000:]
