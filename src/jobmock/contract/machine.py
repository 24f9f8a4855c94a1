"""One generic Hypothesis state machine, built from a spec, that judges a server over HTTP.

:func:`build_machine` returns a ``RuleBasedStateMachine`` subclass for one spec and one
:class:`SuiteContext` factory. Its rules submit jobs (each mode the spec offers: inline
wait, poll, query switches, callback), poll them, probe auth, unknown ids, invalid bodies,
the gate and idempotency, and let time pass; every answer goes through the registered
checks (:mod:`jobmock.contract.checks`). Jobs live in a ``Bundle``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    multiple,
    precondition,
    rule,
)

from ..pointers import with_value, without
from ..spec import ApiSpec, Operation
from . import probe_checks  # noqa: F401 - registers the probes' checks (credits on polls)
from .budget import REPLAY_SETTLE, ShrinkGuard, is_final_replay
from .checks import every_event_name, observe_poll, run_checks, terminal_event_names
from .client import Exchange, Tenant
from .context import JobRecord, Observation, SuiteContext, TimeKeeper
from .roles import ResultRules, RoleRules
from .specview import pointer_get
from .verdicts import VERDICTS

__all__ = ["JobRecord", "SuiteContext", "TimeKeeper", "build_machine"]


def _case_strategy(op: Operation, schema: Any) -> st.SearchStrategy[tuple[dict[str, Any], Any]]:
    """Valid path parameters and bodies for ``op``, from schemathesis's generator."""
    api_op = schema.find_operation_by_id(op.operation_id)

    def unpack(case: Any) -> tuple[dict[str, Any], Any]:
        # schemathesis hands path parameters over percent-encoded; the client encodes them.
        decoded = {k: unquote(str(v)) for k, v in (case.path_parameters or {}).items()}
        params = {k: ("x" if v in (".", "..", "") else v) for k, v in decoded.items()}
        body = case.body if op.body_schema is not None else None
        if body is not None and type(body).__name__ == "NotSet":
            body = None
        return params, body

    strategy: st.SearchStrategy[tuple[dict[str, Any], Any]] = api_op.as_strategy().map(unpack)
    return strategy


def without_callback(spec: ApiSpec, view: Any, op: Operation, body: Any) -> Any:
    """``body`` without its callback URL; if that leaves an object its schema refuses (cloro's
    ``webhook: {}`` requires ``url``), without the object that held it."""
    hooks = spec.callbacks
    if hooks is None:
        return body
    out = without(body, hooks.url_pointer)
    parent = hooks.url_pointer.rsplit("/", 1)[0]
    if parent and op.body_schema is not None and pointer_get(out, parent)[0]:
        from ..validation import schema_validator

        if not schema_validator(view.lenient, op.body_schema).is_valid(out):
            out = without(out, parent)
    return out


def ending_events(spec: ApiSpec) -> list[str]:
    """The names of the webhook events a finished job sends (``events`` entries that are
    ``terminal``, a terminal role or a terminal word, as ``event_names`` spells them)."""
    hooks = spec.webhooks
    assert hooks is not None
    lc = spec.lifecycle
    ending = {"terminal", *(lc.states[w] for w in lc.terminal_words), *lc.terminal_words}
    return sorted({hooks.event_names.get(ev, ev) for ev in hooks.events if ev in ending})


