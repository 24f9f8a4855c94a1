"""A mock's shared state as bytes, and back: what replicas on one store agree on.

:func:`capture` takes what every replica of a mock must agree on, as a small *core* and
one record per job and per webhook delivery: the jobs, the engine's
schedule of due transitions and webhook attempts, queues, gates, idempotency keys, credits,
id and outcome generators, the clock's time (a virtual clock's reading, a sped-up clock's
origin) and the webhook deliveries. :func:`restore` puts it into another :class:`Mock` of
the same spec, keeping what belongs to that process only: its held inline waits and
clock-time delays (callbacks into its own event loop), its webhook attempts waiting for a
sender, its journal, faults and scenario.

The bytes are a pickle of plain records (a shared timer's callback is kept as the name of
the engine's or the book's method and its arguments), read back by an unpickler that
builds only jobmock's own records and a few standard containers: never arbitrary classes,
never code.
"""

from __future__ import annotations

import functools
import heapq
import io
import pickle
import random
from array import array
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .clock import ScaledClock, VirtualClock
from .dispatch import Mock
from .engine import CALL_KIND, DEADLINE_KIND, Engine, Timer
from .records import Job
from .store import MemoryStore
from .webhooks import Delivery

__all__ = ["Snapshot", "SnapshotError", "Tracker", "capture", "local_entries", "restore"]

#: Engine attributes replicas share (the heap is filtered: see _shared_heap).
_ENGINE_FIELDS = ("seed", "retain", "rng", "_ids", "_counter", "_seq", "_queued", "_running",
                  "_waiting", "_gates", "_idempotency", "_now", "_balances", "_held", "advance")
#: Delivery-book attributes replicas share.
_BOOK_FIELDS = ("_by_job", "_orphans", "_seq", "_run", "_issued", "_gone",
                "mode", "record_status", "allow_hosts", "retries_enabled")
#: (module, name) pairs the unpickler may build: jobmock's records and standard containers.
_ALLOWED = {
    ("builtins", "getattr"), ("builtins", "set"), ("builtins", "frozenset"),
    ("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple"),
    ("collections", "deque"), ("functools", "partial"), ("random", "Random"),
    ("copyreg", "_reconstructor"), ("builtins", "object"), ("jobmock.snapshot", "_random_back"),
}
_ALLOWED_MODULES = ("jobmock.records", "jobmock.webhooks", "jobmock.engine", "jobmock.ids",
                    "jobmock.webhookspec", "jobmock.specmodel")


class SnapshotError(ValueError):
    """Bytes that are not a snapshot of this mock."""


def _is_local(entry: tuple[Any, ...]) -> bool:
    """Whether a heap entry belongs to this process: an inline wait's deadline or a timer
    that is not shared (a callback into its own event loop)."""
    return entry[2] == DEADLINE_KIND or (entry[2] == CALL_KIND and not entry[5].shared)


def _shared_heap(engine: Engine) -> list[tuple[Any, ...]]:
    """The schedule's entries every replica shares: transitions and shared timers (webhook
    attempts), not this process's inline-wait deadlines or local timers."""
    return [e for e in engine._heap
            if not _is_local(e) and not (e[2] == CALL_KIND and e[5].done)]


def local_entries(engine: Engine) -> list[tuple[Any, ...]]:
    """This process's pending entries: held inline waits' deadlines and local timers."""
    return [e for e in engine._heap if _is_local(e) and not e[5].done]


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED or module in _ALLOWED_MODULES:
            return super().find_class(module, name)
        raise SnapshotError(f"a snapshot may not build {module}.{name}")


def _timer_entry(mock: Mock, entry: tuple[Any, ...]) -> tuple[Any, ...]:
    """A shared timer's heap entry with its callback named, not pickled: (owner, method,
    arguments) of the ``functools.partial`` of the engine's or the book's method."""
    timer: Timer = entry[5]
    callback = timer.callback
    if not isinstance(callback, functools.partial):
        raise TypeError(f"a shared timer's callback must be a functools.partial, got {callback!r}")
    bound = callback.func
    owner = getattr(bound, "__self__", None)
    name = "book" if owner is mock.webhooks and owner is not None else \
        "engine" if owner is mock.engine else None
    if name is None:
        raise TypeError("a shared timer must call a method of the engine or the delivery book")
    return (*entry[:5], (timer.when, name, bound.__name__, callback.args))


def _timer_back(mock: Mock, entry: tuple[Any, ...]) -> tuple[Any, ...]:
    when, name, method, args = entry[5]
    owner = mock.webhooks if name == "book" else mock.engine
    if owner is None or not isinstance(method, str) or method.startswith("__"):
        raise SnapshotError(f"a shared timer names {name}.{method!r}, which this mock lacks")
    callback = functools.partial(getattr(owner, method), *args)
    return (*entry[:5], Timer(when, callback, shared=True))


