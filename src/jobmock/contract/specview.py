"""What the contract suite reads from a spec beyond the typed model: schemas, pointers, constants.

Everything here is derived from the spec document alone (never from the mock), so the
suite judges any server by what the spec says.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from ..pointers import find, parts
from ..spec import TERMINAL_ROLES, ApiSpec, Operation
from ..templates import template_leaves, template_pointers
from ..validation import schema_validator

__all__ = ["Assumptions", "SpecView", "pointer_get"]

_PLACEHOLDER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_.]*(\|[a-z0-9]+(:-?[0-9.]+)?)?\}")


#: ``(found, value)`` at a JSON pointer.
pointer_get = find


@dataclass(frozen=True, slots=True)
class Constant:
    pointer: str
    value: Any


def _join(tokens: list[str]) -> str:
    return "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in tokens)


def _under(pointer: str, root: str) -> bool:
    return pointer == root or pointer.startswith(root.rstrip("/") + "/")


class Assumptions:
    """The spec's ``x-jobmock.assumed``: JSON pointers to what the spec chose where its vendor
    document is silent. The suite judges them leniently: never demanded (a server may lack
    them), but what a server does send must still match its schema."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        ext = document.get("x-jobmock") or {}
        self.pointers: tuple[str, ...] = tuple(str(p) for p in ext.get("assumed") or ())

    def __bool__(self) -> bool:
        return bool(self.pointers)

    def covers(self, *pointers: str) -> bool:
        """Whether any of ``pointers`` is assumed (it, or a node above it, is listed)."""
        return any(_under(p, a) for p in pointers for a in self.pointers)

    def lenient_document(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``document`` where assumed schema properties are not required and
        assumed response headers are not required."""
        doc: dict[str, Any] = copy.deepcopy(dict(document))
        for pointer in self.pointers:
            tokens = parts(pointer)
            if len(tokens) < 2:
                continue
            found, parent = find(doc, _join(tokens[:-2]))
            if tokens[-2] == "properties" and found and isinstance(parent, dict) \
                    and isinstance(parent.get("required"), list):
                parent["required"] = [r for r in parent["required"] if r != tokens[-1]]
            found, node = find(doc, pointer)
            if tokens[-2] == "headers" and found and isinstance(node, dict):
                node["required"] = False
        return doc


class SpecView:
    """A spec, seen from the contract suite."""

    def __init__(self, spec: ApiSpec) -> None:
        self.spec = spec
        self.ext: Mapping[str, Any] = spec.document["x-jobmock"]
        self.assumed = Assumptions(spec.document)
        #: The spec the suite validates bodies with: assumed properties are not required.
        self.lenient = spec
        if self.assumed:
            doc = self.assumed.lenient_document(spec.document)
            registry: Registry[Any] = Registry().with_resource(
                "", Resource.from_contents(doc, default_specification=DRAFT202012))
            self.lenient = dataclasses.replace(spec, document=doc, registry=registry)

    # -- operations and schemas -------------------------------------------------------

    def operation_pointer(self, op: Operation) -> str:
        """The JSON pointer of ``op`` in the document."""
        return _join(["paths", op.path, op.method.lower()])

    def operation_node(self, op: Operation) -> Mapping[str, Any]:
        node: Mapping[str, Any] = self.lenient.document["paths"][op.path][op.method.lower()]
        return node

    def resolve(self, node: Any) -> Any:
        for _ in range(32):
            if not (isinstance(node, dict) and "$ref" in node):
                return node
            found, node = pointer_get(self.lenient.document, node["$ref"][1:])
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
        return schema_validator(self.lenient, schema) if schema is not None else None

    def documented_headers(self, op: Operation, status: int) -> dict[str, Mapping[str, Any]]:
        resp = self.response(op, status) or {}
        return {k.lower(): self.resolve(v) for k, v in (resp.get("headers") or {}).items()}

    def _locations(self, pointer: str) -> list[str]:
        """``pointer`` and every node its ``$ref`` chain leads to (where a spec may say Assumed)."""
        out = [pointer]
        found, node = pointer_get(self.lenient.document, pointer)
        for _ in range(32):
            if not (found and isinstance(node, dict) and isinstance(node.get("$ref"), str)):
                break
            ref = node["$ref"][1:]
            out.append(ref)
            found, node = pointer_get(self.lenient.document, ref)
        return out

    def response_locations(self, op: Operation, status: int) -> list[str]:
        """Where the spec defines ``op``'s answer with ``status`` (empty: it does not)."""
        responses = self.operation_node(op).get("responses") or {}
        key = next((k for k in (str(status), f"{str(status)[0]}XX") if k in responses), None)
        if key is None:
            return []
        return self._locations(_join(["paths", op.path, op.method.lower(), "responses", key]))

    def header_locations(self, op: Operation, status: int, name: str) -> list[str]:
        """Where the spec puts header ``name`` on that answer (empty: it does not)."""
        out: list[str] = []
        for loc in self.response_locations(op, status):
            _, node = pointer_get(self.lenient.document, loc)
            headers = (node or {}).get("headers") or {} if isinstance(node, dict) else {}
            for key in headers:
                if key.lower() == name.lower():
                    out.extend(self._locations(loc + _join(["headers", key])))
        return out

    def header_demanded(self, op: Operation, status: int, name: str, *also: str) -> bool:
        """Whether an answer of ``op`` with ``status`` must carry header ``name``: the spec's
        response definition lists it, does not say ``required: false``, and neither it nor
        ``also`` (x-jobmock pointers that promise it) is assumed."""
        where = self.header_locations(op, status, name)
        if not where or self.assumed.covers(*where, *also):
            return False
        header = self.documented_headers(op, status).get(name.lower()) or {}
        return not (isinstance(header, dict) and header.get("required") is False)

    def error_status_assumed(self, name: str) -> bool:
        """Whether the spec assumed the status of its error ``name`` (then any 4xx refusal does)."""
        return self.assumed.covers(f"/x-jobmock/errors/{name}/status")

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
                        return schema_validator(self.lenient, media["schema"])
        for item in (self.lenient.document.get("webhooks") or {}).values():
            post = (self.resolve(item) or {}).get("post") or {}
            body = self.resolve(post.get("requestBody")) or {}
            media = (body.get("content") or {}).get("application/json")
            if media and "schema" in media:
                return schema_validator(self.lenient, media["schema"])
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
            if self.assumed.covers(f"/x-jobmock/errors/{name}/body{pointer}"):
                continue  # the spec assumed this text: a server may word it otherwise
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
