"""Lifecycle model v2 on a spec of our own: a graph with several running states, cancel
through a transient state, a list operation, custom-method routing, ids from URLs, epoch
seconds, request-switched waits, bodiless answers and problem+json errors.

The spec is cloro's, widened in a temporary copy: its words stay, and new ones are added
(``FINALIZING``, ``CANCELLING``, ``CANCELLED``), so every behaviour below comes from YAML.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobmock import Mock, Request, SpecError, VirtualClock, load_spec
from jobmock.idsource import read as read_id
from jobmock.records import JobPlan
from jobmock.scenarios import install_scenario
from jobmock.spec import ApiSpec
from jobmock.templates import compile_template

ROOT = Path(__file__).resolve().parents[1]
A = {"authorization": "Bearer sk_test_cloro_org_a", "content-type": "application/json"}
B = {"authorization": "Bearer sk_test_cloro_org_b", "content-type": "application/json"}
TASK = {"taskType": "CHATGPT", "payload": {"prompt": "hi"}}


def widened() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "openapi" / "cloro.yaml").read_text())
    x = doc["x-jobmock"]
    x["lifecycle"]["states"].update(FINALIZING="running", CANCELLING="running",
                                    CANCELLED="canceled")
    x["lifecycle"]["transitions"] = {
        "QUEUED": ["PROCESSING", "FAILED", "CANCELLING", "CANCELLED"],
        "PROCESSING": ["FINALIZING", "FAILED", "CANCELLING"],
        "FINALIZING": ["COMPLETED", "FAILED", "CANCELLING"],
        "CANCELLING": ["CANCELLED"],
    }
    x["timing"]["flow"] = {
        "QUEUED": {"for": [1, 1], "next": {"PROCESSING": 0.8, "FAILED": 0.2}},
        "PROCESSING": {"for": [3, 3], "next": {"FINALIZING": 1}},
        "FINALIZING": {"for": [2, 2]},
        "CANCELLING": {"for": [5, 5]},
    }
    x["timing"]["outcomes"] = {"COMPLETED": 1}
    x["limits"].pop("concurrency")
    x["errors"]["ended"] = {
        "status": 409, "content_type": "application/problem+json",
        "body": {"type": "about:blank", "title": "Conflict", "detail": "{message}"}}
    x["render"]["list"] = {"data": "{page.items}", "has_more": "{page.has_more}",
                           "last_id": "{page.last_id}", "next?": "{page.next}"}
    x["render"]["times"] = {"id": "{job.id}", "created_at": "{job.created_at_s}",
                            "expires_at": "{job.created_at_s|add:86400}"}
    security = [{"bearerAuth": []}]
    ok = {"200": {"description": "ok"}, "202": {"description": "accepted"},
          "204": {"description": "gone"}, "400": {"description": "bad"},
          "404": {"description": "no"}, "409": {"description": "ended"}}
    idp = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]
    paths = doc["paths"]
    # A custom method on the status path, listed first so file order would route it wrong.
    paths = {"/v1/task/{id}:cancel": {"post": {
        "operationId": "cancelTask", "security": security, "parameters": idp, "responses": ok,
        "x-jobmock": {"role": "cancel", "job_id_param": "id", "via": "CANCELLING",
                      "when_terminal": {"error": "ended"}}}}, **paths}
    paths["/v1/task"]["get"] = {
        "operationId": "listTasks", "security": security, "responses": ok,
        "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer"}},
                       {"name": "after", "in": "query", "schema": {"type": "string"}},
                       {"name": "status", "in": "query", "schema": {"type": "string"}}],
        "x-jobmock": {"role": "list", "filters": {"status": "status"},
                      "page": {"default_limit": 2, "max_limit": 5}}}
    paths["/v1/task/{id}"]["delete"] = {
        "operationId": "deleteTask", "security": security, "parameters": idp, "responses": ok,
        "x-jobmock": {"role": "delete", "job_id_param": "id"}}
    paths["/v1/times/{id}"] = {"get": {
        "operationId": "taskTimes", "security": security, "parameters": idp, "responses": ok,
        "x-jobmock": {"role": "cancel", "job_id_param": "id",
                      "response": {"status": 202, "render": None}}}}
    paths["/v1/quick"] = {"post": {
        "operationId": "quickTask", "security": security, "responses": ok,
        "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
        "x-jobmock": {"role": "submit", "job_id_from": ["header:Operation-Location|last_segment"],
                      "wait": {"max": 30, "prefer_header": True, "respond_async": True,
                               "body": [{"pointer": "/now", "value": True, "wait": 30}]},
                      "responses": {
                          "pending": {"status": 202, "render": None, "headers": {
                              "Operation-Location": "{base_url}/v1/task/{job.id}?v=1"}},
                          "terminal": {"status": 200, "render": "times"}}}}}
    doc["paths"] = paths
    return doc


def load(tmp_path: Path, doc: dict[str, Any]) -> ApiSpec:
    path = tmp_path / "widened.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_spec(path)


@pytest.fixture
def spec(tmp_path: Path) -> ApiSpec:
    return load(tmp_path, widened())


def call(mock: Mock, method: str, path: str, body: Any = None,
         headers: dict[str, str] | None = None, query: dict[str, str] | None = None) -> Any:
    raw = json.dumps(body).encode() if body is not None else b""
    result = mock.dispatch(Request(method, path, query=query or {}, headers=headers or A, body=raw))
    assert not hasattr(result, "finish"), "held unexpectedly"
    return result


def submit(mock: Mock, headers: dict[str, str] | None = None) -> str:
    r = call(mock, "POST", "/v1/task", TASK, headers)
    assert r.status == 200, r.body
    job_id: str = r.json()["task"]["id"]
    return job_id


def walk(mock: Mock, job_id: str, seconds: float = 60) -> list[str]:
    """The statuses the job passes through as the clock moves a second at a time."""
    seen: list[str] = []
    for _ in range(int(seconds)):
        job = mock.engine.get(job_id)
        assert job is not None
        if not seen or seen[-1] != job.status:
            seen.append(job.status)
        mock.engine.advance_clock(1)
    return seen


def test_a_job_walks_the_graph_and_every_path_follows_its_edges(spec: ApiSpec) -> None:
    paths = set()
    for seed in range(30):
        mock = Mock(spec, clock=VirtualClock(), seed=seed)
        paths.add(tuple(walk(mock, submit(mock), 12)))
    assert paths == {("QUEUED", "PROCESSING", "FINALIZING", "COMPLETED"), ("QUEUED", "FAILED")}


def test_the_path_is_drawn_from_the_seed(spec: ApiSpec) -> None:
    def run(seed: int) -> list[tuple[str, ...]]:
        mock = Mock(spec, clock=VirtualClock(), seed=seed)
        return [tuple(walk(mock, submit(mock), 12)) for _ in range(5)]

    assert run(7) == run(7)


def test_a_plan_forces_a_path_and_its_timing(spec: ApiSpec) -> None:
    """A plan's path and outcome follow the transitions (a shortcut is refused)."""
    mock = Mock(spec, clock=VirtualClock())
    mock.submit_hooks.append(lambda *_: JobPlan(path=("PROCESSING", "FINALIZING"),
                                                outcome="COMPLETED", queued_for=2, running_for=4))
    job_id = submit(mock)
    assert walk(mock, job_id, 8) == ["QUEUED", "PROCESSING", "FINALIZING", "COMPLETED"]
    job = mock.engine.get(job_id)
    assert job is not None and job.completed_at is not None
    assert job.completed_at - job.created_at == pytest.approx(6)
    shortcut = Mock(spec, clock=VirtualClock())
    shortcut.submit_hooks.append(lambda *_: JobPlan(path=("PROCESSING",), outcome="COMPLETED"))
    with pytest.raises(ValueError, match="PROCESSING' -> 'COMPLETED"):
        submit(shortcut)