@dataclass
class Snapshot:
    """A mock's shared state: the core, and each job and delivery pickled on its own."""

    core: bytes
    jobs: dict[str, bytes] = field(default_factory=dict)
    deliveries: dict[str, bytes] = field(default_factory=dict)


def _dump(value: Any) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


#: A generator's state as last written: (state, bytes) by the generator's id. A turn that
#: drew nothing writes the same bytes without pickling 625 numbers again.
_RANDOM_BYTES: dict[int, tuple[tuple[Any, ...], bytes]] = {}
#: Bytes of a Mersenne Twister's words (624 and the position) as an array of uint32.
_MT_BYTES = 625 * 4


def _random_back(version: int, words: bytes, gauss: float | None) -> random.Random:
    """The generator :class:`_CorePickler` wrote (the unpickler may build only this)."""
    if version != 3 or not isinstance(words, bytes) or len(words) != _MT_BYTES \
            or not isinstance(gauss, float | None):
        raise SnapshotError("a generator's state is not one")
    rng = random.Random()
    rng.setstate((version, tuple(array("I", words)), gauss))
    return rng


class _CorePickler(pickle.Pickler):
    """Pickles the core; a generator as its words' bytes, reused while its state holds."""

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is not random.Random:
            return NotImplemented
        state = obj.getstate()
        found = _RANDOM_BYTES.get(id(obj))
        if found is None or found[0] != state:
            if len(_RANDOM_BYTES) > 64:
                _RANDOM_BYTES.clear()
            found = _RANDOM_BYTES[id(obj)] = (state, array("I", state[1]).tobytes())
        return _random_back, (state[0], found[1], state[2])


def _dump_core(value: Any) -> bytes:
    buffer = io.BytesIO()
    _CorePickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    return buffer.getvalue()


def _load(data: bytes) -> Any:
    try:
        return _Unpickler(io.BytesIO(data)).load()
    except SnapshotError:
        raise
    except Exception as exc:  # a truncated or foreign value: never a half-restored mock
        raise SnapshotError(f"not a jobmock snapshot: {type(exc).__name__}: {exc}") from exc


def _core(mock: Mock) -> bytes:
    engine = mock.engine
    clock = mock.clock
    state: dict[str, Any] = {
        "spec": mock.spec.name,
        "engine": {name: getattr(engine, name) for name in _ENGINE_FIELDS},
        "heap": [_timer_entry(mock, e) if e[2] == CALL_KIND else e
                 for e in _shared_heap(engine)],
        "clock": (clock.now() if isinstance(clock, VirtualClock)
                  else clock.origin if isinstance(clock, ScaledClock) else None),
    }
    book = mock.webhooks
    if book is not None:
        fields = {name: getattr(book, name) for name in _BOOK_FIELDS}
        # Deliveries are records of their own: the core names them by id.
        fields["_busy"] = {job: d.id for job, d in book._busy.items()}
        fields["_waiting"] = {job: [d.id for d in q] for job, q in book._waiting.items()}
        state["book"] = fields
    return _dump_core(state)


def _jobs(mock: Mock) -> dict[str, Job]:
    store = mock.engine.store
    if not isinstance(store, MemoryStore):
        raise TypeError("only a mock on the in-memory job store can be captured")
    return store._jobs


def _deliveries(mock: Mock) -> dict[str, Delivery]:
    return mock.webhooks._deliveries if mock.webhooks is not None else {}


def capture(mock: Mock) -> Snapshot:
    """The state replicas of ``mock`` share (see the module docstring)."""
    return Snapshot(_core(mock), {k: _dump(j) for k, j in _jobs(mock).items()},
                    {k: _dump(d) for k, d in _deliveries(mock).items()})


def restore(mock: Mock, snapshot: Snapshot) -> None:
    """Make ``mock``'s shared state ``snapshot`` (from :func:`capture` of a mock of the same
    spec), keeping its process-local entries (see the module docstring)."""
    apply(mock, snapshot.core, snapshot.jobs, snapshot.deliveries, full=True)


