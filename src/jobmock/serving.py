"""How ``jobmock serve`` runs an app: the listening socket, the ASGI server, and a clean stop.

- :func:`listen` binds the socket before anything is printed, so a port in use or out of
  range is one clear line (:class:`ListenError`) and ``--port 0`` knows the port it got.
- :func:`run` serves the app on granian (embedded, on this process's event loop) or uvicorn
  until SIGINT or SIGTERM. The first signal calls :meth:`JobmockApp.begin_shutdown` (every
  held inline wait is answered at once, as if it had ended; webhook attempts are cancelled)
  and stops the server gracefully; what is still open :data:`STOP_GRACE` seconds later, or
  at a second signal, is cut. One signal therefore stops a server within a second or two,
  even while waits are held on a virtual clock.
- Both servers are bounded: a request head larger than :data:`MAX_HEAD` bytes is refused by
  the server itself; a connection must send each request head within the read timeout
  (granian's ``header_read_timeout``; uvicorn's h11 protocol only times out idle keep-alive
  connections, so :func:`guarded_h11` adds that deadline), and an idle keep-alive connection
  is closed after :data:`KEEP_ALIVE` seconds (uvicorn; granian's header timeout covers it).
  The app bounds the rest (:class:`jobmock.asgi.Limits`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .asgi import JobmockApp
    from .sessionapp import SessionApp

__all__ = ["KEEP_ALIVE", "MAX_HEAD", "STOP_GRACE", "ListenError", "guarded_h11", "in_flight", "listen",
           "run"]

#: Bytes of request line and headers a server accepts; the app refuses more than its own
#: (smaller) limit with 431 in the API's error shape, the server past this one.
MAX_HEAD = 64 * 1024
#: Seconds an idle keep-alive connection stays open (uvicorn's default).
KEEP_ALIVE = 5
#: Seconds a graceful stop may take before what is still open is cut.
STOP_GRACE = 1.5
#: Seconds granian may take to listen once started.
READY_TIMEOUT = 15.0
#: Connections the listening socket queues.
BACKLOG = 1024
#: The most requests granian serves at once, whatever the open-files limit allows.
MAX_IN_FLIGHT = 65_536
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def in_flight() -> int:
    """How many requests granian serves at once: as many sockets as the process may open
    (between BACKLOG and MAX_IN_FLIGHT). Held inline waits are requests in flight, and one
    costs a future: granian's default (the backlog) would hold the 1,025th wait back unread."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_IN_FLIGHT
    return max(BACKLOG, min(int(soft), MAX_IN_FLIGHT))


