"""What the contract suite reads from a spec beyond the typed model: schemas, pointers, constants.

Everything here is derived from the spec document alone (never from the mock), so the
suite judges any server by what the spec says.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import jsonschema

from ..pointers import find
from ..spec import TERMINAL_ROLES, ApiSpec, Operation
from ..templates import template_leaves, template_pointers
from ..validation import schema_validator

__all__ = ["SpecView", "pointer_get"]

_PLACEHOLDER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_.]*(\|[a-z0-9]+(:-?[0-9.]+)?)?\}")


#: ``(found, value)`` at a JSON pointer.
pointer_get = find


@dataclass(frozen=True, slots=True)
class Constant:
    pointer: str
    value: Any


class SpecView:
    """A spec, seen from the contract suite."""

    def __init__(self, spec: ApiSpec) -> None:
        self.spec = spec
        self.ext: Mapping[str, Any] = spec.document["x-jobmock"]

    # -- operations and schemas -------------------------------------------------------

    def operation_node(self, op: Operation) -> Mapping[str, Any]:
        node: Mapping[str, Any] = self.spec.document["paths"][op.path][op.method.lower()]
        return node

    def resolve(self, node: Any) -> Any:
        for _ in range(32):
            if not (isinstance(node, dict) and "$ref" in node):
                return node
            found, node = pointer_get(self.spec.document, node["$ref"][1:])
            if not found:
                return None
        return node

    def response(self, op: Operation, status: int) -> Mapping[str, Any] | None:
        responses = self.operation_node(op).get("responses") or {}
        node = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX")
        resolved = self.resolve(node) if node is not None else None
        return resolved if isinstance(resolved, dict) else None

    def response_validator(self, op: Operation, status: int,
                           ) -> jsonschema.Draft202012Validator | None:
        resp = self.response(op, status)
        media = ((resp or {}).get("content") or {}).get("application/json")
        schema = media.get("schema") if media else None
        return schema_validator(self.spec, schema) if schema is not None else None

    def documented_headers(self, op: Operation, status: int) -> dict[str, Mapping[str, Any]]:
        resp = self.response(op, status) or {}
        return {k.lower(): self.resolve(v) for k, v in (resp.get("headers") or {}).items()}

    @cached_property
    def webhook_validator(self) -> jsonschema.Draft202012Validator | None:
        """The schema of the callback body, from the submit operations' callbacks or webhooks."""
        for op in self.spec.submit_operations:
            for cb in (self.operation_node(op).get("callbacks") or {}).values():
                for item in (self.resolve(cb) or {}).values():
                    post = (self.resolve(item) or {}).get("post") or {}
                    body = self.resolve(post.get("requestBody")) or {}
                    media = (body.get("content") or {}).get("application/json")
                    if media and "schema" in media:
                        return schema_validator(self.spec, media["schema"])
        for item in (self.spec.document.get("webhooks") or {}).values():
            post = (self.resolve(item) or {}).get("post") or {}
            body = self.resolve(post.get("requestBody")) or {}
            media = (body.get("content") or {}).get("application/json")
            if media and "schema" in media:
                return schema_validator(self.spec, media["schema"])
        return None

    # -- templates ----------------------------------------------------------------------

    def render_template(self, name: str) -> Any:
        return self.ext["render"][name]

    def pointers_of(self, render: str, placeholder: str) -> list[str]:
        """Where a render template puts exactly ``{placeholder}``."""
        return template_pointers(self.render_template(render), placeholder)

    def status_pointers(self, placeholder: str) -> list[str]:
        return self.pointers_of(self.spec.status_render, placeholder)

    def error_constants(self, name: str) -> list[Constant]:
        """The fixed leaves of a named error body: what every server must send verbatim."""
        body = self.ext["errors"][name]["body"]
        out = []
        for pointer, leaf in template_leaves(body):
            if isinstance(leaf, str) and _PLACEHOLDER.search(leaf):
                continue
            out.append(Constant(pointer, leaf))
        return out

    def error_status(self, name: str) -> int:
        return int(self.ext["errors"][name]["status"])

    # -- lifecycle ------------------------------------------------------------------------

    def role(self, word: str) -> str | None:
        return self.spec.lifecycle.states.get(word)

    def is_terminal(self, word: str) -> bool:
        return self.role(word) in TERMINAL_ROLES

    def error_expected(self, word: str) -> bool:
        """Whether a job in ``word`` carries an error, as the spec's outcomes say."""
        return word in (self.ext.get("outcomes") or {}) and "error" in self.ext["outcomes"][word]

    @cached_property
    def submit_statuses(self) -> dict[str, set[int]]:
        """Per submit operation: the statuses its answers may have."""
        return {o.operation_id: {r.status for r in o.responses.values()}
                for o in self.spec.submit_operations}

    @cached_property
    def invariants(self) -> list[Mapping[str, Any]]:
        return list((self.ext.get("contract") or {}).get("invariants") or [])
