"""One-shot probes of rules the state machine cannot reach by chance, each derived from
the spec alone and judged by a registered check (:mod:`jobmock.contract.probe_checks`):

- :func:`probe_callback_urls`: every spelling of a callback URL the spec's ``url_rule``
  forbids (loopback, private, link-local, ``localhost``, userinfo tricks, IPv6 forms,
  decimal, hex and octal addresses, wrong schemes) gets the spec's refusal; one the rule
  allows is accepted. Forbidden URLs name the suite's own receiver port (loopback) or
  unroutable ports, and the probe stops at the first one accepted, so a broken server
  sends nothing anywhere that matters; the allowed URL is on the reserved ``.invalid``
  domain (or ``--receiver-url``), which never resolves.
- :func:`probe_queue_order`: with more jobs than the concurrency limit, a tenant's jobs
  start in submission order (FIFO), judged from polls only.
- :func:`probe_outcomes`: against a jobmock control plane with a virtual clock, one job
  per outcome the spec plans (failed, expired, ...), so every check sees every outcome.
- :func:`schedule_in_real_time`: a receiver that always fails sees the spec's retry
  schedule, within a stated tolerance, in real time.
"""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from ..pointers import with_value
from ..receiver import Received
from ..spec import Operation
from ..urlrules import check_callback_url
from .checks import observe_poll, run_checks
from .context import JobRecord, Observation, SuiteContext
from .machine import without_callback
from .verdicts import VERDICTS

__all__ = ["first_delivery", "forbidden_callback_urls", "probe_callback_urls", "probe_outcomes",
           "probe_queue_order", "schedule_in_real_time"]

#: The allowed callback URL the probe submits when no --receiver-url is given: the reserved
#: ``.invalid`` domain (RFC 2606) never resolves, so nothing is ever sent to it.
ALLOWED_URL = "https://contract-probe.invalid/hook"
#: Real-time schedule tolerances: (fraction of the delay, at least this many seconds).
EARLY = (0.10, 1.0)
LATE = (0.25, 5.0)


def first_delivery(receiver: Any, job_id: str) -> list[Received]:
    """Every attempt of the first webhook delivery for ``job_id`` the receiver got (a delivery
    keeps its exact body across attempts; later events of the job are other deliveries)."""
    got = [r for r in list(receiver.received) if job_id.encode() in r.body]
    return [r for r in got if r.body == got[0].body] if got else []


def forbidden_callback_urls(port: int | None) -> list[str]:
    """Spellings of callback URLs a strict rule forbids, loopback ones first (they name the
    suite's receiver ``port``; the others an unroutable discard port)."""
    p = port or 9
    loop = ["localhost", "127.0.0.1", "127.1", "2130706433", "0x7f000001", "0177.0.0.1",
            "[::1]", "[::ffff:127.0.0.1]", "contract-probe.example@127.0.0.1", "api.localhost"]
    private = ["10.255.255.1", "172.31.255.254", "192.168.255.254", "169.254.0.1", "0.0.0.0",
               "[fe80::1]", "[fd00::1]"]
    return ([f"https://{h}:{p}/contract-probe" for h in loop]
            + [f"https://{h}:9/contract-probe" for h in private]
            + ["http://contract-probe.invalid/hook", "ftp://contract-probe.invalid/hook",
               "/contract-probe", "not a url"])


def _first_op(ctx: SuiteContext) -> Operation:
    ops = ctx.spec.submit_operations
    return next((o for o in ops if o.body_example is not None), ops[0])


def _params(ctx: SuiteContext, op: Operation) -> dict[str, Any]:
    return {p.name: ((ctx.view.resolve(p.schema) or {}).get("enum") or ["contract"])[0]
            for p in op.parameters if p.location == "path"}


def _submit(ctx: SuiteContext, op: Operation, body: Any, note: str,
            tenant: int = 0) -> tuple[Any, Any]:
    """Submit ``body`` without waiting; the exchange and the body sent."""
    if ctx.spec.idempotency_pointer is not None and isinstance(body, dict):
        body = with_value(body, ctx.spec.idempotency_pointer, f"probe-{uuid.uuid4().hex[:16]}")
    mode = min(ctx.modes(op), key=lambda m: m.wait)
    ex = ctx.time.hold(lambda: ctx.client.call(
        op, tenant=ctx.tenants[tenant], params=_params(ctx, op), body=body, headers=mode.headers,
        query=mode.query, note=note, wait=mode.wait), mode.wait)
    return ex, body


