"""The template language of x-jobmock render/errors/result (jobmock.templates)."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import pytest

from jobmock import Engine, VirtualClock, resolve_spec
from jobmock.errors import SpecError
from jobmock.spec import build_spec
from jobmock.templates import ROOTS, compile_template, iso, lookup, render_string

CTX: dict[str, Any] = {
    "job": {
        "id": "job_1",
        "status": "done",
        "role": "completed",
        "count": 3,
        "ratio": 0.5,
        "flag": True,
        "off": False,
        "nothing": None,
        "obj": {"a": [10, 20], "b": "x"},
        "items": [{"source": "s1"}, {"source": "s2"}],
    },
    "base_url": "http://mock.test",
    "now_ms": 1767225600000,
}


def render(tpl: Any, ctx: dict[str, Any] | None = None) -> Any:
    return compile_template(tpl)(CTX if ctx is None else ctx)


# -- placeholders -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tpl", "expected"),
    [
        ("{job.id}", "job_1"),
        ("{job.count}", 3),
        ("{job.ratio}", 0.5),
        ("{job.flag}", True),
        ("{job.nothing}", None),
        ("{job.obj}", {"a": [10, 20], "b": "x"}),
        ("{job.obj.a}", [10, 20]),
        ("{job.obj.a.1}", 20),
        ("{job.obj.a.7}", None),
        ("{job.missing.deeper}", None),
        ("{now_ms}", 1767225600000),
    ],
)
def test_a_lone_placeholder_renders_the_raw_value(tpl: str, expected: Any) -> None:
    assert render(tpl) == expected
    assert type(render(tpl)) is type(expected)


def test_text_without_placeholders_is_returned_as_is() -> None:
    assert render("plain text") == "plain text"
    assert render("") == ""


def test_non_string_scalars_render_as_themselves() -> None:
    assert render(5) == 5
    assert render(None) is None
    assert render(False) is False


# -- interpolation -----------------------------------------------------------------------


def test_interpolation_joins_text_and_values() -> None:
    assert render("{base_url}/jobs/{job.id}") == "http://mock.test/jobs/job_1"


@pytest.mark.parametrize(
    ("tpl", "expected"),
    [
        ("n={job.count}", "n=3"),
        ("r={job.ratio}", "r=0.5"),
        ("t={job.flag} f={job.off}", "t=true f=false"),
        ("none=[{job.nothing}]", "none=[]"),
        ("obj={job.obj}", 'obj={"a":[10,20],"b":"x"}'),
        ("{job.id}{job.id}", "job_1job_1"),
    ],
)
def test_interpolation_formats_each_type(tpl: str, expected: str) -> None:
    assert render(tpl) == expected


def test_lists_and_mappings_render_recursively() -> None:
    tpl = {"id": "{job.id}", "links": ["{base_url}/a", {"self": "{base_url}/jobs/{job.id}"}]}
    assert render(tpl) == {
        "id": "job_1",
        "links": ["http://mock.test/a", {"self": "http://mock.test/jobs/job_1"}],
    }


# -- optional keys -------------------------------------------------------------------------


def test_optional_key_is_omitted_when_its_value_is_null() -> None:
    out = render({"id": "{job.id}", "error?": "{job.nothing}", "count?": "{job.count}"})
    assert out == {"id": "job_1", "count": 3}


def test_optional_key_keeps_falsy_non_null_values() -> None:
    assert render({"off?": "{job.off}", "empty?": ""}) == {"off": False, "empty": ""}


def test_required_key_keeps_null() -> None:
    assert render({"error": "{job.nothing}"}) == {"error": None}


# -- $if -------------------------------------------------------------------------------------


def test_if_on_status_words() -> None:
    tpl = {"$if": {"status": ["done", "other"]}, "then": "{job.id}", "else": "no"}
    assert render(tpl) == "job_1"
    assert render(tpl, {"job": {"status": "queued"}}) == "no"


def test_if_on_roles() -> None:
    tpl = {"$if": {"roles": ["completed"]}, "then": {"ok": True}, "else": {"ok": False}}
    assert render(tpl) == {"ok": True}
    assert render(tpl, {"job": {"role": "failed"}}) == {"ok": False}


def test_if_without_else_renders_null_and_an_optional_key_drops_it() -> None:
    tpl = {"data?": {"$if": {"roles": ["completed"]}, "then": "{job.obj.b}"}}
    assert render(tpl) == {"data": "x"}
    assert render(tpl, {"job": {"role": "running"}}) == {}


def test_if_without_a_job_takes_the_else_branch() -> None:
    assert render({"$if": {"status": ["done"]}, "then": 1, "else": 2}, {}) == 2


def test_if_present_takes_then_once_the_placeholder_has_a_value() -> None:
    # enrich's `total`: only once the job was picked up (it has a start time), whatever its status
    tpl = {"total?": {"$if": {"present": "{job.started_at}"}, "then": "{job.n}"}}
    assert render(tpl, {"job": {"started_at": "2026-01-01T00:00:00Z", "n": 3}}) == {"total": 3}
    assert render(tpl, {"job": {"started_at": None, "n": 3, "status": "failed"}}) == {}
    assert render(tpl, {"job": {"n": 3}}) == {}
    assert render({"$if": {"present": "{job.n}"}, "then": 1, "else": 2}, {"job": {"n": 0}}) == 1


@pytest.mark.parametrize(
    "tpl",
    [
        {"$if": {"present": ["{job.a}"]}, "then": 1},
        {"$if": {"present": "{job.a}", "status": ["b"]}, "then": 1},
        {"$if": {"status": ["a"], "roles": ["b"]}, "then": 1},
        {"$if": {"phase": ["a"]}, "then": 1},
        {"$if": "status", "then": 1},
        {"$if": {"status": ["a"]}, "then": 1, "otherwise": 2},
    ],
)
def test_malformed_if_is_a_spec_error(tpl: dict[str, Any]) -> None:
    with pytest.raises(SpecError, match=r"\$if"):
        compile_template(tpl, "f.yaml", "/x-jobmock/render/r")


# -- $each -------------------------------------------------------------------------------------


def test_each_renders_one_entry_per_item_with_item_and_index() -> None:
    tpl = {"$each": "{job.items}", "do": {"i": "{index}", "src": "{item.source}"}}
    assert render(tpl) == [{"i": 0, "src": "s1"}, {"i": 1, "src": "s2"}]


def test_each_with_a_custom_name() -> None:
    tpl = {"$each": "{job.items}", "as": "doc",
           "do": {"n": "{index}", "src": "{doc.source}", "id": "{job.id}-{index}"}}
    assert render(tpl) == [{"n": 0, "src": "s1", "id": "job_1-0"},
                           {"n": 1, "src": "s2", "id": "job_1-1"}]


def test_each_custom_name_is_a_root_only_inside_do() -> None:
    with pytest.raises(SpecError, match="must start with one of"):
        compile_template({"outer": "{doc.source}",
                          "list": {"$each": "{job.items}", "as": "doc", "do": "{doc}"}})
    assert render({"$each": "{job.items}", "as": "doc", "do": "{doc.source}"}) == ["s1", "s2"]


def test_each_over_null_is_null_and_over_a_scalar_is_one_entry() -> None:
    assert render({"$each": "{job.nothing}", "do": "{item}"}) is None
    assert render({"$each": "{job.id}", "do": "{item}!"}) == ["job_1!"]
    assert render({"$each": "{job.obj.a}", "do": "{item}"}) == [10, 20]


def test_nested_each() -> None:
    ctx = {"job": {"rows": [[1, 2], [3]]}}
    tpl = {"$each": "{job.rows}", "as": "row", "do": {"$each": "{row}", "as": "cell",
                                                        "do": "{cell}"}}
    assert render(tpl, ctx) == [[1, 2], [3]]


@pytest.mark.parametrize(
    "tpl",
    [
        {"$each": "{job.items}"},
        {"$each": ["{job.items}"], "do": "{item}"},
        {"$each": "{job.items}", "do": "{item}", "extra": 1},
    ],
)
def test_malformed_each_is_a_spec_error(tpl: dict[str, Any]) -> None:
    with pytest.raises(SpecError, match=r"\$each"):
        compile_template(tpl, "f.yaml", "/x-jobmock/render/r")


# -- filters -------------------------------------------------------------------------------------


def test_len_filter() -> None:
    assert render("{job.items|len}") == 2
    assert render("{job.id|len}") == len("job_1")
    assert render("{job.nothing|len}") is None


def test_sha256_filter() -> None:
    assert render("{job.id|sha256}") == hashlib.sha256(b"job_1").hexdigest()
    assert render("ev_{job.id|sha256}") == "ev_" + hashlib.sha256(b"job_1").hexdigest()
    assert render("{job.nothing|sha256}") is None


def test_str_filter() -> None:
    assert render("{job.count|str}") == "3"
    assert render("{job.id|str}") == "job_1"
    assert json.loads(render("{job.obj|str}")) == {"a": [10, 20], "b": "x"}
    assert render("{job.nothing|str}") is None


def test_colonparams_filter() -> None:
    ctx = {"request": {"path_template": "/v5/verifications/{trace}/jobs/{type}/{jobId}",
                       "path": "/v5/verifications/abc/watchlist", "none": None}}
    assert render("{request.path_template|colonparams}", ctx) == \
        "/v5/verifications/:trace/jobs/:type/:jobId"
    assert render("{request.path|colonparams}", ctx) == "/v5/verifications/abc/watchlist"
    assert render("at {request.path_template|colonparams}", ctx) == \
        "at /v5/verifications/:trace/jobs/:type/:jobId"
    assert render("{request.none|colonparams}", ctx) is None
    assert render("{job.id|colonparams}") == "job_1"


def test_unknown_filter_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match=r"unknown filter \|upper"):
        compile_template("{job.id|upper}", "f.yaml", "/k")


# -- errors name the file and the key -----------------------------------------------------------


def test_unknown_root_is_a_spec_error_naming_the_file_and_key() -> None:
    with pytest.raises(SpecError) as info:
        compile_template({"a": {"b": ["ok", "{jobb.id}"]}}, "api.yaml", "/x-jobmock/render/r")
    err = info.value
    assert err.file == "api.yaml"
    assert err.key == "/x-jobmock/render/r/a/b/1"
    assert "{jobb.id}" in err.expected


@pytest.mark.parametrize("root", sorted(ROOTS))
def test_every_documented_root_is_accepted(root: str) -> None:
    assert render_string("{" + root + "}")({root: "v"}) == "v"


def test_a_spec_with_an_unknown_root_fails_at_load() -> None:
    doc = copy.deepcopy(dict(resolve_spec("cloro").document))
    doc["paths"]["/v1/task"]["post"]["x-jobmock"]["result"]["text"] = "{jobb.request}"
    with pytest.raises(SpecError) as info:
        build_spec(doc, "broken.yaml")
    assert info.value.file == "broken.yaml"
    assert info.value.key.endswith("/x-jobmock/result/text")


# -- helpers ------------------------------------------------------------------------------------


def test_iso_is_utc_with_milliseconds() -> None:
    assert iso(0) == "1970-01-01T00:00:00.000Z"
    assert iso(1767225600.5) == "2026-01-01T00:00:00.500Z"
    assert iso(None) is None


def test_lookup_walks_mappings_and_lists() -> None:
    doc = {"a": [{"b": 1}, {"b": 2}]}
    assert lookup(doc, ("a", "1", "b")) == 2
    assert lookup(doc, ("a", "2", "b")) is None
    assert lookup(doc, ("a", "x")) is None
    assert lookup(doc, ("a", "0", "b", "c")) is None
    assert lookup(doc, ()) == doc


# -- against a real job ---------------------------------------------------------------------------


def test_templates_read_a_job_view() -> None:
    spec = resolve_spec("enrich")
    clock = VirtualClock()
    engine = Engine(spec, clock, seed=3)
    job, _ = engine.submit("submitEnrichJob", tenant="org_a", body={"transactions": ["A", "B"]})
    tpl = {"id": "{job.id}", "status": "{job.status}", "n": "{job.items_count}",
           "done?": {"$if": {"roles": ["completed", "failed"]}, "then": True},
           "rows": {"$each": "{job.request.transactions}", "as": "tx", "do": "{index}:{tx}"}}
    out = compile_template(tpl)({"job": engine.view(job)})
    assert out == {"id": job.id, "status": spec.lifecycle.queued, "n": 2, "rows": ["0:A", "1:B"]}
