"""What the control plane sets, as replicas on one shared store agree on it.

:mod:`jobmock.snapshot` shares a mock's jobs, schedule, clock, advance mode, credits and
webhook deliveries. The control plane also sets, per mock, the faults switched on (and the
jobs a fault has seen), the scenario loaded (and its rule counters), and it reads the
request journal. :class:`ControlState` turns the first two into one small JSON document
(:meth:`ControlState.dump`, :meth:`ControlState.apply`) and tells cheaply whether they
changed (:meth:`ControlState.signature`); :func:`encode_entry` and :func:`decode_entry`
turn journal entries into JSON for a shared list, with their credentials already masked.

What stays with each replica: a scenario's held answers and their timers (callbacks into
the replica's own event loop), and the settings ``serve`` gives each process (control
token, journal secrets, journal size, webhook secret and timeout).
"""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path
from typing import Any

from .dispatch import Mock
from .errors import ScenarioError
from .faults import FaultSwitch, enabled, set_faults
from .journal import JournalEntry, Redactor
from .scenarios import active_scenario, install_scenario, load_scenario

__all__ = ["ControlState", "decode_entry", "encode_entry"]

LOG = logging.getLogger("jobmock.store")

#: The fields of a journal entry, in the order a shared entry lists them.
_ENTRY_FIELDS = tuple(JournalEntry.__dataclass_fields__)


def encode_entry(entry: JournalEntry) -> bytes:
    """A journal entry as compact JSON (its credentials as the journal masked them)."""
    return json.dumps([getattr(entry, f) for f in _ENTRY_FIELDS],
                      separators=(",", ":"), ensure_ascii=False).encode()


def decode_entry(data: bytes | str) -> JournalEntry:
    """The entry :func:`encode_entry` wrote; ValueError for anything else."""
    values = json.loads(data)
    if not isinstance(values, list) or len(values) != len(_ENTRY_FIELDS) \
            or not isinstance(values[5], dict) or not isinstance(values[0], int):
        raise ValueError("not a journal entry")
    return JournalEntry(*values)


class ControlState:
    """The faults and the scenario of one mock, as one document a shared store keeps."""

    def __init__(self, mock: Mock) -> None:
        self.mock = mock
        #: The scenario installed here and the token replicas know its install by.
        self._active: Any = None
        self._token: str | None = None

    def signature(self) -> tuple[Any, ...]:
        """A value that changes whenever :meth:`dump` would: cheap (no scenario, no fault
        memory: a few lookups), so a turn can ask it every time."""
        mock = self.mock
        switch = mock.extensions.get("faults")
        faults: tuple[Any, ...] = ()
        if isinstance(switch, FaultSwitch):
            memory = switch.memory
            faults = (switch.enabled, len(memory), next(reversed(memory)) if memory else None)
        active = active_scenario(mock)
        scenario: tuple[Any, ...] = ()
        if active is not None:
            scenario = (active, tuple(active._seen), tuple(active._applied))
        return faults, scenario

    def dump(self) -> bytes:
        """The faults (and the jobs they have seen), the scenario's document and counters,
        and the journal's masking key (so every replica masks a credential alike)."""
        mock = self.mock
        switch = mock.extensions.get("faults")
        active = active_scenario(mock)
        scenario = None
        if active is not None:
            scenario = {"document": dict(active.scenario.document), "file": active.scenario.file,
                        "name": active.name, "seen": list(active._seen),
                        "applied": list(active._applied), "token": self._token_of(active)}
        state = {
            "faults": sorted(enabled(mock)),
            "memory": list(switch.memory) if isinstance(switch, FaultSwitch) else [],
            "scenario": scenario,
            "journal_key": mock.journal.redactor(mock.spec).key.hex(),
        }
        return json.dumps(state, separators=(",", ":"), default=str).encode()

    def _token_of(self, active: Any) -> str:
        """The token of a scenario install (new when it was installed here)."""
        if active is not self._active or self._token is None:
            self._active, self._token = active, secrets.token_hex(8)
        return self._token

    def apply(self, data: bytes | str) -> bool:
        """Make the mock's faults and scenario those of ``data`` (from :meth:`dump` on any
        replica). Returns whether a scenario was installed here: that forgets the mock's
        jobs and journal (see :func:`jobmock.scenarios.install_scenario`), which the caller
        then reloads."""
        mock = self.mock
        state = json.loads(data)
        if not isinstance(state, dict):
            raise ValueError("not a control state")
        key = state.get("journal_key")
        if isinstance(key, str):
            redactor = mock.journal.redactor(mock.spec)
            if redactor.key.hex() != key:
                mock.journal.use_redactor(Redactor(mock.spec, bytes.fromhex(key)))
        scenario = state.get("scenario")
        installed = False
        active = active_scenario(mock)
        if isinstance(scenario, dict):
            if scenario.get("token") != self._token or active is None or active is not self._active:
                document = dict(scenario["document"])
                # The spec this replica serves (the same document: the store's keys say so),
                # never a path relative to the replica that loaded the file.
                document["api"] = str(Path(mock.spec.file).resolve())
                document["name"] = scenario.get("name") or document.get("name")
                try:
                    active = install_scenario(mock, load_scenario(document,
                                                                  file=scenario.get("file")))
                except ScenarioError as exc:
                    LOG.warning("jobmock: the shared scenario does not load here: %s", exc)
                    active = None
                installed = True
                self._active, self._token = active, str(scenario.get("token"))
            if active is not None:
                n = len(active._seen)
                seen, applied = scenario.get("seen") or [], scenario.get("applied") or []
                if len(seen) == n and len(applied) == n:
                    active._seen, active._applied = [int(x) for x in seen], [int(x) for x in applied]
        elif active is not None:  # (a scenario is replaced, never removed: defensive)
            active.uninstall()
            self._active, self._token = None, None
        names = state.get("faults") or []
        if frozenset(names) != enabled(mock):
            try:
                set_faults(mock, names)
            except ValueError as exc:
                LOG.warning("jobmock: the shared faults do not apply here: %s", exc)
        switch = mock.extensions.get("faults")
        if isinstance(switch, FaultSwitch):
            memory = state.get("memory") or []
            if list(switch.memory) != memory:
                switch.memory.clear()  # in place: Mock.reset holds this dict's clear
                switch.memory.update((str(j), None) for j in memory)
        return installed
