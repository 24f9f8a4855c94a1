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
:func:`_checks_config` and :func:`_extra_checks`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import respx
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import positive_data_acceptance

from jobmock import ApiSpec, Mock, ScaledClock, VirtualClock, bundled_names, resolve_spec
from jobmock.asgi import create_app
from jobmock.urlrules import check_callback_url

APIS = bundled_names()

#: Clock speed for mocks whose inline waits only a query parameter switches off.
FAST = 100

#: What schemathesis's ``ignored_auth`` check counts as refusing a request's credentials.
AUTH_REJECTION = frozenset({401, 403})

STATELESS = settings(max_examples=25, derandomize=True, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
STATEFUL = settings(STATELESS, max_examples=15, stateful_step_count=6)

Check = Callable[[Any, Any, Any], bool | None]


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
            client.post("/_jobmock/reset").raise_for_status()

    def pin(self, case: Any) -> None:
        """Set the headers that keep inline waits off (see the module docstring)."""
        if case.operation.path in self._submit_paths:
            case.headers.update(self.pinned_headers)

    @property
    def _submit_paths(self) -> set[str]:
        return {op.path for op in self.spec.submit_operations}


# -- what the spec says ------------------------------------------------------------------


def _held_by_header(spec: ApiSpec) -> bool:
    return any(op.wait.prefer_header for op in spec.submit_operations)


def _held_by_query_only(spec: ApiSpec) -> bool:
    """Whether some submit can hold a request and no header can switch that off."""
    return any(
        not op.wait.prefer_header
        and (op.wait.default > 0 or any(wait > 0 for _, _, wait in op.wait.query))
        for op in spec.submit_operations
    )


def _credential_statuses(spec: ApiSpec) -> set[int]:
    """The statuses the spec gives a missing and an invalid credential."""
    return {spec.errors[spec.auth.missing].status, spec.errors[spec.auth.invalid].status}


def _checks_config(spec: ApiSpec) -> dict[str, Any]:
    default = SchemathesisConfig().projects.get_default().checks
    checks: dict[str, Any] = {}
    refused = _credential_statuses(spec)
    if not refused <= AUTH_REJECTION:
        # docimprint (seed 004): every paid call carries `X-Payment: <token>` and has a
        # price ($0.075); the credential is a payment, and the spec answers a missing or
        # unknown token with 402 Payment Required. Schemathesis's `ignored_auth` accepts
        # only 401/403 (AUTH_REJECTION), so it is replaced by `_credentials_enforced`,
        # which probes the same way and expects the spec's statuses; the two checks that
        # take a list of statuses keep running with the spec's statuses added.
        extra = [str(s) for s in sorted(refused)]
        checks["ignored_auth"] = {"enabled": False}
        for name in ("negative_data_rejection", "missing_required_header"):
            statuses = getattr(default, name).expected_statuses
            checks[name] = {"expected-statuses": [*statuses, *extra]}
    if _public_host_rule(spec):
        # croma (seed 000): "callback_url must be an absolute HTTPS URL on a public host
        # (localhost and private ranges are rejected)". JSON Schema can state https but not
        # "public host", so a schema-valid https://0 or https://10.0.0.1 is rightly refused
        # with the validation error; `_accepted_unless_rejected` lets exactly that through.
        checks["positive_data_acceptance"] = {"enabled": False}
    if _inline_failures(spec):
        # docimprint (seed 004): "Failed jobs return structured error codes"; the spec
        # answers an inline (sync) job that failed with 422 and its X-Job-Id. The request
        # was accepted (a job exists), so `positive_data_acceptance` is replaced by
        # `_accepted_unless_rejected`, which lets exactly that answer through.
        checks["positive_data_acceptance"] = {"enabled": False}
    return checks


def _job_id_headers(spec: ApiSpec) -> set[str]:
    return {src.split(":", 1)[1].lower() for op in spec.submit_operations
            for src in op.job_id_from if src.startswith("header:")}


def _inline_failures(spec: ApiSpec) -> set[int]:
    """Error statuses a submit answers with a job (a failed inline job), if any."""
    if not _job_id_headers(spec):
        return set()
    return {r.status for op in spec.submit_operations for r in op.responses.values()
            if r.status >= 400 and any(h.lower() in _job_id_headers(spec) for h in r.headers)}


# -- replacement checks --------------------------------------------------------------------


def _public_host_rule(spec: ApiSpec) -> bool:
    return spec.webhooks is not None and spec.webhooks.url_rule == "public-https"


def _private_callback(spec: ApiSpec, body: Any) -> bool:
    """Whether ``body`` names a callback URL that is not on a public host."""
    if spec.webhooks is None or not isinstance(body, dict):
        return False
    node: Any = body
    for part in spec.webhooks.url_pointer.lstrip("/").split("/"):
        node = node.get(part) if isinstance(node, dict) else None
    return isinstance(node, str) and check_callback_url(node, "public-https") is not None


def _accepted_unless_rejected(spec: ApiSpec) -> Check:
    statuses, id_headers = _inline_failures(spec), _job_id_headers(spec)
    refused = spec.errors["validation"].status

    def check(ctx: Any, response: Any, case: Any) -> bool | None:
        if response.status_code in statuses and id_headers & set(response.headers):
            return None  # a job was created: the request was accepted, the job failed
        if response.status_code == refused and _public_host_rule(spec) \
                and _private_callback(spec, case.body):
            return None  # the spec's public-host rule, which JSON Schema cannot state
        result: bool | None = positive_data_acceptance(ctx, response, case)
        return result

    check.__name__ = "positive_data_acceptance (inline job failures allowed)"
    return check


def _credentials_enforced(spec: ApiSpec) -> Check:
    """``ignored_auth`` with the spec's statuses: drop or spoil the credential, expect them."""
    auth = spec.auth
    secured = {(op.method.upper(), op.path) for op in spec.operations if op.secured}
    cred_headers = {name.lower() for name in auth.headers_for("x")}
    missing, invalid = spec.errors[auth.missing], spec.errors[auth.invalid]
    confirmed: set[tuple[str, str]] = set()

    def probe(case: Any, headers: dict[str, str]) -> Any:
        kept = {k: v for k, v in case.headers.items() if k.lower() not in cred_headers}
        clone = case.operation.Case(method=case.method, path_parameters=case.path_parameters,
                                    headers={**kept, **headers}, query=case.query,
                                    body=case.body, media_type=case.media_type)
        return clone.call()

    def check(ctx: Any, response: Any, case: Any) -> bool | None:
        key = (case.method.upper(), case.operation.path)
        if key not in secured or key in confirmed or not 200 <= response.status_code < 300:
            return None
        for headers, error in (({}, missing), (auth.headers_for("not-a-demo-credential"), invalid)):
            answer = probe(case, headers)
            assert answer.status_code == error.status, (
                f"{key}: expected {error.status} ({error.name}) without a valid credential, "
                f"got {answer.status_code}: {answer.text[:200]}")
            body = json.loads(answer.text)
            assert "error" in body, f"{key}: {error.name} body without an error: {body}"
        confirmed.add(key)
        return True

    check.__name__ = "credentials_enforced"
    return check


def _extra_checks(spec: ApiSpec) -> list[Check]:
    extra: list[Check] = []
    if not _credential_statuses(spec) <= AUTH_REJECTION:
        extra.append(_credentials_enforced(spec))
    if _inline_failures(spec) or _public_host_rule(spec):
        extra.append(_accepted_unless_rejected(spec))
    return extra


# -- building a target -----------------------------------------------------------------------


def _target(api: str) -> Target:
    spec = resolve_spec(api)
    clock = ScaledClock(FAST) if _held_by_query_only(spec) else VirtualClock()
    mock = Mock(spec, clock=clock)
    app = create_app(mock)
    config = SchemathesisConfig.from_dict({
        "analysis": {"constants": {"enabled": False}},
        "checks": _checks_config(spec),
    })
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

    pinned = {"Prefer": "wait=0"} if _held_by_header(spec) else {}
    return Target(spec, mock, app, schema, pinned, _extra_checks(spec))


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
