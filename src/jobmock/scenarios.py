"""QA scenarios: make a mocked API do one hard thing on purpose, every time.

A scenario file (YAML; checked when it loads by ``jobmock/schemas/scenario.schema.json``
and against the API's spec) names an API and holds:

- ``rules``: each ``match``es requests (operation, method, path, query, headers, body
  fields by JSON pointer, tenant, the Nth match, the answer's status) and forces what
  happens: to the job the request creates (``job``: outcome, error, result, timings, polls
  per step, manual, progress steps), to the answer (``response``: latency, a status with
  a literal body or one of the spec's named errors, added or removed headers, a dropped
  connection, a malformed body), or refuses the request with one of the spec's limit
  errors (``limit``). ``times`` caps how often a rule applies.
- settings: ``seed``, ``clock``, ``advance`` (the policy), ``limits`` (queue and
  concurrency overrides), ``allow_private_callbacks``, ``webhook_receiver`` (how the
  receiver misbehaves: the story's loopback receiver is set up so);
- an optional ``story``: steps (``submit``, ``request``, ``poll``, ``advance``,
  ``force``, ``expect``, ``note``) that show the behaviour and check it, so the file is an
  executable example. :func:`run_story` runs it in-process, or against a live
  ``jobmock serve API --clock virtual --scenario FILE``.

Loading: ``jobmock serve API --scenario FILE``, ``POST /_jobmock/scenario`` (the file as
JSON), ``Mock.load_scenario(path_or_mapping)``. Loading starts from a clean state: jobs,
the journal and webhook deliveries are forgotten; the clock keeps its time. A mock holds
one scenario at a time; loading another replaces it. ``GET /_jobmock/scenario`` shows how
often each rule matched and applied.

How rules apply:

- A rule with ``job`` or ``limit`` is checked when a job is about to be created, that is
  for a submit that passed authentication and validation. Its ``nth`` counts the jobs
  created among the requests matching its other conditions (a submit the API refuses,
  say at its queue limit, is not counted). Job fields from several matching rules
  combine, the earlier rule winning a field; the first matching ``limit`` refuses the
  request with the spec's error (and no job is created).
- A rule with only ``response`` is checked on every API answer (not the control plane);
  its ``nth`` counts the matching answers. Its ``match`` may test ``status``, the status
  the mock was about to send.
- A ``response`` on a job or limit rule changes the answer to that same request.

Story steps, and what each checks:

=========  ==================================================================================
submit     ``{operation, body?, headers?, query?, params?, tenant?|credential?|auth?, as?}``:
           call a submit operation (default body: the operation's example) as the
           ``tenant``'s demo credential (default: the first tenant), a literal
           ``credential``, or none (``auth: false``). The job id is read where the spec
           says (``job_id_from``). A request the mock holds (an inline wait, a latency)
           lets the virtual clock run to each next due entry until the answer comes.
request    ``{method, path, ...}``: any request, same options.
poll       ``{job, tenant?, ...}``: GET the status operation for a submitted job (default
           tenant: the one that submitted it).
advance    ``seconds``: move the virtual clock, entry by entry, letting webhook attempts
           finish at each step (so retries are scheduled exactly).
force      ``{job, status, error?, result?, when?}``: force an outcome (control plane).
expect     ``{of?, status?, json?, headers?, dropped?, malformed?, elapsed?, job?,
           webhooks?}``: check the last (or ``of``) answer, the job as the control plane
           shows it, and webhook deliveries (count, events, attempts, state, statuses,
           intervals between attempts, what the receiver got, signatures).
note       a comment for the log.
=========  ==================================================================================

Strings in a story may hold ``{NAME.id}`` (a submitted job's id) and ``{receiver.url}``.
Expected values may be matchers: ``{$present: bool}``, ``{$len: n}``, ``{$in: [...]}``,
``{$gte: n}``, ``{$lte: n}``, ``{$contains: x}``, ``{$pluck: field, $equals: [...]}``, and
references ``{$sent: "NAME#/pointer"}`` (the body sent) or ``{$received: "NAME#/pointer"}``.
A body value ``{$repeat: n, $item: "TXN {i}"}`` builds a list of n items.
"""

from __future__ import annotations

import asyncio
import copy
import fnmatch
import itertools
import json
import re
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema

from . import pointers
from .bundled import bundled_names, resolve_spec, resource_dir
from .engine import Advance, JobPlan, Timer
from .errors import ApiError, LimitExceeded, ScenarioError, SpecError
from .spec import ROLES, ApiSpec, Operation, packaged_schema, read_yaml

if TYPE_CHECKING:
    import httpx

    from .dispatch import Mock, Request, Response
    from .receiver import WebhookReceiver

__all__ = [
    "MISSING",
    "ActiveScenario",
    "Scenario",
    "StoryFailure",
    "StoryRunner",
    "catalog",
    "compare",
    "fixtures_dir",
    "install_scenario",
    "load_scenario",
    "pointer_get",
    "run_story",
    "run_story_async",
    "scenario_files",
    "scenario_mock",
    "scenario_schema",
]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"

    def __bool__(self) -> bool:
        return False


#: What a JSON pointer finds where there is nothing.
MISSING: Any = _Missing()

