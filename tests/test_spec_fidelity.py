"""The five specs exactly as their vendor documents say (issue 11): fixes made in the specs.

One section per item of the issue that the spec files settle:

1. croma's envelope requires only the fields the document names;
5. bronid's error bodies write ``path`` in the document's form (``/v5/verifications/:trace/...``),
   like its success bodies;
8. every choice the specs make beyond the document is marked ``Assumed:``, with its value
   (durations and outcome odds, Retry-After, croma's Preference-Applied on a 202,
   docimprint's progress steps and ``store`` field), and cloro accepts unknown fields;
10. every validation-error example is what the mock answers to the request its summary names;
11. docimprint documents the 504 a synchronous extract may end with, as the bundled scenario
    answers it;
2. croma answers a job that ends badly within the inline wait with an error status, never 200
   with ``data: null`` (and the contract suite's inline check follows);
6. cloro's credit check is documented with its reading marked ``Assumed:``;
7. croma signs callbacks only for the organizations that asked, marked ``Assumed:``;
12. the demo webhook secret is in the ``serve`` banner and in ``jobmock apis --json``.
(Items 3, 4, 6 and 9 as behaviour: tests/test_engine.py, test_http_bronid.py,
test_http_cloro.py, test_http_enrich.py.)

The checks read the parsed YAML (helpers from ``test_specs``) and, where the mock's answer is
the point, send the request to an in-process mock.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from jobmock import resolve_spec
from jobmock.contract.specview import SpecView
from jobmock.templates import template_leaves
from jobmock.validation import schema_validator
from test_specs import (
    APIS,
    HTTP_METHODS,
    Doc,
    deref,
    doc,
    errors_of,
    op_at,
    operations,
    ops_with_role,
    properties,
    required,
    response,
    status_op,
    x,
)

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"


def flat(text: str) -> str:
    """``text`` with every run of whitespace (YAML line folds included) as one space."""
    return " ".join(text.split())


def assumed(text: Any) -> bool:
    return isinstance(text, str) and "Assumed:" in text


def validator(api: str, schema: Any) -> jsonschema.protocols.Validator:
    return schema_validator(resolve_spec(api), schema).evolve(
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def schema_errors(api: str, schema: Any, value: Any) -> list[str]:
    return [f"/{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator(api, schema).iter_errors(value)]


def media_schema(d: Doc, resp: dict[str, Any], media_type: str = "application/json") -> Any:
    return resp["content"][media_type]["schema"]


def creds(api: str, index: int = 0) -> dict[str, str]:
    spec = resolve_spec(api)
    return spec.auth.headers_for(spec.demo_tenants()[index][1])


# --------------------------------------------------------------------------- 1. croma envelope

CROMA_NAMED = {"status", "status_url", "data", "error"}  # what the document names


def test_croma_envelope_requires_only_what_the_document_names() -> None:
    d = doc("croma")
    envelope = d["components"]["schemas"]["JobEnvelope"]
    assert required(d, envelope) == CROMA_NAMED
    for name, prop in properties(d, envelope).items():
        if name not in CROMA_NAMED:
            assert assumed(deref(d, prop).get("description")), f"{name} is marked Assumed:"
    data = d["components"]["schemas"]["LookupData"]
    assert required(d, data) == set(), "the document shows no field of data"
    for name, prop in properties(d, data).items():
        assert assumed(prop.get("description")), f"data/{name} is marked Assumed:"


def _croma_envelope_schemas() -> Iterator[Any]:
    d = doc("croma")
    yield pytest.param(media_schema(d, response(d, status_op(d), 200)), id="poll-200")
    for op in ops_with_role(d, "submit"):
        oid = op["operationId"]
        yield pytest.param(media_schema(d, response(d, op, 202)), id=f"{oid}-202")
        # (The 200 answer is `{ "data": … }` only, no envelope: see item 2 below.)
        for cb in (op.get("callbacks") or {}).values():
            for item in deref(d, cb).values():
                body = deref(d, deref(d, item)["post"]["requestBody"])
                yield pytest.param(media_schema(d, body), id=f"{oid}-callback")


MINIMAL = {"status": "running", "status_url": "https://api.croma.example/jobs/j1", "data": None,
           "error": None}


@pytest.mark.parametrize("schema", list(_croma_envelope_schemas()))
def test_croma_envelope_without_assumed_fields_is_valid(schema: Any) -> None:
    assert schema_errors("croma", schema, MINIMAL) == []
    done = {**MINIMAL, "status": "completed", "data": {"has_records": False}}
    assert schema_errors("croma", schema, done) == [], "data without source"
    assert schema_errors("croma", schema, {k: v for k, v in MINIMAL.items() if k != "status"})


def test_croma_contract_view_accepts_an_envelope_without_assumed_fields() -> None:
    """The contract suite judges polls and 202s by these schemas (``SpecView``)."""
    spec = resolve_spec("croma")
    view = SpecView(spec)
    poll = view.response_validator(spec.status_operation, 200)
    assert poll is not None and list(poll.iter_errors(MINIMAL)) == []
    for op in spec.submit_operations:
        accepted = view.response_validator(op, 202)
        assert accepted is not None and list(accepted.iter_errors(MINIMAL)) == []
    assert view.webhook_validator is not None
    assert list(view.webhook_validator.iter_errors(MINIMAL)) == []


# --------------------------------------------------------------------------- 5. bronid path

BRONID_ROUTES = {
    "/v5/verifications/{trace}/watchlist": "/v5/verifications/:trace/watchlist",
    "/v5/verifications/{trace}/jobs/{type}/{jobId}": "/v5/verifications/:trace/jobs/:type/:jobId",
}


def test_bronid_success_bodies_write_the_documents_route() -> None:
    render = x(doc("bronid"))["render"]
    assert {render["dispatched"]["path"], render["job"]["path"]} == set(BRONID_ROUTES.values())


@pytest.mark.parametrize("name", sorted(x(doc("bronid"))["errors"]))
@pytest.mark.parametrize("route", sorted(BRONID_ROUTES))
def test_bronid_error_body_writes_the_route_like_a_success_body(name: str, route: str) -> None:
    spec = resolve_spec("bronid")
    ctx = {"now": "2026-01-01T00:00:00.000Z", "tenant": "org_a", "message": "m",
           "conflict": {"id": "V1StGXR8_Z5jdHi6B-myT"},
           "request": {"path_template": route, "params": {"trace": "t"}}}
    assert spec.errors[name].body(ctx)["path"] == BRONID_ROUTES[route]


def _bodies_with_path(node: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        if "pathParams" in node and "path" in node:
            yield where, node["path"]
        for k, v in node.items():
            yield from _bodies_with_path(v, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _bodies_with_path(v, f"{where}/{i}")


def test_bronid_examples_write_routes_in_the_documents_form() -> None:
    found = dict(_bodies_with_path(doc("bronid")["components"]["examples"]))
    assert len(found) >= 10
    for where, path in found.items():
        assert path in BRONID_ROUTES.values(), f"{where}: {path!r}"


def test_bronid_error_answers_write_the_route_like_success_answers(make_client: Any) -> None:
    spec = resolve_spec("bronid")
    _mock, client = make_client("bronid")
    trace = "abc123-verification-trace"
    ok = client.post(f"/v5/verifications/{trace}/watchlist", headers=creds("bronid"))
    assert ok.status_code == 202, ok.text
    job_id = ok.json()["data"]["jobId"]
    polled = client.get(f"/v5/verifications/{trace}/jobs/watchlist/{job_id}",
                        headers=creds("bronid"))
    assert polled.status_code == 200, polled.text
    job_route = polled.json()["path"]
    answers = {
        "not_found": client.get(f"/v5/verifications/{trace}/jobs/watchlist/doesNotExist000000000",
                                headers=creds("bronid")),
        "validation": client.get(f"/v5/verifications/{trace}/jobs/reports/{job_id}",
                                 headers=creds("bronid")),
        "unauthorized": client.get(f"/v5/verifications/{trace}/jobs/watchlist/{job_id}"),
    }
    for name, r in answers.items():
        assert r.status_code == spec.errors[name].status, (name, r.text)
        assert r.json()["path"] == job_route == BRONID_ROUTES[spec.status_operation.path], name
    bad_dispatch = client.post("/v5/verifications//watchlist", headers=creds("bronid"))
    assert bad_dispatch.status_code == spec.errors["validation"].status, bad_dispatch.text
    assert bad_dispatch.json()["path"] == ok.json()["path"] == "/v5/verifications/:trace/watchlist"


# --------------------------------------------------------------------------- 8. Assumed: choices


def _percent(weight: float, total: float) -> str:
    return f"{round(weight / total * 100, 2):g}%"


@pytest.mark.parametrize("api", APIS)
def test_timing_is_marked_assumed_with_its_numbers(api: str) -> None:
    """info.description states the durations and outcome odds x-jobmock.timing draws from."""
    d = doc(api)
    timing = x(d)["timing"]
    sentences = [s for s in flat(d["info"]["description"]).split("Assumed:")[1:]
                 if "durations" in s]
    assert len(sentences) == 1, "one Assumed: note on durations and outcome odds"
    text = sentences[0]
    for phase in ("queued", "running"):
        low, high = timing[phase]
        assert f"{low:g}-{high:g} s" in text, (phase, text)
    total = sum(timing["outcomes"].values())
    for word, weight in timing["outcomes"].items():
        assert f"{word} {_percent(weight, total)}" in text, (word, text)


@pytest.mark.parametrize("api", APIS)
def test_retry_after_value_is_marked_assumed(api: str) -> None:
    d = doc(api)
    header = deref(d, response(d, status_op(d), 200)["headers"]["Retry-After"])
    text = flat(header["description"])
    assert assumed(text)
    assert f"Retry-After: {x(d)['retry_after']['seconds']}" in text, text


def test_croma_preference_applied_on_202_is_assumed_and_optional() -> None:
    d = doc("croma")
    for op in ops_with_role(d, "submit"):
        on_202 = deref(d, response(d, op, 202)["headers"]["Preference-Applied"])
        assert assumed(on_202.get("description")), op["operationId"]
        assert not on_202.get("required"), "a server may omit it on a 202"
        on_200 = deref(d, response(d, op, 200)["headers"]["Preference-Applied"])
        assert not assumed(on_200.get("description")), "documented on the 200"


def test_docimprint_progress_steps_are_marked_assumed() -> None:
    d = doc("docimprint")
    job = d["components"]["schemas"]["Job"]
    text = flat(job["properties"]["progress_pct"]["description"])
    assert assumed(text)
    progress = x(d)["progress"]
    for step in progress["steps"]:
        assert f"{step['pct']} `{step['message']}`" in text, step
    assert f"100 `{progress['done_message']}`" in text


def test_docimprint_store_is_a_body_field_marked_assumed() -> None:
    d = doc("docimprint")
    extract = op_at(d, "post", "/v1/extract")
    body = deref(d, deref(d, extract["requestBody"])["content"]["application/json"]["schema"])
    assert "store" in body["properties"]
    assert assumed(body["properties"]["store"]["description"])
    query = {deref(d, p)["name"] for p in extract.get("parameters") or []}
    assert "store" not in query


CLORO_EXTRAS = {"taskType": "CHATGPT", "payload": {"prompt": "hi"}, "extra": 1,
                "webhook": {"url": "https://hooks.example.com/cloro", "secret": "s"}}


def test_cloro_accepts_unknown_fields_and_says_so() -> None:
    d = doc("cloro")
    schemas = d["components"]["schemas"]
    for name in ("CreateTaskRequest", "WebhookConfig"):
        assert schemas[name].get("additionalProperties", True) is not False, name
        assert assumed(schemas[name]["description"]), name
    body = deref(d, op_at(d, "post", "/v1/task")["requestBody"])
    assert schema_errors("cloro", body["content"]["application/json"]["schema"],
                         CLORO_EXTRAS) == []


def test_cloro_mock_accepts_unknown_fields(make_client: Any) -> None:
    _mock, client = make_client("cloro")
    r = client.post("/v1/task", json=CLORO_EXTRAS, headers=creds("cloro"))
    assert r.status_code == 200, r.text
    assert r.json()["task"]["status"] == "QUEUED"


# --------------------------------------------------------------------------- 10. validation examples

_SUMMARY = re.compile(r"The answer to (?P<method>[A-Z]+) (?P<path>/\S*)(?: (?P<body>.+))?")


def _validation_examples() -> Iterator[Any]:
    """Every example of a validation-error answer: (api, where, summary, value), once each."""
    for api in APIS:
        d = doc(api)
        err = x(d)["errors"]["validation"]
        constants = [(p, v) for p, v in template_leaves(err["body"])
                     if not (isinstance(v, str) and "{" in v)]
        seen: set[str] = set()
        for path, method, op in operations(d):
            resp = (op.get("responses") or {}).get(str(err["status"]))
            if resp is None:
                continue
            media = deref(d, resp)["content"]["application/json"]
            for name, ex in (media.get("examples") or {}).items():
                key = ex.get("$ref") or f"{resp.get('$ref') or method + ' ' + path}/{name}"
                target = deref(d, ex)
                if key in seen or not all(_at(target["value"], p) == v for p, v in constants):
                    continue
                seen.add(key)
                yield pytest.param(api, key, target.get("summary", ""), target["value"],
                                   id=f"{api}-{'/'.join(key.split('/')[-2:])}")


def _at(value: Any, pointer: str) -> Any:
    for part in [p for p in pointer.split("/") if p]:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def test_every_api_has_validation_examples() -> None:
    assert {p.values[0] for p in _validation_examples()} == set(APIS)


@pytest.mark.parametrize(("api", "where", "summary", "value"), list(_validation_examples()))
def test_validation_example_is_what_the_mock_answers(make_client: Any, api: str, where: str,
                                                     summary: str, value: Any) -> None:
    match = _SUMMARY.fullmatch(summary)
    assert match, f"{where}: its summary names the request ('The answer to METHOD /path [json]')"
    method, path = match["method"], match["path"]
    assert method.lower() in HTTP_METHODS
    body = match["body"]
    if body:
        json.loads(body)  # the summary's body is JSON
    _mock, client = make_client(api)
    headers = {**creds(api), **({"Content-Type": "application/json"} if body else {})}
    r = client.request(method, path, content=body.encode() if body else b"", headers=headers)
    assert r.status_code == x(doc(api))["errors"]["validation"]["status"], r.text
    got = r.json()
    if isinstance(got, dict) and "timestamp" in got:  # bronid: the time of the answer
        got["timestamp"] = value["timestamp"]
    assert got == value


# --------------------------------------------------------------------------- 11. docimprint 504


def _forced_answers() -> Iterator[Any]:
    """(api, fixture, rule) of every scenario rule that forces an answer's status."""
    for path in sorted(FIXTURES.glob("*/*.yaml")):
        scenario = yaml.safe_load(path.read_text(encoding="utf-8"))
        for rule in scenario.get("rules") or []:
            forced = rule.get("response") or {}
            if "status" in forced or "error" in forced:
                yield pytest.param(scenario["api"], path.name, rule,
                                   id=f"{scenario['api']}-{path.stem}-{rule.get('name', '')}")


