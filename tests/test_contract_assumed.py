"""The suite judges from facts: what a spec marks assumed (``x-jobmock.assumed``) is never
demanded of a server, and headers are demanded only where the spec's response definitions
put them.

An independent Croma server (tests/independent_croma.py, no jobmock code) leaves out every
assumed thing (the envelope's id and timestamps, ``data.source``, Retry-After while queued,
Preference-Applied on a 202, the 401/400 statuses and error texts) and passes; the same
server without Preference-Applied on its 200, where the spec's response defines it, fails.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from independent_croma import serve_croma
from jobmock.bundled import resolve_spec
from jobmock.contract import ContractViolation
from jobmock.contract.runner import RunOptions, run_machine, run_probes
from jobmock.contract.specview import SpecView
from jobmock.contract.verdicts import VERDICTS
from jobmock.errors import SpecError
from jobmock.receiver import WebhookReceiver
from jobmock.spec import build_spec

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_HOOK = "https://hooks.croma.test/hook"
OPTIONS = RunOptions(examples=4, steps=20, budget=40.0, shrink=False, receiver_url=PUBLIC_HOOK)


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


def test_a_server_without_what_the_spec_assumes_passes(receiver: WebhookReceiver) -> None:
    spec = resolve_spec("croma")
    VERDICTS.reset(spec.name)
    with serve_croma({PUBLIC_HOOK: receiver.url}) as url:
        run_machine(spec, url, OPTIONS, receiver)
        run_probes(spec, url, OPTIONS, receiver)
    rows = VERDICTS.api(spec.name).rows
    assert VERDICTS.failed_checks(spec.name) == []
    # It was judged, not skipped: inline answers, errors, auth, webhooks, callback rules.
    for check in ("inline_wait", "retry_after", "auth", "errors", "webhooks", "callback_urls"):
        assert rows[check].runs > 0, check
    assert any("assumed" in n for n in rows["invariants"].notes)


def test_a_header_the_spec_defines_is_still_demanded(receiver: WebhookReceiver) -> None:
    """Preference-Applied is defined on the 200: a server that leaves it out there fails."""
    spec = resolve_spec("croma")
    with serve_croma({PUBLIC_HOOK: receiver.url}, preference_on_200=False) as url, \
            pytest.raises(ContractViolation) as caught:
        run_machine(spec, url, OPTIONS, receiver)
    assert caught.value.check == "inline_wait"
    assert "Preference-Applied missing on the 200" in caught.value.detail


def _croma_document() -> dict[str, object]:
    return yaml.safe_load((ROOT / "openapi" / "croma.yaml").read_text())


def test_headers_are_demanded_only_where_the_response_defines_them() -> None:
    """The issue's false failure: a spec (croma's, with its 202 header removed and nothing
    assumed) that defines Preference-Applied on the 200 only does not demand it on a 202."""
    doc = _croma_document()
    doc["x-jobmock"].pop("assumed")  # type: ignore[union-attr]
    accepted = doc["components"]["responses"]["JobAccepted"]  # type: ignore[index]
    del accepted["headers"]["Preference-Applied"]
    view = SpecView(build_spec(doc, "croma-200-only.yaml"))
    op = view.spec.submit_operations[0]
    assert view.header_demanded(op, 200, "Preference-Applied")
    assert not view.header_demanded(op, 202, "Preference-Applied")
    assert view.header_demanded(op, 202, "Location")


def test_assumed_pointers_are_judged_leniently() -> None:
    view = SpecView(resolve_spec("croma"))
    op = view.spec.submit_operations[0]
    # Listed as assumed on the 202: not demanded there, demanded on the 200.
    assert not view.header_demanded(op, 202, "Preference-Applied")
    assert view.header_demanded(op, 200, "Preference-Applied")
    # An assumed status accepts any refusal; an assumed body is not read word for word.
    assert view.error_status_assumed("unauthorized") and not view.error_status_assumed("not_found")
    assert view.error_constants("not_found") == []
    # An assumed schema property is not required by the suite's validator, but checked if sent.
    validator = view.response_validator(view.spec.status_operation, 200)
    assert validator is not None
    envelope = {"status": "queued", "status_url": "https://x.example/jobs/1", "data": None,
                "error": None}
    assert validator.is_valid(envelope)
    assert not validator.is_valid({**envelope, "id": ""})  # minLength 1, still judged


def test_an_assumed_pointer_must_exist() -> None:
    doc = copy.deepcopy(_croma_document())
    doc["x-jobmock"]["assumed"].append("/x-jobmock/no_such_key")  # type: ignore[index]
    with pytest.raises(SpecError) as caught:
        build_spec(doc, "croma-bad.yaml")
    assert "/x-jobmock/assumed/" in str(caught.value) and "no_such_key" in str(caught.value)
