"""Values shared by the scenario format, its runtime and the story runner: what a JSON
pointer finds (:data:`MISSING`, :func:`pointer_get`), JSON equality and the matchers of
expected values (:func:`compare`), ``{NAME.id}`` references and small string helpers."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from .. import pointers


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"

    def __bool__(self) -> bool:
        return False


#: What a JSON pointer finds where there is nothing.
MISSING: Any = _Missing()

_REF = re.compile(r"\{(receiver\.url|[A-Za-z_][A-Za-z0-9_-]*\.id)\}")


# --------------------------------------------------------------------------- values


def pointer_get(doc: Any, pointer: str) -> Any:
    """The value at JSON pointer ``pointer`` in ``doc``, or :data:`MISSING`."""
    if pointer and not pointer.startswith("/"):
        return MISSING
    found, value = pointers.find(doc, pointer)
    return value if found else MISSING


def _same(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but True is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _short(value: Any, limit: int = 160) -> str:
    text = "<missing>" if value is MISSING else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "..."


def _is_matcher(value: Any) -> bool:
    return isinstance(value, dict) and any(isinstance(k, str) and k.startswith("$") for k in value)


def compare(actual: Any, expected: Any, resolve: Callable[[Any], Any] = lambda v: v) -> str | None:
    """Why ``actual`` does not meet ``expected`` (a value or a matcher), or None if it does."""
    if not _is_matcher(expected):
        want = resolve(expected)
        return None if _same(actual, want) else f"expected {_short(want)}, got {_short(actual)}"
    if "$sent" in expected or "$received" in expected:
        return compare(actual, resolve(expected), resolve)
    for key, arg in expected.items():
        if key == "$present":
            if (actual is not MISSING) != bool(arg):
                return f"expected {'present' if arg else 'absent'}, got {_short(actual)}"
        elif key == "$len":
            if not isinstance(actual, list | str | dict) or len(actual) != arg:
                got = len(actual) if isinstance(actual, list | str | dict) else _short(actual)
                return f"expected length {arg}, got {got}"
        elif key == "$in":
            options = resolve(arg)
            if not any(_same(actual, o) for o in options):
                return f"expected one of {_short(options)}, got {_short(actual)}"
        elif key in ("$gte", "$lte"):
            if not isinstance(actual, int | float) or isinstance(actual, bool) or (
                    actual < arg if key == "$gte" else actual > arg):
                return f"expected {'>=' if key == '$gte' else '<='} {arg}, got {_short(actual)}"
        elif key == "$contains":
            want = resolve(arg)
            ok = (isinstance(actual, str) and isinstance(want, str) and want in actual) or (
                isinstance(actual, list) and any(_same(x, want) for x in actual))
            if not ok:
                return f"expected to contain {_short(want)}, got {_short(actual)}"
        elif key == "$pluck":
            if not isinstance(actual, list):
                return f"expected a list, got {_short(actual)}"
            plucked = [item.get(arg, MISSING) if isinstance(item, dict) else MISSING for item in actual]
            want = resolve(expected.get("$equals"))
            if not _same(plucked, want):
                first = next((i for i, (x, y) in enumerate(zip(plucked, want, strict=False))
                              if not _same(x, y)), min(len(plucked), len(want)))
                return (f"{arg} of {len(plucked)} items differs from the expected {len(want)} "
                        f"at index {first}")
        elif key == "$equals" and "$pluck" not in expected:
            problem = compare(actual, arg, resolve)
            if problem:
                return problem
    return None


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _repeat(value: Any) -> Any:
    """Expand ``{$repeat: n, $item: x}`` (``{i}`` in strings of x is the 0-based index)."""
    if isinstance(value, list):
        return [_repeat(v) for v in value]
    if isinstance(value, dict):
        if "$repeat" in value:
            item = value.get("$item", "{i}")
            return [_fill_index(item, i) for i in range(int(value["$repeat"]))]
        return {k: _repeat(v) for k, v in value.items()}
    return value


def _fill_index(item: Any, i: int) -> Any:
    if isinstance(item, str):
        return item.replace("{i}", str(i))
    if isinstance(item, list):
        return [_fill_index(v, i) for v in item]
    if isinstance(item, dict):
        return {k: _fill_index(v, i) for k, v in item.items()}
    return item


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
