"""The control plane, hardened (issue 12), against real servers.

A corpus of hostile control-plane inputs goes to a real served mock of every bundled API
(``jobmock.testing.serve_mock``: uvicorn on a loopback port) after traffic with every
tenant's credential (and a wrong one, and none) and webhooks sent to a loopback receiver:
no answer is a 5xx, ``/_jobmock/health`` answers 200 after each, no refusal is large, and
no credential or signature value appears in any control-plane answer. Then real ``jobmock
serve`` processes check the command line: the token (from the environment), loopback names
only, ``--journal-secrets``, ``--control off``, and the refusal to serve a host that is not
loopback without a token. Each refusal on its own: test_control_guard.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from controlhelpers import (
    ALIAS_BOMB,
    CROMA,
    JSON,
    MERGE_BOMB,
    WRONG,
    assert_refused,
    example_path,
    submit,
)
from jobmock import bundled_names, resolve_spec
from jobmock.control import MAX_BODY, MAX_RULES
from jobmock.receiver import WebhookReceiver
from jobmock.spec import ApiSpec
from jobmock.testing import free_port, serve_mock
from webhookhelpers import with_pointer

# -- the probe corpus against a served mock ------------------------------------------------------


def _corpus(job: str) -> list[tuple[str, str, dict[str, str], bytes]]:
    """Hostile control-plane requests: (method, path, headers, body)."""
    big = "x" * 200_000
    yaml_ = {"Content-Type": "application/yaml"}
    out: list[tuple[str, str, dict[str, str], bytes]] = []
    for raw in (b"NaN", b"Infinity", b"-Infinity", b"1e400", b"1e18", b"3e11", b"-1",
                b"9" * 5000, b'"5"', b"true", b"null", b"[]", b"{}"):
        out.append(("POST", "/_jobmock/clock/advance", JSON, b'{"seconds": ' + raw + b"}"))
        out.append(("POST", "/_jobmock/advance", JSON, b'{"mode": "polls", "polls": ' + raw + b"}"))
        out.append(("POST", f"/_jobmock/jobs/{job}/outcome", JSON,
                    b'{"status": "failed", "error": {"n": ' + raw + b"}}"))
    for raw in (b"", b"{", b"\xff\xfe\x00", b"[1, 2]", b'"s"', b"[" * 100_000,
                json.dumps({"seconds": big}).encode(), b" " * (MAX_BODY + 10)):
        for path in ("/_jobmock/clock/advance", "/_jobmock/advance", "/_jobmock/faults",
                     "/_jobmock/scenario", f"/_jobmock/jobs/{job}/outcome", "/_jobmock/reset"):
            out.append(("POST", path, JSON, raw))
    out += [
        ("POST", "/_jobmock/scenario", yaml_, ALIAS_BOMB),
        ("POST", "/_jobmock/scenario", yaml_, MERGE_BOMB),
        ("POST", "/_jobmock/scenario", yaml_, b"api: /dev/zero\ndescription: d\n"),
        ("POST", "/_jobmock/scenario", yaml_, b"api: croma\ndescription: 2026-13-45\n"),
        ("POST", "/_jobmock/scenario", yaml_, b"&a [*a]"),
        ("POST", "/_jobmock/scenario", JSON, json.dumps({
            "api": "croma", "description": "d",
            "rules": [{"response": {"status": 503}}] * (MAX_RULES + 1)}).encode()),
        ("POST", "/_jobmock/faults", JSON, json.dumps({"faults": ["nope"] * 50_000}).encode()),
        ("POST", "/_jobmock/faults", JSON, b'{"faults": "drop_retry_after"}'),
        ("POST", f"/_jobmock/jobs/{job}/outcome", JSON, json.dumps({"status": big}).encode()),
        ("POST", f"/_jobmock/jobs/{job}/outcome", JSON,
         b'{"status": "failed", "error": ' + b"[" * 150 + b"]" * 150 + b"}"),
        ("POST", f"/_jobmock/jobs/{'y' * 20_000}/outcome", JSON, b'{"status": "failed"}'),
        ("POST", "/_jobmock/credits", JSON, b'{"tenant": [1], "balance": 1e400}'),
        ("POST", "/_jobmock/reset", {"Content-Type": "text/plain"}, b"{}"),
        ("POST", "/_jobmock/reset", {**JSON, "Origin": "https://evil.example"}, b"{}"),
        ("POST", "/_jobmock/reset", {**JSON, "Sec-Fetch-Site": "cross-site"}, b"{}"),
        ("PUT", "/_jobmock/reset", JSON, b"{}"), ("DELETE", "/_jobmock/jobs", JSON, b""),
        ("PATCH", "/_jobmock/advance", JSON, b"{}"), ("OPTIONS", "/_jobmock/reset", {}, b""),
        ("GET", f"/_jobmock/jobs/{'%2e%2e%2f' * 50}", {}, b""),
        ("GET", "/_jobmock/" + "a/" * 2000, {}, b""),
    ]
    for query in ("status=bogus", "tenant=bogus", "limit=-1", "limit=" + "9" * 5000,
                  "limit=1e3", "after=nope", "after=" + "z" * 10_000, "status=%00",
                  "limit=%D9%A1"):
        out.append(("GET", "/_jobmock/jobs?" + query, {}, b""))
        out.append(("GET", "/_jobmock/requests?" + query, {}, b""))
        out.append(("GET", "/_jobmock/webhooks?job_id=" + query, {}, b""))
    return out


def _control_gets(client: httpx.Client) -> list[str]:
    """Every GET the control plane lists (its index, when it has one), with job paths filled."""
    paths = {"/_jobmock/health", "/_jobmock/clock", "/_jobmock/jobs", "/_jobmock/requests",
             "/_jobmock/advance", "/_jobmock/webhooks", "/_jobmock/faults", "/_jobmock/scenario",
             "/_jobmock/report", "/_jobmock/spec", "/_jobmock/credits", "/_jobmock/"}
    index = client.get("/_jobmock/")
    if index.status_code == 200 and "json" in index.headers.get("content-type", ""):
        for endpoint in index.json().get("endpoints", []):
            if "GET" in endpoint.get("method", ""):
                paths.add(endpoint["path"])
    jobs = client.get("/_jobmock/jobs", params={"limit": 1000}).json()["jobs"]
    out = []
    for path in sorted(paths):
        if "{id}" in path:
            out += [path.replace("{id}", j["id"]) for j in jobs]
        elif "{" not in path:
            out.append(path)
    return out


def _traffic(spec: ApiSpec, client: httpx.Client, receiver: WebhookReceiver) -> tuple[str, int]:
    """Submit as each tenant (with a callback where the spec has webhooks), poll as both, and
    with a wrong and no credential; end every job. Returns a job id and the webhooks sent."""
    op = spec.submit_operations[0]
    path, example = example_path(spec, op), op.body_example
    jobs = []
    for _tenant, credential in spec.demo_tenants():
        body = example
        if spec.webhooks is not None and isinstance(example, dict):
            body = with_pointer(example, spec.webhooks.url_pointer, receiver.url)
        r = client.post(path, json=body, params=spec.auth.query_for(credential),
                        headers={**spec.auth.headers_for(credential), "Prefer": "wait=0"})
        assert r.status_code < 300, r.text
        jobs.append(client.get("/_jobmock/jobs", params={"limit": 1000}).json()["jobs"][-1]["id"])
    status = spec.status_operation
    for job in jobs:
        url = example_path(spec, status, job)
        for _tenant, credential in spec.demo_tenants():
            client.get(url, headers=spec.auth.headers_for(credential),
                       params=spec.auth.query_for(credential))
        client.get(url, headers=spec.auth.headers_for(WRONG), params=spec.auth.query_for(WRONG))
        client.get(url)
    client.post("/_jobmock/clock/advance", json={"seconds": 86_400}).raise_for_status()
    hooks = len([d for d in client.get("/_jobmock/webhooks").json()["deliveries"]])
    return jobs[0], hooks


def _secrets(spec: ApiSpec, received: list[Any]) -> set[str]:
    out = {WRONG}
    for creds in spec.auth.tenants.values():
        for credential in creds:
            out.add(credential)
            for value in spec.auth.headers_for(credential).values():
                out.update((value, value.partition(" ")[2]))
    sig = spec.webhooks.signature if spec.webhooks is not None else None
    if sig is not None:
        out.add(sig.secret)
        for delivery in received:
            value = delivery.header(sig.header)
            if value:
                out.update({value} | {part for part in value.replace(",", " ").split() if
                                      len(part) >= 16})
    return {s for s in out if len(s) >= 6}


@pytest.mark.live
@pytest.mark.parametrize("api", bundled_names())
def test_hostile_control_inputs_against_a_served_mock(api: str) -> None:
    spec = resolve_spec(api)
    with WebhookReceiver() as receiver, \
            serve_mock(api, allow_private_callbacks=True) as server, \
            httpx.Client(base_url=server.url, timeout=30.0) as client:
        job, hooks = _traffic(spec, client, receiver)
        received = receiver.wait_for(hooks, timeout=30.0) if hooks else []
        corpus = _corpus(job)
        worst = 0
        for method, path, headers, body in corpus:
            r = client.request(method, path, headers=headers, content=body)
            assert r.status_code < 500, f"{method} {path[:80]} -> {r.status_code}: {r.text[:300]}"
            if r.status_code >= 400:
                worst = max(worst, len(r.content))
            health = client.get("/_jobmock/health")
            assert health.status_code == 200, f"after {method} {path[:80]}: {health.text[:300]}"
        assert worst < 4096, f"a refusal of {worst} bytes"
        secrets = _secrets(spec, received)
        answers = {path: client.get(path) for path in _control_gets(client)}
        assert len(answers) >= 12
        for path, r in answers.items():
            assert r.status_code < 500, f"GET {path} -> {r.status_code}"
            for secret in secrets:
                assert secret not in r.text, f"GET {path} shows a secret ({secret[:6]}...)"
        assert client.post("/_jobmock/reset", json={}).status_code == 200
        assert client.get("/_jobmock/jobs").json()["jobs"] == []
        assert client.post("/_jobmock/clock/advance", json={"seconds": 1}).status_code == 200
        _traffic(spec, client, receiver)


# -- jobmock serve: the options ------------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "JOBMOCK_CONTROL_TOKEN"}
    return {**env, **extra}


def _serve(*args: str, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "jobmock.cli", "serve", "croma", "--clock",
                             "virtual", "--port", str(port), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30.0
    while True:  # bounded: until the server answers, it exits, or 30 s pass
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"jobmock serve exited with {proc.returncode}:\n{out}\n{err}")
        try:
            if httpx.get(base + "/_jobmock/health", timeout=2.0).status_code < 500:
                return proc, base
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            _stop(proc)
            pytest.fail(f"jobmock serve did not answer on {base}")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM (not SIGINT: it may be ignored where the tests run), then reap."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.communicate(timeout=15)


@pytest.fixture
def serving() -> Iterator[Callable[..., tuple[subprocess.Popen[str], str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
        proc, base = _serve(*args, env=env or _env())
        started.append(proc)
        return proc, base

    yield start
    for proc in started:
        _stop(proc)


@pytest.mark.live
@pytest.mark.parametrize("args", [(), ("--control-token", ""), ("--server", "uvicorn")])
def test_serve_refuses_a_host_that_is_not_loopback_without_a_token(args: tuple[str, ...]) -> None:
    # 192.0.2.1 (TEST-NET-1) is nobody's address: even a broken check could not listen on it.
    done = subprocess.run([sys.executable, "-m", "jobmock.cli", "serve", "croma", "--host",
                           "192.0.2.1", "--port", str(free_port()), *args],
                          capture_output=True, text=True, timeout=60, env=_env())
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--control-token" in lines[0] and "192.0.2.1" in lines[0], lines
    assert done.stdout == "", "nothing served, no banner"


@pytest.mark.live
@pytest.mark.parametrize("args", [("--control", "off"), ("--control-token", "T0ken")])
def test_serve_on_another_host_with_a_token_or_no_control_plane_is_not_refused(
        args: tuple[str, ...]) -> None:
    done = subprocess.run([sys.executable, "-m", "jobmock.cli", "serve", "croma", "--host",
                           "192.0.2.1", "--port", str(free_port()), *args],
                          capture_output=True, text=True, timeout=60, env=_env())
    assert "refusing to serve the control plane" not in done.stderr  # (the bind itself fails)


@pytest.mark.live
def test_serve_with_a_token_from_the_environment(
        serving: Callable[..., tuple[subprocess.Popen[str], str]]) -> None:
    _proc, base = serving(env=_env(JOBMOCK_CONTROL_TOKEN="env-t0ken-123"))
    good = {"Authorization": "Bearer env-t0ken-123"}
    with httpx.Client(base_url=base, timeout=10.0) as client:
        assert client.get("/_jobmock/health").status_code == 200
        r = client.get("/_jobmock/clock")
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
        assert client.post("/_jobmock/reset", json={}).status_code == 401
        submit(CROMA, client)
        journal = client.get("/_jobmock/requests", headers=good)
        assert journal.status_code == 200 and len(journal.json()["requests"]) == 1
        assert CROMA.demo_tenants()[0][1] not in journal.text
        assert client.post("/_jobmock/reset", json={}, headers=good).status_code == 200


@pytest.mark.live
def test_serve_without_a_token_answers_loopback_names_and_same_origin_json_only(
        serving: Callable[..., tuple[subprocess.Popen[str], str]]) -> None:
    _proc, base = serving("--journal-secrets")
    port = base.rsplit(":", 1)[1]
    with httpx.Client(base_url=base, timeout=10.0) as client:
        submit(CROMA, client)
        assert_refused(client.get("/_jobmock/jobs", headers={"Host": f"rebind.example:{port}"}), 403)
        assert client.get("/_jobmock/jobs", headers={"Host": f"localhost:{port}"}).status_code == 200
        assert_refused(client.post("/_jobmock/reset", content=b"{}",
                                   headers={"Content-Type": "text/plain"}), 415)
        assert_refused(client.post("/_jobmock/reset", json={},
                                   headers={"Origin": "https://evil.example"}), 403)
        assert len(client.get("/_jobmock/jobs").json()["jobs"]) == 1
        credential = CROMA.demo_tenants()[0][1]
        assert credential in client.get("/_jobmock/requests").text  # --journal-secrets
        assert client.post("/_jobmock/reset", json={}).status_code == 200


@pytest.mark.live
def test_serve_control_off_serves_no_control_plane(
        serving: Callable[..., tuple[subprocess.Popen[str], str]]) -> None:
    _proc, base = serving("--control", "off")
    with httpx.Client(base_url=base, timeout=10.0) as client:
        assert client.get("/_jobmock/health").status_code == CROMA.errors["not_found"].status
        assert client.post("/_jobmock/reset", json={}).status_code != 200
        assert submit(CROMA, client).status_code < 300
