"""Test harness helpers: a real jobmock server on a free loopback port, in a thread; a
``jobmock serve`` process (:class:`ServeProcess`); a scenario's story run in-process or
against a live server, with its webhook receiver.

::

    with LiveServer(Mock(resolve_spec("croma"), clock=VirtualClock())) as server:
        httpx.get(server.url + "/_jobmock/health")

    with ServeProcess("croma", "--clock", "virtual") as served:
        httpx.get(served.url + "/_jobmock/health")

    run_story("fixtures/croma/inline-wait-times-out.yaml")
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .asgi import create_app
from .bundled import resolve_spec
from .clock import VirtualClock
from .dispatch import Mock
from .ports import free_port
from .scenarios import load_scenario, scenario_mock
from .scenarios.story import run_story_async as _run_story_with
from .spec import ApiSpec

if TYPE_CHECKING:
    from .receiver import WebhookReceiver
    from .scenarios import Scenario

__all__ = ["LiveServer", "ServeProcess", "free_port", "run_story", "run_story_async", "serve_mock"]


class ServeProcess:
    """``jobmock serve API ARGS --port 0`` in a child process, for tests.

    :meth:`start` returns once the banner names the URL (the server accepts connections
    then). :meth:`stop` sends SIGTERM (never SIGINT, which a shell's background jobs and
    ``nohup`` ignore), waits, kills the process if it does not end, and reaps it; the
    context manager always stops it. Its output is drained all along (a full pipe never
    blocks it) and kept in :attr:`stdout` and :attr:`stderr`.
    """

    def __init__(self, api: str, *args: str, startup_timeout: float = 30.0,
                 stop_timeout: float = 10.0) -> None:
        self.command = [sys.executable, "-m", "jobmock.cli", "serve", api, *args, "--port", "0"]
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self._out: list[str] = []
        self._err: list[str] = []
        self._threads: list[threading.Thread] = []
        self._first_line = threading.Event()

    @property
    def stdout(self) -> str:
        """What the process printed on stdout so far."""
        return "".join(self._out)

    @property
    def stderr(self) -> str:
        """What the process printed on stderr so far."""
        return "".join(self._err)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def _drain(self, stream: Any, sink: list[str], first: threading.Event | None) -> None:
        for line in stream:
            sink.append(line)
            if first is not None:
                first.set()
        if first is not None:
            first.set()  # the process ended without a banner

    def start(self) -> ServeProcess:
        """Start it; returns once its banner names the URL, raises RuntimeError otherwise."""
        self.proc = subprocess.Popen(self.command, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        for stream, sink, first in ((self.proc.stdout, self._out, self._first_line),
                                    (self.proc.stderr, self._err, None)):
            thread = threading.Thread(target=self._drain, args=(stream, sink, first), daemon=True)
            thread.start()
            self._threads.append(thread)
        self._first_line.wait(self.startup_timeout)
        banner = self._out[0] if self._out else ""
        if " at http://" not in banner:
            code = self.stop()
            raise RuntimeError(f"jobmock serve printed no banner (exit {code}): "
                               f"{self.stdout[-2000:]}{self.stderr[-2000:]}")
        self.url = banner.rsplit(" at ", 1)[1].strip()
        return self

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Send ``sig`` (once), wait for the end (kill after ``stop_timeout``), reap; the
        exit code (negative: the signal that ended it)."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=self.stop_timeout)
        for thread in self._threads:
            thread.join(timeout=self.stop_timeout)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        return proc.returncode

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class LiveServer:
    """Serves a :class:`Mock` with uvicorn in a daemon thread until :meth:`stop`."""

    def __init__(self, mock: Mock, host: str = "127.0.0.1", port: int | None = None, *,
                 sessions: Callable[[str], Mock] | None = None) -> None:
        """``sessions``: makes the mock of each session a request names
        (``X-Jobmock-Session``; see :mod:`jobmock.sessions`); None: no sessions."""
        import uvicorn

        self.mock = mock
        self.host = host
        # Without a port, bind one now and hand the socket to uvicorn: nobody can take the
        # port between choosing and listening (as with a port chosen, closed and bound again).
        self._socket: socket.socket | None = None
        if not port:
            self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._socket.bind((host, 0))
            port = int(self._socket.getsockname()[1])
        self.port = port
        app: Any = create_app(mock)
        if sessions is not None:
            from .sessionapp import SessionApp
            from .sessions import DEFAULT_IDLE, DEFAULT_LIMIT

            make = sessions
            app = SessionApp(app, lambda name: create_app(make(name)), idle=DEFAULT_IDLE,
                             limit=DEFAULT_LIMIT)
        config = uvicorn.Config(app, host=host, port=self.port, log_level="warning",
                                access_log=False, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> LiveServer:
        sockets = [self._socket] if self._socket is not None else None
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": sockets},
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                self.stop()
                raise RuntimeError(f"jobmock server did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def serve_mock(api: str | ApiSpec, **options: Any) -> Iterator[LiveServer]:
    """A mock of ``api`` served on a free loopback port (virtual clock unless ``clock=`` says)."""
    options.setdefault("clock", VirtualClock())
    with LiveServer(Mock(resolve_spec(api), **options)) as server:
        yield server


class _DropAware:
    """An ASGI wrapper for in-process stories: an answer the app never finishes (a dropped
    connection) becomes the transport error a socket client sees."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        import httpx

        finished = False

        async def watch(message: MutableMapping[str, Any]) -> None:
            nonlocal finished
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                finished = True
            await send(message)

        await self.app(scope, receive, watch)
        if scope["type"] == "http" and not finished:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")


def _start_receiver(scenario: Scenario) -> WebhookReceiver | None:
    if scenario.receiver is None:
        return None
    from .receiver import WebhookReceiver

    receiver = WebhookReceiver().start()
    scenario.receiver.configure(receiver)
    return receiver


async def run_story_async(source: Any, *, base_url: str | None = None, load: bool = False,
                          timeout: float = 30.0) -> list[str]:
    """Run a scenario's story; return its log. Raises :class:`~jobmock.scenarios.StoryFailure`
    on a failed step. Starts the story's webhook receiver when the scenario has one.

    Without ``base_url``: in-process, on a fresh mock (virtual clock) served by the ASGI app.
    With ``base_url``: against a live ``jobmock serve API --clock virtual --scenario FILE``
    (``load=True`` posts the scenario to ``/_jobmock/scenario`` first, which also resets it).
    """
    import httpx

    scenario = load_scenario(source)
    if not scenario.story:
        return []
    receiver = _start_receiver(scenario)
    try:
        if base_url is None:
            mock = scenario_mock(scenario)
            app = create_app(mock)
            transport = httpx.ASGITransport(app=_DropAware(app))
            async with httpx.AsyncClient(transport=transport, base_url="http://mock.test",
                                         timeout=timeout) as client:
                try:
                    return await _run_story_with(scenario, client, receiver=receiver)
                finally:
                    await app.aclose()
        async with httpx.AsyncClient(base_url=base_url, timeout=timeout) as client:
            return await _run_story_with(scenario, client, receiver=receiver, live=True, load=load)
    finally:
        if receiver is not None:
            receiver.stop()


def run_story(source: Any, *, base_url: str | None = None, load: bool = False) -> list[str]:
    """:func:`run_story_async`, for synchronous callers (it runs its own event loop)."""
    return asyncio.run(run_story_async(source, base_url=base_url, load=load))
