"""The contract suite judges an independent cloro server (tests/independent_cloro.py: no
jobmock code, real time): the correct one passes; a LIFO queue, credits charged on failure,
early webhook retries and accepted private callback URLs are each caught by the check that
says so.

cloro's spec marks two of those rules ``Assumed:`` (the document does not say a FAILED task
is charged nothing, nor which callback URLs are refused), and the suite never fails a server
for what the spec assumes: against the bundled spec those two breakages pass, noted as
lenient. They are caught against ``cloro-stated.yaml``, the same spec with both rules
stated (as a vendor document that said so would make them), which shows the checks work
wherever a spec states the rule.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from independent_cloro import Flags, serve_cloro
from jobmock.bundled import resolve_spec
from jobmock.contract import ContractViolation
from jobmock.contract.runner import RunOptions, run_machine, run_probes, run_webhook_schedule
from jobmock.contract.verdicts import VERDICTS
from jobmock.receiver import WebhookReceiver
from jobmock.spec import ApiSpec, load_spec

ROOT = Path(__file__).resolve().parents[1]
#: A public-looking callback URL the server forwards to the suite's loopback receiver.
PUBLIC_HOOK = "https://hooks.contract.test/hook"
OPTIONS = RunOptions(examples=3, steps=15, budget=40.0, shrink=False, receiver_url=PUBLIC_HOOK,
                     webhook_schedule_budget=6.0)


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


@pytest.fixture(scope="module")
def stated(tmp_path_factory: pytest.TempPathFactory) -> ApiSpec:
    """cloro.yaml with its credit rule and a public-host callback rule stated, not assumed."""
    text = (ROOT / "openapi" / "cloro.yaml").read_text()
    for line in ("    - /x-jobmock/credits/charge_on", "    - /x-jobmock/webhooks/url_rule"):
        start = text.index(line)
        text = text[:start] + text[text.index("\n", start) + 1:]
    text = text.replace("    url_rule: https\n", "    url_rule: public-https\n")
    path = tmp_path_factory.mktemp("cloro") / "cloro-stated.yaml"
    path.write_text(text)
    spec = load_spec(path)
    assert spec.webhooks is not None and spec.webhooks.url_rule == "public-https"
    return spec


def judge(spec: ApiSpec, flags: Flags, receiver: WebhookReceiver,
          options: RunOptions = OPTIONS) -> float:
    """Run the whole suite against a fresh server; the seconds it took."""
    VERDICTS.reset(spec.name)
    started = time.monotonic()
    with serve_cloro(flags, {PUBLIC_HOOK: receiver.url}) as (url, state):
        run_machine(spec, url, options, receiver)
        run_probes(spec, url, options, receiver)
        run_webhook_schedule(spec, url, options, receiver)
        assert all(u == PUBLIC_HOOK or "contract-probe.invalid" in u for u in state.ignored_urls)
    return time.monotonic() - started


@pytest.mark.parametrize("which", ["bundled", "stated"])
def test_the_correct_server_passes(which: str, stated: ApiSpec,
                                   receiver: WebhookReceiver) -> None:
    spec = resolve_spec("cloro") if which == "bundled" else stated
    seconds = judge(spec, Flags(), receiver)
    rows = VERDICTS.api(spec.name).rows
    assert VERDICTS.failed_checks(spec.name) == []
    for check in ("queue_order", "credits", "webhooks", "webhook_retries"):
        assert rows[check].runs > 0, check
    assert seconds < 60


@pytest.mark.parametrize(("flag", "check"), [
    ("lifo", "queue_order"),
    ("early_retries", "webhook_retries"),
    ("credits_on_failure", "credits"),
    ("accept_private", "callback_urls"),
])
def test_each_breakage_is_caught_where_the_spec_states_the_rule(
        flag: str, check: str, stated: ApiSpec, receiver: WebhookReceiver) -> None:
    with pytest.raises(ContractViolation) as caught:
        judge(stated, Flags(**{flag: True}), receiver)
    assert caught.value.check == check, str(caught.value)[:1500]
    assert VERDICTS.failed_checks(stated.name) == [check]


def test_what_cloro_assumes_is_not_demanded(receiver: WebhookReceiver) -> None:
    """The bundled spec assumes both rules: the server breaking them is not failed, and the
    table says what it let through (a charged FAILED task) and what it did not judge."""
    spec = resolve_spec("cloro")
    judge(spec, Flags(credits_on_failure=True, accept_private=True), receiver)
    rows = VERDICTS.api(spec.name).rows
    assert VERDICTS.failed_checks(spec.name) == []
    assert any("'FAILED' job was charged 10" in n for n in rows["credits"].notes)
    assert rows["callback_urls"].runs == 0 and "assumed" in rows["callback_urls"].reasons[0]


def test_lifo_is_caught_against_the_bundled_spec_too(receiver: WebhookReceiver) -> None:
    """FIFO is documented ("processed in the order they were received"), never assumed."""
    with pytest.raises(ContractViolation) as caught:
        judge(resolve_spec("cloro"), Flags(lifo=True), receiver)
    assert caught.value.check == "queue_order"
