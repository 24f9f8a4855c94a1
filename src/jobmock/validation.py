"""Request validation against an operation's OpenAPI schemas (JSON Schema 2020-12).

Validators are built once per operation when a mock starts. Local references
(``#/components/...``) resolve against the whole spec document.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import jsonschema
from jsonschema.exceptions import best_match

from .errors import ValidationFailed
from .spec import ApiSpec, Operation, Parameter

if TYPE_CHECKING:
    from .dispatch import Request

__all__ = ["SPEC_URI", "OperationValidator", "schema_validator"]

SPEC_URI = "urn:jobmock:spec"


def _rebase(node: Any) -> Any:
    """Point local ``$ref``s at the registered spec document."""
    if isinstance(node, dict):
        return {k: SPEC_URI + v if k == "$ref" and isinstance(v, str) and v.startswith("#")
                else _rebase(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_rebase(v) for v in node]
    return node


def schema_validator(spec: ApiSpec, schema: Mapping[str, Any]) -> jsonschema.Draft202012Validator:
    """A validator for ``schema``, a schema found anywhere in ``spec``'s document."""
    registry = spec.registry.with_resource(SPEC_URI, spec.registry[""])
    return jsonschema.Draft202012Validator(_rebase(dict(schema)), registry=registry)


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


class OperationValidator:
    """Checks one operation's path parameters, query parameters and JSON body."""

    def __init__(self, spec: ApiSpec, op: Operation) -> None:
        self.op = op
        self.params: list[tuple[Parameter, jsonschema.Draft202012Validator]] = [
            (p, schema_validator(spec, p.schema)) for p in op.parameters
            if p.location in ("path", "query")
        ]
        self.body = schema_validator(spec, op.body_schema) if op.body_schema is not None else None

    def validate(self, raw_params: Mapping[str, str], request: Request,
                 ) -> tuple[dict[str, Any], dict[str, Any], Any]:
        """Coerced path and query parameters and the parsed body; raises ValidationFailed."""
        params: dict[str, Any] = dict(raw_params)
        query: dict[str, Any] = {}
        for p, validator in self.params:
            source = raw_params if p.location == "path" else request.query
            raw = source.get(p.name)
            if raw is None:
                if p.required:
                    raise ValidationFailed(f"{p.location} parameter {p.name} is required")
                continue
            value = _coerce(raw, p.schema)
            err = best_match(validator.iter_errors(value))
            if err is not None:
                raise ValidationFailed(_describe(err, f"{p.location} parameter {p.name}"))
            (params if p.location == "path" else query)[p.name] = value
        body = None
        if request.body.strip():
            try:
                body = json.loads(request.body)
            except (ValueError, UnicodeDecodeError) as exc:
                raise ValidationFailed(f"request body is not valid JSON: {exc}") from exc
        if self.body is not None:
            if body is None and self.op.body_required:
                raise ValidationFailed("request body is required")
            if body is not None:
                err = best_match(self.body.iter_errors(body))
                if err is not None:
                    raise ValidationFailed(_describe(err, "body"))
        return params, query, body
