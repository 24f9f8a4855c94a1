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
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from .. import signing
from .client import ANSWERS_TITLE, Exchange
from .context import JobRecord, Observation, SuiteContext
from .specview import pointer_get
from .verdicts import VERDICTS
from .violations import ContractViolation

__all__ = [
    "CHECKS",
    "OBSERVERS",
    "Check",
    "Observation",
    "every_event_name",
    "register",
    "run_checks",
    "terminal_event_names",
]


@dataclass(slots=True)
class Check:
    name: str
    title: str
    kinds: frozenset[str]
    fn: Callable[[SuiteContext, Observation], None]
    runs: int = 0
    failures: int = 0


CHECKS: dict[str, Check] = {}
#: Called with every observation before the checks judge it (the HTML report listens here).
OBSERVERS: list[Callable[[SuiteContext, Observation], None]] = []


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
    for observer in OBSERVERS:
        observer(ctx, obs)
    for check in CHECKS.values():
        if obs.kind in check.kinds:
            check.runs += 1
            try:
                check.fn(ctx, obs)
            except ContractViolation:
                check.failures += 1
                VERDICTS.judged(ctx.spec.name, check.name, failed=True)
                if ctx.guard is not None:
                    ctx.guard.failure(sys.exc_info()[1], len(ctx.client.exchanges))
                raise
            VERDICTS.judged(ctx.spec.name, check.name)


def observe_poll(ctx: SuiteContext, job: JobRecord, ex: Exchange) -> str:
    """Judge a poll of ``job`` with the registered checks, then note it; its status word."""
    run_checks(ctx, Observation("poll", ex, job))
    return ctx.record_poll(job, ex)


def fail(ctx: SuiteContext, check: str, detail: str) -> ContractViolation:
    return ContractViolation(check, CHECKS[check].title, detail, ctx.client.reproduction())


def _judged_by_the_client(ctx: SuiteContext, obs: Observation) -> None:
    """``answers`` is judged by the :class:`ContractClient` on every request it sends."""


CHECKS["answers"] = Check("answers", ANSWERS_TITLE, frozenset(), _judged_by_the_client)


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


def _header_schema(ctx: SuiteContext, check: str, header: Any, name: str, ex: Exchange) -> None:
    """A header that is sent must match its schema, required or assumed alike."""
    value = ex.header(name)
    schema = header.get("schema") if isinstance(header, dict) else None
    if (value is None or not isinstance(schema, dict) or "$ref" in str(schema)
            or schema.get("type", "string") != "string"):
        return
    import jsonschema

    problem = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(value))
    if problem is not None:
        raise fail(ctx, check, f"header {name}: {value!r} does not match its schema: "
                               f"{problem.message}")


# -- 1. submit ----------------------------------------------------------------------------


@register("submit_answer", "a submit gets a documented status, a body matching its schema, a "
          "new job id, and the headers its answer defines", "submit")
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
        if name != "retry-after":  # the retry_after check judges it
            _header_schema(ctx, "submit_answer", header, name, ex)
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


@register("poll_schema", "a poll gets the status schema, the job's own id and a status word "
          "of the spec", "poll")
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


@register("lifecycle", "a job's status moves only along the spec's transitions, and never "
          "changes once it ended", "poll")
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


@register("outcome_fields", "a result only when completed, an error only in the statuses "
          "whose outcome carries one", "poll")
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
    lenient = view.assumed.covers(f"/x-jobmock/outcomes/{word}/error")
    for pointer in view.status_pointers("job.error"):
        present = _present(*pointer_get(body, pointer))
        if present != expected and not (lenient and not present):
            state = "has" if present else "lacks"
            raise fail(ctx, "outcome_fields", f"job {job.id} is {word!r} and {state} an error at {pointer}")


def _retry_after_ok(value: str | None) -> bool:
    return value is not None and re.fullmatch(r"\s*\d+\s*", value) is not None


