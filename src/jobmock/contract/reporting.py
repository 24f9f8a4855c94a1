"""The suite's HTML report (``--jobmock-report PATH``, ``jobmock contract ... --report PATH``).

A pytest plugin the suite registers when the option is given. It listens to what the
suite already does, over HTTP only: every exchange each :class:`ContractClient` sends
(:data:`jobmock.contract.client.EXCHANGE_HOOKS`), every observation the checks judge
(:data:`jobmock.contract.checks.OBSERVERS`), and each test's outcome. At the end of the
session it builds a :class:`jobmock.report.Report` (checks and reasons, failures with
their curl reproductions, per API the lifecycle diagram, coverage and a swimlane per
job) and writes the page with :func:`jobmock.report.write_report`.

Times: against a server with a jobmock virtual clock, a job's marks are placed on that
clock (each answer of ``/_jobmock/clock`` and ``/_jobmock/clock/advance`` says where it
stands); against any other server, on the wall clock.
"""

from __future__ import annotations

import itertools
import json
import re
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from ..diagram import mermaid
from ..pointers import find
from ..report import ApiSection, CheckRow, Coverage, Failure, JobTimeline, Mark, Report, write_report
from ..spec import ApiSpec, Operation
from . import checks as _checks
from . import client as _client
from .client import ContractClient, Exchange
from .context import Observation, SuiteContext
from .specview import SpecView
from .verdicts import VERDICTS, applicability
from .violations import ContractViolation

__all__ = ["ReportPlugin"]

#: The most jobs drawn per API (failing examples' jobs and webhook jobs first).
MAX_JOBS = 40
_CURL = re.compile(r"^\s*curl .*$", re.MULTILINE)


@dataclass(slots=True)
class _Sent:
    started: float
    ended: float
    exchange: Exchange


@dataclass(slots=True)
class _Stream:
    """Everything one client (one example of one API) sent, and what the checks saw."""

    spec: ApiSpec
    base_url: str
    sent: list[_Sent] = field(default_factory=list)
    #: (wall time, virtual clock epoch) from each clock answer, in order.
    epochs: list[tuple[float, float]] = field(default_factory=list)
    observations: list[tuple[float, Observation]] = field(default_factory=list)
    #: Job ids and the received webhooks seen for them.
    webhooks: dict[str, list[Any]] = field(default_factory=dict)
    schedule: dict[str, Any] = field(default_factory=dict)
    #: Why its jobs are drawn first: ``failing example`` (the violation's), or empty.
    failing: str = ""

    def at(self, wall: float) -> float:
        """Where ``wall`` falls on the server's clock: its virtual clock if it has one."""
        if not self.epochs:
            return wall
        current = self.epochs[0][1]
        for when, epoch in self.epochs:
            if when > wall:
                break
            current = epoch
        return current


def _ops(spec: ApiSpec) -> list[tuple[re.Pattern[str], Operation]]:
    out = []
    for op in spec.operations:
        rx = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(op.path)) + "$"
        out.append((re.compile(rx), op))
    return sorted(out, key=lambda p: -len([s for s in p[1].path.split("/") if "{" not in s]))


