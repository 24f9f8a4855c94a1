"""Webhook deliveries: which events fire, the signed body, and the retry schedule. Pure.

A :class:`DeliveryBook` subscribes to the engine's events. When a job submitted with a
callback URL reaches an event its spec names (``progress``, ``terminal`` or a terminal
status word), it renders the body once, signs it, and schedules attempt 1 at the
event's clock time with :meth:`Engine.call_at`. When an attempt falls due the book hands
it to a *sender* (an adapter that does the I/O: :mod:`jobmock.senders`), which calls
:meth:`DeliveryBook.report` with the answer. A 2xx ends the delivery; anything else
schedules the next attempt at ``clock.now() + policy.delay_after(n)`` (never slept for),
until the policy's attempts are used up and the delivery is ``exhausted``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .engine import Engine, Event, JobView
from .spec import TERMINAL_ROLES, RetryPolicy, Webhooks
from .templates import iso
from .urlrules import needs_resolution

__all__ = ["Attempt", "Delivery", "DeliveryBook", "Sender", "sign"]

#: jobmock's own headers on every attempt: the delivery's identity and the attempt number.
DELIVERY_HEADER = "X-Jobmock-Delivery"
ATTEMPT_HEADER = "X-Jobmock-Attempt"


def sign(secret: str, body: bytes, fmt: str, timestamp: int | None = None) -> str:
    """The signature header value: ``fmt`` with ``{hex}`` = HMAC-SHA256(secret, body)."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return fmt.replace("{hex}", digest).replace("{timestamp}", str(timestamp or 0))


@dataclass(slots=True)
class Attempt:
    """One try at delivering: when it was due and sent, and what came back."""

    number: int
    scheduled_at: float
    headers: dict[str, str] = field(default_factory=dict)
    sent_at: float | None = None
    finished_at: float | None = None
    status: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def as_dict(self) -> dict[str, Any]:
        return {"number": self.number, "scheduled_at": iso(self.scheduled_at),
                "sent_at": iso(self.sent_at), "finished_at": iso(self.finished_at),
                "status": self.status, "error": self.error, "headers": self.headers}


@dataclass(slots=True)
class Delivery:
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
    state: str = "pending"  # pending | sending | retrying | delivered | exhausted
    next_at: float | None = None

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.body).hexdigest()

    @property
    def done(self) -> bool:
        return self.state in ("delivered", "exhausted")

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "job_id": self.job_id, "event": self.event, "url": self.url,
                "state": self.state, "body_sha256": self.digest, "body_bytes": len(self.body),
                "created_at": iso(self.created_at), "next_at": iso(self.next_at),
                "max_attempts": self.policy.attempts,
                "attempts": [a.as_dict() for a in self.attempts]}


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
        self._seq = 0
        self._sender: Sender | None = None
        self._outbox: list[tuple[Delivery, Attempt]] = []
        self._listeners: list[Callable[[Delivery, Attempt], None]] = []
        #: True under ``--allow-private-callbacks``: no address checks before sending.
        self.allow_private = False
        #: Switched only by the mock's deliberate faults (jobmock.faults).
        self.wrong_signature = False
        self.retries_enabled = True
        engine.subscribe(self._on_event)

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
        self._outbox.clear()
        self._seq = 0

    # -- reading -------------------------------------------------------------------------

    def deliveries(self) -> list[Delivery]:
        return list(self._deliveries.values())

    def get(self, delivery_id: str) -> Delivery | None:
        return self._deliveries.get(delivery_id)

    def for_job(self, job_id: str) -> list[Delivery]:
        return [d for d in self._deliveries.values() if d.job_id == job_id]

    # -- events --------------------------------------------------------------------------

    def _event_name(self, event: Event) -> str | None:
        cfg = self.config
        if event.kind == "progress":
            return "progress" if "progress" in cfg.events else None
        if event.kind != "transition" or event.new is None:
            return None
        role = self.engine.spec.lifecycle.states[event.new]
        if role not in TERMINAL_ROLES:
            return None
        if event.new in cfg.events:
            return event.new
        return "terminal" if "terminal" in cfg.events else None

    def _on_event(self, event: Event) -> None:
        job = event.job
        if not job.callback_url:
            return
        trigger = self._event_name(event)
        if trigger is None:
            return
        cfg = self.config
        name = cfg.event_names.get(trigger) or (
            cfg.event_names.get(job.status) if trigger == "terminal" else None) or trigger
        ctx = {"job": JobView(job, self.engine.spec), "event": name, "base_url": job.base_url,
               "now": iso(event.at), "now_ms": round(event.at * 1000), "tenant": job.tenant}
        body = json.dumps(cfg.body(ctx), separators=(",", ":"), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "jobmock-webhooks"}
        headers.update({k: str(h(ctx)) for k, h in cfg.headers.items()})
        self._seq += 1
        delivery = Delivery(id=f"whd_{self._seq:06d}", job_id=job.id, event=name,
                            url=job.callback_url, body=body, headers=headers, policy=cfg.retry,
                            created_at=event.at)
        self._deliveries[delivery.id] = delivery
        self._schedule(delivery, event.at)

    def _schedule(self, delivery: Delivery, when: float) -> None:
        delivery.next_at = when
        self.engine.call_at(when, lambda: self._due(delivery))

    def _due(self, delivery: Delivery) -> None:
        if delivery.done:
            return
        now = self.engine.clock.now()
        number = len(delivery.attempts) + 1
        headers = dict(delivery.headers)
        headers[DELIVERY_HEADER] = delivery.id
        headers[ATTEMPT_HEADER] = str(number)
        sig = self.config.signature
        if sig is not None and self.secret is not None:
            secret = self.secret + "-wrong" if self.wrong_signature else self.secret
            headers[sig.header] = sign(secret, delivery.body, sig.format, int(now))
        attempt = Attempt(number, delivery.next_at if delivery.next_at is not None else now,
                          headers, sent_at=now)
        delivery.attempts.append(attempt)
        delivery.state, delivery.next_at = "sending", None
        if self._sender is None:
            self._outbox.append((delivery, attempt))
        else:
            self._sender(delivery, attempt)

    def report(self, delivery: Delivery, attempt: Attempt, *, status: int | None = None,
               error: str | None = None) -> None:
        """Record the answer to ``attempt``; schedule the next one or end the delivery."""
        if attempt.finished_at is not None or self._deliveries.get(delivery.id) is not delivery:
            return  # answered already, or forgotten by reset(): never retry it
        now = self.engine.clock.now()
        attempt.finished_at, attempt.status, attempt.error = now, status, error
        if attempt.ok:
            delivery.state = "delivered"
        else:
            delay = delivery.policy.delay_after(attempt.number) if self.retries_enabled else None
            if delay is None:
                delivery.state = "exhausted"
            else:
                delivery.state = "retrying"
                self._schedule(delivery, now + delay)
        for listener in self._listeners:
            listener(delivery, attempt)