def _retry_after_assumed(ctx: SuiteContext, op: Any, status: int, role: str | None,
                         *where: str) -> bool:
    """Whether the spec assumed Retry-After here: the whole promise, the role's entry in
    ``retry_after.roles``, the x-jobmock flag (``where``) or the response's header definition."""
    roles = list((ctx.view.ext.get("retry_after") or {}).get("roles") or [])
    at = [f"/x-jobmock/retry_after/roles/{roles.index(role)}"] if role in roles else []
    return ctx.view.assumed.covers("/x-jobmock/retry_after", *at, *where,
                                   *ctx.view.header_locations(op, status, "Retry-After"))


@register("retry_after", "Retry-After (a non-negative integer) on answers about unfinished "
          "jobs, where the spec sends it", "poll", "submit")
def check_retry_after(ctx: SuiteContext, obs: Observation) -> None:
    spec, ex = ctx.spec, obs.exchange
    value = ex.header("retry-after")
    if value is not None and not _retry_after_ok(value):
        raise fail(ctx, "retry_after", f"Retry-After {value!r} is not a non-negative integer")
    if spec.retry_after_seconds is None:
        return
    if obs.kind == "poll":
        word = _status_word(ctx, ex.json())
        role = ctx.view.role(word)
        if (spec.status.retry_after and role in spec.retry_after_roles and value is None
                and not _retry_after_assumed(ctx, spec.status_operation, ex.status, role,
                                             "/x-jobmock/status/retry_after")):
            raise fail(ctx, "retry_after", f"job {obs.job.id if obs.job else '?'} is {word!r} and "
                                           f"the poll has no Retry-After")
        return
    op = obs.extra["op"]
    pending = op.responses.get("pending")
    terminal_statuses = {r.status for k, r in op.responses.items() if k != "pending"}
    if (pending is not None and pending.retry_after and ex.status == pending.status
            and ex.status not in terminal_statuses and value is None
            and spec.retry_after_roles & {"queued", "running"}
            and not _retry_after_assumed(ctx, op, ex.status, None)):
        raise fail(ctx, "retry_after", f"the pending {ex.status} answer has no Retry-After")


@register("invariants", "the invariants the spec declares hold on every poll", "poll")
def check_invariants(ctx: SuiteContext, obs: Observation) -> None:
    job, body = obs.job, obs.exchange.json()
    assert job is not None
    word = _status_word(ctx, body)
    for i, inv in enumerate(ctx.view.invariants):
        kind, pointer = inv["kind"], inv["pointer"]
        if ctx.view.assumed.covers(f"/x-jobmock/contract/invariants/{i}"):
            VERDICTS.note(ctx.spec.name, "invariants", "not judged (the spec marks it assumed): "
                          + (inv.get("description") or f"{kind} {pointer}"))
            continue
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
            if (inv.get("field") and all(e is None for e in echoed)
                    and ctx.view.assumed.covers(f"/x-jobmock/contract/invariants/{i}/field")):
                continue  # the echoed field is assumed and absent: order is not observable
            if echoed != items:
                raise fail(ctx, "invariants", f"{label}: job {job.id} returned {echoed!r} for the "
                                              f"submitted {items!r}")
        elif kind == "not_before":
            _, other = pointer_get(body, inv["other"])
            at, since = _instant(value), _instant(other)
            if at is not None and since is not None and at < since:
                raise fail(ctx, "invariants", f"{label}: job {job.id} has {pointer} {value!r} earlier "
                                              f"than {inv['other']} {other!r}")
        elif kind == "names_job" and isinstance(value, str) and not _names_job(value, job.id,
                                                                                inv.get("prefix")):
            raise fail(ctx, "invariants", f"{label}: {pointer} {value!r} does not name job {job.id}")


