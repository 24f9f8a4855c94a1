"""Running the suite against one base URL: the state machine, the probes and the webhook
schedule, each within its share of the run's time budget (:mod:`jobmock.contract.budget`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis.errors import Flaky
from hypothesis.stateful import run_state_machine_as_test

from ..pointers import with_value
from ..receiver import Received, WebhookReceiver
from ..spec import ApiSpec
from ..urlrules import check_callback_url
from .budget import RunBudget, ShrinkGuard, StopRun
from .checks import run_checks
from .client import ContractClient, Tenant
from .context import Observation, SuiteContext, TimeKeeper, has_virtual_clock
from .machine import build_machine, without_callback
from .probes import (
    first_delivery,
    probe_callback_urls,
    probe_outcomes,
    probe_queue_order,
    schedule_in_real_time,
)
from .specview import SpecView
from .verdicts import VERDICTS
from .violations import ContractViolation

__all__ = ["RunOptions", "make_context", "run_machine", "run_probes", "run_webhook_schedule"]


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How to run the suite against one server."""

    credential_a: str | None = None
    credential_b: str | None = None
    webhook_secret: str | None = None
    receiver_url: str | None = None
    examples: int = 6
    steps: int = 25
    #: Wall-clock seconds for what the call runs (the whole run, from the pytest harness).
    budget: float = 300.0
    shrink: bool = True
    #: Hypothesis seed: the same seed gives the same run; another explores other runs.
    seed: int = 0
    #: Real-time seconds to watch a failing webhook's retries (None: only where the first
    #: retry fits in 60 s and half the budget left; 0: never).
    webhook_schedule_budget: float | None = None
    #: Examples tried while shrinking a failure, at most.
    shrink_steps: int = 150


def tenants(spec: ApiSpec, options: RunOptions) -> list[Tenant]:
    demo = spec.demo_tenants()
    return [Tenant(demo[0][0], options.credential_a or demo[0][1]),
            Tenant(demo[1][0], options.credential_b or demo[1][1])]


def make_context(spec: ApiSpec, base_url: str, options: RunOptions,
                 receiver: WebhookReceiver | None, started: float | None = None, *,
                 budget: RunBudget | None = None, guard: ShrinkGuard | None = None,
                 view: SpecView | None = None, virtual: bool | None = None) -> SuiteContext:
    """A fresh context; against a jobmock virtual clock the mock is reset first.

    ``budget`` (or ``options.budget`` from ``started``) is how long it may let time pass.
    """
    client = ContractClient(spec, base_url,
                            on_failure=guard.failure if guard is not None else None)
    keeper = TimeKeeper(client, budget=budget if budget is not None else options.budget,
                        started=started, virtual=virtual)
    if keeper.virtual:
        client.send("POST", "/_jobmock/reset", body={}, note="start from a clean mock")
    secret = options.webhook_secret
    if secret is None and spec.webhooks is not None and spec.webhooks.signature is not None:
        secret = spec.webhooks.signature.secret
    url = options.receiver_url or _loopback_receiver(spec, client, keeper, receiver)
    if spec.webhooks is not None and url is None:
        why = ("no webhook receiver was given" if receiver is None else
               f"the server's callback rule ({spec.webhooks.url_rule}) refuses the suite's "
               f"loopback receiver: give --receiver-url (a URL it accepts that forwards to it)")
        VERDICTS.not_run(spec.name, "webhooks", why)
        VERDICTS.not_run(spec.name, "webhook_retries", why)
    return SuiteContext(spec, client, tenants(spec, options), timekeeper=keeper,
                        receiver=receiver, receiver_url=url, webhook_secret=secret,
                        guard=guard, view=view)


def _loopback_receiver(spec: ApiSpec, client: ContractClient, keeper: TimeKeeper,
                       receiver: WebhookReceiver | None) -> str | None:
    """The suite's loopback receiver URL, if the server will accept it as a callback URL:
    the spec's rule allows it, or a jobmock server says it accepts private callbacks.
    Otherwise callbacks are not tested (give ``--receiver-url`` to test them)."""
    if receiver is None or spec.webhooks is None:
        return None
    if check_callback_url(receiver.url, spec.webhooks.url_rule) is None:
        return receiver.url
    if keeper.virtual:
        health = client.send("GET", "/_jobmock/health", note="does the mock accept loopback callbacks?")
        data = health.json() if health.status == 200 else None
        if isinstance(data, dict) and data.get("allow_private_callbacks"):
            return receiver.url
    return None


def _violation_in(exc: BaseException) -> ContractViolation | None:
    """The contract violation inside ``exc`` (itself, or in an exception group)."""
    if isinstance(exc, ContractViolation):
        return exc
    for inner in getattr(exc, "exceptions", ()) or ():
        found = _violation_in(inner)
        if found is not None:
            return found
    return None


