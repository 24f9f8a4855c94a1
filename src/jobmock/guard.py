"""Who may call the control plane, and what a call may send: the control plane's guard.

:mod:`jobmock.control` routes; this module refuses, before any state changes:

- a caller the policy does not allow (:class:`ControlPolicy`, set by :func:`configure_control`):
  a missing or wrong token (401, compared in constant time); without a token under
  ``jobmock serve``, a ``Host`` that is not a loopback name (403: a DNS-rebinding page);
- a mutating call from another origin (an ``Origin`` that is not the server's own, or
  ``Sec-Fetch-Site: cross-site|same-site``: 403) or without a JSON media type (415; YAML
  too where the route allows it): a web page can't send one without a CORS preflight,
  which the mock never grants;
- a body over :data:`MAX_BODY` (413); JSON with ``NaN``, ``Infinity`` or a number out of
  range; YAML with an alias (so an alias bomb can't expand); a value JSON can't carry
  back (a YAML date, set or bytes); nesting over :data:`MAX_DEPTH`; more than
  :data:`MAX_VALUES` values (400);
- a clock move that is not finite, is negative, or would pass :data:`MAX_CLOCK`; a poll
  count out of range; a query integer out of range (400).

Every message quotes at most a short prefix of a bad value (:func:`clip`). It also knows
the secrets an answer must not show (:func:`known_secrets`, :func:`redacted`).
"""

from __future__ import annotations

import hmac
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .dispatch import Mock, Request
from .errors import ValidationFailed
from .journal import REDACTED
from .templates import iso
from .urlrules import is_loopback_host
from .validation import parse_json

__all__ = ["MAX_BODY", "MAX_CLOCK", "MAX_DEPTH", "MAX_POLLS", "MAX_VALUES", "ControlPolicy",
           "Refusal", "check_caller", "clip", "clock_seconds", "configure_control",
           "control_policy", "is_loopback_host", "known_secrets", "poll_count", "query_int",
           "read_body", "redacted", "short"]

#: The largest control-plane body (a scenario included), in bytes: 413 beyond.
MAX_BODY = 1024 * 1024
#: How deep and how many values a control-plane body may nest and hold.
MAX_DEPTH = 100
MAX_VALUES = 200_000
#: A virtual clock never moves past this (9000-01-01T00:00:00Z): every time a job, a retry
#: or a retention period adds to it stays a date that can be written (before year 10000).
MAX_CLOCK = datetime(9000, 1, 1, tzinfo=UTC).timestamp()
#: ``/_jobmock/advance``: the most polls per step.
MAX_POLLS = 1_000_000
#: How much of a bad value an error message quotes.
QUOTE = 60

_JSON_TYPES = re.compile(r"^application/(?:[\w.+-]+\+)?json$")
_YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_INT = re.compile(r"^[0-9]{1,9}$")


@dataclass(frozen=True, slots=True)
class ControlPolicy:
    """Who may use one mock's control plane (kept in ``mock.extensions["control"]``).

    ``token``: every call but ``GET /_jobmock/health`` needs ``Authorization: Bearer
    <token>``. ``loopback_only``: answer only requests whose ``Host`` is a loopback name
    (``jobmock serve`` without a token: a DNS-rebinding page can't reach it).
    ``keep_secrets``: show credentials and signatures (``--journal-secrets``).
    Without a policy (the in-process mock, tests): no token, any host, secrets hidden.
    """

    token: str | None = None
    loopback_only: bool = False
    keep_secrets: bool = False


def configure_control(mock: Mock, *, token: str | None = None, loopback_only: bool = False,
                      keep_secrets: bool = False) -> ControlPolicy:
    """Set who may use ``mock``'s control plane, and whether its journal keeps secrets."""
    if token is not None and not token.strip():
        raise ValueError("a control token must not be empty")
    policy = ControlPolicy(token.strip() if token else None, loopback_only, keep_secrets)
    mock.extensions["control"] = policy
    mock.journal.keep_secrets = keep_secrets
    return policy


def control_policy(mock: Mock) -> ControlPolicy:
    """The policy :func:`configure_control` set on ``mock`` (the default one if none)."""
    found = mock.extensions.get("control")
    return found if isinstance(found, ControlPolicy) else ControlPolicy()


def clip(value: Any) -> str:
    """A short, printable prefix of a bad value, for an error message."""
    text = value if isinstance(value, str) else repr(value)
    return repr(text[:QUOTE] + "...") if len(text) > QUOTE else repr(text)


