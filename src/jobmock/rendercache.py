"""A per-job cache of rendered poll answers: a job that has not changed since its last poll
is answered with the bytes rendered then, not rendered again.

An entry is only ever served for the very same answer an uncached render would give, so
its key holds everything a status render reads:

- the job's **state**: every field of :class:`~jobmock.records.Job` a template or the
  ``Retry-After`` rule can see (all but the poll counter and the heap generation), compared
  by value, and the length of its history (appended to, never rewritten). The engine
  assigns a job's containers (``result``, ``error``) anew; it never edits one in place;
- the **job object** and the **spec object** themselves (``is``): a job deleted and
  another created under the same id, or a scenario that swaps the spec, miss;
- the **request** as the templates see it: operation, method, path, query (its string and
  its parsed values), body and base URL;
- the **clock**, when any template of the spec reads ``{now}``/``{now_ms}``.

Faults and scenarios act on the answer after it is rendered (answer and response hooks),
on a copy: an entry is never handed out to be changed. The cache holds at most
``size`` jobs (cleared when full, so memory stays bounded) and is cleared on reset.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from typing import Any

from .records import Job

__all__ = ["RenderCache", "job_state"]

#: Job fields that never change what a render shows: the poll counter, the heap's
#: generation (bumped whenever the job is rescheduled) and the shared store's revision
#: (bumped on every assignment). ``history`` is keyed by its length.
_NOT_RENDERED = frozenset({"polls", "gen", "history", "rev"})
_STATE_FIELDS = tuple(f.name for f in dataclasses.fields(Job) if f.name not in _NOT_RENDERED)
_state: Callable[[Job], tuple[Any, ...]] = operator.attrgetter(*_STATE_FIELDS)


def job_state(job: Job) -> tuple[Any, ...]:
    """What of ``job`` a render can show, as a value to compare with ``==``."""
    return (*_state(job), len(job.history))


#: A rendered answer, kept as plain values: (status, headers, body).
Rendered = tuple[int, tuple[tuple[str, str], ...], bytes]


class RenderCache:
    """The last rendered poll answer of each job, served while nothing it depends on moved."""

    __slots__ = ("_entries", "hits", "misses", "size")

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._entries: dict[str, tuple[Job, object, tuple[Any, ...], tuple[Any, ...],
                                       Rendered]] = {}
        #: Answers served from the cache, and renders done (for benchmarks and tests).
        self.hits = 0
        self.misses = 0

    def get(self, job: Job, spec: object, key: tuple[Any, ...]) -> Rendered | None:
        """The answer rendered for ``job`` under ``spec`` and request ``key``, if ``job``
        has not changed since."""
        entry = self._entries.get(job.id)
        if (entry is not None and entry[0] is job and entry[1] is spec and entry[3] == key
                and entry[2] == job_state(job)):
            self.hits += 1
            return entry[4]
        self.misses += 1
        return None

    def put(self, job: Job, spec: object, key: tuple[Any, ...], rendered: Rendered) -> None:
        """Keep ``rendered`` as ``job``'s answer for ``key`` in its present state."""
        if len(self._entries) >= self.size and job.id not in self._entries:
            self._entries.clear()
        self._entries[job.id] = (job, spec, job_state(job), key, rendered)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
