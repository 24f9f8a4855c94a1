"""Where jobs live: a small interface, and the in-memory store that is the default."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from .records import Job

__all__ = ["JobStore", "MemoryStore"]


class JobStore(Protocol):
    """The engine's state store. A shared store (Redis) implements the same methods."""

    def get(self, job_id: str) -> Job | None: ...

    def put(self, job: Job) -> None: ...

    def delete(self, job_id: str) -> None: ...

    def __iter__(self) -> Iterator[Job]: ...

    def __len__(self) -> int: ...

    def clear(self) -> None: ...


class MemoryStore:
    """Jobs in a dict, in submission order."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def put(self, job: Job) -> None:
        self._jobs[job.id] = job

    def delete(self, job_id: str) -> None:
        self._jobs.pop(job_id, None)

    def __iter__(self) -> Iterator[Job]:
        return iter(list(self._jobs.values()))

    def __len__(self) -> int:
        return len(self._jobs)

    def clear(self) -> None:
        self._jobs.clear()
