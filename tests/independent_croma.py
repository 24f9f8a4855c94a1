"""An independent Croma server, written from the vendor document with no jobmock code, in
real time, that leaves out everything croma.yaml only assumes.

What the document states it does: ``POST /v1/lookups/:source`` waits inline
(``Prefer: wait=N``, clamped to 55 s) and answers 200 ``{"data": ...}`` with
``Preference-Applied``, or 202 with the job envelope, ``Location``, ``X-Job-Id`` and
``Retry-After``; ``GET /jobs/:id`` reads the envelope, with ``Retry-After`` while running;
another organization's job reads as 404; callbacks go to public HTTPS URLs only, with
``x-croma-job-id`` and, for an organization that asked for it, ``x-croma-signature``.

What croma.yaml assumes and this server does not do: no ``id``, ``created_at`` or
``updated_at`` in the envelope, no ``source`` in ``data``, no ``Retry-After`` while queued
(the value is 1, not 2), no ``Preference-Applied`` on a 202, 403 (not 401) with its own
body for missing or wrong credentials, 422 (not 400) with its own body for invalid input,
its own body for a 404. ``preference_on_200=False`` breaks what the document states: the
200 answer then lacks ``Preference-Applied``.

Webhooks are only ever sent to the URLs in ``forward`` (as through a tunnel).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

KEYS = {"sk_test_croma_org_a": "org_a", "sk_test_croma_org_b": "org_b"}
SIGNED = {"org_a"}
SECRET = b"whsec_croma_demo"
SOURCES = {"policia-nacional", "sicaac", "superfinanciera", "rree", "sunat"}
QUEUED_FOR, RUNNING_FOR = 0.3, 0.9
_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d{1,6})(?:$|[,;\s])")


@dataclass
class Job:
    id: str
    org: str
    source: str
    request: dict[str, Any]
    created: float
    callback: str | None

    def status(self) -> str:
        age = time.monotonic() - self.created
        return "queued" if age < QUEUED_FOR else "running" if age < QUEUED_FOR + RUNNING_FOR \
            else "completed"


@dataclass
class Croma:
    forward: dict[str, str]
    preference_on_200: bool = True
    jobs: dict[str, Job] = field(default_factory=dict)
    sent: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def envelope(self, job: Job, base: str) -> dict[str, Any]:
        status = job.status()
        return {"status": status, "status_url": f"{base}/jobs/{job.id}",
                "data": {"registry": job.source, "found": False} if status == "completed" else None,
                "error": None}

    def deliver(self) -> None:
        """Send each finished job's callback once (forwarded URLs only), signed if asked."""
        while not self.stop.wait(0.02):
            with self.lock:
                due = [j for j in self.jobs.values() if j.callback and j.id not in self.sent
                       and j.status() == "completed"]
                self.sent.update(j.id for j in due)
            for job in due:
                target = self.forward.get(job.callback or "")
                if target is None:
                    continue
                raw = json.dumps(self.envelope(job, "https://api.croma.example")).encode()
                headers = {"content-type": "application/json", "x-croma-job-id": job.id}
                if job.org in SIGNED:
                    digest = hmac.new(SECRET, raw, hashlib.sha256).hexdigest()
                    headers["x-croma-signature"] = f"sha256={digest}"
                with suppress(httpx.HTTPError):
                    httpx.post(target, content=raw, headers=headers, timeout=5)


def _refuse(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message}}, status)


def _public_https(url: Any) -> bool:
    if not isinstance(url, str):
        return False
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".").lower()
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return False
    if parts.scheme != "https" or not host or host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        try:
            ip = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return "." in host
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global


def _invalid(source: str, body: Any) -> str | None:
    if not isinstance(body, dict):
        return "expected a JSON object"
    allowed = {"ruc", "callback_url"} if source == "sunat" else {
        "document_type", "document_number", "callback_url"}
    if set(body) - allowed:
        return "unknown fields"
    if source == "sunat":
        ruc = body.get("ruc")
        if not (isinstance(ruc, str) and re.fullmatch(r"[0-9]{11}", ruc)):
            return "ruc: 11 digits"
    else:
        if body.get("document_type") not in ("CC", "CE", "PA", "TI", "NIT"):
            return "document_type: unknown"
        number = body.get("document_number")
        if not (isinstance(number, str) and re.fullmatch(r"[0-9A-Za-z]{4,20}", number)):
            return "document_number: 4 to 20 letters or digits"
    if "callback_url" in body and not _public_https(body["callback_url"]):
        return "callback_url: an HTTPS URL on a public host"
    return None


def croma_app(state: Croma) -> Starlette:
    def org_of(request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        return KEYS.get(auth[7:].strip()) if auth.startswith("Bearer ") else None

    async def lookup(request: Request) -> Response:
        org = org_of(request)
        if org is None:
            return _refuse(403, "Forbidden")
        source = request.path_params["source"]
        if source not in SOURCES:
            return _refuse(404, "No such lookup")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _refuse(422, "Body is not JSON")
        problem = _invalid(source, body)
        if problem:
            return _refuse(422, problem)
        callback = body.get("callback_url")
        job = Job(uuid.uuid4().hex, org, source, body, time.monotonic(), callback)
        with state.lock:
            state.jobs[job.id] = job
        asked = _WAIT.search(request.headers.get("prefer", ""))
        wait = 0 if callback else min(int(asked.group(1)) if asked else 55, 55)
        deadline = time.monotonic() + wait
        while job.status() != "completed" and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        base = str(request.base_url).rstrip("/")
        vary = {"Vary": "Prefer", "X-Job-Id": job.id}
        if job.status() == "completed":
            headers = {**vary, **({"Preference-Applied": f"wait={wait}"}
                                  if state.preference_on_200 else {})}
            return JSONResponse({"data": state.envelope(job, base)["data"]}, 200, headers=headers)
        # Retry-After is documented on the 202 itself (Preference-Applied only on the 200).
        headers = {**vary, "Location": f"{base}/jobs/{job.id}", "Retry-After": "1"}
        return JSONResponse(state.envelope(job, base), 202, headers=headers)

    async def read(request: Request) -> Response:
        org = org_of(request)
        if org is None:
            return _refuse(403, "Forbidden")
        job = state.jobs.get(request.path_params["id"])
        if job is None or job.org != org:
            return _refuse(404, "Not found")
        envelope = state.envelope(job, str(request.base_url).rstrip("/"))
        headers = {"Retry-After": "1"} if envelope["status"] == "running" else None
        return JSONResponse(envelope, headers=headers)

    return Starlette(routes=[Route("/v1/lookups/{source}", lookup, methods=["POST"]),
                             Route("/jobs/{id}", read, methods=["GET"])])


@contextmanager
def serve_croma(forward: dict[str, str] | None = None, *, preference_on_200: bool = True,
                ) -> Iterator[str]:
    """Serve it on a free loopback port; yields the base URL."""
    state = Croma(dict(forward or {}), preference_on_200)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(croma_app(state), host="127.0.0.1", port=port,
                                           log_level="warning"))
    threads = [threading.Thread(target=server.run, daemon=True),
               threading.Thread(target=state.deliver, daemon=True)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        state.stop.set()
        for t in threads:
            t.join(10)
