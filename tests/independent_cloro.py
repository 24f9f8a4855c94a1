"""An independent cloro server, written from the cloro spec and its vendor document with no
jobmock code, in real time, to be judged by the contract suite like any server.

It keeps a FIFO queue per organization under a concurrency limit, charges credits on
completion only, retries failed webhooks 2, 4, 8 and 16 minutes apart, and refuses
callback URLs that are not HTTPS on a public host. Each deliberate breakage is a flag:
``lifo`` (the newest waiting task starts first), ``credits_on_failure`` (a FAILED task is
charged), ``early_retries`` (retries 1, 2, 4, 8 s apart), ``accept_private`` (loopback and
private callback URLs are accepted).

Webhooks are only ever sent to the URLs in ``forward`` (a public-looking URL standing for
the suite's loopback receiver, as a tunnel would); every other callback URL is recorded
and never contacted.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

KEYS = {"sk_test_cloro_org_a": "org_a", "sk_test_cloro_org_b": "org_b"}
TASK_TYPES = {"CHATGPT", "PERPLEXITY", "GEMINI", "COPILOT", "GROK", "AIMODE", "GOOGLE",
              "GOOGLE_NEWS"}
LIMIT = 10
COST = 10
QUEUED_FOR = 0.2
DELAYS = (120.0, 240.0, 480.0, 960.0)
EARLY_DELAYS = (1.0, 2.0, 4.0, 8.0)


@dataclass
class Task:
    id: str
    org: str
    number: int
    task_type: str
    prompt: str
    key: str | None
    url: str | None
    created: float
    created_iso: str
    status: str = "QUEUED"
    started: float | None = None
    ends: float | None = None
    charged: int = 0


@dataclass
class Delivery:
    task_id: str
    url: str
    body: dict[str, Any]
    attempts: int = 0
    next_at: float = 0.0


@dataclass
class Flags:
    lifo: bool = False
    credits_on_failure: bool = False
    early_retries: bool = False
    accept_private: bool = False


@dataclass
class Cloro:
    """The server's state, its scheduler and its webhook sender."""

    flags: Flags
    forward: dict[str, str]
    tasks: dict[str, Task] = field(default_factory=dict)
    waiting: dict[str, list[str]] = field(default_factory=dict)
    keys: dict[tuple[str, str], str] = field(default_factory=dict)
    outbox: list[Delivery] = field(default_factory=list)
    ignored_urls: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    count: int = 0

    # -- the work ------------------------------------------------------------------------

    def duration(self, task: Task) -> float:
        return 0.6 + 0.15 * (task.number % 5)

    def outcome(self, task: Task) -> str:
        return "FAILED" if task.number % 4 == 3 else "COMPLETED"

    def tick(self) -> None:
        now = time.monotonic()
        with self.lock:
            for task in self.tasks.values():
                if task.status == "PROCESSING" and task.ends is not None and task.ends <= now:
                    task.status = self.outcome(task)
                    if task.status == "COMPLETED" or self.flags.credits_on_failure:
                        task.charged = COST
                    if task.url is not None:
                        self.outbox.append(Delivery(task.id, task.url, self.webhook_body(task),
                                                    next_at=now))
            for org, queue in self.waiting.items():
                running = sum(1 for t in self.tasks.values()
                              if t.org == org and t.status == "PROCESSING")
                while queue and running < LIMIT:
                    pick = queue[-1] if self.flags.lifo else queue[0]
                    task = self.tasks[pick]
                    if task.created + QUEUED_FOR > now:
                        break  # not ready: FIFO holds the rest behind the head
                    queue.remove(pick)
                    task.status, task.started = "PROCESSING", now
                    task.ends = now + self.duration(task)
                    running += 1

    def send_due(self) -> None:
        now = time.monotonic()
        with self.lock:
            due = [d for d in self.outbox if d.next_at <= now]
        for delivery in due:
            target = self.forward.get(delivery.url)
            delivery.attempts += 1
            ok = False
            if target is not None:
                try:
                    ok = httpx.post(target, json=delivery.body, timeout=5).is_success
                except httpx.HTTPError:
                    ok = False
            else:
                self.ignored_urls.append(delivery.url)
            delays = EARLY_DELAYS if self.flags.early_retries else DELAYS
            with self.lock:
                if ok or delivery.attempts > len(delays) or target is None:
                    self.outbox.remove(delivery)
                else:
                    delivery.next_at = time.monotonic() + delays[delivery.attempts - 1]

    def run(self) -> None:
        while not self.stop.wait(0.01):
            self.tick()
            self.send_due()

    # -- bodies --------------------------------------------------------------------------

    def task_body(self, task: Task) -> dict[str, Any]:
        body: dict[str, Any] = {"id": task.id, "taskType": task.task_type, "status": task.status,
                                "createdAt": task.created_iso}
        if task.key is not None:
            body["idempotencyKey"] = task.key
        return body

    def status_body(self, task: Task, *, full: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"success": True, "task": self.task_body(task),
                                "credits": {"creditsToCharge": COST, "creditsCharged": task.charged}}
        if full and task.status == "COMPLETED":
            body["response"] = {"model": "gpt-5-mini", "text": f"About: {task.prompt}"}
        if full and task.status == "FAILED":
            body["error"] = {"code": "TASK_FAILED", "message": "The engine gave no answer."}
        return body

    def webhook_body(self, task: Task) -> dict[str, Any]:
        body = self.status_body(task, full=True)
        body.pop("success")
        return body


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"success": False, "error": {"code": code, "message": message}}, status)


