"""The contract suite: a Hypothesis state machine per API, and the webhook retry schedule."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from jobmock.contract import ContractClient, SuiteContext, Tenant, TimeKeeper, build_machine
from jobmock.contract.checks import Observation, run_checks
from jobmock.receiver import WebhookReceiver
from jobmock.spec import ApiSpec

from .conftest import ContractOptions


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


def tenants(spec: ApiSpec, options: ContractOptions) -> list[Tenant]:
    demo = spec.demo_tenants()
    return [Tenant(demo[0][0], options.credential_a or demo[0][1]),
            Tenant(demo[1][0], options.credential_b or demo[1][1])]


def make_context(spec: ApiSpec, base_url: str, options: ContractOptions,
                 receiver: WebhookReceiver) -> SuiteContext:
    client = ContractClient(spec, base_url)
    keeper = TimeKeeper(client, budget=options.budget)
    if keeper.virtual:
        client.send("POST", "/_jobmock/reset", note="start from a clean mock")
    secret = options.webhook_secret
    if secret is None and spec.webhooks is not None and spec.webhooks.signature is not None:
        secret = spec.webhooks.signature.secret
    return SuiteContext(spec, client, tenants(spec, options), timekeeper=keeper,
                        receiver=receiver, receiver_url=options.receiver_url or receiver.url,
                        webhook_secret=secret)


def test_state_machine(api_spec: ApiSpec, base_url: str, contract_options: ContractOptions,
                       receiver: WebhookReceiver) -> None:
    contexts: list[SuiteContext] = []

    def factory() -> SuiteContext:
        receiver.clear()
        ctx = make_context(api_spec, base_url, contract_options, receiver)
        contexts.append(ctx)
        return ctx

    machine = build_machine(api_spec, factory)
    try:
        run_state_machine_as_test(machine, settings=settings(
            max_examples=contract_options.examples,
            stateful_step_count=contract_options.steps,
            deadline=None, derandomize=True, database=None,
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        ))
    finally:
        for ctx in contexts:
            ctx.client.close()
    unfinished = sorted({j for c in contexts for j in c.unfinished})
    if unfinished:
        print(f"\n{api_spec.name}: {len(unfinished)} job(s) still running when the budget ended: "
              f"{', '.join(unfinished[:10])}")


@pytest.mark.needs_webhooks
def test_webhook_retry_schedule(api_spec: ApiSpec, base_url: str,
                                contract_options: ContractOptions,
                                receiver: WebhookReceiver) -> None:
    """A receiver that always fails sees every attempt of the spec's schedule, and no more."""
    hooks = api_spec.webhooks
    assert hooks is not None
    ctx = make_context(api_spec, base_url, contract_options, receiver)
    if not ctx.time.virtual:
        ctx.client.close()
        pytest.skip("the retry schedule takes real minutes; run against a jobmock virtual clock")
    receiver.clear()
    receiver.fail_always(status=500)
    try:
        _run_schedule(ctx, api_spec, receiver)
    finally:
        receiver.heal()
        ctx.client.close()


def _run_schedule(ctx: SuiteContext, spec: ApiSpec, receiver: WebhookReceiver) -> None:
    from jobmock.contract.machine import _del_pointer, _set_pointer

    hooks = spec.webhooks
    assert hooks is not None
    op = next(o for o in spec.submit_operations if o.body_example is not None)
    body = _set_pointer(_del_pointer(op.body_example, hooks.url_pointer), hooks.url_pointer,
                        ctx.receiver_url)
    params = {p.name: (p.schema.get("enum") or ["contract"])[0]
              for p in op.parameters if p.location == "path"}
    mode = min(ctx.modes(op), key=lambda m: m.wait)
    ex = ctx.time.hold(lambda: ctx.client.call(
        op, tenant=ctx.tenants[0], params=params, body=body, headers=mode.headers,
        query=mode.query, note="submit with a callback"), mode.wait)
    job_id = ctx.job_id_of(op, ex)
    assert job_id, f"no job id in {ex.status} {ex.response_body[:200]!r}"

    def arrived() -> list[object]:
        return [r for r in list(receiver.received) if job_id.encode() in r.body
                and any(f'"{w}"'.encode() in r.body for w in spec.lifecycle.terminal_words)]

    def clock() -> float:
        return float(ctx.client.send("GET", "/_jobmock/clock").json()["epoch"])

    times: list[float] = []
    for _ in range(200):
        ctx.time.advance(30)
        if _wait(arrived, 1, 0.2):
            times.append(clock())
            break
    assert times, "the job never ended or its first webhook never came"
    for n in range(1, hooks.retry.attempts):
        delay = hooks.retry.delay_after(n) or 0
        if delay > 1:
            ctx.time.advance(delay - 1)
            time.sleep(0.05)
            assert len(arrived()) == n, f"attempt {n + 1} came before its {delay:.0f}s delay"
            ctx.time.advance(1)
        else:
            ctx.time.advance(delay)
        if not _wait(arrived, n + 1, 5.0):
            break
        times.append(clock())
    ctx.time.advance(max(hooks.retry.delays or (0,)) * 4 + 60)
    time.sleep(0.3)
    attempts = arrived()
    run_checks(ctx, Observation("webhook_retries", ctx.client.exchanges[-1], None, {
        "attempts": attempts, "expected": hooks.retry.attempts, "times": times}))


def _wait(found: object, count: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(found()) >= count:  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return len(found()) >= count  # type: ignore[operator]
