"""The contract suite judges a server that is not the mock: a small Starlette implementation
of enrich written here with no jobmock code, in real time. A correct one passes, and so does
one without what enrich.yaml only assumes (Retry-After, the echoed ``transaction``); one that
returns results out of order, or sends a malformed Retry-After, fails with the check that
says so."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from jobmock.bundled import resolve_spec
from jobmock.contract import ContractViolation
from jobmock.contract.runner import RunOptions, run_machine
from jobmock.testing import free_port

KEYS = {"sk_test_enrich_org_a": "a", "sk_test_enrich_org_b": "b"}
QUEUED_FOR, RUNNING_FOR = 0.3, 0.6


def enrich_app(*, reverse_results: bool = False, retry_after: str | None = "1",
               echo: bool = True) -> Starlette:
    jobs: dict[str, dict[str, Any]] = {}

    def now() -> str:
        return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def owner(request: Request) -> str | JSONResponse:
        key = request.headers.get("x-api-key", "").strip()
        if not key:
            return JSONResponse(
                {"error": "Missing API key. Provide your key via the X-API-Key header."}, 401)
        if key not in KEYS:
            return JSONResponse({"error": "Invalid or revoked API key."}, 401)
        return KEYS[key]

    async def submit(request: Request) -> JSONResponse:
        who = owner(request)
        if isinstance(who, JSONResponse):
            return who
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "Body is not JSON."}, 400)
        items = body.get("transactions") if isinstance(body, dict) else None
        if (not isinstance(body, dict) or set(body) - {"transactions"}
                or not isinstance(items, list) or not 1 <= len(items) <= 1000
                or not all(isinstance(t, str) and t for t in items)):
            return JSONResponse({"error": "transactions must be 1 to 1000 non-empty strings."}, 400)
        job_id = str(uuid.uuid4())
        jobs[job_id] = {"owner": who, "items": items, "t0": time.monotonic(), "created": now()}
        return JSONResponse(
            {"job_id": job_id, "status": "queued", "created_at": jobs[job_id]["created"]},
            202, headers={"Retry-After": retry_after} if retry_after else None)

    async def status(request: Request) -> JSONResponse:
        who = owner(request)
        if isinstance(who, JSONResponse):
            return who
        job = jobs.get(request.path_params["id"])
        if job is None:
            return JSONResponse({"error": "Job not found."}, 404)
        if job["owner"] != who:
            return JSONResponse({"error": "Invalid or revoked API key."}, 401)
        age = time.monotonic() - job["t0"]
        state = ("queued" if age < QUEUED_FOR
                 else "processing" if age < QUEUED_FOR + RUNNING_FOR else "complete")
        results = [{"transaction": t, "merchant_name": "Shop"} if echo else {"merchant_name": t}
                   for t in job["items"]]
        shown = (results[::-1] if reverse_results else results) if state == "complete" else []
        body: dict[str, Any] = {"id": request.path_params["id"], "status": state, "results": shown,
                                "created_at": job["created"], "updated_at": job["created"]}
        if state != "queued":
            body["total"] = len(job["items"])
        headers = {"Retry-After": retry_after} if state != "complete" and retry_after else None
        return JSONResponse(body, headers=headers)

    return Starlette(routes=[Route("/v1/enrich/async", submit, methods=["POST"]),
                             Route("/v1/enrich/async/{id}", status, methods=["GET"])])


@contextmanager
def serve(app: Starlette) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


OPTIONS = RunOptions(examples=3, steps=15, budget=10.0, shrink=False)


def test_a_correct_independent_server_passes() -> None:
    with serve(enrich_app()) as url:
        run_machine(resolve_spec("enrich"), url, OPTIONS, None)


def test_a_server_without_what_enrich_assumes_passes() -> None:
    """No Retry-After and no echoed transaction: both are assumed by enrich.yaml."""
    with serve(enrich_app(retry_after=None, echo=False)) as url:
        run_machine(resolve_spec("enrich"), url, OPTIONS, None)


@pytest.mark.parametrize(("broken", "check"), [
    ({"reverse_results": True}, "invariants"),
    ({"retry_after": "soon"}, "retry_after"),
])
def test_a_broken_independent_server_fails_with_the_named_check(broken: dict[str, Any],
                                                                check: str) -> None:
    with serve(enrich_app(**broken)) as url, pytest.raises(ContractViolation) as caught:
        run_machine(resolve_spec("enrich"), url, OPTIONS, None)
    assert caught.value.check == check, str(caught.value)[:1500]
