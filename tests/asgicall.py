"""Calling an ASGI app directly in tests: one request with its whole body, no server."""

from __future__ import annotations

import asyncio
from typing import Any


async def asgi_post(app: Any, path: str, body: bytes, headers: list[tuple[bytes, bytes]],
                    statuses: list[int]) -> None:
    """POST ``body`` to ``path`` through ``app``; the answer's status is appended to
    ``statuses`` as soon as the response starts."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:  # the body was given whole: nothing more comes (no disconnect either)
            await asyncio.Event().wait()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(),
             "query_string": b"", "headers": headers, "http_version": "1.1",
             "scheme": "http", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1),
             "root_path": ""}
    await app(scope, receive, send)
