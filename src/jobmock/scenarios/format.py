"""The scenario file format: its JSON Schema, loading and cross-checking against the API's
spec (a :class:`~jobmock.errors.ScenarioError` names the file, the key and what was
expected), the model a loaded scenario is (:class:`Scenario`, :class:`Rule`,
:class:`Match`, :class:`ResponseFault`, :class:`LimitHit`, :class:`ReceiverPlan`), and
the catalog in ``fixtures/``. The format is described in :mod:`jobmock.scenarios`."""

from __future__ import annotations

import fnmatch
import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..bundled import bundled_names, resolve_spec, resource_dir
from ..engine import Advance
from ..errors import ApiError, ScenarioError, SpecError
from ..lifecycle import check_plan
from ..spec import ROLES, ApiSpec, Operation, check_schema, packaged_schema, read_yaml
from ._common import _REF, MISSING, _escape, _is_matcher, _text, compare, pointer_get

if TYPE_CHECKING:
    from ..dispatch import Mock, Request, Response
    from ..receiver import WebhookReceiver

__all__ = [
    "MAX_LATENCY",
    "LimitHit",
    "Match",
    "ReceiverPlan",
    "ResponseFault",
    "Rule",
    "Scenario",
    "catalog",
    "catalog_path",
    "fixtures_dir",
    "load_scenario",
    "scenario_files",
    "scenario_schema",
]

_MALFORMED = b'{"error": "upstream timed out", "detail": '
#: The longest ``response.latency`` a rule may ask for, in clock seconds (one hour): the
#: schema's ``maximum``, refused at load. A held answer longer than any client's timeout
#: shows nothing more, and a larger one would push its release past the times a clock keeps.
MAX_LATENCY = 3600.0
_MATCHER_KEYS = frozenset({"$present", "$len", "$in", "$pluck", "$equals", "$gte", "$lte",
                           "$contains", "$sent", "$received"})
_STEP_KINDS = ("submit", "request", "poll", "advance", "force", "expect", "note")


def scenario_schema() -> dict[str, Any]:
    """The JSON Schema of a scenario file, shipped in the package."""
    return packaged_schema("scenario")


def _check_matchers(value: Any, file: str, key: str, *, references: bool) -> None:
    """Reject unknown ``$`` keys (and references where there is nothing to refer to)."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_matchers(item, file, f"{key}/{i}", references=references)
        return
    if not isinstance(value, dict):
        return
    if not _is_matcher(value):
        for k, v in value.items():
            _check_matchers(v, file, f"{key}/{_escape(str(k))}", references=references)
        return
    unknown = sorted(k for k in value if k not in _MATCHER_KEYS)
    if unknown:
        raise ScenarioError(file, key, f"matchers from {sorted(_MATCHER_KEYS)}, got {unknown}")
    if not references and ("$sent" in value or "$received" in value):
        raise ScenarioError(file, key, "a plain value: $sent and $received belong in a story's expect")
    for ref in ("$sent", "$received"):
        if ref in value and (len(value) != 1 or not isinstance(value[ref], str) or "#" not in value[ref]):
            raise ScenarioError(file, f"{key}/{ref}", 'a reference "NAME#/pointer" alone')
    if "$pluck" in value and "$equals" not in value:
        raise ScenarioError(file, key, "$equals next to $pluck (the expected list)")
    if "$len" in value and (not isinstance(value["$len"], int) or isinstance(value["$len"], bool)):
        raise ScenarioError(file, f"{key}/$len", "an integer")
    for num in ("$gte", "$lte"):
        if num in value and (not isinstance(value[num], int | float) or isinstance(value[num], bool)):
            raise ScenarioError(file, f"{key}/{num}", "a number")


def _refs(value: Any) -> Iterator[str]:
    """The story names (``{NAME.id}``) and ``receiver`` that strings in ``value`` refer to."""
    if isinstance(value, str):
        for m in _REF.finditer(value):
            yield m.group(1).split(".")[0]
    elif isinstance(value, list):
        for v in value:
            yield from _refs(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _refs(k)
            yield from _refs(v)


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True, slots=True)
class Match:
    """What a rule's requests look like; an unset condition matches anything."""

    operations: frozenset[str] | None = None
    method: str | None = None
    path: str | None = None
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str | None] = field(default_factory=dict)
    body: Mapping[str, Any] = field(default_factory=dict)
    tenant: Any = MISSING
    nth: frozenset[int] | None = None
    status: int | None = None

    def test(self, operation: str | None, request: Request, tenant: str | None,
             body: Callable[[], Any], status: int | None) -> bool:
        if self.operations is not None and operation not in self.operations:
            return False
        if self.method is not None and request.method.upper() != self.method.upper():
            return False
        if self.path is not None and not fnmatch.fnmatchcase(request.path, self.path):
            return False
        if self.status is not None and status != self.status:
            return False
        if self.tenant is not MISSING and tenant != self.tenant:
            return False
        for name, value in self.query.items():
            if request.query.get(name) != value:
                return False
        for name, hvalue in self.headers.items():
            if request.headers.get(name.lower()) != hvalue:
                return False
        if self.body:
            doc = body()
            for pointer, want in self.body.items():
                if compare(pointer_get(doc, pointer), want) is not None:
                    return False
        return True


