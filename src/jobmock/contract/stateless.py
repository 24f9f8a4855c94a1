"""The stateless phase: schemathesis's own checks, configured from the spec.

Everything API-specific is read from the spec. Check exclusions and their
replacements, each tied to a seed document, are in :func:`checks_config` and
:func:`extra_checks`. Used by the contract suite and by the mock's own tests.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance

from ..pointers import find, with_value, without
from ..spec import ApiSpec, Operation
from ..urlrules import check_callback_url
from .budget import REQUEST_TIMEOUT, RunBudget
from .client import ContractClient
from .context import TimeKeeper

__all__ = [
    "AUTH_REJECTION",
    "Check",
    "StatelessRunner",
    "checks_config",
    "extra_checks",
    "held_by_header",
    "held_by_query_only",
    "pinned_headers",
    "schemathesis_config",
]

#: What schemathesis's ``ignored_auth`` check counts as refusing a request's credentials.
AUTH_REJECTION = frozenset({401, 403})

Check = Callable[[Any, Any, Any], "bool | None"]


# -- what the spec says ------------------------------------------------------------------


def held_by_header(spec: ApiSpec) -> bool:
    return any(op.wait.prefer_header for op in spec.submit_operations)


def held_by_query_only(spec: ApiSpec) -> bool:
    """Whether some submit can hold a request and no header can switch that off."""
    return any(
        not op.wait.prefer_header
        and (op.wait.default > 0 or any(wait > 0 for _, _, wait in op.wait.query))
        for op in spec.submit_operations
    )


def credential_statuses(spec: ApiSpec) -> set[int]:
    """The statuses the spec gives a missing and an invalid credential."""
    return {spec.errors[spec.auth.missing].status, spec.errors[spec.auth.invalid].status}


def checks_config(spec: ApiSpec) -> dict[str, Any]:
    default = SchemathesisConfig().projects.get_default().checks
    checks: dict[str, Any] = {}
    refused = credential_statuses(spec)
    if not refused <= AUTH_REJECTION:
        # docimprint (seed 004): every paid call carries `X-Payment: <token>` and has a
        # price ($0.075); the credential is a payment, and the spec answers a missing or
        # unknown token with 402 Payment Required. Schemathesis's `ignored_auth` accepts
        # only 401/403 (AUTH_REJECTION), so it is replaced by `credentials_enforced`,
        # which probes the same way and expects the spec's statuses; the two checks that
        # take a list of statuses keep running with the spec's statuses added.
        extra = [str(s) for s in sorted(refused)]
        checks["ignored_auth"] = {"enabled": False}
        for name in ("negative_data_rejection", "missing_required_header"):
            statuses = getattr(default, name).expected_statuses
            checks[name] = {"expected-statuses": [*statuses, *extra]}
    if public_host_rule(spec):
        # croma (seed 000): "callback_url must be an absolute HTTPS URL on a public host
        # (localhost and private ranges are rejected)". JSON Schema can state https but not
        # "public host", so a schema-valid https://0 or https://10.0.0.1 is rightly refused
        # with the validation error; `accepted_unless_rejected` lets exactly that through.
        checks["positive_data_acceptance"] = {"enabled": False}
    if inline_failures(spec):
        # docimprint (seed 004): "Failed jobs return structured error codes"; the spec
        # answers an inline (sync) job that failed with 422 and its X-Job-Id. The request
        # was accepted (a job exists), so `positive_data_acceptance` is replaced by
        # `accepted_unless_rejected`, which lets exactly that answer through.
        checks["positive_data_acceptance"] = {"enabled": False}
    return checks


def job_id_headers(spec: ApiSpec) -> set[str]:
    return {src.split(":", 1)[1].split("|", 1)[0].lower() for op in spec.submit_operations
            for src in op.job_id_from if src.startswith("header:")}


def inline_failures(spec: ApiSpec) -> set[int]:
    """Error statuses a submit answers with a job (a failed inline job), if any."""
    if not job_id_headers(spec):
        return set()
    return {r.status for op in spec.submit_operations for r in op.responses.values()
            if r.status >= 400 and any(h.lower() in job_id_headers(spec) for h in r.headers)}


# -- replacement checks --------------------------------------------------------------------


def public_host_rule(spec: ApiSpec) -> bool:
    return spec.callbacks is not None and spec.callbacks.url_rule == "public-https"


def private_callback(spec: ApiSpec, body: Any) -> bool:
    """Whether ``body`` names a callback URL that is not on a public host."""
    if spec.callbacks is None or not isinstance(body, dict):
        return False
    node: Any = body
    for part in spec.callbacks.url_pointer.lstrip("/").split("/"):
        node = node.get(part) if isinstance(node, dict) else None
    return isinstance(node, str) and check_callback_url(node, "public-https") is not None


def accepted_unless_rejected(spec: ApiSpec) -> Check:
    statuses, id_headers = inline_failures(spec), job_id_headers(spec)
    refused = spec.errors["validation"].status

    def check(ctx: Any, response: Any, case: Any) -> bool | None:
        if response.status_code in statuses and id_headers & set(response.headers):
            return None  # a job was created: the request was accepted, the job failed
        if response.status_code == refused and public_host_rule(spec) \
                and private_callback(spec, case.body):
            return None  # the spec's public-host rule, which JSON Schema cannot state
        result: bool | None = positive_data_acceptance(ctx, response, case)
        return result

    check.__name__ = "positive_data_acceptance (inline job failures allowed)"
    return check


def credentials_enforced(spec: ApiSpec) -> Check:
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
        return clone.call(timeout=REQUEST_TIMEOUT)

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


def extra_checks(spec: ApiSpec) -> list[Check]:
    extra: list[Check] = []
    if not credential_statuses(spec) <= AUTH_REJECTION:
        extra.append(credentials_enforced(spec))
    if inline_failures(spec) or public_host_rule(spec):
        extra.append(accepted_unless_rejected(spec))
    return extra




def schemathesis_config(spec: ApiSpec) -> SchemathesisConfig:
    """Schemathesis settings for ``spec``: spec-derived checks; no constants mined from code."""
    return SchemathesisConfig.from_dict({
        "analysis": {"constants": {"enabled": False}},
        "checks": checks_config(spec),
    })


def pinned_headers(spec: ApiSpec) -> dict[str, str]:
    """Headers that switch inline waits off, where the spec has such a header."""
    return {"Prefer": "wait=0"} if held_by_header(spec) else {}


#: What a generated callback URL the server would accept is replaced with: the reserved
#: ``.invalid`` domain never resolves, so the server under test sends nothing anywhere.
DEFANGED_URL = "https://contract-probe.invalid/hook"


def _held_for(op: Operation) -> float:
    """Seconds ``op`` may hold a request in the stateless phase (``Prefer`` is pinned to 0)."""
    if op.role != "submit" or op.wait.prefer_header:
        return 0.0
    return max([op.wait.default, *(wait for _, _, wait in op.wait.query)])


class StatelessRunner:
    """Sends schemathesis's cases for one API to one server, so that nothing hangs and no
    traffic goes where nobody asked: every request has a timeout; against a jobmock virtual
    clock a request the server may hold (an inline wait, ``?sync=true``) is sent while the
    clock is moved (:meth:`TimeKeeper.hold`); a generated callback URL the server would
    accept is replaced by one on the reserved ``.invalid`` domain."""

    def __init__(self, spec: ApiSpec, base_url: str, credential: str, budget: RunBudget,
                 receiver_url: str | None = None) -> None:
        self.spec = spec
        #: (webhooks, issue 14) the suite's receiver as the server reaches it (--receiver-url).
        self.receiver_url = receiver_url
        self.client = ContractClient(spec, base_url)
        self.keeper = TimeKeeper(self.client, budget=budget)
        self.budget = budget
        self.auth = spec.auth.headers_for(credential)
        self.holds = {(op.method.upper(), op.path): _held_for(op) for op in spec.operations}

    def close(self) -> None:
        self.client.close()

    def prepare(self, case: Any) -> None:
        """Pin inline waits off where a header can, add tenant A's credential, defang URLs."""
        if (case.method.upper(), case.operation.path) in {
                (o.method.upper(), o.path) for o in self.spec.submit_operations}:
            case.headers = {**(case.headers or {}), **pinned_headers(self.spec)}
        case.headers = {**(case.headers or {}), **self.auth, **self.client.session}
        hooks = self.spec.webhooks
        if hooks is not None and isinstance(case.body, dict):
            found, url = find(case.body, hooks.url_pointer)
            if found and isinstance(url, str) and check_callback_url(url, hooks.url_rule) is None:
                # (webhooks, issue 14) not even a refused attempt elsewhere: the suite's own
                # receiver, or no callback at all (the server then makes no delivery).
                if self.receiver_url is not None:
                    case.body = with_value(case.body, hooks.url_pointer, self.receiver_url)
                else:
                    case.body = without(copy.deepcopy(case.body), hooks.url_pointer)

    def call_and_validate(self, case: Any, checks: list[Check], excluded: list[Any]) -> None:
        """Send ``case`` (held on a virtual clock if it may be) and run the checks."""
        wait = self.holds.get((case.method.upper(), case.operation.path), 0.0)
        timeout = REQUEST_TIMEOUT + wait
        if self.keeper.virtual and wait > 0:
            response = self.keeper.hold(lambda: case.call(timeout=timeout), wait)
            case.validate_response(response, additional_checks=checks, excluded_checks=excluded)
        else:
            case.call_and_validate(additional_checks=checks, excluded_checks=excluded,
                                   timeout=timeout)