def _operation(d: Doc, operation_id: str) -> dict[str, Any]:
    (op,) = [o for _, _, o in operations(d) if o.get("operationId") == operation_id]
    return op


def test_the_gateway_timeout_scenario_is_found() -> None:
    assert any(p.values[1] == "sync-extract-gateway-timeout.yaml"
               and p.values[2]["response"]["status"] == 504 for p in _forced_answers())


@pytest.mark.parametrize(("api", "fixture", "rule"), list(_forced_answers()))
def test_a_scenarios_forced_answer_is_documented(api: str, fixture: str,
                                                 rule: dict[str, Any]) -> None:
    """An OpenAPI validator (Prism) accepts what a bundled scenario makes the mock answer."""
    d = doc(api)
    forced = rule["response"]
    op = _operation(d, rule["match"]["operation"])
    status = forced.get("status") or x(d)["errors"][forced["error"]]["status"]
    resp = response(d, op, status)
    headers = {k.lower(): v for k, v in (forced.get("headers") or {}).items()}
    media_type = headers.get("content-type", "application/json").split(";")[0].strip()
    assert media_type in resp["content"], f"{status} documents {media_type}"
    removed = forced.get("remove_header") or []
    removed = {h.lower() for h in ([removed] if isinstance(removed, str) else removed)}
    for name, header in (resp.get("headers") or {}).items():
        if deref(d, header).get("required"):
            assert name.lower() not in removed, f"{name} is required on the {status}"
    if "malformed" in forced:
        body = forced["malformed"]
        if media_type == "application/json":
            body = json.loads(body)
        assert schema_errors(api, resp["content"][media_type]["schema"], body) == []


