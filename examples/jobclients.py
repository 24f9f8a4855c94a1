"""Two small, realistic clients of asynchronous job APIs, the kind a team writes and unit-tests.

- :class:`CromaClient` (sync, ``httpx.Client``): a registry lookup that waits inline
  (``Prefer: wait=N``) and, when the wait runs out (202), polls ``GET /jobs/{id}``
  honouring ``Retry-After``.
- :class:`CloroClient` (async, ``httpx.AsyncClient``): submits an AI-search task, backs off
  on a 429 (queue full) as ``Retry-After`` asks, then polls ``GET /v1/task/{id}`` or lets
  a webhook deliver the result (:class:`CloroWebhookEndpoint`, the app's receiving side).

Neither knows about jobmock: time is injected (``sleep``), which is what lets a test run a
30-minute schedule in milliseconds on jobmock's virtual clock.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

__all__ = ["CloroClient", "CloroWebhookEndpoint", "CromaClient", "JobError", "JobExpired",
           "JobFailed"]


class JobError(Exception):
    """The API answered an error, or the job did not end well."""

    def __init__(self, message: str, *, job_id: str | None = None, status: int | None = None,
                 body: Any = None) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.status = status
        self.body = body


class JobFailed(JobError):
    """The job ended without a result."""


class JobExpired(JobError):
    """The job expired before it could run or finish."""


def _retry_after(response: httpx.Response, default: float) -> float:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.strip().isdigit() else default


# -- croma: sync, inline wait then polling ----------------------------------------------------------


class CromaClient:
    """Croma registry lookups (``POST /v1/lookups/{source}``)."""

    def __init__(self, api_key: str, base_url: str = "https://api.croma.example", *,
                 wait: int = 55, sleep: Callable[[float], None] = time.sleep,
                 max_polls: int = 500) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=wait + 10,
                                 headers={"Authorization": f"Bearer {api_key}"})
        self.wait = wait
        self.sleep = sleep
        self.max_polls = max_polls

    def close(self) -> None:
        self.http.close()

    def lookup(self, source: str, document_type: str, document_number: str) -> dict[str, Any]:
        """Run a lookup to its end and return its data; raises :class:`JobError` otherwise."""
        r = self.http.post(f"/v1/lookups/{source}", headers={"Prefer": f"wait={self.wait}"},
                           json={"document_type": document_type,
                                 "document_number": document_number})
        if r.status_code == 200:
            body = r.json()
            if set(body) == {"data"}:
                return dict(body["data"])
            return self._ended(body)  # ended badly within the wait: the job envelope
        if r.status_code == 202:
            return self.wait_for(r.json()["id"], first_delay=_retry_after(r, 2))
        job_id = r.headers.get("X-Job-Id")
        if job_id and r.status_code in (502, 503, 504):
            # Ended badly within the wait, answered like a synchronous endpoint: 502 failed
            # (the job's error), 503 canceled, 504 expired.
            error = self._error(r, job_id)
            if r.status_code == 504:
                raise JobExpired(f"job {job_id} expired", job_id=job_id, body=r.text)
            raise JobFailed(str(error), job_id=job_id, status=r.status_code, body=r.text)
        raise self._error(r)

    def submit(self, source: str, document_type: str, document_number: str,
               callback_url: str | None = None) -> str:
        """Start a lookup without waiting; returns the job id."""
        body: dict[str, Any] = {"document_type": document_type, "document_number": document_number}
        if callback_url:
            body["callback_url"] = callback_url
        r = self.http.post(f"/v1/lookups/{source}", headers={"Prefer": "wait=0"}, json=body)
        if r.status_code != 202:
            raise self._error(r)
        return str(r.json()["id"])

    def wait_for(self, job_id: str, first_delay: float = 2) -> dict[str, Any]:
        """Poll a job until it ends, as often as ``Retry-After`` allows."""
        delay = first_delay
        for _ in range(self.max_polls):
            self.sleep(delay)
            r = self.http.get(f"/jobs/{job_id}")
            if r.status_code != 200:
                raise self._error(r, job_id)
            body = r.json()
            if body["status"] in ("queued", "running"):
                delay = _retry_after(r, 2)
                continue
            return self._ended(body)
        raise JobError(f"job {job_id} did not end after {self.max_polls} polls", job_id=job_id)

    def _ended(self, body: dict[str, Any]) -> dict[str, Any]:
        status, job_id = body["status"], body.get("id")
        if status == "completed":
            return dict(body["data"])
        if status == "expired":
            raise JobExpired(f"job {job_id} expired", job_id=job_id, body=body)
        error = body.get("error") or {}
        raise JobFailed(f"job {job_id} {status}: {error.get('message', 'no reason given')}",
                        job_id=job_id, body=body)

    @staticmethod
    def _error(r: httpx.Response, job_id: str | None = None) -> JobError:
        try:
            message = r.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = r.text[:200]
        return JobError(f"croma answered {r.status_code}: {message}", job_id=job_id,
                        status=r.status_code, body=r.text)


# -- cloro: async, 429 back-off, polling or webhook --------------------------------------------------


class CloroClient:
    """cloro AI-search tasks (``POST /v1/task``, ``GET /v1/task/{id}``)."""

    def __init__(self, api_key: str, base_url: str = "https://api.cloro.dev", *,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 max_polls: int = 500, max_submit_tries: int = 5) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=30,
                                      headers={"Authorization": f"Bearer {api_key}"})
        self.sleep = sleep
        self.max_polls = max_polls
        self.max_submit_tries = max_submit_tries

    async def aclose(self) -> None:
        await self.http.aclose()

    async def submit(self, prompt: str, *, task_type: str = "CHATGPT", country: str | None = None,
                     webhook_url: str | None = None, idempotency_key: str | None = None,
                     ) -> dict[str, Any]:
        """Queue a task; returns the acknowledgment's ``task``. Waits out a full queue."""
        task, _ = await self._submit(prompt, task_type=task_type, country=country,
                                     webhook_url=webhook_url, idempotency_key=idempotency_key)
        return task

    async def _submit(self, prompt: str, *, task_type: str = "CHATGPT",
                      country: str | None = None, webhook_url: str | None = None,
                      idempotency_key: str | None = None) -> tuple[dict[str, Any], float]:
        payload: dict[str, Any] = {"prompt": prompt}
        if country:
            payload["country"] = country
        body: dict[str, Any] = {"taskType": task_type, "payload": payload}
        if webhook_url:
            body["webhook"] = {"url": webhook_url}
        if idempotency_key:
            body["idempotencyKey"] = idempotency_key
        for _ in range(self.max_submit_tries):
            r = await self.http.post("/v1/task", json=body)
            if r.status_code == 429:  # the queue is full: come back when asked
                await self.sleep(_retry_after(r, 60))
                continue
            if r.status_code != 200:
                raise self._error(r)
            return dict(r.json()["task"]), _retry_after(r, 5)
        raise JobError(f"cloro's queue stayed full after {self.max_submit_tries} tries",
                       status=429)

    async def result(self, task_id: str, first_delay: float = 0.0) -> dict[str, Any]:
        """Poll a task until it ends; returns its ``response`` (the full result)."""
        delay = first_delay
        for _ in range(self.max_polls):
            if delay:
                await self.sleep(delay)
            r = await self.http.get(f"/v1/task/{task_id}")
            if r.status_code != 200:
                raise self._error(r, task_id)
            body = r.json()
            status = body["task"]["status"]
            if status == "COMPLETED":
                return dict(body["response"])
            if status == "FAILED":
                raise JobFailed(f"task {task_id} failed: {body['error']['message']}",
                                job_id=task_id, body=body)
            delay = _retry_after(r, 5)
        raise JobError(f"task {task_id} did not end after {self.max_polls} polls", job_id=task_id)

    async def ask(self, prompt: str, **options: Any) -> dict[str, Any]:
        """Submit a task and wait for its result."""
        task, delay = await self._submit(prompt, **options)
        return await self.result(task["id"], first_delay=delay)

    @staticmethod
    def _error(r: httpx.Response, task_id: str | None = None) -> JobError:
        try:
            message = r.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = r.text[:200]
        return JobError(f"cloro answered {r.status_code}: {message}", job_id=task_id,
                        status=r.status_code, body=r.text)


class CloroWebhookEndpoint:
    """The app's side of cloro's webhook: store each finished task's result by id.

    ``handle(body) -> status``: what a web framework's view would do with the POSTed body.
    Answers 200 at once (and 400 for a body it cannot read): cloro retries anything else.
    """

    def __init__(self) -> None:
        self.results: dict[str, dict[str, Any]] = {}
        self.failures: dict[str, dict[str, Any]] = {}

    def handle(self, body: bytes) -> int:
        try:
            data = json.loads(body)
            task = data["task"]
        except (ValueError, KeyError, TypeError):
            return 400
        if task["status"] == "COMPLETED":
            self.results[task["id"]] = data["response"]
        else:
            self.failures[task["id"]] = data.get("error") or {}
        return 200
