"""The ASGI adapter: serves a :class:`~jobmock.dispatch.Mock` over HTTP.

A bare ASGI callable (no router of its own: the mock routes from the spec) that
translates ASGI to :class:`~jobmock.dispatch.Request` and back. A background
ticker fires due transitions on real and sped-up clocks; it sleeps until the
engine's next due entry and is woken when an earlier one is scheduled. An inline
wait awaits a future resolved by :meth:`Engine.watch`, never a polling loop.

``POST /_jobmock/clock/advance`` on a virtual clock, with webhooks being sent, is played
here rather than in one synchronous step: the clock moves to the next due entry, what is
due fires, the webhook attempts it started are awaited (each bounded by the sender's
timeout), and so on until the target time. A retry an answer schedules before the target
is therefore played by the same advance, at its exact clock time.

Every request is bounded (:class:`Limits`): its headers (431), its body, read in chunks
and refused once past the limit (413), and the time its body takes to arrive (408), each
answered in the API's error shape (the control plane's: ``{"error": ...}``).
:meth:`JobmockApp.begin_shutdown` answers every held request at once (an inline wait as
if it had ended, a scenario's delay cut short) and stops webhook attempts, so one signal
stops a server even while waits are held on a virtual clock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .admission import admission
from .control import CONTROL_PREFIX, advance_answer, advance_request, is_control
from .dispatch import Mock, Request, Response, Suspend, json_response
from .errors import RequestRefused
from .stack import Stack

if TYPE_CHECKING:
    from .redisstore import SharedMock
    from .senders import AsyncSender

__all__ = ["JobmockApp", "Limits", "create_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: The control-plane path whose clock moves the adapter plays itself.
_ADVANCE_PATH = CONTROL_PREFIX + "clock/advance"
#: Bound on the distinct due times one advance plays (every loop is bounded).
_MAX_STEPS = 10_000_000

#: ``jobmock serve --max-body``'s default: 4 MiB.
DEFAULT_MAX_BODY = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """What one request may take of the server; past a limit it is refused, never held."""

    #: Bytes of body; a larger one is refused 413 (without reading it when it says its size).
    max_body: int = DEFAULT_MAX_BODY
    #: Bytes of header names and values; more is refused 431. The ASGI servers ``serve``
    #: runs stop larger heads themselves, and slow or silent connections (see jobmock.serving).
    max_headers: int = 16 * 1024
    #: Seconds a request's body may take to arrive once its head has; slower is refused 408.
    read_timeout: float = 30.0


class JobmockApp:
    """An ASGI application for one mock."""

    def __init__(self, mock: Mock, *, control: bool = True, limits: Limits | None = None) -> None:
        self.mock = mock
        #: The API router and the control router over ``mock``.
        self.stack = Stack(mock, control=control)
        self.limits = limits or Limits()
        self._ticker: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._sleep_until: float | None = None
        self.sender: AsyncSender | None = None
        self._advancing: asyncio.Lock | None = None
        #: Held requests (inline waits, scenario delays): resolved early by begin_shutdown.
        self._holds: set[asyncio.Future[bool]] = set()
        self._closing = False
        self._closed: asyncio.Task[None] | None = None
        #: Set by aclose: the ticker ends even if a cancel was lost on the way (a turn's
        #: Redis calls can swallow one).
        self._stopped = False
        #: The mock's state on a shared store (``--store redis://...``); None: in memory.
        self.shared: SharedMock | None = None
        mock.engine.on_schedule(self._scheduled)

    # -- ticker ---------------------------------------------------------------------

    def _scheduled(self, due: float) -> None:
        if self._wake is not None and (self._sleep_until is None or due < self._sleep_until):
            self._wake.set()

    def _ensure_ticker(self) -> None:
        if self._closing:
            return
        if self._ticker is None or self._ticker.done():
            self._stopped = False  # an app closed by aclose serves again (a new lifespan)
            self._wake = asyncio.Event()
            self._ticker = asyncio.get_running_loop().create_task(self._tick())
            if self.mock.webhooks is not None and self.mock.deliver_webhooks:
                from .senders import AsyncSender

                self.sender = AsyncSender(self.mock.webhooks, turn=self._turn
                                          if self.shared is not None else None)
            if self.shared is not None:
                self.shared.start_listening()

    async def _tick(self) -> None:
        engine, clock = self.mock.engine, self.mock.clock
        assert self._wake is not None
        while not self._stopped:
            if self.shared is None:
                engine.run_due()
            else:  # a turn: due work fires once across replicas; a dead one's is reclaimed
                await self._shared_tick()
            nxt = engine.next_due()
            timeout = None
            if nxt is not None and clock.speed > 0:
                timeout = max(0.0, (nxt - clock.now()) / clock.speed)
            if self.shared is not None:
                from .redisstore import RESYNC_EVERY

                timeout = RESYNC_EVERY if timeout is None else min(timeout, RESYNC_EVERY)
            self._sleep_until = nxt if timeout is not None else None
            self._wake.clear()
            if self._stopped:  # a cancel that an await below swallowed: stop all the same
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _turn(self) -> contextlib.AbstractAsyncContextManager[None]:
        """A turn on the shared state (see jobmock.redisstore), or nothing in memory."""
        return self.shared.turn() if self.shared is not None else contextlib.nullcontext()

    async def _shared_tick(self) -> None:
        import time

        from .redisstore import StoreUnavailable

        assert self.shared is not None
        try:
            async with self.shared.turn():
                if self.mock.webhooks is not None:
                    self.mock.webhooks.reclaim(time.time())
                self.mock.engine.run_due()
        except StoreUnavailable as exc:  # Redis away: try again at the next tick
            import logging

            logging.getLogger("jobmock.store").warning("jobmock: %s", exc)

    async def _shared_handle(self, request: Request) -> Response | Suspend:
        from .redisstore import StoreUnavailable

        try:
            async with self._turn():
                return self.stack.handle(request)
        except StoreUnavailable as exc:
            return self._refuse(request, _unavailable(exc))

    async def aclose(self) -> None:
        """Stop the ticker."""
        self._stopped = True
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self.sender is not None:
            await self.sender.aclose()
            self.sender = None
        if self.shared is not None:
            await self.shared.aclose()

    def begin_shutdown(self) -> None:
        """Stop now, from the event loop (a signal handler): answer every held request (an
        inline wait as if it had ended: the job as it is), cut scenario delays short, cancel
        webhook attempts and the ticker. Requests arriving afterwards are not held."""
        if self._closing:
            return
        self._closing = True
        for held in list(self._holds):
            if not held.done():
                held.set_result(False)
        self._closed = asyncio.get_running_loop().create_task(self.aclose())

    # -- ASGI -------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        self._ensure_ticker()
        refusal = self._check_head(scope)
        body = b""
        if refusal is None:
            body, refusal = await self._read_body(scope, receive)
        request = _to_request(scope, body)
        if refusal is not None:
            await _send(send, self._refuse(request, refusal), head=scope["method"] == "HEAD")
            return
        turns = admission()
        if not turns.admit():
            await turns.wait()
        if self._plays(request):
            result: Response | Suspend = await self._advance(request)
        elif self.shared is None:
            result = self.stack.handle(request)
        else:
            result = await self._shared_handle(request)
        if isinstance(result, Suspend):
            result = await self._hold(result, request)
        if result.delay > 0:
            await self._sleep_clock(result.delay)
        if result.drop:
            # uvicorn answers 500 to an app that never starts a response; a response started
            # and never finished makes it close the connection instead.
            await send({"type": "http.response.start", "status": result.status,
                        "headers": [(b"content-length", b"1")]})
            return
        await _send(send, result, head=scope["method"] == "HEAD")

    # -- limits --------------------------------------------------------------------------

    def _check_head(self, scope: Scope) -> RequestRefused | None:
        size = sum(len(k) + len(v) for k, v in scope["headers"])
        if size > self.limits.max_headers:
            return RequestRefused(f"the request's headers take {size} bytes; at most "
                                  f"{self.limits.max_headers} are accepted", status=431)
        return None

    async def _read_body(self, scope: Scope, receive: Receive,
                         ) -> tuple[bytes, RequestRefused | None]:
        """The body, read chunk by chunk up to the limit and within the read timeout, or the
        refusal instead. The body ending early is refused too: granian reports a broken
        chunked encoding as a disconnect, and answers 500 to an app that answers nothing
        (to a client really gone the answer is lost, harmlessly)."""
        if not _has_body(scope):
            return b"", None
        limit = self.limits.max_body
        too_large = RequestRefused(f"the request body is larger than {limit} bytes", status=413)
        if (_content_length(scope) or 0) > limit:
            return b"", too_large  # refused before a byte of it is read
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.limits.read_timeout):
                more = True
                while more:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return b"", RequestRefused("the request body ended before it was "
                                                   "complete", status=400)
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        return b"", too_large
                    if chunk:
                        chunks.append(chunk)
                    more = message.get("more_body", False)
        except TimeoutError:
            return b"", RequestRefused(f"the request body did not arrive within "
                                       f"{self.limits.read_timeout:g} s", status=408)
        return b"".join(chunks), None

    def _refuse(self, request: Request, refusal: RequestRefused) -> Response:
        """The answer to a refused request, which also closes its connection."""
        if self.stack.control and is_control(request):
            response = json_response(refusal.status, {"error": refusal.message})
        else:
            response = self.mock.refuse(request, refusal)
        response.headers.append(("Connection", "close"))
        return response

    # -- clock moves with webhooks in flight --------------------------------------------

    def _plays(self, request: Request) -> bool:
        """Whether this is a clock move the adapter plays (webhooks are being sent)."""
        book = self.mock.webhooks
        return (self.sender is not None and book is not None and book.mode == "deliver"
                and self.stack.control and request.method == "POST"
                and request.path.rstrip("/") == _ADVANCE_PATH)

    async def _advance(self, request: Request) -> Response:
        async with self._turn():
            checked = advance_request(self.mock, request)
            if isinstance(checked, Response):
                return checked  # refused (guard, bad seconds, a real clock): the control's
            target = self.mock.clock.now() + checked
        if self._advancing is None:
            self._advancing = asyncio.Lock()
        async with self._advancing:  # one clock move at a time
            fired = await self.play_clock(target)
        async with self._turn():
            return advance_answer(self.mock, fired)

    async def play_clock(self, target: float) -> int:
        """Move a virtual clock to ``target`` due entry by due entry, awaiting the webhook
        attempts each step starts before the next; returns how many entries fired."""
        engine, clock = self.mock.engine, self.mock.clock
        fired = 0
        for _ in range(_MAX_STEPS):
            async with self._turn():
                fired += engine.run_due()
            if self.sender is not None:
                await self.sender.drain()
            async with self._turn():
                nxt = engine.next_due()
                if nxt is not None and nxt <= clock.now():
                    continue  # an answer scheduled something due now (a 0 s retry, the next)
                if clock.now() >= target:
                    return fired
                clock.set(target if nxt is None else min(nxt, target))  # type: ignore[attr-defined]
        raise RuntimeError(f"a clock move did not end within {_MAX_STEPS} steps")

    async def _sleep_clock(self, seconds: float) -> None:
        """Wait ``seconds`` of clock time: scaled on a real clock, via a timer on a virtual one."""
        clock = self.mock.clock
        if self._closing:
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()

        def wake() -> None:
            if not done.done():
                done.set_result(True)

        if clock.speed > 0:
            handle = loop.call_later(seconds / clock.speed, wake)
            try:
                await self._await_held(done)
            finally:
                handle.cancel()
            return
        timer = self.mock.engine.call_at(clock.now() + seconds, wake)
        try:
            await self._await_held(done)
        finally:
            timer.cancel()

    async def _hold(self, suspend: Suspend, request: Request) -> Response:
        if self._closing:
            return suspend.finish()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()

        def wake(_job: object, ended: bool) -> None:
            if not done.done():
                done.set_result(ended)

        watch = self.mock.engine.watch(suspend.job, suspend.deadline, wake)
        try:
            await self._await_held(done)
        finally:
            watch.cancel()
        if self.shared is None:
            return suspend.finish()
        from .redisstore import StoreUnavailable

        try:
            async with self._turn():
                return suspend.finish()
        except StoreUnavailable as exc:
            return self.mock.refuse(request, _unavailable(exc))

    async def _await_held(self, done: asyncio.Future[bool]) -> None:
        """Await a held request's future; begin_shutdown resolves it early."""
        self._holds.add(done)
        try:
            await done
        finally:
            self._holds.discard(done)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._ensure_ticker()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await (self._closed if self._closed is not None else self.aclose())
                await send({"type": "lifespan.shutdown.complete"})
                return


def _unavailable(exc: Exception) -> RequestRefused:
    """The refusal of a request the shared store could not serve (503)."""
    return RequestRefused(f"the mock's shared store is unavailable: {exc}", status=503)


def _content_length(scope: Scope) -> int | None:
    """The size the request announces, if it announces one that is a number."""
    for k, v in scope["headers"]:
        if k == b"content-length":
            digits = v.strip()
            if not digits.isdigit():
                return None
            return int(digits) if len(digits) < 19 else 10**19  # int() of 5000 digits raises
    return None


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
    # ASGI servers send header names in lower case; Request lowers any that are not.
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
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


def create_app(mock: Mock, *, control: bool = True, limits: Limits | None = None) -> JobmockApp:
    """The ASGI app serving ``mock`` (and its control plane unless ``control`` is false),
    within ``limits`` (default :class:`Limits`)."""
    return JobmockApp(mock, control=control, limits=limits)
