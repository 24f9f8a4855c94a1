"""Running the suite: the state machine and the webhook schedule, against one base URL."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from ..pointers import with_value, without
from ..receiver import Received, WebhookReceiver
from ..spec import ApiSpec
from ..urlrules import check_callback_url
from .checks import run_checks
from .client import ContractClient, Tenant
from .context import Observation, SuiteContext, TimeKeeper
from .machine import build_machine

__all__ = ["RunOptions", "make_context", "run_machine", "run_webhook_schedule"]


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How to run the suite against one server."""

    credential_a: str | None = None
    credential_b: str | None = None
    webhook_secret: str | None = None
    receiver_url: str | None = None
    examples: int = 6
    steps: int = 25
    budget: float = 300.0
    shrink: bool = True


def tenants(spec: ApiSpec, options: RunOptions) -> list[Tenant]:
    demo = spec.demo_tenants()
    return [Tenant(demo[0][0], options.credential_a or demo[0][1]),
            Tenant(demo[1][0], options.credential_b or demo[1][1])]


def make_context(spec: ApiSpec, base_url: str, options: RunOptions,
                 receiver: WebhookReceiver | None, started: float | None = None) -> SuiteContext:
    """A fresh context; against a jobmock virtual clock the mock is reset first.

    ``started`` is when the run began: the time budget is for the whole run.
    """
    client = ContractClient(spec, base_url)
    keeper = TimeKeeper(client, budget=options.budget, started=started)
    if keeper.virtual:
        client.send("POST", "/_jobmock/reset", note="start from a clean mock")
    secret = options.webhook_secret
    if secret is None and spec.webhooks is not None and spec.webhooks.signature is not None:
        secret = spec.webhooks.signature.secret
    url = options.receiver_url or _loopback_receiver(spec, client, keeper, receiver)
    return SuiteContext(spec, client, tenants(spec, options), timekeeper=keeper,
                        receiver=receiver, receiver_url=url, webhook_secret=secret)


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


def run_machine(spec: ApiSpec, base_url: str, options: RunOptions,
                receiver: WebhookReceiver | None) -> list[str]:
    """Run the state machine; raises the first :class:`ContractViolation` (shrunk).

    Returns the ids of jobs still running when the time budget ended.
    """
    contexts: list[SuiteContext] = []
    # Against a real-time server each example gets an equal slice of the time budget.
    per_example = RunOptions(**{**{f: getattr(options, f) for f in options.__slots__},
                                "budget": options.budget / max(1, options.examples)})

    def factory() -> SuiteContext:
        if receiver is not None:
            receiver.clear()
        ctx = make_context(spec, base_url, per_example, receiver)
        contexts.append(ctx)
        return ctx

    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if options.shrink else [])
    try:
        run_state_machine_as_test(build_machine(spec, factory), settings=settings(
            max_examples=options.examples, stateful_step_count=options.steps, deadline=None,
            derandomize=True, database=None, phases=phases,
            suppress_health_check=list(HealthCheck)))
    finally:
        for ctx in contexts:
            ctx.client.close()
    return sorted({j for c in contexts for j in c.unfinished})


def run_webhook_schedule(spec: ApiSpec, base_url: str, options: RunOptions,
                         receiver: WebhookReceiver) -> bool:
    """A receiver that always fails must see every attempt of the spec's schedule, on time,
    with one body, and no more. Needs a jobmock virtual clock and a receiver the server
    accepts; returns False (not run) without them."""
    ctx = make_context(spec, base_url, options, receiver)
    try:
        if not ctx.time.virtual or ctx.receiver_url is None:
            return False
        receiver.clear()
        receiver.fail_always(status=500)
        _schedule(ctx, spec, receiver)
        return True
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
    body = with_value(without(op.body_example, hooks.url_pointer), hooks.url_pointer,
                        ctx.receiver_url)
    params = {p.name: ((ctx.view.resolve(p.schema) or {}).get("enum") or ["contract"])[0]
              for p in op.parameters if p.location == "path"}
    mode = min(ctx.modes(op), key=lambda m: m.wait)
    ex = ctx.time.hold(lambda: ctx.client.call(
        op, tenant=ctx.tenants[0], params=params, body=body, headers=mode.headers,
        query=mode.query, note="submit with a callback"), mode.wait)
    job_id = ctx.job_id_of(op, ex)
    assert job_id, f"no job id in {ex.status} {ex.response_body[:200]!r}"
    finals = [f'"{w}"'.encode() for w in spec.lifecycle.terminal_words]

    def arrived() -> list[Received]:
        return [r for r in list(receiver.received)
                if job_id.encode() in r.body and any(w in r.body for w in finals)]

    def clock() -> float:
        return float(ctx.client.send("GET", "/_jobmock/clock").json()["epoch"])

    times: list[float] = []
    # One clock second at a time, so the first attempt's time is known to the second.
    for _ in range(6000):
        ctx.time.advance(1)
        if _wait(arrived, 1, 0.05):
            times.append(clock())
            break
    assert times, f"job {job_id} never ended or its first webhook never came"
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