def _instant(value: Any) -> float | None:
    """A time as seconds since the epoch: ISO 8601 text, or an epoch number (seconds, or
    milliseconds when it is too large to be seconds); None when absent or not a time."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return value / 1000 if abs(value) >= 1e11 else float(value)
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _names_job(text: str, job_id: str, prefix: str | None) -> bool:
    """Whether a URL or path names the job: its id is a whole path segment (or one followed by
    a custom method, ``{id}:cancel``), or follows ``prefix`` up to the end or a delimiter."""
    path = urlsplit(text).path if "://" in text else re.split(r"[?#]", text, maxsplit=1)[0]
    if any(unquote(seg).split(":", 1)[0] == job_id for seg in path.split("/")):
        return True
    return bool(prefix) and re.search(re.escape(f"{prefix}{job_id}") + r"(?=$|[/?#:&])", text) is not None


# -- 6. inline waits ------------------------------------------------------------------------


@register("inline_wait", "an inline wait holds no longer than asked, answers a finished job's "
          "answer only for a finished job, and echoes the wait applied", "inline")
def check_inline(ctx: SuiteContext, obs: Observation) -> None:
    ex, op = obs.exchange, obs.extra["op"]
    asked, applied_header = obs.extra.get("prefer_wait"), op.wait.applied_header
    if asked is not None and applied_header:
        want = f"wait={min(int(asked), int(op.wait.max))}"
        got = ex.header(applied_header.lower())
        if got is not None and got.replace(" ", "") != want:
            raise fail(ctx, "inline_wait", f"{applied_header} is {got!r}, expected {want!r}")
        promised = ("/x-jobmock/submit/wait/applied_header",
                    ctx.view.operation_pointer(op) + "/x-jobmock/wait/applied_header")
        if got is None and ctx.view.header_demanded(op, ex.status, applied_header, *promised):
            raise fail(ctx, "inline_wait", f"{applied_header} missing on the {ex.status} answer, "
                                           f"where the spec's response defines it; expected {want!r}")
    held_limit = obs.extra.get("held_limit")
    if held_limit is not None and ex.elapsed > held_limit:
        raise fail(ctx, "inline_wait", f"the request was held {ex.elapsed:.2f}s, more than the "
                                       f"{held_limit:.2f}s the wait allows "
                                       f"({obs.extra.get('held_why', 'with its tolerance')})")
    final = obs.extra.get("word_after")
    pending = op.responses.get("pending")
    if (final is not None and pending is not None and ex.status != pending.status
            and not ctx.view.is_terminal(final)):
        raise fail(ctx, "inline_wait", f"answered {ex.status} (a finished job's answer) but the "
                                       f"job is {final!r}")
    shown = ctx.spec.lifecycle.status_of(ex.json()) if 200 <= ex.status < 300 else None
    if (final is not None and isinstance(shown, str) and shown in ctx.spec.lifecycle.states
            and ctx.view.is_terminal(shown) and not ctx.view.is_terminal(final)):
        # Where a finished and an unfinished job get the same status code, the body tells.
        raise fail(ctx, "inline_wait", f"the {ex.status} answer shows the job {shown!r} (ended) "
                                       f"but the job is {final!r}")
    if final is not None and pending is not None and ex.status != pending.status:
        # A job that ended within the wait gets the answer the spec gives its word or role.
        keys = (final, ctx.view.role(final), "terminal")
        rdef = next((op.responses[k] for k in keys if k in op.responses), None)
        if rdef is not None and ex.status != rdef.status:
            raise fail(ctx, "inline_wait", f"the job ended {final!r} within the wait and was "
                                           f"answered {ex.status}; the spec answers {rdef.status}")


# -- 7, 8. auth, errors, limits -----------------------------------------------------------------


def _error_matches(ctx: SuiteContext, check: str, ex: Exchange, name: str, what: str,
                   *assumed_at: str) -> None:
    """The answer is the spec's error ``name``: its status and the fixed parts of its body.
    Where the spec assumed the status (or ``assumed_at``, the x-jobmock pointers that chose
    this error), any 4xx refusal will do and the body's wording is not judged."""
    view = ctx.view
    want = view.error_status(name)
    if view.error_status_assumed(name) or view.assumed.covers(*assumed_at):
        if not 400 <= ex.status < 500:
            raise fail(ctx, check, f"{what}: answered {ex.status}, expected a refusal (4xx; the "
                                   f"spec assumes {want} {name}).\nBody: {_body_text(ex)}")
        if ex.status != want:
            VERDICTS.note(ctx.spec.name, check, f"{what}: {ex.status} accepted where the spec "
                                                f"assumes {want} ({name})")
        VERDICTS.api(ctx.spec.name).errors.add(name)
        return
    if ex.status != want:
        raise fail(ctx, check, f"{what}: answered {ex.status}, the spec says {want} ({name}).\n"
                               f"Body: {_body_text(ex)}")
    VERDICTS.api(ctx.spec.name).errors.add(name)
    body = ex.json()
    for const in view.error_constants(name):
        found, value = pointer_get(body, const.pointer)
        if not found or value != const.value:
            raise fail(ctx, check, f"{what}: the body has {value!r} at {const.pointer or '/'}, the "
                                   f"spec's {name} error says {const.value!r}.\nBody: {_body_text(ex)}")