def _seed_note(options: RunOptions) -> str:
    return (f"Seed {options.seed}: the same run again with `--seed {options.seed}` "
            f"(jobmock contract) or `--contract-seed {options.seed}` (pytest); another seed "
            f"explores other runs.")


def run_machine(spec: ApiSpec, base_url: str, options: RunOptions,
                receiver: WebhookReceiver | None, *, budget: RunBudget | None = None) -> list[str]:
    """Run the state machine; raises the first :class:`ContractViolation` (shrunk, within
    bounds: its notes say the seed and whether shrinking was cut short).

    ``budget`` (default: ``options.budget`` from now) bounds it: no example starts after it
    ends. Returns the ids of jobs still running when the time budget ended.
    """
    budget = budget if budget is not None else RunBudget(options.budget)
    contexts: list[SuiteContext] = []
    view = SpecView(spec)
    probe = ContractClient(spec, base_url)
    try:
        virtual = has_virtual_clock(probe)
    finally:
        probe.close()
    # Real time: a failure is shrunk for at most as long as it took to find (so a failing run
    # takes about twice a clean one); a virtual clock shrinks within the budget.
    guard = ShrinkGuard(budget, steps=options.shrink_steps,
                        seconds=None if not virtual else max(5.0, budget.left))
    # Against a real-time server each example gets an equal slice of the time budget.
    per_example = budget.seconds / max(1, options.examples)
    record = VERDICTS.api(spec.name)
    record.seed = options.seed

    def factory() -> SuiteContext:
        if receiver is not None:
            receiver.clear()
        ctx = make_context(spec, base_url, options, receiver, budget=RunBudget(per_example),
                           guard=guard, view=view, virtual=virtual)
        contexts.append(ctx)
        return ctx

    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if options.shrink else [])
    machine = seed(options.seed)(build_machine(spec, factory, guard))
    try:
        run_state_machine_as_test(machine, settings=settings(
            max_examples=options.examples, stateful_step_count=options.steps, deadline=None,
            derandomize=False, database=None, phases=phases, report_multiple_bugs=False,
            print_blob=False, suppress_health_check=list(HealthCheck)))
    except StopRun:  # the budget or the shrink bounds ended the run
        if guard.best is not None:
            raise guard.best.with_notes(
                _seed_note(options), f"The reproduction may not be minimal: {guard.stopped} "
                                     f"({guard.attempts} examples tried).") from guard.best
        record.notes.append(f"{options.examples - guard.examples} of {options.examples} "
                            f"example(s) not run: {guard.stopped}")
    except BaseException as exc:
        found = _violation_in(exc) or (guard.best if isinstance(exc, Flaky) else None)
        if found is None:
            if isinstance(exc, Flaky) and budget.over:
                # An example cut short by the budget drew less than before: the run ended.
                record.notes.append(f"{options.examples - guard.examples} of "
                                    f"{options.examples} example(s) not run: the state "
                                    f"machine's budget ({budget.seconds:.0f}s) ended")
                return sorted({j for c in contexts for j in c.unfinished})
            raise
        notes = [_seed_note(options)]
        if not options.shrink:
            notes.append("The reproduction was not shrunk: it may not be minimal.")
        if found is not exc and not isinstance(exc, ContractViolation):
            notes.append("It did not fail the same way when replayed (it depends on timing): "
                         "the requests below are from a failing run.")
        # Chained to Hypothesis's own error: its trace (the steps it ran) shows under -v.
        raise found.with_notes(*notes) from exc
    finally:
        for ctx in contexts:
            ctx.client.close()
    return sorted({j for c in contexts for j in c.unfinished})


def run_probes(spec: ApiSpec, base_url: str, options: RunOptions,
               receiver: WebhookReceiver | None, *, budget: RunBudget | None = None) -> None:
    """The one-shot probes: callback URL rules, queue order, every planned outcome."""
    budget = budget if budget is not None else RunBudget(options.budget)
    ctx = make_context(spec, base_url, options, receiver, budget=budget)
    try:
        allow_private = False
        if ctx.time.virtual:
            health = ctx.client.send("GET", "/_jobmock/health", note="does the mock accept "
                                                                      "private callbacks?")
            data = health.json() if health.status == 200 else None
            allow_private = isinstance(data, dict) and bool(data.get("allow_private_callbacks"))
        probe_callback_urls(ctx, allow_private=allow_private)
        if not budget.over:
            probe_queue_order(ctx)
        elif spec.limits.concurrency_max is not None:
            VERDICTS.not_run(spec.name, "queue_order", "the budget ended before the probe")
        if not budget.over:
            probe_outcomes(ctx)
    finally:
        ctx.client.close()