def test_docimprint_sync_operations_document_the_504() -> None:
    d = doc("docimprint")
    for path in ("/v1/extract", "/v1/summarize", "/v1/qa"):
        resp = response(d, op_at(d, "post", path), 504)
        assert assumed(resp["description"]) and "may time out" in flat(resp["description"])
        assert {"text/html", "application/json"} <= set(resp["content"])
        assert media_schema(d, resp) == {"$ref": "#/components/schemas/ErrorBody"}
        example = deref(d, resp["content"]["application/json"]["examples"]["gatewayTimeout"])
        assert errors_of("docimprint", "/components/schemas/ErrorBody", example["value"]) == []
    batch = op_at(d, "post", "/v1/jobs")
    assert "504" not in batch["responses"], "a batch is never held"


# --------------------------------------------------------------------------- 2. croma, ending badly inline


def _inline(status: int, body: Any, word_after: str) -> Any:
    """The contract suite's inline_wait check on one inline answer (a fake context)."""
    from types import SimpleNamespace

    from jobmock.contract.checks import check_inline
    from jobmock.contract.client import Exchange
    from jobmock.contract.context import Observation

    spec = resolve_spec("croma")
    op = spec.submit_operations[0]
    ctx = SimpleNamespace(spec=spec, view=SpecView(spec),
                          client=SimpleNamespace(reproduction=lambda *a, **k: ""))
    ex = Exchange("POST", "http://mock.test" + op.path, {}, b"{}", status, {},
                  json.dumps(body).encode(), 0.0)
    return check_inline(ctx, Observation("inline", ex, None,  # type: ignore[arg-type]
                                         {"op": op, "prefer_wait": None, "word_after": word_after}))


