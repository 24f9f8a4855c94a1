"""The control plane's guard, refusal by refusal (issue 12), in-process: a starlette
``TestClient`` on the ASGI app. Who may call (a token, loopback names only, same origin),
what a call may send (JSON or YAML media types, bounded sizes, finite numbers, YAML without
aliases, bounded nesting), what the answers show (no credential, no signature, short
quotes of bad values), forced outcomes that say the shape expected, and pages of jobs."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from controlhelpers import (
    ALIAS_BOMB,
    BASE,
    CLORO,
    CROMA,
    JSON,
    MERGE_BOMB,
    WRONG,
    YAML,
    assert_refused,
    job_ids,
    make,
    submit,
)
from jobmock import Mock, VirtualClock, resolve_spec
from jobmock.asgi import create_app
from jobmock.control import MAX_BODY, MAX_CLOCK, MAX_RULES, configure_control
from jobmock.journal import Redactor
from webhookhelpers import with_pointer


@pytest.fixture
def croma() -> Iterator[tuple[Mock, TestClient]]:
    mock, client = make("croma")
    with client:
        yield mock, client


# -- clock moves and poll counts -------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    b'{"seconds": NaN}', b'{"seconds": Infinity}', b'{"seconds": -Infinity}',
    b'{"seconds": 1e400}', b'{"seconds": -1e400}', b'{"seconds": 1e18}', b'{"seconds": 3e11}',
    b'{"seconds": ' + b"9" * 400 + b"}", b'{"seconds": ' + b"9" * 5000 + b"}",
    b'{"seconds": -1}', b'{"seconds": "5"}', b'{"seconds": true}', b'{"seconds": null}',
    b'{"seconds": [5]}', b"[5]", b"{nope", b"\xff\xfe{}",
])
def test_a_clock_move_must_be_finite_non_negative_and_representable(
        croma: tuple[Mock, TestClient], raw: bytes) -> None:
    mock, client = croma
    job = submit(CROMA, client).headers["X-Job-Id"]
    before = mock.clock.now()
    assert_refused(client.post("/_jobmock/clock/advance", content=raw, headers=JSON), 400)
    assert mock.clock.now() == before
    assert client.get("/_jobmock/health").status_code == 200
    assert client.post("/_jobmock/clock/advance", json={"seconds": 1}).status_code == 200
    assert client.get(f"/jobs/{job}", headers=CROMA.auth.headers_for(
        CROMA.demo_tenants()[0][1])).status_code == 200


def test_the_clock_moves_up_to_max_clock_and_everything_still_renders(
        croma: tuple[Mock, TestClient]) -> None:
    mock, client = croma
    creds = CROMA.auth.headers_for(CROMA.demo_tenants()[0][1])
    room = MAX_CLOCK - mock.clock.now()
    assert client.post("/_jobmock/clock/advance", json={"seconds": room - 86_400}).status_code == 200
    job = submit(CROMA, client).headers["X-Job-Id"]
    longest = CROMA.timing.queued[1] + CROMA.timing.running[1]
    assert client.post("/_jobmock/clock/advance", json={"seconds": longest}).status_code == 200
    assert client.get(f"/jobs/{job}", headers=creds).status_code == 200
    for path in ("/_jobmock/health", "/_jobmock/clock", "/_jobmock/jobs", f"/_jobmock/jobs/{job}"):
        assert client.get(path).status_code == 200, path
    message = assert_refused(client.post("/_jobmock/clock/advance", json={"seconds": 86_400}), 400)
    assert "9000-01-01" in message
    assert client.post("/_jobmock/reset", json={}).status_code == 200
    assert submit(CROMA, client).status_code == CROMA.submit_operations[0].responses["pending"].status


@pytest.mark.parametrize("polls", [0, -1, 2.5, "3", True, None, [3], 10**7, 1e300, 10**400])
def test_advance_polls_must_be_an_integer_in_range(croma: tuple[Mock, TestClient],
                                                   polls: Any) -> None:
    _mock, client = croma
    assert_refused(client.post("/_jobmock/advance", json={"mode": "polls", "polls": polls}), 400)
    assert client.get("/_jobmock/advance").json() == {"mode": "time", "polls": 1}


@pytest.mark.parametrize("raw", [b'{"mode": "polls", "polls": 1e400}',
                                 b'{"mode": "polls", "polls": NaN}',
                                 b'{"mode": ["polls"], "polls": 2}'])
def test_advance_refuses_unreadable_numbers_and_modes(croma: tuple[Mock, TestClient],
                                                      raw: bytes) -> None:
    _mock, client = croma
    assert_refused(client.post("/_jobmock/advance", content=raw, headers=JSON), 400)
    assert client.post("/_jobmock/advance", json={"mode": "polls", "polls": 3.0}).json() == {
        "mode": "polls", "polls": 3}


# -- media types and origins -----------------------------------------------------------------


MUTATIONS = [("/_jobmock/reset", {}), ("/_jobmock/clock/advance", {"seconds": 5}),
             ("/_jobmock/advance", {"mode": "manual"}), ("/_jobmock/faults", {"faults": []}),
             ("/_jobmock/scenario", {"api": "croma", "description": "d"})]


@pytest.mark.parametrize(("path", "body"), MUTATIONS)
@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/xml"])
def test_a_mutating_call_needs_a_json_media_type(croma: tuple[Mock, TestClient], path: str,
                                                 body: Any, content_type: str | None) -> None:
    mock, client = croma
    submit(CROMA, client)
    headers = {"Content-Type": content_type} if content_type else {}
    message = assert_refused(client.post(path, content=json.dumps(body), headers=headers), 415)
    assert "application/json" in message
    assert len(job_ids(mock)) == 1 and mock.engine.advance.mode == "time"
    assert client.post(path, json=body).status_code == 200


def test_a_scenario_may_come_as_yaml(croma: tuple[Mock, TestClient]) -> None:
    _mock, client = croma
    text = (Path(__file__).parent.parent / "fixtures/croma/job-expires.yaml").read_bytes()
    for kind in ("application/yaml", "application/x-yaml", "text/yaml", "application/json"):
        r = client.post("/_jobmock/scenario", content=text, headers={"Content-Type": kind})
        assert r.status_code == 200, (kind, r.text)


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"}, {"Origin": "http://mock.test.evil.example"},
    {"Origin": "null"}, {"Origin": "http://mock.test:8080"}, {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"}, {"Origin": BASE, "Sec-Fetch-Site": "cross-site"},
])
@pytest.mark.parametrize(("path", "body"), MUTATIONS)
def test_a_cross_origin_mutation_is_refused(croma: tuple[Mock, TestClient], path: str,
                                            body: Any, headers: dict[str, str]) -> None:
    mock, client = croma
    submit(CROMA, client)
    assert_refused(client.post(path, json=body, headers=headers), 403)
    assert len(job_ids(mock)) == 1 and mock.engine.advance.mode == "time"


@pytest.mark.parametrize("headers", [{"Origin": BASE}, {"Origin": "HTTP://MOCK.TEST"},
                                     {"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}])
def test_a_same_origin_mutation_is_served(croma: tuple[Mock, TestClient],
                                          headers: dict[str, str]) -> None:
    mock, client = croma
    submit(CROMA, client)
    assert client.post("/_jobmock/reset", json={}, headers=headers).status_code == 200
    assert job_ids(mock) == []


# -- the token, and loopback names only ---------------------------------------------------------


def test_with_a_token_every_call_but_health_needs_it(croma: tuple[Mock, TestClient]) -> None:
    mock, client = croma
    configure_control(mock, token="s3cret-control-token")
    submit(CROMA, client)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-control-token"},
                    {"Authorization": "Basic " + base64.b64encode(b"s3cret-control-token").decode()},
                    {"Authorization": "Bearer s3cret-control-token-and-more"}):
        for method, path in (("GET", "/_jobmock/clock"), ("GET", "/_jobmock/jobs"),
                             ("GET", "/_jobmock/requests"), ("GET", "/_jobmock/spec"),
                             ("POST", "/_jobmock/reset"), ("GET", "/_jobmock/nowhere")):
            r = client.request(method, path, json={}, headers=headers)
            assert_refused(r, 401)
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
            assert "s3cret" not in r.text
    assert len(job_ids(mock)) == 1
    assert client.get("/_jobmock/health").status_code == 200
    good = {"Authorization": "Bearer s3cret-control-token"}
    assert client.get("/_jobmock/jobs", headers=good).status_code == 200
    assert client.post("/_jobmock/reset", json={}, headers=good).status_code == 200
    assert job_ids(mock) == []


def test_an_empty_token_is_refused() -> None:
    mock = Mock(CROMA, clock=VirtualClock())
    with pytest.raises(ValueError, match="empty"):
        configure_control(mock, token="  ")


@pytest.mark.parametrize(("host", "allowed"), [
    ("localhost:8080", True), ("127.0.0.1:8080", True), ("127.9.9.9", True), ("[::1]:8080", True),
    ("app.localhost", True), ("evil.example:8080", False), ("10.0.0.1", False),
    ("127.0.0.1.evil.example", False), ("0.0.0.0:8080", False),
    # One helper (urlrules.is_loopback_host) since the tidy branch: these spellings reach
    # 127.0.0.1 too, and no browser sends them for a DNS-rebinding page.
    ("127.1:8080", True), ("[::ffff:127.0.0.1]:8080", True), ("LOCALHOST.:8080", True),
    ("localhost.evil.example", False),
])
def test_without_a_token_serve_answers_loopback_names_only(host: str, allowed: bool) -> None:
    mock, client = make("croma")
    configure_control(mock, loopback_only=True)
    with client:
        r = client.get("/_jobmock/jobs", headers={"Host": host})
        if allowed:
            assert r.status_code == 200, r.text
        else:
            assert "--control-token" in assert_refused(r, 403)
        assert client.get("/_jobmock/health", headers={"Host": host}).status_code == 200


def test_the_in_process_mock_needs_no_token() -> None:
    from jobmock.inprocess import mock as inprocess_mock

    with inprocess_mock("croma") as api, httpx.Client() as client:
        assert client.get(api.base_url + "/_jobmock/clock").status_code == 200
        assert client.post(api.base_url + "/_jobmock/reset", json={}).status_code == 200


def test_control_off_leaves_the_api_alone() -> None:
    mock = Mock(CROMA, clock=VirtualClock())
    with TestClient(create_app(mock, control=False), base_url=BASE) as client:
        r = client.get("/_jobmock/health")
        assert r.status_code == CROMA.errors["not_found"].status
        assert client.post("/_jobmock/reset", json={}).status_code != 200


# -- bodies: sizes, scenarios, YAML ------------------------------------------------------------


def test_bodies_are_limited_in_size(croma: tuple[Mock, TestClient]) -> None:
    _mock, client = croma
    for path in ("/_jobmock/scenario", "/_jobmock/clock/advance"):
        assert_refused(client.post(path, content=b" " * (MAX_BODY + 1), headers=JSON), 413)


def test_a_scenario_has_at_most_max_rules(croma: tuple[Mock, TestClient]) -> None:
    _mock, client = croma
    rule = {"match": {"operation": CROMA.status_operation.operation_id},
            "response": {"status": 503}}
    doc = {"api": "croma", "name": "many", "description": "d", "rules": [rule] * (MAX_RULES + 1)}
    assert str(MAX_RULES) in assert_refused(client.post("/_jobmock/scenario", json=doc), 400)
    assert client.get("/_jobmock/scenario").json()["loaded"] is None
    doc["rules"] = [rule] * MAX_RULES
    assert client.post("/_jobmock/scenario", json=doc).status_code == 200


@pytest.mark.parametrize("key", ["progress", "path"])
def test_a_scenario_job_has_at_most_100_progress_steps_or_path_words(
        croma: tuple[Mock, TestClient], key: str) -> None:
    # Each step is a clock entry per job: an unbounded list would multiply every submit.
    mock, client = croma
    item: Any = {"pct": 50, "message": "half"} if key == "progress" else "running"
    doc = {"api": "croma", "description": "d", "rules": [{"job": {key: [item] * 101}}]}
    message = assert_refused(client.post("/_jobmock/scenario", json=doc), 400)
    assert f"at /rules/0/job/{key}: expected at most 100 items, got 101" in message, message
    assert client.get("/_jobmock/scenario").json()["loaded"] is None
    if key == "progress":
        doc["rules"][0]["job"][key] = [item] * 100
        assert client.post("/_jobmock/scenario", json=doc).status_code == 200
        assert submit(CROMA, client).status_code == 202
        assert mock.engine.footprint()["heap"] <= 100 + 10


def test_fault_names_are_counted_before_they_are_read(croma: tuple[Mock, TestClient]) -> None:
    _mock, client = croma
    message = assert_refused(client.post("/_jobmock/faults", json={"faults": [0] * 100_000}), 400)
    assert "at most" in message and "got 100000" in message


def test_a_response_ref_cycle_in_the_spec_cannot_hang_a_forced_outcome() -> None:
    import copy
    import threading

    # A copy of the spec: resolve_spec's is shared by every test.
    document = copy.deepcopy(CLORO.document)
    mock = Mock(dataclasses.replace(CLORO, document=document), clock=VirtualClock())
    client = TestClient(create_app(mock), base_url=BASE)
    op = mock.spec.status_operation
    responses = document["paths"][op.path][op.method.lower()]["responses"]
    responses[str(mock.spec.status.status)] = {"$ref": "#/components/responses/Loop"}
    document.setdefault("components", {}).setdefault("responses", {})["Loop"] = {
        "$ref": "#/components/responses/Loop"}
    answers: list[int] = []
    with client:
        task = submit(CLORO, client).json()["task"]["id"]

        def force() -> None:
            answers.append(client.post(f"/_jobmock/jobs/{task}/outcome",
                                       json={"status": "FAILED", "error": "x"}).status_code)

        worker = threading.Thread(target=force, daemon=True)
        worker.start()
        worker.join(timeout=30)  # an unbounded $ref walk never ends
        assert answers == [200]


@pytest.mark.parametrize("bomb", [ALIAS_BOMB, MERGE_BOMB], ids=["aliases", "merge-keys"])
@pytest.mark.parametrize("kind", ["application/yaml", "application/json"])
def test_a_yaml_bomb_gets_a_small_400(croma: tuple[Mock, TestClient], bomb: bytes,
                                      kind: str) -> None:
    _mock, client = croma
    assert len(bomb) < 512
    r = client.post("/_jobmock/scenario", content=bomb, headers={"Content-Type": kind})
    assert "alias" in assert_refused(r, 400)
    assert len(r.content) < 1000


@pytest.mark.parametrize("text", [
    b"api: croma\ndescription: 2026-01-01\n", b"api: croma\ndescription: d\nseed: .nan\n",
    b"api: croma\ndescription: d\nseed: .inf\n", b"api: croma\ndescription: !!binary aGk=\n",
    b"api: croma\ndescription: d\nrules: !!set {a, b}\n", b"api: croma\n2026-01-01: d\n",
    b"api: croma\ndescription: !!python/object/apply:os.getpid []\n",
    b"api: croma\ndescription: 2026-13-45\n", b"---\napi: croma\n---\napi: croma\n",
    b"[" * 5000 + b"]" * 5000, b"a:\n" + b"".join(b"  " * i + b"- \n" for i in range(1, 400)),
])
def test_yaml_values_json_cant_carry_are_refused(croma: tuple[Mock, TestClient],
                                                 text: bytes) -> None:
    _mock, client = croma
    assert_refused(client.post("/_jobmock/scenario", content=text, headers=YAML), 400)
    assert client.get("/_jobmock/scenario").status_code == 200


@pytest.mark.parametrize("depth", [150, 5000, 200_000])
def test_json_nested_too_deep_is_refused(croma: tuple[Mock, TestClient], depth: int) -> None:
    _mock, client = croma
    raw = b'{"status": "failed", "error": ' + b"[" * depth + b"]" * depth + b"}"
    job = submit(CROMA, client).headers["X-Job-Id"]
    assert_refused(client.post(f"/_jobmock/jobs/{job}/outcome", content=raw, headers=JSON), 400)


def test_a_scenario_names_this_mocks_api_never_a_file_to_read(
        croma: tuple[Mock, TestClient], tmp_path: Path) -> None:
    _mock, client = croma
    copy = tmp_path / "croma.yaml"
    copy.write_bytes(Path(str(CROMA.file)).read_bytes())
    assert resolve_spec(str(copy)).name == "croma", "the copy would load as this mock's API"
    for api in (str(copy), "/dev/zero", "../../etc/passwd", "x" * 10_000):
        doc = {"api": api, "name": "n", "description": "d"}
        assert "'croma'" in assert_refused(client.post("/_jobmock/scenario", json=doc), 400)
    assert client.post("/_jobmock/scenario", json={**doc, "api": str(CROMA.file)}).status_code == 200


# -- messages quote a short prefix ------------------------------------------------------------


def test_every_message_quotes_at_most_a_short_prefix(croma: tuple[Mock, TestClient]) -> None:
    _mock, client = croma
    big, mid = "x" * 100_000, "x" * 10_000  # (a URL may be 64 KiB long)
    job = submit(CROMA, client).headers["X-Job-Id"]
    answers = [
        client.post(f"/_jobmock/jobs/{job}/outcome", json={"status": big}),
        client.post(f"/_jobmock/jobs/{job}/outcome", json={"status": "failed", "when": big}),
        client.post(f"/_jobmock/jobs/{mid}/outcome", json={"status": "failed"}),
        client.get(f"/_jobmock/jobs/{mid}"),
        client.post(f"/_jobmock/jobs/{job}/outcome", json={"status": "failed", "error": big}),
        client.post(f"/_jobmock/jobs/{job}/outcome", json={"status": "failed",
                                                           "error": {"message": [big] * 5}}),
        client.post("/_jobmock/advance", json={"mode": big}),
        client.post("/_jobmock/clock/advance", json={"seconds": big}),
        client.post("/_jobmock/faults", json={"faults": [big]}),
        client.post("/_jobmock/scenario", json={"api": "croma", "description": big, big: 1}),
        client.get("/_jobmock/jobs", params={"status": mid}),
        client.get("/_jobmock/jobs", params={"tenant": mid}),
        client.get("/_jobmock/jobs", params={"after": mid}),
        client.get("/_jobmock/jobs", params={"limit": "9" * 5000}),
        client.get("/_jobmock/requests", params={"after": mid}),
        client.post("/_jobmock/reset", content=b"{}", headers={"Content-Type": mid}),
        client.post("/_jobmock/reset", json={}, headers={"Origin": "https://" + mid}),
    ]
    for r in answers:
        assert 400 <= r.status_code < 500, r.text[:300]
        assert len(r.content) < 2000, f"{r.status_code}: {r.text[:300]}..."
        assert "x" * 100 not in r.text


# -- forced outcomes ------------------------------------------------------------------------------


def test_a_forced_error_of_the_wrong_shape_says_what_shape_is_expected() -> None:
    mock, client = make("cloro")
    with client:
        task = submit(CLORO, client).json()["task"]["id"]
        for error in ("x", {"message": "x"}, [1, 2], {"code": 5, "message": "x"}):
            r = client.post(f"/_jobmock/jobs/{task}/outcome", json={"status": "FAILED",
                                                                    "error": error})
            message = assert_refused(r, 400)
            expected = message.split("expected", 1)[1]
            assert "string" in expected, message
            if error != {"code": 5, "message": "x"}:
                assert "object {" in expected and "code" in expected and "message" in expected
        job = mock.engine.get(task)
        assert job is not None and job.status == "QUEUED"


def test_an_outcome_for_an_unknown_job_is_404_whatever_it_carries(
        croma: tuple[Mock, TestClient]) -> None:
    _mock, client = croma
    for body in ({"status": "failed"}, {"status": "failed", "error": "x"},
                 {"status": "completed", "result": {"a": 1}}):
        assert_refused(client.post("/_jobmock/jobs/nope/outcome", json=body), 404)


# -- pages ----------------------------------------------------------------------------------------


def test_jobs_come_a_page_at_a_time(croma: tuple[Mock, TestClient]) -> None:
    mock, client = croma
    for i in range(250):
        submit(CROMA, client, tenant=i % 2)
    seen: list[str] = []
    page = client.get("/_jobmock/jobs").json()
    assert len(page["jobs"]) == 100 and page["counts"] == {CROMA.lifecycle.queued: 250}
    sizes = []
    while True:
        sizes.append(len(page["jobs"]))
        seen += [j["id"] for j in page["jobs"]]
        if page["next"] is None:
            break
        assert page["next"] == page["jobs"][-1]["id"]
        page = client.get("/_jobmock/jobs", params={"after": page["next"]}).json()
    assert sizes == [100, 100, 50] and seen == job_ids(mock)
    every = client.get("/_jobmock/jobs", params={"limit": 1000}).json()
    assert len(every["jobs"]) == 250 and every["next"] is None
    tenant = CROMA.demo_tenants()[1][0]
    mine = client.get("/_jobmock/jobs", params={"tenant": tenant, "limit": 7}).json()
    assert [j["tenant"] for j in mine["jobs"]] == [tenant] * 7 and mine["next"] is not None
    rest = client.get("/_jobmock/jobs", params={"tenant": tenant, "limit": 1000,
                                                "after": mine["next"]}).json()
    assert len(mine["jobs"]) + len(rest["jobs"]) == 125
    counts_only = client.get("/_jobmock/jobs", params={"limit": 0}).json()
    assert counts_only["jobs"] == [] and counts_only["counts"] == page["counts"]


def test_a_page_of_big_jobs_ends_early(croma: tuple[Mock, TestClient],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from jobmock import control

    mock, client = croma
    for _ in range(10):
        submit(CROMA, client)
    one = len(json.dumps(client.get("/_jobmock/jobs", params={"limit": 1}).json()["jobs"][0]))
    monkeypatch.setattr(control, "PAGE_BYTES", one * 3)
    seen: list[str] = []
    after: dict[str, str] = {}
    for _ in range(20):  # bounded: 10 jobs, at least one per page
        page = client.get("/_jobmock/jobs", params=after).json()
        assert 1 <= len(page["jobs"]) <= 3
        seen += [j["id"] for j in page["jobs"]]
        if page["next"] is None:
            break
        after = {"after": page["next"]}
    assert seen == job_ids(mock)


@pytest.mark.parametrize(("query", "names"), [
    ({"status": "bogus"}, sorted(CROMA.lifecycle.states)),
    ({"status": ""}, sorted(CROMA.lifecycle.states)),
    ({"tenant": "nobody"}, sorted(CROMA.auth.tenants)),
    ({"limit": "1001"}, ["1000"]), ({"limit": "-1"}, []), ({"limit": "1e3"}, []),
    ({"limit": "\u0661\u0662"}, []), ({"after": "nope"}, []),
])
def test_job_filters_and_pages_are_validated(croma: tuple[Mock, TestClient],
                                             query: dict[str, str], names: list[str]) -> None:
    _mock, client = croma
    submit(CROMA, client)
    message = assert_refused(client.get("/_jobmock/jobs", params=query), 400)
    assert all(name in message for name in names), message


def test_the_journal_comes_a_page_at_a_time(croma: tuple[Mock, TestClient]) -> None:
    _mock, client = croma
    for _ in range(5):
        client.get("/jobs/nope")
    first = client.get("/_jobmock/requests", params={"after": 0, "limit": 2}).json()
    assert [e["seq"] for e in first["requests"]] == [1, 2] and first["next"] == 2
    rest = client.get("/_jobmock/requests", params={"after": first["next"]}).json()
    assert [e["seq"] for e in rest["requests"]] == [3, 4, 5] and rest["next"] is None
    assert [e["seq"] for e in client.get("/_jobmock/requests", params={"limit": 2}).json()[
        "requests"]] == [4, 5]
    for bad in ({"after": "-1"}, {"limit": "x"}, {"after": "9" * 20}):
        assert_refused(client.get("/_jobmock/requests", params=bad), 400)


# -- secrets ----------------------------------------------------------------------------------


def test_the_journal_masks_credentials_and_names_their_tenant(
        croma: tuple[Mock, TestClient]) -> None:
    _mock, client = croma
    (a, cred_a), (b, cred_b) = CROMA.demo_tenants()
    submit(CROMA, client, 0)
    submit(CROMA, client, 1)
    submit(CROMA, client, 0)
    client.get("/jobs/nope", headers={"Authorization": f"Bearer {WRONG}", "Cookie": "sid=abc123",
                                      "X-Api-Key": "key-zz-123"})
    r = client.get("/_jobmock/requests")
    for secret in (cred_a, cred_b, WRONG, "abc123", "key-zz-123"):
        assert secret not in r.text
    entries = r.json()["requests"]
    marks = [e["headers"]["authorization"] for e in entries]
    assert marks[0].startswith(f"Bearer [redacted: {a} #") and marks[1].startswith(
        f"Bearer [redacted: {b} #")
    assert marks[0] == marks[2] != marks[1], "one credential, one mark; two, two"
    assert marks[3].startswith("Bearer [redacted: unknown #") and marks[3] not in marks[:3]
    assert entries[3]["headers"]["cookie"].startswith("[redacted: #")
    assert entries[3]["headers"]["x-api-key"].startswith("[redacted: #")
    assert [e["tenant"] for e in entries[:3]] == [a, b, a]


def test_a_client_retrying_a_401_with_another_key_is_told_apart() -> None:
    """The behaviour checks compare credentials through their masks: a new key is a change."""
    _mock, client = make("croma")
    with client:
        for credential in (WRONG, WRONG + "-2"):
            submit(CROMA, client, credential=credential)
        findings = client.get("/_jobmock/report").json()["findings"]
        assert not [f for f in findings if f["check"] == "permanent_4xx"]
        submit(CROMA, client, credential=WRONG + "-2")
        findings = client.get("/_jobmock/report").json()["findings"]
        assert [f for f in findings if f["check"] == "permanent_4xx"]


def test_journal_secrets_keeps_them(croma: tuple[Mock, TestClient]) -> None:
    mock, client = croma
    configure_control(mock, keep_secrets=True)
    submit(CROMA, client)
    credential = CROMA.demo_tenants()[0][1]
    assert client.get("/_jobmock/requests").json()["requests"][0]["headers"][
        "authorization"] == f"Bearer {credential}"
    assert credential in client.get("/_jobmock/spec").text


def test_credentials_in_the_query_string_are_masked() -> None:
    auth = dataclasses.replace(CROMA.auth, kind="apikey", location="query", param="api_key")
    spec = dataclasses.replace(CROMA, auth=auth)
    redactor = Redactor(spec, key=b"k")
    masked = redactor.scrub_query("a=1&api_key=sk_live_123&b=2&API_KEY=other", "org_a")
    assert "sk_live_123" not in masked and "other" not in masked
    assert masked.startswith("a=1&api_key=[redacted: org_a #") and "&b=2&" in masked
    assert redactor.scrub_query("a=1&b=2", None) == "a=1&b=2"
    assert redactor.scrub_headers({"authorization": "Basic abc", "accept": "x"}, None)[
        "accept"] == "x"


def test_the_webhook_log_hides_the_signature() -> None:
    mock, client = make("croma", allow_private_callbacks=True, deliver_webhooks=False)
    hooks = CROMA.webhooks
    assert hooks is not None and hooks.signature is not None
    sig = hooks.signature
    signed = sig.enabled_for[0] if sig.enabled_for else CROMA.demo_tenants()[0][0]
    index = [t for t, _ in CROMA.demo_tenants()].index(signed)
    body = with_pointer(CROMA.submit_operations[0].body_example, hooks.url_pointer,
                        "https://127.0.0.1:9/hook")
    with client:
        submit(CROMA, client, index, body=body)
        client.post("/_jobmock/clock/advance", json={"seconds": 3600})
        deliveries = mock.webhooks.deliveries() if mock.webhooks else []
        sent = deliveries[0].attempts[0].headers[sig.header]
        assert sent.startswith("sha256=")
        r = client.get("/_jobmock/webhooks")
        assert sent not in r.text and sent.split("=", 1)[1] not in r.text
        assert r.json()["deliveries"][0]["attempts"][0]["headers"][sig.header] == "[redacted]"
        configure_control(mock, keep_secrets=True)
        assert sent in client.get("/_jobmock/webhooks").text
