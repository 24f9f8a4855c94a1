"""Helpers shared by the control-plane hardening tests (test_control_guard.py, in-process,
and test_control_hardening.py, against served mocks): hostile inputs, a submit for any API,
and what a refusal looks like."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.testclient import TestClient

from apihelpers import resolve
from jobmock import Mock, VirtualClock, resolve_spec
from jobmock.asgi import create_app
from jobmock.spec import ApiSpec, Operation

BASE = "http://mock.test"
JSON = {"Content-Type": "application/json"}
YAML = {"Content-Type": "application/yaml"}
CROMA = resolve_spec("croma")
CLORO = resolve_spec("cloro")
#: A credential no tenant has: it must be hidden as well as the real ones.
WRONG = "sk_wrong_credential_zz9"
#: The 384-byte kind of YAML alias bomb from the issue: nine levels of nine aliases.
ALIAS_BOMB = b"\n".join(
    [b'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{n}: &{n} [{','.join(['*' + p] * 9)}]".encode() for p, n in zip("abcdefgh", "bcdefghi",
                                                                         strict=True)])
#: The same bomb through YAML merge keys (each level merges the one below nine times).
MERGE_BOMB = b"\n".join(
    [b"a: &a {k0: 0, k1: 1, k2: 2, k3: 3, k4: 4, k5: 5, k6: 6, k7: 7, k8: 8}"]
    + [f"{n}: &{n} {{<<: [{', '.join(['*' + p] * 9)}]}}".encode() for p, n in zip(
        "abcdefgh", "bcdefghi", strict=True)])


def example_path(spec: ApiSpec, op: Operation, job_id: str | None = None) -> str:
    """``op``'s path: ``job_id`` in its job id parameter, an accepted value in the others (the
    first of an enum, following ``$ref``s; ``demo-NAME`` where any string goes)."""
    path = op.path
    for p in op.parameters:
        if p.location != "path":
            continue
        if job_id is not None and p.name == op.job_id_param:
            value = job_id
        else:
            schema = resolve(spec.document, p.schema)
            enum = schema.get("enum") if isinstance(schema, dict) else None
            value = str(enum[0]) if enum else f"demo-{p.name}"
        path = path.replace("{" + p.name + "}", value)
    return path


def make(api: str = "croma", **options: Any) -> tuple[Mock, TestClient]:
    """A mock of ``api`` on a virtual clock and a (not yet entered) client of its ASGI app."""
    options.setdefault("clock", VirtualClock())
    mock = Mock(resolve_spec(api), **options)
    client = TestClient(create_app(mock), base_url=BASE)
    return mock, client


def submit(spec: ApiSpec, client: Any, tenant: int = 0, credential: str | None = None,
           body: Any = None) -> httpx.Response:
    """Submit the spec's first operation's example (no inline wait) as demo tenant ``tenant``."""
    op = spec.submit_operations[0]
    headers = {**spec.auth.headers_for(credential or spec.demo_tenants()[tenant][1]),
               "Prefer": "wait=0"}
    query = spec.auth.query_for(credential or spec.demo_tenants()[tenant][1])
    r: httpx.Response = client.post(example_path(spec, op),
                                    json=op.body_example if body is None else body,
                                    headers=headers, params=query)
    return r


def job_ids(mock: Mock) -> list[str]:
    """The ids of every job ``mock`` holds, in submission order."""
    return [j.id for j in mock.engine.jobs()]


def assert_refused(r: httpx.Response, status: int, *, most: int = 600) -> str:
    """``r`` is a control-plane refusal: ``status``, ``{"error": "..."}``, a short message."""
    assert r.status_code == status, r.text[:500]
    message = r.json()["error"]
    assert isinstance(message, str) and message
    assert len(message) <= most, f"a {len(message)}-character message: {message[:200]}..."
    return message
