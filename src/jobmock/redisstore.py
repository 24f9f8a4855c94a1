"""The Redis store: replicas of one mock that agree on every job, transition and webhook.

``jobmock serve API --store redis://host:port/db`` keeps the mock's shared state (see
:mod:`jobmock.snapshot`) in Redis, per API, spec and session. Every piece of work on the
state is a *turn* (:meth:`SharedMock.turn`):

1. take the session's lock (a Redis lock with a lease, so a replica killed while holding
   it delays the others by at most :data:`LOCK_LEASE` seconds) and read the versions of
   the state, the control document and the journal: one round trip (:data:`_BEGIN`);
2. if a version moved since this replica last saw it, load what changed;
3. do the work (answer a request, fire what is due, record a webhook's answer);
4. if the state changed: save it over the version loaded (refused if another replica
   saved meanwhile), publish the new version and release the lock, in one round trip
   (:data:`_COMMIT`); else release the lock.

A request is answered only after its turn saved, so a replica killed at any moment loses
nothing that was answered. Each transition fires once (only one turn runs at a time, and
it sees every earlier turn's result). A webhook attempt is sent by the replica whose turn
made it due; it holds a lease on it, and if no answer is recorded by the lease's end (the
replica died mid-attempt) another replica sends it again (same attempt number). A held
inline wait is woken across replicas by the published version: the replica holding it
loads the new state and finds the job ended. The virtual clock is part of the state, so
advancing it on any replica moves all.

Anyone who can write to the Redis can change the mock's state (it is the mock's own
store); the state is read back by an unpickler that builds only jobmock's records.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import itertools
import json
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .dispatch import Mock
from .records import track_revisions
from .sharedcontrol import ControlState, decode_entry, encode_entry
from .snapshot import SnapshotError, Tracker, apply, local_entries

__all__ = ["LOCK_LEASE", "RedisStore", "SharedMock", "StoreUnavailable", "check_store_url"]

LOG = logging.getLogger("jobmock.store")

#: Seconds a turn's lock is held at most: a replica killed mid-turn blocks the rest this long.
LOCK_LEASE = 5.0
#: Seconds a turn waits for the lock before the request is answered 503.
LOCK_WAIT = 30.0
#: Seconds between a replica's looks at the state when nothing told it of a change.
RESYNC_EVERY = 1.0
#: Versions of change log kept: a replica further behind loads the whole state.
LOG_KEEP = 1000


#: Take the lock (KEYS[1]) with token ARGV[1] for ARGV[2] ms; if taken, the state's version,
#: the control document's revision, the journal's meta and the change log's floor.
_BEGIN = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, redis.call('GET', KEYS[2]), redis.call('GET', KEYS[3]),
          redis.call('GET', KEYS[4]), redis.call('GET', KEYS[5])}
end
return {0}
"""
#: Save a turn: only over the version it loaded (ARGV[2]; KEYS[2] is the version), so a
#: replica stalled past its lease never overwrites another's turn. ARGV[3]: how many writes
#: follow, each as command, key index (0: none), argument count, arguments. ARGV[4]: 1 to
#: release the lock (KEYS[1]) if this turn (token ARGV[1]) still holds it.
_COMMIT = """
local stored = tonumber(redis.call('GET', KEYS[2]) or '0')
local mine = redis.call('GET', KEYS[1]) == ARGV[1]
if stored == tonumber(ARGV[2]) then
  local i = 5
  for _ = 1, tonumber(ARGV[3]) do
    local key, n = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
    if key == 0 then
      redis.call(ARGV[i], unpack(ARGV, i + 3, i + 2 + n))
    else
      redis.call(ARGV[i], KEYS[key], unpack(ARGV, i + 3, i + 2 + n))
    end
    i = i + 3 + n
  end
end
if mine and ARGV[4] == '1' then redis.call('DEL', KEYS[1]) end
return stored
"""
#: Release the lock (KEYS[1]) if token ARGV[1] still holds it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
#: Most arguments one write of a commit takes (Lua's unpack has a limit).
_CHUNK = 500


class StoreUnavailable(RuntimeError):
    """The shared store did not answer, or its lock could not be taken in time."""


def check_store_url(url: str) -> str | None:
    """Why ``url`` is not a store ``--store`` accepts (None: it is)."""
    if url == "memory":
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        return f"expected 'memory' or a redis://host:port/db URL, got {url!r}"
    if parts.scheme != "unix" and not parts.hostname:
        return f"the Redis URL names no host: {url!r}"
    return None


