"""The five bundled OpenAPI 3.1 specs, checked as documents (not through the mock).

1. Each spec is valid OpenAPI 3.1, its ``x-jobmock`` blocks (top level and on
   operations) validate against ``src/jobmock/schemas/x-jobmock.schema.json``, and
   :func:`jobmock.load_spec` loads it.
2. Every example (media types, parameters, headers, component examples, callback and
   webhook bodies, schema-level examples) validates against its schema.
3. Every behaviour the vendor document states is present in the spec: one table row
   per behaviour, read out of the parsed YAML.
4. Submit operations link to the status operation, every response has a schema and an
   example, and the gaps the vendor documents leave are marked ``Assumed:``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jsonschema
import pytest
import yaml
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from jobmock import load_spec

ROOT = Path(__file__).resolve().parents[1]
SPEC_DIR = ROOT / "openapi"
EXTENSION_SCHEMA_FILE = ROOT / "src" / "jobmock" / "schemas" / "x-jobmock.schema.json"
APIS = ("bronid", "cloro", "croma", "docimprint", "enrich")
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
# The x-jobmock schema's own words: "terminal roles are completed, failed, canceled,
# expired, rejected".
TERMINAL_ROLES = frozenset({"completed", "failed", "canceled", "expired", "rejected"})
DOC_URI = "urn:jobmock:spec"

Doc = dict[str, Any]


# --------------------------------------------------------------------------- reading specs


def spec_file(api: str) -> Path:
    return SPEC_DIR / f"{api}.yaml"


@cache
def raw(api: str) -> str:
    return spec_file(api).read_text(encoding="utf-8")


@cache
def _parsed(api: str) -> str:
    # Kept as JSON text so every caller gets a fresh, unshared copy of the document.
    return json.dumps(yaml.safe_load(raw(api)))


def doc(api: str) -> Doc:
    parsed: Doc = json.loads(_parsed(api))
    return parsed


@cache
def extension_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(EXTENSION_SCHEMA_FILE.read_text(encoding="utf-8"))
    return schema


def operation_schema() -> dict[str, Any]:
    root = extension_schema()
    return {"$schema": root["$schema"], "$defs": root["$defs"], "$ref": "#/$defs/operation"}


def escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def get_pointer(d: Any, pointer: str) -> Any:
    node = d
    for part in pointer.lstrip("/").split("/") if pointer else []:
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def deref(d: Doc, node: Any) -> Any:
    """Follow local ``$ref``s (``#/...``) until a node without one."""
    for _ in range(32):
        if not (isinstance(node, dict) and "$ref" in node):
            return node
        ref = node["$ref"]
        assert ref.startswith("#/"), f"only local references are expected, got {ref!r}"
        node = get_pointer(d, ref[1:])
    raise AssertionError("a $ref chain longer than 32")


def operations(d: Doc) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in (d.get("paths") or {}).items():
        item = deref(d, item)
        for method in HTTP_METHODS:
            if method in item:
                yield path, method, item[method]


def op_by_id(d: Doc, operation_id: str) -> dict[str, Any]:
    found = [o for _, _, o in operations(d) if o.get("operationId") == operation_id]
    assert len(found) == 1, f"exactly one operation {operation_id!r}, found {len(found)}"
    return found[0]


def op_at(d: Doc, method: str, path: str) -> dict[str, Any]:
    item = deref(d, (d.get("paths") or {}).get(path))
    assert item and method in item, f"{method.upper()} {path} is in the spec"
    op: dict[str, Any] = item[method]
    return op


def ops_with_role(d: Doc, role: str) -> list[dict[str, Any]]:
    return [o for _, _, o in operations(d) if (o.get("x-jobmock") or {}).get("role") == role]


def status_op(d: Doc) -> dict[str, Any]:
    found = ops_with_role(d, "status")
    assert len(found) == 1, "exactly one operation with x-jobmock role: status"
    return found[0]


def response(d: Doc, op: dict[str, Any], status: int | str) -> dict[str, Any]:
    responses = op.get("responses") or {}
    assert str(status) in responses, (
        f"{op.get('operationId')} documents a {status} response (has {sorted(responses)})"
    )
    resolved: dict[str, Any] = deref(d, responses[str(status)])
    return resolved


def header_names(d: Doc, resp: dict[str, Any]) -> set[str]:
    return {h.lower() for h in (resp.get("headers") or {})}


def json_media(d: Doc, holder: dict[str, Any]) -> dict[str, Any]:
    content = deref(d, holder).get("content") or {}
    assert "application/json" in content, "an application/json body"
    media: dict[str, Any] = content["application/json"]
    return media


def media_examples(d: Doc, media: dict[str, Any]) -> list[Any]:
    values = [media["example"]] if "example" in media else []
    values += [deref(d, e).get("value") for e in (media.get("examples") or {}).values()]
    return values


def response_schema(d: Doc, op: dict[str, Any], status: int | str) -> dict[str, Any]:
    schema: dict[str, Any] = deref(d, json_media(d, response(d, op, status))["schema"])
    return schema


def response_examples(d: Doc, op: dict[str, Any], status: int | str) -> list[Any]:
    return media_examples(d, json_media(d, response(d, op, status)))


def request_schema(d: Doc, op: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = deref(d, json_media(d, op["requestBody"])["schema"])
    return schema


def parameters(d: Doc, op: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """An operation's parameters (refs resolved), by (in, name)."""
    out = {}
    for p in op.get("parameters") or []:
        p = deref(d, p)
        out[(p["in"], p["name"] if p["in"] != "header" else p["name"].lower())] = p
    return out


def properties(d: Doc, schema: Any) -> dict[str, Any]:
    """Properties of an object schema, merged over ``$ref`` and ``allOf``."""
    schema = deref(d, schema)
    props: dict[str, Any] = dict(schema.get("properties") or {})
    for sub in schema.get("allOf") or []:
        for k, v in properties(d, sub).items():
            props.setdefault(k, v)
    return props


def schema_at(d: Doc, schema: Any, path: str) -> dict[str, Any]:
    """The subschema of property path ``a/b/c`` (a JSON pointer into instances)."""
    node = deref(d, schema)
    for part in [p for p in path.split("/") if p]:
        props = properties(d, node)
        assert part in props, f"property {part!r} in the schema (has {sorted(props)})"
        node = deref(d, props[part])
    result: dict[str, Any] = node
    return result


def required(d: Doc, schema: Any) -> set[str]:
    schema = deref(d, schema)
    names = set(schema.get("required") or [])
    for sub in schema.get("allOf") or []:
        sub = deref(d, sub)
        if not {"if", "then", "else"} & set(sub):
            names |= required(d, sub)
    return names


def types(schema: dict[str, Any]) -> set[str]:
    t = schema.get("type")
    return set(t) if isinstance(t, list) else {t} if t else set()


def strings_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings_in(v)


def x(d: Doc) -> dict[str, Any]:
    ext: dict[str, Any] = d["x-jobmock"]
    return ext


def x_error(d: Doc, name: str) -> dict[str, Any]:
    errors = x(d)["errors"]
    assert name in errors, f"x-jobmock/errors/{name} exists (has {sorted(errors)})"
    err: dict[str, Any] = errors[name]
    return err


# --------------------------------------------------------------------------- validating


FORMATS = jsonschema.FormatChecker()
if "uri" not in FORMATS.checkers:  # rfc3987 is not installed: a minimal RFC 3986 check

    @FORMATS.checks("uri")
    def _is_uri(value: object) -> bool:
        return not isinstance(value, str) or bool(
            re.fullmatch(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s]+", value)
        )


@cache
def registry(api: str) -> Registry[Any]:
    resource = Resource.from_contents(doc(api), default_specification=DRAFT202012)
    return Registry().with_resource(DOC_URI, resource)


def validator_at(api: str, pointer: str) -> jsonschema.protocols.Validator:
    """A Draft 2020-12 validator for the schema at ``pointer`` of the whole document."""
    ref = f"{DOC_URI}#{quote(pointer, safe='/~')}"
    return jsonschema.Draft202012Validator(
        {"$ref": ref}, registry=registry(api), format_checker=FORMATS
    )


def errors_of(api: str, pointer: str, value: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in validator_at(api, pointer).iter_errors(value)
    ]


# --------------------------------------------------------------------------- 1. validity


def test_the_spec_folder_holds_the_five_apis() -> None:
    assert sorted(p.stem for p in SPEC_DIR.glob("*.yaml")) == list(APIS)


@pytest.mark.parametrize("api", APIS)
def test_spec_is_valid_openapi_3_1(api: str) -> None:
    d = doc(api)
    assert str(d["openapi"]).startswith("3.1.")
    validate_openapi(d)


def test_extension_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(extension_schema())


@pytest.mark.parametrize("api", APIS)
def test_top_level_x_jobmock_matches_the_extension_schema(api: str) -> None:
    validator = jsonschema.Draft202012Validator(extension_schema())
    errors = [f"/{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator.iter_errors(doc(api)["x-jobmock"])]
    assert errors == []


def _operation_blocks() -> list[Any]:
    cases = []
    for api in APIS:
        d = doc(api)
        for path, method, op in operations(d):
            if "x-jobmock" in op:
                cases.append(pytest.param(api, path, method,
                                          id=f"{api}-{method.upper()} {path}"))
    return cases


@pytest.mark.parametrize(("api", "path", "method"), _operation_blocks())
def test_operation_x_jobmock_matches_the_extension_schema(api: str, path: str,
                                                          method: str) -> None:
    block = op_at(doc(api), method, path)["x-jobmock"]
    validator = jsonschema.Draft202012Validator(operation_schema())
    errors = [f"/{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator.iter_errors(block)]
    assert errors == []


@pytest.mark.parametrize("api", APIS)
def test_every_api_has_operation_level_blocks(api: str) -> None:
    d = doc(api)
    assert ops_with_role(d, "submit"), "at least one operation with x-jobmock role: submit"
    status_op(d)


@pytest.mark.parametrize("api", APIS)
def test_load_spec_loads_the_spec(api: str) -> None:
    d = doc(api)
    spec = load_spec(spec_file(api))
    assert spec.name == api
    assert spec.file == str(spec_file(api))
    assert spec.title == d["info"]["title"]
    assert dict(spec.lifecycle.states) == x(d)["lifecycle"]["states"]
    assert {o.operation_id for o in spec.submit_operations} == {
        o["operationId"] for o in ops_with_role(d, "submit")
    }
    assert spec.status_operation.operation_id == status_op(d)["operationId"]
    assert set(spec.auth.tenants) == set(x(d)["auth"]["tenants"])


# --------------------------------------------------------------------------- 2. examples


@dataclass(frozen=True)
class Example:
    api: str
    where: str  # JSON pointer of the example (and of the component it refers to)
    schema: str  # JSON pointer of the schema it must match
    value: Any
    ref: str | None = None  # the components/examples entry it refers to


SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "dependentSchemas")
SCHEMA_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "contains",
              "propertyNames", "unevaluatedItems", "unevaluatedProperties")
SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")


class _Collector:
    """Walks one document and lists every example with the schema it must match.

    Nodes that are ``$ref``s are skipped where they are used: their target is a
    component, and the components are walked on their own, so each example is listed
    once, under the place it is written.
    """

    def __init__(self, api: str) -> None:
        self.api = api
        self.d = doc(api)
        self.found: list[Example] = []

    def collect(self) -> list[Example]:
        d = self.d
        for path, item in (d.get("paths") or {}).items():
            self.path_item(f"/paths/{escape(path)}", item)
        for name, item in (d.get("webhooks") or {}).items():
            self.path_item(f"/webhooks/{escape(name)}", item)
        comps = d.get("components") or {}
        walkers: dict[str, Callable[[str, Any], None]] = {
            "parameters": self.parameter, "headers": self.parameter,
            "requestBodies": self.request_body, "responses": self.response,
            "callbacks": self.callback, "pathItems": self.path_item, "schemas": self.schema,
        }
        for section, walk in walkers.items():
            for name, node in (comps.get(section) or {}).items():
                walk(f"/components/{section}/{escape(name)}", node)
        return self.found

    def path_item(self, ptr: str, item: Any) -> None:
        if "$ref" in item:
            return
        for i, p in enumerate(item.get("parameters") or []):
            self.parameter(f"{ptr}/parameters/{i}", p)
        for method in HTTP_METHODS:
            if method in item:
                self.operation(f"{ptr}/{method}", item[method])

    def operation(self, ptr: str, op: dict[str, Any]) -> None:
        for i, p in enumerate(op.get("parameters") or []):
            self.parameter(f"{ptr}/parameters/{i}", p)
        if "requestBody" in op:
            self.request_body(f"{ptr}/requestBody", op["requestBody"])
        for status, r in (op.get("responses") or {}).items():
            self.response(f"{ptr}/responses/{escape(str(status))}", r)
        for name, cb in (op.get("callbacks") or {}).items():
            self.callback(f"{ptr}/callbacks/{escape(name)}", cb)

    def callback(self, ptr: str, cb: Any) -> None:
        if "$ref" in cb:
            return
        for expression, item in cb.items():
            self.path_item(f"{ptr}/{escape(expression)}", item)

    def parameter(self, ptr: str, p: Any) -> None:
        if "$ref" in p:
            return
        if "schema" in p:
            self.examples_of(ptr, p, f"{ptr}/schema")
            self.schema(f"{ptr}/schema", p["schema"])
        for mt, media in (p.get("content") or {}).items():
            self.media(f"{ptr}/content/{escape(mt)}", media)

    def request_body(self, ptr: str, rb: Any) -> None:
        if "$ref" in rb:
            return
        for mt, media in (rb.get("content") or {}).items():
            self.media(f"{ptr}/content/{escape(mt)}", media)

    def response(self, ptr: str, r: Any) -> None:
        if "$ref" in r:
            return
        for name, h in (r.get("headers") or {}).items():
            self.parameter(f"{ptr}/headers/{escape(name)}", h)
        for mt, media in (r.get("content") or {}).items():
            self.media(f"{ptr}/content/{escape(mt)}", media)

    def media(self, ptr: str, media: dict[str, Any]) -> None:
        if "schema" not in media:
            return
        self.examples_of(ptr, media, f"{ptr}/schema")
        self.schema(f"{ptr}/schema", media["schema"])

    def examples_of(self, ptr: str, holder: dict[str, Any], schema_ptr: str) -> None:
        if "example" in holder:
            self.found.append(Example(self.api, f"{ptr}/example", schema_ptr, holder["example"]))
        for name, ex in (holder.get("examples") or {}).items():
            where = f"{ptr}/examples/{escape(name)}"
            ref = ex.get("$ref") if isinstance(ex, dict) else None
            target = deref(self.d, ex)
            assert "value" in target, f"{self.api}: {where} has a value (no externalValue)"
            self.found.append(Example(self.api, where, schema_ptr, target["value"], ref))

    def schema(self, ptr: str, s: Any) -> None:
        """Schema-level ``examples`` (a list) and ``example`` (OpenAPI's keyword)."""
        if not isinstance(s, dict) or set(s) == {"$ref"}:
            return
        listed = s.get("examples")
        for i, value in enumerate(listed if isinstance(listed, list) else []):
            self.found.append(Example(self.api, f"{ptr}/examples/{i}", ptr, value))
        if "example" in s:
            self.found.append(Example(self.api, f"{ptr}/example", ptr, s["example"]))
        for key in SCHEMA_MAPS:
            for name, sub in (s.get(key) or {}).items():
                self.schema(f"{ptr}/{key}/{escape(name)}", sub)
        for key in SCHEMA_ONE:
            if isinstance(s.get(key), dict):
                self.schema(f"{ptr}/{key}", s[key])
        for key in SCHEMA_LISTS:
            for i, sub in enumerate(s.get(key) or []):
                self.schema(f"{ptr}/{key}/{i}", sub)


@cache
def all_examples() -> tuple[Example, ...]:
    return tuple(e for api in APIS for e in _Collector(api).collect())


def _example_id(e: Example) -> str:
    return f"{e.api}:{e.where}" + (f" -> {e.ref}" if e.ref else "")


@pytest.mark.parametrize("example", all_examples(), ids=_example_id)
def test_example_matches_its_schema(example: Example) -> None:
    assert errors_of(example.api, example.schema, example.value) == []


@pytest.mark.parametrize("api", APIS)
def test_examples_were_found_in_every_kind_of_place(api: str) -> None:
    """The walk reaches responses, request bodies, callbacks and parameters."""
    wheres = [e.where for e in all_examples() if e.api == api]
    assert any("/responses/" in w for w in wheres)
    if any("requestBody" in o for _, _, o in operations(doc(api))):
        assert any("requestBod" in w for w in wheres)
    if any(o.get("callbacks") for _, _, o in operations(doc(api))):
        assert any("/callbacks/" in w and "/requestBody/" in w for w in wheres)
    assert any("/parameters/" in w for w in wheres)


def _component_examples() -> list[Any]:
    return [pytest.param(api, name, id=f"{api}-{name}")
            for api in APIS
            for name in ((doc(api).get("components") or {}).get("examples") or {})]


@pytest.mark.parametrize(("api", "name"), _component_examples())
def test_component_example_is_used_so_it_is_validated(api: str, name: str) -> None:
    ref = f"#/components/examples/{escape(name)}"
    assert any(e.ref == ref for e in all_examples() if e.api == api), (
        f"{ref} is not used by any media type or parameter, so no schema checks it"
    )


def test_the_example_check_catches_a_bad_example() -> None:
    """The validator resolves refs across the document and checks formats."""
    good = response_examples(doc("croma"), status_op(doc("croma")), 200)[0]
    ptr = "/paths/~1jobs~1{id}/get/responses/200/content/application~1json/schema"
    assert errors_of("croma", ptr, good) == []
    assert errors_of("croma", ptr, {**good, "status": "done"})  # not in the enum
    assert errors_of("croma", ptr, {**good, "created_at": "yesterday"})  # date-time
    assert errors_of("croma", ptr, {**good, "status_url": "not a uri"})  # uri
    assert errors_of("enrich", "/components/schemas/JobAccepted",
                     {"job_id": "nope", "status": "queued"})  # uuid


# --------------------------------------------------------------------------- 3. behaviours

Check = Callable[[Doc], None]
ROWS: list[Any] = []


def row(api: str, name: str) -> Callable[[Check], Check]:
    """Register ``check`` as one documented behaviour of ``api``."""

    def register(check: Check) -> Check:
        ROWS.append(pytest.param(api, check, id=f"{api}-{name}"))
        return check

    return register


def status_rows(api: str, words: dict[str, bool]) -> None:
    """The status words (word -> terminal?) in x-jobmock and in the OpenAPI enum."""

    @row(api, "status-words-in-x-jobmock")
    def _(d: Doc) -> None:
        assert set(x(d)["lifecycle"]["states"]) == set(words)

    @row(api, "terminal-status-words")
    def _(d: Doc) -> None:
        states = x(d)["lifecycle"]["states"]
        terminal = {w for w, r in states.items() if r in TERMINAL_ROLES}
        assert terminal == {w for w, t in words.items() if t}
        moves = x(d)["lifecycle"]["transitions"]
        assert all(not moves.get(w) for w in terminal), "no transitions out of terminal words"

    @row(api, "status-enum-in-openapi")
    def _(d: Doc) -> None:
        ext = x(d)
        schema = response_schema(d, status_op(d), ext["status"]["status"])
        field = schema_at(d, schema, ext["lifecycle"]["status_pointer"])
        assert set(field.get("enum") or []) == set(words)


def auth_row(api: str, kind: str, header: str | None = None) -> None:
    @row(api, f"auth-{kind}" + (f"-{header}" if header else ""))
    def _(d: Doc) -> None:
        name = x(d)["auth"]["scheme"]
        scheme = d["components"]["securitySchemes"][name]
        if kind in ("bearer", "basic"):
            assert scheme["type"] == "http"
            assert scheme["scheme"].lower() == kind
        else:
            assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", header)
        assert {name: []} in d["security"], "the scheme is required at the top level"


def tenants_row(api: str) -> None:
    @row(api, "two-demo-tenants")
    def _(d: Doc) -> None:
        tenants = x(d)["auth"]["tenants"]
        assert list(tenants)[:2] == ["org_a", "org_b"]
        for t in ("org_a", "org_b"):
            assert any(f"sk_test_{api}_{t}" in c for c in tenants[t])


# ---- croma -----------------------------------------------------------------------------

status_rows("croma", {"queued": False, "running": False, "completed": True, "failed": True,
                      "canceled": True, "expired": True})
auth_row("croma", "bearer")
tenants_row("croma")


@row("croma", "five-lookups-are-submit-operations")
def _croma_lookups(d: Doc) -> None:
    types_ = {o["x-jobmock"]["job_type"] for o in ops_with_role(d, "submit")}
    assert types_ == {"policia_nacional", "sicaac", "superfinanciera", "rree", "sunat_ruc"}


@row("croma", "prefer-param-on-every-submit")
def _croma_prefer(d: Doc) -> None:
    for op in ops_with_role(d, "submit"):
        assert ("header", "prefer") in parameters(d, op), op["operationId"]


@row("croma", "prefer-wait-default-and-clamp-55")
def _croma_wait(d: Doc) -> None:
    wait = x(d)["submit"]["wait"]
    assert (wait["default"], wait["max"], wait["prefer_header"]) == (55, 55, True)
    for op in ops_with_role(d, "submit"):
        assert "wait" not in op["x-jobmock"], "no lookup overrides the 55 s clamp"


@row("croma", "preference-applied-on-200")
def _croma_pref_applied(d: Doc) -> None:
    assert x(d)["submit"]["wait"]["applied_header"] == "Preference-Applied"
    for op in ops_with_role(d, "submit"):
        assert "preference-applied" in header_names(d, response(d, op, 200)), op["operationId"]


@row("croma", "x-job-id-on-200-and-202")
def _croma_job_id(d: Doc) -> None:
    for op in ops_with_role(d, "submit"):
        for status in (200, 202):
            assert "x-job-id" in header_names(d, response(d, op, status)), (op["operationId"],
                                                                           status)
    for key, r in x(d)["submit"]["responses"].items():
        assert r["headers"]["X-Job-Id"] == "{job.id}", key


@row("croma", "location-on-202")
def _croma_location(d: Doc) -> None:
    for op in ops_with_role(d, "submit"):
        assert "location" in header_names(d, response(d, op, 202)), op["operationId"]
    pending = x(d)["submit"]["responses"]["pending"]
    assert pending["status"] == 202
    assert pending["headers"]["Location"] == "{base_url}/jobs/{job.id}"


@row("croma", "retry-after-on-202-and-running-poll")
def _croma_retry_after(d: Doc) -> None:
    ext = x(d)
    for op in ops_with_role(d, "submit"):
        assert "retry-after" in header_names(d, response(d, op, 202)), op["operationId"]
    assert "retry-after" in header_names(d, response(d, status_op(d), 200))
    assert ext["submit"]["responses"]["pending"]["retry_after"] is True
    assert ext["status"]["retry_after"] is True
    assert "running" in ext["retry_after"]["roles"]


@row("croma", "inline-200-is-the-data-shape")
def _croma_200_data(d: Doc) -> None:
    for op in ops_with_role(d, "submit"):
        schema = response_schema(d, op, 200)
        # Completed: {data}; a job that ends otherwise within the wait is its envelope (Assumed).
        shapes = [deref(d, s) for s in schema.get("anyOf", [schema])]
        assert any("data" in required(d, s) and "status" not in required(d, s) for s in shapes), \
            op["operationId"]
    completed = x(d)["submit"]["responses"]["completed"]
    assert completed["status"] == 200
    assert x(d)["render"][completed["render"]] == {"data": "{job.result}"}


@row("croma", "one-envelope-for-202-poll-and-callback")
def _croma_envelope(d: Doc) -> None:
    poll = response_schema(d, status_op(d), 200)
    # Only what the document names is required (an `id` field is the spec's choice).
    assert required(d, poll) == {"status", "status_url", "data", "error"}
    for op in ops_with_role(d, "submit"):
        assert response_schema(d, op, 202) == poll, op["operationId"]
        for cb in (op.get("callbacks") or {}).values():
            for item in deref(d, cb).values():
                assert request_schema(d, deref(d, item)["post"]) == poll


@row("croma", "data-only-when-completed-error-only-when-failed")
def _croma_data_error(d: Doc) -> None:
    seen = set()
    for body in response_examples(d, status_op(d), 200):
        seen.add(body["status"])
        assert (body["data"] is not None) == (body["status"] == "completed"), body
        assert (body["error"] is not None) == (body["status"] == "failed"), body
        if body["error"] is not None:
            assert set(body["error"]) == {"type", "code", "message"}
    assert {"completed", "failed"} <= seen
    render = x(d)["render"][x(d)["status"]["render"]]
    assert (render["data"], render["error"]) == ("{job.result}", "{job.error}")


@row("croma", "callback-headers-job-id-and-signature")
def _croma_callback(d: Doc) -> None:
    for op in ops_with_role(d, "submit"):
        callbacks = op.get("callbacks") or {}
        assert callbacks, f"{op['operationId']} documents its callback"
        for cb in callbacks.values():
            for expression, item in deref(d, cb).items():
                assert expression == "{$request.body#/callback_url}"
                params = parameters(d, deref(d, item)["post"])
                assert params[("header", "x-croma-job-id")]["required"] is True
                sig = params[("header", "x-croma-signature")]
                # Signing is enabled on request ("reach out if you want it enabled"): optional.
                assert sig["required"] is False
                pattern = re.compile(deref(d, sig["schema"])["pattern"])
                assert pattern.search("sha256=" + "0123456789abcdef" * 4)
                assert not pattern.search("sha256=xyz")
                assert not pattern.search("sha1=" + "ab" * 20)
                assert not pattern.search("0123456789abcdef" * 4)


@row("croma", "callback-signed-hmac-sha256-with-job-id-header")
def _croma_signature(d: Doc) -> None:
    hooks = x(d)["webhooks"]
    assert hooks["signature"]["header"] == "x-croma-signature"
    assert hooks["signature"]["algorithm"] == "hmac-sha256"
    assert hooks["signature"]["format"] == "sha256={hex}"
    assert hooks["headers"] == {"x-croma-job-id": "{job.id}"}
    assert hooks["render"] == x(d)["status"]["render"], "the body is the poll envelope"


@row("croma", "callback-url-public-https")
def _croma_callback_url(d: Doc) -> None:
    hooks = x(d)["webhooks"]
    assert (hooks["url_from"], hooks["url_rule"]) == ("/callback_url", "public-https")
    for op in ops_with_role(d, "submit"):
        assert "callback_url" in properties(d, request_schema(d, op)), op["operationId"]


@row("croma", "callback-non-2xx-retried")
def _croma_retry(d: Doc) -> None:
    hooks = x(d)["webhooks"]
    assert hooks["events"] == ["terminal"]
    assert len(hooks["retry"]["delays"]) >= 1


@row("croma", "another-org-job-reads-404")
def _croma_foreign(d: Doc) -> None:
    assert x_error(d, x(d)["auth"]["foreign_job"])["status"] == 404
    assert "404" in status_op(d)["responses"]


# ---- enrich ----------------------------------------------------------------------------

ENRICH_MISSING = "Missing API key. Provide your key via the X-API-Key header."
ENRICH_INVALID = "Invalid or revoked API key."
ENRICH_NOT_FOUND = "Job not found."
ENRICH_INTERNAL = "Internal Server Error"

status_rows("enrich", {"queued": False, "processing": False, "complete": True,
                       "failed": True})
auth_row("enrich", "apikey", "X-API-Key")
tenants_row("enrich")


@row("enrich", "submit-post-v1-enrich-async")
def _enrich_submit(d: Doc) -> None:
    assert op_at(d, "post", "/v1/enrich/async")["x-jobmock"]["role"] == "submit"


@row("enrich", "poll-by-job-uuid-from-job_id")
def _enrich_poll(d: Doc) -> None:
    op = ops_with_role(d, "submit")[0]
    accepted = response_schema(d, op, 202)
    assert schema_at(d, accepted, "job_id").get("format") == "uuid"
    assert x(d)["submit"]["job_id_from"] == ["body:/job_id"]
    assert x(d)["ids"] == "{uuid}"
    assert ("path", "id") in parameters(d, status_op(d))


def _enrich_error_row(name: str, status: int, message: str, error: Callable[[Doc], str],
                      ops: tuple[str, ...]) -> None:
    @row("enrich", name)
    def _(d: Doc) -> None:
        err = x_error(d, error(d))
        assert err["status"] == status
        assert err["body"] == {"error": message}
        for role in ops:
            op = status_op(d) if role == "status" else ops_with_role(d, "submit")[0]
            assert {"error": message} in response_examples(d, op, status), role


def _error_with_status(status: int) -> Callable[[Doc], str]:
    def find(d: Doc) -> str:
        names = [n for n, e in x(d)["errors"].items() if e["status"] == status]
        assert len(names) == 1, f"one x-jobmock error with status {status}"
        return names[0]

    return find


_enrich_error_row("401-missing-key-message", 401, ENRICH_MISSING,
                  lambda d: x(d)["auth"]["missing"], ("submit", "status"))
_enrich_error_row("401-invalid-key-message", 401, ENRICH_INVALID,
                  lambda d: x(d)["auth"]["invalid"], ("submit", "status"))
_enrich_error_row("404-job-not-found-message", 404, ENRICH_NOT_FOUND,
                  lambda d: "not_found", ("status",))
_enrich_error_row("500-internal-server-error", 500, ENRICH_INTERNAL,
                  _error_with_status(500), ("submit", "status"))


@row("enrich", "another-key-reads-401-invalid")
def _enrich_foreign(d: Doc) -> None:
    auth = x(d)["auth"]
    assert auth["foreign_job"] == auth["invalid"]
    assert x_error(d, auth["foreign_job"])["body"] == {"error": ENRICH_INVALID}


@row("enrich", "job-fields-results-total-created-updated")
def _enrich_fields(d: Doc) -> None:
    job = response_schema(d, status_op(d), 200)
    props = properties(d, job)
    assert {"id", "status", "total", "results", "created_at", "updated_at"} <= set(props)
    assert "array" in types(deref(d, props["results"]))
    assert "integer" in types(deref(d, props["total"]))
    for f in ("created_at", "updated_at"):
        assert deref(d, props[f]).get("format") == "date-time", f
    assert {"id", "status", "results", "created_at", "updated_at"} <= required(d, job)
    assert "total" not in required(d, job), "total is present only once picked up"


@row("enrich", "results-empty-until-complete-then-one-per-item")
def _enrich_results(d: Doc) -> None:
    seen = set()
    for body in response_examples(d, status_op(d), 200):
        seen.add(body["status"])
        if body["status"] == "complete":
            assert len(body["results"]) == body["total"] > 0
        else:
            assert body["results"] == [], body["status"]
    assert {"queued", "processing", "complete"} <= seen
    render = x(d)["render"][x(d)["status"]["render"]]["results"]
    assert render == {"$if": {"roles": ["completed"]}, "then": "{job.result}", "else": []}
    submit = ops_with_role(d, "submit")[0]["x-jobmock"]
    assert submit["result"]["$each"] == "{job.request.transactions}", "one result per item"


@row("enrich", "total-once-picked-up")
def _enrich_total(d: Doc) -> None:
    for body in response_examples(d, status_op(d), 200):
        assert ("total" in body) == (body["status"] != "queued"), body["status"]
    total = x(d)["render"][x(d)["status"]["render"]]["total?"]
    assert total["then"] == "{job.request.transactions|len}"
    # Once picked up: the job started (a job failed while still queued never was).
    assert total["$if"] == {"present": "{job.started_at}"}


# ---- bronid ----------------------------------------------------------------------------

BRONID_WRAPPER = {"timestamp", "serviceUid", "trace", "path", "pathParams", "statusCode",
                  "message", "help", "status", "data", "error"}

status_rows("bronid", {"pending": False, "running": False, "completed": True, "failed": True,
                       "rejected": True})
auth_row("bronid", "basic")
tenants_row("bronid")


@row("bronid", "basic-credentials-are-user-password")
def _bronid_basic(d: Doc) -> None:
    for creds in x(d)["auth"]["tenants"].values():
        for c in creds:
            user, colon, password = c.partition(":")
            assert user and colon and password, c


@row("bronid", "dispatch-post-watchlist")
def _bronid_dispatch(d: Doc) -> None:
    block = op_at(d, "post", "/v5/verifications/{trace}/watchlist")["x-jobmock"]
    assert (block["role"], block["job_type"]) == ("submit", "watchlist")


@row("bronid", "dispatch-answers-triggered-and-jobId")
def _bronid_triggered(d: Doc) -> None:
    op = ops_with_role(d, "submit")[0]
    data = schema_at(d, response_schema(d, op, 202), "data")
    assert {"triggered", "jobId"} <= required(d, data)
    assert x(d)["submit"]["job_id_from"] == ["body:/data/jobId"]


@row("bronid", "poll-get-jobs-type-jobId")
def _bronid_poll(d: Doc) -> None:
    op = op_at(d, "get", "/v5/verifications/{trace}/jobs/{type}/{jobId}")
    block = op["x-jobmock"]
    assert (block["role"], block["job_id_param"]) == ("status", "jobId")
    assert set(block["match"]) == {"trace", "type"}


@row("bronid", "wrapper-fields")
def _bronid_wrapper(d: Doc) -> None:
    status = status_op(d)
    submit = ops_with_role(d, "submit")[0]
    for op, code in ((status, 200), (submit, 202), (status, 404), (status, 422),
                     (submit, 429), (status, 401)):
        schema = response_schema(d, op, code)
        assert set(properties(d, schema)) >= BRONID_WRAPPER, code
        assert required(d, schema) >= BRONID_WRAPPER, code


@row("bronid", "run-fields")
def _bronid_run(d: Doc) -> None:
    run = schema_at(d, response_schema(d, status_op(d), 200), "data/run")
    assert set(properties(d, run)) >= {"jobId", "type", "payload", "requestedAt",
                                       "sourceAction", "sourceUid", "sourceEmail"}
    assert set(schema_at(d, run, "sourceAction")["enum"]) == {
        "manual-api", "manual-portal", "manual-admin", "scheduled", "system"}


@row("bronid", "result-attemptCount-errorSummary-conflictingJobId")
def _bronid_result(d: Doc) -> None:
    result = schema_at(d, response_schema(d, status_op(d), 200), "data/result")
    assert set(properties(d, result)) >= {"jobId", "type", "status", "attemptCount",
                                          "startedAt", "completedAt", "errorSummary",
                                          "conflictingJobId"}
    assert types(schema_at(d, result, "attemptCount")) & {"integer", "number"}
    assert "string" in types(schema_at(d, result, "errorSummary"))
    render = x(d)["render"][x(d)["status"]["render"]]["data"]["result"]
    assert render["attemptCount"] == "{job.attempt_count}"
    assert render["errorSummary?"] == "{job.error}"
    assert render["conflictingJobId?"] == "{job.conflicting_job_id}"


@row("bronid", "epoch-ms-timestamps")
def _bronid_epoch(d: Doc) -> None:
    data = schema_at(d, response_schema(d, status_op(d), 200), "data")
    for field in ("run/requestedAt", "result/startedAt", "result/completedAt"):
        assert types(schema_at(d, data, field)) & {"integer", "number"}, field
        assert "string" not in types(schema_at(d, data, field)), field
    render = x(d)["render"][x(d)["status"]["render"]]["data"]
    assert render["run"]["requestedAt"] == "{job.created_at_ms}"
    assert render["result"]["startedAt?"] == "{job.started_at_ms}"
    assert render["result"]["completedAt?"] == "{job.completed_at_ms}"
    for body in response_examples(d, status_op(d), 200):
        assert body["data"]["run"]["requestedAt"] > 10**12, "milliseconds, not seconds"


@row("bronid", "failed-carries-errorSummary")
def _bronid_failed(d: Doc) -> None:
    assert isinstance(x(d)["outcomes"]["failed"]["error"], str)
    failed = [b for b in response_examples(d, status_op(d), 200)
              if b["data"]["result"]["status"] == "failed"]
    assert failed and all(b["data"]["result"]["errorSummary"] for b in failed)


@row("bronid", "rejected-carries-conflictingJobId")
def _bronid_rejected(d: Doc) -> None:
    assert x(d)["limits"]["gate"]["claim_conflict"] == "rejected"
    rejected = [b for b in response_examples(d, status_op(d), 200)
                if b["data"]["result"]["status"] == "rejected"]
    assert rejected and all(b["data"]["result"]["conflictingJobId"] for b in rejected)


@row("bronid", "404-not_found")
def _bronid_404(d: Doc) -> None:
    err = x_error(d, "not_found")
    assert err["status"] == 404 and err["body"]["error"]["type"] == "not_found"
    bodies = response_examples(d, status_op(d), 404)
    assert bodies and all(b["error"]["type"] == "not_found" for b in bodies)
    assert x_error(d, x(d)["auth"].get("foreign_job", "not_found"))["status"] == 404


@row("bronid", "422-validation_error")
def _bronid_422(d: Doc) -> None:
    err = x_error(d, "validation")
    assert err["status"] == 422 and err["body"]["error"]["type"] == "validation_error"
    assert "{message}" in set(strings_in(err["body"])), "the detail of what was invalid"
    bodies = response_examples(d, status_op(d), 422)
    assert bodies and all(b["error"]["type"] == "validation_error" for b in bodies)
    assert parameters(d, status_op(d))[("path", "type")]["schema"], "type is validated"
    assert deref(d, parameters(d, status_op(d))[("path", "type")]["schema"])["enum"] == [
        "watchlist"]


@row("bronid", "gate-one-run-per-type-per-verification")
def _bronid_gate(d: Doc) -> None:
    gate = x(d)["limits"]["gate"]
    assert "{job.params.trace}" in gate["key"] and "{job.type}" in gate["key"]
    assert gate["blocks_submit_while"] == ["running"]


@row("bronid", "429-with-the-conflicting-job-id")
def _bronid_429(d: Doc) -> None:
    err = x_error(d, x(d)["limits"]["gate"]["error"])
    assert err["status"] == 429
    assert "{conflict.id}" in set(strings_in(err["body"]))
    bodies = response_examples(d, ops_with_role(d, "submit")[0], 429)
    assert bodies and all(b["error"]["conflictingJobId"] for b in bodies)


# ---- cloro -----------------------------------------------------------------------------

# QUEUED and COMPLETED are documented; PROCESSING and FAILED are the spec's (marked) choice.
status_rows("cloro", {"QUEUED": False, "PROCESSING": False, "COMPLETED": True,
                      "FAILED": True})
auth_row("cloro", "bearer")
tenants_row("cloro")


@row("cloro", "undocumented-statuses-marked-assumed")
def _cloro_assumed_statuses(d: Doc) -> None:
    text = d["components"]["schemas"]["TaskStatus"]["description"]
    assert "Assumed:" in text and "PROCESSING" in text and "FAILED" in text


@row("cloro", "post-v1-task-and-get-v1-task-id")
def _cloro_paths(d: Doc) -> None:
    assert op_at(d, "post", "/v1/task")["x-jobmock"]["role"] == "submit"
    assert op_at(d, "get", "/v1/task/{id}")["x-jobmock"]["role"] == "status"


@row("cloro", "request-taskType-payload-idempotencyKey-webhook-url")
def _cloro_request(d: Doc) -> None:
    body = request_schema(d, ops_with_role(d, "submit")[0])
    assert {"taskType", "payload"} <= required(d, body)
    assert {"idempotencyKey", "webhook"} <= set(properties(d, body)) - required(d, body)
    assert "url" in required(d, schema_at(d, body, "webhook"))
    assert "CHATGPT" in schema_at(d, body, "taskType")["enum"]


@row("cloro", "acknowledgment-task-and-credits")
def _cloro_ack(d: Doc) -> None:
    ack = response_schema(d, ops_with_role(d, "submit")[0], 200)
    assert {"success", "task", "credits"} <= required(d, ack)
    assert {"id", "taskType", "status", "createdAt", "idempotencyKey"} <= set(
        properties(d, schema_at(d, ack, "task")))
    assert {"creditsToCharge", "creditsCharged"} <= required(d, schema_at(d, ack, "credits"))


@row("cloro", "credits-to-charge-and-charged")
def _cloro_credits(d: Doc) -> None:
    credits = x(d)["credits"]
    assert credits["cost"] == 10 and credits["charge_on"] == ["COMPLETED"]
    for body in response_examples(d, status_op(d), 200):
        c = body["credits"]
        done = body["task"]["status"] == "COMPLETED"
        assert c["creditsCharged"] == (c["creditsToCharge"] if done else 0), body["task"]
    render = x(d)["render"][x(d)["status"]["render"]]["credits"]
    assert render == {"creditsToCharge": "{job.credits_to_charge}",
                      "creditsCharged": "{job.credits_charged}"}


@row("cloro", "idempotency-key")
def _cloro_idempotency(d: Doc) -> None:
    assert x(d)["idempotency"]["key_from"] == "/idempotencyKey"
    task = schema_at(d, response_schema(d, status_op(d), 200), "task")
    assert "idempotencyKey" in properties(d, task)


@row("cloro", "webhook-url-receives-the-full-result")
def _cloro_webhook(d: Doc) -> None:
    hooks = x(d)["webhooks"]
    assert hooks["url_from"] == "/webhook/url"
    assert hooks["events"] == ["terminal"]
    op = ops_with_role(d, "submit")[0]
    (cb,) = (op.get("callbacks") or {}).values()
    ((expression, item),) = deref(d, cb).items()
    assert expression == "{$request.body#/webhook/url}"
    body = request_schema(d, deref(d, item)["post"])
    assert {"task", "credits", "response"} <= set(properties(d, body))


@row("cloro", "webhook-retry-2-4-8-16-minutes-5-attempts")
def _cloro_retry(d: Doc) -> None:
    delays = x(d)["webhooks"]["retry"]["delays"]
    assert delays == [120, 240, 480, 960]
    assert 1 + len(delays) == 5


@row("cloro", "queue-limit-100000-gives-429")
def _cloro_queue(d: Doc) -> None:
    queue = x(d)["limits"]["queue"]
    assert queue["max"] == 100_000
    assert x_error(d, queue["error"])["status"] == 429
    assert "429" in ops_with_role(d, "submit")[0]["responses"]


@row("cloro", "plan-concurrency-limit")
def _cloro_concurrency(d: Doc) -> None:
    assert x(d)["limits"]["concurrency"]["max"] == 10


@row("cloro", "completed-task-holds-the-full-result")
def _cloro_completed(d: Doc) -> None:
    bodies = response_examples(d, status_op(d), 200)
    assert any(b["task"]["status"] == "COMPLETED" for b in bodies)
    for b in bodies:
        assert ("response" in b) == (b["task"]["status"] == "COMPLETED")
    assert x(d)["render"][x(d)["status"]["render"]]["response?"] == "{job.result}"


# ---- docimprint ------------------------------------------------------------------------

status_rows("docimprint", {"queued": False, "processing": False, "complete": True,
                           "failed": True})
auth_row("docimprint", "apikey", "X-Payment")
tenants_row("docimprint")


@row("docimprint", "submit-paths")
def _doc_paths(d: Doc) -> None:
    for path in ("/v1/extract", "/v1/summarize", "/v1/qa", "/v1/jobs"):
        assert op_at(d, "post", path)["x-jobmock"]["role"] == "submit", path
    assert op_at(d, "get", "/v1/jobs/{id}")["x-jobmock"]["role"] == "status"


@row("docimprint", "extract-async-by-default-202-job_id")
def _doc_extract_async(d: Doc) -> None:
    op = op_at(d, "post", "/v1/extract")
    assert op["x-jobmock"]["wait"]["default"] == 0
    assert "job_id" in required(d, response_schema(d, op, 202))
    assert schema_at(d, request_schema(d, op), "store").get("default") is True


@row("docimprint", "extract-sync-true-answers-200-bundle")
def _doc_sync(d: Doc) -> None:
    op = op_at(d, "post", "/v1/extract")
    assert "boolean" in types(deref(d, parameters(d, op)[("query", "sync")]["schema"]))
    switches = {(q["param"], q["value"]): q["wait"] for q in op["x-jobmock"]["wait"]["query"]}
    assert switches[("sync", "true")] > 0
    assert {"bundle_id", "manifest_sha256"} <= required(d, response_schema(d, op, 200))


@row("docimprint", "async-true-queues-on-extract-summarize-qa")
def _doc_async(d: Doc) -> None:
    for path in ("/v1/extract", "/v1/summarize", "/v1/qa"):
        op = op_at(d, "post", path)
        assert "boolean" in types(deref(d, parameters(d, op)[("query", "async")]["schema"]))
        switches = {(q["param"], q["value"]): q["wait"]
                    for q in op["x-jobmock"]["wait"]["query"]}
        assert switches[("async", "true")] == 0, path
        assert "202" in op["responses"], path


@row("docimprint", "focused-endpoints-synchronous-by-default")
def _doc_focused(d: Doc) -> None:
    for path in ("/v1/summarize", "/v1/qa"):
        op = op_at(d, "post", path)
        assert op["x-jobmock"]["wait"]["default"] > 0, path
        assert "200" in op["responses"], path


@row("docimprint", "batch-post-v1-jobs-items")
def _doc_batch(d: Doc) -> None:
    op = op_at(d, "post", "/v1/jobs")
    assert op["x-jobmock"]["items_from"] == "/items"
    assert "array" in types(schema_at(d, request_schema(d, op), "items"))
    assert "202" in op["responses"]


@row("docimprint", "sync-extract-may-time-out-504")
def _doc_sync_timeout(d: Doc) -> None:
    resp = response(d, op_at(d, "post", "/v1/extract"), 504)
    assert {"text/html", "application/json"} <= set(resp["content"])
    headers = [deref(d, h) for h in (resp.get("headers") or {}).values()]
    assert not any(h.get("required") for h in headers), "a gateway's 504 names no job"


@row("docimprint", "progress-pct-and-message")
def _doc_progress(d: Doc) -> None:
    job = response_schema(d, status_op(d), 200)
    pct = schema_at(d, job, "progress_pct")
    assert "integer" in types(pct) and (pct["minimum"], pct["maximum"]) == (0, 100)
    assert "string" in types(schema_at(d, job, "progress_message"))
    steps = [s["pct"] for s in x(d)["progress"]["steps"]]
    assert steps == sorted(steps) and steps
    render = x(d)["render"][x(d)["status"]["render"]]
    assert render["progress_pct"] == "{job.progress_pct}"
    assert render["progress_message"] == "{job.progress_message}"
    assert {"job_id": "job_abc123", "status": "processing", "progress_pct": 60,
            "progress_message": "OCR page 3/12", "bundle_id": "ev_xyz"} in \
        response_examples(d, status_op(d), 200), "the document's example"


@row("docimprint", "bundle_id-and-manifest_sha256-on-complete")
def _doc_bundle(d: Doc) -> None:
    op = status_op(d)
    assert {"bundle_id", "manifest_sha256"} <= set(properties(d, response_schema(d, op, 200)))
    ptr = "/paths/~1v1~1jobs~1{id}/get/responses/200/content/application~1json/schema"
    complete = {"job_id": "job_abc123", "status": "complete", "progress_pct": 100,
                "progress_message": "Complete"}
    assert errors_of("docimprint", ptr, complete), "complete without a bundle is invalid"
    sha = "0" * 64
    assert errors_of("docimprint", ptr, {**complete, "bundle_id": "ev_x",
                                         "manifest_sha256": sha}) == []


@row("docimprint", "failed-structured-error-no-credits")
def _doc_failed(d: Doc) -> None:
    assert "failed" not in x(d)["credits"]["charge_on"]
    assert "code" in x(d)["outcomes"]["failed"]["error"]
    failed = [b for b in response_examples(d, status_op(d), 200) if b["status"] == "failed"]
    assert failed
    for b in failed:
        assert b["credits_charged"] == 0 and {"code", "message"} <= set(b["error"])


@row("docimprint", "webhooks-on-progress-completion-failure")
def _doc_webhooks(d: Doc) -> None:
    hooks = x(d)["webhooks"]
    assert set(hooks["events"]) >= {"progress", "terminal"}
    names = hooks["event_names"]
    assert {names["progress"], names["complete"], names["failed"]} == {
        "job.progress", "job.complete", "job.failed"}
    for op in ops_with_role(d, "submit"):
        (cb,) = (op.get("callbacks") or {}).values()
        for item in deref(d, cb).values():
            body = request_schema(d, deref(d, item)["post"])
            assert set(schema_at(d, body, "event")["enum"]) == set(names.values())


@row("docimprint", "get-job-is-free")
def _doc_free(d: Doc) -> None:
    assert status_op(d)["security"] == []


@row("docimprint", "poll-every-2-to-5-seconds")
def _doc_poll(d: Doc) -> None:
    assert 2 <= x(d)["retry_after"]["seconds"] <= 5
    assert "retry-after" in header_names(d, response(d, status_op(d), 200))


@pytest.mark.parametrize(("api", "check"), ROWS)
def test_documented_behaviour(api: str, check: Check) -> None:
    check(doc(api))


def test_every_api_has_a_behaviour_table() -> None:
    apis = {p.values[0] for p in ROWS}
    assert apis == set(APIS)


def _failing_rows(api: str, d: Doc) -> set[str]:
    failing = set()
    for p in ROWS:
        if p.values[0] != api:
            continue
        try:
            p.values[1](d)
        except (AssertionError, LookupError):
            failing.add(str(p.id))
    return failing


def _drop_location(d: Doc) -> None:
    del d["components"]["responses"]["JobAccepted"]["headers"]["Location"]


def _change_not_found(d: Doc) -> None:
    d["x-jobmock"]["errors"]["not_found"]["body"]["error"] = "Not found."


def _drop_conflict_id(d: Doc) -> None:
    del d["x-jobmock"]["errors"]["job_in_flight"]["body"]["error"]["conflictingJobId"]


def _shorten_retries(d: Doc) -> None:
    d["x-jobmock"]["webhooks"]["retry"]["delays"].pop()


def _drop_sync_switch(d: Doc) -> None:
    d["paths"]["/v1/extract"]["post"]["x-jobmock"]["wait"]["query"].pop(0)


def _drop_sync_timeout(d: Doc) -> None:
    del d["paths"]["/v1/extract"]["post"]["responses"]["504"]


def _drop_enum_word(d: Doc) -> None:
    d["components"]["schemas"]["JobStatus"]["enum"].remove("expired")


@pytest.mark.parametrize(("api", "mutate", "expected"), [
    pytest.param("croma", _drop_location, "croma-location-on-202", id="croma-location"),
    pytest.param("croma", _drop_enum_word, "croma-status-enum-in-openapi", id="croma-enum"),
    pytest.param("enrich", _change_not_found, "enrich-404-job-not-found-message",
                 id="enrich-not-found"),
    pytest.param("bronid", _drop_conflict_id, "bronid-429-with-the-conflicting-job-id",
                 id="bronid-conflict"),
    pytest.param("cloro", _shorten_retries, "cloro-webhook-retry-2-4-8-16-minutes-5-attempts",
                 id="cloro-retries"),
    pytest.param("docimprint", _drop_sync_switch, "docimprint-extract-sync-true-answers-200-bundle",
                 id="docimprint-sync"),
    pytest.param("docimprint", _drop_sync_timeout, "docimprint-sync-extract-may-time-out-504",
                 id="docimprint-sync-timeout"),
])
def test_dropping_a_behaviour_fails_exactly_its_row(api: str, mutate: Callable[[Doc], None],
                                                     expected: str) -> None:
    assert _failing_rows(api, doc(api)) == set()
    d = doc(api)
    mutate(d)
    assert _failing_rows(api, d) == {expected}


# --------------------------------------------------------------------------- 4. structure


def _submit_ops() -> list[Any]:
    return [pytest.param(api, op["operationId"], id=f"{api}-{op['operationId']}")
            for api in APIS for op in ops_with_role(doc(api), "submit")]


@pytest.mark.parametrize(("api", "operation_id"), _submit_ops())
def test_submit_operation_links_to_the_status_operation(api: str, operation_id: str) -> None:
    d = doc(api)
    op = op_by_id(d, operation_id)
    target = status_op(d)
    path_params = {p["name"] for (loc, _), p in parameters(d, target).items() if loc == "path"}
    job_param = target["x-jobmock"]["job_id_param"]
    good = []
    for status, r in (op.get("responses") or {}).items():
        for name, link in (deref(d, r).get("links") or {}).items():
            link = deref(d, link)
            if link.get("operationId") == target["operationId"]:
                assert set(link.get("parameters") or {}) >= path_params, (status, name)
                assert str(link["parameters"][job_param]).startswith("$response."), (status, name)
                good.append((status, name))
    assert good, f"{operation_id} has a response link to {target['operationId']}"


@pytest.mark.parametrize("api", APIS)
def test_every_link_names_an_existing_operation(api: str) -> None:
    d = doc(api)
    ids = {o.get("operationId") for _, _, o in operations(d)}
    links = list(((d.get("components") or {}).get("links") or {}).values())
    for _, _, op in operations(d):
        for r in (op.get("responses") or {}).values():
            links += list((deref(d, r).get("links") or {}).values())
    assert links
    for link in links:
        assert deref(d, link).get("operationId") in ids


def _responses() -> list[Any]:
    cases = []
    for api in APIS:
        for path, method, op in operations(doc(api)):
            for status in op.get("responses") or {}:
                cases.append(pytest.param(api, path, method, str(status),
                                          id=f"{api}-{op['operationId']}-{status}"))
    return cases


@pytest.mark.parametrize(("api", "path", "method", "status"), _responses())
def test_every_response_has_a_schema_and_an_example(api: str, path: str, method: str,
                                                    status: str) -> None:
    d = doc(api)
    resp = response(d, op_at(d, method, path), status)
    content = resp.get("content") or {}
    assert content, "the response has a body"
    for mt, media in content.items():
        assert "schema" in media, f"{mt} has a schema"
        assert media_examples(d, media), f"{mt} has at least one example"


def _callback_bodies() -> list[Any]:
    """(api, pointer of a path item, method) of every callback and webhook operation."""
    cases = []
    for api in APIS:
        d = doc(api)
        items = [(f"/webhooks/{escape(n)}", item) for n, item in (d.get("webhooks") or {}).items()]
        holders = [(f"/components/callbacks/{escape(n)}", cb)
                   for n, cb in ((d.get("components") or {}).get("callbacks") or {}).items()]
        for path, method, op in operations(d):
            holders += [(f"/paths/{escape(path)}/{method}/callbacks/{escape(n)}", cb)
                        for n, cb in (op.get("callbacks") or {}).items() if "$ref" not in cb]
        for ptr, cb in holders:
            items += [(f"{ptr}/{escape(expr)}", item) for expr, item in cb.items()]
        for ptr, item in items:
            for method in HTTP_METHODS:
                if method in deref(d, item):
                    cases.append(pytest.param(api, ptr, method, id=f"{api}:{ptr}/{method}"))
    return cases


@pytest.mark.parametrize(("api", "pointer", "method"), _callback_bodies())
def test_every_callback_body_has_a_schema_and_an_example(api: str, pointer: str,
                                                         method: str) -> None:
    d = doc(api)
    op = deref(d, get_pointer(d, pointer))[method]
    media = json_media(d, op["requestBody"])
    assert "schema" in media
    assert media_examples(d, media)


def test_callbacks_were_found() -> None:
    assert {p.values[0] for p in _callback_bodies()} == {"croma", "cloro", "docimprint"}


@pytest.mark.parametrize("api", [a for a in APIS if "webhooks" in x(doc(a))])
def test_every_api_with_webhooks_documents_them(api: str) -> None:
    """x-jobmock webhooks are documented as OpenAPI callbacks (or webhooks)."""
    d = doc(api)
    for op in ops_with_role(d, "submit"):
        assert op.get("callbacks") or d.get("webhooks"), op["operationId"]


def _descriptions(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("description", "summary") and isinstance(v, str):
                yield v
            else:
                yield from _descriptions(v)
    elif isinstance(node, list):
        for v in node:
            yield from _descriptions(v)


@pytest.mark.parametrize("api", APIS)
def test_spec_marks_its_assumptions(api: str) -> None:
    marked = [t for t in _descriptions(doc(api)) if "Assumed:" in t]
    assert marked, "at least one description says 'Assumed:'"
    in_text = raw(api).count("Assumed:")
    in_descriptions = sum(t.count("Assumed:") for t in _descriptions(doc(api)))
    assert in_descriptions == in_text, "every 'Assumed:' is in a description or summary"


# The gaps each vendor document leaves, and where the spec marks its choice.
ASSUMED = {
    "croma": {
        "lookup-paths": "/info/description",
        "auth-scheme": "/components/securitySchemes/bearerAuth/description",
        "lookup-bodies": "/components/schemas/PersonLookupRequest/description",
        "error-bodies": "/components/schemas/ErrorBody/description",
        "callback-retry-schedule":
            "/components/callbacks/JobFinished/{$request.body#~1callback_url}/post/description",
        "host": "/servers/0/description",
        "timing": "/info/description",
        "retry-after-value": "/components/headers/RetryAfter/description",
        "preference-applied-on-202":
            "/components/responses/JobAccepted/headers/Preference-Applied/description",
        "envelope-id": "/components/schemas/JobEnvelope/properties/id/description",
        "data-fields": "/components/schemas/LookupData/properties/source/description",
    },
    "enrich": {
        "status-path": "/info/description",
        "submit-body": "/components/schemas/EnrichAsyncRequest/description",
        "submit-answer": "/components/schemas/JobAccepted/description",
        "retry-after": "/components/headers/RetryAfter/description",
        "validation-body": "/components/schemas/ErrorBody/description",
        "timing": "/info/description",
    },
    "bronid": {
        "dispatch-status-code": "/components/responses/Dispatched/description",
        "error-body": "/components/schemas/ErrorResponse/description",
        "retry-after": "/components/headers/RetryAfter/description",
        "429-body": "/components/responses/JobInFlight/description",
        "other-tenant": "/paths/~1v5~1verifications~1{trace}~1jobs~1{type}~1{jobId}/get"
                        "/description",
        "timing": "/info/description",
    },
    "cloro": {
        "statuses": "/components/schemas/TaskStatus/description",
        "submit-status-code": "/components/responses/TaskAccepted/description",
        "error-bodies": "/components/schemas/ErrorBody/description",
        "other-organization": "/components/responses/NotFound/description",
        "retry-after": "/components/headers/RetryAfter/description",
        "failed-webhook": "/components/schemas/WebhookBody/description",
        "timing": "/info/description",
        "unknown-fields": "/components/schemas/CreateTaskRequest/description",
        "unknown-webhook-fields": "/components/schemas/WebhookConfig/description",
    },
    "docimprint": {
        "queued-status": "/components/schemas/JobStatus/description",
        "webhook-body": "/components/schemas/WebhookEvent/description",
        "webhook-retry-schedule":
            "/components/callbacks/JobEvent/{$request.body#~1webhook}/post/description",
        "retry-after": "/components/headers/RetryAfter/description",
        "payment-error": "/components/responses/PaymentRequired/description",
        "inline-wait": "/paths/~1v1~1extract/post/description",
        "timing": "/info/description",
        "progress-steps": "/components/schemas/Job/properties/progress_pct/description",
        "store-field": "/components/schemas/ExtractRequest/properties/store/description",
        "sync-timeout": "/components/responses/GatewayTimeout/description",
    },
}


@pytest.mark.parametrize(("api", "pointer"), [
    pytest.param(api, ptr, id=f"{api}-{gap}")
    for api, gaps in ASSUMED.items() for gap, ptr in gaps.items()
])
def test_gap_is_marked_assumed(api: str, pointer: str) -> None:
    text = get_pointer(doc(api), pointer)
    assert isinstance(text, str) and "Assumed:" in text