def round_trip(ctx: SuiteContext) -> float:
    """The median time of the suite's recent polls: the network's own round trip."""
    times = sorted(e.elapsed for e in ctx.client.exchanges[-40:]
                   if e.method == "GET" and e.status and not e.url.count("/_jobmock/"))
    return times[len(times) // 2] if times else 0.05


def build_machine(spec: ApiSpec, make_context: Callable[[], SuiteContext],
                  guard: ShrinkGuard | None = None) -> type[RuleBasedStateMachine]:
    """The state machine class for ``spec``; each run gets a fresh :class:`SuiteContext`.

    ``guard`` bounds the run: an example about to start after the run's budget ended, or
    while shrinking past its bounds, ends the run (:class:`StopRun`); rules started before
    the budget ended do nothing more once it has (except in the final replay)."""
    import schemathesis

    st_schema = schemathesis.openapi.from_dict(json.loads(json.dumps(spec.document)))
    submit_ops = list(spec.submit_operations)
    cases = {op.operation_id: _case_strategy(op, st_schema) for op in submit_ops}
    hooks = spec.webhooks
    status_op = spec.status_operation
    #: Ids of runs the gate probe saw in flight; once one was, later runs don't wait for it.
    gate_reached: list[str] = []

    id_schema = next((ctx_schema for p in status_op.parameters
                      if p.name == status_op.job_id_param
                      for ctx_schema in [p.schema]), {})

    def unknown_id() -> str:
        """An id that names no job and obeys the id parameter's schema (a uuid for a uuid)."""
        if id_schema.get("format") == "uuid":
            return str(uuid.uuid4())
        return f"contract-unknown-{uuid.uuid4().hex[:10]}"

    class JobContract(RoleRules):
        jobs = Bundle("jobs")

        def __init__(self) -> None:
            super().__init__()
            if guard is not None:
                guard.start_example()  # raises StopRun when the run must end
            self.ctx = make_context()
            self.counter = 0
            self.callbacks = 0

        def _idle(self) -> bool:
            """Whether the run's budget ended: then rules do nothing (except in a replay)."""
            return guard is not None and guard.budget.over and not is_final_replay()

        # -- submitting ---------------------------------------------------------------

        def _submit(self, op: Operation, params: dict[str, Any], body: Any, mode: Any,
                    tenant_index: int, callback: bool) -> JobRecord | None:
            ctx = self.ctx
            tenant = ctx.tenants[tenant_index]
            event_filter: list[str] | None = None
            if hooks is not None:
                body = without_callback(spec, ctx.view, op, body)
                if callback and ctx.receiver_url:
                    body = with_value(body, hooks.url_pointer, ctx.receiver_url)
                    self.callbacks += 1
                    if hooks.filter_pointer is not None:
                        # The suite chooses the events (a generated filter may leave out the
                        # end the webhooks check waits for): every other callback job asks
                        # for its end only, the others for every event.
                        event_filter = (terminal_event_names(ctx) if self.callbacks % 2
                                        else every_event_name(ctx))
                        body = with_value(body, hooks.filter_pointer, event_filter)
            elif spec.callbacks is not None:  # a rule without deliveries: send no callback
                body = without_callback(spec, ctx.view, op, body)
            key = None
            if spec.idempotency_pointer is not None and isinstance(body, dict):
                self.counter += 1
                key = f"contract-{uuid.uuid4().hex[:12]}-{self.counter}"
                body = with_value(body, spec.idempotency_pointer, key)
            # The spec may say a callback answers at once: then no wait applies.
            skip = bool(callback and ctx.receiver_url and op.wait.callback_skips_wait)
            wait = 0.0 if skip else mode.wait
            if not skip and not any(p in mode.query for p, _, _ in op.wait.query):
                # A body field may switch the wait (docimprint's store: false answers inline).
                for pointer, value, switched in op.wait.body:
                    if pointer_get(body, pointer) == (True, value):
                        switched = min(switched, op.wait.max) if op.wait.max else switched
                        if ctx.time.virtual or switched <= 2:
                            wait = switched
                        else:  # too long to hold in real time: leave that mode out
                            body = without(body, pointer)
                        break
            prefer_wait = 0 if skip and mode.prefer_wait is not None else mode.prefer_wait
            ex = ctx.time.hold(lambda: ctx.client.call(
                op, tenant=tenant, params=params, query=mode.query, body=body,
                headers=mode.headers, note=f"submit, {mode.label}", wait=wait), wait)
            gate = spec.limits.gate
            if gate is not None and ex.status == ctx.view.error_status(gate.error):
                holders = [j for j in ctx.jobs_by_id.values()
                           if j.op is op and j.params == params and j.tenant is tenant]
                if holders:
                    run_checks(ctx, Observation("gate", ex, holders[-1], {
                        "holder": holders[-1].id, "holders": [j.id for j in holders],
                        "holder_blocking": False}))
                    return None
            queue_error = spec.limits.queue_error
            if queue_error is not None and ex.status == ctx.view.error_status(queue_error) \
                    and ex.status not in ctx.view.submit_statuses[op.operation_id]:
                run_checks(ctx, Observation("queue_full", ex, None, {"op": op}))
                return None
            allowed = ctx.view.submit_statuses[op.operation_id]
            job_id = ctx.job_id_of(op, ex) if ex.status in allowed else None
            submitted = Observation("submit", ex, None, {"op": op, "job_id": job_id, "new": True})
            held_answer = bool(job_id) and (wait > 0 or prefer_wait is not None)
            if not held_answer:
                run_checks(ctx, submitted)
            assert job_id is not None
            job = JobRecord(job_id, op, tenant, params, body, ctx.job_type(op, params, body),
                            callback=callback and ctx.receiver_url is not None,
                            idempotency_key=key, event_filter=event_filter)
            if held_answer:
                # An inline answer is judged as one first (a finished job's answer for a job
                # that is still running is an inline-wait fault before a schema one).
                after = ctx.poll(job, note="poll right after the inline answer")
                word = observe_poll(ctx, job, after)
                held, why = None, ""
                if not ctx.time.virtual:
                    # Stated and measured: 4 round trips of this network, at least 1 s (one
                    # answer on a busy machine may take a few hundred ms: never a false
                    # failure; a server that ignores the wait holds for its default, far more).
                    rtt = round_trip(ctx)
                    slack = max(1.0, 4 * rtt)
                    held = wait + slack
                    why = (f"{wait:g}s plus {slack:.2f}s tolerance: 4 x the {rtt * 1000:.0f}ms "
                           f"median round trip of this run's polls, at least 1s")
                run_checks(ctx, Observation("inline", ex, job, {
                    "op": op, "prefer_wait": prefer_wait, "word_after": word,
                    "held_limit": held, "held_why": why}))
                run_checks(ctx, submitted)
            ctx.jobs_by_id[job_id] = job
            return job

        @initialize(target=jobs, data=st.data(), op=st.sampled_from(submit_ops),
                    callback=st.booleans())
        def first_job(self, data: st.DataObject, op: Operation, callback: bool) -> Any:
            """Every run starts with a job, so no run judges only probes of absent jobs
            (which rules a run picks is Hypothesis's draw, and a short run may pick none)."""
            return self._submit_drawn(data, op, 0, callback)

        @rule(target=jobs, data=st.data(), op=st.sampled_from(submit_ops),
              tenant=st.integers(0, 1), callback=st.booleans())
        def submit(self, data: st.DataObject, op: Operation, tenant: int, callback: bool) -> Any:
            return self._submit_drawn(data, op, tenant, callback)

        def _submit_drawn(self, data: st.DataObject, op: Operation, tenant: int,
                          callback: bool) -> Any:
            params, body = data.draw(cases[op.operation_id], label="request")
            if self._idle():
                return multiple()
            body = self._longer_item_lists(data, op, body)
            mode = data.draw(st.sampled_from(self.ctx.modes(op)), label="mode")
            job = self._submit(op, params, body, mode, tenant, callback and hooks is not None)
            return job if job is not None else multiple()

        def _longer_item_lists(self, data: st.DataObject, op: Operation, body: Any) -> Any:
            """Where an invariant echoes submitted items, sometimes add the spec example's items
            to the generated ones, so order is observable (one item cannot be out of order)."""
            for inv in self.ctx.view.invariants:
                pointer = inv.get("request")
                if inv["kind"] != "echoes_items" or not pointer:
                    continue
                found, items = pointer_get(body, pointer)
                example = pointer_get(op.body_example, pointer)[1]
                if (found and isinstance(items, list) and isinstance(example, list)
                        and data.draw(st.booleans(), label="add the example's items")):
                    body = with_value(body, pointer, items + example)
            return body

        # -- polling ------------------------------------------------------------------------

        @rule(job=jobs)
        def poll(self, job: JobRecord) -> None:
            if not self._idle():
                observe_poll(self.ctx, job, self.ctx.poll(job))

        @rule(seconds=st.sampled_from([0.5, 1, 2, 5, 15, 60]))
        def let_time_pass(self, seconds: float) -> None:
            keeper = self.ctx.time
            if self._idle():
                return
            # Real time: short sleeps (a quarter second), so most of the budget is left to see
            # jobs finish when the example settles.
            keeper.advance(seconds if keeper.virtual else min(seconds, 0.25, keeper.left * 0.05))

        @rule(job=jobs)
        def poll_as_other_tenant(self, job: JobRecord) -> None:
            if not status_op.secured or self._idle():
                return
            other = self.ctx.tenants[1 if job.tenant is self.ctx.tenants[0] else 0]
            ex = self.ctx.poll(job, tenant=other, note="another tenant polls")
            run_checks(self.ctx, Observation("foreign", ex, job))

        @rule(data=st.data())
        def poll_unknown(self, data: st.DataObject) -> None:
            ctx = self.ctx
            if self._idle():
                return
            fake = JobRecord(unknown_id(), submit_ops[0], ctx.tenants[0], {}, None, "")
            if ctx.jobs_by_id:
                known = data.draw(st.sampled_from(sorted(ctx.jobs_by_id)), label="template job")
                real = ctx.jobs_by_id[known]
                fake.params, fake.job_type, fake.body = real.params, real.job_type, real.body
            ex = ctx.poll(fake, note="poll an id that does not exist")
            run_checks(ctx, Observation("unknown", ex, fake))

        # -- probing -------------------------------------------------------------------------

        @rule(data=st.data(), op=st.sampled_from([*submit_ops, status_op]), wrong=st.booleans())
        def bad_credentials(self, data: st.DataObject, op: Operation, wrong: bool) -> None:
            ctx = self.ctx
            if not op.secured or self._idle():
                return
            tenant = None
            if wrong:
                good = ctx.tenants[0].credential
                tenant = Tenant("nobody", good + "-wrong" if ":" not in good else good + "x")
            if op.role == "submit":
                params, body = data.draw(cases[op.operation_id], label="request")
                body = without_callback(spec, ctx.view, op, body)
                ex = ctx.client.call(op, tenant=tenant, params=params, body=body,
                                     headers={"Prefer": "wait=0"} if op.wait.prefer_header else None,
                                     query=ctx.modes(op)[0].query,
                                     note="wrong credentials" if wrong else "no credentials")
            else:
                if ctx.jobs_by_id:
                    job = ctx.jobs_by_id[data.draw(st.sampled_from(sorted(ctx.jobs_by_id)))]
                else:
                    job = JobRecord("contract-unknown", op, ctx.tenants[0], {}, None, "")
                ex = ctx.client.call(op, tenant=tenant, params=ctx.status_params(job),
                                     note="wrong credentials" if wrong else "no credentials")
            run_checks(ctx, Observation("auth_invalid" if wrong else "auth_missing", ex))

        @rule(op=st.sampled_from([o for o in submit_ops if o.body_schema is not None] or submit_ops),
              raw=st.sampled_from([b"[1, 2, 3]", b"{not json", b'"a string"']))
        def invalid_body(self, op: Operation, raw: bytes) -> None:
            if op.body_schema is None or self._idle():
                return
            ctx = self.ctx
            ex = ctx.client.call(op, tenant=ctx.tenants[0], raw=raw, params=self._params_for(op),
                                 headers={"Prefer": "wait=0"} if op.wait.prefer_header else None,
                                 query=ctx.modes(op)[0].query, note="an invalid body")
            run_checks(ctx, Observation("invalid", ex))

        def _params_for(self, op: Operation) -> dict[str, Any]:
            params = {}
            for p in op.parameters:
                if p.location == "path":
                    enum = (self.ctx.view.resolve(p.schema) or {}).get("enum")
                    params[p.name] = enum[0] if enum else "contract"
            return params

        # -- limits ----------------------------------------------------------------------------

        @precondition(lambda self: spec.limits.gate is not None)
        @rule(job=jobs)
        def dispatch_while_in_flight(self, job: JobRecord) -> None:
            if not self._idle():
                self._dispatch_again(job)

        if spec.limits.gate is not None:
            @initialize(target=jobs, data=st.data(), op=st.sampled_from(submit_ops))
            def probe_gate(self, data: st.DataObject, op: Operation) -> Any:
                """Every run: submit without waiting, then dispatch the same run again at once,
                so the gate is reached in every run of a spec that has one."""
                params, body = data.draw(cases[op.operation_id], label="request")
                modes = self.ctx.modes(op)
                mode = next((m for m in modes if m.wait == 0), modes[0])
                job = self._submit(op, params, body, mode, 0, False)
                if job is None:
                    return multiple()
                if not gate_reached:
                    self._until_gate_blocks(job)
                if self._dispatch_again(job):
                    gate_reached.append(job.id)
                return job

        def _until_gate_blocks(self, job: JobRecord) -> None:
            """Let a little time pass (0.25 s doubling, under 8 s in all) until ``job`` is in a
            status the gate blocks on, or has ended."""
            ctx = self.ctx
            gate = spec.limits.gate
            assert gate is not None
            step = 0.25
            while step <= 4:
                word = observe_poll(ctx, job, ctx.poll(job, note="wait for the run to hold the gate"))
                if ctx.view.role(word) in gate.blocks_submit_while or ctx.view.is_terminal(word):
                    return
                ctx.time.advance(step)
                step *= 2

        def _dispatch_again(self, job: JobRecord) -> bool:
            """Dispatch ``job``'s run again. It counts as in flight only when polls just before
            and just after the second dispatch both show it in a status the gate blocks on:
            statuses only move forward, so it was in flight in between. Otherwise the check
            only judges the shape of a refusal, never that one was due."""
            ctx = self.ctx
            gate = spec.limits.gate
            assert gate is not None
            before = observe_poll(ctx, job, ctx.poll(job, note="the run in flight, before"))
            if ctx.view.role(before) not in gate.blocks_submit_while:
                return False
            ex = ctx.client.call(job.op, tenant=job.tenant, params=job.params, body=job.body,
                                 headers=ctx.modes(job.op)[0].headers,
                                 query=ctx.modes(job.op)[0].query,
                                 note="dispatch again while a run is in flight")
            after = observe_poll(ctx, job, ctx.poll(job, note="the run in flight, after"))
            proven = ctx.view.role(after) in gate.blocks_submit_while
            run_checks(ctx, Observation("gate", ex, job, {
                "holder": job.id, "holder_blocking": proven}))
            if ex.status < 300:
                new_id = ctx.job_id_of(job.op, ex)
                if new_id:
                    ctx.jobs_by_id[new_id] = JobRecord(new_id, job.op, job.tenant, job.params,
                                                       job.body, job.job_type)
            return proven

        @precondition(lambda self: spec.idempotency_pointer is not None)
        @rule(job=jobs)
        def resubmit_same_key(self, job: JobRecord) -> None:
            if job.idempotency_key is None or self._idle():
                return
            ctx = self.ctx
            ex = ctx.client.call(job.op, tenant=job.tenant, params=job.params, body=job.body,
                                 headers={"Prefer": "wait=0"} if job.op.wait.prefer_header else None,
                                 query=ctx.modes(job.op)[0].query,
                                 note="resubmit with the same idempotency key")
            run_checks(ctx, Observation("idempotent", ex, job, {
                "first_id": job.id, "job_id": ctx.job_id_of(job.op, ex), "key": job.idempotency_key}))

        # -- the end ----------------------------------------------------------------------------

        def teardown(self) -> None:
            ctx = self.ctx
            try:
                self._settle()
            finally:
                ctx.client.exchanges.clear()

        def _settle(self) -> None:
            ctx = self.ctx
            open_jobs = [j for j in ctx.jobs_by_id.values()
                         if not (j.statuses and ctx.view.is_terminal(j.statuses[-1]))]
            rounds = 0
            if self._idle():
                ctx.unfinished.extend(j.id for j in open_jobs)
                return
            if is_final_replay() and not ctx.time.virtual:
                # A failure's replay settles briefly: the run must end near its budget.
                ctx.time.budget.seconds = min(ctx.time.budget.seconds,
                                              ctx.time.budget.elapsed + REPLAY_SETTLE)
            while open_jobs and rounds < 40 and (ctx.time.virtual or ctx.time.left > 0):
                # 30 clock seconds a round (40 rounds: 20 minutes), so a server that forgets
                # ended jobs after a while (jobmock serve --retain) still shows them.
                ctx.time.advance(30 if ctx.time.virtual else 1)
                for job in list(open_jobs):
                    word = observe_poll(ctx, job, ctx.poll(job, note="settle"))
                    if ctx.view.is_terminal(word):
                        open_jobs.remove(job)
                rounds += 1
            ctx.unfinished.extend(j.id for j in open_jobs)
            VERDICTS.api(spec.name).unfinished.update(j.id for j in open_jobs)
            for job in ctx.jobs_by_id.values():
                if job.terminal is not None:
                    observe_poll(ctx, job, ctx.poll(job, note="a finished job, again"))
            self._check_webhooks()

        def _check_webhooks(self) -> None:
            ctx = self.ctx
            if hooks is None or ctx.receiver is None:
                return
            wanted = [j for j in ctx.jobs_by_id.values() if j.callback and j.terminal is not None]
            if not wanted:
                return
            deadline = time.monotonic() + 10
            for job in wanted:
                while True:
                    got = [r for r in list(ctx.receiver.received) if job.id.encode() in r.body]
                    final = [r for r in got if _is_final(ctx, r)]
                    if final or time.monotonic() > deadline:
                        break
                    time.sleep(0.02)
                run_checks(ctx, Observation("webhook", ctx.client.exchanges[-1] if ctx.client.exchanges
                                            else _empty(), job, {
                    "deliveries": [r for r in got if r.answered.startswith("2")] or got,
                    "expected_headers": ctx.expected_webhook_headers(job),
                    "final_body": job.last_body}))
                run_checks(ctx, Observation("webhook_events", ctx.client.exchanges[-1]
                                            if ctx.client.exchanges else _empty(), job, {
                    "received": [r for r in got if r.answered.startswith("2")],
                    "filter": job.event_filter}))

    JobContract.__name__ = f"{spec.name.title()}Contract"
    if spec.operations_with("result"):
        class WithResult(ResultRules, JobContract):
            """The machine with the result rule (only where the spec has a result operation)."""

        WithResult.__name__ = JobContract.__name__
        return WithResult
    return JobContract


def _is_final(ctx: SuiteContext, received: Any) -> bool:
    try:
        body = received.json()
    except ValueError:
        return False
    text = json.dumps(body)
    return any(f'"{w}"' in text for w in ctx.spec.lifecycle.terminal_words)


def _empty() -> Exchange:
    return Exchange("GET", "", {}, None, 0, {}, b"", 0.0)
