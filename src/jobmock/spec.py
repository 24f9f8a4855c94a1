"""The spec model: an OpenAPI 3.1 document with its ``x-jobmock`` extension, loaded and checked.

:func:`load_spec` is the one way in. It validates the document with
openapi-spec-validator and the extension with the JSON Schema shipped in
``jobmock/schemas/x-jobmock.schema.json``, cross-checks the names the extension
uses, compiles its templates, and returns frozen values the rest of jobmock reads.
A wrong spec fails here, with the file, the key and what was expected.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from .errors import SpecError
from .pointers import find
from .specmodel import (
    ROLES,
    TERMINAL_ROLES,
    ApiSpec,
    Auth,
    CallbackRule,
    ErrorDef,
    FlowStep,
    Gate,
    Lifecycle,
    Limits,
    Operation,
    Paging,
    Parameter,
    ResponseDef,
    Timing,
    WaitPolicy,
)
from .templates import Renderer, compile_template, render_string
from .webhookspec import RetryPolicy, Signature, Webhooks, build_webhooks

__all__ = [
    "ROLES",
    "TERMINAL_ROLES",
    "ApiSpec",
    "Auth",
    "ErrorDef",
    "FlowStep",
    "Gate",
    "Lifecycle",
    "Limits",
    "Operation",
    "Paging",
    "Parameter",
    "ResponseDef",
    "RetryPolicy",
    "Signature",
    "Timing",
    "WaitPolicy",
    "Webhooks",
    "check_schema",
    "extension_schema",
    "load_spec",
    "read_yaml",
]

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


@cache
def packaged_schema(name: str) -> dict[str, Any]:
    """A JSON Schema shipped in ``jobmock/schemas/`` (``name`` without ``.schema.json``)."""
    text = resources.files("jobmock").joinpath(f"schemas/{name}.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def extension_schema() -> dict[str, Any]:
    """The JSON Schema of ``x-jobmock`` shipped in the package."""
    return packaged_schema("x-jobmock")


def _operation_schema() -> dict[str, Any]:
    root = extension_schema()
    return {"$schema": root["$schema"], "$defs": root["$defs"], "$ref": "#/$defs/operation"}


# --------------------------------------------------------------------------- loading


def read_yaml(path: Path, what: str, error: type[SpecError] = SpecError) -> Any:
    """The parsed YAML (or JSON) file at ``path``; ``error(file, "", expected)`` if it can't be."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(file, "", f"a readable {what} file ({exc.strerror})") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(file, "", f"valid YAML ({exc})") from exc


def load_spec(source: str | Path) -> ApiSpec:
    """Load, validate and compile the spec at ``source`` (a path to a YAML or JSON file)."""
    path = Path(source)
    doc = read_yaml(path, "spec")
    if not isinstance(doc, dict):
        raise SpecError(str(path), "", "an OpenAPI document (a mapping)")
    return build_spec(doc, str(path), default_name=path.stem)


def _pointer(parts: Any) -> str:
    return "/" + "/".join(str(p) for p in parts)


def _check_openapi(doc: dict[str, Any], file: str) -> None:
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

    if not str(doc.get("openapi", "")).startswith("3.1"):
        raise SpecError(file, "/openapi", f"OpenAPI 3.1.x, got {doc.get('openapi')!r}")
    try:
        validate(doc)
    except OpenAPIValidationError as exc:
        where = _pointer(getattr(exc, "absolute_path", None) or getattr(exc, "path", ()) or ())
        detail = str(exc.message).split("\n\n", 1)[0]
        raise SpecError(file, where, f"a valid OpenAPI 3.1 document: {detail}") from exc