def spec_digest(mock: Mock) -> str:
    """A short digest of the spec: replicas of different specs never share a state."""
    text = json.dumps(mock.spec.document, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class RedisStore:
    """One Redis connection pool for every session of one served mock."""

    def __init__(self, url: str, *, lease: float = LOCK_LEASE) -> None:
        problem = check_store_url(url)
        if problem is not None or url == "memory":
            raise ValueError(problem or "'memory' is not a Redis store")
        self.url = url
        self.lease = lease
        #: This process's name among the replicas (in logs and ``/_jobmock/health``).
        self.replica = secrets.token_hex(4)
        self.redis: aioredis.Redis = aioredis.from_url(url, socket_timeout=10.0,
                                                       socket_connect_timeout=10.0)
        self.begin = self.redis.register_script(_BEGIN)
        self.commit = self.redis.register_script(_COMMIT)
        self.release = self.redis.register_script(_RELEASE)
        track_revisions()  # a turn saves only the jobs and deliveries it changed

    def attach(self, mock: Mock, session: str | None = None,
               idle: float | None = None) -> SharedMock:
        """Share ``mock``'s state under ``session`` (None: the default session); a named
        session's keys expire after ``idle`` seconds unused."""
        prefix = f"jobmock:{mock.spec.name}:{spec_digest(mock)}:{session or '-'}"
        shared = SharedMock(self, mock, prefix, ttl=idle if session is not None else None)
        mock.extensions["store"] = {"kind": "redis", "replica": self.replica}
        return shared

    async def aclose(self) -> None:
        await self.redis.aclose()


class SharedMock:
    """One mock's state on Redis, for one replica; see the module docstring."""

    def __init__(self, store: RedisStore, mock: Mock, prefix: str, *,
                 ttl: float | None = None) -> None:
        self.store = store
        self.mock = mock
        self.prefix = prefix
        self.ttl = ttl
        self._k_ver, self._k_core = f"{prefix}:version", f"{prefix}:core"
        self._k_jobs, self._k_deliveries = f"{prefix}:jobs", f"{prefix}:deliveries"
        self._k_log, self._k_floor = f"{prefix}:log", f"{prefix}:floor"
        self._k_lock, self.channel = f"{prefix}:lock", f"{prefix}:changed"
        self._k_control, self._k_crev = f"{prefix}:control", f"{prefix}:crev"
        self._k_journal, self._k_jmeta = f"{prefix}:journal", f"{prefix}:jmeta"
        #: The stored state's version this replica's mock holds (None: unknown, reload all).
        self._version: int | None = None
        self.tracker = Tracker(mock)
        #: The faults and scenario (see jobmock.sharedcontrol): the stored document's
        #: revision this replica holds, and the signature of what it holds as stored.
        self.control = ControlState(mock)
        self._crev: int | None = None
        self._csig: Any = None
        #: The shared journal (a Redis list, capped at the journal's size): its generation
        #: (one more at each clear) and count as this replica last saw or wrote them, and
        #: the local journal's clears then.
        self._jgen: int | None = None
        self._jtotal = 0
        self._jclears = mock.journal.clears
        self._local = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._stopped = False
        #: The lock's token of the turn under way (one per turn).
        self._token = ""
        self._tokens = itertools.count()
        self.turns = 0
        self.loads = 0
        self.saves = 0
        if mock.webhooks is not None:
            mock.webhooks.lease = mock.webhooks.timeout + 2 * LOCK_LEASE

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold the state for a piece of work: loaded fresh before, saved after if changed.
        Re-entrant within one task. Raises :class:`StoreUnavailable` when Redis fails."""
        task = asyncio.current_task()
        if task is not None and self._owner is task:
            yield
            return
        async with self._local:
            self._owner = task
            self._token = f"{self.store.replica}:{next(self._tokens)}"
            try:
                versions = await self._take_lock()
            except RedisError as exc:
                self._owner = None
                raise StoreUnavailable(f"the Redis store did not answer: {exc}") from exc
            except BaseException:
                self._owner = None
                raise
            ok = released = False
            try:
                await self._load(*versions)
                self.turns += 1
                yield
                released = await self._save(release=True)
                ok = True
            except RedisError as exc:
                self._version = None  # whatever was done here is reloaded, never half-kept
                raise StoreUnavailable(f"the Redis store did not answer: {exc}") from exc
            finally:
                if not ok:  # reload everything, the faults, scenario and journal too
                    self._version = self._crev = self._jgen = None
                self._owner = None
                if not released:
                    with contextlib.suppress(RedisError):
                        await self.store.release(keys=[self._k_lock], args=[self._token])

    async def _take_lock(self) -> list[Any]:
        """Wait for the session's lock (at most LOCK_WAIT s); the versions read with it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LOCK_WAIT
        lease = int(self.store.lease * 1000)
        keys = [self._k_lock, self._k_ver, self._k_crev, self._k_jmeta, self._k_floor]
        for _ in range(int(LOCK_WAIT / 0.002) + 1):  # bounded: the deadline ends it first
            got = await self.store.begin(keys=keys, args=[self._token, lease])
            if got[0] == 1:
                return list(got[1:]) + [None] * (5 - len(got))
            if loop.time() > deadline:
                break
            await asyncio.sleep(0.002)
        raise StoreUnavailable(f"the shared state's lock was not free within {LOCK_WAIT:g} s")

    async def _load(self, raw: bytes | None, crev: bytes | None, jmeta: bytes | None,
                    floor: bytes | None) -> None:
        redis = self.store.redis
        if raw is None:  # the first replica of this session: its fresh state is the state
            self._version = 0
            self.tracker.forget()
            self._csig = self._jgen = None
            await self._save(release=False)
            return
        version = int(raw)
        reinstalled = False
        if crev is not None and int(crev) != self._crev:
            blob = await redis.get(self._k_control)
            try:
                reinstalled = blob is not None and self.control.apply(blob)
            except (ValueError, KeyError, TypeError) as exc:
                raise StoreUnavailable(f"the shared control state at {self.prefix} cannot be "
                                       f"read ({exc})") from exc
            self._crev = int(crev)
            self._csig = self.control.signature()
        if reinstalled:  # a scenario installed here forgot the state: load it all
            self._version = None
        if version != self._version:
            await self._load_state(version, int(floor or 0))
        await self._load_journal(jmeta, fresh=reinstalled)

    async def _load_state(self, version: int, floor: int) -> None:
        redis = self.store.redis
        full = self._version is None or self._version < floor
        job_records: dict[str, Any] = {}
        delivery_records: dict[str, Any] = {}
        async with redis.pipeline(transaction=True) as pipe:
            pipe.get(self._k_core)
            if full:
                pipe.hgetall(self._k_jobs)
                pipe.hgetall(self._k_deliveries)
                core, jobs, deliveries = await pipe.execute()
                job_records = {k.decode(): v for k, v in jobs.items()}
                delivery_records = {k.decode(): v for k, v in deliveries.items()}
            else:
                pipe.zrangebyscore(self._k_log, f"({self._version}", "+inf")
                core, members = await pipe.execute()
                job_ids = [m[2:].decode() for m in members if m.startswith(b"j:")]
                delivery_ids = [m[2:].decode() for m in members if m.startswith(b"d:")]
                if job_ids or delivery_ids:  # both in one round trip
                    async with redis.pipeline(transaction=False) as records:
                        if job_ids:
                            records.hmget(self._k_jobs, job_ids)
                        if delivery_ids:
                            records.hmget(self._k_deliveries, delivery_ids)
                        got = list(await records.execute())
                    if job_ids:
                        job_records = dict(zip(job_ids, got.pop(0), strict=True))
                    if delivery_ids:
                        delivery_records = dict(zip(delivery_ids, got.pop(0), strict=True))
        if not isinstance(core, bytes):
            raise StoreUnavailable(f"{self._k_core} is missing while its version is {version}")
        try:
            apply(self.mock, core, job_records, delivery_records, full=full)
        except SnapshotError as exc:
            raise StoreUnavailable(f"the shared state at {self.prefix} cannot be read "
                                   f"({exc}); another jobmock version wrote it?") from exc
        self._version = version
        self.tracker.settled(core)  # (if this mock pickles it otherwise, one save too many)
        self.loads += 1

    async def _load_journal(self, meta: bytes | str | None, *, fresh: bool) -> None:
        """Bring the local journal up to the shared one: the entries other replicas added
        (all of them after a clear elsewhere), then this replica's own not yet saved (a
        request refused before its turn), numbered after them."""
        if meta is None:
            return  # nothing shared yet: this replica's journal is saved by its next turn
        gen, total = (int(x) for x in meta.split())
        journal = self.mock.journal
        cleared_here = journal.clears != self._jclears
        pending = [] if cleared_here else journal.tail(journal.total - self._jtotal)
        if gen == self._jgen and total == self._jtotal and not fresh and not cleared_here:
            return
        fresh = (fresh or cleared_here or bool(pending) or gen != self._jgen
                 or total - self._jtotal > journal.size)
        start = 0 if fresh else -(total - self._jtotal)
        try:
            entries = [decode_entry(e) for e in
                       await self.store.redis.lrange(self._k_journal, start, -1)]
        except (ValueError, TypeError) as exc:
            raise StoreUnavailable(f"the shared journal at {self.prefix} cannot be read "
                                   f"({exc})") from exc
        entries += [dataclasses.replace(e, seq=total + i) for i, e in enumerate(pending, 1)]
        journal.adopt(entries, total + len(pending), replace=fresh)
        self._jgen, self._jtotal, self._jclears = gen, total, journal.clears

    async def _save(self, *, release: bool) -> bool:
        """Save what the turn changed, over the version it loaded, and publish the new
        version; with ``release``, release the lock in the same round trip. Returns whether
        it did (nothing changed: nothing is sent)."""
        core, jobs, deliveries = self.tracker.changes()
        signature = self.control.signature()
        control = self.control.dump() if signature != self._csig else None
        journal = self.mock.journal
        cleared = journal.clears != self._jclears or self._jgen is None
        added = len(journal) if cleared else min(journal.total - self._jtotal, len(journal))
        journal_moved = cleared or journal.total != self._jtotal
        if core is None and not jobs and not deliveries and control is None \
                and not journal_moved:
            return False
        entries = [encode_entry(e) for e in journal.tail(added)] if added > 0 else []
        jgen = (self._jgen or 0) + 1 if cleared else self._jgen
        crev = (self._crev or 0) + 1
        version = (self._version or 0) + 1
        keys = [self._k_lock, self._k_ver, self._k_core, self._k_jobs, self._k_deliveries,
                self._k_log, self._k_floor, self._k_control, self._k_crev, self._k_journal,
                self._k_jmeta]
        index = {k: i for i, k in enumerate(keys, 1)}
        writes: list[Any] = []
        count = 0

        def write(command: str, key: str | None, *args: Any) -> None:
            nonlocal count
            writes.extend((command, index[key] if key is not None else 0, len(args), *args))
            count += 1

        if core is not None:
            write("SET", self._k_core, core)
        for key, records, tag in ((self._k_jobs, jobs, "j:"),
                                  (self._k_deliveries, deliveries, "d:")):
            puts = [(k, v) for k, v in records.items() if v is not None]
            gone = [k for k, v in records.items() if v is None]
            for i in range(0, len(puts), _CHUNK):
                write("HSET", key, *(x for pair in puts[i:i + _CHUNK] for x in pair))
            for i in range(0, len(gone), _CHUNK):
                write("HDEL", key, *gone[i:i + _CHUNK])
            logged = list(records)
            for i in range(0, len(logged), _CHUNK):
                write("ZADD", self._k_log, *(x for k in logged[i:i + _CHUNK]
                                             for x in (version, tag + k)))
        if version % LOG_KEEP == 0:  # older changes: a replica that far behind reloads all
            write("ZREMRANGEBYSCORE", self._k_log, "-inf", version - LOG_KEEP)
            write("SET", self._k_floor, version - LOG_KEEP)
        if control is not None:
            write("SET", self._k_control, control)
            write("SET", self._k_crev, crev)
        if cleared:
            write("DEL", self._k_journal)
        for i in range(0, len(entries), _CHUNK):
            write("RPUSH", self._k_journal, *entries[i:i + _CHUNK])
        if entries:
            write("LTRIM", self._k_journal, -journal.size, -1)
        if journal_moved:
            write("SET", self._k_jmeta, f"{jgen} {journal.total}")
        write("SET", self._k_ver, version)
        if self.ttl is not None:
            for key in keys[1:]:
                write("EXPIRE", key, int(self.ttl) + 1)
        write("PUBLISH", None, self.channel, version)
        stored = await self.store.commit(
            keys=keys, args=[self._token, self._version or 0, count, int(release), *writes])
        if int(stored) != (self._version or 0):
            # Saved only over the version this turn loaded: a replica stalled past its lock's
            # lease must not overwrite what another did meanwhile.
            raise StoreUnavailable(f"the state moved on during this turn (version "
                                   f"{int(stored)}, not {self._version}): its lock's lease "
                                   f"ran out; the turn is dropped")
        self._version = version
        self.tracker.commit()
        if control is not None:
            self._crev, self._csig = crev, signature
        if journal_moved:
            self._jgen, self._jtotal, self._jclears = jgen, journal.total, journal.clears
        self.saves += 1
        return release

    def has_local_work(self) -> bool:
        """Whether this replica holds inline waits or clock-time delays (which a change made
        elsewhere may end)."""
        return bool(local_entries(self.mock.engine))

    def start_listening(self) -> None:
        """Listen for other replicas' changes (from the running loop): each wakes the inline
        waits and delays this replica holds (coalesced: one load per burst)."""
        if self._listener is None or self._listener.done():
            self._stopped = False  # a listener stopped by aclose may start again
            self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def _listen(self) -> None:
        pubsub = self.store.redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel)
            while not self._stopped:  # (a cancel a turn's Redis call swallowed ends it too)
                message = await pubsub.get_message(timeout=RESYNC_EVERY)
                if message is None:
                    continue
                for _ in range(10_000):  # a burst of changes: one load covers them all
                    if await pubsub.get_message(timeout=0.0) is None:
                        break
                if self.has_local_work():
                    with contextlib.suppress(StoreUnavailable):
                        async with self.turn():
                            self.mock.engine.run_due()
        except (RedisError, OSError) as exc:
            LOG.warning("jobmock: stopped listening to %s: %s", self.channel, exc)
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def aclose(self) -> None:
        self._stopped = True
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
