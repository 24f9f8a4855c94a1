"""The contract suite's shared records: what it knows of a job, what one run shares, and
what it just saw. The state machine (:mod:`jobmock.contract.machine`) and the checks
(:mod:`jobmock.contract.checks`) both import them; neither imports the other's records.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .. import idsource
from ..spec import ApiSpec, Operation
from ..templates import PLACEHOLDER, render_string
from .budget import RunBudget, ShrinkGuard
from .client import ContractClient, Exchange, Tenant
from .specview import SpecView, pointer_get
from .verdicts import VERDICTS

T = TypeVar("T")

__all__ = ["JobRecord", "Mode", "Observation", "SuiteContext", "TimeKeeper"]


@dataclass(slots=True)
class JobRecord:
    """What the suite knows of one job it submitted."""

    id: str
    op: Operation
    tenant: Tenant
    params: dict[str, Any]
    body: Any
    job_type: str
    callback: bool = False
    idempotency_key: str | None = None
    statuses: list[str] = field(default_factory=list)
    terminal: Any = None
    last_body: Any = None
    result_text: str | None = None
    seen: dict[str, Any] = field(default_factory=dict)
    #: The event names the suite put in the request's event filter (the spec's
    #: ``filter_from``), or None when it set none.
    event_filter: list[str] | None = None


def has_virtual_clock(client: ContractClient) -> bool:
    """Whether the server exposes jobmock's control plane with a virtual clock."""
    try:
        ex = client.send("GET", "/_jobmock/clock", note="is there a jobmock virtual clock?")
    except Exception:  # no answer at all: the run's first real request will say so
        return False
    data = ex.json() if ex.status == 200 else None
    return isinstance(data, dict) and data.get("kind") == "virtual"


class TimeKeeper:
    """Lets time pass: the jobmock control plane's virtual clock, or real sleeps in a budget."""

    def __init__(self, client: ContractClient, *, budget: float | RunBudget = 300.0,
                 started: float | None = None, virtual: bool | None = None) -> None:
        self.client = client
        if isinstance(budget, RunBudget):
            self.budget = budget
        else:
            self.budget = RunBudget(budget) if started is None else RunBudget(budget, started)
        self.virtual = has_virtual_clock(client) if virtual is None else virtual

    @property
    def started(self) -> float:
        return self.budget.started

    @property
    def left(self) -> float:
        return self.budget.left

    def advance(self, seconds: float) -> None:
        if self.virtual:
            self.client.send("POST", "/_jobmock/clock/advance", body={"seconds": seconds},
                             note="move the virtual clock")
        else:
            time.sleep(max(0.0, min(seconds, self.left)))

    def hold(self, send: Callable[[], T], wait: float) -> T:
        """Send a request the server may hold for ``wait`` seconds, moving a virtual clock meanwhile."""
        if not self.virtual or wait <= 0:
            return send()
        box: dict[str, Any] = {}

        def worker() -> None:
            try:
                box["ex"] = send()
            except BaseException as exc:  # re-raised in the caller's thread
                box["err"] = exc

        thread = threading.Thread(target=worker, daemon=True)
        thread.start()
        moved = 0.0
        step = max(1.0, wait / 8)
        thread.join(0.005)
        # The request may reach the server after some of these advances, so keep moving the
        # clock (bounded) until the answer comes back.
        while thread.is_alive() and moved <= 3 * wait + 60:
            self.advance(step)
            moved += step
            thread.join(0.01 if moved <= wait + step else 0.05)
        # The request itself times out (the client's timeout plus its wait), so this ends.
        thread.join(self.client.timeout + wait + 5)
        if "err" in box:
            raise box["err"]
        if "ex" not in box:
            raise TimeoutError("a held request did not come back after its wait")
        ex: T = box["ex"]
        return ex


@dataclass(slots=True)
class Mode:
    label: str
    headers: dict[str, str]
    query: dict[str, str]
    wait: float
    prefer_wait: int | None = None


