"""Loading specs: clear SpecErrors for broken files, and the ``apis`` / ``validate`` commands.

Each broken spec is a real bundled spec with one thing wrong, written to ``tmp_path``;
the error must name that file and the JSON pointer of the wrong key.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from jobmock import SpecError, load_spec
from jobmock.cli import main
from jobmock.spec import build_spec

ROOT = Path(__file__).resolve().parents[1]
SPEC_DIR = ROOT / "openapi"
APIS = ("bronid", "cloro", "croma", "docimprint", "enrich")
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")

Doc = dict[str, Any]


@cache
def _source(api: str) -> str:
    return json.dumps(yaml.safe_load((SPEC_DIR / f"{api}.yaml").read_text(encoding="utf-8")))


def parsed(api: str) -> Doc:
    """A fresh copy of a bundled spec, parsed (YAML is parsed once per API)."""
    d: Doc = json.loads(_source(api))
    return d


def write(tmp_path: Path, d: Doc, name: str = "broken.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(d, sort_keys=False), encoding="utf-8")
    return path


def escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def first_submit(d: Doc) -> tuple[str, str, Doc]:
    for path, item in d["paths"].items():
        for method in HTTP_METHODS:
            op = item.get(method)
            if op and (op.get("x-jobmock") or {}).get("role") == "submit":
                return path, method, op
    raise AssertionError("no submit operation")


def queued_word(d: Doc) -> str:
    states = d["x-jobmock"]["lifecycle"]["states"]
    return next(w for w, r in states.items() if r == "queued")


def running_word(d: Doc) -> str:
    states = d["x-jobmock"]["lifecycle"]["states"]
    return next(w for w, r in states.items() if r == "running")


def assert_spec_error(path: Path, key: str, *words: str, doc: Doc | None = None) -> SpecError:
    """Loading ``path`` (or building ``doc`` as if read from it) fails at ``key``."""
    with pytest.raises(SpecError) as info:
        if doc is None:
            load_spec(path)
        else:
            build_spec(doc, str(path), default_name=path.stem)
    err = info.value
    message = str(err)
    assert err.file == str(path)
    assert err.key == key
    assert str(path) in message, "the message names the file"
    assert f"at {key or '(root)'}:" in message, "the message names the key"
    for word in words:
        assert word in message, f"{word!r} in {message!r}"
    return err


# --------------------------------------------------------------------------- broken variants
# Each: (mutate the parsed spec, and return the expected key pointer and words in the message)

Breaker = Callable[[Doc], tuple[str, tuple[str, ...]]]


def unknown_top_level_key(d: Doc) -> tuple[str, tuple[str, ...]]:
    d["x-jobmock"]["retries"] = {"delays": [1]}
    return "/x-jobmock", ("'retries'",)


def unknown_nested_key(d: Doc) -> tuple[str, tuple[str, ...]]:
    d["x-jobmock"]["lifecycle"]["terminal"] = ["done"]
    return "/x-jobmock/lifecycle", ("'terminal'",)


def unknown_operation_key(d: Doc) -> tuple[str, tuple[str, ...]]:
    path, method, op = first_submit(d)
    op["x-jobmock"]["timeout"] = 5
    return f"/paths/{escape(path)}/{method}/x-jobmock", ("'timeout'",)


def wrong_type(d: Doc) -> tuple[str, tuple[str, ...]]:
    d["x-jobmock"]["timing"]["queued"] = "fast"
    return "/x-jobmock/timing/queued", ("'fast'",)


def transition_to_unknown_word(d: Doc) -> tuple[str, tuple[str, ...]]:
    word = queued_word(d)
    d["x-jobmock"]["lifecycle"]["transitions"][word] = [running_word(d), "teleported"]
    return f"/x-jobmock/lifecycle/transitions/{word}", ("'teleported'",)


def transition_from_unknown_word(d: Doc) -> tuple[str, tuple[str, ...]]:
    d["x-jobmock"]["lifecycle"]["transitions"]["paused"] = [running_word(d)]
    return "/x-jobmock/lifecycle/transitions/paused", ("lifecycle.states",)


def outcome_not_terminal(d: Doc) -> tuple[str, tuple[str, ...]]:
    word = running_word(d)
    d["x-jobmock"]["timing"]["outcomes"] = {word: 1.0}
    return f"/x-jobmock/timing/outcomes/{word}", ("terminal",)


def auth_missing_names_no_error(d: Doc) -> tuple[str, tuple[str, ...]]:
    d["x-jobmock"]["auth"]["missing"] = "no_such_error"
    return "/x-jobmock/auth/missing", ("'no_such_error'", "x-jobmock/errors")


def auth_scheme_unknown(d: Doc) -> tuple[str, tuple[str, ...]]:
    d["x-jobmock"]["auth"]["scheme"] = "oauth9"
    return "/x-jobmock/auth/scheme", ("'oauth9'", "securitySchemes")


def status_render_unknown(d: Doc) -> tuple[str, tuple[str, ...]]:
    d["x-jobmock"]["status"]["render"] = "no_such_render"
    return "/x-jobmock/status/render", ("x-jobmock/render",)


def submit_render_unknown(d: Doc) -> str:
    """A wrong render name in the submit defaults (croma's operations do not override them)."""
    d["x-jobmock"]["submit"]["responses"]["pending"]["render"] = "no_such_render"
    return "/x-jobmock/submit/responses/pending/render"


def placeholder_unknown_root(d: Doc) -> tuple[str, tuple[str, ...]]:
    name = d["x-jobmock"]["status"]["render"]
    d["x-jobmock"]["render"][name] = {**d["x-jobmock"]["render"][name], "bogus": "{jobb.id}"}
    return f"/x-jobmock/render/{name}/bogus", ("{jobb.id}",)


def placeholder_unknown_filter(d: Doc) -> tuple[str, tuple[str, ...]]:
    name = d["x-jobmock"]["status"]["render"]
    d["x-jobmock"]["render"][name] = {**d["x-jobmock"]["render"][name],
                                      "bogus": "{job.id|upper}"}
    return f"/x-jobmock/render/{name}/bogus", ("|upper",)


def not_openapi_3_1(d: Doc) -> tuple[str, tuple[str, ...]]:
    d["openapi"] = "3.0.3"
    return "/openapi", ("3.1", "3.0.3")


def missing_x_jobmock(d: Doc) -> tuple[str, tuple[str, ...]]:
    del d["x-jobmock"]
    return "/x-jobmock", ("x-jobmock",)


def missing_required_block(d: Doc) -> tuple[str, tuple[str, ...]]:
    del d["x-jobmock"]["lifecycle"]
    return "/x-jobmock", ("'lifecycle'",)


def no_status_operation(d: Doc) -> tuple[str, tuple[str, ...]]:
    for item in d["paths"].values():
        for method in HTTP_METHODS:
            if (item.get(method, {}).get("x-jobmock") or {}).get("role") == "status":
                del item[method]["x-jobmock"]
    return "/paths", ("role: status",)


BREAKERS: dict[str, Breaker] = {
    "unknown-x-jobmock-key": unknown_top_level_key,
    "unknown-nested-key": unknown_nested_key,
    "unknown-operation-key": unknown_operation_key,
    "wrong-type": wrong_type,
    "transition-to-unknown-status": transition_to_unknown_word,
    "transition-from-unknown-status": transition_from_unknown_word,
    "outcome-not-terminal": outcome_not_terminal,
    "auth-missing-names-no-error": auth_missing_names_no_error,
    "auth-scheme-unknown": auth_scheme_unknown,
    "status-render-unknown": status_render_unknown,
    "placeholder-unknown-root": placeholder_unknown_root,
    "placeholder-unknown-filter": placeholder_unknown_filter,
    "not-openapi-3.1": not_openapi_3_1,
    "missing-x-jobmock": missing_x_jobmock,
    "missing-lifecycle": missing_required_block,
    "no-status-operation": no_status_operation,
}


REFERENCE = "croma"  # the reference spec: every breaker, through a file in tmp_path
# Breakers whose key depends on the spec's own words or paths, also run on the other four.
SPEC_SPECIFIC = ("unknown-operation-key", "transition-to-unknown-status",
                 "outcome-not-terminal", "placeholder-unknown-root", "auth-missing-names-no-error")


@pytest.mark.parametrize("breaker", BREAKERS.values(), ids=BREAKERS.keys())
def test_broken_spec_names_file_and_key(tmp_path: Path, breaker: Breaker) -> None:
    d = parsed(REFERENCE)
    key, words = breaker(d)
    assert_spec_error(write(tmp_path, d), key, *words)


@pytest.mark.parametrize("api", [a for a in APIS if a != REFERENCE])
@pytest.mark.parametrize("name", SPEC_SPECIFIC)
def test_broken_variants_of_every_spec(api: str, name: str) -> None:
    d = parsed(api)
    key, words = BREAKERS[name](d)
    assert_spec_error(SPEC_DIR / f"{api}.yaml", key, *words, doc=d)


def test_the_unbroken_copy_loads(tmp_path: Path) -> None:
    """The round trip through tmp_path is not what breaks the variants above."""
    assert load_spec(write(tmp_path, parsed(REFERENCE), f"{REFERENCE}.yaml")).name == REFERENCE


def test_the_example_key_of_the_issue(tmp_path: Path) -> None:
    d = parsed("croma")
    d["x-jobmock"]["lifecycle"]["transitions"]["queued"].append("paused")
    err = assert_spec_error(write(tmp_path, d), "/x-jobmock/lifecycle/transitions/queued")
    assert str(err).startswith(f"{tmp_path / 'broken.yaml'}: at /x-jobmock/lifecycle/")


def test_wrong_default_submit_render_is_reported(tmp_path: Path) -> None:
    d = parsed("croma")
    submit_render_unknown(d)
    path = write(tmp_path, d)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.file == str(path) and str(path) in str(info.value)
    assert info.value.key.endswith("/responses/pending/render")
    assert "x-jobmock/render" in str(info.value)


def test_wrong_default_submit_render_names_the_default_block(tmp_path: Path) -> None:
    d = parsed("croma")
    key = submit_render_unknown(d)
    assert_spec_error(write(tmp_path, d), key, "x-jobmock/render")


def test_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("openapi: 3.1.0\ninfo: [unclosed\n  title: x\n", encoding="utf-8")
    assert_spec_error(path, "", "valid YAML")


def test_yaml_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- openapi\n- 3.1.0\n", encoding="utf-8")
    assert_spec_error(path, "", "mapping")


def test_missing_file(tmp_path: Path) -> None:
    assert_spec_error(tmp_path / "absent.yaml", "", "readable")


def test_invalid_openapi_names_the_key(tmp_path: Path) -> None:
    d = parsed("croma")
    del d["info"]["title"]
    err = assert_spec_error(write(tmp_path, d), "/info", "title", "required")
    assert "OpenAPI" in err.expected


def test_invalid_openapi_message_is_one_line(tmp_path: Path) -> None:
    d = parsed("croma")
    del d["info"]["title"]
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, d))
    assert "\n" not in info.value.expected
    assert "Written from the vendor document" not in str(info.value)