@dataclass(frozen=True, slots=True)
class ResponseFault:
    """How a rule changes an answer."""

    latency: float = 0.0
    status: int | None = None
    error: str | None = None
    message: str = ""
    context: Mapping[str, Any] = field(default_factory=dict)
    body: Any = MISSING
    headers: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()
    drop: bool = False
    malformed: bytes | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.latency <= MAX_LATENCY:  # NaN fails too
            raise ValueError(f"latency must be from 0 to {MAX_LATENCY:g} seconds, got {self.latency!r}")

    def apply(self, mock: Mock, request: Request, response: Response,
              info: Mapping[str, Any]) -> Response:
        from ..dispatch import Response, json_response

        if self.error is not None:
            exc = ApiError(self.message, error_name=self.error, context=dict(self.context))
            out = mock.error_response(exc, request, info)
            if self.status is not None:
                out.status = self.status
        elif self.body is not MISSING:
            out = json_response(self.status or response.status, self.body)
        else:
            out = Response(self.status or response.status, list(response.headers), response.body)
        out.delay = max(out.delay, response.delay)
        out.drop = out.drop or response.drop
        if self.headers:
            names = {k.lower() for k, _ in self.headers}
            out.headers = [(k, v) for k, v in out.headers if k.lower() not in names]
            out.headers.extend(self.headers)
        if self.remove:
            gone = {n.lower() for n in self.remove}
            out.headers = [(k, v) for k, v in out.headers if k.lower() not in gone]
        if self.malformed is not None:
            out.body = self.malformed
        if self.latency:
            out.delay = max(out.delay, self.latency)
        if self.drop:
            out.drop = True
        return out


@dataclass(frozen=True, slots=True)
class LimitHit:
    """A rule's refusal: the spec's named limit error."""

    error: str
    message: str = ""
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule of a scenario (see the module docstring)."""

    index: int
    name: str
    match: Match
    job: Mapping[str, Any] | None = None
    response: ResponseFault | None = None
    limit: LimitHit | None = None
    times: int | None = None

    @property
    def at_submit(self) -> bool:
        """Checked when a job is about to be created (it has ``job`` or ``limit``)."""
        return self.job is not None or self.limit is not None


@dataclass(frozen=True, slots=True)
class ReceiverPlan:
    """How the story's webhook receiver misbehaves."""

    fail_first: int = 0
    always: bool = False
    status: int = 500
    drop: bool = False

    def configure(self, receiver: WebhookReceiver) -> None:
        status = None if self.drop else self.status
        if self.always:
            receiver.fail_always(status=status, drop=self.drop)
        elif self.fail_first:
            receiver.fail_next(self.fail_first, status=status, drop=self.drop)


