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
    #: The Retry-After value answered, if any (client-behaviour checks read it).
    retry_after: str | None = None
    #: The status word of the job the answer showed, if it showed one.
    job_status: str | None = None
    #: CRC-32 of the request body (0 for none): tells a repeated request from a new one.
    body_crc: int = 0

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

    def last(self) -> JournalEntry | None:
        """The latest entry, or None."""
        return self._entries[-1] if self._entries else None

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
