"""A job's path through its lifecycle, drawn once when it is created.

Pure: a function of the spec, the seeded generator and an optional :class:`JobPlan`. The
engine walks the path on its clock; nothing here reads time.
"""

from __future__ import annotations

import itertools
import random

from .records import JobPlan
from .spec import ApiSpec

__all__ = ["MAX_PATH", "check_plan", "draw_path", "walk_from"]

#: The most states a lifecycle graph's path may pass through.
MAX_PATH = 32


def _stay(spec: ApiSpec, rng: random.Random, word: str) -> float:
    step = spec.timing.flow.get(word)
    return rng.uniform(*(step.duration if step else spec.timing.running))


def walk_from(spec: ApiSpec, rng: random.Random, word: str,
              ) -> tuple[list[tuple[str, float]], str]:
    """The states a job goes through after ``word`` (with their stays) and its outcome,
    drawn from ``timing.flow`` (or ``timing.outcomes`` where a state names no ``next``)."""
    t, lc = spec.timing, spec.lifecycle
    path: list[tuple[str, float]] = []
    for _ in range(MAX_PATH):
        step = t.flow.get(word)
        nxt = step.next if step is not None and step.next else tuple(
            (w, wt) for w, wt in t.outcomes if lc.can_move(word, w)) or t.outcomes
        word = rng.choices([w for w, _ in nxt], [w for _, w in nxt])[0]
        if lc.is_terminal(word):
            return path, word
        path.append((word, _stay(spec, rng, word)))
    return path, rng.choices([w for w, _ in t.outcomes], [w for _, w in t.outcomes])[0]


def check_plan(spec: ApiSpec, path: tuple[str, ...] | None, outcome: str | None) -> None:
    """Raise ValueError unless the planned path (and outcome) follow lifecycle.transitions."""
    lc = spec.lifecycle
    words = list(path or ())
    for w in words:
        if w not in lc.states or lc.is_terminal(w) or lc.states[w] == "queued":
            raise ValueError(f"plan path word {w!r} is not a non-terminal status word after "
                             f"queued ({sorted(lc.states)})")
    if outcome is not None and (outcome not in lc.states or not lc.is_terminal(outcome)):
        raise ValueError(f"plan outcome {outcome!r} is not a terminal status word "
                         f"{sorted(lc.terminal_words)}")
    chain = [lc.queued, *words, *([outcome] if outcome is not None and path is not None else [])]
    for a, b in itertools.pairwise(chain):
        if not lc.can_move(a, b):
            raise ValueError(f"the plan moves {a!r} -> {b!r}, which lifecycle.transitions does "
                             f"not allow")


def draw_path(spec: ApiSpec, rng: random.Random, plan: JobPlan | None,
              ) -> tuple[float, tuple[tuple[str, float], ...], str]:
    """Seconds queued, the states after queued with their seconds, and the outcome.

    The classic shape (no ``timing.flow``) draws queued, running and the outcome in that
    order, as it always has; a lifecycle graph walks ``flow`` from the queued state.
    A plan's fields override what is drawn; a plan's path and outcome must follow
    ``lifecycle.transitions``, and a planned path without an outcome ends in one drawn
    from its last state.
    """
    t, lc = spec.timing, spec.lifecycle
    words = [w for w, _ in t.outcomes]
    weights = [w for _, w in t.outcomes]
    if plan is not None:
        check_plan(spec, plan.path, plan.outcome)
    planned = plan.path if plan is not None and plan.path is not None else None
    if not t.flow:
        queued_for = rng.uniform(*t.queued)
        running_for = rng.uniform(*t.running)
        outcome = rng.choices(words, weights)[0]
        states = list(planned) if planned is not None else (
            [lc.running] if lc.running is not None else [])
        path = [(w, running_for / max(1, len(states))) for w in states]
    else:
        queued_for = rng.uniform(*t.flow[lc.queued].duration)
        path, outcome = walk_from(spec, rng, lc.queued)
        if planned is not None:
            path = [(w, _stay(spec, rng, w)) for w in planned]
    if planned is not None:
        last = planned[-1] if planned else lc.queued
        if not lc.can_move(last, outcome):
            _, outcome = walk_from(spec, rng, last)
    if plan is not None:
        queued_for = plan.queued_for if plan.queued_for is not None else queued_for
        if plan.running_for is not None and path:
            total = sum(d for _, d in path)
            path = [(w, plan.running_for * (d / total if total > 0 else 1 / len(path)))
                    for w, d in path]
        if plan.outcome is not None:
            last = path[-1][0] if path else lc.queued
            if not lc.can_move(last, plan.outcome):
                route = lc.route(last, plan.outcome)
                if planned is None and lc.can_move(lc.queued, plan.outcome):
                    path = []  # it ends straight from queued, as the transitions allow
                elif planned is None and route is not None:
                    path += [(w, _stay(spec, rng, w)) for w in route[:-1]]
                else:
                    raise ValueError(f"plan outcome {plan.outcome!r} cannot follow {last!r} "
                                     f"by lifecycle.transitions")
            outcome = plan.outcome
    return queued_for, tuple(path), outcome
