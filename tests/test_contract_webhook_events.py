"""The contract suite's webhook checks of issue 14, item 8, judged on hand-made receptions:
``webhook_events`` (a job's events in lifecycle order, progress never going back, only the
events the request's filter names) and, in ``webhook_retries``, one ``webhook-id`` across a
Standard Webhooks delivery's retries. A run of the suite against the mock shows them ok
(``tests/test_example_replicate.py``, ``tests/test_contract_cli.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from jobmock import load_spec, resolve_spec
from jobmock.contract.checks import (
    check_webhook_events,
    check_webhook_retries,
    terminal_event_names,
)
from jobmock.contract.context import Observation
from jobmock.contract.specview import SpecView
from jobmock.contract.violations import ContractViolation
from jobmock.receiver import Received
from jobmock.spec import ApiSpec

REPLICATE = load_spec(Path(__file__).resolve().parent.parent / "examples" / "specs" /
                      "replicate.yaml")
DOCIMPRINT = resolve_spec("docimprint")


def context(spec: ApiSpec) -> Any:
    return SimpleNamespace(spec=spec, view=SpecView(spec), time=SimpleNamespace(virtual=True),
                           client=SimpleNamespace(reproduction=lambda *a, **k: ""))


def received(body: dict[str, Any], **headers: str) -> Received:
    return Received("POST", "/hook", headers, json.dumps(body).encode(), 0.0, answered="200")


def events(spec: ApiSpec, bodies: list[dict[str, Any]], wanted: list[str] | None = None) -> str:
    """The verdict of ``webhook_events`` on one job's receptions, in arrival order."""
    job = SimpleNamespace(id="j1")
    try:
        check_webhook_events(context(spec), Observation("webhook_events", None, job, {  # type: ignore[arg-type]
            "received": [received(b) for b in bodies], "filter": wanted}))
    except ContractViolation as violation:
        return str(violation)
    return "ok"


def prediction(status: str, logs: str = "") -> dict[str, Any]:
    return {"id": "j1", "status": status, "logs": logs}


def docimprint(status: str, pct: int) -> dict[str, Any]:
    return {"event": "job.progress", "job": {"id": "j1", "status": status, "progress_pct": pct}}


def test_events_in_lifecycle_order_pass_and_an_earlier_state_after_a_later_one_fails() -> None:
    assert events(REPLICATE, [prediction("starting"), prediction("processing"),
                              prediction("succeeded")]) == "ok"
    verdict = events(REPLICATE, [prediction("processing"), prediction("succeeded"),
                                 prediction("processing", "late")])
    assert "saying 'processing' arrived after one saying 'succeeded': out of order" in verdict
    # a retry repeats its delivery's body: judged once, where it first arrived
    again = prediction("processing")
    assert events(REPLICATE, [again, prediction("succeeded"), again]) == "ok"


def test_progress_going_back_between_webhooks_fails() -> None:
    hooks = DOCIMPRINT.webhooks
    assert hooks is not None
    pointers = SpecView(DOCIMPRINT).pointers_of(hooks.render, "job.progress_pct")
    assert pointers, "docimprint's webhook body carries the progress"
    assert pointers == ["/job/progress_pct"]
    assert SpecView(DOCIMPRINT).pointers_of(hooks.render, "job.status") == ["/job/status"]
    running = next(w for w, r in DOCIMPRINT.lifecycle.states.items() if r == "running")
    assert events(DOCIMPRINT, [docimprint(running, 20), docimprint(running, 70)]) == "ok"
    verdict = events(DOCIMPRINT, [docimprint(running, 70), docimprint(running, 20)])
    assert "progress 20 arrived after one with 70: out of order" in verdict


def test_an_event_the_filter_left_out_fails() -> None:
    names = terminal_event_names(context(REPLICATE))
    assert names == ["completed"]
    assert events(REPLICATE, [prediction("succeeded")], names) == "ok"
    verdict = events(REPLICATE, [prediction("starting"), prediction("succeeded")], names)
    assert "asked for ['completed'] only" in verdict and "'starting'" in verdict
    # without a filter the suite set, every event may come
    assert events(REPLICATE, [prediction("starting"), prediction("succeeded")]) == "ok"


@pytest.mark.parametrize(("ids", "ok"), [(["m1", "m1", "m1"], True), (["m1", "m2", "m2"], False)])
def test_a_standard_webhooks_retry_must_keep_its_webhook_id(ids: list[str], ok: bool) -> None:
    hooks = REPLICATE.webhooks
    assert hooks is not None
    body = prediction("succeeded")
    attempts = [received(body, **{"webhook-id": i}) for i in ids]
    times = [0.0]
    for n in range(1, len(ids)):
        delay = hooks.retry.delay_after(n)
        assert delay is not None
        times.append(times[-1] + delay)
    obs = Observation("webhook_retries", None, None, {  # type: ignore[arg-type]
        "attempts": attempts, "times": times, "expected": len(ids)})
    if ok:
        check_webhook_retries(context(REPLICATE), obs)
    else:
        with pytest.raises(ContractViolation, match="different webhook-id values"):
            check_webhook_retries(context(REPLICATE), obs)
