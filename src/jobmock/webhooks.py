"""Webhook deliveries: which events fire, the signed body, the order and the retry schedule.

Pure: no I/O, no asyncio. A :class:`DeliveryBook` subscribes to the engine's events. When a
job submitted with a callback URL reaches an event its spec names (``start``, ``progress``,
``output``, ``terminal``, a terminal role or status word) and the request's event filter
lets it through, the book renders the body once and records a :class:`Delivery`. Under
the spec's ``per_job`` ordering a job's delivery waits (``waiting``) until the one before
it is delivered or exhausted; otherwise attempt 1 is scheduled at the event's clock time
with :meth:`Engine.call_at`. When an attempt falls due the book signs it (the spec's
scheme, :mod:`jobmock.signing`, with the attempt's clock time) and hands it to a *sender*
(an adapter that does the I/O: :mod:`jobmock.senders`), which calls
:meth:`DeliveryBook.report` with the answer; in ``record`` mode the book answers it itself
and nothing is sent, and a host outside ``allow_hosts`` is ``refused`` unsent. A 2xx ends
the delivery; ``410 Gone`` ends it and every later delivery to that URL (``gone``);
anything else (a 3xx too) schedules the next attempt at the failed attempt's *due* time
plus ``policy.delay_after(n)`` (never slept for; a 429/503 ``Retry-After`` can only push it
later), until the policy's attempts are used up and the delivery is ``exhausted``.

On request a delivery that is over can be sent again (:meth:`DeliveryBook.redeliver`), or a
probe of the receiver can be sent once (:meth:`DeliveryBook.forge`: a ``forged``, ``stale``
or ``duplicate`` copy, judged by :mod:`jobmock.behaviour`). Delivery ids never repeat within
a process, resets included, and differ between seeds.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import random
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from . import pointers
from .engine import Engine, Event, Job, JobView
from .records import Revised
from .signing import signature_headers
from .spec import TERMINAL_ROLES, RetryPolicy, Webhooks
from .templates import iso
from .urlrules import needs_resolution

__all__ = ["MODES", "PROBES", "Attempt", "Delivery", "DeliveryBook", "Sender", "sign"]

#: What a book does with a due attempt: send it, record it as answered unsent, or nothing.
MODES = ("deliver", "record", "off")
#: States in which a delivery is over.
DONE_STATES = frozenset({"delivered", "exhausted", "gone", "refused"})
#: Statuses whose ``Retry-After`` a retry honours.
RETRY_AFTER_STATUSES = frozenset({429, 503})

#: Deliveries a receiver must not act on, sent on request (:meth:`DeliveryBook.forge`):
#: ``forged`` (signed with a wrong key), ``stale`` (signed, its timestamp past the spec's
#: tolerance), ``duplicate`` (the delivery again: same id and body, a fresh signature).
PROBES = ("forged", "stale", "duplicate")
#: How far past the spec's tolerance a ``stale`` probe's timestamp lies, in seconds.
STALE_MARGIN = 300.0
#: Schemes that sign a timestamp (a ``stale`` probe needs one).
TIMESTAMPED = frozenset({"standard-webhooks", "stripe"})

#: jobmock's own headers on every attempt: the delivery's identity and the attempt number.
DELIVERY_HEADER = "X-Jobmock-Delivery"
ATTEMPT_HEADER = "X-Jobmock-Attempt"


def sign(secret: str, body: bytes, fmt: str, timestamp: int | None = None) -> str:
    """The signature header value: ``fmt`` with ``{hex}`` = HMAC-SHA256(secret, body)."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return fmt.replace("{hex}", digest).replace("{timestamp}", str(timestamp or 0))


