"""The ASGI adapter with sessions: one :class:`~jobmock.asgi.JobmockApp` per session.

A request naming a session (``X-Jobmock-Session``, or ``?session=`` on a control-plane
call; see :mod:`jobmock.sessions`) is handed to that session's app, made on first use by
the factory; every other request to the default app. Each session's app has its own mock,
ticker and webhook sender, so sessions never wait on each other. Idle sessions are shut
down and dropped; :meth:`begin_shutdown` stops them all with the default.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .asgi import JobmockApp, Message, Receive, Scope, Send, _send
from .dispatch import Mock, Request, json_response
from .errors import RequestRefused
from .sessions import SESSION_QUERY, SessionBook, SessionRefused, session_name

__all__ = ["SessionApp"]

#: Seconds between sweeps for idle sessions (a sweep runs on a request, never on a timer).
_SWEEP_EVERY = 1.0


class SessionApp:
    """Routes each request to its session's app; the default app answers the rest.

    ``factory(name)`` makes the app of a new session ``name``.
    """

    def __init__(self, default: JobmockApp, factory: Callable[[str], JobmockApp], *,
                 idle: float, limit: int) -> None:
        self.default = default
        self.book: SessionBook[JobmockApp] = SessionBook(
            self._make, idle=idle, limit=limit, on_drop=self._dropped)
        self._factory = factory
        self._closing: set[asyncio.Task[None]] = set()
        self._last_sweep = 0.0
        default.mock.extensions["sessions"] = self.book

    @property
    def mock(self) -> Mock:
        """The default session's mock."""
        return self.default.mock

    def _make(self, name: str) -> JobmockApp:
        app = self._factory(name)
        app.mock.extensions["session"] = name
        return app

    def _dropped(self, _name: str, app: JobmockApp) -> None:
        app.begin_shutdown()
        if app._closed is not None:
            self._closing.add(app._closed)
            app._closed.add_done_callback(self._closing.discard)

    def session(self, name: str) -> JobmockApp:
        """The app of session ``name`` (made now if it is new)."""
        return self.book.get(name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self._lifespan(receive, send)
            return
        try:
            name = session_name(_session_header(scope), _session_query(scope))
        except SessionRefused as exc:
            await self._refuse(scope, exc, send)
            return
        if name is None:
            await self.default(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_sweep > _SWEEP_EVERY:
            self._last_sweep = loop.time()
            self.book.expire()
        try:
            app = self.book.get(name)
        except SessionRefused as exc:
            await self._refuse(scope, exc, send)
            return
        await app(scope, receive, send)

    async def _refuse(self, scope: Scope, exc: SessionRefused, send: Send) -> None:
        """Answer in the API's error shape (the control plane's on its paths)."""
        from .asgi import _to_request

        request: Request = _to_request(scope, b"")
        refusal = RequestRefused(exc.message, status=exc.status)
        if self.default.stack.control and request.path.startswith("/_jobmock"):
            response = json_response(exc.status, {"error": exc.message})
        else:
            response = self.default.mock.refuse(request, refusal)
        await _send(send, response, head=scope["method"] == "HEAD")

    def begin_shutdown(self) -> None:
        """Stop the default app and every session's (see :meth:`JobmockApp.begin_shutdown`)."""
        self.default.begin_shutdown()
        for _, app in self.book.items():
            app.begin_shutdown()

    async def aclose(self) -> None:
        """Stop every session's ticker and sender, and the default's."""
        for _, app in self.book.items():
            await app.aclose()
        for task in list(self._closing):
            await task
        await self.default.aclose()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message: Message = await receive()
            if message["type"] == "lifespan.startup":
                self.default._ensure_ticker()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for _, app in self.book.items():
                    await (app._closed if app._closed is not None else app.aclose())
                await (self.default._closed if self.default._closed is not None
                       else self.default.aclose())
                await send({"type": "lifespan.shutdown.complete"})
                return


def _session_header(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
            if k.lower() == b"x-jobmock-session"}


def _session_query(scope: Scope) -> dict[str, str] | None:
    """``?session=`` of a control-plane call (an API's own query parameters are its own)."""
    if not scope["path"].startswith("/_jobmock"):
        return None
    qs: bytes = scope.get("query_string", b"")
    if b"session=" not in qs:
        return None
    from urllib.parse import parse_qsl

    for k, v in parse_qsl(qs.decode("latin-1"), keep_blank_values=True):
        if k == SESSION_QUERY:
            return {k: v}
    return None
