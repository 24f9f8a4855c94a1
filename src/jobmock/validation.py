"""Request validation against an operation's OpenAPI schemas (JSON Schema 2020-12).

Validators are built once per operation when a mock starts. Local references
(``#/components/...``) resolve against the whole spec document.

Bodies are read strictly: the media types the operation's ``requestBody`` lists (else 415),
UTF-8 JSON without ``NaN``/``Infinity`` or numbers past a double's range, nested at most
:data:`MAX_JSON_DEPTH` deep (:func:`parse_json`). An error quotes at most a short prefix
of a bad value (:func:`shorten`).
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import jsonschema
from jsonschema.exceptions import best_match

from . import pointers
from .errors import RequestRefused, ValidationFailed
from .spec import ApiSpec, Operation, Parameter

if TYPE_CHECKING:
    from .dispatch import Request

__all__ = ["MAX_JSON_DEPTH", "SPEC_URI", "OperationValidator", "parse_json", "schema_validator",
           "shorten"]

#: How deep a request body's JSON may nest (arrays and objects). Free-form parts of a
#: schema (``additionalProperties: true``) allow any depth; this is where the mock stops.
MAX_JSON_DEPTH = 2000
#: The interpreter's recursion limit while a mock runs: room for a body nested
#: MAX_JSON_DEPTH deep to be parsed, validated, copied and rendered (a few frames a level).
_RECURSION_LIMIT = 5 * MAX_JSON_DEPTH
#: Characters of a bad value an error message quotes; and the longest message.
QUOTE_CHARS = 40
MESSAGE_CHARS = 400

SPEC_URI = "urn:jobmock:spec"

#: An RFC 3986 URI: a scheme, then only URI characters and well-formed %-escapes.
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:(?:[A-Za-z0-9._~!$&'()*+,;=:@/?#\[\]-]|%[0-9A-Fa-f]{2})*")
#: Request formats are asserted, as schemathesis does; jsonschema checks "uri" only with
#: the optional rfc3987 package installed, so it gets a checker of its own here.
REQUEST_FORMATS = jsonschema.FormatChecker()


@REQUEST_FORMATS.checks("uri")
def _is_uri(instance: object) -> bool:
    return not isinstance(instance, str) or _URI.fullmatch(instance) is not None


def _rebase(node: Any) -> Any:
    """Point local ``$ref``s at the registered spec document."""
    if isinstance(node, dict):
        return {k: SPEC_URI + v if k == "$ref" and isinstance(v, str) and v.startswith("#")
                else _rebase(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_rebase(v) for v in node]
    return node


def _inline(node: Any, doc: Any, seen: frozenset[str] = frozenset()) -> Any:
    """Replace local ``$ref``s by their targets, once per chain (a recursive ref stays a ref).

    Resolving a ``$ref`` through the registry on every request was a third of a
    submit's validation time.
    """
    if isinstance(node, list):
        return [_inline(v, doc, seen) for v in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/") and ref not in seen:
        target: Any = doc
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        inner = _inline(target, doc, seen | {ref})
        rest = {k: _inline(v, doc, seen) for k, v in node.items() if k != "$ref"}
        return {"allOf": [inner], **rest} if rest else inner
    return {k: _inline(v, doc, seen) for k, v in node.items()}


def schema_validator(spec: ApiSpec, schema: Mapping[str, Any],
                     format_checker: jsonschema.FormatChecker | None = None,
                     ) -> jsonschema.Draft202012Validator:
    """A validator for ``schema``, a schema found anywhere in ``spec``'s document."""
    registry = spec.registry.with_resource(SPEC_URI, spec.registry[""])
    return jsonschema.Draft202012Validator(_rebase(_inline(dict(schema), spec.document)),
                                           registry=registry, format_checker=format_checker)


def _coerce(raw: str, schema: Mapping[str, Any]) -> Any:
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else list(kinds or [])
    for kind in kinds:
        try:
            if kind == "integer":
                return int(raw)
            if kind == "number" and math.isfinite(number := float(raw)):
                return number
        except ValueError:
            continue
        if kind == "boolean" and raw.lower() in ("true", "false"):
            return raw.lower() == "true"
    return raw


#: A quoted literal (Python repr or JSON) longer than QUOTE_CHARS.
_LONG_QUOTED = re.compile("|".join(q + r"(?:[^" + q + r"\\]|\\.){" + str(QUOTE_CHARS) + ",}" + q
                                   for q in ("'", '"')), re.DOTALL)