def test_a_scenario_rule_forces_a_path(spec: ApiSpec) -> None:
    mock = Mock(spec, clock=VirtualClock())
    install_scenario(mock, {"api": spec.file, "description": "finalize twice as long",
                            "rules": [{"match": {"operation": "createTask"},
                                       "job": {"path": ["PROCESSING", "FINALIZING"],
                                               "outcome": "FAILED"}}]})
    assert walk(mock, submit(mock), 12) == ["QUEUED", "PROCESSING", "FINALIZING", "FAILED"]


@pytest.mark.parametrize(("change", "pointer"), [
    (lambda x: x["timing"]["flow"]["FINALIZING"].update(next={"PROCESSING": 1}),
     "/x-jobmock/timing/flow/FINALIZING/next/PROCESSING"),
    (lambda x: x["timing"]["flow"].update(COMPLETED={"for": [1, 1]}),
     "/x-jobmock/timing/flow/COMPLETED"),
    (lambda x: x["timing"]["flow"]["PROCESSING"].update(next={"FINALIZING": 0}),
     "/x-jobmock/timing/flow/PROCESSING/next"),
    (lambda x: x["timing"]["flow"].pop("FINALIZING"), "/x-jobmock/timing/flow/FINALIZING"),
])
def test_a_wrong_flow_fails_at_load_naming_the_key(tmp_path: Path, change: Any,
                                                    pointer: str) -> None:
    doc = widened()
    change(doc["x-jobmock"])
    with pytest.raises(SpecError) as caught:
        load(tmp_path, doc)
    assert caught.value.key == pointer, str(caught.value)


