"""The contract suite: a Hypothesis state machine per API, the webhook retry schedule, and
schemathesis's stateless phase for every operation."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import ignored_auth

from jobmock.contract.budget import RunBudget, StopRun
from jobmock.contract.runner import RunOptions, run_machine, run_probes, run_webhook_schedule
from jobmock.contract.stateless import StatelessRunner, extra_checks
from jobmock.contract.suite.conftest import ContractOptions
from jobmock.contract.verdicts import VERDICTS
from jobmock.contract.violations import ContractViolation
from jobmock.receiver import WebhookReceiver
from jobmock.spec import ApiSpec

__all__ = ["test_probes", "test_state_machine", "test_stateless",
           "test_webhook_retry_schedule"]


def run_options(o: ContractOptions) -> RunOptions:
    return RunOptions(o.credential_a, o.credential_b, o.webhook_secret, o.receiver_url,
                      o.examples, o.steps, o.budget, seed=o.seed,
                      webhook_schedule_budget=o.webhook_schedule_budget)


@contextmanager
def verdict(request: pytest.FixtureRequest) -> Iterator[None]:
    """A violation fails the test with the check, expected vs seen and the curl lines; the
    Hypothesis and Python trace only under -v."""
    failed: ContractViolation | None = None
    try:
        yield
    except ContractViolation as violation:
        if request.config.getoption("verbose", 0) > 0:
            raise
        failed = violation
    if failed is not None:  # no chained trace: the report says it all
        raise pytest.fail.Exception(failed.report(), pytrace=False) from None


def test_state_machine(api_spec: ApiSpec, base_url: str, contract_options: ContractOptions,
                       receiver: WebhookReceiver, run_budget: RunBudget,
                       request: pytest.FixtureRequest) -> None:
    """Every rule's answers pass every registered check; jobs left running are reported."""
    with verdict(request):
        run_machine(api_spec, base_url, run_options(contract_options), receiver,
                    budget=run_budget.share(0.5))


def test_probes(api_spec: ApiSpec, base_url: str, contract_options: ContractOptions,
                receiver: WebhookReceiver, run_budget: RunBudget,
                request: pytest.FixtureRequest) -> None:
    """Callback URL rules, queue order under a concurrency limit, every planned outcome."""
    with verdict(request):
        run_probes(api_spec, base_url, run_options(contract_options), receiver,
                   budget=run_budget.share(0.5))


@pytest.mark.needs_webhooks
def test_webhook_retry_schedule(api_spec: ApiSpec, base_url: str,
                                contract_options: ContractOptions,
                                receiver: WebhookReceiver, run_budget: RunBudget,
                                request: pytest.FixtureRequest) -> None:
    """A receiver that always fails sees the spec's schedule of attempts, and no more."""
    with verdict(request):
        ran = run_webhook_schedule(api_spec, base_url, run_options(contract_options), receiver,
                                   budget=run_budget.share(0.8))
    if not ran:
        reasons = VERDICTS.api(api_spec.name).row("webhook_retries").reasons
        pytest.skip(f"not run: {reasons[0] if reasons else 'no receiver URL the server accepts'}")


# -- the stateless phase: schemathesis's checks on every operation -------------------------


def test_stateless(api_spec: ApiSpec, operation_label: str, stateless_schema: Any,
                   stateless_base_url: str, contract_options: ContractOptions,
                   run_budget: RunBudget) -> None:
    """Positive and negative data for one operation, judged by schemathesis's default checks
    (configured from the spec: jobmock.contract.stateless), within its share of the budget."""
    done = _STATELESS_DONE.setdefault(api_spec.name, set())
    left = max(1, len(api_spec.operations) - len(done))
    done.add(operation_label)
    if run_budget.over:
        VERDICTS.api(api_spec.name).notes.append(
            f"stateless phase: {operation_label} not run, the budget ended")
        pytest.skip(f"not run: the budget ({run_budget.seconds:.0f}s) ended")
    budget = run_budget.share(1 / left)
    operation = stateless_schema.find_operation_by_label(operation_label)
    credential = contract_options.credential_a or api_spec.demo_tenants()[0][1]
    runner = StatelessRunner(api_spec, stateless_base_url, credential, budget,
                             receiver_url=contract_options.receiver_url)
    checks = extra_checks(api_spec)
    strategy = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                         operation.as_strategy(GenerationMode.NEGATIVE))

    @seed(contract_options.seed)
    @settings(max_examples=contract_options.examples * 4, derandomize=False, deadline=None,
              database=None, suppress_health_check=list(HealthCheck), print_blob=False)
    @given(case=strategy)
    def run(case: Any) -> None:
        if budget.over:
            raise StopRun("the budget ended")  # cases not sent are reported, not failed
        runner.prepare(case)
        # Every case carries tenant A's credential, so schemathesis's `ignored_auth` (which
        # presumes generated credentials are invalid) does not apply; the state machine's
        # `auth` check judges missing and wrong credentials against the spec instead.
        runner.call_and_validate(case, checks, [ignored_auth])

    try:
        run()
    except StopRun:
        VERDICTS.api(api_spec.name).notes.append(
            f"stateless phase: {operation_label} stopped, its share of the budget ended")
    finally:
        runner.close()


#: Per API, the stateless tests already run (each takes an equal share of what is left).
_STATELESS_DONE: dict[str, set[str]] = {}