@register("auth", "missing or wrong credentials and another tenant's job get the spec's "
          "answer and leak nothing", "auth_missing", "auth_invalid",
          "foreign")
def check_auth(ctx: SuiteContext, obs: Observation) -> None:
    auth, ex = ctx.spec.auth, obs.exchange
    if obs.kind == "auth_missing":
        _error_matches(ctx, "auth", ex, auth.missing, "a request without credentials",
                       "/x-jobmock/auth/missing")
    elif obs.kind == "auth_invalid":
        _error_matches(ctx, "auth", ex, auth.invalid, "a request with wrong credentials",
                       "/x-jobmock/auth/invalid")
    else:
        job = obs.job
        assert job is not None
        _error_matches(ctx, "auth", ex, auth.foreign_job, f"another tenant reading job {job.id}",
                       "/x-jobmock/auth/foreign_job")
        text = ex.response_body.decode("utf-8", "replace")
        if job.result_text and job.result_text in text:
            raise fail(ctx, "auth", f"another tenant's answer for job {job.id} contains its result")


@register("errors", "unknown job ids and invalid bodies get the spec's errors", "unknown",
          "invalid")
def check_errors(ctx: SuiteContext, obs: Observation) -> None:
    if obs.kind == "unknown":
        _error_matches(ctx, "errors", obs.exchange, "not_found", "polling a job that does not exist")
    else:
        _error_matches(ctx, "errors", obs.exchange, "validation", "submitting an invalid body")


@register("limits", "the gate, the queue limit and idempotency keys work as the spec says",
          "gate", "idempotent", "queue_full")
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


@register("webhooks", "a finished job's webhook arrives (signed where the spec signs), with "
          "the spec's headers and body, and agrees with the final poll", "webhook")
