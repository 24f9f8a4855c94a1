"""Helpers shared by the webhook tests (tests/test_webhooks.py, tests/test_webhooks_live.py).

A seeded plan of receiver faults, and the reconciliation of a delivery journal (in-process
:class:`~jobmock.webhooks.Delivery` objects or the control plane's JSON listing) with what a
:class:`~jobmock.receiver.WebhookReceiver` actually got.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pytest

from jobmock.receiver import Received, WebhookReceiver

WEBHOOK_TIMEOUT = 0.3  # the mock gives up on a receiver after this
FAULT_DELAY = 0.6  # seconds the receiver holds a "slow" answer: past the timeout
TERMINAL_ROLES = ("completed", "failed", "canceled", "expired", "rejected")
#: jobmock's own headers on every attempt (the receiver matches names in any case).
DELIVERY_HEADER = "x-jobmock-delivery"
ATTEMPT_HEADER = "x-jobmock-attempt"
#: How a sender records an attempt whose request it never finished sending (so no receiver
#: need have seen it): the connect failed or timed out, or the write timed out (a process
#: starved of CPU on a loaded machine can pass the 0.3 s timeout in the middle of a write).
NEVER_CONNECTED = ("timeout: ConnectTimeout", "ConnectError", "timeout: WriteTimeout")

#: An attempt: (delivery id, attempt number).
AttemptKey = tuple[str, int]


def epoch(iso_text: str) -> float:
    return datetime.fromisoformat(iso_text.replace("Z", "+00:00")).timestamp()


def with_pointer(body: dict[str, Any], pointer: str, value: Any) -> dict[str, Any]:
    """``body`` with ``value`` placed at the JSON pointer (creating objects on the way)."""
    out: dict[str, Any] = json.loads(json.dumps(body))
    parts = pointer.lstrip("/").split("/")
    node = out
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def load_faults(receiver: WebhookReceiver, n: int, seed: int) -> Counter[str]:
    """Queue ``n`` seeded answers: 500, slow (past the timeout), dropped, or 200."""
    rng = random.Random(seed)
    plan: Counter[str] = Counter()
    for _ in range(n):
        x = rng.random()
        if x < 0.35:
            receiver.fail_next(1, status=500)
            plan["500"] += 1
        elif x < 0.45:
            receiver.fail_next(1, delay=FAULT_DELAY)
            plan["slow"] += 1
        elif x < 0.55:
            receiver.fail_next(1, drop=True)
            plan["drop"] += 1
        else:
            receiver.fail_next(1, status=200)
            plan["200"] += 1
    return plan


def received_keys(received: list[Received]) -> Counter[AttemptKey]:
    return Counter((str(r.header(DELIVERY_HEADER)), int(r.header(ATTEMPT_HEADER) or 0))
                   for r in received)


def check_receiver_saw(receiver: WebhookReceiver, listed: Counter[AttemptKey],
                       answers: Mapping[AttemptKey, tuple[str | None, int | None]],
                       wait: float = 10.0) -> tuple[list[Received], int]:
    """Every attempt the journal lists (``listed``; ``answers`` holds each one's recorded
    (error, status)) reached the receiver exactly once, and nothing else did.

    The one exception is an attempt the journal itself records as never sent (its connect
    timed out or was refused, or its write timed out): no whole request was written, so the
    receiver need not have it. Returns what the receiver got and how many such attempts there were.
    """
    unconnected = {k for k, (error, _) in answers.items() if (error or "").startswith(NEVER_CONNECTED)}
    try:
        got = receiver.wait_for(len(answers) - len(unconnected), timeout=wait)
    except TimeoutError:
        got = list(receiver.received)
    seen = received_keys(got)
    missing = {k for k in listed - seen if k not in unconnected}
    if missing:
        errors = Counter((answers[k][0] or f"status {answers[k][1]}")[:60] for k in missing)
        pytest.fail(f"{len(missing)} of {len(answers)} attempts the journal lists never reached "
                    f"the receiver; their recorded answers: {errors.most_common(4)}")
    extra = seen - listed
    assert not extra, f"requests the journal does not list: {extra.most_common(5)}"
    assert max(seen.values(), default=1) == 1, "an attempt arrived twice"
    return got, len(unconnected)
