"""Checks of the rules the probes (:mod:`jobmock.contract.probes`) and polls bring out:
callback URL rules, queue order under a concurrency limit, and credits.

Registered in the same registry as :mod:`jobmock.contract.checks` (importing this module
registers them); everything expected is read from the spec.
"""

from __future__ import annotations

from typing import Any

from .checks import _body_text, _error_matches, fail, register
from .context import Observation, SuiteContext
from .specview import pointer_get
from .verdicts import VERDICTS

__all__ = ["check_callback_urls", "check_credits", "check_queue_order"]


@register("callback_urls", "a callback URL the spec's rule forbids is refused with the spec's "
          "error, and one it allows is accepted", "callback_url")
def check_callback_urls(ctx: SuiteContext, obs: Observation) -> None:
    ex, op, url = obs.exchange, obs.extra["op"], obs.extra["url"]
    rule = ctx.spec.callbacks.url_rule if ctx.spec.callbacks else "any"
    if obs.extra["expect"] == "refused":
        if ex.status in ctx.view.submit_statuses[op.operation_id] and ex.status < 300:
            raise fail(ctx, "callback_urls",
                       f"callback URL {url!r} was accepted ({ex.status}); the spec's rule "
                       f"{rule!r} forbids it ({obs.extra['why']}) and expects its validation error")
        _error_matches(ctx, "callback_urls", ex, "validation",
                       f"a submit with callback URL {url!r} ({obs.extra['why']})")
        return
    if ex.status not in ctx.view.submit_statuses[op.operation_id]:
        raise fail(ctx, "callback_urls",
                   f"callback URL {url!r}, which the spec's rule {rule!r} allows, was refused "
                   f"with {ex.status}; expected one of {sorted(ctx.view.submit_statuses[op.operation_id])}."
                   f"\nBody: {_body_text(ex)}")


@register("queue_order", "under a concurrency limit a tenant's jobs start in the order they "
          "were submitted (FIFO)", "queue_order")
def check_queue_order(ctx: SuiteContext, obs: Observation) -> None:
    """One round of polls, latest submit first. A later job seen started while an earlier one
    is seen queued *after* it (in this round, or in any later round) proves the later one
    started first: statuses only move forward."""
    started: dict[int, str] = obs.extra["started"]  # index -> job id, seen started before now
    for index, job_id, word in obs.extra["round"]:
        role = ctx.view.role(word)
        if role == "queued":
            jumped = sorted(i for i in started if i > index)
            if jumped:
                later = jumped[0]
                raise fail(ctx, "queue_order",
                           f"job #{later + 1} ({started[later]}) had started while job "
                           f"#{index + 1} ({job_id}), submitted before it by the same tenant, was "
                           f"still {word!r}; the spec processes a tenant's jobs in order (FIFO)")
        elif role is not None:
            started.setdefault(index, job_id)


def _number(body: Any, pointers: list[str]) -> float | None:
    for pointer in pointers:
        found, value = pointer_get(body, pointer)
        if found and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


@register("credits", "credits are charged in full in the statuses the spec names, never "
          "otherwise (never on failure), and never taken back", "poll")
def check_credits(ctx: SuiteContext, obs: Observation) -> None:
    spec, view, job = ctx.spec, ctx.view, obs.job
    if spec.credits_cost is None or job is None:
        return
    body = obs.exchange.json()
    charged = _number(body, view.status_pointers("job.credits_charged"))
    if charged is None:
        return
    word = pointer_get(body, spec.lifecycle.status_pointer)[1]
    before = job.seen.get("credits:charged")
    if isinstance(before, float) and charged < before:
        raise fail(ctx, "credits", f"job {job.id} was charged {before:g} credits, now {charged:g}; "
                                   f"a charge is never taken back")
    job.seen["credits:charged"] = charged
    to_charge = _number(body, view.status_pointers("job.credits_to_charge"))
    if to_charge is None and not view.assumed.covers("/x-jobmock/credits/cost"):
        to_charge = float(job.op.credits if job.op.credits is not None else spec.credits_cost)
    if word in spec.credits_charge_on:
        if to_charge is not None and charged != to_charge:
            raise fail(ctx, "credits", f"job {job.id} is {word!r} and was charged {charged:g} "
                                       f"credits; the spec charges {to_charge:g} there")
        return
    if not charged:
        return
    if view.assumed.covers("/x-jobmock/credits/charge_on"):
        VERDICTS.note(spec.name, "credits", f"a {word!r} job was charged {charged:g} credits: not "
                                            f"demanded otherwise (the spec assumes its credit rule)")
        return
    raise fail(ctx, "credits", f"job {job.id} is {word!r} and was charged {charged:g} credits; "
                               f"the spec charges only in {sorted(spec.credits_charge_on)}")