class ListenError(Exception):
    """The server cannot listen where it was asked to; the message is one line."""


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host:port`` (port 0: one the system picks).

    Raises :class:`ListenError` for a port out of range, an address that does not
    resolve, or one that cannot be bound (in use, not this machine's, not permitted).
    """
    if not 0 <= port <= 65535:
        raise ListenError(f"port {port} is out of range: give 0 to 65535 (0 picks a free one)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {getattr(exc, 'strerror', exc)}") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def guarded_h11(head_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol, with a deadline for each request head: a connection that
    sends nothing, or its head too slowly, is closed ``head_timeout`` seconds after it
    opened (or after the first byte of a later request)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._head_timer = self.loop.call_later(head_timeout, self._head_expired)

        def data_received(self, data: bytes) -> None:
            between = self.cycle is None or self.cycle.response_complete
            if between and self._head_timer is None:
                self._head_timer = self.loop.call_later(head_timeout, self._head_expired)
            before = self.cycle
            super().data_received(data)
            if self.cycle is not before and self._head_timer is not None:
                self._head_timer.cancel()  # a whole head arrived: the app bounds the body
                self._head_timer = None

        def connection_lost(self, exc: Exception | None) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            super().connection_lost(exc)

        def _head_expired(self) -> None:
            self._head_timer = None
            if self.cycle is None or self.cycle.response_complete:
                self.transport.close()

    return GuardedH11Protocol


def run(app: Any, jobmock_app: JobmockApp | SessionApp, sock: socket.socket, server: str, *, host: str,
        read_timeout: float, started: Callable[[], None]) -> None:
    """Serve ``app`` (``jobmock_app``, perhaps wrapped) on ``sock`` until a signal stops it.

    ``started`` is called once the signal handlers are in place (``serve`` prints its
    banner there). Raises :class:`ListenError` if granian cannot listen after all.
    """
    if server == "granian":
        _run_granian(app, jobmock_app, sock, host=host, read_timeout=read_timeout, started=started)
    else:
        asyncio.run(_serve(_UvicornRunner(app, sock, read_timeout), jobmock_app, started))


class _Runner:
    """One server's start, graceful stop and forced stop."""

    task: asyncio.Task[Any] | None = None

    def start(self) -> asyncio.Task[Any]:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    async def ready(self) -> None:
        """Return once the server accepts connections (the banner is printed then)."""

    def force(self) -> None:
        if self.task is not None:
            asyncio.get_running_loop().set_exception_handler(lambda _loop, _ctx: None)  # teardown
            self.task.cancel()


#: The collector's thresholds while serving: a full collection is considered after 100
#: collections of the middle generation (Python's default: 10).
GC_THRESHOLDS = (700, 10, 100)


def settle_heap() -> None:
    """Tune the garbage collector of a process that serves (``jobmock serve`` only: a library
    never touches its host's collector).

    Everything built before serving (specs, validators, modules) is frozen out of the
    collector's sight, and a full collection runs ten times less often. A full collection
    stops the event loop for as long as it takes to look at every object: with 10,000 inline
    waits held open that was 0.3-0.4 s, seven times during their submits, and it found
    nothing to free each time (a held request's objects are alive until it is answered).
    Answers due meanwhile went out that much late. Young collections, which free most
    garbage, are unchanged.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def _serve(runner: _Runner, jobmock_app: JobmockApp | SessionApp, started: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            jobmock_app.begin_shutdown()
            runner.stop()
            loop.call_later(STOP_GRACE, runner.force)
        else:
            runner.force()

    for sig in SIGNALS:
        loop.add_signal_handler(sig, on_signal)
    try:
        task = runner.start()
        await runner.ready()
        if task.done():
            task.result()  # it could not start (granian: the address was taken meanwhile)
            return
        settle_heap()
        started()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)


class _UvicornRunner(_Runner):
    def __init__(self, app: Any, sock: socket.socket, read_timeout: float) -> None:
        import uvicorn

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield  # jobmock handles the signals (see _serve)

        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                                http=guarded_h11(read_timeout), h11_max_incomplete_event_size=MAX_HEAD,
                                timeout_keep_alive=KEEP_ALIVE, backlog=BACKLOG)
        self.server = Server(config)
        self.sock = sock

    def start(self) -> asyncio.Task[Any]:
        self.task = asyncio.get_running_loop().create_task(self.server.serve(sockets=[self.sock]))
        return self.task

    def stop(self) -> None:
        self.server.should_exit = True

    def force(self) -> None:
        import logging

        logging.getLogger("uvicorn.error").disabled = True  # the lifespan cut short: teardown
        self.server.force_exit = True  # stop waiting for connections and tasks
        asyncio.get_running_loop().call_later(0.5, super().force)


class _GranianRunner(_Runner):
    def __init__(self, app: Any, host: str, port: int, read_timeout: float) -> None:
        import logging

        from granian.constants import HTTPModes, Interfaces
        from granian.http import HTTP1Settings, HTTP2Settings
        from granian.log import LogLevels
        from granian.server.embed import Server

        # The same level as uvicorn's (warning), without the notice granian logs on every start.
        self.server = Server(
            app, address=host, port=port, interface=Interfaces.ASGI, log_level=LogLevels.warning,
            # HTTP/1.1 only: with HTTP/2 detection (auto) a connection that sends nothing has
            # no timeout (hyper-util reads the preface without one).
            http=HTTPModes.http1, backlog=BACKLOG, backpressure=in_flight(),
            http1_settings=HTTP1Settings(header_read_timeout=int(read_timeout * 1000),
                                         keep_alive=True, max_buffer_size=MAX_HEAD),
            http2_settings=HTTP2Settings(max_headers_size=MAX_HEAD))
        logging.getLogger("_granian").addFilter(
            lambda record: record.getMessage() != "Embedded server is experimental!")
        self.host, self.port = host, port

    def start(self) -> asyncio.Task[Any]:
        self.task = asyncio.get_running_loop().create_task(self.server.serve())
        return self.task

    async def ready(self) -> None:
        """granian binds in its worker, after the ASGI lifespan startup: try to connect
        (bounded) until it accepts, or its task ends."""
        loop = asyncio.get_running_loop()
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        deadline = loop.time() + READY_TIMEOUT
        while loop.time() < deadline and self.task is not None and not self.task.done():
            try:
                _, writer = await asyncio.open_connection(host, self.port)
            except OSError:
                await asyncio.sleep(0.01)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return

    def stop(self) -> None:
        self.server.stop()  # type: ignore[no-untyped-call]


def _run_granian(app: Any, jobmock_app: JobmockApp | SessionApp, sock: socket.socket, *, host: str,
                 read_timeout: float, started: Callable[[], None]) -> None:
    """granian's embedded server binds its own socket: ``sock`` proved the address free and
    chose the port; it is closed just before granian binds the same address."""
    try:
        import granian  # noqa: F401
    except ImportError as exc:
        sock.close()
        raise ListenError("--server granian needs granian: pip install granian, "
                          "or use --server uvicorn") from exc
    port = sock.getsockname()[1]
    runner = _GranianRunner(app, host, port, read_timeout)
    sock.close()
    threads = _thread_count()
    try:
        asyncio.run(_serve(runner, jobmock_app, started))
    except (OSError, RuntimeError) as exc:
        # granian reports a socket it cannot bind (address in use, not ours) as a
        # RuntimeError "... (os error N)" from its Rust core; anything else is a bug.
        first = str(exc).splitlines()[0] if str(exc) else repr(exc)
        if isinstance(exc, RuntimeError) and "(os error" not in first:
            raise
        raise ListenError(f"cannot listen on {host}:{port}: {first}") from exc
    finally:
        _await_threads(threads)


def _thread_count() -> int | None:
    """The threads of this process, Python's and native ones (None where /proc is absent)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


def _await_threads(baseline: int | None, timeout: float = 3.0) -> None:
    """Wait, bounded, until the threads granian started have ended.

    granian's Rust threads can outlive ``serve()`` by a few milliseconds. One that
    reaches for the GIL while the interpreter is finalizing aborts the process
    (SIGABRT, "panic in a function that cannot unwind") after a clean stop.
    """
    deadline = time.monotonic() + timeout
    while baseline is not None and time.monotonic() < deadline:
        now = _thread_count()
        if now is None or now <= baseline:
            return
        time.sleep(0.01)