def apply(mock: Mock, core: bytes, jobs: Mapping[str, bytes | None],
          deliveries: Mapping[str, bytes | None], *, full: bool = False) -> None:
    """Put a state into ``mock``: ``core``, and the jobs and deliveries given (None: it is
    gone); with ``full``, every other job and delivery is gone too."""
    state = _load(core)
    if not isinstance(state, dict) or state.get("spec") != mock.spec.name:
        raise SnapshotError(f"the snapshot is not of {mock.spec.name!r}")
    new_jobs = {k: (_load(v) if v is not None else None) for k, v in jobs.items()}
    new_deliveries = {k: (_load(v) if v is not None else None) for k, v in deliveries.items()}
    if not all(isinstance(j, Job | None) for j in new_jobs.values()) or \
            not all(isinstance(d, Delivery | None) for d in new_deliveries.values()):
        raise SnapshotError("a job or delivery record is not one")
    engine = mock.engine
    local = local_entries(engine)
    for name, value in state["engine"].items():
        setattr(engine, name, value)
    heap = [_timer_back(mock, e) if e[2] == CALL_KIND else e for e in state["heap"]]
    for entry in local:  # renumbered after the shared ones: never an equal key
        engine._counter += 1
        heap.append((entry[0], engine._counter, *entry[2:]))
    heapq.heapify(heap)
    engine._heap = heap
    _merge(_jobs(mock), new_jobs, full, key=lambda j: j.seq)
    clock = mock.clock
    if isinstance(clock, VirtualClock) and isinstance(state["clock"], float):
        clock._now = state["clock"]
    elif isinstance(clock, ScaledClock) and isinstance(state["clock"], float) \
            and clock.origin != state["clock"]:
        clock.adopt(state["clock"])  # once, when joining: then it runs on by itself
    book = mock.webhooks
    if book is not None and "book" in state:
        _merge(book._deliveries, new_deliveries, full, key=lambda d: d.ordinal)
        fields = dict(state["book"])
        known = book._deliveries
        busy = {job: known[d] for job, d in fields.pop("_busy").items() if d in known}
        waiting = {job: deque(known[d] for d in ids if d in known)
                   for job, ids in fields.pop("_waiting").items()}
        for name, value in fields.items():
            setattr(book, name, value)
        book._busy, book._waiting = busy, waiting
    engine.after_restore()


def _merge(target: dict[str, Any], changes: dict[str, Any], full: bool,
           key: Callable[[Any], int]) -> None:
    """Apply ``changes`` (None: gone) to ``target`` in place, keeping creation order."""
    if full:
        fresh = sorted((v for v in changes.values() if v is not None), key=key)
        target.clear()
        target.update((v.id, v) for v in fresh)
        return
    added = []
    for k, v in changes.items():
        if v is None:
            target.pop(k, None)
        elif k in target:
            target[k] = v
        else:
            added.append(v)
    for v in sorted(added, key=key):
        target[v.id] = v


class Tracker:
    """What changed in a mock since its state was last saved or loaded: for a shared store
    that writes only those records. Needs :func:`jobmock.records.track_revisions`."""

    def __init__(self, mock: Mock) -> None:
        self.mock = mock
        self._core: bytes | None = None
        self._jobs: dict[str, tuple[int, int]] = {}
        self._deliveries: dict[str, tuple[int, int, int]] = {}
        self._pending: tuple[bytes, dict[str, tuple[int, int]],
                             dict[str, tuple[int, int, int]]] | None = None

    @staticmethod
    def _job_mark(job: Job) -> tuple[int, int]:
        return job.rev, len(job.history)

    @staticmethod
    def _delivery_mark(d: Delivery) -> tuple[int, int, int]:
        return d.rev, len(d.attempts), d.attempts[-1].rev if d.attempts else 0

    def changes(self) -> tuple[bytes | None, dict[str, bytes | None], dict[str, bytes | None]]:
        """The core if it changed, and the jobs and deliveries that did (None: gone), since
        the last :meth:`commit` or :meth:`settled`."""
        core = _core(self.mock)
        jobs, deliveries = _jobs(self.mock), _deliveries(self.mock)
        job_marks = {k: self._job_mark(j) for k, j in jobs.items()}
        delivery_marks = {k: self._delivery_mark(d) for k, d in deliveries.items()}
        job_changes: dict[str, bytes | None] = {
            k: _dump(jobs[k]) for k, m in job_marks.items() if self._jobs.get(k) != m}
        job_changes.update((k, None) for k in self._jobs if k not in jobs)
        delivery_changes: dict[str, bytes | None] = {
            k: _dump(deliveries[k]) for k, m in delivery_marks.items()
            if self._deliveries.get(k) != m}
        delivery_changes.update((k, None) for k in self._deliveries if k not in deliveries)
        self._pending = (core, job_marks, delivery_marks)
        return (core if core != self._core else None), job_changes, delivery_changes

    def commit(self) -> None:
        """What :meth:`changes` returned is stored now."""
        if self._pending is not None:
            self._core, self._jobs, self._deliveries = self._pending
            self._pending = None

    def settled(self, core: bytes | None = None) -> None:
        """The mock's state is now the stored one (just loaded): remember it as unchanged.
        ``core``: the stored core just applied (else it is pickled again to compare with)."""
        self._core = core if core is not None else _core(self.mock)
        self._jobs = {k: self._job_mark(j) for k, j in _jobs(self.mock).items()}
        self._deliveries = {k: self._delivery_mark(d)
                            for k, d in _deliveries(self.mock).items()}
        self._pending = None

    def forget(self) -> None:
        """Nothing is known to be stored: the next :meth:`changes` returns everything."""
        self._core, self._jobs, self._deliveries, self._pending = None, {}, {}, None