def test_a_flow_with_a_cycle_fails_at_load(tmp_path: Path) -> None:
    doc = widened()
    x = doc["x-jobmock"]
    x["lifecycle"]["transitions"]["FINALIZING"].append("PROCESSING")
    x["timing"]["flow"]["FINALIZING"]["next"] = {"PROCESSING": 1}
    with pytest.raises(SpecError, match="cycles"):
        load(tmp_path, doc)


def test_cancel_in_flight_passes_through_its_transient_state(spec: ApiSpec) -> None:
    mock = Mock(spec, clock=VirtualClock(), seed=1)
    mock.submit_hooks.append(lambda *_: JobPlan(path=("PROCESSING", "FINALIZING"),
                                                outcome="COMPLETED"))
    job_id = submit(mock)
    mock.engine.advance_clock(2)
    r = call(mock, "POST", f"/v1/task/{job_id}:cancel")
    assert r.status == 200 and r.json()["task"]["status"] == "CANCELLING"
    assert walk(mock, job_id, 10) == ["CANCELLING", "CANCELLED"]


def test_cancel_of_an_ended_job_gets_the_specs_error_as_problem_json(spec: ApiSpec) -> None:
    mock = Mock(spec, clock=VirtualClock(), seed=1)
    job_id = submit(mock)
    mock.engine.advance_clock(60)
    before = mock.engine.get(job_id)
    assert before is not None and mock.engine.is_terminal(before)
    r = call(mock, "POST", f"/v1/task/{job_id}:cancel")
    assert r.status == 409
    assert r.header("content-type") == "application/problem+json"
    assert r.json()["title"] == "Conflict"
    assert mock.engine.get(job_id).status == before.status  # type: ignore[union-attr]


def test_cancel_racing_completion_ends_in_exactly_one_terminal_state(spec: ApiSpec) -> None:
    outcomes = set()
    for offset in (-0.001, 0.0, 0.001):
        mock = Mock(spec, clock=VirtualClock())
        mock.submit_hooks.append(lambda *_: JobPlan(path=("PROCESSING", "FINALIZING"),
                                                    outcome="COMPLETED", queued_for=1,
                                                    running_for=3))
        job_id = submit(mock)
        mock.engine.advance_clock(4 + offset)
        call(mock, "POST", f"/v1/task/{job_id}:cancel")
        mock.engine.advance_clock(30)
        job = mock.engine.get(job_id)
        assert job is not None
        terminal = [s for s, _ in job.history if spec.lifecycle.is_terminal(s)]
        assert len(terminal) == 1
        outcomes.add((offset, terminal[0]))
    assert outcomes == {(-0.001, "CANCELLED"), (0.0, "COMPLETED"), (0.001, "COMPLETED")}


