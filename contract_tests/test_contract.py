"""The contract suite: a Hypothesis state machine per API, and the webhook retry schedule."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jobmock.contract.runner import RunOptions, run_machine, run_webhook_schedule
from jobmock.receiver import WebhookReceiver
from jobmock.spec import ApiSpec

from .conftest import ContractOptions


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
        pytest.skip("the retry schedule takes real minutes; run it against a jobmock virtual clock")
