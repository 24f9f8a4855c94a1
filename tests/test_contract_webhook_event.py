"""The contract suite judges webhook header templates that read ``{event}``: it renders them
with the event name the spec gives a finished job (``events`` and ``event_names``), so a
server that names the event otherwise fails the ``webhooks`` check, and the mock passes.

The spec is croma's with one more webhook header, ``x-croma-event: "{event}"``, and an
``event_names`` entry for its terminal event.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobmock.bundled import resolve_spec
from jobmock.contract import ContractViolation
from jobmock.contract.context import JobRecord, ending_event_name
from jobmock.contract.runner import RunOptions, make_context, run_machine
from jobmock.contract.verdicts import VERDICTS
from jobmock.inprocess import InProcessMock
from jobmock.receiver import WebhookReceiver
from jobmock.spec import ApiSpec, load_spec

BASE = "http://jobmock.test"
OPTIONS = RunOptions(examples=6, steps=20, shrink=False, budget=60.0)


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> ApiSpec:
    document: dict[str, Any] = copy.deepcopy(dict(resolve_spec("croma").document))
    hooks = document["x-jobmock"]["webhooks"]
    hooks["headers"] = {**hooks.get("headers", {}), "x-croma-event": "{event}"}
    hooks["event_names"] = {"terminal": "lookup.finished"}
    path: Path = tmp_path_factory.mktemp("spec") / "croma-event.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return load_spec(path)


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


def test_the_expected_header_names_the_finished_jobs_event(spec: ApiSpec) -> None:
    assert {ending_event_name(spec, w) for w in spec.lifecycle.terminal_words} == {
        "lookup.finished"}
    ctx = make_context(spec, BASE, OPTIONS, None)
    try:
        op = spec.submit_operations[0]
        job = JobRecord("job-1", op, ctx.tenants[0], {}, {}, "sicaac")
        job.statuses.append("completed")
        expected = ctx.expected_webhook_headers(job)
    finally:
        ctx.client.close()
    assert expected == {"x-croma-job-id": "job-1", "x-croma-event": "lookup.finished"}


def test_the_mock_passes_with_the_event_header_judged(spec: ApiSpec,
                                                      receiver: WebhookReceiver) -> None:
    VERDICTS.reset(spec.name)
    with InProcessMock(spec, base_url=BASE, seed=3, allow_private_callbacks=True,
                       max_idle_polls=None):
        run_machine(spec, BASE, OPTIONS, receiver)
    row = VERDICTS.api(spec.name).rows["webhooks"]
    assert row.runs > 0 and row.failures == 0


def test_a_server_naming_the_event_otherwise_fails(spec: ApiSpec,
                                                   receiver: WebhookReceiver) -> None:
    VERDICTS.reset(spec.name)
    with InProcessMock(spec, base_url=BASE, seed=3, allow_private_callbacks=True,
                       max_idle_polls=None) as api:
        book = api.mock.webhooks
        assert book is not None
        headers = {**book.config.headers, "x-croma-event": lambda ctx: "lookup.done"}
        book.config = replace(book.config, headers=headers)
        with pytest.raises(ContractViolation) as caught:
            run_machine(spec, BASE, OPTIONS, receiver)
    assert caught.value.check == "webhooks"
    assert "x-croma-event" in caught.value.detail and "lookup.finished" in caught.value.detail