def run_webhook_schedule(spec: ApiSpec, base_url: str, options: RunOptions,
                         receiver: WebhookReceiver, *, budget: RunBudget | None = None) -> bool:
    """A receiver that always fails must see every attempt of the spec's schedule, on time,
    with one body, and no more. Needs a receiver URL the server accepts. On a jobmock
    virtual clock the whole schedule is judged; in real time, what fits in
    ``options.webhook_schedule_budget`` seconds. Returns False (not run, the reason recorded)."""
    budget = budget if budget is not None else RunBudget(options.budget)
    hooks = spec.webhooks
    if hooks is None:
        return False
    ctx = make_context(spec, base_url, options, receiver, budget=budget)
    try:
        if ctx.receiver_url is None or hooks.retry.attempts < 2:
            return False
        receiver.clear()
        receiver.fail_always(status=500)
        if ctx.time.virtual:
            _schedule(ctx, spec, receiver)
            return True
        seconds = options.webhook_schedule_budget
        first = hooks.retry.delays[0]
        need = first * 1.25 + 10
        if seconds is None:
            room = min(60.0, budget.left * 0.5)
            if need > room:
                VERDICTS.not_run(spec.name, "webhook_retries",
                                 f"in real time the first retry comes {first:.0f}s after a failed "
                                 f"attempt; give --webhook-schedule-budget {need:.0f} (seconds) "
                                 f"or more to watch it")
                return False
            seconds = room
        if seconds <= 0:
            VERDICTS.not_run(spec.name, "webhook_retries", "--webhook-schedule-budget is 0")
            return False
        if seconds > budget.left:
            VERDICTS.note(spec.name, "webhook_retries", f"watched {max(0.0, budget.left):.0f}s of "
                                                        f"the {seconds:.0f}s asked: the budget")
            seconds = max(0.0, budget.left)
        return schedule_in_real_time(ctx, receiver, seconds)
    finally:
        receiver.heal()
        ctx.client.close()


def _wait(found: Callable[[], list[Any]], count: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(found()) >= count:
            return True
        time.sleep(0.01)
    return len(found()) >= count


def _schedule(ctx: SuiteContext, spec: ApiSpec, receiver: WebhookReceiver) -> None:
    hooks = spec.webhooks
    assert hooks is not None
    op = next(o for o in spec.submit_operations if o.body_example is not None)
    body = with_value(without_callback(spec, ctx.view, op, op.body_example), hooks.url_pointer,
                      ctx.receiver_url)
    params = {p.name: ((ctx.view.resolve(p.schema) or {}).get("enum") or ["contract"])[0]
              for p in op.parameters if p.location == "path"}
    mode = min(ctx.modes(op), key=lambda m: m.wait)
    ex = ctx.time.hold(lambda: ctx.client.call(
        op, tenant=ctx.tenants[0], params=params, body=body, headers=mode.headers,
        query=mode.query, note="submit with a callback", wait=mode.wait), mode.wait)
    job_id = ctx.job_id_of(op, ex)
    assert job_id, f"no job id in {ex.status} {ex.response_body[:200]!r}"
    def arrived() -> list[Received]:
        """The attempts of the job's first delivery (its retries carry the same body)."""
        return first_delivery(receiver, job_id)

    def clock() -> float:
        return float(ctx.client.send("GET", "/_jobmock/clock").json()["epoch"])

    times: list[float] = []
    # One clock second at a time, so the first attempt's time is known to the second.
    for _ in range(6000):
        if ctx.time.budget.over:
            break
        ctx.time.advance(1)
        if _wait(arrived, 1, 0.05):
            times.append(clock())
            break
    if not times:
        run_checks(ctx, Observation("webhook_retries", ctx.client.exchanges[-1], None, {
            "attempts": [], "expected": hooks.retry.attempts, "times": [],
            "window": f"for job {job_id} (it never ended, or its first webhook never came)"}))
    for n in range(1, hooks.retry.attempts):
        delay = hooks.retry.delay_after(n) or 0
        if delay > 1:
            ctx.time.advance(delay - 1)
            time.sleep(0.05)
            if len(arrived()) > n:
                times.append(clock())
                break
            ctx.time.advance(1)
        else:
            ctx.time.advance(delay)
        if not _wait(arrived, n + 1, 3.0):
            break
        times.append(clock())
    ctx.time.advance(max(hooks.retry.delays or (0,)) * 4 + 60)
    time.sleep(0.3)
    run_checks(ctx, Observation("webhook_retries", ctx.client.exchanges[-1], None, {
        "attempts": arrived(), "expected": hooks.retry.attempts, "times": times}))
