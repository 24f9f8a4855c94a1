"""The contract suite has teeth: each deliberate fault of the mock is caught by the check
that names it, and the clean mock passes.

Each row runs the suite (state machine without shrinking, the probes, the webhook
schedule) against a real mock server with one fault switched on, and expects a
ContractViolation from exactly the fault's check; the closing table then shows that check,
and only it, FAILED, and ``GET /_jobmock/faults`` names the same check.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from jobmock.bundled import resolve_spec
from jobmock.contract import ContractViolation
from jobmock.contract.runner import RunOptions, run_machine, run_probes, run_webhook_schedule
from jobmock.contract.verdicts import VERDICTS
from jobmock.faults import FAULTS, set_faults
from jobmock.receiver import WebhookReceiver
from jobmock.spec import ApiSpec
from jobmock.testing import serve_mock

#: Which API shows each fault: the first one whose spec states (not assumes) the behaviour
#: it breaks. Where a spec marks a behaviour assumed the suite does not demand it, so e.g.
#: cloro's 401 for a missing key (assumed) cannot show auth_missing_403; enrich's can.
WHERE = {
    "drop_retry_after": "croma",
    "terminal_changes": "croma",
    "data_while_running": "croma",
    "error_on_completed": "croma",
    "wrong_status_word": "enrich",
    "foreign_job_200": "croma",
    "foreign_403": "enrich",
    "auth_missing_403": "enrich",
    "unknown_job_500": "bronid",
    "validation_500": "cloro",
    "missing_location": "croma",
    "preference_unclamped": "croma",
    "inline_200_while_running": "croma",
    "gate_ignored": "bronid",
    "idempotency_ignored": "cloro",
    "results_out_of_order": "enrich",
    "timestamps_backwards": "enrich",
    "progress_backwards": "docimprint",
    "wrong_signature": "croma",
    "no_webhook_retry": "cloro",
    "callback_rule_ignored": "croma",
    "queue_lifo": "cloro",
    "credits_on_failure": "docimprint",
    "webhook_retry_early": "cloro",
}

#: Faults judged against a mock that keeps its callback rule (no loopback receiver then).
STRICT_CALLBACKS = {"callback_rule_ignored"}

OPTIONS = RunOptions(examples=12, steps=30, shrink=False)


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


def run_suite(spec: ApiSpec, url: str, receiver: WebhookReceiver) -> None:
    VERDICTS.reset(spec.name)
    run_machine(spec, url, OPTIONS, receiver)
    run_probes(spec, url, OPTIONS, receiver)
    if spec.webhooks is not None:
        run_webhook_schedule(spec, url, OPTIONS, receiver)


def test_every_fault_has_a_row() -> None:
    assert set(WHERE) == set(FAULTS)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_the_suite_catches_the_fault(fault: str, receiver: WebhookReceiver) -> None:
    spec = resolve_spec(WHERE[fault])
    with serve_mock(spec, seed=3, allow_private_callbacks=fault not in STRICT_CALLBACKS,
                    webhook_timeout=2.0) as server:
        set_faults(server.mock, [fault])
        with pytest.raises(ContractViolation) as caught:
            run_suite(spec, server.url, receiver)
        claimed = httpx.get(server.url + "/_jobmock/faults").json()["available"][fault]
    assert caught.value.check == FAULTS[fault].check, str(caught.value)[:2000]
    assert "curl" in caught.value.reproduction or caught.value.check == "webhook_retries"
    # The closing table and the mock's own list of faults agree on the check.
    assert VERDICTS.failed_checks(spec.name) == [claimed["caught_by"]] == [FAULTS[fault].check]


@pytest.mark.parametrize("api", sorted({*WHERE.values()}))
def test_the_clean_mock_passes(api: str, receiver: WebhookReceiver) -> None:
    spec = resolve_spec(api)
    with serve_mock(spec, seed=3, allow_private_callbacks=True, webhook_timeout=2.0) as server:
        run_suite(spec, server.url, receiver)
    assert VERDICTS.failed_checks(spec.name) == []


def test_a_server_refusing_loopback_callbacks_is_not_blamed_for_it(
        receiver: WebhookReceiver) -> None:
    """croma refuses private callback URLs; without --allow-private-callbacks the suite does
    not send its loopback receiver's URL, passes, and leaves the schedule check not run, with
    the reason in the table; the callback URL probe still judges every forbidden spelling."""
    spec = resolve_spec("croma")
    VERDICTS.reset(spec.name)
    with serve_mock(spec, seed=3) as server:
        run_machine(spec, server.url, OPTIONS, receiver)
        run_probes(spec, server.url, OPTIONS, receiver)
        assert run_webhook_schedule(spec, server.url, OPTIONS, receiver) is False
    rows = VERDICTS.api(spec.name).rows
    for name in ("webhooks", "webhook_retries"):
        assert rows[name].runs == 0 and "--receiver-url" in rows[name].reasons[0]
    assert rows["callback_urls"].runs >= 10 and rows["callback_urls"].failures == 0