class Refusal(Exception):
    """A control-plane call refused: its HTTP status and a message for the caller."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def short(text: str, limit: int = 300) -> str:
    """``text``, cut to ``limit`` characters."""
    return text if len(text) <= limit else text[:limit] + "..."


# -- who may call ---------------------------------------------------------------------------


def check_caller(mock: Mock, request: Request, parts: list[str]) -> None:
    """Refuse a call the policy does not allow: 401 (token), 403 (host, origin)."""
    policy = control_policy(mock)
    open_call = parts == ["health"] and request.method in ("GET", "HEAD")
    if policy.token is not None and not open_call:
        scheme, _, given = request.headers.get("authorization", "").strip().partition(" ")
        expected = policy.token.encode("utf-8", "surrogatepass")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode("utf-8", "surrogatepass"), expected):
            raise Refusal(401, "the control plane needs 'Authorization: Bearer <token>', the token "
                               "jobmock serve was given (--control-token or JOBMOCK_CONTROL_TOKEN)")
    if policy.token is None and policy.loopback_only and not open_call:
        host = _split_host(request.base_url)
        if not is_loopback_host(host):
            raise Refusal(403, f"without a token the control plane answers only requests addressed "
                               f"to this machine (Host localhost or 127.0.0.1), not Host "
                               f"{clip(host)}; start jobmock serve with --control-token to reach "
                               f"it by another name")
    if request.method in _MUTATING:
        site = request.headers.get("sec-fetch-site", "").strip().lower()
        origin = request.headers.get("origin")
        if site in ("cross-site", "same-site") or (
                origin is not None and _authority(origin) != _authority(request.base_url)):
            sent = f"Origin {clip(origin)}" if origin is not None else f"Sec-Fetch-Site {clip(site)}"
            raise Refusal(403, f"cross-origin control-plane calls are refused ({sent}): a web "
                               f"page may not drive the mock")


def _authority(url: str) -> str | None:
    """``host[:port]`` of an origin or base URL, lower case (None for ``null`` or garbage)."""
    scheme, sep, rest = url.strip().partition("://")
    if not sep or not scheme:
        return None
    return rest.split("/", 1)[0].lower() or None


def _split_host(base_url: str) -> str:
    authority = _authority(base_url) or ""
    if authority.startswith("["):
        return authority[1:].split("]", 1)[0]
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


# -- what a call may send -------------------------------------------------------------------


def read_body(request: Request, yaml_ok: bool = False) -> dict[str, Any]:
    """The JSON object a mutating call sent ({} for none), after every check: its media type
    (415), size (413), syntax, numbers, nesting and value count (400)."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    as_yaml = yaml_ok and kind in _YAML_TYPES
    if not (as_yaml or _JSON_TYPES.match(kind)):
        accepted = "application/json" + (" or application/yaml" if yaml_ok else "")
        raise Refusal(415, f"a control-plane {request.method} needs Content-Type: {accepted} "
                           f"(got {clip(kind) if kind else 'none'}), even with an empty body")
    if len(request.body) > MAX_BODY:
        raise Refusal(413, f"the body is {len(request.body)} bytes; the control plane takes at "
                           f"most {MAX_BODY}")
    if not request.body.strip():
        return {}
    if as_yaml:
        data = _parse_yaml(request.body)
    else:
        try:
            data = _parse_json(request.body)
        except Refusal:
            if not yaml_ok:
                raise
            data = _parse_yaml(request.body)  # a scenario file sent as JSON: YAML is a superset
    _check_values(data)
    if not isinstance(data, dict):
        raise Refusal(400, f"the body must be a JSON object, got {type(data).__name__}")
    return data


def _parse_json(raw: bytes) -> Any:
    """The API's strict JSON reading (:func:`jobmock.validation.parse_json`: no NaN,
    Infinity or out-of-range numbers), its refusal a control-plane 400; nesting and size
    are bounded after, by :func:`_check_values`."""
    try:
        return parse_json(raw)
    except ValidationFailed as exc:
        raise Refusal(400, exc.message.replace("request body", "the body", 1)) from None