@dataclass(slots=True)
class Attempt(Revised):
    """One try at delivering: when it was due and sent, and what came back."""

    number: int
    scheduled_at: float
    headers: dict[str, str] = field(default_factory=dict)
    sent_at: float | None = None
    finished_at: float | None = None
    status: int | None = None
    error: str | None = None
    #: Sent by ``POST /_jobmock/webhooks/{id}/redeliver``: tried once, never retried.
    redelivery: bool = False
    #: Seconds a 429/503 answer's ``Retry-After`` asked for.
    retry_after: float | None = None
    #: On a shared store: the wall time until which the replica sending it owns it; past
    #: it with no answer recorded, another replica sends it again (see DeliveryBook.reclaim).
    lease_until: float | None = None
    #: Sent again by another replica because the one sending it stopped before its answer
    #: was recorded (so the receiver may have it twice, same delivery id and number).
    resent: bool = False
    #: Changes on every assignment when revisions are tracked (see records.Revised).
    rev: int = field(default=0, compare=False, repr=False)
    #: A probe of the receiver (one of :data:`PROBES`), sent on request: tried once, never
    #: retried, and its answer leaves the delivery's state alone.
    probe: str | None = None
    #: The request journal's count when this attempt was sent and when it was answered (set
    #: where the book has a ``mark``): the client's requests between them came while its
    #: endpoint held this attempt.
    sent_mark: int | None = None
    answered_mark: int | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def as_dict(self, redact: Collection[str] = ()) -> dict[str, Any]:
        """A plain view; the value of every header named in ``redact`` (any case) is hidden."""
        hidden = {n.lower() for n in redact}
        headers = {k: ("[redacted]" if k.lower() in hidden else v) for k, v in self.headers.items()}
        return {"number": self.number, "scheduled_at": iso(self.scheduled_at),
                "sent_at": iso(self.sent_at), "finished_at": iso(self.finished_at),
                "status": self.status, "error": self.error, "headers": headers,
                "redelivery": self.redelivery, "retry_after": self.retry_after,
                "probe": self.probe, "resent": self.resent}


@dataclass(slots=True)
class Delivery(Revised):
    """One webhook for one job event; keeps its id and body across attempts."""

    id: str
    job_id: str
    event: str
    url: str
    body: bytes
    headers: dict[str, str]
    policy: RetryPolicy
    created_at: float
    attempts: list[Attempt] = field(default_factory=list)
    #: pending | waiting (behind the job's earlier event) | sending | retrying, then one of
    #: delivered | exhausted | gone (410, or the URL answered 410 before) | refused (host
    #: not allowed).
    state: str = "pending"
    next_at: float | None = None
    #: Whether attempts carry the spec's signature (its ``enabled_for`` names the job's tenant).
    signed: bool = True
    #: The event kind that made it: start, progress, output, terminal, a role or a word.
    kind: str = ""
    #: Its place among the deliveries since the last reset (1, 2, ...): seeds its jitter, so
    #: a run repeats after a reset although ids never do.
    ordinal: int = 0
    #: Changes on every assignment when revisions are tracked (see records.Revised).
    rev: int = field(default=0, compare=False, repr=False)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.body).hexdigest()

    @property
    def done(self) -> bool:
        return self.state in DONE_STATES

    def as_dict(self, redact: Collection[str] = ()) -> dict[str, Any]:
        """A plain view (the control plane's); ``redact``: header names whose values are
        hidden in every attempt (the control plane passes the signature header)."""
        return {"id": self.id, "job_id": self.job_id, "event": self.event, "url": self.url,
                "state": self.state, "body_sha256": self.digest, "body_bytes": len(self.body),
                "created_at": iso(self.created_at), "next_at": iso(self.next_at),
                "max_attempts": self.policy.attempts, "signed": self.signed,
                "kind": self.kind,
                "attempts": [a.as_dict(redact) for a in self.attempts]}


Sender = Callable[[Delivery, Attempt], None]