def _public_https(url: str) -> bool:
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


def _problem(body: Any, flags: Flags) -> str | None:
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    if body.get("taskType") not in TASK_TYPES:
        return "taskType: must be one of the task types"
    payload = body.get("payload")
    if not isinstance(payload, dict):
        return "payload: required object"
    prompt = payload.get("prompt")
    if not isinstance(prompt, str) or not 1 <= len(prompt) <= 10000:
        return "payload.prompt: 1 to 10,000 characters"
    country = payload.get("country")
    if country is not None and not (isinstance(country, str) and len(country) == 2
                                    and country.isascii() and country.isupper()):
        return "payload.country: two capital letters"
    key = body.get("idempotencyKey")
    if key is not None and not (isinstance(key, str) and 1 <= len(key) <= 255):
        return "idempotencyKey: 1 to 255 characters"
    hook = body.get("webhook")
    if hook is not None:
        url = hook.get("url") if isinstance(hook, dict) else None
        if not isinstance(url, str) or not url.startswith("https://"):
            return "webhook.url: an absolute https URL"
        if not flags.accept_private and not _public_https(url):
            return "webhook.url: must be a public host"
    return None


def cloro_app(state: Cloro) -> Starlette:
    def org_of(request: Request) -> str | JSONResponse:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return _error(401, "MISSING_API_KEY", "Missing API key")
        org = KEYS.get(auth[7:].strip())
        return org if org is not None else _error(401, "INVALID_OR_EXPIRED_API_KEY",
                                                  "Invalid or expired API key")

    async def submit(request: Request) -> JSONResponse:
        org = org_of(request)
        if isinstance(org, JSONResponse):
            return org
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "VALIDATION_ERROR", "the body is not JSON")
        problem = _problem(body, state.flags)
        if problem:
            return _error(400, "VALIDATION_ERROR", problem)
        key = body.get("idempotencyKey")
        with state.lock:
            if key is not None and (org, key) in state.keys:
                task = state.tasks[state.keys[(org, key)]]
            else:
                state.count += 1
                now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
                task = Task(str(uuid.uuid4()), org, state.count, body["taskType"],
                            body["payload"]["prompt"], key, (body.get("webhook") or {}).get("url"),
                            time.monotonic(), now)
                state.tasks[task.id] = task
                state.waiting.setdefault(org, []).append(task.id)
                if key is not None:
                    state.keys[(org, key)] = task.id
            answer = state.status_body(task, full=False)
        return JSONResponse(answer, 200, headers={"Retry-After": "1"})

    async def status(request: Request) -> JSONResponse:
        org = org_of(request)
        if isinstance(org, JSONResponse):
            return org
        with state.lock:
            task = state.tasks.get(request.path_params["id"])
            if task is None or task.org != org:
                return _error(404, "TASK_NOT_FOUND", "Task not found")
            answer = state.status_body(task, full=True)
            done = task.status in ("COMPLETED", "FAILED")
        return JSONResponse(answer, headers=None if done else {"Retry-After": "1"})

    return Starlette(routes=[Route("/v1/task", submit, methods=["POST"]),
                             Route("/v1/task/{id}", status, methods=["GET"])])


@contextmanager
def serve_cloro(flags: Flags | None = None, forward: dict[str, str] | None = None,
                ) -> Iterator[tuple[str, Cloro]]:
    """Serve it on a free loopback port; yields the base URL and the state."""
    state = Cloro(flags or Flags(), dict(forward or {}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(cloro_app(state), host="127.0.0.1", port=port,
                                           log_level="warning"))
    threads = [threading.Thread(target=server.run, daemon=True),
               threading.Thread(target=state.run, daemon=True)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", state
    finally:
        server.should_exit = True
        state.stop.set()
        for t in threads:
            t.join(10)