@dataclass(frozen=True, slots=True)
class Scenario:
    """A scenario file, validated and cross-checked against its API's spec."""

    file: str
    name: str
    description: str
    api: str
    spec: ApiSpec = field(repr=False)
    document: Mapping[str, Any] = field(repr=False)
    seed: int | None = None
    clock: str = "virtual"
    speed: float = 1.0
    clock_given: bool = False
    advance: Advance | None = None
    allow_private_callbacks: bool | None = None
    queue_max: int | None = None
    queue_error: str | None = None
    concurrency_max: int | None = None
    receiver: ReceiverPlan | None = None
    rules: tuple[Rule, ...] = ()
    story: tuple[Mapping[str, Any], ...] = ()

    @property
    def has_limits(self) -> bool:
        return self.queue_max is not None or self.concurrency_max is not None

    def catalog_entry(self, root: Path | None = None) -> dict[str, Any]:
        path = Path(self.file)
        rel = path.name
        if root is not None:
            try:
                rel = path.resolve().relative_to(root.resolve()).as_posix()
            except ValueError:
                rel = str(path)
        return {"api": self.spec.name, "file": rel, "name": self.name,
                "description": self.description, "rules": len(self.rules),
                "steps": len(self.story), "path": str(path)}


# --------------------------------------------------------------------------- loading


def load_scenario(source: str | Path | Mapping[str, Any] | Scenario, *,
                  file: str | None = None) -> Scenario:
    """Read, validate and cross-check a scenario (a path, a parsed mapping, or a Scenario).

    Raises :class:`~jobmock.errors.ScenarioError` naming the file, the key and what was
    expected.
    """
    if isinstance(source, Scenario):
        return source
    base_dir: Path | None = None
    default_name = "scenario"
    if isinstance(source, Mapping):
        doc: Any = dict(source)
        file = file or "<scenario>"
    else:
        path = Path(source) if file is not None else catalog_path(source)
        file = file or str(path)
        base_dir = path.parent
        default_name = path.stem
        doc = read_yaml(Path(file), "scenario", ScenarioError)
    if not isinstance(doc, dict):
        raise ScenarioError(file, "", "a scenario: a mapping with api, description, rules and story")
    # Every key that breaks the schema, best match first (a latency over MAX_LATENCY too).
    check_schema(doc, scenario_schema(), file, "", ScenarioError, _json_pointer)
    return _Builder(doc, file, base_dir, default_name).build()


def _json_pointer(parts: Any) -> str:
    return "".join(f"/{_escape(str(p))}" for p in parts)