def test_custom_method_routing_does_not_depend_on_the_order_of_paths(tmp_path: Path) -> None:
    for order in (list, reversed):
        doc = widened()
        doc["paths"] = dict(order(list(doc["paths"].items())))
        spec = load(tmp_path, doc)
        mock = Mock(spec, clock=VirtualClock())
        job_id = submit(mock)
        assert call(mock, "POST", f"/v1/task/{job_id}:cancel").status == 200
        assert mock.engine.get(job_id).status in ("CANCELLED", "CANCELLING")  # type: ignore[union-attr]


def test_list_pages_newest_first_and_only_the_callers_jobs(spec: ApiSpec) -> None:
    mock = Mock(spec, clock=VirtualClock())
    mine = [submit(mock) for _ in range(5)]
    theirs = submit(mock, B)
    pages: list[str] = []
    after = None
    for _ in range(5):
        r = call(mock, "GET", "/v1/task", query={"after": after} if after else {})
        assert r.status == 200, r.body
        body = r.json()
        pages.extend(item["task"]["id"] for item in body["data"])
        after = body["last_id"]
        if not body["has_more"]:
            break
    assert pages == list(reversed(mine))
    assert theirs not in pages
    again = call(mock, "GET", "/v1/task", query={"limit": "5"}).json()
    assert [i["task"]["id"] for i in again["data"]] == pages


def test_list_filters_and_answers_unknown_cursors_with_an_empty_page(spec: ApiSpec) -> None:
    mock = Mock(spec, clock=VirtualClock())
    first = submit(mock)
    mock.engine.advance_clock(60)
    second = submit(mock)
    queued = call(mock, "GET", "/v1/task", query={"status": "QUEUED"}).json()["data"]
    assert [i["task"]["id"] for i in queued] == [second]
    assert call(mock, "GET", "/v1/task", query={"limit": "99"}).status == 400
    for cursor, who in (("nope", A), (first, B)):
        r = call(mock, "GET", "/v1/task", query={"after": cursor}, headers=who)
        assert r.status == 200 and r.json()["data"] == [] and r.json()["has_more"] is False


def test_delete_forgets_the_job(spec: ApiSpec) -> None:
    mock = Mock(spec, clock=VirtualClock())
    job_id = submit(mock)
    r = call(mock, "DELETE", f"/v1/task/{job_id}")
    assert (r.status, r.body) == (204, b"")
    assert call(mock, "GET", f"/v1/task/{job_id}").status == 404


def test_a_bodiless_202_with_the_id_in_a_url_header(spec: ApiSpec) -> None:
    mock = Mock(spec, clock=VirtualClock())
    r = call(mock, "POST", "/v1/quick", {"x": 1}, {**A, "prefer": "respond-async"})
    assert (r.status, r.body, r.header("content-type")) == (202, b"", None)
    job_id = read_id(("header:Operation-Location|last_segment",), r.header, None)
    assert job_id is not None and mock.engine.get(job_id) is not None


@pytest.mark.parametrize(("prefer", "body", "held"), [
    ("respond-async", {}, False), ("wait", {}, True), ("wait=5;handling=lenient", {}, True),
    (None, {"now": True}, True), (None, {"now": False}, False),
])
def test_waits_switched_by_the_request(spec: ApiSpec, prefer: str | None, body: Any,
                                       held: bool) -> None:
    mock = Mock(spec, clock=VirtualClock())
    headers = {**A, **({"prefer": prefer} if prefer else {})}
    raw = json.dumps(body).encode()
    result = mock.dispatch(Request("POST", "/v1/quick", headers=headers, body=raw))
    assert hasattr(result, "finish") is held


