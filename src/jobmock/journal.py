"""The request journal: a bounded ring buffer of what the mock was asked and answered."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Journal", "JournalEntry"]


@dataclass(frozen=True, slots=True)
class JournalEntry:
    seq: int
    at: float
    method: str
    path: str
    query: str
    headers: dict[str, str]
    status: int
    operation: str | None
    tenant: str | None
    job_id: str | None
    duration_ms: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Journal:
    """The last ``size`` requests (older ones fall off, so memory stays flat under load)."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._entries: deque[JournalEntry] = deque(maxlen=size)
        self._seq = 0

    def record(self, **fields: Any) -> JournalEntry:
        self._seq += 1
        entry = JournalEntry(seq=self._seq, **fields)
        self._entries.append(entry)
        return entry

    @property
    def total(self) -> int:
        """Requests recorded since the last clear, including those that fell off."""
        return self._seq

    def __iter__(self) -> Iterator[JournalEntry]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
        self._seq = 0