def test_croma_a_job_ending_badly_in_the_wait_has_an_error_status_marked_assumed() -> None:
    d = doc("croma")
    spec = resolve_spec("croma")
    lc = spec.lifecycle
    bad = sorted(w for w in lc.terminal_words if lc.states[w] != "completed")
    assert bad == ["canceled", "expired", "failed"]
    for op in spec.submit_operations:
        statuses = {op.responses[w].status for w in bad}
        assert len(statuses) == 3 and min(statuses) >= 500, statuses
        assert op.responses["completed"].status == 200
        for word in bad:
            resp = response(d, op_at(d, "post", op.path), op.responses[word].status)
            assert media_schema(d, resp) == {"$ref": "#/components/schemas/ErrorBody"}
            assert deref(d, resp["headers"]["X-Job-Id"])["required"] is True
    failed = response(d, op_at(d, "post", spec.submit_operations[0].path), 502)
    assert assumed(failed["description"]) and "identical to a synchronous endpoint" in flat(
        failed["description"]), "the choice is marked and says why"
    # The 200 answer is the completed lookup's `{ "data": ... }` only: data null is not in it.
    ok = media_schema(d, response(d, op_at(d, "post", spec.submit_operations[0].path), 200))
    assert schema_errors("croma", ok, {"data": None})
    assert schema_errors("croma", ok, {"data": {"source": "sicaac"}}) == []


