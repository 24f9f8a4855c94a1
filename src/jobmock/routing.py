"""Routing: which of a spec's operations answers ``METHOD path``, and its path parameters.

Static paths are found by dict; templated ones by regex, most static segments first (then
most literal characters: ``/v1/operations/{id}:cancel`` outranks ``/v1/operations/{id}``),
but only among the templates with as many ``/`` as the path (a placeholder never spans
one). A path once routed is remembered (bounded), so a client polling one job's URL costs a
dict lookup.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote

from .spec import Operation

__all__ = ["Router"]

#: Paths a Router remembers (cleared when full), and the longest it remembers.
_ROUTED_SIZE = 4096
_ROUTED_CHARS = 512


class _Route:
    __slots__ = ("depth", "literal", "methods", "names", "pattern", "static")

    def __init__(self, path: str) -> None:
        self.names = re.findall(r"\{([^}]+)\}", path)
        # An empty segment still matches, so it reaches validation (minLength) not a 404.
        regex = "^" + re.sub(r"\\\{[^}]+\\\}", "([^/]*)", re.escape(path)) + "$"
        self.pattern = re.compile(regex)
        self.depth = path.count("/")
        self.static = len([s for s in path.split("/") if s and "{" not in s])
        #: Characters outside placeholders: `/v1/operations/{id}:cancel` outranks
        #: `/v1/operations/{id}`, whatever their order in the file.
        self.literal = len(re.sub(r"\{[^}]+\}", "", path))
        self.methods: dict[str, Operation] = {}


class Router:
    """The operations of a spec by method and path."""

    def __init__(self, operations: Iterable[Operation]) -> None:
        self._static: dict[str, _Route] = {}
        self._dynamic: list[_Route] = []
        for op in operations:
            if "{" in op.path:
                fresh = _Route(op.path)
                same = (r for r in self._dynamic if r.pattern.pattern == fresh.pattern.pattern)
                route = next(same, None)
                if route is None:
                    route = fresh
                    self._dynamic.append(route)
            else:
                route = self._static.setdefault(op.path, _Route(op.path))
            route.methods[op.method] = op
        self._dynamic.sort(key=lambda r: (-r.static, -r.literal))
        #: The templated routes by their path's count of "/", in the order above.
        self._by_depth: dict[int, list[_Route]] = {}
        for route in self._dynamic:
            self._by_depth.setdefault(route.depth, []).append(route)
        self._routed: dict[str, tuple[_Route | None, dict[str, str]]] = {}

    def route(self, method: str, path: str) -> tuple[Operation | None, dict[str, str], bool]:
        """The operation for ``method path``, its path parameters, and whether the path exists."""
        found = self._routed.get(path)
        if found is None:
            found = self._find(path)
            if len(self._routed) >= _ROUTED_SIZE:
                self._routed.clear()
            if len(path) <= _ROUTED_CHARS:
                self._routed[path] = found
        route, params = found
        if route is None:
            return None, {}, False
        op = route.methods.get(method) or (route.methods.get("GET") if method == "HEAD" else None)
        return op, dict(params), True

    def _find(self, path: str) -> tuple[_Route | None, dict[str, str]]:
        route = self._static.get(path)
        if route is not None:
            return route, {}
        for candidate in self._by_depth.get(path.count("/"), ()):
            m = candidate.pattern.match(path)
            if m:
                return candidate, {name: unquote(value) for name, value
                                   in zip(candidate.names, m.groups(), strict=True)}
        return None, {}

    def allowed_methods(self, path: str) -> list[str]:
        """The methods the operations at ``path`` answer (HEAD wherever GET is)."""
        route = self._static.get(path) or next(
            (r for r in self._dynamic if r.pattern.match(path)), None)
        methods = set(route.methods) if route is not None else set()
        if "GET" in methods:
            methods.add("HEAD")
        return sorted(methods)
