"""An app closed by ``aclose`` (a lifespan's end) serves again when a new lifespan starts:
schemathesis and Starlette's TestClient open the same app several times."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from asgicall import asgi_post
from jobmock.asgi import create_app
from jobmock.mockbuild import build_mock


async def _held_submit(app: Any, body: bytes) -> int:
    """A submit with an inline wait; the status it was answered with."""
    statuses: list[int] = []
    headers = [(b"content-type", b"application/json"),
               (b"authorization", b"Bearer sk_test_croma_org_a"), (b"prefer", b"wait=55"),
               (b"content-length", str(len(body)).encode())]
    await asyncio.wait_for(asgi_post(app, "/v1/lookups/policia-nacional", body, headers,
                                     statuses), 30)
    return statuses[0]


def test_a_closed_app_holds_and_answers_inline_waits_again() -> None:
    # Croma's jobs end within 22 clock seconds: 22 ms at 1000 times the wall clock, and
    # only if the app's ticker fires their transitions.
    app = create_app(build_mock("croma", clock="real", speed=1000.0))
    body = json.dumps({"document_type": "CC", "document_number": "1020304050"}).encode()

    async def main() -> list[int]:
        first = await _held_submit(app, body)
        await app.aclose()
        second = await _held_submit(app, body)
        await app.aclose()
        return [first, second]

    statuses = asyncio.run(main())
    assert all(s in (200, 502, 504) for s in statuses), statuses  # the jobs' outcomes
