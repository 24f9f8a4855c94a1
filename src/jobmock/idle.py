"""A guard for in-process tests: a poll loop on a job that nothing moves fails, with a hint.

On a virtual clock nothing happens until the test moves time. A client that polls in a
loop while nobody advances the clock (or forces the job, under ``manual``) would poll
forever; :class:`IdlePolls` counts the polls of one job that saw neither the clock nor the
job move, and after ``limit`` of them raises :class:`StuckPolling` naming the job and
what would move it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .dispatch import Mock

__all__ = ["IdlePolls", "StuckPolling"]


class StuckPolling(AssertionError):
    """A job was polled many times while nothing could move it."""


class IdlePolls:
    """Counts polls of each job that found the virtual clock and the job where they were."""

    def __init__(self, mock: Mock, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"max_idle_polls must be at least 1 (or None to switch it off), "
                             f"got {limit}")
        self.mock = mock
        self.limit = limit
        #: job id -> (clock time, the job's state) at the last poll, and the idle count.
        self._last: dict[str, tuple[float, tuple[object, ...], int]] = {}

    def polled(self, job_id: str) -> None:
        """Note one answered poll of ``job_id``; raise when it is the ``limit``-th idle one."""
        mock = self.mock
        if mock.clock.speed != 0:
            return
        job = mock.engine.get(job_id)
        if job is None or mock.spec.lifecycle.is_terminal(job.status):
            self._last.pop(job_id, None)
            return
        now = mock.clock.now()
        state = (job.status, job.progress_pct, job.updated_at, job.gen)
        before = self._last.get(job_id)
        count = before[2] + 1 if before is not None and before[:2] == (now, state) else 0
        self._last[job_id] = (now, state, count)
        if count >= self.limit:
            self._last.pop(job_id, None)
            manual = job.advance.mode == "manual"
            how = ("its advance mode is manual: force it (api.force(job_id, status)) or "
                   "switch the mode" if manual else
                   "move the clock: api.advance(seconds), pass api.sleep (or api.asleep) to "
                   "the client as its sleep function, or mock with auto_advance='retry-after'")
            raise StuckPolling(
                f"job {job_id} was polled {count + 1} times while the virtual clock stood "
                f"still and the job stayed {job.status!r}: nothing moves a virtual clock by "
                f"itself, so this loop would never end. To let it finish, {how}. "
                f"(max_idle_polls={self.limit}; None switches this guard off.)")

    def reset(self) -> None:
        self._last.clear()