def test_epoch_seconds_and_offsets() -> None:
    tpl = compile_template({"at": "{job.created_at_s}", "exp": "{job.created_at_s|add:86400}",
                            "none": "{job.missing|add:1}"})
    assert tpl({"job": {"created_at_s": 1_700_000_000}}) == {
        "at": 1_700_000_000, "exp": 1_700_086_400, "none": None}
    with pytest.raises(SpecError, match="takes a number"):
        compile_template("{job.created_at_s|add}")
    with pytest.raises(SpecError, match="takes no argument"):
        compile_template("{job.id|len:3}")


def test_cancel_answer_without_a_body(spec: ApiSpec) -> None:
    mock = Mock(spec, clock=VirtualClock())
    job_id = submit(mock)
    r = call(mock, "GET", f"/v1/times/{job_id}")
    assert (r.status, r.body) == (202, b"")


@pytest.mark.parametrize(("sources", "headers", "body", "want"), [
    (("header:Operation-Location|last_segment",),
     {"Operation-Location": "https://h/x/analyzeResults/r-1?api-version=1"}, None, "r-1"),
    (("body:/name|after:operations/",), {}, {"name": "operations/abc"}, "abc"),
    (("body:/name|after:operations/",), {}, {"name": "other/abc"}, None),
    (("body:/urls/get|last_segment", "body:/id"), {}, {"urls": {}, "id": "p1"}, "p1"),
])
def test_ids_are_read_from_urls_and_prefixed_names(sources: tuple[str, ...],
                                                   headers: dict[str, str], body: Any,
                                                   want: str | None) -> None:
    assert read_id(sources, headers.get, body) == want


def test_page_tokens_are_opaque_and_round_trip(tmp_path: Path) -> None:
    doc = widened()
    doc["paths"]["/v1/task"]["get"]["x-jobmock"]["page"] = {"style": "token", "default_limit": 1}
    doc["paths"]["/v1/task"]["get"]["parameters"].append(
        {"name": "pageToken", "in": "query", "schema": {"type": "string"}})
    spec = load(tmp_path, doc)
    mock = Mock(spec, clock=VirtualClock())
    ids = [submit(mock) for _ in range(3)]
    seen, token = [], None
    for _ in range(4):
        body = call(mock, "GET", "/v1/task", query={"pageToken": token} if token else {}).json()
        seen += [i["task"]["id"] for i in body["data"]]
        token = body.get("next")
        if token is None:
            break
        assert token not in ids and base64.urlsafe_b64decode(token + "==").decode() in ids
    assert seen == list(reversed(ids))


def test_a_status_derived_from_the_body(tmp_path: Path) -> None:
    """Google's shape: no status word, only `done` and which of response/error is set."""
    doc = widened()
    lc = doc["x-jobmock"]["lifecycle"]
    lc.pop("status_pointer")
    lc["status_from"] = [
        {"when": {"/task/done": False}, "status": "PROCESSING"},
        {"when": {"/task/done": True, "/task/error": {"present": True}}, "status": "FAILED"},
        {"when": {"/task/done": True, "/task/response": {"present": True}}, "status": "COMPLETED"},
    ]
    spec = load(tmp_path, doc)
    status_of = spec.lifecycle.status_of
    assert status_of({"task": {"done": False}}) == "PROCESSING"
    assert status_of({"task": {"done": True, "error": {"code": 2}}}) == "FAILED"
    assert status_of({"task": {"done": True, "response": {}, "error": None}}) == "COMPLETED"
    assert status_of({"task": {}}) is None
    assert spec.lifecycle.status_pointers == ("/task/done", "/task/error", "/task/response")
    lc["status_from"][0]["status"] = "NOPE"
    with pytest.raises(SpecError) as caught:
        load(tmp_path, doc)
    assert caught.value.key == "/x-jobmock/lifecycle/status_from/0/status"
    lc["status_pointer"] = "/task/status"
    with pytest.raises(SpecError):
        load(tmp_path, doc)


def test_a_placeholder_the_mock_cannot_fill_fails_at_load() -> None:
    with pytest.raises(SpecError, match=r"\{request\.query\.api-version\}"):
        compile_template({"v": "{request.query.api-version}"}, "f.yaml", "/x-jobmock/render/s")
    assert compile_template("{base_url}/x/{job.id}")({"base_url": "b", "job": {"id": 1}}) == "b/x/1"


