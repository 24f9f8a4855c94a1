"""A mock's shared state as bytes, and back: what replicas on one store agree on.

:func:`capture` takes what every replica of a mock must agree on: the jobs, the engine's
schedule of due transitions and webhook attempts, queues, gates, idempotency keys, credits,
id and outcome generators, the clock's time (a virtual clock's reading, a sped-up clock's
origin) and the webhook deliveries. :func:`restore` puts it into another :class:`Mock` of
the same spec, keeping what belongs to that process only: its held inline waits and
clock-time delays (callbacks into its own event loop), its webhook attempts waiting for a
sender, its journal, faults and scenario.

The bytes are a pickle in which the live objects (the engine, the delivery book, the spec,
the clock) are named, not copied, and read back by an unpickler that builds only jobmock's
own records and a few standard containers: never arbitrary classes, never code.
"""

from __future__ import annotations

import heapq
import io
import pickle
from typing import Any

from .clock import ScaledClock, VirtualClock
from .dispatch import Mock
from .engine import CALL_KIND, DEADLINE_KIND, Engine
from .store import MemoryStore

__all__ = ["SnapshotError", "capture", "restore"]

#: Engine attributes replicas share (the heap is filtered: see _shared_heap).
_ENGINE_FIELDS = ("seed", "retain", "rng", "_ids", "_counter", "_seq", "_queued", "_running",
                  "_waiting", "_gates", "_idempotency", "_now", "_balances", "_held", "advance")
#: Delivery-book attributes replicas share.
_BOOK_FIELDS = ("_deliveries", "_by_job", "_orphans", "_seq", "_run", "_issued", "_gone", "_busy",
                "_waiting",
                "mode", "record_status", "allow_hosts", "retries_enabled")
#: (module, name) pairs the unpickler may build: jobmock's records and standard containers.
_ALLOWED = {
    ("builtins", "getattr"), ("builtins", "set"), ("builtins", "frozenset"),
    ("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple"),
    ("collections", "deque"), ("functools", "partial"), ("random", "Random"),
    ("copyreg", "_reconstructor"), ("builtins", "object"),
}
_ALLOWED_MODULES = ("jobmock.records", "jobmock.webhooks", "jobmock.engine", "jobmock.ids",
                    "jobmock.webhookspec", "jobmock.specmodel")


class SnapshotError(ValueError):
    """Bytes that are not a snapshot of this mock."""


def _shared_heap(engine: Engine) -> list[tuple[Any, ...]]:
    """The schedule's entries every replica shares: transitions and shared timers (webhook
    attempts), not this process's inline-wait deadlines or local timers."""
    return [e for e in engine._heap
            if e[2] != DEADLINE_KIND and (e[2] != CALL_KIND or (e[5].shared and not e[5].done))]


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, mock: Mock) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._live = {id(mock): "mock", id(mock.engine): "engine", id(mock.spec): "spec",
                      id(mock.clock): "clock"}
        if mock.webhooks is not None:
            self._live[id(mock.webhooks)] = "book"

    def persistent_id(self, obj: Any) -> str | None:
        return self._live.get(id(obj))


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, mock: Mock) -> None:
        super().__init__(file)
        self._live: dict[str, Any] = {"mock": mock, "engine": mock.engine, "spec": mock.spec,
                                      "clock": mock.clock, "book": mock.webhooks}

    def persistent_load(self, pid: Any) -> Any:
        if pid not in self._live or self._live[pid] is None:
            raise SnapshotError(f"the snapshot names {pid!r}, which this mock does not have")
        return self._live[pid]

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED or module in _ALLOWED_MODULES:
            return super().find_class(module, name)
        raise SnapshotError(f"a snapshot may not build {module}.{name}")


def capture(mock: Mock) -> bytes:
    """The state replicas of ``mock`` share, as bytes (see the module docstring)."""
    engine = mock.engine
    store = engine.store
    if not isinstance(store, MemoryStore):
        raise TypeError("only a mock on the in-memory job store can be captured")
    clock = mock.clock
    state: dict[str, Any] = {
        "spec": mock.spec.name,
        "engine": {name: getattr(engine, name) for name in _ENGINE_FIELDS},
        "heap": _shared_heap(engine),
        "jobs": store._jobs,
        "clock": (clock.now() if isinstance(clock, VirtualClock)
                  else clock.origin if isinstance(clock, ScaledClock) else None),
    }
    if mock.webhooks is not None:
        state["book"] = {name: getattr(mock.webhooks, name) for name in _BOOK_FIELDS}
    buffer = io.BytesIO()
    _Pickler(buffer, mock).dump(state)
    return buffer.getvalue()


def restore(mock: Mock, data: bytes) -> None:
    """Put the shared state ``data`` (from :func:`capture` of a mock of the same spec) into
    ``mock``, keeping its process-local entries (see the module docstring)."""
    try:
        state = _Unpickler(io.BytesIO(data), mock).load()
    except SnapshotError:
        raise
    except Exception as exc:  # a truncated or foreign value: never a half-restored mock
        raise SnapshotError(f"not a jobmock snapshot: {type(exc).__name__}: {exc}") from exc
    if not isinstance(state, dict) or state.get("spec") != mock.spec.name:
        raise SnapshotError(f"the snapshot is not of {mock.spec.name!r}")
    engine = mock.engine
    local = [e for e in engine._heap if e[2] == DEADLINE_KIND
             or (e[2] == CALL_KIND and not e[5].shared and not e[5].done)]
    for name, value in state["engine"].items():
        setattr(engine, name, value)
    heap: list[tuple[Any, ...]] = list(state["heap"])
    for entry in local:  # renumbered after the shared ones: never an equal key
        engine._counter += 1
        heap.append((entry[0], engine._counter, *entry[2:]))
    heapq.heapify(heap)
    engine._heap = heap
    store = engine.store
    assert isinstance(store, MemoryStore)
    store._jobs = state["jobs"]
    clock = mock.clock
    if isinstance(clock, VirtualClock) and isinstance(state["clock"], float):
        clock._now = state["clock"]
    elif isinstance(clock, ScaledClock) and isinstance(state["clock"], float) \
            and clock.origin != state["clock"]:
        clock.adopt(state["clock"])  # once, when joining: then it runs on by itself
    if mock.webhooks is not None and "book" in state:
        for name, value in state["book"].items():
            setattr(mock.webhooks, name, value)
    engine.after_restore()