def _parse_yaml(raw: bytes) -> Any:
    """YAML without aliases (an alias bomb can't expand), nesting and size bounded."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(raw)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise Refusal(400, f"the body is not valid YAML: {short(str(exc))}") from None
    except RecursionError:
        raise Refusal(400, f"the body nests deeper than {MAX_DEPTH} levels") from None
    except (ValueError, OverflowError, TypeError) as exc:  # e.g. a timestamp with month 13
        raise Refusal(400, f"the body has a YAML value Python can't read: {short(str(exc))}") from None
    finally:
        loader.dispose()


def _check_nodes(root: Any) -> None:
    """Refuse a YAML node graph with an alias (a node reached twice), too deep or too big."""
    import yaml

    seen: set[int] = set()
    stack: list[tuple[Any, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if id(node) in seen:
            raise Refusal(400, f"YAML aliases are not accepted on the control plane (line "
                               f"{node.start_mark.line + 1}): write the value out")
        seen.add(id(node))
        if len(seen) > MAX_VALUES:
            raise Refusal(400, f"the body holds more than {MAX_VALUES} values")
        if depth > MAX_DEPTH:
            raise Refusal(400, f"the body nests deeper than {MAX_DEPTH} levels")
        if isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))


def _check_values(data: Any) -> None:
    """Refuse what JSON can't carry back: non-finite or non-JSON values (a YAML date, set or
    bytes), too deep a nesting, too many values."""
    stack: list[tuple[Any, int, str]] = [(data, 0, "")]
    count = 0
    while stack:
        value, depth, where = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise Refusal(400, f"the body holds more than {MAX_VALUES} values")
        if depth > MAX_DEPTH:
            raise Refusal(400, f"the body nests deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, str | int | bool) and k is not None:
                    raise Refusal(400, f"at {clip(where or '/')}: a key of type "
                                       f"{type(k).__name__}; JSON keys are strings")
                stack.append((v, depth + 1, f"{where}/{k}"))
        elif isinstance(value, list):
            stack.extend((v, depth + 1, f"{where}/{i}") for i, v in enumerate(value))
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise Refusal(400, f"at {clip(where or '/')}: {value} is not a finite number")
        elif not isinstance(value, str | int | bool) and value is not None:
            raise Refusal(400, f"at {clip(where or '/')}: a {type(value).__name__} is not a JSON "
                               f"value (quote it)")


def query_int(request: Request, name: str, default: int | None, most: int) -> int | None:
    """An integer query parameter in 0..most (400 otherwise)."""
    raw = request.query.get(name)
    if raw is None:
        return default
    if not _INT.match(raw) or int(raw) > most:
        raise Refusal(400, f"{name} must be an integer from 0 to {most}, got {clip(raw)}")
    return int(raw)


def clock_seconds(data: dict[str, Any], now: float) -> float:
    """``seconds`` of a clock move: finite, >= 0, and keeping the clock before MAX_CLOCK."""
    seconds = data.get("seconds")
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        raise Refusal(400, f"seconds must be a non-negative number, got {clip(seconds)}")
    try:
        value = float(seconds)
    except OverflowError:
        value = math.inf
    if not value >= 0 or not math.isfinite(value):
        raise Refusal(400, f"seconds must be a finite, non-negative number, got {clip(seconds)}")
    if now + value > MAX_CLOCK:
        raise Refusal(400, f"seconds {clip(seconds)} would move the clock past {iso(MAX_CLOCK)}, "
                           f"the latest time the mock keeps (at most {max(0.0, MAX_CLOCK - now):.0f} "
                           f"more)")
    return value


def poll_count(value: Any) -> int:
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or (isinstance(value, float) and not value.is_integer())
            or not 1 <= value <= MAX_POLLS):
        raise Refusal(400, f"polls must be an integer from 1 to {MAX_POLLS}, got {clip(value)}")
    return int(value)


def known_secrets(mock: Mock) -> list[str]:
    """Every secret value the mock knows (credentials, as sent too; the webhook signing
    secret), longest first: what an answer must not show unless the policy keeps secrets."""
    auth = mock.spec.auth
    out: set[str] = set()
    for creds in auth.tenants.values():
        for credential in creds:
            out.add(credential)
            for value in (*auth.headers_for(credential).values(),
                          *auth.query_for(credential).values()):
                out.update((value, value.partition(" ")[2]))
    hooks = mock.spec.webhooks
    if hooks is not None and hooks.signature is not None:
        out.add(hooks.signature.secret or "")
        out.update(getattr(hooks.signature, "previous", ()))  # rotated-out secrets
    secret = getattr(mock.webhooks, "secret", None)  # --webhook-secret, when given
    if isinstance(secret, str):
        out.add(secret)
    return sorted((s for s in out if len(s) >= 4), key=len, reverse=True)


def redacted(value: Any, secrets: list[str]) -> Any:
    """``value`` with every occurrence of a secret in its strings replaced by REDACTED."""
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {k: redacted(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted(v, secrets) for v in value]
    return value
