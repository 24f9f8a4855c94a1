"""The contract suite: a Hypothesis state machine per API, the webhook retry schedule, and
schemathesis's stateless phase for every operation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import ignored_auth

from jobmock.contract.runner import RunOptions, run_machine, run_webhook_schedule
from jobmock.contract.stateless import extra_checks, pinned_headers
from jobmock.contract.suite.conftest import ContractOptions
from jobmock.receiver import WebhookReceiver
from jobmock.spec import ApiSpec

__all__ = ["receiver", "test_state_machine", "test_stateless", "test_webhook_retry_schedule"]


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


def run_options(o: ContractOptions) -> RunOptions:
    return RunOptions(o.credential_a, o.credential_b, o.webhook_secret, o.receiver_url,
                      o.examples, o.steps, o.budget)


def test_state_machine(api_spec: ApiSpec, base_url: str, contract_options: ContractOptions,
                       receiver: WebhookReceiver) -> None:
    """Every rule's answers pass every registered check; jobs left running are reported."""
    unfinished = run_machine(api_spec, base_url, run_options(contract_options), receiver)
    if unfinished:
        print(f"\n{api_spec.name}: {len(unfinished)} job(s) still running when the time budget "
              f"ended: {', '.join(unfinished[:10])}")


@pytest.mark.needs_webhooks
def test_webhook_retry_schedule(api_spec: ApiSpec, base_url: str,
                                contract_options: ContractOptions,
                                receiver: WebhookReceiver) -> None:
    """A receiver that always fails sees every attempt of the spec's schedule, and no more."""
    if not run_webhook_schedule(api_spec, base_url, run_options(contract_options), receiver):
        pytest.skip("not run: the retry schedule needs a jobmock virtual clock (it takes real "
                    "minutes) and a callback URL the server accepts (--receiver-url, or a mock "
                    "started with --allow-private-callbacks)")


# -- the stateless phase: schemathesis's checks on every operation -------------------------


def test_stateless(api_spec: ApiSpec, operation_label: str, stateless_schema: Any,
                   contract_options: ContractOptions) -> None:
    """Positive and negative data for one operation, judged by schemathesis's default checks
    (configured from the spec: jobmock.contract.stateless)."""
    operation = stateless_schema.find_operation_by_label(operation_label)
    submit_paths = {op.path for op in api_spec.submit_operations}
    credential = contract_options.credential_a or api_spec.demo_tenants()[0][1]
    auth = api_spec.auth.headers_for(credential)
    checks = extra_checks(api_spec)
    strategy = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                         operation.as_strategy(GenerationMode.NEGATIVE))

    @settings(max_examples=contract_options.examples * 4, derandomize=True, deadline=None,
              database=None, suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: Any) -> None:
        if operation.path in submit_paths:
            case.headers = {**(case.headers or {}), **pinned_headers(api_spec)}
        case.headers = {**(case.headers or {}), **auth}
        # Every case carries tenant A's credential, so schemathesis's `ignored_auth` (which
        # presumes generated credentials are invalid) does not apply; the state machine's
        # `auth` check judges missing and wrong credentials against the spec instead.
        case.call_and_validate(additional_checks=checks, excluded_checks=[ignored_auth])

    run()