# --------------------------------------------------------------------------- the CLI


def test_apis_lists_the_five_with_title_and_path() -> None:
    result = CliRunner().invoke(main, ["apis"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == len(APIS)
    for api, line in zip(APIS, lines, strict=True):
        d = parsed(api)
        assert line.split()[0] == api
        assert d["info"]["title"] in line
        listed = Path(line.rsplit("(", 1)[1].rstrip(")"))
        assert listed.resolve() == (SPEC_DIR / f"{api}.yaml").resolve()


def test_apis_json_gives_auth_and_two_tenants_each() -> None:
    result = CliRunner().invoke(main, ["apis", "--json"])
    assert result.exit_code == 0, result.output
    records = {r["name"]: r for r in json.loads(result.stdout)}
    assert sorted(records) == list(APIS)
    for api, rec in records.items():
        d = parsed(api)
        ext = d["x-jobmock"]
        assert rec["title"] == d["info"]["title"]
        assert Path(rec["spec"]).resolve() == (SPEC_DIR / f"{api}.yaml").resolve()
        scheme_name = ext["auth"]["scheme"]
        scheme = d["components"]["securitySchemes"][scheme_name]
        assert rec["auth"]["scheme"] == scheme_name
        tenants = ext["auth"]["tenants"]
        assert [t["tenant"] for t in rec["tenants"]] == list(tenants)[:2]
        for t in rec["tenants"]:
            credential = t["credential"]
            assert credential == tenants[t["tenant"]][0]
            if scheme["type"] == "http" and scheme["scheme"] == "bearer":
                assert t["headers"] == {"Authorization": f"Bearer {credential}"}
            elif scheme["type"] == "http" and scheme["scheme"] == "basic":
                token = base64.b64encode(credential.encode()).decode()
                assert t["headers"] == {"Authorization": f"Basic {token}"}
            else:
                assert (scheme["type"], scheme["in"]) == ("apiKey", "header")
                assert t["headers"] == {scheme["name"]: credential}
        assert rec["tenants"][0]["credential"] != rec["tenants"][1]["credential"]


def test_validate_accepts_the_bundled_specs() -> None:
    paths = [str(SPEC_DIR / f"{api}.yaml") for api in APIS]
    result = CliRunner().invoke(main, ["validate", *paths])
    assert result.exit_code == 0, result.output
    for api in APIS:
        assert f"ok   {api}:" in result.stdout


def test_validate_accepts_bundled_names() -> None:
    result = CliRunner().invoke(main, ["validate", *APIS])
    assert result.exit_code == 0, result.output


def test_validate_rejects_a_broken_spec(tmp_path: Path) -> None:
    d = parsed("croma")
    key, _ = transition_to_unknown_word(d)
    broken = write(tmp_path, d)
    good = SPEC_DIR / "enrich.yaml"
    result = CliRunner().invoke(main, ["validate", str(good), str(broken)])
    assert result.exit_code == 1
    assert "ok   enrich:" in result.stdout, "the good file is still reported"
    assert "FAIL" in result.stderr
    assert str(broken) in result.stderr
    assert key in result.stderr
    assert "'teleported'" in result.stderr


def test_validate_rejects_invalid_yaml_and_missing_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("openapi: [\n", encoding="utf-8")
    missing = tmp_path / "absent.yaml"
    result = CliRunner().invoke(main, ["validate", str(bad), str(missing)])
    assert result.exit_code == 1
    assert str(bad) in result.stderr and "valid YAML" in result.stderr
    assert str(missing) in result.stderr
    assert result.stderr.count("FAIL") == 2