class ReportPlugin:
    """Collects a contract run and writes its HTML report to ``path`` at the end."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.streams: list[_Stream] = []
        self._by_client: weakref.WeakKeyDictionary[ContractClient, _Stream] = (
            weakref.WeakKeyDictionary())
        self.failures: list[Failure] = []
        self.outcomes = {"passed": 0, "failed": 0, "skipped": 0}
        self.written: Path | None = None
        self._before = 0
        self._observed: _Stream | None = None
        #: (API, check) -> the first line of each violation the run raised
        self._reasons: dict[tuple[str, str], list[str]] = {}
        _client.EXCHANGE_HOOKS.append(self._exchange)
        _checks.OBSERVERS.append(self._observe)

    # -- listening --------------------------------------------------------------------------

    def _stream(self, client: ContractClient) -> _Stream:
        stream = self._by_client.get(client)
        if stream is None:
            stream = _Stream(client.spec, client.base_url)
            self._by_client[client] = stream
            self.streams.append(stream)
        return stream

    def _exchange(self, client: ContractClient, exchange: Exchange) -> None:
        now = time.time()
        stream = self._stream(client)
        stream.sent.append(_Sent(now - exchange.elapsed, now, exchange))
        path = urlsplit(exchange.url).path
        if exchange.status == 200 and path.endswith(("/_jobmock/clock", "/_jobmock/clock/advance")):
            data = exchange.json()
            if isinstance(data, dict) and isinstance(data.get("epoch"), int | float):
                stream.epochs.append((now, float(data["epoch"])))

    def _observe(self, ctx: SuiteContext, obs: Observation) -> None:
        stream = self._stream(ctx.client)
        stream.observations.append((time.time(), obs))
        self._observed = stream
        if obs.kind == "webhook" and obs.job is not None and ctx.receiver is not None:
            key = obs.job.id.encode()
            stream.webhooks[obs.job.id] = [r for r in list(ctx.receiver.received) if key in r.body]
        if obs.kind == "webhook_retries":
            stream.schedule = {"attempts": list(obs.extra.get("attempts") or []),
                               "times": list(obs.extra.get("times") or []), "ctx": ctx}

    # -- pytest hooks -----------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        if report.when == "setup":
            self._before = len(self.streams)
            self._observed = None
        if report.when == "call" or report.failed:
            if report.passed:
                self.outcomes["passed"] += 1
            elif report.skipped:
                self.outcomes["skipped"] += 1
            else:
                self.outcomes["failed"] += 1
                self._failure(item, call, report)
        elif report.skipped:
            self.outcomes["skipped"] += 1
        return report

    def _failure(self, item: pytest.Item, call: pytest.CallInfo[None], report: Any) -> None:
        exc = _violation(call.excinfo.value) if call.excinfo is not None else None
        # The example a violation was raised in is the one the checks last judged (what it
        # sent afterwards, its teardown, is on the same client); else the test's last one.
        if isinstance(exc, ContractViolation) and self._observed is not None:
            self._observed.failing = "failing example"
        elif len(self.streams) > self._before:
            self.streams[-1].failing = "the last example before the failure"
        if isinstance(exc, ContractViolation):
            self.failures.append(Failure(item.nodeid, exc.check, exc.title, exc.detail,
                                         exc.reproduction))
            api = self._observed.spec.name if self._observed is not None else ""
            first = exc.detail.splitlines()[0] if exc.detail else exc.title
            self._reasons.setdefault((api, exc.check), []).append(first)
            return
        text = str(getattr(report, "longreprtext", "") or exc or "failed")
        first = next((line for line in str(exc or text).splitlines() if line.strip()), "failed")
        self.failures.append(Failure(item.nodeid, "", first[:200], text[-6000:],
                                     "\n".join(m.group(0).strip() for m in _CURL.finditer(text))))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        _client.EXCHANGE_HOOKS[:] = [h for h in _client.EXCHANGE_HOOKS if h != self._exchange]
        _checks.OBSERVERS[:] = [h for h in _checks.OBSERVERS if h != self._observe]
        self.written = write_report(self.build(), self.path)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.written is not None:
            terminalreporter.write_line(f"jobmock contract report: {self.written.resolve()}")

    # -- building the report ------------------------------------------------------------------

    def build(self) -> Report:
        """The report of what was collected so far."""
        reasons = self._reasons
        apis: dict[str, list[_Stream]] = {}
        for stream in self.streams:
            apis.setdefault(stream.spec.name, []).append(stream)
        rows: list[CheckRow] = []
        for name, streams in apis.items():
            record = VERDICTS.apis.get(name)
            na = applicability(streams[0].spec)
            for c in _checks.CHECKS.values():
                row = record.rows.get(c.name) if record is not None else None
                if row is None:
                    rows.append(CheckRow(c.name, c.title, 0, 0, reasons.get((name, c.name), []),
                                         name, f"not applicable: {na[c.name]}" if c.name in na
                                         else "not run"))
                    continue
                why = [*reasons.get((name, c.name), []), *row.reasons, *row.notes]
                rows.append(CheckRow(c.name, c.title, row.runs, row.failures, why, name,
                                     row.verdict(na.get(c.name))))
        names = ", ".join(apis) or "no API"
        report = Report(f"jobmock contract report: {names}", passed=self.outcomes["passed"],
                        failed=self.outcomes["failed"], skipped=self.outcomes["skipped"],
                        checks=rows, failures=list(self.failures))
        for streams in apis.values():
            report.apis.append(self._section(streams))
        return report

    def _section(self, streams: list[_Stream]) -> ApiSection:
        spec = streams[0].spec
        #: (rank: the failing example's jobs, then webhook jobs, then the busiest; timeline)
        timelines: list[tuple[int, JobTimeline]] = []
        words: set[str] = set()
        moves: set[str] = set()
        for number, stream in enumerate(streams, start=1):
            for tl, seen in _timelines(stream):
                rank = 0 if stream.failing else (1 if any(m.lane == "webhooks" for m in tl.marks) else 2)
                tl.flag = stream.failing
                tl.title = f"example {number}: {tl.title}"
                timelines.append((rank * 10_000 - len(tl.marks), tl))
                words.update(seen)
                moves.update(f"{a} -> {b}" for a, b in itertools.pairwise(seen)
                             if a != b and spec.lifecycle.can_move(a, b))
        timelines.sort(key=lambda p: p[0])
        lc = spec.lifecycle
        record = VERDICTS.apis.get(spec.name)
        ops = _operations(streams)
        errors = _errors(spec, streams)
        if record is not None:  # what the suite itself counted, too
            words |= record.states
            moves |= {f"{a} -> {b}" for a, b in record.transitions}
            ops |= record.operations
            errors |= record.errors
        all_moves = [f"{a} -> {b}" for a, targets in lc.transitions.items()
                     for b in sorted(targets, key=list(lc.states).index)]
        coverage = [Coverage("status words", sorted(words), list(lc.states)),
                    Coverage("transitions", sorted(moves), all_moves),
                    Coverage("operations", sorted(ops), [o.operation_id for o in spec.operations]),
                    Coverage("documented errors", sorted(errors), list(spec.errors))]
        drawn = [tl for _, tl in timelines[:MAX_JOBS]]
        return ApiSection(spec.name, spec.title, streams[0].base_url, mermaid(spec), coverage,
                          drawn, max(0, len(timelines) - MAX_JOBS))


def _violation(exc: BaseException) -> BaseException:
    """The :class:`ContractViolation` behind ``exc`` (the suite may re-raise one as a plain
    test failure, ``pytest.fail(violation.report())``), else ``exc``."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None or isinstance(seen, ContractViolation):
            break
        seen = seen.__cause__ or seen.__context__
    return seen if isinstance(seen, ContractViolation) else exc