class DeliveryBook:
    """Every webhook delivery of one mock, and their schedules."""

    def __init__(self, engine: Engine, config: Webhooks, *, secret: str | None = None) -> None:
        self.engine = engine
        self.config = config
        self.secret = secret if secret is not None else (
            config.signature.secret if config.signature else None)
        self.timeout = config.retry.timeout
        self._deliveries: dict[str, Delivery] = {}
        #: Delivery ids by job id; and deliveries still in flight when their job was forgotten
        #: (the engine's retention), dropped once they end.
        self._by_job: dict[str, list[str]] = {}
        self._orphans: set[str] = set()
        self._seq = 0
        #: Delivery ids are ``whd_<run>_<n>``: ``run`` from the seed (a fresh start draws a
        #: fresh seed) and ``n`` counted over the book's whole life, never restarted by a
        #: reset, so a receiver deduplicating by id never drops a real delivery.
        self._run = f"{random.Random(f'whd-{engine.seed}').getrandbits(32):08x}"
        self._issued = 0
        #: The request journal's count now (set by the Mock): marks each attempt's window.
        self.mark: Callable[[], int] | None = None
        self._sender: Sender | None = None
        self._outbox: list[tuple[Delivery, Attempt]] = []
        self._listeners: list[Callable[[Delivery, Attempt], None]] = []
        #: True under ``--allow-private-callbacks``: no address checks before sending.
        self.allow_private = False
        #: Switched only by the mock's deliberate faults (jobmock.faults).
        self.wrong_signature = False
        self.retries_enabled = True
        #: ``deliver``, ``record`` (each attempt answered ``record_status``, nothing sent) or
        #: ``off`` (no deliveries); see :meth:`configure`.
        self.mode = "deliver"
        self.record_status = 200
        #: Lower-case hosts (or host:port) attempts may go to; None: any.
        self.allow_hosts: frozenset[str] | None = None
        self._gone: set[str] = set()
        self._busy: dict[str, Delivery] = {}
        #: Seconds a sender owns an attempt on a shared store (None: one process, no leases).
        self.lease: float | None = None
        self._waiting: dict[str, deque[Delivery]] = {}
        engine.subscribe(self._on_event)

    def configure(self, *, mode: str | None = None, record_status: int | None = None,
                  allow_hosts: Iterable[str] | None = None) -> None:
        """Set the mode (:data:`MODES`), the status ``record`` mode answers, and the hosts
        attempts may go to. Raises ValueError for a value outside those."""
        if mode is not None:
            if mode not in MODES:
                raise ValueError(f"webhook mode must be one of {', '.join(MODES)}, got {mode!r}")
            self.mode = mode
        if record_status is not None:
            if not 100 <= record_status <= 599:
                raise ValueError(f"a recorded status must be 100-599, got {record_status}")
            self.record_status = record_status
        if allow_hosts is not None:
            hosts = frozenset(h.strip().lower().strip("[]") for h in allow_hosts if h.strip())
            if not hosts:
                raise ValueError("an allowlist needs at least one host")
            self.allow_hosts = hosts

    # -- wiring ------------------------------------------------------------------------

    def host_to_resolve(self, url: str) -> str | None:
        """A host name a sender must resolve and check before it connects (SSRF guard)."""
        return needs_resolution(url, self.config.url_rule, allow_private=self.allow_private)

    def set_sender(self, sender: Sender | None) -> None:
        """Attach the adapter that sends attempts; attempts already due are handed over now."""
        self._sender = sender
        if sender is not None:
            pending, self._outbox = self._outbox, []
            for delivery, attempt in pending:
                sender(delivery, attempt)

    def on_attempt(self, listener: Callable[[Delivery, Attempt], None]) -> None:
        """Call ``listener`` after each attempt's answer is reported."""
        self._listeners.append(listener)

    def reset(self) -> None:
        self._deliveries.clear()
        self._by_job.clear()
        self._orphans.clear()
        self._outbox.clear()
        self._seq = 0
        self._gone.clear()
        self._busy.clear()
        self._waiting.clear()

    # -- reading -------------------------------------------------------------------------

    def deliveries(self) -> list[Delivery]:
        return list(self._deliveries.values())

    def get(self, delivery_id: str) -> Delivery | None:
        return self._deliveries.get(delivery_id)

    def for_job(self, job_id: str) -> list[Delivery]:
        found = (self._deliveries.get(i) for i in self._by_job.get(job_id, ()))
        return [d for d in found if d is not None]

    def _forget_job(self, job_id: str) -> None:
        """The engine forgot ``job_id``: drop its ended deliveries now, the others when they end."""
        for delivery_id in self._by_job.pop(job_id, ()):
            delivery = self._deliveries.get(delivery_id)
            if delivery is None or delivery.done:
                self._deliveries.pop(delivery_id, None)
            else:
                self._orphans.add(delivery_id)

    # -- events --------------------------------------------------------------------------

    def _triggers(self, event: Event) -> list[str]:
        """The event kinds of the spec's ``events`` that ``event`` is."""
        events = self.config.events
        if event.kind == "progress":
            return [k for k in ("progress", "output") if k in events]
        if event.kind != "transition" or event.new is None:
            return []
        states = self.engine.spec.lifecycle.states
        role = states[event.new]
        if role == "running":
            started = event.old is None or states.get(event.old) != "running"
            return ["start"] if started and "start" in events else []
        if role not in TERMINAL_ROLES:
            return []
        return next(([t] for t in (event.new, role, "terminal") if t in events), [])

    def _name(self, trigger: str, job: Job) -> str:
        """The event's name (``{event}`` in templates): ``event_names`` by kind, then (for an
        end) by status word and role; else the kind itself."""
        names = self.config.event_names
        keys = [trigger]
        if self.engine.is_terminal(job):
            keys += [job.status, self.engine.role(job)]
        return next((names[k] for k in keys if k in names), trigger)

    def _wanted(self, job: Job, name: str) -> bool:
        """Whether the request's event filter (``filter_from``) lets ``name`` through."""
        cfg = self.config
        if cfg.filter_pointer is None:
            return True
        chosen = pointers.get(job.request, cfg.filter_pointer)
        if isinstance(chosen, list):
            return name in {str(c) for c in chosen}
        return cfg.filter_default is None or name in cfg.filter_default

    def _on_event(self, event: Event) -> None:
        job = event.job
        if event.kind == "forgotten":
            self._forget_job(job.id)
            return
        if not job.callback_url or self.mode == "off":
            return
        for trigger in self._triggers(event):
            name = self._name(trigger, job)
            if self._wanted(job, name):
                self._create(event, trigger, name)

    def _create(self, event: Event, trigger: str, name: str) -> None:
        job = event.job
        assert job.callback_url is not None
        cfg = self.config
        ctx = {"job": JobView(job, self.engine.spec), "event": name, "base_url": job.base_url,
               "now": iso(event.at), "now_ms": round(event.at * 1000), "tenant": job.tenant}
        body = json.dumps(cfg.body(ctx), separators=(",", ":"), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "jobmock-webhooks"}
        headers.update({k: str(h(ctx)) for k, h in cfg.headers.items()})
        self._seq += 1
        delivery = Delivery(id=self._new_id(), job_id=job.id, event=name,
                            url=job.callback_url, body=body, headers=headers, policy=cfg.retry,
                            created_at=event.at, kind=trigger, ordinal=self._seq)
        sig = cfg.signature
        delivery.signed = sig is not None and (sig.enabled_for is None
                                               or job.tenant in sig.enabled_for)
        self._deliveries[delivery.id] = delivery
        self._by_job.setdefault(job.id, []).append(delivery.id)
        if delivery.url in self._gone:
            delivery.state = "gone"
            return
        if cfg.ordering == "per_job":
            busy = self._busy.get(job.id)
            if busy is not None and not busy.done:
                delivery.state = "waiting"
                self._waiting.setdefault(job.id, deque()).append(delivery)
                return
            self._busy[job.id] = delivery
        self._schedule(delivery, event.at)

    def _new_id(self) -> str:
        self._issued += 1
        return f"whd_{self._run}_{self._issued:06d}"

    def _schedule(self, delivery: Delivery, when: float) -> None:
        delivery.next_at = when
        self.engine.call_at(when, functools.partial(self._due_id, delivery.id), shared=True)

    def _due_id(self, delivery_id: str) -> None:
        delivery = self._deliveries.get(delivery_id)
        if delivery is not None:
            self._due(delivery)

    def _ended(self, delivery: Delivery) -> None:
        """``delivery`` is over: start the job's next waiting delivery, if any."""
        if self._busy.get(delivery.job_id) is not delivery:
            return
        queue = self._waiting.get(delivery.job_id)
        while queue:
            nxt = queue.popleft()
            if nxt.url in self._gone:
                nxt.state = "gone"
                continue
            self._busy[delivery.job_id] = nxt
            nxt.state = "pending"
            self._schedule(nxt, max(nxt.created_at, self.engine.clock.now()))
            return
        self._busy.pop(delivery.job_id, None)
        self._waiting.pop(delivery.job_id, None)

    def _refusal(self, url: str) -> str | None:
        """Why an attempt to ``url`` must not be sent under ``allow_hosts`` (None: it may)."""
        if self.allow_hosts is None:
            return None
        try:
            parts = urlsplit(url)
            host, port = (parts.hostname or "").lower(), parts.port
        except ValueError:
            host, port = "", None
        if host and (host in self.allow_hosts or f"{host}:{port}" in self.allow_hosts):
            return None
        return (f"refused: {host or repr(url)} is not an allowed webhook host "
                f"(allowed: {', '.join(sorted(self.allow_hosts))})")

    def _signature(self, delivery: Delivery, msg_id: str, timestamp: int,
                   spoil: bool = False) -> dict[str, str]:
        sig = self.config.signature
        if sig is None or self.secret is None or not delivery.signed:
            return {}
        return signature_headers(sig.scheme, secrets=[self.secret, *sig.previous],
                                 body=delivery.body, msg_id=msg_id, timestamp=timestamp,
                                 header=sig.header, fmt=sig.format,
                                 spoil=spoil or self.wrong_signature)

    def forge(self, delivery: Delivery, kind: str) -> Attempt:
        """Send the receiver a delivery it must not act on (:data:`PROBES`), once, now.

        ``forged``: the body under a fresh id, signed with a wrong key; ``stale``: the body
        under a fresh id, signed, with a timestamp :data:`STALE_MARGIN` seconds past the
        spec's tolerance; ``duplicate``: the delivery again, same id and body, signed afresh
        (as a sender's retry is). It is recorded as an attempt with ``probe`` set; its answer
        leaves the delivery's state alone. Raises ValueError when it can't be sent: the
        delivery not over, an unknown kind, nothing sent in this mode, no signature to forge
        (``forged``, ``stale``) or no signed timestamp (``stale``).
        """
        if kind not in PROBES:
            raise ValueError(f"kind must be one of {', '.join(PROBES)}, got {kind[:40]!r}")
        if not delivery.done:
            raise ValueError(f"delivery {delivery.id} is {delivery.state}; a probe is sent once "
                             f"a delivery is over")
        if self.mode != "deliver":
            raise ValueError(f"webhooks are not sent in {self.mode!r} mode, so neither is a probe")
        sig = self.config.signature
        if kind != "duplicate" and (sig is None or self.secret is None or not delivery.signed):
            raise ValueError(f"delivery {delivery.id} is not signed, so there is no signature "
                             f"to {'forge' if kind == 'forged' else 'make stale'}")
        if kind == "stale" and sig is not None and sig.scheme not in TIMESTAMPED:
            raise ValueError(f"the {sig.scheme} scheme signs no timestamp, so a stale one "
                             f"can't be told apart; schemes that sign one: "
                             f"{', '.join(sorted(TIMESTAMPED))}")
        return self._attempt(delivery, probe=kind)

    def redeliver(self, delivery: Delivery) -> Attempt:
        """Send ``delivery`` once more now (same id and body, a new attempt, never retried).
        Raises ValueError unless it is over (delivered, exhausted, gone or refused)."""
        if not delivery.done:
            raise ValueError(f"delivery {delivery.id} is {delivery.state}; only a delivery that "
                             f"is over can be sent again")
        return self._attempt(delivery, redelivery=True)

    def _due(self, delivery: Delivery) -> None:
        if delivery.done or delivery.state == "sending":
            return
        if delivery.url in self._gone:
            delivery.state, delivery.next_at = "gone", None
            self._ended(delivery)
            return
        self._attempt(delivery)

    def _attempt(self, delivery: Delivery, redelivery: bool = False,
                 probe: str | None = None) -> Attempt:
        now = self.engine.clock.now()
        number = len(delivery.attempts) + 1
        msg_id = delivery.id if probe in (None, "duplicate") else self._new_id()
        timestamp = int(now)
        if probe == "stale":
            sig = self.config.signature
            timestamp -= int((sig.tolerance if sig is not None else 0) + STALE_MARGIN)
        headers = dict(delivery.headers)
        headers[DELIVERY_HEADER] = msg_id
        headers[ATTEMPT_HEADER] = str(number)
        headers.update(self._signature(delivery, msg_id, timestamp, spoil=probe == "forged"))
        fresh = redelivery or probe is not None
        due = delivery.next_at if delivery.next_at is not None and not fresh else now
        attempt = Attempt(number, due, headers, sent_at=now, redelivery=redelivery, probe=probe,
                          sent_mark=self.mark() if self.mark is not None else None)
        delivery.attempts.append(attempt)
        if probe is None:
            delivery.state, delivery.next_at = "sending", None
        refusal = self._refusal(delivery.url)
        if refusal is not None:
            self.report(delivery, attempt, error=refusal)
        elif self.mode != "deliver":
            self.report(delivery, attempt, status=self.record_status)
        elif self._sender is None:
            self._outbox.append((delivery, attempt))
        else:
            if self.lease is not None:
                attempt.lease_until = time.time() + self.lease
            self._sender(delivery, attempt)
        return attempt

    def resolve(self, delivery_id: str, number: int) -> tuple[Delivery, Attempt] | None:
        """The delivery and its attempt ``number`` as the book has them now (a shared store
        replaces the objects a sender holds), if that attempt still waits for its answer."""
        delivery = self._deliveries.get(delivery_id)
        if delivery is None or not 0 < number <= len(delivery.attempts):
            return None
        attempt = delivery.attempts[number - 1]
        return (delivery, attempt) if attempt.finished_at is None else None

    def reclaim(self, now: float) -> int:
        """Send again every attempt whose sender's lease ended (wall time ``now``) with no
        answer recorded: a replica stopped in the middle of it. Same attempt number, same
        due time. Returns how many."""
        again = 0
        for delivery in list(self._deliveries.values()):
            if delivery.state != "sending" or not delivery.attempts:
                continue
            last = delivery.attempts[-1]
            if last.finished_at is None and last.lease_until is not None \
                    and last.lease_until < now:
                delivery.attempts.pop()
                delivery.next_at = last.scheduled_at
                self._attempt(delivery, redelivery=last.redelivery).resent = True
                again += 1
        return again

    def report(self, delivery: Delivery, attempt: Attempt, *, status: int | None = None,
               error: str | None = None, retry_after: float | None = None) -> None:
        """Record the answer to ``attempt``; schedule the next one or end the delivery.

        The next attempt is due ``policy.delay_after(n)`` after this attempt was *due* (not
        after its answer came), so a schedule is exact on any clock; ``retry_after`` (a
        429/503 answer's ``Retry-After``, seconds) can only make it later.
        """
        if attempt.finished_at is not None or self._deliveries.get(delivery.id) is not delivery:
            return  # answered already, or forgotten by reset(): never retry it
        now = self.engine.clock.now()
        attempt.finished_at, attempt.status, attempt.error = now, status, error
        if self.mark is not None:
            attempt.answered_mark = self.mark()
        if retry_after is not None and status in RETRY_AFTER_STATUSES:
            attempt.retry_after = retry_after
        if attempt.probe is not None:  # judged by jobmock.behaviour; the delivery stays over
            for listener in self._listeners:
                listener(delivery, attempt)
            return
        if attempt.ok:
            delivery.state = "delivered"
        elif status == 410:
            delivery.state = "gone"
            self._gone.add(delivery.url)
        elif error is not None and error.startswith("refused: ") and self.allow_hosts is not None \
                and self._refusal(delivery.url) is not None:
            delivery.state = "refused"
        else:
            delay = None
            if self.retries_enabled and not attempt.redelivery:
                key = f"{self.engine.seed}:whd_{delivery.ordinal:06d}:{attempt.number}"
                draw = random.Random(key).random()
                delay = delivery.policy.delay_after(attempt.number, draw)
            if delay is None:
                delivery.state = "exhausted"
            else:
                delivery.state = "retrying"
                due = attempt.scheduled_at + delay
                if attempt.retry_after is not None:
                    due = max(due, now + attempt.retry_after)
                self._schedule(delivery, due)
        if delivery.done:
            self._ended(delivery)
        for listener in self._listeners:
            listener(delivery, attempt)
        if delivery.done and delivery.id in self._orphans:
            self._orphans.discard(delivery.id)
            del self._deliveries[delivery.id]
