"""Running replicas locally: a real ``redis-server`` and a round-robin loopback proxy.

::

    with RedisServer() as redis, \\
            ServeProcess("croma", "--store", redis.url) as a, \\
            ServeProcess("croma", "--store", redis.url) as b, \\
            RoundRobinProxy([a.url, b.url]) as proxy:
        httpx.get(proxy.url + "/_jobmock/health")   # answered by a, the next by b, ...

For tests and benchmarks: :class:`RedisServer` starts the ``redis-server`` binary (the
Debian package ``redis-server``) on a free loopback port with no persistence and stops it
on exit; :class:`RoundRobinProxy` is a load balancer in a thread that sends each request to
the next replica in turn (an inline wait stays held on the replica it reached).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import MutableMapping
from typing import Any

import httpx

from .ports import free_port

__all__ = ["RedisServer", "RoundRobinProxy"]

_HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"host"}


class RedisServer:
    """A ``redis-server`` on a free loopback port, without persistence, for the ``with``."""

    def __init__(self, binary: str = "redis-server", startup_timeout: float = 10.0) -> None:
        found = shutil.which(binary)
        if found is None:
            raise FileNotFoundError(f"{binary} is not installed (Debian: apt-get install "
                                    f"redis-server)")
        self.binary = found
        self.startup_timeout = startup_timeout
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self._dir = tempfile.TemporaryDirectory(prefix="jobmock-redis-")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self._dir.name, "--protected-mode", "yes"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server ended at start (exit {self.proc.returncode})")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer within {self.startup_timeout:g} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


Scope = MutableMapping[str, Any]


class RoundRobinProxy:
    """Forwards each request to the next of ``upstreams`` in turn (a loopback load balancer
    in a thread); a replica that does not answer gets the request's 502."""

    def __init__(self, upstreams: list[str], timeout: float = 120.0) -> None:
        if not upstreams:
            raise ValueError("a proxy needs at least one upstream")
        self.upstreams = [u.rstrip("/") for u in upstreams]
        self.timeout = timeout
        self.port = free_port()
        self.served = [0] * len(self.upstreams)
        self._next = 0
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._client: httpx.AsyncClient | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                for _ in range(2):  # startup, then shutdown
                    message = await receive()
                    if message["type"] == "lifespan.startup":
                        await send({"type": "lifespan.startup.complete"})
                    else:
                        if self._client is not None:
                            await self._client.aclose()
                        await send({"type": "lifespan.shutdown.complete"})
                        return
            return
        index = self._next
        self._next = (self._next + 1) % len(self.upstreams)
        self.served[index] += 1
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout,
                                             limits=httpx.Limits(max_connections=1000))
        path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        url = self.upstreams[index] + path.decode("latin-1") + (
            "?" + query.decode("latin-1") if query else "")
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _HOP_BY_HOP]
        try:
            answer = await self._client.request(scope["method"], url, headers=headers,
                                                content=body)
            status, raw, content = answer.status_code, answer.headers.raw, answer.content
        except httpx.HTTPError as exc:
            status, raw, content = 502, [], f"upstream {url}: {exc}".encode()
        out = [(k, v) for k, v in raw if k.lower() not in _HOP_BY_HOP]
        out.append((b"content-length", str(len(content)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": content})

    def start(self) -> RoundRobinProxy:
        import uvicorn

        config = uvicorn.Config(self, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the round-robin proxy did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> RoundRobinProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

