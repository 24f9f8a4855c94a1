"""A job's path through its lifecycle, drawn once when it is created.

Pure: a function of the spec, the seeded generator and an optional :class:`JobPlan`. The
engine walks the path on its clock; nothing here reads time.
"""

from __future__ import annotations

import random

from .records import JobPlan
from .spec import ApiSpec

__all__ = ["MAX_PATH", "draw_path"]

#: The most states a lifecycle graph's path may pass through.
MAX_PATH = 32


def draw_path(spec: ApiSpec, rng: random.Random, plan: JobPlan | None,
              ) -> tuple[float, tuple[tuple[str, float], ...], str]:
    """Seconds queued, the states after queued with their seconds, and the outcome.

    The classic shape (no ``timing.flow``) draws queued, running and the outcome in that
    order, as it always has; a lifecycle graph walks ``flow`` from the queued state.
    A plan's fields override what is drawn.
    """
    t, lc = spec.timing, spec.lifecycle
    words = [w for w, _ in t.outcomes]
    weights = [w for _, w in t.outcomes]
    if not t.flow:
        queued_for = rng.uniform(*t.queued)
        running_for = rng.uniform(*t.running)
        outcome = rng.choices(words, weights)[0]
        states = [lc.running] if lc.running is not None else []
        planned = plan.path if plan is not None and plan.path is not None else states
        path = [(w, running_for / max(1, len(planned))) for w in planned]
    else:
        queued_for = rng.uniform(*t.flow[lc.queued].duration)
        path = []
        word = lc.queued
        for _ in range(MAX_PATH):
            step = t.flow.get(word)
            nxt = step.next if step is not None and step.next else t.outcomes
            word = rng.choices([w for w, _ in nxt], [w for _, w in nxt])[0]
            if lc.is_terminal(word):
                break
            step = t.flow.get(word)
            path.append((word, rng.uniform(*(step.duration if step else t.running))))
        outcome = word if lc.is_terminal(word) else rng.choices(words, weights)[0]
        if plan is not None and plan.path is not None:
            path = [(w, rng.uniform(*(t.flow[w].duration if w in t.flow else t.running)))
                    for w in plan.path]
    if plan is not None:
        if plan.path is not None:
            for w in plan.path:
                if w not in lc.states or lc.is_terminal(w) or lc.states[w] == "queued":
                    raise ValueError(f"plan path word {w!r} is not a non-terminal status word "
                                     f"after queued ({sorted(lc.states)})")
        queued_for = plan.queued_for if plan.queued_for is not None else queued_for
        if plan.running_for is not None and path:
            total = sum(d for _, d in path)
            path = [(w, plan.running_for * (d / total if total > 0 else 1 / len(path)))
                    for w, d in path]
        if plan.outcome is not None:
            if plan.outcome not in lc.states:
                raise ValueError(f"plan outcome {plan.outcome!r} is not a status word")
            outcome = plan.outcome
    return queued_for, tuple(path), outcome

