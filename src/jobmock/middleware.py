"""ASGI wrappers ``jobmock serve`` puts around its app: the access log and CORS.

- :class:`AccessLog`: one line per request (method, path, status, job id, tenant,
  duration) on the ``jobmock.access`` logger, and one per webhook attempt (delivery,
  job, attempt, URL, answer) on ``jobmock.webhooks``; text or JSON lines
  (:func:`configure_logging`). The job id and tenant come from the mock itself, through
  a response hook, so the line names the job a poll read even when its id is not in
  the path.
- :class:`Cors`: lets a browser app on the given origins call the mocked API: a
  preflight (``OPTIONS`` with ``Access-Control-Request-Method``) is answered 204 with the
  methods and headers asked for; an answer to an allowed origin carries
  ``Access-Control-Allow-Origin`` and exposes its headers (``Location``, ``Retry-After``,
  ...) to the page. The control plane (``/_jobmock/``) is left alone: it stays
  same-origin.
"""

from __future__ import annotations

import contextvars
import datetime as _dt
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .dispatch import Mock, Request, Response
    from .webhooks import Attempt, Delivery

__all__ = ["LOG_LEVELS", "AccessLog", "Cors", "JsonFormatter", "configure_logging"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

LOG_LEVELS = ("debug", "info", "warning", "error")
ACCESS = logging.getLogger("jobmock.access")
WEBHOOKS = logging.getLogger("jobmock.webhooks")
#: What the mock said about the request being answered (job id, tenant, operation).
_CURRENT: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "jobmock_access", default=None)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": _dt.datetime.fromtimestamp(record.created, _dt.UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(), "logger": record.name,
            "message": record.getMessage()}
        data.update(getattr(record, "fields", {}))
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


def configure_logging(level: str = "warning", fmt: str = "text") -> logging.Logger:
    """Send the ``jobmock`` loggers to stderr at ``level``, as ``text`` or ``json`` lines."""
    if level not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be text or json, got {fmt!r}")
    root = logging.getLogger("jobmock")
    root.setLevel(level.upper())
    for old in list(root.handlers):
        if getattr(old, "_jobmock", False):
            root.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    handler._jobmock = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.propagate = False
    return root


class AccessLog:
    """Logs each request ``app`` answers, and each webhook attempt of ``mock``."""

    def __init__(self, app: App, mock: Mock) -> None:
        self.app = app
        self.mock = mock
        mock.response_hooks.append(self._note)
        if mock.webhooks is not None:
            mock.webhooks.on_attempt(self._attempt)

    @staticmethod
    def _note(request: Request, response: Response, info: dict[str, Any]) -> Response:
        seen = _CURRENT.get()
        if seen is not None:
            seen.update(job_id=info.get("job_id"), tenant=info.get("tenant"),
                        operation=info.get("operation"))
        return response

    def _attempt(self, delivery: Delivery, attempt: Attempt) -> None:
        if not WEBHOOKS.isEnabledFor(logging.INFO):
            return
        answer = str(attempt.status) if attempt.status is not None else (attempt.error or "?")
        fields = {"event": "webhook", "delivery": delivery.id, "job_id": delivery.job_id,
                  "webhook_event": delivery.event, "attempt": attempt.number,
                  "url": delivery.url, "status": attempt.status, "error": attempt.error,
                  "state": delivery.state}
        WEBHOOKS.info("webhook %s attempt %d for job %s -> %s: %s (%s)", delivery.id,
                      attempt.number, delivery.job_id, delivery.url, answer, delivery.state,
                      extra={"fields": fields})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not ACCESS.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen: dict[str, Any] = {}
        token = _CURRENT.set(seen)
        status = [0]

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            _CURRENT.reset(token)
            took = round((time.perf_counter() - started) * 1000, 2)
            path = scope.get("path", "")
            query = scope.get("query_string", b"").decode("latin-1")
            client = scope.get("client") or ("-", 0)
            fields = {"event": "request", "method": scope.get("method"), "path": path,
                      "query": query or None, "status": status[0] or None,
                      "job_id": seen.get("job_id"), "tenant": seen.get("tenant"),
                      "operation": seen.get("operation"), "duration_ms": took,
                      "client": client[0]}
            ACCESS.info('%s "%s %s" %s job=%s tenant=%s %.2fms', client[0], scope.get("method"),
                        path + (f"?{query}" if query else ""), status[0] or "-",
                        seen.get("job_id") or "-", seen.get("tenant") or "-", took,
                        extra={"fields": fields})


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers", ()):
        if k.lower() == name:
            return str(v.decode("latin-1"))
    return None


#: Headers a page can read without being told (the CORS "safelisted" response headers).
_SAFELISTED = frozenset({"cache-control", "content-language", "content-length", "content-type",
                         "expires", "last-modified", "pragma"})


class Cors:
    """CORS for the mocked API's paths, for ``origins`` (``*`` allows any)."""

    def __init__(self, app: App, origins: Iterable[str], *, max_age: int = 600) -> None:
        self.app = app
        self.origins = frozenset(o.rstrip("/") for o in origins)
        if not self.origins:
            raise ValueError("CORS needs at least one origin (or '*')")
        self.max_age = max_age

    def allowed(self, origin: str | None) -> str | None:
        """What ``Access-Control-Allow-Origin`` says to ``origin`` (None: not allowed)."""
        if origin is None:
            return None
        if "*" in self.origins:
            return "*"
        return origin if origin.rstrip("/") in self.origins else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith("/_jobmock/"):
            await self.app(scope, receive, send)
            return
        origin = _header(scope, b"origin")
        allow = self.allowed(origin)
        if scope["method"] == "OPTIONS" and origin is not None \
                and _header(scope, b"access-control-request-method") is not None:
            await self._preflight(scope, send, allow)
            return
        if allow is None:
            await self.app(scope, receive, send)
            return

        async def add(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = sorted({k.decode("latin-1").lower() for k, _ in headers}
                               - _SAFELISTED)
                headers.append((b"access-control-allow-origin", allow.encode("latin-1")))
                headers.append((b"vary", b"Origin"))
                if names:
                    headers.append((b"access-control-expose-headers",
                                    ", ".join(names).encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, add)

    async def _preflight(self, scope: Scope, send: Send, allow: str | None) -> None:
        if allow is None:
            body = b'{"error": "origin not allowed by jobmock --cors"}'
            await send({"type": "http.response.start", "status": 403, "headers": [
                (b"content-type", b"application/json"), (b"vary", b"Origin"),
                (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        method = _header(scope, b"access-control-request-method") or "GET"
        asked = _header(scope, b"access-control-request-headers")
        headers = [(b"access-control-allow-origin", allow.encode("latin-1")),
                   (b"access-control-allow-methods",
                    ", ".join(sorted({method.upper(), "GET", "POST", "HEAD"})).encode("latin-1")),
                   (b"access-control-max-age", str(self.max_age).encode()),
                   (b"vary", b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
                   (b"content-length", b"0")]
        if asked:
            headers.append((b"access-control-allow-headers", asked.encode("latin-1")))
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
