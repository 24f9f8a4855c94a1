"""The contract suite has teeth on every spec: for each of the nine specs (the five seed APIs
in ``openapi/`` and the four example shapes in ``examples/specs/``) and each fault that
applies to it, the suite run against the mock with that fault on fails with the check the
fault names. A fault that would change nothing on a spec is said to be not applicable, with
the reason, by ``jobmock.faults.not_applicable`` and ``GET /_jobmock/faults``, and refused
when switched on.

The suite runs in-process (the mock behind respx, on a virtual clock) with a small
Hypothesis budget and no shrinking: each row stops at its first violation.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jobmock.bundled import resolve_spec
from jobmock.contract import ContractViolation
from jobmock.contract.runner import RunOptions, run_machine, run_probes, run_webhook_schedule
from jobmock.contract.verdicts import VERDICTS
from jobmock.faults import FAULTS, FaultNotApplicable, applicability, set_faults
from jobmock.inprocess import InProcessMock
from jobmock.receiver import WebhookReceiver
from jobmock.spec import ApiSpec, load_spec

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ("bronid", "cloro", "croma", "docimprint", "enrich")
EXAMPLES = ("google-lro", "azure-lro", "openai-batch", "replicate")
SPECS: dict[str, ApiSpec] = {
    **{name: resolve_spec(name) for name in SEEDS},
    **{name: load_spec(ROOT / "examples" / "specs" / f"{name}.yaml") for name in EXAMPLES},
}
#: Where the in-process mock answers (nothing listens there: respx routes it).
BASE = "http://jobmock.test"

MATRIX = [(api, fault) for api, spec in SPECS.items()
          for fault, why in applicability(spec).items() if why is None]

#: Faults judged against a mock that keeps its callback rule (no loopback receiver then).
STRICT_CALLBACKS = {"callback_rule_ignored"}

#: Faults that break a poll's body: where the spec's status schema already ties the broken
#: field to the status, poll_schema (judged before the others) is the check that catches it.
BODY_FAULTS = {"terminal_changes", "data_while_running", "error_on_completed",
               "results_out_of_order", "timestamps_backwards", "progress_backwards",
               "credits_on_failure"}

OPTIONS = RunOptions(examples=8, steps=35, shrink=False, budget=60.0)


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


def run_suite(spec: ApiSpec, receiver: WebhookReceiver) -> None:
    VERDICTS.reset(spec.name)
    run_machine(spec, BASE, OPTIONS, receiver)
    run_probes(spec, BASE, OPTIONS, receiver)
    if spec.webhooks is not None:
        run_webhook_schedule(spec, BASE, OPTIONS, receiver)


def in_process(spec: ApiSpec, fault: str | None) -> InProcessMock:
    return InProcessMock(spec, base_url=BASE, seed=3, max_idle_polls=None,
                         allow_private_callbacks=fault not in STRICT_CALLBACKS,
                         webhook_timeout=2.0)


def test_the_matrix_covers_every_spec_and_fault() -> None:
    """Every spec has faults that apply, and every fault applies to some spec."""
    assert {api for api, _ in MATRIX} == set(SPECS)
    assert {fault for _, fault in MATRIX} == set(FAULTS)


@pytest.mark.parametrize(("api", "fault"), MATRIX, ids=[f"{a}-{f}" for a, f in MATRIX])
def test_the_suite_catches_the_fault(api: str, fault: str, receiver: WebhookReceiver) -> None:
    spec = SPECS[api]
    with in_process(spec, fault) as mock:
        set_faults(mock.mock, [fault])
        with pytest.raises(ContractViolation) as caught:
            run_suite(spec, receiver)
    check = caught.value.check
    if fault in BODY_FAULTS and check == "poll_schema":
        # The spec's own status schema forbids the broken body (a result only when
        # completed, per-status required fields): the schema check sees it first.
        assert "does not match its schema" in caught.value.detail, str(caught.value)[:2000]
    else:
        assert check == FAULTS[fault].check, str(caught.value)[:2000]
    assert VERDICTS.failed_checks(spec.name) == [check]


@pytest.mark.parametrize("api", sorted(SPECS))
def test_a_fault_that_does_not_apply_says_so_and_is_refused(api: str) -> None:
    spec = SPECS[api]
    fit = applicability(spec)
    idle = sorted(f for f, why in fit.items() if why is not None)
    with in_process(spec, None) as mock, httpx.Client(base_url=BASE) as client:
        listed = client.get("/_jobmock/faults").json()["available"]
        for name, why in fit.items():
            assert listed[name]["applicable"] is (why is None), name
            assert listed[name]["not_applicable"] == why, name
        for name in idle:
            refused = client.post("/_jobmock/faults", json={"faults": [name]})
            assert refused.status_code == 422, (name, refused.text)
            assert name in refused.json()["error"] and str(fit[name]) in refused.json()["error"]
            with pytest.raises(FaultNotApplicable, match=name):
                set_faults(mock.mock, [name])
        assert client.get("/_jobmock/faults").json()["enabled"] == []