class _Builder:
    def __init__(self, doc: dict[str, Any], file: str, base_dir: Path | None,
                 default_name: str) -> None:
        self.doc = doc
        self.file = file
        self.base_dir = base_dir
        self.default_name = default_name

    def fail(self, key: str, expected: str) -> ScenarioError:
        return ScenarioError(self.file, key, expected)

    def resolve_api(self) -> ApiSpec:
        api = self.doc["api"]
        candidate: str | Path = api
        if self.base_dir is not None and not Path(api).is_absolute():
            local = self.base_dir / api
            if local.is_file():
                candidate = local
        try:
            return resolve_spec(candidate)
        except SpecError as exc:
            raise self.fail("/api", f"a bundled API name {bundled_names()} or a path to a valid "
                                    f"spec file ({exc})") from exc

    def build(self) -> Scenario:
        doc = self.doc
        spec = self.resolve_api()
        self.spec = spec
        self.ops: dict[str, Operation] = {o.operation_id: o for o in spec.operations}
        clock = doc.get("clock")
        kind, speed = "virtual", 1.0
        if isinstance(clock, str):
            kind = clock
        elif isinstance(clock, dict):
            kind, speed = clock["kind"], float(clock.get("speed", 1.0))
        advance = None
        if "advance" in doc:
            a = doc["advance"]
            if "polls" in a and a["mode"] != "polls":
                raise self.fail("/advance/polls", "polls only with mode: polls")
            advance = Advance(a["mode"], int(a.get("polls", 1)))
        queue_max = queue_error = concurrency_max = None
        limits = doc.get("limits") or {}
        if "queue" in limits:
            queue_max = int(limits["queue"]["max"])
            queue_error = limits["queue"].get("error") or spec.limits.queue_error
            if queue_error is None:
                raise self.fail("/limits/queue/error", f"the error a full queue answers: {spec.name}'s "
                                "spec names no queue limit, so name one of its errors "
                                f"{sorted(spec.errors)}")
            self.need_error(queue_error, "/limits/queue/error")
        if "concurrency" in limits:
            concurrency_max = int(limits["concurrency"]["max"])
        receiver = None
        if "webhook_receiver" in doc:
            r = doc["webhook_receiver"]
            if spec.webhooks is None:
                raise self.fail("/webhook_receiver", f"no webhook_receiver: {spec.name} sends no webhooks")
            receiver = ReceiverPlan(int(r.get("fail_first", 0)), bool(r.get("always", False)),
                                    int(r.get("status", 500)), bool(r.get("drop", False)))
        rules = tuple(self.rule(i, r) for i, r in enumerate(doc.get("rules") or []))
        story = tuple(doc.get("story") or [])
        self.check_story(story, receiver is not None)
        return Scenario(
            file=self.file, name=str(doc.get("name") or self.default_name),
            description=doc["description"], api=doc["api"], spec=spec, document=doc,
            seed=doc.get("seed"), clock=kind, speed=speed, clock_given="clock" in doc,
            advance=advance, allow_private_callbacks=doc.get("allow_private_callbacks"),
            queue_max=queue_max, queue_error=queue_error, concurrency_max=concurrency_max,
            receiver=receiver, rules=rules, story=story,
        )

    # -- cross-checks against the spec --------------------------------------------------

    def need_error(self, name: str, key: str) -> None:
        if name not in self.spec.errors:
            raise self.fail(key, f"the name of an error under x-jobmock/errors of {self.spec.name}: "
                                 f"{sorted(self.spec.errors)}, got {name!r}")

    def need_tenant(self, name: str, key: str) -> None:
        if name not in self.spec.auth.tenants:
            raise self.fail(key, f"a tenant of {self.spec.name}: {sorted(self.spec.auth.tenants)}, "
                                 f"got {name!r}")

    def need_operation(self, name: str, key: str, role: str | None = None) -> Operation:
        op = self.ops.get(name)
        if op is None:
            raise self.fail(key, f"an operationId of {self.spec.name}: {sorted(self.ops)}, got {name!r}")
        if role is not None and op.role != role:
            wanted = sorted(o.operation_id for o in self.spec.operations if o.role == role)
            raise self.fail(key, f"a {role} operation of {self.spec.name}: {wanted}, got {name!r}")
        return op

    def need_outcome(self, word: str, key: str) -> None:
        lc = self.spec.lifecycle
        if word not in lc.states or not lc.is_terminal(word):
            raise self.fail(key, f"a terminal status word of {self.spec.name}: "
                                 f"{sorted(lc.terminal_words)}, got {word!r}")
        if lc.route(lc.queued, word) is None:
            raise self.fail(key, f"an outcome reachable from {lc.queued!r} by the lifecycle's "
                                 f"transitions, got {word!r}")

    def need_status(self, word: str, key: str, *, roles: bool = False) -> None:
        states = self.spec.lifecycle.states
        if word in states or (roles and word in ROLES and word in states.values()):
            return
        extra = f" or a role {sorted(set(states.values()))}" if roles else ""
        raise self.fail(key, f"a status word of {self.spec.name}: {sorted(states)}{extra}, got {word!r}")

    # -- rules ----------------------------------------------------------------------------

    def rule(self, i: int, r: dict[str, Any]) -> Rule:
        where = f"/rules/{i}"
        if not any(k in r for k in ("job", "response", "limit")):
            raise self.fail(where, "at least one of job, response or limit: what the rule forces")
        at_submit = "job" in r or "limit" in r
        m = r.get("match") or {}
        ops = m.get("operation")
        op_names = [ops] if isinstance(ops, str) else list(ops) if ops else None
        for j, name in enumerate(op_names or []):
            key = f"{where}/match/operation" + (f"/{j}" if isinstance(ops, list) else "")
            self.need_operation(name, key, "submit" if at_submit else None)
        if "status" in m and at_submit:
            raise self.fail(f"{where}/match/status", "no status in a job or limit rule's match: "
                            "it is checked before the answer exists (use a response-only rule)")
        if m.get("tenant") is not None:
            self.need_tenant(m["tenant"], f"{where}/match/tenant")
        for pointer, value in (m.get("body") or {}).items():
            _check_matchers(value, self.file, f"{where}/match/body/{_escape(pointer)}", references=False)
        nth = m.get("nth")
        match = Match(
            operations=frozenset(op_names) if op_names else None,
            method=m.get("method"), path=m.get("path"),
            query={k: _text(v) for k, v in (m.get("query") or {}).items()},
            headers=dict(m.get("headers") or {}),
            body=dict(m.get("body") or {}),
            tenant=m.get("tenant", MISSING),
            nth=frozenset([nth] if isinstance(nth, int) else nth) if nth is not None else None,
            status=m.get("status"),
        )
        job = None
        if "job" in r:
            job = self.job(r["job"], f"{where}/job")
        response = None
        if "response" in r:
            response = self.response(r["response"], f"{where}/response")
        limit = None
        if "limit" in r:
            lim = r["limit"]
            self.need_error(lim["error"], f"{where}/limit/error")
            limit = LimitHit(lim["error"], lim.get("message", ""), dict(lim.get("context") or {}))
        return Rule(i, str(r.get("name") or f"rule {i}"), match, job, response, limit, r.get("times"))

    def job(self, j: dict[str, Any], where: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "outcome" in j:
            self.need_outcome(j["outcome"], f"{where}/outcome")
            out["outcome"] = j["outcome"]
        for key in ("error", "result"):
            if key in j:
                out[key] = j[key]
        for key in ("queued_for", "running_for"):
            if key in j:
                out[key] = float(j[key])
        if "polls" in j:
            out["polls"] = int(j["polls"])
        if "path" in j:
            lc = self.spec.lifecycle
            for i, word in enumerate(j["path"]):
                if word not in lc.states or lc.is_terminal(word) or lc.states[word] == "queued":
                    raise self.fail(f"{where}/path/{i}", f"a non-terminal status word after queued "
                                                         f"from {sorted(lc.states)}, got {word!r}")
            out["path"] = tuple(j["path"])
            try:
                check_plan(self.spec, out["path"], out.get("outcome"))
            except ValueError as exc:
                raise self.fail(f"{where}/path", f"a path the lifecycle allows: {exc}") from None
        if j.get("manual"):
            out["manual"] = True
        if "polls" in j and j.get("manual"):
            raise self.fail(f"{where}/manual", "either polls or manual, not both")
        if "progress" in j:
            steps = tuple((int(s["pct"]), str(s["message"])) for s in j["progress"])
            if any(b[0] < a[0] for a, b in itertools.pairwise(steps)):
                raise self.fail(f"{where}/progress", "pct values that never decrease")
            out["progress"] = steps
        return out

    def response(self, r: dict[str, Any], where: str) -> ResponseFault:
        if "error" in r:
            self.need_error(r["error"], f"{where}/error")
            if "body" in r:
                raise self.fail(f"{where}/body", "either error (the spec's named answer) or body, not both")
        elif "message" in r or "context" in r:
            raise self.fail(f"{where}/error", "an error name: message and context fill its template")
        malformed = r.get("malformed")
        raw: bytes | None = None
        if malformed is True:
            raw = _MALFORMED
        elif isinstance(malformed, str):
            raw = malformed.encode()
        remove = r.get("remove_header") or ()
        return ResponseFault(
            latency=float(r.get("latency", 0.0)), status=r.get("status"), error=r.get("error"),
            message=r.get("message", ""), context=dict(r.get("context") or {}),
            body=r.get("body", MISSING),
            headers=tuple((k, _text(v)) for k, v in (r.get("headers") or {}).items()),
            remove=(remove,) if isinstance(remove, str) else tuple(remove),
            drop=bool(r.get("drop", False)), malformed=raw,
        )

    # -- story ------------------------------------------------------------------------------

    def check_story(self, story: tuple[Mapping[str, Any], ...], has_receiver: bool) -> None:
        spec = self.spec
        names: set[str] = set()
        jobs: set[str] = set()
        answered = False

        def known(name: str, key: str, pool: set[str], what: str) -> None:
            if name not in pool:
                raise self.fail(key, f"the `as` name of an earlier {what} step "
                                     f"(known: {sorted(pool) or 'none yet'}), got {name!r}")

        for i, step in enumerate(story):
            kind, args = next(iter(step.items()))
            where = f"/story/{i}/{kind}"
            for ref in _refs(args):
                if ref == "receiver":
                    if not has_receiver:
                        raise self.fail(where, "a webhook_receiver section: {receiver.url} is the "
                                               "story's loopback receiver")
                else:
                    known(ref, where, jobs, "submit")
            if kind in ("submit", "request", "poll"):
                if args.get("tenant") is not None:
                    self.need_tenant(args["tenant"], f"{where}/tenant")
                if sum(k in args for k in ("tenant", "credential", "auth")) > 1:
                    raise self.fail(where, "at most one of tenant, credential and auth")
            if kind == "submit":
                op = self.need_operation(args["operation"], f"{where}/operation", "submit")
                missing = sorted(p.name for p in op.parameters
                                 if p.location == "path" and p.name not in (args.get("params") or {}))
                if missing:
                    raise self.fail(f"{where}/params", f"values for the path parameters {missing} "
                                                       f"of {op.method} {op.path}")
                if "body" in args:
                    _check_repeat(args["body"], self.file, f"{where}/body")
            if kind == "request" and "body" in args:
                _check_repeat(args["body"], self.file, f"{where}/body")
            if kind == "poll":
                known(args["job"], f"{where}/job", jobs, "submit")
                status_op = spec.status_operation
                given = set(args.get("params") or {}) | set(status_op.match)
                given.add(status_op.job_id_param or "")
                missing = sorted(p.name for p in status_op.parameters
                                 if p.location == "path" and p.name not in given)
                if missing:
                    raise self.fail(f"{where}/params", f"values for the path parameters {missing}")
            if kind == "force":
                known(args["job"], f"{where}/job", jobs, "submit")
                self.need_status(args["status"], f"{where}/status", roles=True)
            if kind == "expect":
                if "of" in args:
                    known(args["of"], f"{where}/of", names, "submit, request or poll")
                elif any(k in args for k in ("status", "json", "headers", "dropped", "malformed",
                                             "elapsed")) and not answered:
                    raise self.fail(where, "an earlier submit, request or poll whose answer to check")
                for pointer, value in (args.get("json") or {}).items():
                    _check_matchers(value, self.file, f"{where}/json/{_escape(pointer)}", references=True)
                for ref in _value_refs(args):
                    known(ref, where, names, "submit, request or poll")
                if "job" in args:
                    j = args["job"]
                    known(j["job"], f"{where}/job/job", jobs, "submit")
                    if "status" in j:
                        self.need_status(j["status"], f"{where}/job/status")
                    for pointer, value in (j.get("json") or {}).items():
                        _check_matchers(value, self.file, f"{where}/job/json/{_escape(pointer)}",
                                        references=True)
                if "webhooks" in args:
                    w = args["webhooks"]
                    if spec.webhooks is None:
                        raise self.fail(f"{where}/webhooks", f"no webhook checks: {spec.name} sends none")
                    if "job" in w:
                        known(w["job"], f"{where}/webhooks/job", jobs, "submit")
                    if ("received" in w or "signed" in w) and not has_receiver:
                        raise self.fail(f"{where}/webhooks", "a webhook_receiver section for received/"
                                                             "signed: they read the story's receiver")
                    if w.get("signed") and spec.webhooks.signature is None:
                        raise self.fail(f"{where}/webhooks/signed",
                                        f"no signature check: {spec.name}'s webhooks are not signed")
            if kind in ("submit", "request", "poll"):
                answered = True
                name = args.get("as")
                if name is not None:
                    names.add(name)
                    if kind == "submit":
                        jobs.add(name)


def _check_repeat(value: Any, file: str, key: str) -> None:
    if isinstance(value, list):
        for i, v in enumerate(value):
            _check_repeat(v, file, f"{key}/{i}")
    elif isinstance(value, dict):
        if "$repeat" in value:
            n = value["$repeat"]
            if set(value) - {"$repeat", "$item"} or not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise ScenarioError(file, key, "{$repeat: N, $item: ITEM} with a count N >= 0")
            return
        for k, v in value.items():
            _check_repeat(v, file, f"{key}/{_escape(str(k))}")


def _value_refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            if k in ("$sent", "$received") and isinstance(v, str):
                yield v.split("#", 1)[0]
            else:
                yield from _value_refs(v)
    elif isinstance(value, list):
        for v in value:
            yield from _value_refs(v)


# --------------------------------------------------------------------------- the catalog


def catalog_path(name: str | Path) -> Path:
    """A scenario file: ``name`` if it exists, else the catalog's file of that name (as
    ``jobmock scenarios`` prints it, ``.yaml`` optional), e.g. ``cloro/queue-limit-429.yaml``.
    A name that is neither raises :class:`ScenarioError` with the closest catalog names."""
    path = Path(name)
    if path.exists():
        return path
    root = fixtures_dir()
    for candidate in (root / path, root / f"{path}.yaml"):
        if not path.is_absolute() and candidate.is_file():
            return candidate
    names = [p.relative_to(root).as_posix() for p in scenario_files(root)]
    from ..hints import did_you_mean

    raise ScenarioError(str(path), "", f"a readable scenario file, or a name `jobmock scenarios` "
                                       f"prints (no file and no such name)."
                                       f"{did_you_mean(path.as_posix(), names)}")


def fixtures_dir() -> Path:
    """Where the scenario catalog lives: ``jobmock/fixtures`` in a wheel, else ``fixtures/``."""
    return resource_dir("fixtures", "fixtures")


def scenario_files(directory: str | Path | None = None) -> list[Path]:
    """Every scenario file (``*.yaml``, ``*.yml``) under ``directory`` (default: the catalog)."""
    root = Path(directory) if directory is not None else fixtures_dir()
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def catalog(directory: str | Path | None = None) -> list[dict[str, Any]]:
    """The scenarios under ``directory`` (default: the catalog in ``fixtures/``), by API and file.

    Each entry: ``api``, ``file`` (relative), ``name``, ``description``, ``rules``,
    ``steps``, ``path``; a file that does not load has ``error`` instead of counts.
    """
    root = Path(directory) if directory is not None else fixtures_dir()
    out: list[dict[str, Any]] = []
    for path in scenario_files(root):
        try:
            out.append(load_scenario(path).catalog_entry(root))
        except ScenarioError as exc:
            rel = path.resolve().relative_to(root.resolve()).as_posix()
            out.append({"api": "?", "file": rel, "name": path.stem,
                        "description": f"INVALID: {exc}", "error": str(exc), "path": str(path)})
    out.sort(key=lambda e: (e["api"], e["file"]))
    return out