def _record(ctx: SuiteContext, op: Operation, ex: Any, body: Any, tenant: int = 0) -> JobRecord | None:
    job_id = ctx.job_id_of(op, ex) if ex.status in ctx.view.submit_statuses[op.operation_id] else None
    if not job_id:
        return None
    job = JobRecord(job_id, op, ctx.tenants[tenant], _params(ctx, op), body,
                    ctx.job_type(op, _params(ctx, op), body))
    ctx.jobs_by_id[job_id] = job
    return job


def probe_callback_urls(ctx: SuiteContext, *, allow_private: bool = False) -> None:
    """Submit forbidden callback URLs (each must get the spec's refusal), then an allowed one."""
    hooks, spec, api = ctx.spec.callbacks, ctx.spec, ctx.spec.name
    if hooks is None or hooks.url_rule == "any":
        return
    if ctx.view.assumed.covers("/x-jobmock/webhooks/url_rule") or \
            ctx.view.assumed.covers("/x-jobmock/callbacks/url_rule"):
        VERDICTS.not_run(api, "callback_urls", "the spec marks its callback URL rule assumed: "
                                               "not demanded")
        return
    op = _first_op(ctx)
    base = without_callback(spec, ctx.view, op, op.body_example or {})
    port = urlsplit(ctx.receiver.url).port if ctx.receiver is not None else None
    if allow_private:
        VERDICTS.note(api, "callback_urls", "the mock accepts private callback URLs "
                                            "(--allow-private-callbacks): only the rest was judged")
    for url in forbidden_callback_urls(port):
        why = check_callback_url(url, hooks.url_rule, allow_private=allow_private)
        if why is None:
            continue  # the rule (as configured) allows this spelling
        body = with_value(base, hooks.url_pointer, url)
        ex, _ = _submit(ctx, op, body, f"a forbidden callback URL ({why})")
        run_checks(ctx, Observation("callback_url", ex, None, {
            "op": op, "url": url, "expect": "refused", "why": why}))
    allowed = ctx.receiver_url if ctx.receiver_url and check_callback_url(
        ctx.receiver_url, hooks.url_rule, allow_private=allow_private) is None else ALLOWED_URL
    body = with_value(base, hooks.url_pointer, allowed)
    ex, sent = _submit(ctx, op, body, "an allowed callback URL")
    if allowed == ALLOWED_URL and 400 <= ex.status < 500:
        VERDICTS.note(api, "callback_urls", f"{ALLOWED_URL} was refused ({ex.status}): a server "
                                            "may resolve host names at submit; give --receiver-url "
                                            "to judge an allowed URL")
        return
    run_checks(ctx, Observation("callback_url", ex, None, {
        "op": op, "url": allowed, "expect": "accepted", "why": ""}))
    _record(ctx, op, ex, sent)


def probe_queue_order(ctx: SuiteContext, *, step: float = 0.25, max_rounds: int = 400) -> None:
    """More jobs than the concurrency limit, polled latest first until the last one started."""
    limit, api = ctx.spec.limits.concurrency_max, ctx.spec.name
    if limit is None:
        return
    if limit > 50:
        VERDICTS.not_run(api, "queue_order", f"the concurrency limit ({limit}) is too high to "
                                             f"fill with a probe")
        return
    op = _first_op(ctx)
    base = without_callback(ctx.spec, ctx.view, op, op.body_example or {})
    jobs: list[JobRecord] = []
    for n in range(limit + 3):
        ex, sent = _submit(ctx, op, base, f"queue order: job #{n + 1} of {limit + 3}")
        run_checks(ctx, Observation("submit", ex, None, {
            "op": op, "job_id": ctx.job_id_of(op, ex), "new": True}))
        job = _record(ctx, op, ex, sent)
        if job is not None:
            jobs.append(job)
    started: dict[int, str] = {}
    backlog = False
    for _ in range(max_rounds):
        rows = []
        for index in range(len(jobs) - 1, -1, -1):
            job = jobs[index]
            ex = ctx.poll(job, note=f"queue order: job #{index + 1}")
            rows.append((index, job.id, observe_poll(ctx, job, ex)))
        roles = [ctx.view.role(w) for _, _, w in rows]
        backlog = backlog or ("queued" in roles and any(r != "queued" for r in roles))
        run_checks(ctx, Observation("queue_order", ctx.client.exchanges[-1], None,
                                    {"round": rows, "started": started}))
        if "queued" not in roles or (ctx.time.budget.over and not ctx.time.virtual):
            break
        ctx.time.advance(step)
    if not backlog:
        VERDICTS.note(api, "queue_order", f"no backlog was seen ({len(jobs)} jobs against a "
                                          f"limit of {limit}): order not proven either way")


