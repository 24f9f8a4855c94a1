"""Webhook senders: the adapters that do the I/O for a :class:`~jobmock.webhooks.DeliveryBook`.

- :class:`AsyncSender` (the server's): each attempt is its own asyncio task behind a
  semaphore, so a slow or dead receiver never delays another delivery or a request.
- :class:`SyncSender` (in-process use): sends each attempt at once with an
  ``httpx.Client``, so a virtual-clock test sees every attempt as it advances the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from .urlrules import check_resolved
from .webhooks import Attempt, Delivery, DeliveryBook

__all__ = ["AsyncSender", "SyncSender"]


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timeout: {type(exc).__name__}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


#: The longest ``Retry-After`` a receiver can ask for (a day): a bound, not a schedule.
MAX_RETRY_AFTER = 86_400.0


def retry_after(response: httpx.Response) -> float | None:
    """Seconds a receiver's ``Retry-After`` asks for (delay-seconds or an HTTP date), or None."""
    value = (response.headers.get("retry-after") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return min(max(0.0, when - time.time()), MAX_RETRY_AFTER)


def _refused(book: DeliveryBook, delivery: Delivery, attempt: Attempt, host: str,
             infos: list[Any]) -> bool:
    """Report ``attempt`` refused if ``host`` resolved to a private address."""
    why = check_resolved(host, [str(info[4][0]) for info in infos])
    if why:
        book.report(delivery, attempt, error=f"refused: {why}")
    return why is not None


class SyncSender:
    """Sends each attempt immediately, blocking, with an ``httpx.Client``."""

    def __init__(self, book: DeliveryBook, client: httpx.Client | None = None,
                 timeout: float | None = None) -> None:
        self.book = book
        self.timeout = timeout if timeout is not None else book.timeout
        self.client = client or httpx.Client(timeout=self.timeout, follow_redirects=False)
        book.set_sender(self)

    def __call__(self, delivery: Delivery, attempt: Attempt) -> None:
        host = self.book.host_to_resolve(delivery.url)
        if host is not None:
            try:
                infos = socket.getaddrinfo(host, None)
            except OSError:
                infos = []  # unresolvable here: let the client report it
            if _refused(self.book, delivery, attempt, host, infos):
                return
        try:
            response = self.client.post(delivery.url, content=delivery.body,
                                        headers=attempt.headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            self.book.report(delivery, attempt, error=_describe(exc))
        else:
            self.book.report(delivery, attempt, status=response.status_code,
                             retry_after=retry_after(response))

    def close(self) -> None:
        self.book.set_sender(None)
        self.client.close()


class AsyncSender:
    """Sends attempts concurrently from the running event loop."""

    def __init__(self, book: DeliveryBook, *, timeout: float | None = None,
                 concurrency: int = 32,
                 turn: Callable[[], AbstractAsyncContextManager[None]] | None = None) -> None:
        self.book = book
        #: Where an answer is recorded: a turn on a shared store (jobmock.redisstore).
        self._turn = turn
        self.timeout = timeout if timeout is not None else book.timeout
        self._client: httpx.AsyncClient | None = None
        self._concurrency = concurrency
        self._limit = asyncio.Semaphore(concurrency)
        self._loop: asyncio.AbstractEventLoop | None = None
        with contextlib.suppress(RuntimeError):
            self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[None]] = set()
        book.set_sender(self)

    def __call__(self, delivery: Delivery, attempt: Attempt) -> None:
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None and (self._loop is None or running is self._loop):
            self._loop = running
            self._spawn(delivery, attempt)
        elif self._loop is not None:  # called from another thread (a test moving the clock)
            self._loop.call_soon_threadsafe(self._spawn, delivery, attempt)
        else:
            self.book.report(delivery, attempt, error="no event loop to send from")

    def _spawn(self, delivery: Delivery, attempt: Attempt) -> None:
        task = asyncio.get_running_loop().create_task(self._send(delivery, attempt))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, delivery: Delivery, attempt: Attempt) -> None:
        async with self._limit:
            if self._client is None:
                # The semaphore bounds concurrency; the pool must never be the bottleneck,
                # and waiting for a pooled connection is not the receiver's time.
                limits = httpx.Limits(max_connections=self._concurrency,
                                      max_keepalive_connections=self._concurrency)
                self._client = httpx.AsyncClient(follow_redirects=False, limits=limits)
            timeout = httpx.Timeout(self.timeout, pool=None)
            host = self.book.host_to_resolve(delivery.url)
            if host is not None:
                try:
                    infos = await asyncio.get_running_loop().getaddrinfo(host, None)
                except OSError:
                    infos = []  # unresolvable here: let the client report it
                why = check_resolved(host, [str(info[4][0]) for info in infos])
                if why:
                    await self._report(delivery, attempt, error=f"refused: {why}")
                    return
            try:
                response = await self._client.post(delivery.url, content=delivery.body,
                                                   headers=attempt.headers, timeout=timeout)
            except httpx.HTTPError as exc:
                await self._report(delivery, attempt, error=_describe(exc))
            except Exception as exc:  # a bad URL must not kill the sender
                await self._report(delivery, attempt, error=_describe(exc))
            else:
                await self._report(delivery, attempt, status=response.status_code,
                                   retry_after=retry_after(response))

    async def _report(self, delivery: Delivery, attempt: Attempt, **answer: Any) -> None:
        """Record the answer; on a shared store in a turn, to the book's current objects."""
        if self._turn is None:
            self.book.report(delivery, attempt, **answer)
            return
        async with self._turn():
            found = self.book.resolve(delivery.id, attempt.number)
            if found is not None:
                self.book.report(*found, **answer)

    async def drain(self) -> None:
        """Wait until every attempt in flight has its answer."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        self.book.set_sender(None)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()