def test_croma_contract_suite_fails_a_200_for_a_job_that_failed_in_the_wait() -> None:
    with pytest.raises(AssertionError, match="inline_wait"):
        _inline(200, {"data": None}, "failed")
    with pytest.raises(AssertionError, match="inline_wait"):
        _inline(502, {"error": {"type": "t", "code": "c", "message": "m"}}, "expired")
    _inline(502, {"error": {"type": "t", "code": "c", "message": "m"}}, "failed")
    _inline(504, {"error": {"type": "t", "code": "c", "message": "m"}}, "expired")
    _inline(200, {"data": {}}, "completed")
    _inline(202, {}, "failed")  # not finished at the answer, ended before the poll after it


# --------------------------------------------------------------------------- 6. cloro credits


def test_cloro_credit_check_is_documented_and_its_reading_assumed() -> None:
    d = doc("cloro")
    resp = deref(d, op_at(d, "post", "/v1/task")["responses"]["403"])
    text = flat(resp["description"])
    assert assumed(text) and "keeps no credit balance" not in text
    assert "held" in text and "COMPLETED" in text
    spec = resolve_spec("cloro")
    assert spec.errors["insufficient_credits"].status == 403
    assert set(spec.credits_balances) <= set(spec.auth.tenants)


# --------------------------------------------------------------------------- 7. croma signing on request