def check_schema(value: Any, schema: dict[str, Any], file: str, base: str,
                 error: type[SpecError] = SpecError, pointer: Callable[[Any], str] = _pointer) -> None:
    """Raise one ``error`` (a SpecError, or a subclass such as ScenarioError) naming every
    key that breaks ``schema`` (best match first); ``pointer`` writes a key's path."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        assert best is not None
        found: dict[str, SpecError] = {}
        for err in [best, *errors]:
            # One mistake per key: a oneOf/anyOf failure lists its own best sub-error.
            if err.context:
                err = jsonschema.exceptions.best_match(err.context) or err
            key = base + pointer(err.absolute_path).rstrip("/")
            message = err.message
            if err.validator == "maxItems" and isinstance(err.instance, list):  # not the list itself
                message = f"at most {err.validator_value} items, got {len(err.instance)}"
            found.setdefault(key, error(file, key, message))
        first, *rest = found.values()
        raise error(first.file, first.key, first.expected, tuple(rest))


def build_spec(doc: dict[str, Any], file: str, default_name: str = "api") -> ApiSpec:
    """Build an :class:`ApiSpec` from an already parsed document."""
    _check_openapi(doc, file)
    if "x-jobmock" not in doc:
        raise SpecError(file, "/x-jobmock", "an x-jobmock block stating the job lifecycle")
    ext: dict[str, Any] = doc["x-jobmock"]
    check_schema(ext, extension_schema(), file, "/x-jobmock")
    b = _Builder(doc, ext, file)
    return b.build(default_name)


def _reachable(flow: Mapping[str, FlowStep], start: str) -> list[str]:
    """The flow's states a job can reach from ``start`` (terminal words excluded)."""
    seen: list[str] = []
    todo = [start]
    while todo:
        word = todo.pop()
        if word in seen or word not in flow:
            continue
        seen.append(word)
        todo.extend(t for t, w in flow[word].next if w > 0)
    return seen


