"""QA scenarios (jobmock.scenarios): the catalog in fixtures/, its stories, rules, loading and errors.

Every scenario in fixtures/ is loaded and its story executed in-process (the ASGI app on
a virtual clock); tests/test_scenarios_live.py runs a sample against ``jobmock serve``.
Expected values about an API (error statuses, status words) are read from its spec.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from starlette.testclient import TestClient

from jobmock import Mock, VirtualClock, bundled_names, resolve_spec
from jobmock.asgi import create_app
from jobmock.cli import main
from jobmock.errors import ScenarioError
from jobmock.scenarios import (
    MAX_LATENCY,
    MISSING,
    ActiveScenario,
    StoryFailure,
    active_scenario,
    catalog,
    compare,
    fixtures_dir,
    install_scenario,
    load_scenario,
    pointer_get,
    scenario_files,
    scenario_mock,
    scenario_schema,
)
from jobmock.scenarios.format import ResponseFault
from jobmock.testing import run_story

FIXTURES = scenario_files()
IDS = [p.relative_to(fixtures_dir()).as_posix() for p in FIXTURES]


def raw(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def fixture(name: str) -> Path:
    return fixtures_dir() / name


# --------------------------------------------------------------------------- the catalog


def test_catalog_has_at_least_four_scenarios_per_api_each_with_a_story() -> None:
    entries = catalog()
    assert not [e for e in entries if "error" in e]
    assert len(entries) == len(FIXTURES)
    for api in bundled_names():
        mine = [e for e in entries if e["api"] == api]
        assert len(mine) >= 4, f"{api}: {len(mine)} scenarios"
    for entry, path in zip(entries, sorted(FIXTURES, key=lambda p: (raw(p)["api"], p.name)),
                           strict=True):
        assert entry["description"] == raw(path)["description"]
        assert "\n" not in entry["description"] and entry["description"].strip()
        assert entry["steps"] == len(raw(path)["story"]) > 0
        assert entry["file"] == path.relative_to(fixtures_dir()).as_posix()


def test_jobmock_scenarios_prints_the_catalog() -> None:
    runner = CliRunner()
    text = runner.invoke(main, ["scenarios"])
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    assert len(lines) == len(FIXTURES)
    for entry, line in zip(catalog(), lines, strict=True):
        assert line.split()[0] == entry["api"]
        assert entry["file"] in line and line.endswith(entry["description"])
    as_json = runner.invoke(main, ["scenarios", "--json"])
    assert as_json.exit_code == 0
    assert json.loads(as_json.output) == catalog()


def test_catalog_reports_a_broken_file_instead_of_failing(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(fixture("croma/job-expires.yaml").read_text())
    (tmp_path / "bad.yaml").write_text("api: croma\n")
    entries = {e["file"]: e for e in catalog(tmp_path)}
    assert entries["good.yaml"]["api"] == "croma" and "error" not in entries["good.yaml"]
    assert "description" in entries["bad.yaml"]["error"]


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(scenario_schema())


# --------------------------------------------------------------------------- stories


@pytest.mark.parametrize("path", FIXTURES, ids=IDS)
def test_story_passes_in_process(path: Path) -> None:
    log = run_story(path)
    assert len(log) == len(raw(path)["story"])


def _first(story: list[dict[str, Any]], pred: Any) -> int:
    return next(i for i, step in enumerate(story) if pred(step))


@pytest.mark.parametrize("path", FIXTURES, ids=IDS)
def test_a_story_with_one_wrong_expectation_fails_at_that_step(path: Path) -> None:
    doc = raw(path)
    story = doc["story"]
    i = _first(story, lambda s: "expect" in s)
    expect = story[i]["expect"]
    if "status" in expect:
        expect["status"] = 418
    elif "dropped" in expect:
        expect["dropped"] = not expect["dropped"]
    elif "json" in expect:
        pointer = next(iter(expect["json"]))
        expect["json"][pointer] = {"$present": True, "$len": -1}
    elif "job" in expect:
        expect["job"]["json"] = {"/id": "not-this-job"}
    else:
        expect["webhooks"]["count"] = 99
    scenario = load_scenario(doc, file=f"mutated {path.name}")
    with pytest.raises(StoryFailure) as info:
        run_story(scenario)
    assert info.value.index == i
    assert f"mutated {path.name}: story step {i} (expect" in str(info.value)


#: Fixtures whose rules (or limits) are the whole point: without them the story must fail.
RULES_MATTER = [
    "croma/job-expires.yaml",
    "croma/inline-failure-answered-502.yaml",
    "croma/poll-connection-dropped-once.yaml",
    "enrich/poll-500-then-recovers.yaml",
    "enrich/total-appears-when-picked-up.yaml",
    "bronid/failed-run.yaml",
    "cloro/queue-limit-429.yaml",
    "cloro/fifo-concurrency-2.yaml",
    "docimprint/progress-then-failure.yaml",
    "docimprint/sync-extract-gateway-timeout.yaml",
]


@pytest.mark.parametrize("name", RULES_MATTER)
def test_without_its_rules_and_limits_the_story_fails(name: str) -> None:
    doc = raw(fixture(name))
    for key in ("rules", "limits", "advance"):
        doc.pop(key, None)
    with pytest.raises(StoryFailure):
        run_story(load_scenario(doc, file=name))


def test_the_receiver_behaviour_matters_too() -> None:
    doc = raw(fixture("croma/callback-retried-after-two-500s.yaml"))
    doc["webhook_receiver"] = {}
    with pytest.raises(StoryFailure, match="expected state retrying, got delivered"):
        run_story(load_scenario(doc, file="healthy receiver"))


def test_a_story_log_names_each_step() -> None:
    log = run_story(fixture("croma/inline-wait-times-out.yaml"))
    assert "held 10 s" in log[0] and "202" in log[0]
    assert log[2].split()[1:3] == ["advance", "25"]


# --------------------------------------------------------------------------- rules, in-process


CLORO = resolve_spec("cloro")
CLORO_OP = CLORO.submit_operations[0]
CLORO_AUTH = CLORO.auth.headers_for(CLORO.demo_tenants()[0][1])
CLORO_OTHER = CLORO.auth.headers_for(CLORO.demo_tenants()[1][1])


def cloro_client(scenario: dict[str, Any]) -> tuple[Mock, TestClient]:
    mock = Mock(CLORO, clock=VirtualClock())
    install_scenario(mock, {"api": "cloro", "description": "test", **scenario})
    return mock, TestClient(create_app(mock), base_url="http://mock.test")


def task(prompt: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"taskType": "CHATGPT", "payload": {"prompt": prompt}, **extra}


def test_a_limit_rule_answers_the_specs_named_error_and_creates_no_job() -> None:
    err = CLORO.limits.queue_error
    assert err is not None
    mock, client = cloro_client({"rules": [{"match": {"nth": 2}, "limit": {"error": err}}]})
    with client:
        first = client.post(CLORO_OP.path, json=task(), headers=CLORO_AUTH)
        second = client.post(CLORO_OP.path, json=task(), headers=CLORO_AUTH)
        third = client.post(CLORO_OP.path, json=task(), headers=CLORO_AUTH)
    assert first.status_code == third.status_code == CLORO_OP.responses["pending"].status
    assert second.status_code == CLORO.errors[err].status
    expected = CLORO.errors[err].body({"message": "", "request": {}})
    assert second.json() == expected
    assert len(mock.engine.store) == 2


def test_job_rules_combine_the_earlier_winning_and_nth_counts_created_jobs() -> None:
    mock, client = cloro_client({
        "limits": {"queue": {"max": 2}},
        "rules": [
            {"name": "second", "match": {"nth": 2}, "job": {"outcome": "FAILED"}},
            {"name": "all", "job": {"queued_for": 1, "running_for": 2, "outcome": "COMPLETED"}},
        ]})
    with client:
        ids = []
        for _ in range(3):  # the third is refused by the (lowered) queue limit: not counted
            r = client.post(CLORO_OP.path, json=task(), headers=CLORO_AUTH)
            ids.append(r.json()["task"]["id"] if r.status_code == 200 else None)
        assert ids[2] is None
        mock.engine.advance_clock(1)
        ids[2] = client.post(CLORO_OP.path, json=task(), headers=CLORO_AUTH).json()["task"]["id"]
        mock.engine.advance_clock(10)
        words = [client.get(f"/v1/task/{i}", headers=CLORO_AUTH).json()["task"]["status"] for i in ids]
        state = client.get("/_jobmock/scenario").json()
    assert words == ["COMPLETED", "FAILED", "COMPLETED"]
    assert [(r["name"], r["matched"], r["applied"]) for r in state["rules"]] == [
        ("second", 3, 1), ("all", 3, 3)]


def test_matching_by_tenant_header_and_body_matchers() -> None:
    mock, client = cloro_client({"rules": [{
        "match": {"tenant": "org_b", "headers": {"x-trace": "yes"},
                  "body": {"/payload/prompt": {"$in": ["a", "b"]}}},
        "job": {"outcome": "FAILED", "queued_for": 0, "running_for": 1}}]})
    with client:
        hit = client.post(CLORO_OP.path, json=task("a"), headers={**CLORO_OTHER, "X-Trace": "yes"})
        wrong_tenant = client.post(CLORO_OP.path, json=task("a"), headers={**CLORO_AUTH, "X-Trace": "yes"})
        no_header = client.post(CLORO_OP.path, json=task("b"), headers=CLORO_OTHER)
        wrong_body = client.post(CLORO_OP.path, json=task("c"), headers={**CLORO_OTHER, "X-Trace": "yes"})
    planned = {j.id: j.outcome for j in mock.engine.jobs()}
    assert planned[hit.json()["task"]["id"]] == "FAILED"
    for r in (wrong_tenant, no_header, wrong_body):
        assert planned[r.json()["task"]["id"]] is not None
        assert mock.engine.get(r.json()["task"]["id"]).queued_for != 0  # type: ignore[union-attr]


def test_times_caps_a_response_rule_and_reset_restarts_the_counters() -> None:
    mock, client = cloro_client({"rules": [{
        "match": {"operation": "getTask", "status": 200},
        "response": {"status": 503, "body": {"busy": True}, "headers": {"Retry-After": "7"}},
        "times": 1}]})
    with client:
        job_id = client.post(CLORO_OP.path, json=task(), headers=CLORO_AUTH).json()["task"]["id"]
        first = client.get(f"/v1/task/{job_id}", headers=CLORO_AUTH)
        second = client.get(f"/v1/task/{job_id}", headers=CLORO_AUTH)
        unknown = client.get("/v1/task/nope", headers=CLORO_AUTH)
        assert (first.status_code, first.json(), first.headers["Retry-After"]) == (503, {"busy": True}, "7")
        assert second.status_code == 200
        assert unknown.status_code == CLORO.errors["not_found"].status  # status 404 never matched
        client.post("/_jobmock/reset", json={})
        job_id = client.post(CLORO_OP.path, json=task(), headers=CLORO_AUTH).json()["task"]["id"]
        again = client.get(f"/v1/task/{job_id}", headers=CLORO_AUTH)
    assert again.status_code == 503
    assert isinstance(active_scenario(mock), ActiveScenario)


def test_job_polls_moves_a_matched_job_one_step_every_n_polls() -> None:
    lc = CLORO.lifecycle
    mock, client = cloro_client({"rules": [{"match": {"body": {"/payload/prompt": "slow"}},
                                            "job": {"polls": 2, "outcome": "FAILED"}}]})
    with client:
        polled = client.post(CLORO_OP.path, json=task("slow"), headers=CLORO_AUTH).json()["task"]["id"]
        timed = client.post(CLORO_OP.path, json=task("fast"), headers=CLORO_AUTH).json()["task"]["id"]
        mock.engine.advance_clock(CLORO.timing.queued[1] + CLORO.timing.running[1] + 1)
        seen = [client.get(f"/v1/task/{polled}", headers=CLORO_AUTH).json()["task"]["status"]
                for _ in range(4)]
        other = client.get(f"/v1/task/{timed}", headers=CLORO_AUTH).json()["task"]["status"]
    assert seen == [lc.queued, lc.running, lc.running, "FAILED"]
    assert lc.is_terminal(other)


def test_method_and_path_globs_and_the_default_malformed_body() -> None:
    _, client = cloro_client({"rules": [{"match": {"method": "GET", "path": "/v1/task/*"},
                                         "response": {"malformed": True}}]})
    with client:
        created = client.post(CLORO_OP.path, json=task(), headers=CLORO_AUTH)
        polled = client.get(f"/v1/task/{created.json()['task']['id']}", headers=CLORO_AUTH)
    assert created.json()["success"] is True
    assert polled.status_code == 200 and polled.headers["content-type"] == "application/json"
    with pytest.raises(ValueError):
        json.loads(polled.content)


def test_job_progress_replaces_the_specs_steps_for_matched_jobs_only() -> None:
    spec = resolve_spec("docimprint")
    op = next(o for o in spec.submit_operations if o.operation_id == "extract")
    mock = Mock(spec, clock=VirtualClock())
    install_scenario(mock, {"api": "docimprint", "description": "x", "rules": [{
        "match": {"body": {"/source": "https://example.com/mine.pdf"}},
        "job": {"queued_for": 0, "running_for": 30, "progress": [{"pct": 33, "message": "one third"}]}}]})
    auth = spec.auth.headers_for(spec.demo_tenants()[0][1])
    with TestClient(create_app(mock), base_url="http://mock.test") as client:
        mine = client.post(op.path, json={"source": "https://example.com/mine.pdf"},
                           headers=auth).json()["job_id"]
        other = client.post(op.path, json={"source": "https://example.com/other.pdf"},
                            headers=auth).json()["job_id"]
        mock.engine.advance_clock(16)
        got = client.get(f"/v1/jobs/{mine}").json()
    assert (got["progress_pct"], got["progress_message"]) == (33, "one third")
    assert mock.engine.get(other).progress_steps is None  # type: ignore[union-attr]
    assert spec.progress_steps and all(pct != 33 for pct, _ in spec.progress_steps)


def test_loading_starts_clean_and_replacing_restores_what_the_old_scenario_changed() -> None:
    mock = Mock(CLORO, clock=VirtualClock(), seed=3)
    mock.engine.submit(CLORO_OP, tenant="org_a", body=task())
    install_scenario(mock, {"api": "cloro", "description": "x", "seed": 9,
                            "limits": {"concurrency": {"max": 1}},
                            "advance": {"mode": "manual"}, "allow_private_callbacks": True})
    assert len(mock.engine.store) == 0 and mock.journal.total == 0
    assert mock.spec.limits.concurrency_max == 1 and mock.engine.spec.limits.concurrency_max == 1
    assert mock.engine.advance.mode == "manual" and mock.allow_private_callbacks
    assert mock.engine.seed == 9
    install_scenario(mock, {"api": "cloro", "description": "y"})
    assert mock.spec.limits.concurrency_max == CLORO.limits.concurrency_max
    assert mock.engine.advance.mode == "time" and not mock.allow_private_callbacks
    assert mock.engine.seed == 3
    assert mock.submit_hooks == [active_scenario(mock)._on_submit]  # type: ignore[union-attr]


def test_same_seed_same_ids_and_draws_every_time() -> None:
    def ids() -> list[str]:
        mock = scenario_mock(fixture("cloro/idempotency-key-returns-same-task.yaml"))
        return [mock.engine.submit(CLORO_OP, tenant="org_a", body=task(str(i)))[0].id for i in range(3)]

    assert ids() == ids()


def test_a_scenario_for_another_api_is_refused() -> None:
    mock = Mock(CLORO, clock=VirtualClock())
    with pytest.raises(ScenarioError) as info:
        install_scenario(mock, fixture("croma/job-expires.yaml"))
    assert info.value.key == "/api" and "'cloro'" in info.value.expected


def test_clock_mismatch_is_noted_not_fatal() -> None:
    mock = Mock(CLORO, clock=VirtualClock())
    install_scenario(mock, {"api": "cloro", "description": "x", "clock": {"kind": "real", "speed": 60}})
    notes = active_scenario(mock).state()["notes"]  # type: ignore[union-attr]
    assert notes and "real clock x60" in notes[0]


# --------------------------------------------------------------------------- the control plane


def test_post_scenario_loads_one_at_runtime_and_get_shows_its_counters() -> None:
    mock = Mock(CLORO, clock=VirtualClock())
    doc = raw(fixture("cloro/queue-limit-429.yaml"))
    with TestClient(create_app(mock), base_url="http://mock.test") as client:
        assert client.get("/_jobmock/scenario").json()["loaded"] is None
        r = client.post("/_jobmock/scenario", json=doc)
        assert r.status_code == 200 and r.json() == {"loaded": "scenario"}
        for i in range(4):
            client.post(CLORO_OP.path, json=task(str(i)), headers=CLORO_AUTH)
        state = client.get("/_jobmock/scenario").json()
    assert state["description"] == doc["description"]
    assert state["rules"][0]["applied"] == 3 and state["jobs"] == 3 and state["requests"] == 4
    assert mock.spec.limits.queue_max == doc["limits"]["queue"]["max"]


def test_post_scenario_with_a_named_file_keeps_its_name() -> None:
    mock = Mock(CLORO, clock=VirtualClock())
    with TestClient(create_app(mock), base_url="http://mock.test") as client:
        r = client.post("/_jobmock/scenario", json={"api": "cloro", "name": "mine", "description": "d"})
        assert r.json() == {"loaded": "mine"}


@pytest.mark.parametrize(("doc", "key"), [
    ({"api": "cloro"}, ""),
    ({"api": "croma", "description": "x"}, "/api"),
    ({"api": "cloro", "description": "x", "rules": [{"match": {"operation": "nope"}, "job": {}}]},
     "/rules/0/job"),
    ({"api": "cloro", "description": "x", "rules": [{"match": {"operation": "nope"},
                                                     "job": {"manual": True}}]},
     "/rules/0/match/operation"),
])
def test_post_scenario_refuses_a_bad_one_with_400_naming_the_key(doc: dict[str, Any], key: str) -> None:
    mock = Mock(CLORO, clock=VirtualClock())
    with TestClient(create_app(mock), base_url="http://mock.test") as client:
        r = client.post("/_jobmock/scenario", json=doc)
    assert r.status_code == 400
    assert f"at {key or '(root)'}:" in r.json()["error"]
    assert active_scenario(mock) is None


# --------------------------------------------------------------------------- malformed files


CROMA_OK = {"api": "croma", "description": "ok"}

MALFORMED: list[tuple[str, Any, str, str]] = [
    ("yaml", "api: croma\ndescription: [unclosed\n", "", "valid YAML"),
    ("not-a-mapping", "- api: croma\n", "", "a mapping"),
    ("no-description", {"api": "croma"}, "", "'description' is a required property"),
    ("unknown-key", {**CROMA_OK, "rulez": []}, "", "'rulez' was unexpected"),
    ("two-line-description", {"api": "croma", "description": "a\nb"}, "/description", "does not match"),
    ("seed-not-int", {**CROMA_OK, "seed": "abc"}, "/seed", "'abc' is not of type 'integer'"),
    ("unknown-api", {"api": "acme", "description": "x"}, "/api", "a bundled API name"),
    ("rule-without-action", {**CROMA_OK, "rules": [{"match": {"operation": "getJob"}}]}, "/rules/0",
     "at least one of job, response or limit"),
    ("unknown-operation", {**CROMA_OK, "rules": [{"match": {"operation": "getjob"},
                                                  "response": {"status": 500}}]},
     "/rules/0/match/operation", "an operationId of croma"),
    ("job-rule-on-status-op", {**CROMA_OK, "rules": [{"match": {"operation": "getJob"},
                                                      "job": {"outcome": "failed"}}]},
     "/rules/0/match/operation", "a submit operation of croma"),
    ("unknown-outcome", {**CROMA_OK, "rules": [{"job": {"outcome": "succeeded"}}]},
     "/rules/0/job/outcome", "a terminal status word of croma"),
    ("non-terminal-outcome", {**CROMA_OK, "rules": [{"job": {"outcome": "running"}}]},
     "/rules/0/job/outcome", "a terminal status word"),
    ("negative-timing", {**CROMA_OK, "rules": [{"job": {"running_for": -1}}]},
     "/rules/0/job/running_for", "less than the minimum"),
    ("unknown-response-error", {**CROMA_OK, "rules": [{"response": {"error": "server_error"}}]},
     "/rules/0/response/error", "an error under x-jobmock/errors of croma"),
    ("unknown-limit-error", {**CROMA_OK, "rules": [{"limit": {"error": "queue_full"}}]},
     "/rules/0/limit/error", "an error under x-jobmock/errors of croma"),
    ("status-in-job-rule", {**CROMA_OK, "rules": [{"match": {"status": 202}, "job": {"manual": True}}]},
     "/rules/0/match/status", "response-only rule"),
    ("unknown-tenant", {**CROMA_OK, "rules": [{"match": {"tenant": "org_z"}, "job": {"manual": True}}]},
     "/rules/0/match/tenant", "a tenant of croma"),
    ("bad-matcher", {**CROMA_OK, "rules": [{"match": {"body": {"/ruc": {"$regex": "x"}}},
                                            "job": {"manual": True}}]},
     "/rules/0/match/body/~1ruc", "matchers from"),
    ("decreasing-progress", {**CROMA_OK, "rules": [{"job": {"progress": [{"pct": 50, "message": "a"},
                                                                        {"pct": 20, "message": "b"}]}}]},
     "/rules/0/job/progress", "never decrease"),
    ("queue-error-needed", {**CROMA_OK, "limits": {"queue": {"max": 3}}}, "/limits/queue/error",
     "spec names no queue limit"),
    ("receiver-without-webhooks", {"api": "enrich", "description": "x", "webhook_receiver": {}},
     "/webhook_receiver", "enrich sends no webhooks"),
    ("unknown-step", {**CROMA_OK, "story": [{"sumbit": {"operation": "lookupSunat"}}]}, "/story/0",
     "'sumbit' was unexpected"),
    ("two-kinds-in-a-step", {**CROMA_OK, "story": [{"advance": 1, "note": "x"}]}, "/story/0",
     "has too many properties"),
    ("submit-a-status-op", {**CROMA_OK, "story": [{"submit": {"operation": "getJob"}}]},
     "/story/0/submit/operation", "a submit operation of croma"),
    ("missing-path-param", {"api": "bronid", "description": "x",
                            "story": [{"submit": {"operation": "dispatchWatchlist"}}]},
     "/story/0/submit/params", "['trace']"),
    ("poll-unknown-name", {**CROMA_OK, "story": [{"submit": {"operation": "lookupSunat", "as": "a"}},
                                                 {"poll": {"job": "b"}}]},
     "/story/1/poll/job", "known: ['a']"),
    ("id-of-unknown-name", {**CROMA_OK, "story": [{"request": {"method": "GET", "path": "/jobs/{x.id}"}}]},
     "/story/0/request", "none yet"),
    ("receiver-url-without-receiver", {**CROMA_OK, "story": [{"submit": {
        "operation": "lookupSunat", "body": {"ruc": "20100047218", "callback_url": "{receiver.url}"}}}]},
     "/story/0/submit", "a webhook_receiver section"),
    ("force-unknown-status", {**CROMA_OK, "story": [{"submit": {"operation": "lookupSunat", "as": "a"}},
                                                    {"force": {"job": "a", "status": "done"}}]},
     "/story/1/force/status", "a status word of croma"),
    ("expect-before-any-answer", {**CROMA_OK, "story": [{"expect": {"status": 200}}]}, "/story/0/expect",
     "an earlier submit, request or poll"),
    ("expect-unknown-matcher", {**CROMA_OK, "story": [{"submit": {"operation": "lookupSunat"}},
                                                      {"expect": {"json": {"/status": {"$eq": "x"}}}}]},
     "/story/1/expect/json/~1status", "matchers from"),
    ("sent-of-unknown-name", {**CROMA_OK, "story": [{"submit": {"operation": "lookupSunat"}},
                                                    {"expect": {"json": {"/id": {"$sent": "zz#/id"}}}}]},
     "/story/1/expect", "got 'zz'"),
    ("bad-repeat", {**CROMA_OK, "story": [{"submit": {"operation": "lookupSunat",
                                                      "body": {"x": {"$repeat": "many"}}}}]},
     "/story/0/submit/body/x", "$repeat"),
    ("webhooks-on-api-without", {"api": "enrich", "description": "x", "story": [
        {"submit": {"operation": "submitEnrichJob", "as": "a"}},
        {"expect": {"webhooks": {"job": "a", "count": 0}}}]},
     "/story/1/expect/webhooks", "enrich sends none"),
]


@pytest.mark.parametrize(("doc", "key", "expected"), [m[1:] for m in MALFORMED],
                         ids=[m[0] for m in MALFORMED])
def test_a_malformed_scenario_file_names_the_file_and_the_key(tmp_path: Path, doc: Any, key: str,
                                                             expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    err = info.value
    assert (err.file, err.key) == (str(path), key), str(err)
    assert expected in err.expected, str(err)
    assert str(err).startswith(f"{path}: at {key or '(root)'}: ")


def test_an_unreadable_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="a readable scenario file"):
        load_scenario(tmp_path / "missing.yaml")


def test_jobmock_serve_refuses_a_malformed_scenario_naming_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**CROMA_OK, "rules": [{"job": {"outcome": "succeeded"}}]}))
    result = CliRunner().invoke(main, ["serve", "croma", "--clock", "virtual", "--scenario", str(path)])
    assert result.exit_code != 0
    assert f"{path}: at /rules/0/job/outcome: expected a terminal status word of croma" in result.output


def test_a_latency_over_the_maximum_is_refused_at_load_with_every_mistake(tmp_path: Path) -> None:
    assert scenario_schema()["$defs"]["response"]["properties"]["latency"]["maximum"] == MAX_LATENCY
    path = tmp_path / "slow.yaml"
    path.write_text(yaml.safe_dump({**CROMA_OK, "rules": [
        {"response": {"latency": MAX_LATENCY + 1}},
        {"response": {"latency": MAX_LATENCY}},  # the maximum itself is fine
        {"response": {"latency": 1e308}, "job": {"running_for": -1}},
    ]}))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    found = {(e.file, e.key): e.expected for e in info.value.problems}
    assert set(found) == {(str(path), "/rules/0/response/latency"),
                          (str(path), "/rules/2/response/latency"),
                          (str(path), "/rules/2/job/running_for")}, str(info.value)
    assert "greater than the maximum of 3600" in found[(str(path), "/rules/0/response/latency")]
    assert str(info.value).count(f"{path}: at /rules/") == 3
    rules = [{"response": {"latency": MAX_LATENCY}}]
    assert load_scenario({**CROMA_OK, "rules": rules}).rules[0].response.latency == MAX_LATENCY  # type: ignore[union-attr]


def test_the_control_plane_and_serve_refuse_a_latency_over_the_maximum(tmp_path: Path) -> None:
    doc = {**CROMA_OK, "rules": [{"response": {"latency": 86_400}}, {"response": {"latency": 7200}}]}
    mock = Mock(resolve_spec("croma"), clock=VirtualClock())
    with TestClient(create_app(mock), base_url="http://mock.test") as client:
        r = client.post("/_jobmock/scenario", json=doc)
    assert r.status_code == 400
    error = r.json()["error"]
    assert "/rules/0/response/latency" in error and "/rules/1/response/latency" in error
    assert active_scenario(mock) is None
    path = tmp_path / "slow.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = CliRunner().invoke(main, ["serve", "croma", "--clock", "virtual", "--scenario", str(path)])
    assert result.exit_code != 0
    assert f"{path}: at /rules/1/response/latency: expected 7200 is greater than the maximum" in result.output


@pytest.mark.parametrize("latency", [MAX_LATENCY * 2, -1.0, float("nan"), float("inf")])
def test_a_response_fault_built_in_python_keeps_within_the_maximum(latency: float) -> None:
    with pytest.raises(ValueError, match="latency must be from 0 to 3600"):
        ResponseFault(latency=latency)


def test_jobmock_serve_refuses_a_scenario_for_another_api() -> None:
    path = fixture("enrich/job-fails.yaml")
    result = CliRunner().invoke(main, ["serve", "croma", "--scenario", str(path)])
    assert result.exit_code != 0
    assert f"{path}: at /api: expected the API this mock serves ('croma')" in result.output


def test_a_spec_path_resolves_relative_to_the_scenario_file(tmp_path: Path) -> None:
    spec_file = resolve_spec("enrich").file
    (tmp_path / "api.yaml").write_text(Path(spec_file).read_text())
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"api": "api.yaml", "description": "x"}))
    scenario = load_scenario(tmp_path / "s.yaml")
    assert scenario.spec.name == "api"
    assert scenario.name == "s"


# --------------------------------------------------------------------------- matchers


def test_compare_and_pointers() -> None:
    doc = {"a": [{"t": "x"}, {"t": "y"}], "n": 3, "b": True, "s": "hello", "a/b": 1}
    assert pointer_get(doc, "/a/1/t") == "y" and pointer_get(doc, "/a/2") is MISSING
    assert pointer_get(doc, "/a~1b") == 1 and pointer_get(doc, "") == doc
    assert compare(3, 3.0) is None and compare(True, 1) is not None and compare(1, True) is not None
    assert compare(MISSING, {"$present": False}) is None
    assert compare(None, {"$present": False}) is not None
    assert compare(doc["a"], {"$len": 2}) is None and compare(doc["a"], {"$len": 3}) is not None
    assert compare(doc["a"], {"$pluck": "t", "$equals": ["x", "y"]}) is None
    problem = compare(doc["a"], {"$pluck": "t", "$equals": ["x", "z"]})
    assert problem is not None and "index 1" in problem
    assert compare(3, {"$gte": 3, "$lte": 3}) is None and compare(4, {"$lte": 3}) is not None
    assert compare("hello", {"$contains": "ell"}) is None and compare([1, 2], {"$contains": 3}) is not None
    assert compare("b", {"$in": ["a", "b"]}) is None and compare("c", {"$in": ["a"]}) is not None
    assert compare({"k": [1]}, {"k": [1]}) is None and compare({"k": [1]}, {"k": [1, 2]}) is not None


def test_a_fixture_copy_is_not_changed_by_loading() -> None:
    doc = raw(fixture("enrich/results-in-order-1000.yaml"))
    before = copy.deepcopy(doc)
    load_scenario(doc)
    assert doc == before
