"""What one contract run found, per API and per check: the closing table and coverage line.

Each registered check ends a run as one of:

- ``ok``: it judged at least one observation and none broke the spec;
- ``FAILED``: a violation (the count says how many observations broke it);
- ``not run``: the spec makes it apply but the run never saw what it judges; the row
  says why (no callback URL the server accepts, the budget ended, ...);
- ``not applicable``: the spec states nothing it could judge (no webhooks, no limits).

:func:`applicability` derives the last from the spec alone; the suite records the rest
as it runs (:meth:`Verdicts.judged`, :meth:`Verdicts.not_run`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..spec import ApiSpec
from .specview import Assumptions

__all__ = ["VERDICTS", "ApiVerdicts", "Row", "Verdicts", "applicability"]


@dataclass(slots=True)
class Row:
    """One check's record for one API."""

    runs: int = 0
    failures: int = 0
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def verdict(self, not_applicable: str | None) -> str:
        if self.failures:
            return f"FAILED ({self.failures})"
        if self.runs:
            return "ok"
        if not_applicable:
            return f"not applicable: {not_applicable}"
        reason = self.reasons[0] if self.reasons else (
            "nothing it judges happened in this run (more --examples or --steps may reach it)")
        return f"not run: {reason}"


@dataclass(slots=True)
class ApiVerdicts:
    """Everything recorded for one API in this session."""

    rows: dict[str, Row] = field(default_factory=dict)
    states: set[str] = field(default_factory=set)
    transitions: set[tuple[str, str]] = field(default_factory=set)
    operations: set[str] = field(default_factory=set)
    errors: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    unfinished: set[str] = field(default_factory=set)
    seed: int | None = None

    def row(self, check: str) -> Row:
        return self.rows.setdefault(check, Row())


class Verdicts:
    """Per API, per check: observations judged, violations, and why a check did not run."""

    def __init__(self) -> None:
        self.apis: dict[str, ApiVerdicts] = {}

    def api(self, name: str) -> ApiVerdicts:
        return self.apis.setdefault(name, ApiVerdicts())

    def reset(self, name: str | None = None) -> None:
        """Forget one API's records (all with None)."""
        if name is None:
            self.apis.clear()
        else:
            self.apis.pop(name, None)

    def judged(self, api: str, check: str, *, failed: bool = False) -> None:
        row = self.api(api).row(check)
        row.runs += 1
        row.failures += int(failed)

    def not_run(self, api: str, check: str, reason: str) -> None:
        """Say why ``check`` may end this run without judging anything."""
        row = self.api(api).row(check)
        if reason not in row.reasons:
            row.reasons.append(reason)

    def note(self, api: str, check: str, text: str) -> None:
        """A remark shown under the check's row (what a lenient or partial judgement left out)."""
        row = self.api(api).row(check)
        if text not in row.notes:
            row.notes.append(text)

    def failed_checks(self, api: str) -> list[str]:
        return sorted(c for c, r in self.api(api).rows.items() if r.failures)

    def table(self, spec: ApiSpec, titles: dict[str, str]) -> list[str]:
        """The closing table for ``spec``: one line per registered check, then coverage."""
        record = self.api(spec.name)
        na = applicability(spec)
        seed = "" if record.seed is None else f" (seed {record.seed})"
        lines = [f"{spec.name}{seed}", f"  {'check':<16} {'verdict':<20} {'seen':>5}  what was checked"]
        for name, title in titles.items():
            row = record.rows.get(name, Row())
            verdict = row.verdict(na.get(name))
            if verdict.startswith(("ok", "FAILED")):
                lines.append(f"  {name:<16} {verdict:<20} {row.runs:>5}  {title}")
            else:
                lines.append(f"  {name:<16} {verdict}")
                lines.append(f"  {'':<16} {'':<20} {'':>5}  ({title})")
            lines.extend(f"  {'':<16} {'':<20} {'':>5}  note: {n}" for n in row.notes)
        lines.append("  " + coverage_line(spec, record))
        lines.extend(f"  {n}" for n in record.notes)
        if record.unfinished:
            ids = sorted(record.unfinished)
            lines.append(f"  {len(ids)} job(s) still running when the budget ended: "
                         f"{', '.join(ids[:8])}{' ...' if len(ids) > 8 else ''}")
        return lines


def _of(seen: Iterable[Any], total: Iterable[Any]) -> str:
    s, t = set(seen), set(total)
    return f"{len(s & t)}/{len(t)}"


def coverage_line(spec: ApiSpec, record: ApiVerdicts) -> str:
    """States reached, transitions seen, operations and documented error answers exercised."""
    lc = spec.lifecycle
    moves = {(a, b) for a, bs in lc.transitions.items() for b in bs}
    ops = {o.operation_id for o in spec.operations}
    missing = sorted(set(lc.states) - record.states)
    return (f"coverage: states {_of(record.states, lc.states)}"
            + (f" (not reached: {', '.join(missing)})" if missing else "")
            + f", transitions {_of(record.transitions, moves)}"
            + f", operations {_of(record.operations, ops)}"
            + f", documented error answers {_of(record.errors, spec.errors)}")


def applicability(spec: ApiSpec) -> dict[str, str]:
    """Checks that cannot apply to ``spec``, each with the reason (from the spec alone)."""
    ext = spec.document.get("x-jobmock") or {}
    out: dict[str, str] = {}
    render = (ext.get("render") or {}).get(spec.status.render)
    text = repr(render)
    if "job.result" not in text and "job.error" not in text:
        out["outcome_fields"] = "the status body shows neither a result nor an error"
    if spec.retry_after_seconds is None:
        out["retry_after"] = "the spec sends no Retry-After"
    if not any(o.wait.max > 0 or o.wait.prefer_header for o in spec.submit_operations):
        out["inline_wait"] = "no submit holds a request (no inline wait)"
    if not any(o.secured for o in spec.operations):
        out["auth"] = "no operation needs credentials"
    lim = spec.limits
    if lim.gate is None and lim.queue_error is None and spec.idempotency_pointer is None:
        out["limits"] = "the spec declares no gate, queue limit or idempotency key"
    if not (ext.get("contract") or {}).get("invariants"):
        out["invariants"] = "the spec declares no invariants"
    assumed = Assumptions(spec.document)
    if spec.webhooks is None:
        for name in ("webhooks", "webhook_retries", "webhook_events"):
            out[name] = "the spec has no webhooks"
    if spec.callbacks is None:
        out["callback_urls"] = "the spec takes no callback URL"
    elif spec.callbacks.url_rule == "any":
        out["callback_urls"] = "the spec's callback URL rule is 'any': nothing to refuse"
    elif assumed.covers("/x-jobmock/webhooks/url_rule") or \
            assumed.covers("/x-jobmock/callbacks/url_rule"):
        out["callback_urls"] = "the spec marks its callback URL rule assumed: not demanded"
    if spec.webhooks is not None and spec.webhooks.retry.attempts < 2:
        out["webhook_retries"] = "the spec's schedule has no retries"
    if lim.concurrency_max is None:
        out["queue_order"] = "the spec declares no concurrency limit (no queue order)"
    if spec.credits_cost is None:
        out["credits"] = "the spec charges no credits"
    return out


#: The records of this process's runs (the pytest harness prints them at the end).
VERDICTS = Verdicts()
