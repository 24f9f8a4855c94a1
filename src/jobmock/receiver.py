"""A webhook receiver for tests: listens on loopback, records, verifies, fails on request.

::

    with WebhookReceiver() as hooks:
        hooks.fail_next(3, status=500)      # or delay=12.0, or drop=True
        ... submit a job with callback_url=hooks.url ...
        hooks.wait_for(4, timeout=5)
        assert hooks.received[-1].verify("whsec_demo", "x-croma-signature", "sha256={hex}")

It runs :class:`http.server.ThreadingHTTPServer` in a daemon thread, so it serves any
client (the mock's async sender, a real server under test, curl).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Fault", "Received", "WebhookReceiver"]


@dataclass(frozen=True, slots=True)
class Fault:
    """How to answer one delivery badly: a status, a delay (then 200), or a dropped connection."""

    status: int | None = None
    delay: float = 0.0
    drop: bool = False
    #: A ``Retry-After`` header value to answer with (a 429 or 503 asking to wait).
    retry_after: str | None = None


@dataclass(slots=True)
class Received:
    """One request the receiver got, with the exact raw body bytes."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    answered: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == name), None)

    def verify(self, secret: str, header: str, fmt: str = "sha256={hex}") -> bool:
        """Whether ``header`` carries HMAC-SHA256(secret, raw body) in ``fmt``."""
        got = self.header(header)
        if got is None:
            return False
        digest = hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        prefix, _, suffix = fmt.partition("{hex}")
        if not (got.startswith(prefix) and got.endswith(suffix)):
            return False
        candidate = got[len(prefix): len(got) - len(suffix) if suffix else None]
        return hmac.compare_digest(candidate, digest)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # A burst of webhooks (many jobs ending at one clock step) must not overflow the
    # listen queue: the default of 5 makes the kernel drop SYNs, and a sender with a
    # short timeout gives up before the 1 s retransmission.
    request_queue_size = 1024


def _read_chunked(rfile: Any) -> bytes:
    out = bytearray()
    while True:
        size = int(rfile.readline(65537).split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return bytes(out)
        out += rfile.read(size)
        rfile.readline(65537)  # the CRLF after each chunk


class WebhookReceiver:
    """Records webhooks on ``http://127.0.0.1:PORT/hook``; see the module docstring."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, path: str = "/hook") -> None:
        self.path = path
        self.received: list[Received] = []
        self._faults: deque[Fault] = deque()
        self._always: Fault | None = None
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                receiver._handle(self)

            do_PUT = do_POST

        self._server = _Server((host, port), Handler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self.path}"

    def start(self) -> WebhookReceiver:
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever,
                                            kwargs={"poll_interval": 0.05}, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- behaviour -------------------------------------------------------------------

    def fail_next(self, n: int = 1, *, status: int | None = None, delay: float = 0.0,
                  drop: bool = False, retry_after: str | None = None) -> None:
        """Answer the next ``n`` deliveries badly (default: status 500), with a
        ``Retry-After: retry_after`` header if given."""
        fault = Fault(status if status is not None or delay or drop else 500, delay, drop,
                      retry_after)
        with self._cond:
            self._faults.extend([fault] * n)

    def fail_always(self, *, status: int | None = 500, delay: float = 0.0,
                    drop: bool = False) -> None:
        """Answer every delivery badly until :meth:`heal`."""
        with self._cond:
            self._always = Fault(status, delay, drop)

    def heal(self) -> None:
        with self._cond:
            self._always = None
            self._faults.clear()

    def clear(self) -> None:
        with self._cond:
            self.received.clear()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """Block until ``count`` deliveries have arrived (and been answered); raise on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(1 for r in self.received if r.answered) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self.received)} of {count} webhooks arrived in {timeout}s")
                self._cond.wait(left)
            return list(self.received)

    # -- serving ---------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        if "chunked" in (handler.headers.get("Transfer-Encoding") or "").lower():
            body = _read_chunked(handler.rfile)
        else:
            length = int(handler.headers.get("Content-Length") or 0)
            body = handler.rfile.read(length) if length else b""
        item = Received(handler.command, handler.path, dict(handler.headers.items()), body,
                        time.time())
        with self._cond:
            fault = self._faults.popleft() if self._faults else self._always
            self.received.append(item)
        if fault is not None and fault.drop:
            item.answered = "dropped"
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
            self._notify()
            return
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        status = fault.status if fault is not None and fault.status is not None else 200
        item.answered = str(status)
        try:
            handler.send_response(status)
            if fault is not None and fault.retry_after is not None:
                handler.send_header("Retry-After", fault.retry_after)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        except OSError:
            item.answered = f"{status} (client gone)"
        self._notify()

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()
