"""The contract checks: registered functions with one signature, ``check(ctx, obs)``.

Each check has a name and a title, declares which observations it judges (a submit, a
poll, an auth probe, ...) and raises :class:`ContractViolation` when the server breaks the
spec. Everything expected is read from the spec through :class:`SpecView`.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from .client import Exchange
from .context import JobRecord, Observation, SuiteContext
from .specview import pointer_get
from .violations import ContractViolation

__all__ = ["CHECKS", "Check", "Observation", "register", "run_checks"]


@dataclass(slots=True)
class Check:
    name: str
    title: str
    kinds: frozenset[str]
    fn: Callable[[SuiteContext, Observation], None]
    runs: int = 0
    failures: int = 0


CHECKS: dict[str, Check] = {}


def register(name: str, title: str, *kinds: str) -> Callable[
        [Callable[[SuiteContext, Observation], None]], Callable[[SuiteContext, Observation], None]]:
    """Register a check judging observations of ``kinds``."""

    def deco(fn: Callable[[SuiteContext, Observation], None],
             ) -> Callable[[SuiteContext, Observation], None]:
        CHECKS[name] = Check(name, title, frozenset(kinds), fn)
        return fn

    return deco


def run_checks(ctx: SuiteContext, obs: Observation) -> None:
    """Run every registered check that judges ``obs``; the first violation is raised."""
    for check in CHECKS.values():
        if obs.kind in check.kinds:
            check.runs += 1
            try:
                check.fn(ctx, obs)
            except ContractViolation:
                check.failures += 1
                raise


def observe_poll(ctx: SuiteContext, job: JobRecord, ex: Exchange) -> str:
    """Judge a poll of ``job`` with the registered checks, then note it; its status word."""
    run_checks(ctx, Observation("poll", ex, job))
    return ctx.record_poll(job, ex)


def fail(ctx: SuiteContext, check: str, detail: str) -> ContractViolation:
    return ContractViolation(check, CHECKS[check].title, detail, ctx.client.reproduction())


def _present(found: bool, value: Any) -> bool:
    return found and value is not None and value != [] and value != {}


def _body_text(ex: Exchange) -> str:
    return ex.response_body.decode("utf-8", "replace")[:600]


def _validate(ctx: SuiteContext, check: str, validator: Any, body: Any, what: str) -> None:
    if validator is None:
        return
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        where = "/" + "/".join(str(p) for p in e.absolute_path)
        raise fail(ctx, check, f"{what} does not match its schema at {where}: {e.message}")


# -- 1. submit ----------------------------------------------------------------------------


@register("submit_answer", "A submit is not answered as the spec says", "submit")
def check_submit(ctx: SuiteContext, obs: Observation) -> None:
    ex, view = obs.exchange, ctx.view
    op = obs.extra["op"]
    allowed = view.submit_statuses[op.operation_id]
    if ex.status not in allowed:
        raise fail(ctx, "submit_answer",
                   f"{op.operation_id} answered a valid request with {ex.status}; the spec's "
                   f"answers to a submit are {sorted(allowed)}.\n"
                   f"Body: {_body_text(ex)}")
    _validate(ctx, "submit_answer", view.response_validator(op, ex.status), ex.json(),
              f"the {ex.status} answer of {op.operation_id}")
    job_id = obs.extra.get("job_id")
    if not isinstance(job_id, str) or not job_id:
        raise fail(ctx, "submit_answer",
                   f"no job id where the spec says ({', '.join(op.job_id_from)}) in the "
                   f"{ex.status} answer")
    for name, header in view.documented_headers(op, ex.status).items():
        if isinstance(header, dict) and header.get("required") and ex.header(name) is None:
            raise fail(ctx, "submit_answer", f"required header {name} missing on {ex.status}")
    xid = ex.header("x-job-id")
    if "x-job-id" in view.documented_headers(op, ex.status) and xid is not None and xid != job_id:
        raise fail(ctx, "submit_answer", f"X-Job-Id {xid!r} is not the job id {job_id!r}")
    location = ex.header("location")
    if location is not None and "location" in view.documented_headers(op, ex.status):
        path = urlsplit(location).path
        if not path.endswith("/" + quote(job_id, safe="")) and not path.endswith("/" + job_id):
            raise fail(ctx, "submit_answer", f"Location {location!r} does not name job {job_id!r}")
    if obs.extra.get("new") and job_id in ctx.jobs_by_id:
        raise fail(ctx, "submit_answer", f"job id {job_id!r} was already given to another job")


# -- 2-5, 9. polls ------------------------------------------------------------------------


def _status_word(ctx: SuiteContext, body: Any) -> Any:
    return ctx.spec.lifecycle.status_of(body)


@register("poll_schema", "A poll's body breaks the status schema", "poll")
def check_poll_schema(ctx: SuiteContext, obs: Observation) -> None:
    ex, view, job = obs.exchange, ctx.view, obs.job
    assert job is not None
    want = ctx.spec.status.status
    if ex.status != want:
        raise fail(ctx, "poll_schema", f"polling job {job.id} answered {ex.status}, not {want}.\n"
                                       f"Body: {_body_text(ex)}")
    body = ex.json()
    _validate(ctx, "poll_schema", view.response_validator(ctx.spec.status_operation, want), body,
              f"the poll of job {job.id}")
    word = _status_word(ctx, body)
    if word not in ctx.spec.lifecycle.states:
        where = ", ".join(ctx.spec.lifecycle.status_pointers)
        raise fail(ctx, "poll_schema", f"status {word!r} read at {where} "
                                       f"is not one of {sorted(ctx.spec.lifecycle.states)}")
    for pointer in view.status_pointers("job.id"):
        found, value = pointer_get(body, pointer)
        if found and value != job.id:
            raise fail(ctx, "poll_schema", f"the body's id at {pointer} is {value!r}, not {job.id!r}")


def _reachable(ctx: SuiteContext, old: str, new: str) -> bool:
    if old == new:
        return True
    seen, todo = {old}, [old]
    while todo:
        for nxt in ctx.spec.lifecycle.transitions.get(todo.pop(), ()):
            if nxt == new:
                return True
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False


@register("lifecycle", "A job's status moved against the spec's transitions", "poll")
def check_lifecycle(ctx: SuiteContext, obs: Observation) -> None:
    job, body = obs.job, obs.exchange.json()
    assert job is not None
    word = _status_word(ctx, body)
    prev = job.statuses[-1] if job.statuses else None
    if prev is not None and not _reachable(ctx, prev, word):
        raise fail(ctx, "lifecycle", f"job {job.id} went from {prev!r} to {word!r}; the spec allows "
                                     f"{prev!r} -> {sorted(ctx.spec.lifecycle.transitions.get(prev, ()))}")
    if job.terminal is not None:
        now = ctx.terminal_snapshot(body)
        if now != job.terminal:
            raise fail(ctx, "lifecycle", f"job {job.id} changed after it ended: was {job.terminal}, "
                                         f"now {now}")


@register("outcome_fields", "Result or error present in the wrong status", "poll")
def check_outcome_fields(ctx: SuiteContext, obs: Observation) -> None:
    job, body, view = obs.job, obs.exchange.json(), ctx.view
    assert job is not None
    word = _status_word(ctx, body)
    completed = view.role(word) == "completed"
    for pointer in view.status_pointers("job.result"):
        present = _present(*pointer_get(body, pointer))
        if present != completed:
            state = "has" if present else "lacks"
            raise fail(ctx, "outcome_fields", f"job {job.id} is {word!r} and {state} a result at {pointer}")
    expected = view.error_expected(word)
    for pointer in view.status_pointers("job.error"):
        present = _present(*pointer_get(body, pointer))
        if present != expected:
            state = "has" if present else "lacks"
            raise fail(ctx, "outcome_fields", f"job {job.id} is {word!r} and {state} an error at {pointer}")


def _retry_after_ok(value: str | None) -> bool:
    return value is not None and re.fullmatch(r"\s*\d+\s*", value) is not None


@register("retry_after", "Retry-After missing or malformed on a non-terminal answer", "poll", "submit")
def check_retry_after(ctx: SuiteContext, obs: Observation) -> None:
    spec, ex = ctx.spec, obs.exchange
    value = ex.header("retry-after")
    if value is not None and not _retry_after_ok(value):
        raise fail(ctx, "retry_after", f"Retry-After {value!r} is not a non-negative integer")
    if spec.retry_after_seconds is None:
        return
    if obs.kind == "poll":
        word = _status_word(ctx, ex.json())
        if spec.status.retry_after and ctx.view.role(word) in spec.retry_after_roles and value is None:
            raise fail(ctx, "retry_after", f"job {obs.job.id if obs.job else '?'} is {word!r} and "
                                           f"the poll has no Retry-After")
        return
    op = obs.extra["op"]
    pending = op.responses.get("pending")
    terminal_statuses = {r.status for k, r in op.responses.items() if k != "pending"}
    if (pending is not None and pending.retry_after and ex.status == pending.status
            and ex.status not in terminal_statuses and value is None
            and spec.retry_after_roles & {"queued", "running"}):
        raise fail(ctx, "retry_after", f"the pending {ex.status} answer has no Retry-After")


@register("invariants", "An invariant the spec declares does not hold", "poll")
def check_invariants(ctx: SuiteContext, obs: Observation) -> None:
    job, body = obs.job, obs.exchange.json()
    assert job is not None
    word = _status_word(ctx, body)
    for i, inv in enumerate(ctx.view.invariants):
        kind, pointer = inv["kind"], inv["pointer"]
        when = inv.get("status")
        if when is not None and word not in when and kind != "non_decreasing":
            continue
        found, value = pointer_get(body, pointer)
        label = inv.get("description") or f"{kind} {pointer}"
        if kind == "non_decreasing":
            key = f"{i}:{pointer}"
            before = job.seen.get(key)
            if found and value is not None:
                if before is not None and type(before) is type(value) and value < before:
                    raise fail(ctx, "invariants", f"{label}: job {job.id} went from {before!r} to {value!r}")
                job.seen[key] = value
        elif kind == "present_when" and not _present(found, value):
            raise fail(ctx, "invariants", f"{label}: job {job.id} is {word!r} and has nothing at {pointer}")
        elif kind == "absent_when" and _present(found, value):
            raise fail(ctx, "invariants", f"{label}: job {job.id} is {word!r} and has {pointer}")
        elif kind == "length_equals":
            _, other = pointer_get(body, inv["other"])
            want = len(other) if isinstance(other, list) else other
            if not isinstance(value, list) or len(value) != want:
                got = len(value) if isinstance(value, list) else value
                raise fail(ctx, "invariants",
                           f"{label}: {pointer} has {got!r} items, {inv['other']} says {want!r}")
        elif kind == "echoes_items":
            _, items = pointer_get(job.body, inv["request"])
            items = items if isinstance(items, list) else []
            value = value if isinstance(value, list) else []
            echoed = [pointer_get(v, "/" + inv["field"])[1] if inv.get("field") else v for v in value]
            if echoed != items:
                raise fail(ctx, "invariants", f"{label}: job {job.id} returned {echoed!r} for the "
                                              f"submitted {items!r}")


# -- 6. inline waits ------------------------------------------------------------------------


@register("inline_wait", "An inline wait was not honoured as the spec says", "inline")
def check_inline(ctx: SuiteContext, obs: Observation) -> None:
    ex, op = obs.exchange, obs.extra["op"]
    asked, applied_header = obs.extra.get("prefer_wait"), op.wait.applied_header
    if asked is not None and applied_header:
        want = f"wait={min(int(asked), int(op.wait.max))}"
        got = ex.header(applied_header.lower())
        if got is not None and got.replace(" ", "") != want:
            raise fail(ctx, "inline_wait", f"{applied_header} is {got!r}, expected {want!r}")
        if got is None and ex.status in {r.status for r in op.responses.values()}:
            raise fail(ctx, "inline_wait", f"{applied_header} missing; expected {want!r}")
    held_limit = obs.extra.get("held_limit")
    if held_limit is not None and ex.elapsed > held_limit:
        raise fail(ctx, "inline_wait", f"the request was held {ex.elapsed:.1f}s, more than the "
                                       f"{held_limit:.1f}s the wait allows")
    final = obs.extra.get("word_after")
    pending = op.responses.get("pending")
    if (final is not None and pending is not None and ex.status != pending.status
            and not ctx.view.is_terminal(final)):
        raise fail(ctx, "inline_wait", f"answered {ex.status} (a finished job's answer) but the "
                                       f"job is {final!r}")


# -- 7, 8. auth, errors, limits -----------------------------------------------------------------


def _error_matches(ctx: SuiteContext, check: str, ex: Exchange, name: str, what: str) -> None:
    view = ctx.view
    want = view.error_status(name)
    if ex.status != want:
        raise fail(ctx, check, f"{what}: answered {ex.status}, the spec says {want} ({name}).\n"
                               f"Body: {_body_text(ex)}")
    body = ex.json()
    for const in view.error_constants(name):
        found, value = pointer_get(body, const.pointer)
        if not found or value != const.value:
            raise fail(ctx, check, f"{what}: the body has {value!r} at {const.pointer or '/'}, the "
                                   f"spec's {name} error says {const.value!r}.\nBody: {_body_text(ex)}")


@register("auth", "Credentials are not checked as the spec says", "auth_missing", "auth_invalid",
          "foreign")
def check_auth(ctx: SuiteContext, obs: Observation) -> None:
    auth, ex = ctx.spec.auth, obs.exchange
    if obs.kind == "auth_missing":
        _error_matches(ctx, "auth", ex, auth.missing, "a request without credentials")
    elif obs.kind == "auth_invalid":
        _error_matches(ctx, "auth", ex, auth.invalid, "a request with wrong credentials")
    else:
        job = obs.job
        assert job is not None
        _error_matches(ctx, "auth", ex, auth.foreign_job, f"another tenant reading job {job.id}")
        text = ex.response_body.decode("utf-8", "replace")
        if job.result_text and job.result_text in text:
            raise fail(ctx, "auth", f"another tenant's answer for job {job.id} contains its result")


@register("errors", "An error is not answered as the spec says", "unknown", "invalid")
def check_errors(ctx: SuiteContext, obs: Observation) -> None:
    if obs.kind == "unknown":
        _error_matches(ctx, "errors", obs.exchange, "not_found", "polling a job that does not exist")
    else:
        _error_matches(ctx, "errors", obs.exchange, "validation", "submitting an invalid body")


@register("limits", "A limit is not enforced as the spec says", "gate", "idempotent", "queue_full")
def check_limits(ctx: SuiteContext, obs: Observation) -> None:
    ex = obs.exchange
    if obs.kind == "queue_full":
        name = ctx.spec.limits.queue_error
        assert name is not None
        _error_matches(ctx, "limits", ex, name, "a submit past the queue limit")
        return
    if obs.kind == "idempotent":
        first, again = obs.extra["first_id"], obs.extra.get("job_id")
        if again != first:
            raise fail(ctx, "limits", f"resubmitting idempotency key {obs.extra['key']!r} gave job "
                                      f"{again!r}, not {first!r}")
        return
    gate = ctx.spec.limits.gate
    assert gate is not None
    holder = obs.extra["holder"]
    if obs.extra.get("holder_blocking") and ex.status < 300:
        raise fail(ctx, "limits", f"job {holder} was in flight for the same gate and a second "
                                  f"dispatch was accepted with {ex.status}")
    if ex.status < 300:
        return
    _error_matches(ctx, "limits", ex, gate.error, "a dispatch while the gate is held")
    text = ex.response_body.decode("utf-8", "replace")
    candidates = obs.extra.get("holders") or [holder]
    if not any(c in text for c in candidates):
        raise fail(ctx, "limits", f"the {ex.status} answer names none of the jobs in flight for "
                                  f"that gate ({', '.join(candidates)})")


# -- 10. webhooks -------------------------------------------------------------------------------


@register("webhooks", "A webhook breaks the spec", "webhook")
def check_webhook(ctx: SuiteContext, obs: Observation) -> None:
    hooks = ctx.spec.webhooks
    assert hooks is not None
    job = obs.job
    assert job is not None
    deliveries = obs.extra["deliveries"]
    if not deliveries:
        raise fail(ctx, "webhooks", f"job {job.id} ended {job.statuses[-1]!r} and no webhook arrived")
    for d in deliveries:
        if hooks.signature is not None and ctx.webhook_secret is not None:
            sig = hooks.signature
            got = d.header(sig.header)
            digest = hmac.new(ctx.webhook_secret.encode(), d.body, hashlib.sha256).hexdigest()
            if got is None or digest not in got:
                raise fail(ctx, "webhooks", f"the webhook for job {job.id} has signature {got!r}; "
                                            f"HMAC-SHA256 of its body is {digest}")
        if ctx.view.webhook_validator is not None:
            _validate(ctx, "webhooks", ctx.view.webhook_validator, d.json(),
                      f"the webhook body for job {job.id}")
        for name, value in obs.extra["expected_headers"].items():
            if d.header(name) != value:
                raise fail(ctx, "webhooks",
                           f"webhook header {name} is {d.header(name)!r}, expected {value!r}")
    final = deliveries[-1]
    final_body = obs.extra.get("final_body")
    if (hooks.render == ctx.spec.status.render and final_body is not None
            and ctx.terminal_snapshot(final.json()) != ctx.terminal_snapshot(final_body)):
        raise fail(ctx, "webhooks", f"the last webhook for job {job.id} says "
                                    f"{ctx.terminal_snapshot(final.json())}, the poll says "
                                    f"{ctx.terminal_snapshot(final_body)}")


@register("webhook_retries", "Webhook retries do not follow the spec's schedule", "webhook_retries")
def check_webhook_retries(ctx: SuiteContext, obs: Observation) -> None:
    hooks = ctx.spec.webhooks
    assert hooks is not None
    attempts = obs.extra["attempts"]
    policy = hooks.retry
    if len(attempts) != obs.extra["expected"]:
        raise fail(ctx, "webhook_retries", f"{len(attempts)} attempts arrived, the spec's schedule "
                                           f"gives {obs.extra['expected']} ({policy.attempts} at most)")
    bodies = {a.body for a in attempts}
    if len(bodies) > 1:
        raise fail(ctx, "webhook_retries", "retries of one delivery carried different bodies")
    for n, (_a, _b) in enumerate(itertools.pairwise(attempts), start=1):
        gap = obs.extra["times"][n] - obs.extra["times"][n - 1]
        delay = policy.delay_after(n) or 0
        if gap + 1e-6 < delay:
            raise fail(ctx, "webhook_retries", f"attempt {n + 1} came {gap:.0f}s after attempt {n}; "
                                               f"the schedule says {delay:.0f}s")
