"""Test harness helpers: a real jobmock server on a free loopback port, in a thread.

::

    with LiveServer(Mock(resolve_spec("croma"), clock=VirtualClock())) as server:
        httpx.get(server.url + "/_jobmock/health")
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .asgi import create_app
from .bundled import resolve_spec
from .clock import VirtualClock
from .dispatch import Mock
from .spec import ApiSpec

__all__ = ["LiveServer", "free_port", "serve_mock"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class LiveServer:
    """Serves a :class:`Mock` with uvicorn in a daemon thread until :meth:`stop`."""

    def __init__(self, mock: Mock, host: str = "127.0.0.1", port: int | None = None) -> None:
        import uvicorn

        self.mock = mock
        self.host = host
        self.port = port or free_port(host)
        config = uvicorn.Config(create_app(mock), host=host, port=self.port, log_level="warning",
                                access_log=False, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> LiveServer:
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"jobmock server did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

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
