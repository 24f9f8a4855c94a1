"""A bare Starlette app: the baseline the HTTP benchmarks compare jobmock against.

It answers fixed, pre-rendered responses (status, headers, body) read from a JSON
config, so it does the framework's share of the work (routing, ASGI, the HTTP
server) and none of jobmock's (validation, the engine, templates, the journal).
It checks the Authorization header like the mock does, and parses a POST body as
JSON before answering. Run it under the same server, with the same settings, as
``jobmock serve`` uses::

    python bench/bare_app.py --config routes.json --port 8001 [--server granian]

The config::

    {"authorization": "Bearer sk_...",
     "routes": {"GET /jobs/{id}": {"status": 200, "headers": [["retry-after", "2"]],
                                    "body": "{...}"}}}
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = ["build_app", "main"]


def _endpoint(spec: dict[str, Any], authorization: str | None,
              ) -> Callable[[Request], Awaitable[Response]]:
    body = spec["body"].encode()
    status = int(spec["status"])
    headers = {k: v for k, v in spec.get("headers", []) if k.lower() != "content-length"}
    unauthorized = b'{"error":"unauthorized"}'

    async def endpoint(request: Request) -> Response:
        if authorization is not None and request.headers.get("authorization") != authorization:
            return Response(unauthorized, 401, media_type="application/json")
        if request.method == "POST":
            json.loads(await request.body() or b"null")
        return Response(body, status, headers=headers)

    return endpoint


def build_app(config: dict[str, Any]) -> Starlette:
    """A Starlette app answering each ``"METHOD /path"`` of ``config["routes"]``."""
    auth = config.get("authorization")
    routes = [Route("/_bare/health", lambda r: Response(b"ok"), methods=["GET"])]
    for key, spec in config["routes"].items():
        method, path = key.split(" ", 1)
        routes.append(Route(path, _endpoint(spec, auth), methods=[method]))
    return Starlette(routes=routes)


def serve_granian(app: Any, host: str, port: int) -> None:
    """granian's embedded server with the settings `jobmock serve` gives it (see
    ``jobmock.serving``): HTTP/1.1 only, backlog 1024, backpressure as many requests as
    the open-files limit allows, 64 KiB heads, warning-level logs. SIGINT/SIGTERM stop it
    gracefully."""
    import asyncio
    import signal

    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server.embed import Server

    from jobmock.serving import in_flight

    server = Server(app, address=host, port=port, interface=Interfaces.ASGI,
                    log_level=LogLevels.warning, http=HTTPModes.http1, backlog=1024,
                    backpressure=in_flight(),
                    http1_settings=HTTP1Settings(header_read_timeout=30_000, keep_alive=True,
                                                 max_buffer_size=64 * 1024))

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, server.stop)
        await server.serve()

    asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--server", choices=["uvicorn", "granian"], default="uvicorn")
    args = parser.parse_args()
    app = build_app(json.loads(args.config.read_text()))
    if args.server == "granian":
        serve_granian(app, args.host, args.port)
        return
    import uvicorn

    # The same settings as `jobmock serve` passes to uvicorn.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False,
                lifespan="on")


if __name__ == "__main__":
    main()
