"""Templates: how a spec turns a job (or an error) into this API's JSON.

A template is plain JSON-like data, compiled once at load into a function of a
context mapping:

- ``"{job.id}"``: a string that is exactly one placeholder renders the raw value;
- ``"{base_url}/jobs/{job.id}"``: text around placeholders interpolates (null as "");
- ``{"key?": ...}``: the key is omitted when its value renders to null;
- ``{"$if": {"status": [...]} | {"roles": [...]}, "then": T, "else": E}``, or
  ``{"$if": {"present": "{job.started_at}"}, ...}``: then when the placeholder is not null;
- ``{"$each": "{job.request.items}", "as": "item", "do": T}`` renders a list;
- filters: ``{x|len}``, ``{x|sha256}``, ``{x|str}``, ``{x|colonparams}``, which
  writes a route's ``{name}`` parameters as ``:name`` (``/v5/a/{id}`` -> ``/v5/a/:id``),
  and ``{x|add:N}``, which adds the number N (``{job.created_at_s|add:86400}``: a day
  after creation, in epoch seconds).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from .errors import SpecError

__all__ = [
    "PLACEHOLDER",
    "ROOTS",
    "Renderer",
    "compile_template",
    "iso",
    "lookup",
    "render_string",
    "template_leaves",
    "template_pointers",
]

Renderer = Callable[[Mapping[str, Any]], Any]

#: The names a placeholder may start with.
ROOTS = frozenset(
    {"job", "base_url", "now", "now_ms", "request", "message", "conflict", "event", "tenant",
     "item", "index", "page", "cause"}
)
_PLACEHOLDER = re.compile(
    r"\{([A-Za-z_][A-Za-z0-9_.]*)(?:\|([a-z0-9]+)(?::(-?[0-9]+(?:\.[0-9]+)?))?)?\}")
#: A ``{root.name}`` or ``{root.name|filter:arg}`` placeholder; group 1 is the name.
PLACEHOLDER = _PLACEHOLDER
_ROUTE_PARAM = re.compile(r"\{([^{}/]+)\}")
_BRACED = re.compile(r"\{[^{}\s\"']+\}")
_FILTERS: dict[str, Callable[[Any], Any]] = {
    "len": lambda v: len(v) if v is not None else None,
    "sha256": lambda v: hashlib.sha256(str(v).encode()).hexdigest() if v is not None else None,
    "str": lambda v: None if v is None else (v if isinstance(v, str) else json.dumps(v)),
    "colonparams": lambda v: None if v is None else _ROUTE_PARAM.sub(r":\1", str(v)),
}
#: Filters that take a number: ``{x|add:86400}``.
_ARG_FILTERS: dict[str, Callable[[Any, float], Any]] = {
    "add": lambda v, n: None if not isinstance(v, int | float) or isinstance(v, bool) else (
        v + int(n) if isinstance(v, int) and n == int(n) else v + n),
}


def iso(ts: float | None) -> str | None:
    """ISO 8601 UTC with milliseconds and ``Z``, or None."""
    return None if ts is None else _iso(ts)


@functools.lru_cache(maxsize=4096)
def _iso(ts: float) -> str:
    # A job's timestamps are rendered on every poll: strftime was a quarter of a poll's cost.
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def lookup(ctx: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """Follow ``path`` through mappings and lists; None where it leads nowhere."""
    value: Any = ctx
    for part in path:
        if value is None:
            return None
        if isinstance(value, list):
            value = value[int(part)] if part.isdigit() and int(part) < len(value) else None
        else:
            try:
                value = value.get(part)
            except AttributeError:
                return None
    return value


def _interp(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def _resolver(name: str, filt: str | None, where: str, file: str,
              roots: frozenset[str] = ROOTS, arg: str | None = None) -> Renderer:
    path = tuple(name.split("."))
    if path[0] not in roots:
        raise SpecError(file, where, f"placeholder {{{name}}} must start with one of {sorted(roots)}")
    if filt is not None and filt in _ARG_FILTERS:
        if arg is None:
            raise SpecError(file, where, f"filter |{filt} takes a number: |{filt}:N")
        g, n = _ARG_FILTERS[filt], float(arg)
        return lambda ctx: g(lookup(ctx, path), n)
    if filt is not None and filt not in _FILTERS:
        raise SpecError(file, where, f"unknown filter |{filt}: expected one of "
                                     f"{sorted([*_FILTERS, *_ARG_FILTERS])}")
    if arg is not None:
        raise SpecError(file, where, f"filter |{filt} takes no argument")
    f = _FILTERS.get(filt) if filt else None
    if f is None:
        return lambda ctx: lookup(ctx, path)
    return lambda ctx: f(lookup(ctx, path))


def render_string(text: str, file: str = "<template>", where: str = "",
                  roots: frozenset[str] = ROOTS) -> Renderer:
    """Compile one string template. A ``{...}`` that is not a placeholder it can fill (a
    name with ``-`` in it, say) is an error, not literal text."""
    matches = list(_PLACEHOLDER.finditer(text))
    rest = _PLACEHOLDER.sub("", text)
    bad = _BRACED.search(rest)
    if bad:
        raise SpecError(file, where, f"placeholders of the form {{root.name}} or {{root.name|filter}}"
                                     f" (names of letters, digits, _ and .), got {bad.group(0)}")
    if not matches:
        return lambda ctx: text
    if len(matches) == 1 and matches[0].span() == (0, len(text)):
        return _resolver(matches[0].group(1), matches[0].group(2), where, file, roots,
                         matches[0].group(3))
    parts: list[Renderer | str] = []
    pos = 0
    for m in matches:
        if m.start() > pos:
            parts.append(text[pos : m.start()])
        parts.append(_resolver(m.group(1), m.group(2), where, file, roots, m.group(3)))
        pos = m.end()
    if pos < len(text):
        parts.append(text[pos:])

    def interpolate(ctx: Mapping[str, Any]) -> str:
        return "".join(p if isinstance(p, str) else _interp(p(ctx)) for p in parts)

    return interpolate


_OMIT = object()


def compile_template(tpl: Any, file: str = "<template>", where: str = "",
                     roots: frozenset[str] = ROOTS) -> Renderer:
    """Compile a template (see the module docstring) into a function of a context."""
    if isinstance(tpl, str):
        return render_string(tpl, file, where, roots)
    if isinstance(tpl, list):
        items = [compile_template(t, file, f"{where}/{i}", roots) for i, t in enumerate(tpl)]
        return lambda ctx: [r(ctx) for r in items]
    if isinstance(tpl, dict):
        if "$if" in tpl:
            return _compile_if(tpl, file, where, roots)
        if "$each" in tpl:
            return _compile_each(tpl, file, where, roots)
        fields: list[tuple[str, bool, Renderer]] = []
        for key, sub in tpl.items():
            key = str(key)
            optional = key.endswith("?")
            name = key[:-1] if optional else key
            fields.append((name, optional, compile_template(sub, file, f"{where}/{name}", roots)))

        def mapping(ctx: Mapping[str, Any]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for name, optional, r in fields:
                v = r(ctx)
                if v is None and optional:
                    continue
                out[name] = v
            return out

        return mapping
    return lambda ctx: tpl


def _compile_if(tpl: dict[str, Any], file: str, where: str, roots: frozenset[str]) -> Renderer:
    cond = tpl["$if"]
    extra = set(tpl) - {"$if", "then", "else"}
    if extra or not isinstance(cond, dict) or len(cond) != 1 or not (
        set(cond) <= {"status", "roles", "present"}
    ) or not isinstance(cond.get("present", ""), str):
        raise SpecError(file, where, "$if takes {status: [...]}, {roles: [...]} or "
                                     "{present: \"{placeholder}\"}, then and else")
    field = "status" if "status" in cond else "role"
    wanted = frozenset(cond.get("status") or cond.get("roles") or ())
    then = compile_template(tpl.get("then"), file, f"{where}/then", roots)
    other = compile_template(tpl.get("else"), file, f"{where}/else", roots)
    if "present" in cond:  # then when the placeholder renders a value, else when null
        probe = render_string(cond["present"], file, f"{where}/$if/present", roots)
        return lambda ctx: then(ctx) if probe(ctx) is not None else other(ctx)

    def choose(ctx: Mapping[str, Any]) -> Any:
        job = ctx.get("job")
        value = job.get(field) if job is not None else None
        return then(ctx) if value in wanted else other(ctx)

    return choose


def _compile_each(tpl: dict[str, Any], file: str, where: str, roots: frozenset[str]) -> Renderer:
    extra = set(tpl) - {"$each", "as", "do"}
    if extra or not isinstance(tpl["$each"], str) or "do" not in tpl:
        raise SpecError(file, where, "$each takes a placeholder string, 'as' and 'do'")
    source = render_string(tpl["$each"], file, f"{where}/$each", roots)
    name = str(tpl.get("as", "item"))
    body = compile_template(tpl["do"], file, f"{where}/do", roots | {name})

    def each(ctx: Mapping[str, Any]) -> list[Any] | None:
        seq = source(ctx)
        if seq is None:
            return None
        if not isinstance(seq, list):
            seq = [seq]
        out = []
        for i, item in enumerate(seq):
            inner = dict(ctx)
            inner[name] = item
            inner["index"] = i
            out.append(body(inner))
        return out

    return each


def template_leaves(tpl: Any, pointer: str = "") -> Iterator[tuple[str, Any]]:
    """``(JSON pointer, leaf)`` for every leaf of an uncompiled template.

    Both branches of a ``$if`` share its pointer; ``$each`` bodies are not walked.
    """
    if isinstance(tpl, dict):
        if "$if" in tpl:
            yield from template_leaves(tpl.get("then"), pointer)
            yield from template_leaves(tpl.get("else"), pointer)
            return
        if "$each" in tpl:
            return
        for key, sub in tpl.items():
            name = str(key).removesuffix("?").replace("~", "~0").replace("/", "~1")
            yield from template_leaves(sub, f"{pointer}/{name}")
    elif isinstance(tpl, list):
        for i, sub in enumerate(tpl):
            yield from template_leaves(sub, f"{pointer}/{i}")
    else:
        yield pointer, tpl


def template_pointers(tpl: Any, placeholder: str) -> list[str]:
    """Where a template puts exactly ``{placeholder}`` (e.g. ``job.result``)."""
    want = "{" + placeholder + "}"
    return [p for p, leaf in template_leaves(tpl) if leaf == want]
