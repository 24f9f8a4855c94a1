"""Request validation against an operation's OpenAPI schemas (JSON Schema 2020-12).

Validators are built once per operation when a mock starts. Local references
(``#/components/...``) resolve against the whole spec document.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import jsonschema
from jsonschema.exceptions import best_match

from . import pointers
from .errors import ValidationFailed
from .spec import ApiSpec, Operation, Parameter

if TYPE_CHECKING:
    from .dispatch import Request

__all__ = ["SPEC_URI", "OperationValidator", "schema_validator"]

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
            if kind == "number":
                return float(raw)
        except ValueError:
            continue
        if kind == "boolean" and raw.lower() in ("true", "false"):
            return raw.lower() == "true"
    return raw


def _describe(err: jsonschema.ValidationError, where: str) -> str:
    path = "/".join(str(p) for p in err.absolute_path)
    return f"{where}{'/' + path if path else ''}: {err.message}"


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
            value = _coerce(raw, p.schema)
            err = best_match(validator.iter_errors(value))
            if err is not None:
                raise ValidationFailed(_describe(err, f"{p.location} parameter {p.name}"),
                                       context={"cause": p.location})
            (params if p.location == "path" else query)[p.name] = value
        body = None
        if request.body.strip():
            try:
                body = json.loads(request.body)
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                raise ValidationFailed(f"request body is not valid JSON: {exc}",
                                       context={"cause": "json"}) from exc
        if self.body is not None:
            if body is None and self.op.body_required:
                raise ValidationFailed("request body is required")
            if body is not None:
                checked = _with_placeholder_url(body, exempt_url) if exempt_url else body
                err = best_match(self.body.iter_errors(checked))
                if err is not None:
                    raise ValidationFailed(_describe(err, "body"), context={"cause": "body"})
        return params, query, body
