"""JSON pointers (RFC 6901): the one reader and writer every module uses."""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["find", "get", "parts", "replace_existing", "with_value", "without"]


def parts(pointer: str) -> list[str]:
    """The unescaped reference tokens of ``pointer`` ("" is the whole document)."""
    if pointer in ("", "/"):
        return [] if pointer == "" else [""]
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer.lstrip("/").split("/")]


def find(doc: Any, pointer: str) -> tuple[bool, Any]:
    """``(found, value)`` at ``pointer`` in ``doc``."""
    node = doc
    for part in parts(pointer):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def get(doc: Any, pointer: str | None, default: Any = None) -> Any:
    """The value at ``pointer``, or ``default``."""
    if pointer is None:
        return default
    found, value = find(doc, pointer)
    return value if found else default


def replace_existing(doc: Any, pointer: str, value: Any) -> None:
    """Set the value at ``pointer`` in place, only if it is already there."""
    *head, last = parts(pointer) or [""]
    found, parent = find(doc, "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in head))
    if found and isinstance(parent, dict) and last in parent:
        parent[last] = value


def with_value(doc: Any, pointer: str, value: Any) -> Any:
    """A copy of ``doc`` (a mapping, or None for a new one) with ``value`` at ``pointer``,
    creating the mappings on the way."""
    out = copy.deepcopy(doc) if doc is not None else {}
    if not isinstance(out, dict):
        return out
    *head, last = parts(pointer)
    node = out
    for part in head:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[last] = value
    return out


def without(doc: Any, pointer: str) -> Any:
    """``doc`` with the value at ``pointer`` removed (in place), and a parent it leaves
    empty removed too. Returns ``doc``."""
    if not isinstance(doc, dict):
        return doc
    *head, last = parts(pointer)
    chain = [doc]
    for part in head:
        nxt = chain[-1].get(part)
        if not isinstance(nxt, dict):
            return doc
        chain.append(nxt)
    chain[-1].pop(last, None)
    if len(chain) > 1 and not chain[-1]:
        chain[-2].pop(head[-1], None)
    return doc