_MALFORMED = b'{"error": "upstream timed out", "detail": '
_REF = re.compile(r"\{(receiver\.url|[A-Za-z_][A-Za-z0-9_-]*\.id)\}")
_MATCHER_KEYS = frozenset({"$present", "$len", "$in", "$pluck", "$equals", "$gte", "$lte",
                           "$contains", "$sent", "$received"})
_STEP_KINDS = ("submit", "request", "poll", "advance", "force", "expect", "note")


def scenario_schema() -> dict[str, Any]:
    """The JSON Schema of a scenario file, shipped in the package."""
    return packaged_schema("scenario")


# --------------------------------------------------------------------------- values


def pointer_get(doc: Any, pointer: str) -> Any:
    """The value at JSON pointer ``pointer`` in ``doc``, or :data:`MISSING`."""
    if pointer and not pointer.startswith("/"):
        return MISSING
    found, value = pointers.find(doc, pointer)
    return value if found else MISSING


def _same(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but True is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _short(value: Any, limit: int = 160) -> str:
    text = "<missing>" if value is MISSING else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "..."


def _is_matcher(value: Any) -> bool:
    return isinstance(value, dict) and any(isinstance(k, str) and k.startswith("$") for k in value)


def compare(actual: Any, expected: Any, resolve: Callable[[Any], Any] = lambda v: v) -> str | None:
    """Why ``actual`` does not meet ``expected`` (a value or a matcher), or None if it does."""
    if not _is_matcher(expected):
        want = resolve(expected)
        return None if _same(actual, want) else f"expected {_short(want)}, got {_short(actual)}"
    if "$sent" in expected or "$received" in expected:
        return compare(actual, resolve(expected), resolve)
    for key, arg in expected.items():
        if key == "$present":
            if (actual is not MISSING) != bool(arg):
                return f"expected {'present' if arg else 'absent'}, got {_short(actual)}"
        elif key == "$len":
            if not isinstance(actual, list | str | dict) or len(actual) != arg:
                got = len(actual) if isinstance(actual, list | str | dict) else _short(actual)
                return f"expected length {arg}, got {got}"
        elif key == "$in":
            options = resolve(arg)
            if not any(_same(actual, o) for o in options):
                return f"expected one of {_short(options)}, got {_short(actual)}"
        elif key in ("$gte", "$lte"):
            if not isinstance(actual, int | float) or isinstance(actual, bool) or (
                    actual < arg if key == "$gte" else actual > arg):
                return f"expected {'>=' if key == '$gte' else '<='} {arg}, got {_short(actual)}"
        elif key == "$contains":
            want = resolve(arg)
            ok = (isinstance(actual, str) and isinstance(want, str) and want in actual) or (
                isinstance(actual, list) and any(_same(x, want) for x in actual))
            if not ok:
                return f"expected to contain {_short(want)}, got {_short(actual)}"
        elif key == "$pluck":
            if not isinstance(actual, list):
                return f"expected a list, got {_short(actual)}"
            plucked = [item.get(arg, MISSING) if isinstance(item, dict) else MISSING for item in actual]
            want = resolve(expected.get("$equals"))
            if not _same(plucked, want):
                first = next((i for i, (x, y) in enumerate(zip(plucked, want, strict=False))
                              if not _same(x, y)), min(len(plucked), len(want)))
                return (f"{arg} of {len(plucked)} items differs from the expected {len(want)} "
                        f"at index {first}")
        elif key == "$equals" and "$pluck" not in expected:
            problem = compare(actual, arg, resolve)
            if problem:
                return problem
    return None


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


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _repeat(value: Any) -> Any:
    """Expand ``{$repeat: n, $item: x}`` (``{i}`` in strings of x is the 0-based index)."""
    if isinstance(value, list):
        return [_repeat(v) for v in value]
    if isinstance(value, dict):
        if "$repeat" in value:
            item = value.get("$item", "{i}")
            return [_fill_index(item, i) for i in range(int(value["$repeat"]))]
        return {k: _repeat(v) for k, v in value.items()}
    return value


def _fill_index(item: Any, i: int) -> Any:
    if isinstance(item, str):
        return item.replace("{i}", str(i))
    if isinstance(item, list):
        return [_fill_index(v, i) for v in item]
    if isinstance(item, dict):
        return {k: _fill_index(v, i) for k, v in item.items()}
    return item


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

    def apply(self, mock: Mock, request: Request, response: Response,
              info: Mapping[str, Any]) -> Response:
        from .dispatch import Response, json_response

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
        path = Path(source)
        file = file or str(path)
        base_dir = path.parent
        default_name = path.stem
        doc = read_yaml(Path(file), "scenario", ScenarioError)
    if not isinstance(doc, dict):
        raise ScenarioError(file, "", "a scenario: a mapping with api, description, rules and story")
    validator = jsonschema.Draft202012Validator(scenario_schema())
    errors = list(validator.iter_errors(doc))
    if errors:
        err = jsonschema.exceptions.best_match(errors)
        assert err is not None
        where = "".join(f"/{_escape(str(p))}" for p in err.absolute_path)
        raise ScenarioError(file, where, err.message)
    return _Builder(doc, file, base_dir, default_name).build()


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
        start = lc.running if lc.running is not None else lc.queued
        if not lc.can_move(start, word):
            raise self.fail(key, f"an outcome reachable from {start!r} by the lifecycle's transitions, "
                                 f"got {word!r}")

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


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --------------------------------------------------------------------------- installing


class ActiveScenario:
    """A scenario installed in one mock: its hooks, its counters and what it changed.

    Kept as ``mock.scenario``; :meth:`reset` (called by ``Mock.reset``) restarts its counters,
    :meth:`uninstall` removes it and restores what it changed.
    """

    def __init__(self, mock: Mock, scenario: Scenario) -> None:
        self.mock = mock
        self.scenario = scenario
        self.name = scenario.name
        self.description = scenario.description
        n = len(scenario.rules)
        self._seen = [0] * n
        self._applied = [0] * n
        self._marked: dict[int, tuple[Request, list[Rule], list[Rule]]] = {}
        self._held = 0
        self._timers: list[Timer] = []
        self._saved: tuple[Any, ...] | None = None
        self.notes: list[str] = []

    def install(self) -> None:
        m, s = self.mock, self.scenario
        engine = m.engine
        self._saved = (m.spec, engine.spec, engine.advance, m.allow_private_callbacks, engine.seed)
        if s.has_limits:
            lim = m.spec.limits
            if s.queue_max is not None:
                lim = replace(lim, queue_max=s.queue_max, queue_error=s.queue_error)
            if s.concurrency_max is not None:
                lim = replace(lim, concurrency_max=s.concurrency_max)
            m.spec = engine.spec = replace(m.spec, limits=lim)
        if s.seed is not None:
            engine.seed = s.seed
        if s.advance is not None:
            engine.set_advance(s.advance)
        if s.allow_private_callbacks is not None:
            m.allow_private_callbacks = s.allow_private_callbacks
        m.submit_hooks.append(self._on_submit)
        m.response_hooks.append(self._on_response)
        engine.reset()
        m.journal.clear()
        if m.webhooks is not None:
            m.webhooks.reset()
        self.reset()
        kind = "virtual" if m.clock.speed == 0 else "real"
        if s.clock_given and (kind != s.clock or (kind == "real" and m.clock.speed != s.speed)):
            self.notes.append(f"the scenario asks for a {s.clock} clock"
                              + (f" x{s.speed:g}" if s.clock == "real" else "")
                              + f"; this mock keeps its {kind} clock")

    def uninstall(self) -> None:
        m = self.mock
        if self._on_submit in m.submit_hooks:
            m.submit_hooks.remove(self._on_submit)
        if self._on_response in m.response_hooks:
            m.response_hooks.remove(self._on_response)
        for timer in self._timers:
            timer.cancel()
        if self._saved is not None:
            m.spec, m.engine.spec, advance, m.allow_private_callbacks, m.engine.seed = self._saved
            m.engine.set_advance(advance)
            self._saved = None

    def reset(self) -> None:
        """Restart the rule counters (``nth``, ``times``) and forget held answers."""
        n = len(self.scenario.rules)
        self._seen = [0] * n
        self._applied = [0] * n
        self._marked.clear()
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self._held = 0

    def state(self) -> dict[str, Any]:
        """What ``GET /_jobmock/scenario`` adds: rule counters, held answers, the clock."""
        m = self.mock
        return {
            "api": m.spec.name, "file": self.scenario.file,
            "rules": [{"name": r.name, "matched": self._seen[r.index],
                       "applied": self._applied[r.index], "times": r.times}
                      for r in self.scenario.rules],
            "held": self._held, "requests": m.journal.total, "jobs": len(m.engine.store),
            "clock": {"epoch": m.clock.now(), "next_due_epoch": m.engine.next_due()},
            "notes": list(self.notes),
        }

    # -- hooks ------------------------------------------------------------------------------

    def _hit(self, rule: Rule, operation: str | None, request: Request, tenant: str | None,
             body: Callable[[], Any], status: int | None) -> tuple[bool, bool]:
        """(counted, applied) for one rule and one request."""
        if not rule.match.test(operation, request, tenant, body, status):
            return False, False
        i = rule.index
        self._seen[i] += 1
        if rule.match.nth is not None and self._seen[i] not in rule.match.nth:
            return True, False
        if rule.times is not None and self._applied[i] >= rule.times:
            return True, False
        self._applied[i] += 1
        return True, True

    def _on_submit(self, op: Operation, request: Request, tenant: str | None,
                   body: Any) -> JobPlan | None:
        seen: list[Rule] = []
        hits: list[Rule] = []
        for rule in self.scenario.rules:
            if rule.limit is None:
                continue
            counted, applied = self._hit(rule, op.operation_id, request, tenant, lambda: body, None)
            if applied:
                self._marked[id(request)] = (request, [], [rule])
                lim = rule.limit
                raise LimitExceeded(lim.message or f"refused by scenario rule {rule.name!r}",
                                    error_name=lim.error, context=dict(lim.context))
        fields: dict[str, Any] = {}
        for rule in self.scenario.rules:
            if rule.job is None or rule.limit is not None:
                continue
            counted, applied = self._hit(rule, op.operation_id, request, tenant, lambda: body, None)
            if counted:
                seen.append(rule)
            if applied:
                hits.append(rule)
                for key, value in rule.job.items():
                    fields.setdefault(key, value)
        if seen:
            self._marked[id(request)] = (request, seen, hits)
        return JobPlan(**fields) if fields else None

    def _on_response(self, request: Request, response: Response, info: dict[str, Any]) -> Response:
        faults: list[ResponseFault] = []
        entry = self._marked.pop(id(request), None)
        if entry is not None:
            _, seen, hits = entry
            if info.get("job_id") is None and seen:
                # The API refused the submit after all (its own limit): no job, not counted.
                for rule in seen:
                    self._seen[rule.index] -= 1
                for rule in hits:
                    self._applied[rule.index] -= 1
                hits = [r for r in hits if r.limit is not None]
            faults.extend(r.response for r in hits if r.response is not None)
        parsed: list[Any] = []

        def body() -> Any:
            if not parsed:
                try:
                    parsed.append(json.loads(request.body) if request.body else None)
                except ValueError:
                    parsed.append(None)
            return parsed[0]

        for rule in self.scenario.rules:
            if rule.at_submit or rule.response is None:
                continue
            _, applied = self._hit(rule, info.get("operation"), request, info.get("tenant"), body,
                                   response.status)
            if applied:
                faults.append(rule.response)
        if not faults:
            return response
        before = response.delay
        for fault in faults:
            response = fault.apply(self.mock, request, response, info)
        if response.delay > before:
            self._held += 1
            clock = self.mock.clock
            self._timers.append(self.mock.engine.call_at(clock.now() + response.delay, self._release))
        return response

    def _release(self) -> None:
        self._held = max(0, self._held - 1)
        self._timers = [t for t in self._timers if not t.done]


def install_scenario(mock: Mock, source: Any) -> ActiveScenario:
    """Install a scenario (a path, a parsed mapping or a :class:`Scenario`) in ``mock``.

    Replaces a scenario installed before, and starts from a clean state (jobs, journal and
    webhook deliveries are forgotten; the clock keeps its time).
    """
    scenario = load_scenario(source)
    if scenario.spec.name != mock.spec.name:
        raise ScenarioError(scenario.file, "/api", f"the API this mock serves ({mock.spec.name!r}), "
                                                  f"got {scenario.spec.name!r}")
    old = mock.scenario
    if isinstance(old, ActiveScenario):
        old.uninstall()
    active = ActiveScenario(mock, scenario)
    active.install()
    return active


def scenario_mock(source: Any, **options: Any) -> Mock:
    """A :class:`~jobmock.dispatch.Mock` of the scenario's API (virtual clock, the scenario's
    seed) with the scenario loaded. ``options`` go to ``Mock``."""
    from .clock import VirtualClock
    from .dispatch import Mock

    scenario = load_scenario(source)
    options.setdefault("clock", VirtualClock())
    options.setdefault("seed", scenario.seed or 0)
    mock = Mock(scenario.spec, **options)
    mock.load_scenario(scenario)
    return mock


# --------------------------------------------------------------------------- the catalog


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


# --------------------------------------------------------------------------- stories


class StoryFailure(AssertionError):
    """A story step did not go as the scenario says."""

    def __init__(self, file: str, index: int, step: Mapping[str, Any], message: str) -> None:
        self.file = file
        self.index = index
        self.step = step
        self.message = message
        kind = next(iter(step), "?")
        if index < 0:
            super().__init__(f"{file}: before the story: {message}")
        else:
            super().__init__(f"{file}: story step {index} ({kind} {_short(step.get(kind), 200)}): "
                             f"{message}")


@dataclass(slots=True)
class Exchange:
    """One request of a story and its answer."""

    name: str | None
    method: str
    path: str
    sent: Any
    tenant: str | None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    data: Any = MISSING
    malformed: bool = False
    dropped: bool = False
    error: str | None = None
    elapsed: float = 0.0
    job_id: str | None = None

    def summary(self) -> str:
        if self.dropped:
            return f"dropped ({self.error})"
        held = f", held {self.elapsed:g} s" if self.elapsed else ""
        bad = ", malformed body" if self.malformed else ""
        return f"{self.status}{held}{bad}"


def _parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class StoryRunner:
    """Runs a scenario's story over HTTP: a mock's API and its ``/_jobmock/`` control plane.

    ``client`` is an ``httpx.AsyncClient`` whose base URL (or transport) reaches the mock;
    the mock must have this scenario loaded and a virtual clock. ``receiver`` is the
    loopback webhook receiver ``{receiver.url}`` names.
    """

    def __init__(self, scenario: Scenario, client: httpx.AsyncClient, *,
                 receiver: WebhookReceiver | None = None, interval: float = 0.005,
                 settle_timeout: float = 30.0) -> None:
        self.scenario = scenario
        self.spec = scenario.spec
        self.client = client
        self.receiver = receiver
        self.interval = interval
        self.settle_timeout = settle_timeout
        self.ops = {o.operation_id: o for o in self.spec.operations}
        self.exchanges: dict[str, Exchange] = {}
        self.last: Exchange | None = None
        self.log: list[str] = []
        self.index = 0
        self.step: Mapping[str, Any] = {}
        self.default_tenant = next(iter(self.spec.auth.tenants))

    def fail(self, message: str) -> StoryFailure:
        return StoryFailure(self.scenario.file, self.index, self.step, message)

    async def run(self) -> list[str]:
        """Run every step in order; raise :class:`StoryFailure` at the first that fails."""
        import httpx

        for index, step in enumerate(self.scenario.story):
            self.index, self.step = index, step
            kind, args = next(iter(step.items()))
            try:
                line = await getattr(self, f"_{kind}")(args)
            except httpx.HTTPError as exc:
                raise self.fail(f"{type(exc).__name__}: {exc}") from exc
            self.log.append(f"{index:>2} {kind:<7} {line}")
        return self.log

    # -- interpolation ------------------------------------------------------------------------

    def _interp(self, value: Any) -> Any:
        if isinstance(value, str):
            return _REF.sub(self._ref, value)
        if isinstance(value, list):
            return [self._interp(v) for v in value]
        if isinstance(value, dict):
            if "$sent" in value or "$received" in value:
                return self._value_ref(value)
            return {k: self._interp(v) for k, v in value.items()}
        return value

    def _ref(self, m: re.Match[str]) -> str:
        token = m.group(1)
        if token == "receiver.url":
            if self.receiver is None:
                raise self.fail("{receiver.url}: no receiver is running")
            return self.receiver.url
        name = token.split(".")[0]
        ex = self.exchanges.get(name)
        if ex is None or ex.job_id is None:
            raise self.fail(f"{{{token}}}: step {name!r} has no job id (its answer was "
                            f"{ex.summary() if ex else 'never received'})")
        return ex.job_id

    def _value_ref(self, value: Mapping[str, Any]) -> Any:
        kind = "$sent" if "$sent" in value else "$received"
        name, _, pointer = str(value[kind]).partition("#")
        ex = self.exchanges.get(name)
        if ex is None:
            raise self.fail(f"{kind}: no answer named {name!r}")
        got = pointer_get(ex.sent if kind == "$sent" else ex.data, pointer)
        if got is MISSING:
            raise self.fail(f"{kind} {value[kind]!r}: nothing at {pointer!r}")
        return got

    # -- HTTP --------------------------------------------------------------------------------

    async def _control(self, method: str, path: str, body: Any = None) -> Any:
        r = await self.client.request(method, path, json=body)
        if r.status_code != 200:
            raise self.fail(f"control plane {method} {path} answered {r.status_code}: {r.text[:300]}")
        return r.json()

    async def _probe(self) -> dict[str, Any]:
        state: dict[str, Any] = await self._control("GET", "/_jobmock/scenario")
        if "held" not in state:
            raise self.fail(f"the mock has no scenario loaded ({state.get('loaded')!r})")
        return state

    async def _settle(self) -> None:
        """Wait until no webhook attempt is in flight (each answer schedules the next)."""
        if self.spec.webhooks is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settle_timeout
        while True:
            data = await self._control("GET", "/_jobmock/webhooks")
            if not any(d["state"] == "sending" for d in data["deliveries"]):
                return
            if loop.time() > deadline:
                raise self.fail(f"webhook attempts still in flight after {self.settle_timeout} s")
            await asyncio.sleep(self.interval)

    async def _step_clock(self, state: Mapping[str, Any], limit: float | None = None) -> bool:
        """Move the clock to the next due entry (not past ``limit``); False if none is due."""
        now = state["clock"]["epoch"]
        nxt = state["clock"]["next_due_epoch"]
        if nxt is None or (limit is not None and nxt > limit):
            return False
        await self._control("POST", "/_jobmock/clock/advance", {"seconds": max(0.0, nxt - now)})
        await self._settle()
        return True

    def _auth(self, args: Mapping[str, Any], secured: bool, default: str | None,
              ) -> tuple[dict[str, str], dict[str, str], str | None]:
        auth = self.spec.auth
        if args.get("auth") is False:
            return {}, {}, None
        if "credential" in args:
            credential = str(self._interp(args["credential"]))
            return dict(auth.headers_for(credential)), dict(auth.query_for(credential)), None
        tenant = args.get("tenant") or (default if secured else None)
        if tenant is None:
            return {}, {}, None
        credential = auth.tenants[tenant][0]
        return dict(auth.headers_for(credential)), dict(auth.query_for(credential)), tenant

    async def _exchange(self, name: str | None, method: str, path: str, headers: dict[str, str],
                        query: dict[str, str], body: Any, tenant: str | None) -> Exchange:
        import httpx

        ex = Exchange(name, method, path, body, tenant)
        content = None
        if body is not MISSING:
            content = json.dumps(body, ensure_ascii=False).encode()
            headers.setdefault("Content-Type", "application/json")
        base = await self._probe()
        started = base["clock"]["epoch"]
        task = asyncio.ensure_future(self.client.request(method, path, headers=headers,
                                                         params=query or None, content=content))
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.interval)
                if done:
                    break
                state = await self._probe()
                suspended = state["jobs"] > base["jobs"] and state["requests"] == base["requests"]
                delayed = state["held"] > base["held"]
                if (suspended or delayed) and not await self._step_clock(state):
                    raise self.fail("the request is held but nothing is due on the clock")
            response = task.result()
        except httpx.TransportError as exc:
            ex.dropped, ex.error = True, f"{type(exc).__name__}: {exc}"
        else:
            ex.status = response.status_code
            ex.headers = {k.lower(): v for k, v in response.headers.items()}
            ex.body = response.content
            if ex.body:
                try:
                    ex.data = json.loads(ex.body)
                except ValueError:
                    ex.malformed = True
            else:
                ex.data = None
        finally:
            if not task.done():
                task.cancel()
        after = await self._probe()
        ex.elapsed = round(after["clock"]["epoch"] - started, 6)
        if name is not None:
            self.exchanges[name] = ex
        self.last = ex
        return ex

    def _job_id(self, op: Operation, ex: Exchange) -> str | None:
        if ex.status is None or not 200 <= ex.status < 300:
            return None
        for source in op.job_id_from:
            kind, _, where = source.partition(":")
            value: Any = ex.headers.get(where.lower()) if kind == "header" else (
                pointer_get(ex.data, where) if kind == "body" else MISSING)
            if isinstance(value, str) and value:
                return value
        return None

    # -- steps ---------------------------------------------------------------------------------

    async def _submit(self, args: Mapping[str, Any]) -> str:
        op = self.ops[args["operation"]]
        params = {k: str(self._interp(_text(v))) for k, v in (args.get("params") or {}).items()}
        path = _fill_path(op.path, params)
        if "body" in args:
            body = MISSING if args["body"] is None else self._interp(_repeat(args["body"]))
        elif op.body_schema is not None and op.body_example is not None:
            body = copy.deepcopy(op.body_example)
            hooks = self.spec.webhooks
            if hooks is not None:  # never call the example's callback host
                _pointer_pop(body, hooks.url_pointer)
        else:
            body = MISSING
        headers, query, tenant = self._auth(args, op.secured, self.default_tenant)
        headers.update({k: str(self._interp(_text(v))) for k, v in (args.get("headers") or {}).items()})
        query.update({k: str(self._interp(_text(v))) for k, v in (args.get("query") or {}).items()})
        ex = await self._exchange(args.get("as"), op.method, path, headers, query, body, tenant)
        ex.job_id = self._job_id(op, ex)
        job = f", job {ex.job_id}" if ex.job_id else ""
        return f"{op.operation_id}: {op.method} {path} -> {ex.summary()}{job}"

    async def _request(self, args: Mapping[str, Any]) -> str:
        method = str(args["method"]).upper()
        path = str(self._interp(args["path"]))
        body = self._interp(_repeat(args["body"])) if args.get("body") is not None else MISSING
        op, _, _ = self._route(method, path)
        headers, query, tenant = self._auth(args, op.secured if op else True, self.default_tenant)
        headers.update({k: str(self._interp(_text(v))) for k, v in (args.get("headers") or {}).items()})
        query.update({k: str(self._interp(_text(v))) for k, v in (args.get("query") or {}).items()})
        ex = await self._exchange(args.get("as"), method, path, headers, query, body, tenant)
        return f"{method} {path} -> {ex.summary()}"

    def _route(self, method: str, path: str) -> tuple[Operation | None, dict[str, str], bool]:
        for op in self.spec.operations:
            names = re.findall(r"\{([^}]+)\}", op.path)
            regex = "^" + re.sub(r"\\\{[^}]+\\\}", "([^/]+)", re.escape(op.path)) + "$"
            m = re.match(regex, path)
            if m and op.method == method:
                return op, dict(zip(names, m.groups(), strict=True)), True
        return None, {}, False

    async def _poll(self, args: Mapping[str, Any]) -> str:
        ref = self.exchanges[args["job"]]
        if ref.job_id is None:
            raise self.fail(f"step {args['job']!r} created no job (its answer: {ref.summary()})")
        op = self.spec.status_operation
        params: dict[str, str] = {op.job_id_param or "id": ref.job_id}
        if op.match:
            info = await self._control("GET", f"/_jobmock/jobs/{ref.job_id}")
            for name, template in op.match.items():
                params[name] = str(template({"job": info}))
        params.update({k: str(self._interp(_text(v))) for k, v in (args.get("params") or {}).items()})
        path = _fill_path(op.path, params)
        headers, query, tenant = self._auth(args, op.secured, ref.tenant or self.default_tenant)
        headers.update({k: str(self._interp(_text(v))) for k, v in (args.get("headers") or {}).items()})
        query.update({k: str(self._interp(_text(v))) for k, v in (args.get("query") or {}).items()})
        ex = await self._exchange(args.get("as"), op.method, path, headers, query, MISSING, tenant)
        ex.job_id = ref.job_id
        status = pointer_get(ex.data, self.spec.lifecycle.status_pointer)
        word = f" ({status})" if isinstance(status, str) else ""
        return f"{args['job']}: {op.method} {path} -> {ex.summary()}{word}"

    async def _advance(self, seconds: float) -> str:
        state = await self._probe()
        start = state["clock"]["epoch"]
        target = start + float(seconds)
        if self.spec.webhooks is not None:
            while await self._step_clock(state, target):
                state = await self._probe()
        now = state["clock"]["epoch"]
        if target > now:
            await self._control("POST", "/_jobmock/clock/advance", {"seconds": target - now})
            await self._settle()
        return f"{seconds:g} s"

    async def _force(self, args: Mapping[str, Any]) -> str:
        ref = self.exchanges[args["job"]]
        if ref.job_id is None:
            raise self.fail(f"step {args['job']!r} created no job")
        body = {k: args[k] for k in ("status", "error", "result", "when") if k in args}
        await self._control("POST", f"/_jobmock/jobs/{ref.job_id}/outcome", body)
        await self._settle()
        return f"{args['job']} -> {args['status']}"

    async def _note(self, text: str) -> str:
        return text

    async def _expect(self, args: Mapping[str, Any]) -> str:
        problems: list[str] = []
        checked: list[str] = []
        ex = self.exchanges[args["of"]] if "of" in args else self.last
        response_keys = ("status", "json", "headers", "dropped", "malformed", "elapsed")
        if any(k in args for k in response_keys):
            assert ex is not None
            self._check_answer(ex, args, problems, checked)
        if "job" in args:
            await self._check_job(args["job"], problems, checked)
        if "webhooks" in args:
            await self._check_webhooks(args["webhooks"], problems, checked)
        if problems:
            context = ""
            if ex is not None and any(k in args for k in response_keys):
                context = f" [answer: {ex.summary()} {ex.body[:300]!r}]"
            raise self.fail("; ".join(problems) + context)
        return ", ".join(checked)

    def _check_answer(self, ex: Exchange, args: Mapping[str, Any], problems: list[str],
                      checked: list[str]) -> None:
        if "dropped" in args:
            checked.append("dropped" if args["dropped"] else "answered")
            if ex.dropped != args["dropped"]:
                problems.append(f"expected the connection {'dropped' if args['dropped'] else 'answered'}, "
                                f"got {ex.summary()}")
        if "status" in args:
            checked.append(f"status {args['status']}")
            if ex.status != args["status"]:
                problems.append(f"status: expected {args['status']}, got {ex.summary()}")
        if "malformed" in args:
            checked.append("malformed body" if args["malformed"] else "JSON body")
            if ex.malformed != args["malformed"]:
                problems.append(f"malformed: expected {args['malformed']}, got body {ex.body[:80]!r}")
        if "elapsed" in args:
            checked.append(f"held {args['elapsed']:g} s")
            if abs(ex.elapsed - float(args["elapsed"])) > 1e-6:
                problems.append(f"elapsed: expected {args['elapsed']:g} s, the request was held "
                                f"{ex.elapsed:g} s")
        for name, want in (args.get("headers") or {}).items():
            got = ex.headers.get(name.lower())
            if want is True or want is False:
                checked.append(f"{name} {'present' if want else 'absent'}")
                if (got is not None) != want:
                    problems.append(f"header {name}: expected {'present' if want else 'absent'}, "
                                    f"got {got!r}")
            else:
                value = str(self._interp(_text(want)))
                checked.append(f"{name}: {value}")
                if got != value:
                    problems.append(f"header {name}: expected {value!r}, got {got!r}")
        for pointer, want in (args.get("json") or {}).items():
            checked.append(pointer)
            problem = compare(pointer_get(ex.data, pointer), want, self._interp)
            if problem:
                problems.append(f"{pointer}: {problem}")

    async def _check_job(self, spec: Mapping[str, Any], problems: list[str], checked: list[str]) -> None:
        ref = self.exchanges[spec["job"]]
        if ref.job_id is None:
            problems.append(f"step {spec['job']!r} created no job")
            return
        info = await self._control("GET", f"/_jobmock/jobs/{ref.job_id}")
        if "status" in spec:
            checked.append(f"job {spec['job']} {spec['status']}")
            if info.get("status") != spec["status"]:
                problems.append(f"job {spec['job']}: expected status {spec['status']}, "
                                f"got {info.get('status')}")
        for pointer, want in (spec.get("json") or {}).items():
            checked.append(f"job {spec['job']} {pointer}")
            problem = compare(pointer_get(info, pointer), want, self._interp)
            if problem:
                problems.append(f"job {spec['job']} {pointer}: {problem}")

    async def _check_webhooks(self, w: Mapping[str, Any], problems: list[str],
                              checked: list[str]) -> None:
        path = "/_jobmock/webhooks"
        if "job" in w:
            ref = self.exchanges[w["job"]]
            if ref.job_id is None:
                problems.append(f"step {w['job']!r} created no job")
                return
            path += f"?job_id={ref.job_id}"
        deliveries = (await self._control("GET", path))["deliveries"]
        if "event" in w:
            deliveries = [d for d in deliveries if d["event"] == w["event"]]
        what = f"webhooks{' of ' + w['job'] if 'job' in w else ''}{' ' + w['event'] if 'event' in w else ''}"
        if "count" in w:
            checked.append(f"{w['count']} {what}")
            if len(deliveries) != w["count"]:
                problems.append(f"{what}: expected {w['count']} deliveries, got {len(deliveries)}")
        if "events" in w:
            got_events = [d["event"] for d in deliveries]
            checked.append(f"{what} events")
            if got_events != list(w["events"]):
                problems.append(f"{what}: expected events {w['events']}, got {got_events}")
        per = [k for k in ("attempts", "state", "statuses", "intervals") if k in w]
        if per and not deliveries:
            problems.append(f"{what}: expected deliveries to check {per}, got none")
        for d in deliveries:
            attempts = d["attempts"]
            if "attempts" in w and len(attempts) != w["attempts"]:
                problems.append(f"delivery {d['id']}: expected {w['attempts']} attempts, got {len(attempts)}")
            if "state" in w and d["state"] != w["state"]:
                problems.append(f"delivery {d['id']}: expected state {w['state']}, got {d['state']}")
            if "statuses" in w:
                got = [a["status"] for a in attempts]
                if got != list(w["statuses"]):
                    problems.append(f"delivery {d['id']}: expected attempt statuses {w['statuses']}, "
                                    f"got {got} (errors: {[a['error'] for a in attempts]})")
            if "intervals" in w:
                times = [_parse_time(a["sent_at"]) for a in attempts if a["sent_at"]]
                got_iv = [round(b - a, 3) for a, b in itertools.pairwise(times)]
                want_iv = [float(x) for x in w["intervals"]]
                if len(got_iv) != len(want_iv) or any(abs(a - b) > 1e-3
                                                      for a, b in zip(got_iv, want_iv, strict=False)):
                    problems.append(f"delivery {d['id']}: expected intervals {want_iv}, got {got_iv}")
        if per:
            checked.append(f"{what}: " + " ".join(f"{k}={w[k]}" for k in per))
        if "received" in w:
            assert self.receiver is not None
            checked.append(f"receiver got {w['received']}")
            if len(self.receiver.received) != w["received"]:
                problems.append(f"receiver: expected {w['received']} requests, "
                                f"got {len(self.receiver.received)}")
        if "signed" in w:
            assert self.receiver is not None and self.spec.webhooks is not None
            sig = self.spec.webhooks.signature
            assert sig is not None
            checked.append("signatures" if w["signed"] else "no signatures")
            bad = [r.header(sig.header) for r in self.receiver.received
                   if r.verify(sig.secret, sig.header, sig.format) != w["signed"]]
            if bad or (w["signed"] and not self.receiver.received):
                problems.append(f"receiver: expected every request {'signed' if w['signed'] else 'unsigned'} "
                                f"with {sig.header}, {len(bad)} of {len(self.receiver.received)} not")