def test_croma_signature_is_optional_and_the_demo_choice_assumed() -> None:
    d = doc("croma")
    spec = resolve_spec("croma")
    assert spec.webhooks is not None and spec.webhooks.signature is not None
    enabled = spec.webhooks.signature.enabled_for
    assert enabled is not None and set(enabled) < set(spec.auth.tenants), "off by default"
    op = ops_with_role(d, "submit")[0]
    for cb in op["callbacks"].values():
        for item in deref(d, cb).values():
            [sig] = [p for p in deref(d, item)["post"]["parameters"]
                     if p["name"] == "x-croma-signature"]
            assert sig["required"] is False
            text = flat(sig["description"])
            assert assumed(text) and "reach out if you want it enabled" in text
            assert all(f"`{t}`" in text for t in spec.auth.tenants)


def _webhook_verdict(tenant: str, headers: dict[str, str]) -> str:
    """The contract suite's webhooks check on one croma callback of ``tenant``'s job."""
    import hashlib
    import hmac
    from types import SimpleNamespace

    from jobmock.contract.checks import check_webhook
    from jobmock.contract.client import Tenant
    from jobmock.contract.context import Observation
    from jobmock.receiver import Received

    spec = resolve_spec("croma")
    assert spec.webhooks is not None and spec.webhooks.signature is not None
    secret = spec.webhooks.signature.secret
    ctx = SimpleNamespace(spec=spec, view=SpecView(spec), webhook_secret=secret,
                          time=SimpleNamespace(virtual=True),
                          client=SimpleNamespace(reproduction=lambda *a, **k: ""))
    body = json.dumps({"id": "j1", "status": "completed", "status_url": "https://x/jobs/j1",
                       "data": {}, "error": None}).encode()
    good = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {k: good if v == "good" else v for k, v in headers.items()}
    delivery = Received("POST", "/hook", {"x-croma-job-id": "j1", **headers}, body, 0.0)
    job = SimpleNamespace(id="j1", tenant=Tenant(tenant, "key"), statuses=["completed"])
    try:
        check_webhook(ctx, Observation("webhook", None, job, {  # type: ignore[arg-type]
            "deliveries": [delivery], "expected_headers": {"x-croma-job-id": "j1"},
            "final_body": None}))
    except AssertionError:
        return "fail"
    return "ok"


