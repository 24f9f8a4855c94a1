"""The ``x-jobmock`` reference, written from the JSON Schema that checks it at load.

Every key's description lives in ``schemas/x-jobmock.schema.json``; :func:`render` turns
the schema into one Markdown page (``docs/x-jobmock.md``, and ``jobmock reference``), so
the reference can't drift from what the loader accepts: a test compares the two.
"""

from __future__ import annotations

import json
from typing import Any

from .spec import packaged_schema

__all__ = ["render"]

_INTRO = """# The `x-jobmock` reference

Generated from `src/jobmock/schemas/x-jobmock.schema.json` by `jobmock reference`; do not
edit by hand. Each row is a key, its type and what it means. `$defs` at the end are the
shapes used in several places (an operation's own `x-jobmock` is `$defs/operation`).

Units: every duration is in **seconds** of the mock's clock (real, sped up or virtual).
Times in bodies are rendered by templates: `{job.created_at}` (ISO 8601 UTC),
`{job.created_at_ms}` (epoch milliseconds), `{job.created_at_s}` (epoch seconds), with
offsets through `{x|add:N}`. Job ids are read by clients from `job_id_from`
(`header:NAME` or `body:/pointer`, optionally `|last_segment` or `|after:PREFIX`).
What is signed: the webhook body as sent (see `webhooks.signature`). An operation with no
`x-jobmock` role is answered 501 with a message saying the mock does not simulate it.
See ARCHITECTURE.md ("Templates") for placeholders, filters, `$if` and `$each`.
"""


def _type(node: dict[str, Any]) -> str:
    if "$ref" in node:
        return f"see `{node['$ref'].removeprefix('#/')}`"
    if "enum" in node:
        return "one of " + ", ".join(f"`{json.dumps(v)}`" for v in node["enum"])
    kind = node.get("type")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array":
        items = node.get("items") or {}
        return f"array of {_type(items)}" if items else "array"
    return str(kind) if kind else "any"


def _rows(node: dict[str, Any], prefix: str, out: list[str]) -> None:
    props: dict[str, Any] = node.get("properties") or {}
    required = set(node.get("required") or ())
    for name, sub in props.items():
        key = f"{prefix}{name}"
        desc = " ".join(str(sub.get("description", "")).split())
        if "default" in sub:
            desc += f" Default `{json.dumps(sub['default'])}`."
        mark = " (required)" if name in required else ""
        out.append(f"| `{key}`{mark} | {_type(sub)} | {desc.strip()} |")
        if isinstance(sub, dict) and sub.get("type") == "object":
            _rows(sub, key + ".", out)
            extra = sub.get("additionalProperties")
            if isinstance(extra, dict) and extra.get("properties"):
                _rows(extra, key + ".<name>.", out)
        if isinstance(sub, dict) and isinstance(sub.get("items"), dict):
            _rows(sub["items"], key + "[].", out)


def render() -> str:
    """The reference page, in Markdown."""
    schema = packaged_schema("x-jobmock")
    out = [_INTRO, "## `x-jobmock` (top level of the document)", "",
           " ".join(str(schema.get("description", "")).split()), "",
           "| key | type | meaning |", "|---|---|---|"]
    _rows(schema, "", out)
    for name, node in (schema.get("$defs") or {}).items():
        out += ["", f"## `$defs/{name}`", ""]
        if node.get("description"):
            out += [" ".join(str(node["description"]).split()), ""]
        if node.get("properties"):
            out += ["| key | type | meaning |", "|---|---|---|"]
            _rows(node, "", out)
        else:
            out.append(f"Type: {_type(node)}.")
    return "\n".join(out) + "\n"