def _word(spec: ApiSpec, ex: Exchange) -> str | None:
    found, value = find(ex.json(), spec.lifecycle.status_pointer)
    return value if found and isinstance(value, str) and value in spec.lifecycle.states else None


def _retry_after(ex: Exchange) -> float | None:
    value = ex.header("retry-after")
    return float(value) if value is not None and value.strip().isdigit() else None


def _timelines(stream: _Stream) -> Iterator[tuple[JobTimeline, list[str]]]:
    """Each job's timeline in one stream, with the status words its answers showed in order."""
    spec = stream.spec
    states = spec.lifecycle.states
    sent = {id(s.exchange): s for s in stream.sent}
    jobs: dict[str, dict[str, Any]] = {}
    for _, obs in stream.observations:
        ex = obs.exchange
        where = sent.get(id(ex))
        if where is None:
            continue
        if obs.kind == "submit" and isinstance(obs.extra.get("job_id"), str):
            job_id = obs.extra["job_id"]
            t0 = stream.at(where.started)
            answered = stream.at(where.ended)
            ra = _retry_after(ex)
            entry = jobs.setdefault(job_id, {"t0": t0, "marks": [], "words": [],
                                             "title": f"{obs.extra['op'].operation_id}"})
            entry["marks"].append(Mark("requests", 0.0, f"submit {ex.status}", kind="submit",
                                       detail=f"{ex.method} {urlsplit(ex.url).path}"
                                              + (f" ({ex.note})" if ex.note else ""),
                                       answered=answered - t0,
                                       until=answered - t0 + ra if ra is not None else None))
            word = _word(spec, ex)
            if word is not None:
                entry["words"].append(word)
                entry["marks"].append(Mark("status", answered - t0, word, role=states[word]))
        elif obs.kind == "poll" and obs.job is not None and obs.job.id in jobs:
            entry = jobs[obs.job.id]
            at = stream.at(where.started) - entry["t0"]
            ra = _retry_after(ex)
            word = _word(spec, ex)
            entry["marks"].append(Mark("requests", at, f"poll {ex.status}", kind="poll",
                                       detail=(word or "") + (f", Retry-After {ra:g}" if ra else "")
                                       + (f" ({ex.note})" if ex.note else ""),
                                       until=at + ra if ra is not None else None))
            if word is not None and (not entry["words"] or entry["words"][-1] != word):
                entry["marks"].append(Mark("status", at, word, role=states[word]))
            if word is not None:
                entry["words"].append(word)
    for job_id, received in stream.webhooks.items():
        if job_id in jobs:
            entry = jobs[job_id]
            for n, r in enumerate(received, start=1):
                number = r.header("x-jobmock-attempt") or str(n)
                entry["marks"].append(Mark("webhooks", stream.at(r.at) - entry["t0"],
                                           f"#{number} {r.answered or '?'}", kind="attempt",
                                           ok=r.answered.startswith("2"),
                                           detail=f"{r.method} {r.path}"))
    for job_id, entry in jobs.items():
        tenant = next((o.job.tenant.name for _, o in stream.observations
                       if o.job is not None and o.job.id == job_id), "")
        title = entry["title"] + (f" as {tenant}" if tenant else "")
        if entry["words"]:
            title += f" - last seen {entry['words'][-1]}"
        yield JobTimeline(job_id, title, entry["marks"]), entry["words"]
    schedule = _schedule(stream)
    if schedule is not None:
        yield schedule, []