def probe_outcomes(ctx: SuiteContext) -> None:
    """One job per outcome the spec plans, forced through jobmock's control plane (virtual
    clock only), each polled to its end: every poll check sees every outcome."""
    if not ctx.time.virtual:
        return
    op = _first_op(ctx)
    base = without_callback(ctx.spec, ctx.view, op, op.body_example or {})
    jobs = []
    for word, _ in ctx.spec.timing.outcomes:
        ex, sent = _submit(ctx, op, base, f"a job that will end {word!r}")
        job = _record(ctx, op, ex, sent)
        if job is None:
            continue
        forced = ctx.client.send("POST", f"/_jobmock/jobs/{job.id}/outcome",
                                 body={"status": word, "when": "scheduled"},
                                 note=f"plan its outcome: {word}")
        if forced.status == 200:
            jobs.append(job)
    for _ in range(60):
        open_jobs = [j for j in jobs if not (j.statuses and ctx.view.is_terminal(j.statuses[-1]))]
        if not open_jobs:
            break
        for job in open_jobs:
            observe_poll(ctx, job, ctx.poll(job, note="a planned outcome"))
        ctx.time.advance(5)
    for job in jobs:
        observe_poll(ctx, job, ctx.poll(job, note="a planned outcome, again"))


def schedule_in_real_time(ctx: SuiteContext, receiver: Any, seconds: float) -> bool:
    """Fail every attempt for ``seconds`` of real time and judge the gaps between those that
    arrive against the spec's schedule (tolerance :data:`EARLY` / :data:`LATE`). Retries due
    after the window are not judged; the row says how many were."""
    hooks = ctx.spec.webhooks
    assert hooks is not None and ctx.receiver_url is not None
    op = _first_op(ctx)
    body = with_value(without_callback(ctx.spec, ctx.view, op, op.body_example or {}),
                      hooks.url_pointer, ctx.receiver_url)
    started = time.monotonic()
    ex, _ = _submit(ctx, op, body, "submit with a callback (real-time schedule)")
    job_id = ctx.job_id_of(op, ex)
    if not job_id:
        VERDICTS.not_run(ctx.spec.name, "webhook_retries",
                         f"the submit with a callback was answered {ex.status}")
        return False
    def arrived() -> list[Received]:
        """The attempts of the job's first delivery (its retries carry the same body)."""
        return first_delivery(receiver, job_id)

    policy = hooks.retry
    late = [max(LATE[1], LATE[0] * d) for d in policy.delays]
    end = time.time() + max(0.0, seconds - (time.monotonic() - started))
    # Watch the whole window even when the next retry is due after it: an early one may come
    # (and stop at the first one that does: it is a violation already).
    while time.time() < end and len(arrived()) < policy.attempts:
        got = arrived()
        n = len(got) - 1
        if 1 <= n <= len(policy.delays) and got[n].at - got[n - 1].at < policy.delays[n - 1] - max(
                EARLY[1], EARLY[0] * policy.delays[n - 1]):
            break
        time.sleep(0.05)
    got = arrived()
    if not got:
        VERDICTS.not_run(ctx.spec.name, "webhook_retries",
                         f"no webhook for job {job_id} arrived within {seconds:.0f}s")
        return False
    seen_until = time.time()
    covered, due = 0, got[0].at
    for n, delay in enumerate(policy.delays):
        due += delay
        if due + late[n] > seen_until:
            break
        covered += 1
    VERDICTS.note(ctx.spec.name, "webhook_retries",
                  f"real time, {seconds:.0f}s: {covered} of {len(policy.delays)} retries were due "
                  f"within it; tolerance {EARLY[0]:.0%} early / {LATE[0]:.0%} late (at least "
                  f"{EARLY[1]:g}s / {LATE[1]:g}s)")
    run_checks(ctx, Observation("webhook_retries", ex, None, {
        "attempts": got, "expected": min(policy.attempts, 1 + covered),
        "times": [r.at for r in got], "tolerance": (EARLY, LATE),
        "window": f"in {seconds:.0f}s of real time"}))
    return True