def _pointer_pop(doc: Any, pointer: str) -> None:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.lstrip("/").split("/")]
    parent = pointer_get(doc, "".join(f"/{_escape(p)}" for p in parts[:-1]))
    if isinstance(parent, dict):
        parent.pop(parts[-1], None)
        if not parent and len(parts) > 1:
            _pointer_pop(doc, "".join(f"/{_escape(p)}" for p in parts[:-1]))


def _fill_path(template: str, params: Mapping[str, str]) -> str:
    from urllib.parse import quote

    def sub(m: re.Match[str]) -> str:
        return quote(params.get(m.group(1), m.group(0)), safe="")

    return re.sub(r"\{([^}]+)\}", sub, template)


class _DropAware:
    """An ASGI wrapper for in-process stories: an answer the app never finishes (a dropped
    connection) becomes the transport error a socket client sees."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        import httpx

        finished = False

        async def watch(message: MutableMapping[str, Any]) -> None:
            nonlocal finished
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                finished = True
            await send(message)

        await self.app(scope, receive, watch)
        if scope["type"] == "http" and not finished:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")


def _start_receiver(scenario: Scenario) -> WebhookReceiver | None:
    if scenario.receiver is None:
        return None
    from .receiver import WebhookReceiver

    receiver = WebhookReceiver().start()
    scenario.receiver.configure(receiver)
    return receiver


async def run_story_async(source: Any, *, base_url: str | None = None, load: bool = False,
                          timeout: float = 30.0) -> list[str]:
    """Run a scenario's story; return its log. Raises :class:`StoryFailure` on a failed step.

    Without ``base_url``: in-process, on a fresh mock (virtual clock) served by the ASGI app.
    With ``base_url``: against a live ``jobmock serve API --clock virtual --scenario FILE``
    (``load=True`` posts the scenario to ``/_jobmock/scenario`` first, which also resets it).
    """
    import httpx

    from .asgi import create_app

    scenario = load_scenario(source)
    if not scenario.story:
        return []
    receiver = _start_receiver(scenario)
    try:
        if base_url is None:
            mock = scenario_mock(scenario)
            app = create_app(mock)
            transport = httpx.ASGITransport(app=_DropAware(app))
            async with httpx.AsyncClient(transport=transport, base_url="http://mock.test",
                                         timeout=timeout) as client:
                try:
                    return await StoryRunner(scenario, client, receiver=receiver).run()
                finally:
                    await app.aclose()
        async with httpx.AsyncClient(base_url=base_url, timeout=timeout) as client:
            runner = StoryRunner(scenario, client, receiver=receiver, interval=0.02)
            clock = await runner._control("GET", "/_jobmock/clock")
            if clock["kind"] != "virtual":
                raise StoryFailure(scenario.file, -1, {}, "a story needs a virtual clock: "
                                   "start jobmock serve with --clock virtual")
            if load:
                await runner._control("POST", "/_jobmock/scenario",
                                      {"name": scenario.name, **scenario.document})
            loaded = (await runner._control("GET", "/_jobmock/scenario")).get("loaded")
            if loaded != scenario.name:
                raise StoryFailure(scenario.file, -1, {}, f"the server has scenario {loaded!r} "
                                   f"loaded, not {scenario.name!r} (start it with --scenario, or load=True)")
            return await runner.run()
    finally:
        if receiver is not None:
            receiver.stop()


def run_story(source: Any, *, base_url: str | None = None, load: bool = False) -> list[str]:
    """:func:`run_story_async`, for synchronous callers (it runs its own event loop)."""
    return asyncio.run(run_story_async(source, base_url=base_url, load=load))
