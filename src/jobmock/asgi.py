"""The ASGI adapter: serves a :class:`~jobmock.dispatch.Mock` over HTTP.

A bare ASGI callable (no router of its own: the mock routes from the spec) that
translates ASGI to :class:`~jobmock.dispatch.Request` and back. A background
ticker fires due transitions on real and sped-up clocks; it sleeps until the
engine's next due entry and is woken when an earlier one is scheduled. An inline
wait awaits a future resolved by :meth:`Engine.watch`, never a polling loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from .dispatch import Mock, Request, Response, Suspend
from .stack import Stack

if TYPE_CHECKING:
    from .senders import AsyncSender

__all__ = ["JobmockApp", "create_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class JobmockApp:
    """An ASGI application for one mock."""

    def __init__(self, mock: Mock, *, control: bool = True) -> None:
        self.mock = mock
        #: The API router and the control router over ``mock``.
        self.stack = Stack(mock, control=control)
        self._ticker: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._sleep_until: float | None = None
        self.sender: AsyncSender | None = None
        mock.engine.on_schedule(self._scheduled)

    # -- ticker ---------------------------------------------------------------------

    def _scheduled(self, due: float) -> None:
        if self._wake is not None and (self._sleep_until is None or due < self._sleep_until):
            self._wake.set()

    def _ensure_ticker(self) -> None:
        if self._ticker is None or self._ticker.done():
            self._wake = asyncio.Event()
            self._ticker = asyncio.get_running_loop().create_task(self._tick())
            if self.mock.webhooks is not None and self.mock.deliver_webhooks:
                from .senders import AsyncSender

                self.sender = AsyncSender(self.mock.webhooks)

    async def _tick(self) -> None:
        engine, clock = self.mock.engine, self.mock.clock
        assert self._wake is not None
        while True:
            engine.run_due()
            nxt = engine.next_due()
            timeout = None
            if nxt is not None and clock.speed > 0:
                timeout = max(0.0, (nxt - clock.now()) / clock.speed)
            self._sleep_until = nxt if timeout is not None else None
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def aclose(self) -> None:
        """Stop the ticker."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self.sender is not None:
            await self.sender.aclose()
            self.sender = None

    # -- ASGI -------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        self._ensure_ticker()
        body = b""
        more = _has_body(scope)
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        request = _to_request(scope, body)
        result = self.stack.handle(request)
        if isinstance(result, Suspend):
            result = await self._hold(result)
        if result.delay > 0:
            await self._sleep_clock(result.delay)
        if result.drop:
            # uvicorn answers 500 to an app that never starts a response; a response started
            # and never finished makes it close the connection instead.
            await send({"type": "http.response.start", "status": result.status,
                        "headers": [(b"content-length", b"1")]})
            return
        await _send(send, result, head=scope["method"] == "HEAD")

    async def _sleep_clock(self, seconds: float) -> None:
        """Wait ``seconds`` of clock time: scaled on a real clock, via a timer on a virtual one."""
        clock = self.mock.clock
        if clock.speed > 0:
            await asyncio.sleep(seconds / clock.speed)
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not done.done():
                done.set_result(None)

        timer = self.mock.engine.call_at(clock.now() + seconds, wake)
        try:
            await done
        finally:
            timer.cancel()

    async def _hold(self, suspend: Suspend) -> Response:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()

        def wake(_job: object, ended: bool) -> None:
            if not done.done():
                done.set_result(ended)

        watch = self.mock.engine.watch(suspend.job, suspend.deadline, wake)
        try:
            await done
        finally:
            watch.cancel()
        return suspend.finish()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._ensure_ticker()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _has_body(scope: Scope) -> bool:
    """Whether to read a body: not for a GET or HEAD that announces none.

    Awaiting ``receive`` for a bodyless GET is cheap on uvicorn but costs granian a
    round trip into its runtime (a trivial ASGI app serves about half the polls).
    """
    if scope["method"] not in ("GET", "HEAD"):
        return True  # HTTP/2 may send a body with neither header
    for k, v in scope["headers"]:
        if k == b"transfer-encoding" or (k == b"content-length" and v.strip() != b"0"):
            return True
    return False


def _to_request(scope: Scope, body: bytes) -> Request:
    headers: dict[str, str] = {}
    for k, v in scope["headers"]:
        headers[k.decode("latin-1").lower()] = v.decode("latin-1")
    qs = scope.get("query_string", b"").decode("latin-1")
    query: dict[str, str] = {}
    if qs:
        from urllib.parse import parse_qsl

        for k, v in parse_qsl(qs, keep_blank_values=True):
            query.setdefault(k, v)
    host = headers.get("host")
    if host is None:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    raw_path = scope.get("raw_path")
    # Route on the raw path, so an encoded "/" inside a path parameter stays inside it.
    path = raw_path.decode("latin-1") if raw_path else scope["path"]
    return Request(method=scope["method"], path=path, query=query, headers=headers,
                   body=body, base_url=f"{scope.get('scheme', 'http')}://{host}", query_string=qs)


async def _send(send: Send, response: Response, head: bool = False) -> None:
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    raw.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": raw})
    await send({"type": "http.response.body", "body": b"" if head else response.body})


def create_app(mock: Mock, *, control: bool = True) -> JobmockApp:
    """The ASGI app serving ``mock`` (and its control plane unless ``control`` is false)."""
    return JobmockApp(mock, control=control)