class SuiteContext:
    """Everything one run of the suite shares: spec, client, tenants, time, receiver."""

    def __init__(self, spec: ApiSpec, client: ContractClient, tenants: list[Tenant], *,
                 timekeeper: TimeKeeper, receiver: Any = None, receiver_url: str | None = None,
                 webhook_secret: str | None = None, guard: ShrinkGuard | None = None,
                 view: SpecView | None = None) -> None:
        self.spec = spec
        self.view = view if view is not None else SpecView(spec)
        #: Bounds shrinking; run_checks tells it when a violation was seen.
        self.guard = guard
        self.client = client
        self.tenants = tenants
        self.time = timekeeper
        self.receiver = receiver
        self.receiver_url = receiver_url
        self.webhook_secret = webhook_secret
        self.jobs_by_id: dict[str, JobRecord] = {}
        self.unfinished: list[str] = []
        self._terminal_pointers = [*spec.lifecycle.status_pointers,
                                   *self.view.status_pointers("job.result"),
                                   *self.view.status_pointers("job.error")]

    def terminal_snapshot(self, body: Any) -> dict[str, Any]:
        """The parts of a status body that must never change once the job has ended."""
        return {p: pointer_get(body, p)[1] for p in self._terminal_pointers}

    # -- modes ----------------------------------------------------------------------------

    def modes(self, op: Operation) -> list[Mode]:
        w = op.wait
        virtual = self.time.virtual
        out = []
        if w.prefer_header:
            out.append(Mode("poll", {"Prefer": "wait=0"}, {}, 0.0, 0))
            for n in ((1, 5, 120) if virtual else (1, 2)):
                out.append(Mode(f"inline wait={n}", {"Prefer": f"wait={n}"}, {},
                                min(float(n), w.max), n))
            out.append(Mode("unknown preference", {"Prefer": "handling=lenient, wait=0"}, {}, 0.0, 0))
            if virtual:
                out.append(Mode("default wait", {}, {}, w.default))
        skipped = []
        for param, value, wait in w.query:
            if virtual or wait <= 2:
                out.append(Mode(f"?{param}={value}", {}, {param: value}, min(wait, w.max or wait)))
            else:
                skipped.append(f"?{param}={value}")
        if not w.prefer_header and (virtual or w.default <= 2):
            out.append(Mode("default", {}, {}, w.default))
        elif not w.prefer_header:
            skipped.append("the default")
        if skipped and not any(m.wait > 0 for m in out):
            VERDICTS.not_run(self.spec.name, "inline_wait",
                             f"against a real-time server the suite holds a request 2 s at most; "
                             f"{op.operation_id}'s inline waits ({', '.join(skipped)}: up to "
                             f"{w.max:g} s) are longer (a jobmock virtual clock judges them)")
        return out or [Mode("default", {}, {}, w.default)]

    # -- helpers ---------------------------------------------------------------------------

    def job_id_of(self, op: Operation, ex: Exchange) -> str | None:
        body = ex.json() if any(s.startswith("body:") for s in op.job_id_from) else None
        return idsource.read(op.job_id_from, ex.header, body)

    def job_type(self, op: Operation, params: dict[str, Any], body: Any) -> str:
        if op.job_type is None:
            return op.operation_id
        ctx = {"request": {"params": params, "body": body, "query": {}}}
        return str(op.job_type(ctx))

    def status_params(self, job: JobRecord) -> dict[str, Any]:
        op = self.spec.status_operation
        params: dict[str, Any] = {op.job_id_param or "id": job.id}
        ctx = {"job": {"id": job.id, "params": job.params, "type": job.job_type,
                       "request": job.body}}
        for name, tpl in op.match.items():
            value = tpl(ctx)
            if value not in (None, ""):
                params[name] = value
        for p in op.parameters:
            if p.location == "path" and p.name not in params:
                enum = (self.view.resolve(p.schema) or {}).get("enum")
                params[p.name] = enum[0] if enum else "contract"
        return params

    def poll(self, job: JobRecord, tenant: Tenant | None = None, note: str = "poll") -> Exchange:
        return self.client.call(self.spec.status_operation, tenant=tenant or job.tenant,
                                params=self.status_params(job), note=note)

    def record_poll(self, job: JobRecord, ex: Exchange) -> str:
        """Note what a poll of ``job`` showed (after the checks judged it); its status word."""
        body = ex.json()
        word = str(self.spec.lifecycle.status_of(body))
        record = VERDICTS.api(self.spec.name)
        if word in self.spec.lifecycle.states:
            record.states.add(word)
            if job.statuses and job.statuses[-1] != word:
                record.transitions.add((job.statuses[-1], word))
        job.statuses.append(word)
        job.last_body = body
        if self.view.is_terminal(word) and job.terminal is None:
            job.terminal = self.terminal_snapshot(body)
            for p in self.view.status_pointers("job.result"):
                found, value = pointer_get(body, p)
                if found and value not in (None, [], {}):
                    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
                    job.result_text = text if len(text) > 12 else None
        return word

    def expected_webhook_headers(self, job: JobRecord) -> dict[str, str]:
        hooks = self.spec.webhooks
        out: dict[str, str] = {}
        if hooks is None:
            return out
        raw = (self.view.ext.get("webhooks") or {}).get("headers") or {}
        word = job.statuses[-1] if job.statuses else None
        ctx: dict[str, Any] = {"job": {"id": job.id, "type": job.job_type, "status": word}}
        if isinstance(word, str) and word in self.spec.lifecycle.states:
            ctx["event"] = ending_event_name(self.spec, word)
        for name, tpl in raw.items():
            used = {m.group(1) for m in PLACEHOLDER.finditer(tpl)}
            if not used <= {f"job.{k}" for k in ctx["job"]} | ({"event"} & set(ctx)):
                continue  # it reads what the suite cannot know (a time, a signature): not judged
            out[name] = str(render_string(tpl)(ctx))
        return out


@dataclass(slots=True)
class Observation:
    """What the suite just saw: ``kind`` says which checks apply."""

    kind: str
    exchange: Exchange
    job: JobRecord | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def ending_event_name(spec: ApiSpec, word: str) -> str | None:
    """The name of the webhook event a job that ended ``word`` sends (``{event}`` in the
    spec's templates), as the spec's ``events`` and ``event_names`` say: the first of the
    word, its role and ``terminal`` that ``events`` lists, named by ``event_names`` (by that
    kind, else the word, else the role), else the kind itself. None if no event fits."""
    hooks = spec.webhooks
    if hooks is None:
        return None
    role = spec.lifecycle.states[word]
    kind = next((k for k in (word, role, "terminal") if k in hooks.events), None)
    if kind is None:
        return None
    return next((hooks.event_names[k] for k in (kind, word, role) if k in hooks.event_names),
                kind)