def _schedule(stream: _Stream) -> JobTimeline | None:
    """The webhook retry-schedule run: its submit and every attempt on the server's clock."""
    data = stream.schedule
    if not data:
        return None
    ctx: SuiteContext = data["ctx"]
    submit = next((s for s in stream.sent if s.exchange.note == "submit with a callback"), None)
    if submit is None:
        return None
    path = urlsplit(submit.exchange.url).path[len(urlsplit(stream.base_url).path.rstrip("/")):]
    op = next((o for rx, o in _ops(stream.spec) if rx.match(path) and o.role == "submit"), None)
    job_id = ctx.job_id_of(op, submit.exchange) if op is not None else None
    if job_id is None:
        return None
    t0 = stream.at(submit.started)
    marks = [Mark("requests", 0.0, f"submit {submit.exchange.status}", kind="submit",
                  detail="submit with a callback to a receiver that always fails")]
    times = data["times"]
    for n, r in enumerate(data["attempts"], start=1):
        at = (times[n - 1] if n - 1 < len(times) else stream.at(r.at)) - t0
        marks.append(Mark("webhooks", at, f"#{n} {r.answered or '?'}", kind="attempt",
                          ok=r.answered.startswith("2"), detail=f"{r.method} {r.path}"))
    return JobTimeline(job_id, "the webhook retry schedule", marks)


def _operations(streams: list[_Stream]) -> set[str]:
    out: set[str] = set()
    for stream in streams:
        patterns = _ops(stream.spec)
        prefix = urlsplit(stream.base_url).path.rstrip("/")
        for s in stream.sent:
            path = urlsplit(s.exchange.url).path[len(prefix):]
            if path.startswith("/_jobmock/"):
                continue
            op = next((o for rx, o in patterns if rx.match(path) and o.method == s.exchange.method),
                      None)
            if op is not None:
                out.add(op.operation_id)
    return out


def _errors(spec: ApiSpec, streams: list[_Stream]) -> set[str]:
    """The spec's named errors some answer matched: its status and every fixed leaf."""
    view = SpecView(spec)
    wanted = []
    for name in spec.errors:
        try:
            wanted.append((name, view.error_status(name), view.error_constants(name)))
        except (KeyError, TypeError, ValueError):
            continue
    out: set[str] = set()
    for stream in streams:
        for s in stream.sent:
            ex = s.exchange
            if ex.status < 400 or "/_jobmock/" in ex.url:
                continue
            try:
                body = ex.json()
            except (ValueError, json.JSONDecodeError):
                continue
            for name, status, constants in wanted:
                if status == ex.status and all(find(body, c.pointer) == (True, c.value)
                                               for c in constants):
                    out.add(name)
    return out