def test_validate_reports_every_schema_mistake_of_a_file(tmp_path: Path) -> None:
    doc = widened()
    x = doc["x-jobmock"]
    x["timing"]["queued"] = "soon"
    x["retry_after"]["seconds"] = "five"
    x["ids"] = 7
    with pytest.raises(SpecError) as caught:
        load(tmp_path, doc)
    keys = {p.key for p in caught.value.problems}
    assert {"/x-jobmock/timing/queued", "/x-jobmock/retry_after/seconds", "/x-jobmock/ids"} <= keys
    assert all(k in str(caught.value) for k in keys)


def croma_with(tmp_path: Path, **wait: Any) -> ApiSpec:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "openapi" / "croma.yaml").read_text())
    doc["x-jobmock"]["submit"]["wait"].update(wait)
    doc["x-jobmock"]["errors"]["method_not_allowed"] = {
        "status": 405, "body": {"error": {"type": "invalid_request_error",
                                          "code": "method_not_allowed", "message": "{message}"}}}
    return load(tmp_path, doc)


def test_the_applied_header_only_on_the_answers_the_spec_names(tmp_path: Path) -> None:
    spec = croma_with(tmp_path, applied_on=[200], applied_default=True)
    mock = Mock(spec, clock=VirtualClock())
    headers = {"authorization": "Bearer sk_test_croma_org_a", "content-type": "application/json"}
    body = {"document_type": "CC", "document_number": "12345678"}
    op = spec.submit_operations[0]
    path = op.path.replace("{source}", "sicaac")
    pending = call(mock, "POST", path, body, {**headers, "prefer": "wait=0"})
    assert pending.status == 202 and pending.header("preference-applied") is None
    held = mock.dispatch(Request("POST", path, headers=headers, body=json.dumps(body).encode()))
    assert hasattr(held, "finish")
    mock.engine.advance_clock(120)
    done = held.finish()  # type: ignore[union-attr]
    assert done.status == 200
    assert done.header("preference-applied") == f"wait={int(op.wait.default)}"


def test_405_in_the_apis_error_shape_when_the_spec_names_one(tmp_path: Path) -> None:
    spec = croma_with(tmp_path)
    mock = Mock(spec, clock=VirtualClock())
    r = call(mock, "DELETE", spec.submit_operations[0].path.replace("{source}", "sicaac"),
             headers={"authorization": "Bearer sk_test_croma_org_a"})
    assert r.status == 405 and r.json()["error"]["code"] == "method_not_allowed"
    assert r.header("allow") == "POST"


def test_the_reference_page_is_the_schema_rendered() -> None:
    """docs/x-jobmock.md is what `jobmock reference` writes from the schema: it can't drift."""
    from click.testing import CliRunner

    from jobmock.cli import main

    page = (ROOT / "docs" / "x-jobmock.md").read_text(encoding="utf-8")
    result = CliRunner().invoke(main, ["reference"])
    assert result.exit_code == 0 and result.output == page
    for key in ("timing.flow", "lifecycle.status_from", "assumed", "role", "page", "via"):
        assert f"`{key}`" in page


def test_every_key_of_the_schema_is_described() -> None:
    """Every property of the x-jobmock schema (at any depth, in $defs too) has a non-empty
    description, so the reference page explains every key."""
    from jobmock.spec import packaged_schema

    schema = packaged_schema("x-jobmock")
    undescribed: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{path}/{i}")
            return
        if not isinstance(node, dict):
            return
        for key, value in node.items():
            if key in ("properties", "patternProperties") and isinstance(value, dict):
                for name, sub in value.items():
                    text = sub.get("description") if isinstance(sub, dict) else None
                    if not (isinstance(text, str) and text.strip()):
                        undescribed.append(f"{path}/{key}/{name}")
            walk(value, f"{path}/{key}")

    walk(schema, "")
    assert len(schema.get("properties", {})) > 10
    assert undescribed == []