def shorten(text: str) -> str:
    """``text`` with every long quoted value cut to a prefix, and at most MESSAGE_CHARS long."""
    text = _LONG_QUOTED.sub(lambda m: m.group(0)[:QUOTE_CHARS + 1] + "..." + m.group(0)[0], text)
    return text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS] + "..."


def _describe(err: jsonschema.ValidationError, where: str) -> str:
    path = "/".join(str(p) for p in err.absolute_path)
    if len(path) > MESSAGE_CHARS:
        path = path[:QUOTE_CHARS] + "..."
    return shorten(f"{where}{'/' + path if path else ''}: {err.message}")


class _Unparsable(ValueError):
    """A JSON text parse_json refuses although the json module would read it."""


def _no_constant(name: str) -> Any:
    raise _Unparsable(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _Unparsable(f"the number {shorten(repr(text))[1:-1]} is out of range")
    return number


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 308:  # past a double's range (about 1.8e308)
        raise _Unparsable(f"the number {text[:QUOTE_CHARS]}... is out of range")
    return int(text)


def _nests_deeper(value: Any, limit: int) -> bool:
    """Whether ``value``'s arrays and objects nest deeper than ``limit`` (iteratively)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def ensure_recursion_headroom() -> None:
    """Raise (never lower) the recursion limit so a body nested MAX_JSON_DEPTH deep can be
    parsed, validated and rendered (jobmock does this when it builds a mock's validators)."""
    if sys.getrecursionlimit() < _RECURSION_LIMIT:
        sys.setrecursionlimit(_RECURSION_LIMIT)


def parse_json(raw: bytes) -> Any:
    """Parse a request body strictly; raises :class:`ValidationFailed` with a short reason.

    UTF-8 only (a byte-order mark is ignored); ``NaN``, ``Infinity`` and numbers past a
    double's range are refused; arrays and objects nest at most MAX_JSON_DEPTH deep.
    """
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationFailed(f"request body is not UTF-8 (byte {exc.start})") from exc
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float,
                           parse_int=_bounded_int)
    except _Unparsable as exc:
        raise ValidationFailed(f"request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise ValidationFailed(f"request body nests deeper than {MAX_JSON_DEPTH} levels") from exc
    except ValueError as exc:  # JSONDecodeError, or an integer past Python's digit limit
        raise ValidationFailed(f"request body is not valid JSON: {shorten(str(exc))}") from exc
    if (isinstance(value, dict | list) and raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH
            and _nests_deeper(value, MAX_JSON_DEPTH)):
        raise ValidationFailed(f"request body nests deeper than {MAX_JSON_DEPTH} levels")
    return value


def _resolved(doc: Any, node: Any) -> Any:
    for _ in range(32):  # a chain of $refs, bounded
        if not (isinstance(node, dict) and isinstance(node.get("$ref"), str)
                and node["$ref"].startswith("#/")):
            break
        target: Any = doc
        for part in node["$ref"][2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def _media_types(spec: ApiSpec, op: Operation) -> tuple[str, ...] | None:
    """The media types ``op``'s requestBody lists (lower case); None if it takes no body."""
    try:
        item = _resolved(spec.document, spec.document["paths"][op.path])
        body = _resolved(spec.document, item[op.method.lower()].get("requestBody"))
    except (KeyError, TypeError, AttributeError):
        return None
    if not isinstance(body, dict):
        return None
    return tuple(str(k).lower() for k in body.get("content") or {})


_MEDIA = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+/[!#$%&'*+.^_`|~0-9a-z-]+")


def _accepts(listed: str, media: str) -> bool:
    """Whether the listed media range (``*/*``, ``type/*``, ``type/*+json``) covers ``media``."""
    if listed in (media, "*/*"):
        return True
    kind, _, sub = listed.partition("/")
    mkind, _, msub = media.partition("/")
    if kind != mkind:
        return False
    if sub == "*":
        return True
    return sub.startswith("*+") and msub.endswith(sub[1:])


def _is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


#: Parameter texts an OperationValidator remembers as valid (cleared when full), and the
#: longest text it remembers.
_PASSED_SIZE = 4096
_PASSED_CHARS = 256
_UNSEEN = object()

#: Stands in for an exempt callback URL while the rest of the body is validated.
PLACEHOLDER_URL = "https://callback.jobmock.invalid/hook"


def _with_placeholder_url(body: Any, pointer: str) -> Any:
    if not isinstance(pointers.get(body, pointer), str):
        return body
    return pointers.with_value(body, pointer, PLACEHOLDER_URL)


class OperationValidator:
    """Checks one operation's path parameters, query parameters and JSON body."""

    def __init__(self, spec: ApiSpec, op: Operation) -> None:
        self.op = op
        self.params: list[tuple[Parameter, jsonschema.Draft202012Validator]] = [
            (p, schema_validator(spec, p.schema, REQUEST_FORMATS)) for p in op.parameters
            if p.location in ("path", "query")
        ]
        self.body = (schema_validator(spec, op.body_schema, REQUEST_FORMATS)
                     if op.body_schema is not None else None)
        #: The media types the requestBody lists; None: the operation takes no body (one
        #: sent anyway is ignored).
        self.media = _media_types(spec, op)
        #: Parameter texts that passed their schema, and their coerced values: a poll's job
        #: id is judged once, not on every poll (schemas and coercion are pure). Bounded.
        self._passed: dict[tuple[str, str], Any] = {}
        ensure_recursion_headroom()

    def media_type(self, request: Request) -> str | None:
        """The media type ``request``'s body is read as; raises RequestRefused (415) for one
        the operation's requestBody does not list.

        Lenient where it costs nothing: a body without Content-Type is read as JSON when the
        operation takes JSON; parameters other than ``charset`` are ignored; ``charset``
        must be UTF-8 for JSON.
        """
        listed = self.media
        if listed is None:
            return None
        raw = request.headers.get("content-type", "").strip()
        if not raw:
            if any(_accepts(x, "application/json") for x in listed):
                return "application/json"
            return listed[0] if listed else None
        media, _, rest = raw.partition(";")
        media = media.strip().lower()
        accepted = ", ".join(listed) or "no body"
        if not _MEDIA.fullmatch(media) or not any(_accepts(x, media) for x in listed):
            raise RequestRefused(shorten(f"Content-Type {raw!r} is not accepted here; "
                                         f"send {accepted}"), status=415)
        for param in rest.split(";"):
            name, _, value = param.partition("=")
            charset = value.strip().strip('"').lower()
            if (name.strip().lower() == "charset" and _is_json(media)
                    and charset not in ("utf-8", "utf8")):
                raise RequestRefused(shorten(f"charset {charset!r} is not accepted: JSON is "
                                             "sent in UTF-8"), status=415)
        return media

    def validate(self, raw_params: Mapping[str, str], request: Request,
                 exempt_url: str | None = None) -> tuple[dict[str, Any], dict[str, Any], Any]:
        """Coerced path and query parameters and the parsed body; raises ValidationFailed.

        ``exempt_url`` (a JSON pointer) names a callback URL that the schema's own URL
        constraints do not judge: ``--allow-private-callbacks`` checks it by its relaxed rule.
        """
        params: dict[str, Any] = dict(raw_params)
        query: dict[str, Any] = {}
        for p, validator in self.params:
            source = raw_params if p.location == "path" else request.query
            raw = source.get(p.name)
            if raw is None:
                if p.required:
                    raise ValidationFailed(f"{p.location} parameter {p.name} is required",
                                           context={"cause": p.location})
                continue
            known = self._passed.get((p.name, raw), _UNSEEN)
            if known is not _UNSEEN:
                value = known  # this very text passed this schema before
            else:
                value = _coerce(raw, p.schema)
                err = best_match(validator.iter_errors(value))
                if err is not None:
                    raise ValidationFailed(_describe(err, f"{p.location} parameter {p.name}"),
                                           context={"cause": p.location})
                if len(self._passed) >= _PASSED_SIZE:
                    self._passed.clear()
                if len(raw) <= _PASSED_CHARS:
                    self._passed[(p.name, raw)] = value
            (params if p.location == "path" else query)[p.name] = value
        body = None
        if self.media is not None and request.body.strip():
            media = self.media_type(request)
            if media is None or not _is_json(media):
                return params, query, None  # a type the spec takes but no JSON schema judges
            body = parse_json(request.body)
        if self.body is not None:
            if body is None and self.op.body_required:
                raise ValidationFailed("request body is required")
            if body is not None:
                checked = _with_placeholder_url(body, exempt_url) if exempt_url else body
                err = best_match(self.body.iter_errors(checked))
                if err is not None:
                    raise ValidationFailed(_describe(err, "body"), context={"cause": "body"})
        return params, query, body
