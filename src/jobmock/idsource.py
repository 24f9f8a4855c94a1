"""Where a client finds a job id in a submit answer: one ``job_id_from`` source.

A source is ``header:NAME`` or ``body:/json/pointer``, optionally followed by one
modifier:

- ``|last_segment``: the last path segment of a URL (``Operation-Location:
  https://host/…/analyzeResults/{id}?api-version=…`` gives ``{id}``);
- ``|after:PREFIX``: the text after a fixed prefix (``body:/name|after:operations/``
  reads ``abc`` from ``operations/abc``); a value without the prefix gives no id.

Both the contract suite and the scenario story runner read ids through :func:`read`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from .pointers import get

__all__ = ["IdSource", "parse", "read"]


class IdSource:
    """A parsed ``job_id_from`` entry."""

    __slots__ = ("kind", "modifier", "where")

    def __init__(self, kind: str, where: str, modifier: str | None) -> None:
        self.kind = kind
        self.where = where
        self.modifier = modifier

    def pick(self, raw: Any) -> str | None:
        """The id in the raw value found at the source, or None."""
        if not isinstance(raw, str) or not raw:
            return None
        if self.modifier == "last_segment":
            path = urlsplit(raw).path if "://" in raw or raw.startswith("/") else raw.split("?")[0]
            segment = unquote(path.rstrip("/").rsplit("/", 1)[-1])
            return segment or None
        if self.modifier is not None and self.modifier.startswith("after:"):
            prefix = self.modifier[len("after:"):]
            return raw[len(prefix):] or None if raw.startswith(prefix) else None
        return raw


def parse(source: str) -> IdSource:
    """Parse ``header:NAME`` / ``body:/pointer`` with an optional ``|modifier``."""
    base, _, modifier = source.partition("|")
    kind, _, where = base.partition(":")
    return IdSource(kind, where, modifier or None)


def read(sources: tuple[str, ...], header: Callable[[str], str | None], body: Any) -> str | None:
    """The first id the sources find, given a header lookup and the parsed body."""
    for source in sources:
        s = parse(source)
        raw = header(s.where) if s.kind == "header" else get(body, s.where)
        found = s.pick(raw)
        if found:
            return found
    return None
