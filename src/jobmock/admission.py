"""Admission: a request's work waits its turn, so the event loop never stalls for long.

One event loop serves every request, the ticker that fires due transitions, and the answers
to held inline waits. asyncio runs, in one pass of the loop, every callback that was ready
when the pass began. A burst of 10,000 submits arriving at once made one pass several
seconds long (each submit validates and renders for about 0.3 ms), and a job that ended
meanwhile had its answer sent only after the pass: seconds late.

:class:`Admission` gives the requests' synchronous work a time budget per pass of the loop
(:data:`PASS_BUDGET`). A request that arrives when the pass has spent its budget, or while
others wait, waits in line (first come, first served) and is let in on a later pass. The
ticker and the held answers are never in that line, so they run at most about one budget
after they are due, however many requests arrive. Every pass admits at least one request,
so the line always moves; a server that is not overloaded sees no difference (the first
request of each pass goes straight in, and a pass of a few polls never spends the budget).

There is one :class:`Admission` per event loop (:func:`admission`), shared by every app on
it (a ``jobmock serve`` process's sessions share its one loop).
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from time import perf_counter

__all__ = ["PASS_BUDGET", "Admission", "admission"]

#: Seconds of admitted requests' work per pass of the event loop.
PASS_BUDGET = 0.010
#: Waiting requests let in per pass at most (each checks the budget again when it runs).
RELEASE_BATCH = 64
#: Passes a request waits at most before it goes in regardless (a bound, not a policy).
MAX_PASSES = 100_000


class Admission:
    """The line of requests waiting for their share of one event loop."""

    def __init__(self, *, budget: float = PASS_BUDGET, batch: int = RELEASE_BATCH) -> None:
        # No reference to the loop: the line is the value of a weak-keyed map from its loop.
        self._budget = budget
        self._batch = batch
        #: When this pass admitted its first request (None: none yet).
        self._first: float | None = None
        self._waiting: deque[asyncio.Future[None]] = deque()
        #: Let in by the pump but not yet run (they go before anyone who arrives meanwhile).
        self._released = 0
        #: Let in but found the budget spent: back to the head of the line, in order.
        self._again: list[asyncio.Future[None]] = []
        self._pump_due = False

    @property
    def waiting(self) -> int:
        """Requests in line now."""
        return len(self._waiting) + len(self._again) + self._released

    def admit(self) -> bool:
        """True: go on now. False: ``await wait()`` first."""
        if self._waiting or self._released or self._again:
            return False
        return self._take()

    async def wait(self) -> None:
        """Wait in line until a pass of the loop has budget for this request."""
        fut = self._enqueue(self._waiting)
        for _ in range(MAX_PASSES):
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self._released -= 1  # let in, then cancelled before it ran
                raise
            self._released -= 1
            if self._take():
                return
            fut = self._enqueue(self._again)

    def _take(self) -> bool:
        now = perf_counter()
        if self._first is None:
            self._first = now
            asyncio.get_running_loop().call_soon(self._new_pass)
            return True
        return now - self._first < self._budget

    def _new_pass(self) -> None:
        self._first = None

    def _enqueue(self, line: deque[asyncio.Future[None]] | list[asyncio.Future[None]],
                 ) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        line.append(fut)
        if not self._pump_due:
            self._pump_due = True
            asyncio.get_running_loop().call_soon(self._pump)
        return fut

    def _pump(self) -> None:
        self._pump_due = False
        if self._again:
            self._waiting.extendleft(reversed(self._again))
            self._again.clear()
        let_in = 0
        while self._waiting and let_in < self._batch:
            fut = self._waiting.popleft()
            if fut.done():  # cancelled: its client went away
                continue
            fut.set_result(None)
            self._released += 1
            let_in += 1
        if self._waiting:
            self._pump_due = True
            asyncio.get_running_loop().call_soon(self._pump)


_ADMISSIONS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Admission] = \
    weakref.WeakKeyDictionary()


def admission() -> Admission:
    """The running event loop's admission line (made on first use)."""
    loop = asyncio.get_running_loop()
    found = _ADMISSIONS.get(loop)
    if found is None:
        found = _ADMISSIONS[loop] = Admission()
    return found
