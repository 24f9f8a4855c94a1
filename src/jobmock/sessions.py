"""Sessions: isolated namespaces of one mock server, chosen per request by a header.

A request carrying ``X-Jobmock-Session: NAME`` (or a control-plane call with
``?session=NAME``) is answered by the session ``NAME``: a mock of its own, with its own
clock, jobs, journal, webhook deliveries, faults, scenario, advance mode and reset,
made on first use from the server's options. A request without one is answered by the
default mock. Sessions left idle for :attr:`SessionBook.idle` seconds (wall time) are
dropped; at most :attr:`SessionBook.limit` live at once.

:class:`SessionBook` is the bookkeeping only (names, creation, expiry), shared by the ASGI
adapter (a :class:`~jobmock.asgi.JobmockApp` per session) and the in-process mock.
"""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

__all__ = ["SESSION_HEADER", "SESSION_QUERY", "SessionBook", "SessionRefused", "session_name",
           "session_options", "session_seed"]

#: The request header that selects a session.
SESSION_HEADER = "X-Jobmock-Session"
#: The query parameter a control-plane call may name its session with instead.
SESSION_QUERY = "session"
#: What a session name may be: letters, digits, ``.``, ``_``, ``-``; 1 to 64 characters.
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: ``jobmock serve --session-idle``'s default: a session unused for 30 minutes is dropped.
DEFAULT_IDLE = 1800.0
#: ``jobmock serve --max-sessions``'s default.
DEFAULT_LIMIT = 256

T = TypeVar("T")


def session_seed(seed: int, name: str) -> int:
    """Session ``name``'s seed, from the server's: the same session repeats its ids."""
    return zlib.crc32(f"{seed}/{name}".encode()) & 0x7FFFFFFF


def session_options(options: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A mock's options for session ``name``: the same, without faults or a scenario (a
    session starts clean), seeded by :func:`session_seed`."""
    kept = {k: v for k, v in options.items() if k not in ("faults", "scenario")}
    kept["seed"] = session_seed(int(options.get("seed") or 0), name)
    return kept


class SessionRefused(ValueError):
    """A session name that is not valid, or one session too many (``status`` says which)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def session_name(headers: Mapping[str, str], query: Mapping[str, str] | None = None,
                 ) -> str | None:
    """The session a request names (``headers`` with lower-case names), or None for the
    default. Raises :class:`SessionRefused` (400) for a name that is not valid."""
    name = headers.get(SESSION_HEADER.lower())
    if name is None and query is not None:
        name = query.get(SESSION_QUERY)
    if name is None or name == "":
        return None
    if _NAME.fullmatch(name) is None:
        shown = name if len(name) <= 70 else name[:67] + "..."
        raise SessionRefused(f"{SESSION_HEADER} must be 1 to 64 letters, digits, '.', '_' or "
                             f"'-', got {shown!r}", status=400)
    return name


class SessionBook(Generic[T]):
    """Named sessions made by ``factory`` on first use, dropped when idle."""

    def __init__(self, factory: Callable[[str], T], *, idle: float = DEFAULT_IDLE,
                 limit: int = DEFAULT_LIMIT, on_drop: Callable[[str, T], None] | None = None,
                 now: Callable[[], float] = time.monotonic) -> None:
        if idle <= 0:
            raise ValueError(f"a session's idle time must be positive, got {idle}")
        if limit < 1:
            raise ValueError(f"at least one session must be allowed, got {limit}")
        self._factory = factory
        self.idle = idle
        self.limit = limit
        self._on_drop = on_drop
        self._now = now
        self._sessions: dict[str, tuple[T, float]] = {}

    def get(self, name: str) -> T:
        """The session ``name``, made now if it is new. Raises :class:`SessionRefused` (503)
        when :attr:`limit` sessions are live already."""
        now = self._now()
        self.expire(now)
        found = self._sessions.get(name)
        if found is None:
            if len(self._sessions) >= self.limit:
                raise SessionRefused(f"{self.limit} sessions are open already (the server's "
                                     f"--max-sessions); reuse one, or wait for idle ones to "
                                     f"expire ({self.idle:g} s)", status=503)
            item = self._factory(name)
        else:
            item = found[0]
        self._sessions[name] = (item, now)
        return item

    def peek(self, name: str) -> T | None:
        """The session ``name`` if it is live, without touching it."""
        found = self._sessions.get(name)
        return found[0] if found is not None else None

    def expire(self, now: float | None = None) -> list[str]:
        """Drop the sessions idle for longer than :attr:`idle`; their names."""
        now = self._now() if now is None else now
        gone = [n for n, (_, used) in self._sessions.items() if now - used > self.idle]
        for name in gone:
            item, _ = self._sessions.pop(name)
            if self._on_drop is not None:
                self._on_drop(name, item)
        return gone

    def names(self) -> list[str]:
        """The live sessions' names, oldest first."""
        return list(self._sessions)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter([(n, item) for n, (item, _) in self._sessions.items()])

    def __len__(self) -> int:
        return len(self._sessions)

    def info(self) -> dict[str, object]:
        """What ``GET /_jobmock/health`` says of sessions."""
        return {"header": SESSION_HEADER, "query": SESSION_QUERY, "open": len(self._sessions),
                "names": self.names(), "limit": self.limit, "idle_seconds": self.idle}
