"""Schemathesis 4 against the in-process mock of every bundled API.

Each bundled spec is loaded from the mock itself (``GET /_jobmock/spec`` through
``schemathesis.openapi.from_asgi``) and every operation is exercised in-process:

- ``test_stateless_<api>``: ``schema.parametrize()``, i.e. the examples, coverage and
  fuzzing phases (positive and negative data) with schemathesis's default checks;
- ``test_stateful``: the links of the spec, followed by ``schema.as_state_machine()``.

Generated cases carry the demo credential of tenant 0. Hypothesis is derandomised and
kept small (25 examples per operation, no deadline, no example database).

Everything API-specific below is read from the spec, not from the API's name:

- Inline waits. A request held by an inline wait would never end on a virtual clock.
  Where the spec lets a request header switch the wait off (croma's ``Prefer``,
  seed 000: "`Prefer: wait=0` ... poll"), cases send ``wait=0`` and the mock runs on a
  virtual clock, so nothing moves while schemathesis looks. Where only a query switch
  can (docimprint: ``?sync=true`` on extract, and /v1/summarize and /v1/qa are
  "synchronous by default", seed 004), we do *not* pin ``async=true``: that would hide
  the generated ``sync``/``async`` values from the checks and never validate the inline
  200 bodies nor the 422 of an inline job that failed. Such a mock runs on a
  ``ScaledClock(100)`` instead: its jobs take at most 22 clock seconds (0.22 s of wall
  time), well inside the spec's 120 s wait, so a held request ends, every generated query
  is sent as generated and every inline answer is checked against the spec. Which
  documented answer a request gets (200, 422, or 202 with a queued or processing job)
  may depend on the machine's speed, but all of them are in the spec, so the verdict
  does not. Not faster than 100: a job must not be able to finish within one scheduler
  stall (a few ms) between a submit and its answer.
- Webhooks. On the sped-up clock jobs finish and fire their webhooks at generated URLs;
  respx answers every httpx request made during a test, so the tests never touch the
  network.
- ``analysis.constants`` is off: schemathesis 4 mines string constants from the app's
  Python source (here jobmock's own code, e.g. ``"http://127.0.0.1"``) and sends them as
  *positive* data without checking them against the schema, so cloro's
  ``webhook.url`` (``pattern: ^https://``, seed 003: the webhook URL is ``https://``)
  got a value its schema forbids, labelled valid. The contract is judged from the spec,
  not from the mock's source.

Check exclusions and their replacements, each tied to a seed document, are in
``jobmock.contract.stateless`` (shared with the contract suite's stateless phase).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import respx
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.python import asgi

from jobmock import ApiSpec, Mock, ScaledClock, VirtualClock, bundled_names, resolve_spec
from jobmock.asgi import create_app
from jobmock.contract.stateless import (
    Check,
    extra_checks,
    held_by_header,
    held_by_query_only,
    schemathesis_config,
)

APIS = bundled_names()

#: Clock speed for mocks whose inline waits only a query parameter switches off.
FAST = 100


STATELESS = settings(max_examples=25, derandomize=True, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
STATEFUL = settings(STATELESS, max_examples=15, stateful_step_count=6)



@dataclass
class Target:
    """One API under test: its spec, its mock, and the schema schemathesis drives."""

    spec: ApiSpec
    mock: Mock
    app: Any
    schema: Any
    pinned_headers: dict[str, str]
    extra_checks: list[Check] = field(default_factory=list)

    def reset(self) -> None:
        """Forget every job (the seeded generator restarts), through the control plane.

        Sent like schemathesis's own requests, so it runs on the app's event loop and never
        races the ticker.
        """
        with asgi.get_client(self.app) as client:
            client.post("/_jobmock/reset", json={}).raise_for_status()

    def pin(self, case: Any) -> None:
        """Set the headers that keep inline waits off (see the module docstring)."""
        if case.operation.path in self._submit_paths:
            case.headers.update(self.pinned_headers)

    @property
    def _submit_paths(self) -> set[str]:
        return {op.path for op in self.spec.submit_operations}


# -- building a target -----------------------------------------------------------------------


def _target(api: str) -> Target:
    spec = resolve_spec(api)
    clock = ScaledClock(FAST) if held_by_query_only(spec) else VirtualClock()
    mock = Mock(spec, clock=clock)
    app = create_app(mock)
    config = schemathesis_config(spec)
    schema = schemathesis.openapi.from_asgi("/_jobmock/spec", app, config=config)
    credential = spec.auth.headers_for(spec.demo_tenants()[0][1])

    # Schemathesis skips this provider on the cases where it removes the credential on
    # purpose (the coverage phase's "missing Authorization"), so those still test 401s.
    @schema.auth(refresh_interval=None)
    class DemoTenant:
        def get(self, case: Any, ctx: Any) -> dict[str, str]:
            return credential

        def set(self, case: Any, data: dict[str, str], ctx: Any) -> None:
            case.headers.update(data)

    pinned = {"Prefer": "wait=0"} if held_by_header(spec) else {}
    return Target(spec, mock, app, schema, pinned, extra_checks(spec))


TARGETS = {api: _target(api) for api in APIS}


@pytest.fixture(autouse=True)
def _webhooks_answered_in_process() -> Iterator[respx.MockRouter]:
    """Every httpx request made while a test runs (the mock's webhook attempts) gets a 204.

    The mock's webhook sender is httpx; schemathesis ends the app's lifespan after each
    test and the next request starts a fresh sender, so the interception is at the httpx
    transport, not on one sender.
    """
    with respx.mock(assert_all_called=False) as router:
        router.route().respond(204)
        yield router


# -- stateless: examples, coverage, fuzzing ----------------------------------------------------


def _stateless(target: Target) -> Callable[..., None]:
    @STATELESS
    def test(case: Any) -> None:
        target.pin(case)
        case.call_and_validate(additional_checks=target.extra_checks)

    parametrized: Callable[..., None] = target.schema.parametrize()(test)
    return parametrized


for _api, _target_ in TARGETS.items():
    globals()[f"test_stateless_{_api}"] = _stateless(_target_)


# -- stateful: the spec's links -----------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
def test_stateful(api: str) -> None:
    target = TARGETS[api]

    class Links(target.schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # Each scenario meets a fresh mock, so a replayed scenario gets the same
            # answers (bronid's one-run-per-trace gate, seeded job outcomes) and
            # Hypothesis can shrink a failure instead of calling it flaky.
            target.reset()

        def before_call(self, case: Any) -> None:
            target.pin(case)

        def validate_response(self, response: Any, case: Any,
                              additional_checks: list[Check] | None = None, **kwargs: Any) -> None:
            checks = [*(additional_checks or []), *target.extra_checks]
            super().validate_response(response, case, additional_checks=checks, **kwargs)

    Links.run(settings=STATEFUL)