def check_webhook(ctx: SuiteContext, obs: Observation) -> None:
    hooks = ctx.spec.webhooks
    assert hooks is not None
    job = obs.job
    assert job is not None
    deliveries = obs.extra["deliveries"]
    if not deliveries:
        raise fail(ctx, "webhooks", f"job {job.id} ended {job.statuses[-1]!r} and no webhook arrived")
    sig = hooks.signature
    # A spec may sign only some tenants' callbacks (signature.enabled_for): a signature that
    # is sent must verify; a missing one fails only where the spec signs this tenant's.
    due = sig is not None and (sig.enabled_for is None or job.tenant.name in sig.enabled_for)
    due = due and not ctx.view.assumed.covers("/x-jobmock/webhooks/signature/enabled_for")
    for d in deliveries:
        if sig is not None and ctx.webhook_secret is not None and (
                due or d.header(sig.header) is not None):
            # (webhooks, issue 14) each scheme's own check; a timestamp within the spec's
            # tolerance of when it arrived, except on a jobmock virtual clock (its own time).
            got = d.header(sig.header)
            now = None if ctx.time.virtual else d.at
            if sig.scheme != "hmac-sha256-hex" and not signing.verify(
                    sig.scheme, ctx.webhook_secret, d.headers, d.body, header=sig.header,
                    fmt=sig.format, now=now, tolerance=sig.tolerance):
                raise fail(ctx, "webhooks", f"the webhook for job {job.id} is not signed by the "
                                            f"{sig.scheme} scheme with the secret, or its "
                                            f"timestamp is off by more than {sig.tolerance:g} s "
                                            f"({sig.header}: {got!r})")
            digest = hmac.new(ctx.webhook_secret.encode(), d.body, hashlib.sha256).hexdigest()
            if sig.scheme == "hmac-sha256-hex" and (got is None or digest not in got):
                raise fail(ctx, "webhooks", f"the webhook for job {job.id} has signature {got!r}; "
                                            f"HMAC-SHA256 of its body is {digest}")
        if ctx.view.webhook_validator is not None:
            _validate(ctx, "webhooks", ctx.view.webhook_validator, d.json(),
                      f"the webhook body for job {job.id}")
        for name, value in obs.extra["expected_headers"].items():
            if d.header(name) is None and ctx.view.assumed.covers(
                    f"/x-jobmock/webhooks/headers/{name}"):
                continue
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


@register("webhook_retries", "a failed webhook is retried on the spec's schedule, with one "
          "body, no more often than the spec says", "webhook_retries")
def check_webhook_retries(ctx: SuiteContext, obs: Observation) -> None:
    hooks = ctx.spec.webhooks
    assert hooks is not None
    attempts = obs.extra["attempts"]
    policy = hooks.retry
    bodies = {a.body for a in attempts}
    if len(bodies) > 1:
        raise fail(ctx, "webhook_retries", "retries of one delivery carried different bodies")
    sig = hooks.signature
    if sig is not None and sig.scheme == "standard-webhooks" and not ctx.view.assumed.covers(
            "/x-jobmock/webhooks/signature"):
        ids = [a.header("webhook-id") for a in attempts]
        if len(set(ids)) > 1:
            raise fail(ctx, "webhook_retries", f"retries of one delivery carried different "
                                               f"webhook-id values {ids}; Standard Webhooks "
                                               f"keeps one id across retries")
    view = ctx.view
    if view.assumed.covers("/x-jobmock/webhooks/retry/delays"):
        # The spec assumed the schedule: only that failed attempts are retried is judged
        # (unless retrying at all is assumed too).
        if (len(attempts) < 2 <= obs.extra["expected"]
                and not view.assumed.covers("/x-jobmock/webhooks/retry")):
            raise fail(ctx, "webhook_retries", f"attempt 1 failed and no retry arrived; the spec "
                                               f"retries up to {policy.attempts} times")
        VERDICTS.note(ctx.spec.name, "webhook_retries",
                      "the schedule's delays are assumed by the spec: not judged")
        return
    # Real time: ((fraction, at least s) early, (fraction, at least s) late); virtual: exact.
    tolerance = obs.extra.get("tolerance")
    for n, (_a, _b) in enumerate(itertools.pairwise(attempts), start=1):
        gap = obs.extra["times"][n] - obs.extra["times"][n - 1]
        delay = policy.delay_after(n)
        if delay is None:
            break
        early, late = 0.0, None
        if tolerance is not None:
            (ef, emin), (lf, lmin) = tolerance
            early, late = max(emin, ef * delay), max(lmin, lf * delay)
        if gap + early + 1e-6 < delay:
            raise fail(ctx, "webhook_retries",
                       f"attempt {n + 1} came {gap:.1f}s after attempt {n}; the schedule says "
                       f"{delay:.0f}s" + (f" (tolerance {early:.1f}s)" if early else ""))
        if late is not None and gap > delay + late:
            raise fail(ctx, "webhook_retries",
                       f"attempt {n + 1} came {gap:.1f}s after attempt {n}; the schedule says "
                       f"{delay:.0f}s (tolerance {late:.1f}s)")
    if len(attempts) != obs.extra["expected"]:
        raise fail(ctx, "webhook_retries",
                   f"{len(attempts)} attempts arrived {obs.extra.get('window', '')}; the spec's "
                   f"schedule gives {obs.extra['expected']} ({policy.attempts} at most)")


