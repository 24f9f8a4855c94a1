"""A scenario at work in one mock: :class:`ActiveScenario` turns its rules into the mock's
``submit_hooks``, ``response_hooks`` and ``reset_hooks`` and is kept in
``mock.extensions["scenario"]``; :func:`install_scenario`, :func:`active_scenario` and
:func:`scenario_mock`."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..engine import JobPlan, Timer
from ..errors import LimitExceeded, ScenarioError
from ..spec import Operation
from .format import ResponseFault, Rule, Scenario, load_scenario

if TYPE_CHECKING:
    from ..dispatch import Mock, Request, Response

__all__ = ["ActiveScenario", "active_scenario", "install_scenario", "scenario_mock"]


# --------------------------------------------------------------------------- installing


class ActiveScenario:
    """A scenario installed in one mock: its hooks, its counters and what it changed.

    Kept in ``mock.extensions["scenario"]``; :meth:`reset` (a reset hook, so ``Mock.reset``
    calls it) restarts its counters,
    :meth:`uninstall` removes it and restores what it changed.
    """

    def __init__(self, mock: Mock, scenario: Scenario) -> None:
        self.mock = mock
        self.scenario = scenario
        self.name = scenario.name
        self.description = scenario.description
        n = len(scenario.rules)
        self._seen = [0] * n
        self._applied = [0] * n
        self._marked: dict[int, tuple[Request, list[Rule], list[Rule]]] = {}
        self._held = 0
        self._timers: list[Timer] = []
        self._saved: tuple[Any, ...] | None = None
        self.notes: list[str] = []

    def install(self) -> None:
        m, s = self.mock, self.scenario
        engine = m.engine
        self._saved = (m.spec, engine.spec, engine.advance, m.allow_private_callbacks, engine.seed)
        if s.has_limits:
            lim = m.spec.limits
            if s.queue_max is not None:
                lim = replace(lim, queue_max=s.queue_max, queue_error=s.queue_error)
            if s.concurrency_max is not None:
                lim = replace(lim, concurrency_max=s.concurrency_max)
            m.spec = engine.spec = replace(m.spec, limits=lim)
        if s.seed is not None:
            engine.seed = s.seed
        if s.advance is not None:
            engine.set_advance(s.advance)
        if s.allow_private_callbacks is not None:
            m.allow_private_callbacks = s.allow_private_callbacks
        m.submit_hooks.append(self._on_submit)
        m.response_hooks.append(self._on_response)
        m.reset_hooks.append(self.reset)
        m.extensions["scenario"] = self
        engine.reset()
        m.journal.clear()
        if m.webhooks is not None:
            m.webhooks.reset()
        self.reset()
        kind = "virtual" if m.clock.speed == 0 else "real"
        if s.clock_given and (kind != s.clock or (kind == "real" and m.clock.speed != s.speed)):
            self.notes.append(f"the scenario asks for a {s.clock} clock"
                              + (f" x{s.speed:g}" if s.clock == "real" else "")
                              + f"; this mock keeps its {kind} clock")

    def uninstall(self) -> None:
        m = self.mock
        if self._on_submit in m.submit_hooks:
            m.submit_hooks.remove(self._on_submit)
        if self._on_response in m.response_hooks:
            m.response_hooks.remove(self._on_response)
        if self.reset in m.reset_hooks:
            m.reset_hooks.remove(self.reset)
        if m.extensions.get("scenario") is self:
            del m.extensions["scenario"]
        for timer in self._timers:
            timer.cancel()
        if self._saved is not None:
            m.spec, m.engine.spec, advance, m.allow_private_callbacks, m.engine.seed = self._saved
            m.engine.set_advance(advance)
            self._saved = None

    def reset(self) -> None:
        """Restart the rule counters (``nth``, ``times``) and forget held answers."""
        n = len(self.scenario.rules)
        self._seen = [0] * n
        self._applied = [0] * n
        self._marked.clear()
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self._held = 0

    def state(self) -> dict[str, Any]:
        """What ``GET /_jobmock/scenario`` adds: rule counters, held answers, the clock."""
        m = self.mock
        return {
            "api": m.spec.name, "file": self.scenario.file,
            "rules": [{"name": r.name, "matched": self._seen[r.index],
                       "applied": self._applied[r.index], "times": r.times}
                      for r in self.scenario.rules],
            "held": self._held, "requests": m.journal.total, "jobs": len(m.engine.store),
            "clock": {"epoch": m.clock.now(), "next_due_epoch": m.engine.next_due()},
            "notes": list(self.notes),
        }

    # -- hooks ------------------------------------------------------------------------------

    def _hit(self, rule: Rule, operation: str | None, request: Request, tenant: str | None,
             body: Callable[[], Any], status: int | None) -> tuple[bool, bool]:
        """(counted, applied) for one rule and one request."""
        if not rule.match.test(operation, request, tenant, body, status):
            return False, False
        i = rule.index
        self._seen[i] += 1
        if rule.match.nth is not None and self._seen[i] not in rule.match.nth:
            return True, False
        if rule.times is not None and self._applied[i] >= rule.times:
            return True, False
        self._applied[i] += 1
        return True, True

    def _on_submit(self, op: Operation, request: Request, tenant: str | None,
                   body: Any) -> JobPlan | None:
        seen: list[Rule] = []
        hits: list[Rule] = []
        for rule in self.scenario.rules:
            if rule.limit is None:
                continue
            counted, applied = self._hit(rule, op.operation_id, request, tenant, lambda: body, None)
            if applied:
                self._marked[id(request)] = (request, [], [rule])
                lim = rule.limit
                raise LimitExceeded(lim.message or f"refused by scenario rule {rule.name!r}",
                                    error_name=lim.error, context=dict(lim.context))
        fields: dict[str, Any] = {}
        for rule in self.scenario.rules:
            if rule.job is None or rule.limit is not None:
                continue
            counted, applied = self._hit(rule, op.operation_id, request, tenant, lambda: body, None)
            if counted:
                seen.append(rule)
            if applied:
                hits.append(rule)
                for key, value in rule.job.items():
                    fields.setdefault(key, value)
        if seen:
            self._marked[id(request)] = (request, seen, hits)
        return JobPlan(**fields) if fields else None

    def _on_response(self, request: Request, response: Response, info: dict[str, Any]) -> Response:
        faults: list[ResponseFault] = []
        entry = self._marked.pop(id(request), None)
        if entry is not None:
            _, seen, hits = entry
            if info.get("job_id") is None and seen:
                # The API refused the submit after all (its own limit): no job, not counted.
                for rule in seen:
                    self._seen[rule.index] -= 1
                for rule in hits:
                    self._applied[rule.index] -= 1
                hits = [r for r in hits if r.limit is not None]
            faults.extend(r.response for r in hits if r.response is not None)
        parsed: list[Any] = []

        def body() -> Any:
            if not parsed:
                try:
                    parsed.append(json.loads(request.body) if request.body else None)
                except ValueError:
                    parsed.append(None)
            return parsed[0]

        for rule in self.scenario.rules:
            if rule.at_submit or rule.response is None:
                continue
            _, applied = self._hit(rule, info.get("operation"), request, info.get("tenant"), body,
                                   response.status)
            if applied:
                faults.append(rule.response)
        if not faults:
            return response
        before = response.delay
        for fault in faults:
            response = fault.apply(self.mock, request, response, info)
        if response.delay > before:
            self._held += 1
            clock = self.mock.clock
            self._timers.append(self.mock.engine.call_at(clock.now() + response.delay, self._release))
        return response

    def _release(self) -> None:
        self._held = max(0, self._held - 1)
        self._timers = [t for t in self._timers if not t.done]


def install_scenario(mock: Mock, source: Any) -> ActiveScenario:
    """Install a scenario (a path, a parsed mapping or a :class:`Scenario`) in ``mock``.

    Replaces a scenario installed before, and starts from a clean state (jobs, journal and
    webhook deliveries are forgotten; the clock keeps its time).
    """
    scenario = load_scenario(source)
    if scenario.spec.name != mock.spec.name:
        raise ScenarioError(scenario.file, "/api", f"the API this mock serves ({mock.spec.name!r}), "
                                                  f"got {scenario.spec.name!r}")
    old = active_scenario(mock)
    if old is not None:
        old.uninstall()
    active = ActiveScenario(mock, scenario)
    active.install()
    return active


def scenario_mock(source: Any, **options: Any) -> Mock:
    """A :class:`~jobmock.dispatch.Mock` of the scenario's API (virtual clock, the scenario's
    seed) with the scenario loaded. ``options`` go to ``Mock``."""
    from ..clock import VirtualClock
    from ..dispatch import Mock

    scenario = load_scenario(source)
    options.setdefault("clock", VirtualClock())
    options.setdefault("seed", scenario.seed or 0)
    mock = Mock(scenario.spec, **options)
    install_scenario(mock, scenario)
    return mock


def active_scenario(mock: Mock) -> ActiveScenario | None:
    """The scenario installed in ``mock``, if any."""
    found = mock.extensions.get("scenario")
    return found if isinstance(found, ActiveScenario) else None