def test_croma_contract_suite_wants_a_signature_only_where_the_spec_signs() -> None:
    (signed, _), (unsigned, _) = resolve_spec("croma").demo_tenants()
    bad = {"x-croma-signature": "sha256=" + "0" * 64}
    assert _webhook_verdict(signed, {"x-croma-signature": "good"}) == "ok"
    # Which organizations asked for signing is the spec's assumption (x-jobmock.assumed):
    # a server that does not sign them is not failed for it; a wrong signature is.
    assert _webhook_verdict(signed, {}) == "ok"
    assert _webhook_verdict(signed, bad) == "fail"
    assert _webhook_verdict(unsigned, {}) == "ok"
    assert _webhook_verdict(unsigned, bad) == "fail", "a signature that is sent must verify"


# --------------------------------------------------------------------------- 12. the demo webhook secret


def test_the_demo_webhook_secret_is_in_the_banner_and_in_apis_json() -> None:
    from click.testing import CliRunner

    from jobmock.cli import banner, main

    records = {r["name"]: r for r in json.loads(CliRunner().invoke(main, ["apis", "--json"]).stdout)}
    for api in APIS:
        spec = resolve_spec(api)
        sig = spec.webhooks.signature if spec.webhooks is not None else None
        shown = banner(spec, "http://127.0.0.1:8080", "real", 1.0, 0)
        if sig is None:
            assert records[api]["webhook_signature"] is None
            assert "webhook secret" not in shown
            continue
        signed = list(sig.enabled_for) if sig.enabled_for is not None else list(spec.auth.tenants)
        assert records[api]["webhook_signature"] == {
            "header": sig.header, "format": sig.format, "secret": sig.secret,
            "signed_tenants": signed}
        assert f"webhook secret: {sig.secret}" in shown
        # a secret of the user's own is never printed
        mine = banner(spec, "http://127.0.0.1:8080", "real", 1.0, 0, "my-own-secret")
        assert "my-own-secret" not in mine and sig.secret not in mine
    assert records["croma"]["webhook_signature"]["secret"] == "whsec_croma_demo"


def _drop_credit_error(d: Doc) -> None:
    del x(d)["errors"]["insufficient_credits"]


def _unknown_credit_tenant(d: Doc) -> None:
    x(d)["credits"]["balances"]["org_nobody"] = 5


def _unknown_signed_tenant(d: Doc) -> None:
    x(d)["webhooks"]["signature"]["enabled_for"] = ["org_a", "org_nobody"]


@pytest.mark.parametrize(("api", "edit", "key"), [
    ("cloro", _drop_credit_error, "/x-jobmock/credits/balances"),
    ("cloro", _unknown_credit_tenant, "/x-jobmock/credits/balances"),
    ("croma", _unknown_signed_tenant, "/x-jobmock/webhooks/signature/enabled_for"),
])
def test_credit_balances_and_signed_tenants_are_checked_at_load(api: str, edit: Any,
                                                                 key: str) -> None:
    from jobmock.errors import SpecError
    from jobmock.spec import build_spec

    d = doc(api)
    edit(d)
    with pytest.raises(SpecError) as info:
        build_spec(d, f"{api}.yaml")
    assert info.value.key == key
