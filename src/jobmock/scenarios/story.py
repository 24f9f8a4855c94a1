"""Stories: a scenario's steps run over HTTP (``httpx``) against a mock that has the
scenario loaded, through its API and its ``/_jobmock/`` control plane.

The caller starts the mock, the client and the webhook receiver;
:func:`jobmock.testing.run_story` does that for tests (in-process or a live server).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .. import idsource
from ..spec import Operation
from ._common import _REF, MISSING, _escape, _repeat, _short, _text, compare, pointer_get
from .format import Scenario, load_scenario

if TYPE_CHECKING:
    import httpx

    from ..receiver import WebhookReceiver

__all__ = ["Exchange", "StoryFailure", "StoryRunner", "run_story", "run_story_async"]


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
        # A 2xx, or an answer the spec gives a job (croma: a job that failed within the wait).
        if ex.status is None or not (200 <= ex.status < 300
                                     or ex.status in {r.status for r in op.responses.values()}):
            return None
        data = None if ex.data is MISSING else ex.data
        return idsource.read(op.job_id_from, lambda name: ex.headers.get(name.lower()), data)

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
        status = self.spec.lifecycle.status_of(None if ex.data is MISSING else ex.data)
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


async def run_story_async(source: Any, client: httpx.AsyncClient, *,
                          receiver: WebhookReceiver | None = None, live: bool = False,
                          load: bool = False) -> list[str]:
    """Run a scenario's story through ``client``; return its log. Raises :class:`StoryFailure`
    on a failed step.

    ``client`` (an ``httpx.AsyncClient``) reaches a mock of the scenario's API on a virtual
    clock; ``receiver`` is the started loopback webhook receiver ``{receiver.url}`` names
    (set up by the scenario's :class:`~jobmock.scenarios.format.ReceiverPlan`).
    Without ``live``: the mock has this scenario loaded (in-process: the ASGI app of
    :func:`~jobmock.scenarios.scenario_mock`). With ``live``: a ``jobmock serve API --clock
    virtual --scenario FILE`` started elsewhere; its clock and its loaded scenario are checked
    first (``load=True`` posts the scenario to ``/_jobmock/scenario`` first, which also
    resets it). :func:`jobmock.testing.run_story_async` starts the mock, the client and the
    receiver for you.
    """
    scenario = load_scenario(source)
    if not scenario.story:
        return []
    if not live:
        return await StoryRunner(scenario, client, receiver=receiver).run()
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


def run_story(source: Any, client: httpx.AsyncClient, *, receiver: WebhookReceiver | None = None,
              live: bool = False, load: bool = False) -> list[str]:
    """:func:`run_story_async`, for synchronous callers. It runs its own event loop, so
    ``client`` must not have been used in another one, and closes ``client`` when done (its
    connections cannot outlive that loop)."""

    async def run() -> list[str]:
        async with client:
            return await run_story_async(source, client, receiver=receiver, live=live, load=load)

    return asyncio.run(run())