def terminal_event_names(ctx: SuiteContext) -> list[str]:
    """The names a request's event filter uses for a job's end (as the spec names events:
    ``event_names`` by kind, then by status word and role; else the kind itself)."""
    hooks = ctx.spec.webhooks
    assert hooks is not None
    lc, names = ctx.spec.lifecycle, hooks.event_names
    out: set[str] = set()
    for word, role in lc.states.items():
        if not lc.is_terminal(word):
            continue
        kind = next((k for k in (word, role, "terminal") if k in hooks.events), None)
        if kind is not None:
            out.add(next((names[k] for k in (kind, word, role) if k in names), kind))
    return sorted(out)


def every_event_name(ctx: SuiteContext) -> list[str]:
    """Every event name a request's filter can choose: the spec's start, progress and output
    events (by ``event_names``) and :func:`terminal_event_names`."""
    hooks = ctx.spec.webhooks
    assert hooks is not None
    early = [hooks.event_names.get(k, k) for k in ("start", "progress", "output")
             if k in hooks.events]
    return sorted({*early, *terminal_event_names(ctx)})


@register("webhook_events", "a job's webhooks arrive in lifecycle order (progress never going "
          "back, nothing after the end), and only the events its request's filter names",
          "webhook_events")
def check_webhook_events(ctx: SuiteContext, obs: Observation) -> None:
    hooks = ctx.spec.webhooks
    assert hooks is not None and obs.job is not None
    job, view = obs.job, ctx.view
    words_at = view.pointers_of(hooks.render, "job.status")
    progress_at = view.pointers_of(hooks.render, "job.progress_pct")
    distinct: list[Any] = []  # each delivery once (a retry repeats its body), as first received
    for r in obs.extra["received"]:
        if r.body not in {d.body for d in distinct}:
            distinct.append(r)
    ordered = hooks.ordering != "parallel" and not view.assumed.covers(
        "/x-jobmock/webhooks/ordering")
    wanted = obs.extra.get("filter")
    terminal_only = (wanted is not None and set(wanted) <= set(terminal_event_names(ctx))
                     and not view.assumed.covers("/x-jobmock/webhooks/filter_from"))
    prev: tuple[str, Any] | None = None
    for r in distinct:
        try:
            body = r.json()
        except ValueError:
            continue  # the webhooks check judges the body
        word = next((v for p in words_at for found, v in [pointer_get(body, p)]
                     if found and isinstance(v, str) and v in ctx.spec.lifecycle.states), None)
        if word is None:
            continue
        progress = next((v for p in progress_at for found, v in [pointer_get(body, p)]
                         if found and isinstance(v, int | float)), None)
        if terminal_only and not view.is_terminal(word):
            raise fail(ctx, "webhook_events", f"job {job.id} asked for {wanted} only (the "
                                              f"request's event filter) and got a webhook "
                                              f"saying {word!r}")
        if ordered and prev is not None:
            before, progress_before = prev
            if not _reachable(ctx, before, word):
                raise fail(ctx, "webhook_events", f"job {job.id}'s webhook saying {word!r} "
                                                  f"arrived after one saying {before!r}: out of "
                                                  f"order (a job's events are delivered in order)")
            if (word == before and progress is not None and progress_before is not None
                    and progress < progress_before):
                raise fail(ctx, "webhook_events", f"job {job.id}'s webhook with progress "
                                                  f"{progress} arrived after one with "
                                                  f"{progress_before}: out of order")
        prev = (word, progress)