class _Builder:
    def __init__(self, doc: dict[str, Any], ext: dict[str, Any], file: str) -> None:
        self.doc = doc
        self.ext = ext
        self.file = file
        self.registry: Registry[Any] = Registry().with_resource(
            "", Resource.from_contents(doc, default_specification=DRAFT202012)
        )

    def fail(self, key: str, expected: str) -> SpecError:
        return SpecError(self.file, key, expected)

    def tpl(self, value: Any, where: str) -> Renderer:
        return compile_template(value, self.file, where)

    # -- pieces ---------------------------------------------------------------

    def lifecycle(self) -> Lifecycle:
        lc = self.ext["lifecycle"]
        states: dict[str, str] = dict(lc["states"])
        queued = [w for w, r in states.items() if r == "queued"]
        if len(queued) != 1:
            raise self.fail("/x-jobmock/lifecycle/states", "exactly one status word with role queued")
        if not any(r in TERMINAL_ROLES for r in states.values()):
            raise self.fail("/x-jobmock/lifecycle/states", "at least one terminal status word")
        transitions: dict[str, frozenset[str]] = {}
        for word, targets in lc["transitions"].items():
            where = f"/x-jobmock/lifecycle/transitions/{word}"
            if word not in states:
                raise self.fail(where, f"a status word from lifecycle.states {sorted(states)}")
            if states[word] in TERMINAL_ROLES and targets:
                raise self.fail(where, "no transitions out of a terminal status")
            for t in targets:
                if t not in states:
                    raise self.fail(where, f"{t!r} to be a status word from {sorted(states)}")
            transitions[word] = frozenset(targets)
        rules = []
        for i, r in enumerate(lc.get("status_from") or ()):
            if r["status"] not in states:
                raise self.fail(f"/x-jobmock/lifecycle/status_from/{i}/status",
                                f"a status word from lifecycle.states {sorted(states)}")
            rules.append((tuple(r["when"].items()), r["status"]))
        return Lifecycle(states, transitions, lc.get("status_pointer", ""), tuple(rules))

    def timing(self, lc: Lifecycle) -> Timing:
        t = self.ext["timing"]
        for key in ("queued", "running"):
            lo, hi = t[key]
            if lo > hi:
                raise self.fail(f"/x-jobmock/timing/{key}", f"[min, max] with min <= max, got {t[key]}")
        outcomes = []
        for word, weight in t["outcomes"].items():
            if word not in lc.states or not lc.is_terminal(word):
                raise self.fail(f"/x-jobmock/timing/outcomes/{word}",
                                f"a terminal status word from {sorted(lc.terminal_words)}")
            outcomes.append((word, float(weight)))
        if sum(w for _, w in outcomes) <= 0:
            raise self.fail("/x-jobmock/timing/outcomes", "at least one positive weight")
        flow = self.flow(t.get("flow") or {}, lc, tuple(t["queued"]), tuple(t["running"]))
        run = lc.running
        ends = [w for w in _reachable(flow, lc.queued) if not flow[w].next] if flow else [
            run if run is not None else lc.queued]
        for word, _ in outcomes:
            for start in ends:
                if not lc.can_move(start, word):
                    raise self.fail(f"/x-jobmock/timing/outcomes/{word}",
                                    f"an outcome reachable from {start!r} by lifecycle.transitions")
        return Timing(tuple(t["queued"]), tuple(t["running"]), tuple(outcomes), flow)

    def flow(self, raw: Mapping[str, Any], lc: Lifecycle, queued: tuple[float, float],
             running: tuple[float, float]) -> dict[str, FlowStep]:
        """The lifecycle graph of ``timing.flow``: checked for words, moves and cycles."""
        out: dict[str, FlowStep] = {}
        for word, step in raw.items():
            where = f"/x-jobmock/timing/flow/{word}"
            if word not in lc.states or lc.is_terminal(word):
                raise self.fail(where, f"a non-terminal status word from {sorted(lc.states)}")
            lo, hi = step.get("for") or (queued if lc.states[word] == "queued" else running)
            if lo > hi:
                raise self.fail(where + "/for", f"[min, max] with min <= max, got {[lo, hi]}")
            nxt = []
            for target, weight in (step.get("next") or {}).items():
                if target not in lc.states or not lc.can_move(word, target):
                    raise self.fail(f"{where}/next/{target}",
                                    f"a status word that lifecycle.transitions lets {word!r} move to")
                nxt.append((target, float(weight)))
            if nxt and sum(w for _, w in nxt) <= 0:
                raise self.fail(where + "/next", "at least one positive weight")
            out[word] = FlowStep((float(lo), float(hi)), tuple(nxt))
        if out and lc.queued not in out:
            out[lc.queued] = FlowStep(queued, ())
        # Every path ends: no cycle among the states a job can reach.
        state: dict[str, int] = {}

        def visit(word: str, trail: tuple[str, ...]) -> None:
            if state.get(word) == 2 or lc.is_terminal(word):
                return
            if state.get(word) == 1:
                raise self.fail(f"/x-jobmock/timing/flow/{word}",
                                f"a flow without cycles; {' -> '.join((*trail, word))} loops")
            state[word] = 1
            step = out.get(word)
            if step is None:
                raise self.fail(f"/x-jobmock/timing/flow/{word}",
                                f"an entry for {word!r}, which the flow reaches")
            for target, weight in step.next:
                if weight > 0:
                    visit(target, (*trail, word))
            state[word] = 2

        if out:
            visit(lc.queued, ())
        return out

    def errors(self) -> dict[str, ErrorDef]:
        out = {}
        for name, e in self.ext["errors"].items():
            where = f"/x-jobmock/errors/{name}"
            out[name] = ErrorDef(
                name, int(e["status"]), self.tpl(e["body"], where + "/body"),
                {h: render_string(v, self.file, f"{where}/headers/{h}")
                 for h, v in (e.get("headers") or {}).items()},
                str(e.get("content_type", "application/json")),
            )
        return out

    def need_error(self, errors: Mapping[str, ErrorDef], name: str | None, where: str) -> None:
        if name is not None and name not in errors:
            raise self.fail(where, f"the name of an error under x-jobmock/errors {sorted(errors)}, "
                                   f"got {name!r}")

    def auth(self, errors: Mapping[str, ErrorDef]) -> Auth:
        a = self.ext["auth"]
        schemes = (self.doc.get("components") or {}).get("securitySchemes") or {}
        scheme = a.get("scheme")
        if scheme is None:
            reqs = self.doc.get("security") or [{}]
            scheme = next(iter(reqs[0]), None)
        if scheme not in schemes:
            raise self.fail("/x-jobmock/auth/scheme",
                            f"a key of components/securitySchemes {sorted(schemes)}, got {scheme!r}")
        s = schemes[scheme]
        if s.get("type") == "http" and str(s.get("scheme", "")).lower() in ("bearer", "basic"):
            kind, location, param = str(s["scheme"]).lower(), "header", "Authorization"
        elif s.get("type") == "apiKey" and s.get("in") in ("header", "query"):
            kind, location, param = "apikey", s["in"], s["name"]
        else:
            raise self.fail(f"/components/securitySchemes/{scheme}",
                            "http bearer, http basic, or apiKey in a header or query")
        tenants = {t: tuple(c) for t, c in a["tenants"].items()}
        seen: dict[str, str] = {}
        for t, creds in tenants.items():
            for c in creds:
                if c in seen:
                    raise self.fail(f"/x-jobmock/auth/tenants/{t}",
                                    f"credentials unique to one tenant; {c!r} is also {seen[c]}'s")
                if kind == "basic" and ":" not in c:
                    raise self.fail(f"/x-jobmock/auth/tenants/{t}", "user:password for Basic auth")
                seen[c] = t
        foreign = a.get("foreign_job", "not_found")
        for key, name in (("missing", a["missing"]), ("invalid", a["invalid"]),
                          ("foreign_job", foreign)):
            self.need_error(errors, name, f"/x-jobmock/auth/{key}")
        return Auth(scheme, kind, location, param, tenants, a["missing"], a["invalid"], foreign)

    def response(self, r: dict[str, Any], renders: Mapping[str, Renderer], where: str) -> ResponseDef:
        name = r["render"]
        if name is not None and name not in renders:
            raise self.fail(where + "/render",
                            f"a key of x-jobmock/render {sorted(renders)}, got {r['render']!r}")
        return ResponseDef(
            int(r["status"]), name, renders[name] if name is not None else None,
            {h: render_string(v, self.file, f"{where}/headers/{h}")
             for h, v in (r.get("headers") or {}).items()},
            bool(r.get("retry_after", False)),
            str(r.get("content_type", "application/json")),
        )

    def wait(self, w: dict[str, Any] | None) -> WaitPolicy:
        if not w:
            return WaitPolicy()
        default = float(w.get("default", 0))
        mx = float(w.get("max", max(default, *(q["wait"] for q in w.get("query", [])),
                                    *(b["wait"] for b in w.get("body", [])), 0)))
        return WaitPolicy(
            default=min(default, mx), max=mx, prefer_header=bool(w.get("prefer_header", False)),
            applied_header=w.get("applied_header"),
            query=tuple((q["param"], q["value"], float(q["wait"])) for q in w.get("query", [])),
            callback_skips_wait=bool(w.get("callback_skips_wait", False)),
            body=tuple((b["pointer"], b["value"], float(b["wait"])) for b in w.get("body", [])),
            respond_async=bool(w.get("respond_async", False)),
            applied_on=frozenset(int(x) for x in w.get("applied_on", ())),
            applied_default=bool(w.get("applied_default", False)),
        )

    def limits(self, errors: Mapping[str, ErrorDef], lc: Lifecycle) -> Limits:
        lim = self.ext.get("limits") or {}
        q, c, g = lim.get("queue"), lim.get("concurrency"), lim.get("gate")
        gate = None
        if q:
            self.need_error(errors, q["error"], "/x-jobmock/limits/queue/error")
        if g:
            where = "/x-jobmock/limits/gate"
            self.need_error(errors, g["error"], where + "/error")
            cc = g.get("claim_conflict")
            if cc is not None and (cc not in lc.states or not lc.is_terminal(cc)):
                raise self.fail(where + "/claim_conflict", f"a terminal status word, got {cc!r}")
            gate = Gate(render_string(g["key"], self.file, where + "/key"),
                        frozenset(g.get("blocks_submit_while", ["running"])), cc, g["error"])
        return Limits(q["max"] if q else None, q["error"] if q else None,
                      c["max"] if c else None, gate)

    def webhooks(self, renders: Mapping[str, Renderer], lc: Lifecycle) -> Webhooks | None:
        """``x-jobmock.webhooks``, built by :mod:`jobmock.webhookspec`."""
        return build_webhooks(self.ext.get("webhooks"), renders, lc.states, TERMINAL_ROLES,
                              self.file)

    def callbacks(self, hooks: Webhooks | None) -> CallbackRule | None:
        """The callback URL rule: the webhooks', or ``x-jobmock.callbacks`` (never both)."""
        own = self.ext.get("callbacks")
        if own is not None and hooks is not None:
            raise self.fail("/x-jobmock/callbacks", "no callbacks key where webhooks are given "
                            "(webhooks/url_from and webhooks/url_rule say it)")
        if hooks is not None:
            return CallbackRule(hooks.url_pointer, hooks.url_rule)
        if own is not None:
            return CallbackRule(own["url_from"], own.get("url_rule", "any"))
        return None

    def resolve(self, node: Any) -> Any:
        """Follow local ``$ref``s in the document (for parameters and request bodies)."""
        seen = 0
        while isinstance(node, dict) and "$ref" in node and seen < 32:
            ref = node["$ref"]
            if not ref.startswith("#/"):
                raise self.fail(ref, "a local reference (#/...)")
            target: Any = self.doc
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, dict) or part not in target:
                    raise self.fail(ref, "a reference to an existing node")
                target = target[part]
            node = target
            seen += 1
        return node

    def operations(self, renders: Mapping[str, Renderer], errors: Mapping[str, ErrorDef],
                   lc: Lifecycle) -> tuple[Operation, ...]:
        ops: list[Operation] = []
        root_security = self.doc.get("security") or []
        submit_defaults = self.ext["submit"]
        op_schema = _operation_schema()
        for path, item in (self.doc.get("paths") or {}).items():
            item = self.resolve(item)
            shared_params = item.get("parameters") or []
            for method in HTTP_METHODS:
                if method not in item:
                    continue
                o = item[method]
                where = f"/paths/{path.replace('/', '~1')}/{method}"
                x = o.get("x-jobmock") or {}
                if x:
                    check_schema(x, op_schema, self.file, where + "/x-jobmock")
                params = []
                for p in [*shared_params, *(o.get("parameters") or [])]:
                    p = self.resolve(p)
                    params.append(Parameter(p["name"], p["in"], bool(p.get("required")),
                                            p.get("schema") or {}))
                body = self.resolve(o.get("requestBody")) if o.get("requestBody") else None
                body_schema = None
                body_example = None
                if body:
                    media = (body.get("content") or {}).get("application/json")
                    body_schema = media.get("schema") if media else None
                    if media and "example" in media:
                        body_example = media["example"]
                    elif media and media.get("examples"):
                        first = self.resolve(next(iter(media["examples"].values())))
                        body_example = first.get("value")
                security = o.get("security", root_security)
                role = x.get("role")
                kw: dict[str, Any] = {}
                xw = f"{where}/x-jobmock"
                if role == "submit":
                    resp_src = x.get("responses") or submit_defaults.get("responses")
                    if not resp_src:
                        raise self.fail(xw + "/responses", "responses (here or under x-jobmock/submit)")
                    rw = f"{xw}/responses" if x.get("responses") else "/x-jobmock/submit/responses"
                    for key in resp_src:
                        if key not in ("pending", "terminal") and key not in lc.states and key not in ROLES:
                            raise self.fail(f"{rw}/{key}", "pending, terminal, a status word or a role")
                    kw = dict(
                        job_type=render_string(x.get("job_type", o.get("operationId", "job")),
                                               self.file, xw + "/job_type"),
                        result=self.tpl(x["result"], xw + "/result") if "result" in x else None,
                        credits=x.get("credits"),
                        items_pointer=x.get("items_from"),
                        wait=self.wait(x.get("wait") or submit_defaults.get("wait")),
                        responses={k: self.response(v, renders, f"{rw}/{k}")
                                   for k, v in resp_src.items()},
                        job_id_from=tuple(x.get("job_id_from")
                                          or submit_defaults.get("job_id_from") or ()),
                    )
                    if not kw["job_id_from"]:
                        raise self.fail(xw + "/job_id_from",
                                        "where a client finds the job id (here or under x-jobmock/submit)")
                elif role in ("status", "cancel", "delete", "wait", "result"):
                    pnames = {p.name for p in params if p.location == "path"}
                    jp = x.get("job_id_param")
                    if jp is None or jp not in pnames:
                        raise self.fail(xw + "/job_id_param", f"one of the path parameters {sorted(pnames)}")
                    for k in x.get("match") or {}:
                        if k not in pnames:
                            raise self.fail(f"{xw}/match/{k}", f"one of the path parameters {sorted(pnames)}")
                    kw = dict(job_id_param=jp,
                              match={k: render_string(v, self.file, f"{xw}/match/{k}")
                                     for k, v in (x.get("match") or {}).items()})
                    if role == "cancel":
                        kw.update(self.cancel(x, xw, lc, errors, renders))
                    elif role == "delete":
                        kw["answer"] = self.response(
                            x.get("response") or {"status": 204, "render": None}, renders,
                            xw + "/response")
                    elif role == "wait":
                        kw["wait"] = self.wait(x.get("wait") or {"default": 30, "max": 30})
                        if x.get("response"):
                            kw["answer"] = self.response(x["response"], renders, xw + "/response")
                    elif role == "result":
                        kw.update(self.result(x, xw, errors, renders))
                elif role == "list":
                    kw = self.listing(x, xw, renders, params)
                ops.append(Operation(
                    operation_id=o.get("operationId") or f"{method} {path}",
                    method=method.upper(), path=path, role=role, parameters=tuple(params),
                    body_schema=body_schema, body_required=bool(body and body.get("required")),
                    secured=any(bool(req) for req in security),
                    documented_statuses=frozenset(str(s) for s in (o.get("responses") or {})),
                    body_example=body_example,
                    **kw,
                ))
        if not any(o.role == "submit" for o in ops):
            raise self.fail("/paths", "at least one operation with x-jobmock role: submit")
        if sum(1 for o in ops if o.role == "status") != 1:
            raise self.fail("/paths", "exactly one operation with x-jobmock role: status")
        return tuple(ops)

    def cancel(self, x: dict[str, Any], xw: str, lc: Lifecycle, errors: Mapping[str, ErrorDef],
               renders: Mapping[str, Renderer]) -> dict[str, Any]:
        """A cancel operation's path (via, to), answer and answer to an ended job."""
        to = x.get("to") or lc.word("canceled")
        if to is None or to not in lc.states or not lc.is_terminal(to):
            raise self.fail(xw + "/to", f"a terminal status word to end canceled jobs in "
                                        f"{sorted(lc.terminal_words)}, got {to!r}")
        via = x.get("via")
        if via is not None:
            if via not in lc.states or lc.is_terminal(via):
                raise self.fail(xw + "/via", f"a non-terminal status word, got {via!r}")
            if not lc.can_move(via, to):
                raise self.fail(xw + "/via", f"a word lifecycle.transitions lets move to {to!r}")
        error = (x.get("when_terminal") or {}).get("error")
        self.need_error(errors, error, xw + "/when_terminal/error")
        answer = self.response(x["response"], renders, xw + "/response") if x.get("response") else None
        return {"cancel_to": to, "cancel_via": via, "answer": answer, "when_terminal_error": error}

    def result(self, x: dict[str, Any], xw: str, errors: Mapping[str, ErrorDef],
               renders: Mapping[str, Renderer]) -> dict[str, Any]:
        """A result operation's answer when completed, while unfinished and when ended otherwise."""
        if not x.get("response"):
            raise self.fail(xw + "/response", "the answer when the job completed, for role result")
        kw: dict[str, Any] = {"answer": self.response(x["response"], renders, xw + "/response")}
        for key in ("when_unfinished", "when_ended"):
            given = x.get(key) or {}
            if "error" in given:
                self.need_error(errors, given["error"], f"{xw}/{key}/error")
                kw[key] = given["error"]
            elif "response" in given:
                kw[key] = self.response(given["response"], renders, f"{xw}/{key}/response")
            else:
                raise self.fail(f"{xw}/{key}", "an error (a key of errors) or a response, for role result")
        return kw

    def listing(self, x: dict[str, Any], xw: str, renders: Mapping[str, Renderer],
                params: list[Parameter]) -> dict[str, Any]:
        """A list operation's paging, filters, item render and answer."""
        page = x.get("page") or {}
        style = page.get("style", "after")
        paging = Paging(style, page.get("limit_param", "limit"),
                        page.get("cursor_param", "after" if style == "after" else "pageToken"),
                        int(page.get("default_limit", 20)), int(page.get("max_limit", 100)))
        item = x.get("item_render")
        if item is not None and item not in renders:
            raise self.fail(xw + "/item_render", f"a key of x-jobmock/render {sorted(renders)}")
        answer = self.response(x.get("response") or {"status": 200, "render": "list"}, renders,
                               xw + "/response")
        return {"paging": paging, "filters": dict(x.get("filters") or {}), "item_render": item,
                "answer": answer}

    def build(self, default_name: str) -> ApiSpec:
        ext = self.ext
        lc = self.lifecycle()
        timing = self.timing(lc)
        errors = self.errors()
        auth = self.auth(errors)
        renders = {name: self.tpl(t, f"/x-jobmock/render/{name}") for name, t in ext["render"].items()}
        status = self.response(ext["status"], renders, "/x-jobmock/status")
        if status.render is None:
            raise self.fail("/x-jobmock/status/render", "a key of x-jobmock/render: a status "
                                                        "answer has a body")
        outcome_errors, outcome_results = {}, {}
        for word, o in (ext.get("outcomes") or {}).items():
            if word not in lc.states:
                raise self.fail(f"/x-jobmock/outcomes/{word}", f"a status word from {sorted(lc.states)}")
            if "error" in o:
                outcome_errors[word] = self.tpl(o["error"], f"/x-jobmock/outcomes/{word}/error")
            if "result" in o:
                outcome_results[word] = self.tpl(o["result"], f"/x-jobmock/outcomes/{word}/result")
        ra = ext.get("retry_after")
        credits = ext.get("credits")
        charge_on = frozenset(credits.get("charge_on", ["completed"])) if credits else frozenset()
        for w in charge_on:
            if w not in lc.states:
                raise self.fail("/x-jobmock/credits/charge_on", f"status words from {sorted(lc.states)}")
        balances = dict((credits or {}).get("balances") or {})
        signed = ((ext.get("webhooks") or {}).get("signature") or {}).get("enabled_for") or ()
        for where, names in (("credits/balances", balances), ("webhooks/signature/enabled_for", signed)):
            if not set(names) <= set(auth.tenants):
                raise self.fail(f"/x-jobmock/{where}", f"tenants of x-jobmock/auth {sorted(auth.tenants)}")
        self.need_error(errors, "insufficient_credits" if balances else None, "/x-jobmock/credits/balances")
        progress = ext.get("progress") or {}
        steps = tuple((int(s["pct"]), str(s["message"])) for s in progress.get("steps", []))
        if any(b[0] < a[0] for a, b in itertools.pairwise(steps)):
            raise self.fail("/x-jobmock/progress/steps", "pct values that never decrease")
        for i, inv in enumerate((ext.get("contract") or {}).get("invariants") or []):
            for word in inv.get("status") or []:
                if word not in lc.states:
                    raise self.fail(f"/x-jobmock/contract/invariants/{i}/status",
                                    f"status words from {sorted(lc.states)}, got {word!r}")
            if inv["kind"] == "length_equals" and "other" not in inv:
                raise self.fail(f"/x-jobmock/contract/invariants/{i}", "other: a pointer, for length_equals")
            if inv["kind"] == "echoes_items" and "request" not in inv:
                raise self.fail(f"/x-jobmock/contract/invariants/{i}", "request: a pointer, for echoes_items")
            if inv["kind"] == "not_before" and "other" not in inv:
                raise self.fail(f"/x-jobmock/contract/invariants/{i}", "other: a pointer, for not_before")

        for i, pointer in enumerate(ext.get("assumed") or []):
            if not find(self.doc, pointer)[0]:
                raise self.fail(f"/x-jobmock/assumed/{i}",
                                f"a JSON pointer to a node of this document, got {pointer!r}")
        info = self.doc.get("info") or {}
        return ApiSpec(
            name=ext.get("name", default_name),
            title=info.get("title", default_name),
            file=self.file,
            document=self.doc,
            ids=ext.get("ids", "{uuid}"),
            lifecycle=lc,
            timing=timing,
            outcome_errors=outcome_errors,
            outcome_results=outcome_results,
            auth=auth,
            errors=errors,
            retry_after_seconds=int(ra["seconds"]) if ra else None,
            retry_after_roles=frozenset(ra.get("roles", ["queued", "running"])) if ra else frozenset(),
            limits=self.limits(errors, lc),
            idempotency_pointer=(ext.get("idempotency") or {}).get("key_from"),
            credits_cost=credits["cost"] if credits else None,
            credits_charge_on=charge_on,
            progress_steps=steps,
            progress_done_message=str(progress.get("done_message", "Done")),
            status=status,
            renders=renders,
            webhooks=(hooks := self.webhooks(renders, lc)),
            operations=self.operations(renders, errors, lc),
            registry=self.registry,
            credits_balances=balances,
            callbacks=self.callbacks(hooks),
        )
