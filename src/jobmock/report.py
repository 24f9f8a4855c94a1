"""The HTML report: one self-contained offline page of a contract run, and job swimlanes.

:func:`render_html` turns a :class:`Report` (plain records: the check table, each failure
with its curl reproduction, per API the lifecycle diagram, lifecycle coverage and a
swimlane per job) into one HTML page with its CSS and SVG inline: no script, no CDN, no
build step, so it opens from a CI artefact store or an e-mail. :func:`swimlane_svg` draws
one job's timeline (submit, each poll with the ``Retry-After`` window it was given, each
status the job was seen in, each webhook attempt and its answer); the mock's dashboard
draws its jobs with it too.

This module reads plain records only: the contract suite fills them
(:mod:`jobmock.contract.reporting`) and so does the dashboard (:mod:`jobmock.dashboard`);
it imports neither, nor the mock.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from .diagram import ROLE_FILL, render_svg

__all__ = ["ApiSection", "CheckRow", "Coverage", "Failure", "JobTimeline", "Mark", "Report",
           "render_html", "swimlane_svg", "write_report"]

#: The swimlanes, top to bottom.
LANES = ("requests", "status", "webhooks")


@dataclass(frozen=True, slots=True)
class Mark:
    """One event on a job's timeline, ``at`` seconds after the job's first event.

    ``lane``: ``requests`` (``kind`` ``submit`` or ``poll``; ``answered`` is when a held
    answer (an inline wait) came back; ``until`` is when the ``Retry-After`` it was given
    allows the next poll),
    ``status`` (the job seen in a status word; ``role`` colours it) or ``webhooks`` (an
    attempt; ``ok`` says whether it was answered 2xx).
    """

    lane: str
    at: float
    label: str
    kind: str = ""
    detail: str = ""
    until: float | None = None
    ok: bool | None = None
    role: str = ""
    answered: float | None = None


@dataclass(slots=True)
class JobTimeline:
    """One job: its id, a one-line title, and its marks."""

    job_id: str
    title: str
    marks: list[Mark] = field(default_factory=list)
    #: Why the timeline is shown first (``failing example``), or empty.
    flag: str = ""


@dataclass(slots=True)
class CheckRow:
    """One registered check: how often it judged and failed, and why."""

    name: str
    title: str
    runs: int
    failures: int
    reasons: list[str] = field(default_factory=list)
    #: The API it judged (empty: counted over every API of the run).
    api: str = ""
    #: ``ok``, ``FAILED (n)``, ``not run: why``, ``not applicable: why`` (empty: from counts).
    verdict: str = ""


@dataclass(slots=True)
class Failure:
    """A failed test: the check that failed (if a contract check), what it says, and the
    requests (curl lines) that reproduce it."""

    test: str
    check: str
    title: str
    detail: str
    reproduction: str = ""


@dataclass(slots=True)
class Coverage:
    """Of what the spec names (``total``), what the run exercised (``seen``)."""

    what: str
    seen: list[str]
    total: list[str]

    @property
    def ratio(self) -> float:
        return len(set(self.seen) & set(self.total)) / len(self.total) if self.total else 1.0


@dataclass(slots=True)
class ApiSection:
    """One API judged: its lifecycle (Mermaid), coverage, and job timelines."""

    api: str
    title: str
    base_url: str
    mermaid: str
    coverage: list[Coverage] = field(default_factory=list)
    timelines: list[JobTimeline] = field(default_factory=list)
    #: Jobs the run saw but the report does not draw (it keeps the page small).
    more_jobs: int = 0


@dataclass(slots=True)
class Report:
    """A contract run: outcome, checks, failures and the APIs judged."""

    title: str
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    checks: list[CheckRow] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    apis: list[ApiSection] = field(default_factory=list)
    generated_at: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).strftime(
        "%Y-%m-%d %H:%M:%S UTC"))


# -- swimlanes ------------------------------------------------------------------------------

_LEFT, _RIGHT, _TOP, _LANE_H, _AXIS_H, _WIDTH = 86, 24, 10, 46, 26, 960


def _nice_step(span: float) -> float:
    raw = span / 8
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200,
                 21600, 86400):
        if step >= raw:
            return step
    return 86400.0


def _fmt(seconds: float) -> str:
    return f"{seconds:g} s" if seconds < 120 else f"{seconds / 60:g} min"


def swimlane_svg(timeline: JobTimeline, width: int = _WIDTH) -> str:
    """``timeline`` as an SVG: a lane each for requests, statuses and webhook attempts, on one
    time axis. A poll sent before the previous answer's ``Retry-After`` allowed is red."""
    marks = sorted(timeline.marks, key=lambda m: m.at)
    end = max([m.at for m in marks] + [m.until or 0.0 for m in marks]
              + [m.answered or 0.0 for m in marks] + [1.0])
    span = end * 1.1  # room for the label of a status reached near the end
    plot = width - _LEFT - _RIGHT
    height = _TOP + len(LANES) * _LANE_H + _AXIS_H

    def x(t: float) -> float:
        return round(_LEFT + plot * (t / span), 1)

    lane_y = {lane: _TOP + i * _LANE_H for i, lane in enumerate(LANES)}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="jm-swimlane" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" font-family="system-ui, sans-serif" '
           f'font-size="11" data-job="{escape(timeline.job_id)}">',
           f"<title>job {escape(timeline.job_id)}</title>"]
    for lane, y in lane_y.items():
        out.append(f'<rect x="0" y="{y}" width="{width}" height="{_LANE_H}" '
                   f'fill="{"#fafafa" if LANES.index(lane) % 2 == 0 else "#ffffff"}"/>'
                   f'<text x="8" y="{y + _LANE_H / 2 + 4}" fill="#555">{lane}</text>')
    axis_y = _TOP + len(LANES) * _LANE_H
    step = _nice_step(span)
    t = 0.0
    for _ in range(40):
        if t > span:
            break
        out.append(f'<line x1="{x(t)}" y1="{_TOP}" x2="{x(t)}" y2="{axis_y}" stroke="#e3e3e3"/>'
                   f'<text x="{x(t)}" y="{axis_y + 16}" text-anchor="middle" fill="#777">'
                   f"{_fmt(t)}</text>")
        t += step
    # the status lane: one segment per status, from when it was first seen to the next
    statuses = [m for m in marks if m.lane == "status"]
    y = lane_y["status"]
    for i, m in enumerate(statuses):
        stop = statuses[i + 1].at if i + 1 < len(statuses) else end
        w = max(2.0, x(stop) - x(m.at))
        out.append(f'<g class="jm-mark jm-status" data-status="{escape(m.label)}">'
                   f'<rect x="{x(m.at)}" y="{y + 12}" width="{w:.1f}" height="{_LANE_H - 24}" '
                   f'fill="{ROLE_FILL.get(m.role, "#eeeeee")}" stroke="#888"/>'
                   f'<text x="{x(m.at) + 3}" y="{y + _LANE_H / 2 + 4}" fill="#222">'
                   f"{escape(m.label)}</text><title>{escape(m.detail or m.label)}</title></g>")
    # requests: submit and polls, with the Retry-After window each answer gave
    y = lane_y["requests"]
    allowed_from: float | None = None
    for m in (m for m in marks if m.lane == "requests"):
        early = m.kind == "poll" and allowed_from is not None and m.at + 1e-9 < allowed_from
        colour = "#c62828" if early else ("#1565c0" if m.kind == "submit" else "#37474f")
        answered = m.answered if m.answered is not None else m.at
        if answered > m.at:
            out.append(f'<rect class="jm-held" x="{x(m.at)}" y="{y + 28}" '
                       f'width="{max(1.0, x(answered) - x(m.at)):.1f}" height="7" fill="#90caf9"/>')
        if m.until is not None and m.until > answered:
            out.append(f'<rect class="jm-window" x="{x(answered)}" y="{y + 30}" '
                       f'width="{max(1.0, x(m.until) - x(answered)):.1f}" height="4" fill="#b0bec5"/>')
        allowed_from = m.until
        shape = (f'<rect x="{x(m.at) - 5}" y="{y + 14}" width="10" height="10" fill="{colour}"/>'
                 if m.kind == "submit" else
                 f'<circle cx="{x(m.at)}" cy="{y + 19}" r="4.5" fill="{colour}"/>')
        tip = f"{m.label} at {m.at:g} s" + (f" - {m.detail}" if m.detail else "") + (
            f" - answered at {answered:g} s" if answered > m.at else "") + (
            " - polled before Retry-After allowed" if early else "")
        out.append(f'<g class="jm-mark jm-{escape(m.kind or "request")}'
                   f'{" jm-early" if early else ""}">{shape}<title>{escape(tip)}</title></g>')
    # webhook attempts
    y = lane_y["webhooks"]
    for m in (m for m in marks if m.lane == "webhooks"):
        colour = "#2e7d32" if m.ok else "#c62828"
        cx, cy = x(m.at), y + _LANE_H / 2
        out.append(f'<g class="jm-mark jm-attempt" data-ok="{str(bool(m.ok)).lower()}">'
                   f'<path d="M{cx},{cy - 7} L{cx + 7},{cy} L{cx},{cy + 7} L{cx - 7},{cy} z" '
                   f'fill="{colour}"/><text x="{cx + 9}" y="{cy + 4}" fill="{colour}">'
                   f"{escape(m.label)}</text><title>{escape(m.label)} at {m.at:g} s"
                   f"{(' - ' + escape(m.detail)) if m.detail else ''}</title></g>")
    out.append("</svg>")
    return "".join(out)


# -- the page ----------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d1d1d;background:#fff}
header{background:#263238;color:#fff;padding:18px 28px}
header h1{margin:0 0 4px;font-size:22px} header p{margin:0;color:#cfd8dc}
main{padding:8px 28px 40px;max-width:1180px}
h2{margin-top:34px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eee;vertical-align:top}
th{background:#f5f5f5}
.ok{color:#2e7d32;font-weight:600}.bad{color:#c62828;font-weight:600}.idle{color:#888}
.summary span{display:inline-block;margin-right:18px;font-size:15px}
pre{background:#f6f8fa;border:1px solid #e1e4e8;padding:10px;overflow-x:auto;font-size:12px;
white-space:pre-wrap;word-break:break-all}
.failure{border-left:4px solid #c62828;padding:2px 14px;margin:14px 0;background:#fffafa}
.bar{background:#eceff1;height:10px;width:180px;display:inline-block;vertical-align:middle}
.bar i{display:block;height:10px;background:#43a047}
.missing{color:#c62828}
details{margin:8px 0} summary{cursor:pointer;font-weight:600}
.diagram{overflow-x:auto;border:1px solid #eee;padding:6px}
.flag{background:#ffebee;color:#c62828;border-radius:3px;padding:0 5px;font-size:12px}
"""


def _coverage_html(cov: Coverage) -> str:
    seen = [s for s in cov.total if s in set(cov.seen)]
    missing = [s for s in cov.total if s not in set(cov.seen)]
    pct = round(cov.ratio * 100)
    return (f'<tr class="coverage" data-what="{escape(cov.what)}"><td>{escape(cov.what)}</td>'
            f"<td>{len(seen)} of {len(cov.total)}</td>"
            f'<td><span class="bar"><i style="width:{pct}%"></i></span> {pct}%</td>'
            f"<td>{escape(', '.join(seen)) or '-'}</td>"
            f'<td class="missing">{escape(", ".join(missing)) or "-"}</td></tr>')


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page."""
    failing = [c for c in report.checks if c.failures]
    verdict = ("FAILED" if report.failed else "PASSED")
    parts = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{escape(report.title)}</title>",
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<style>{_CSS}</style></head><body>",
             f"<header><h1>{escape(report.title)}</h1><p>{escape(report.generated_at)} &middot; "
             f'<span id="verdict">{verdict}</span></p></header><main>',
             '<p class="summary">'
             f'<span class="ok">{report.passed} passed</span>'
             f'<span class="{"bad" if report.failed else "idle"}">{report.failed} failed</span>'
             f'<span class="idle">{report.skipped} not run</span>'
             f"<span>{len(report.checks)} checks, {len(failing)} with violations</span></p>"]
    parts.append('<h2 id="checks">Checks</h2><table id="check-table"><thead><tr><th>API</th>'
                 "<th>check</th><th>what it judges</th><th>observations</th><th>violations</th>"
                 "<th>verdict</th><th>reasons</th></tr></thead><tbody>")
    for c in report.checks:
        verdict = c.verdict or ("FAILED" if c.failures else ("ok" if c.runs else "not run"))
        cls = "bad" if verdict.startswith("FAILED") else ("ok" if verdict == "ok" else "idle")
        reasons = "".join(f"<div>{escape(r)}</div>" for r in c.reasons[:5])
        parts.append(f'<tr class="check" data-check="{escape(c.name)}" data-api="{escape(c.api)}">'
                     f"<td>{escape(c.api) or 'all'}</td><td><code>{escape(c.name)}</code></td>"
                     f"<td>{escape(c.title)}</td><td>{c.runs}</td><td>{c.failures}</td>"
                     f'<td class="{cls}">{escape(verdict)}</td><td>{reasons}</td></tr>')
    parts.append("</tbody></table>")
    parts.append(f'<h2 id="failures">Failures ({len(report.failures)})</h2>')
    if not report.failures:
        parts.append("<p>None.</p>")
    for f in report.failures:
        head = f"[{f.check}] {f.title}" if f.check else f.title
        parts.append(f'<div class="failure" data-check="{escape(f.check)}"><h3>{escape(head)}</h3>'
                     f"<p><code>{escape(f.test)}</code></p><pre>{escape(f.detail)}</pre>")
        if f.reproduction:
            parts.append("<p>Requests that reproduce it:</p>"
                         f'<pre class="curl">{escape(f.reproduction)}</pre>')
        parts.append("</div>")
    for api in report.apis:
        anchor = escape(api.api)
        parts.append(f'<section class="api" id="api-{anchor}"><h2>{escape(api.title)} '
                     f"<small>({escape(api.api)}, {escape(api.base_url)})</small></h2>")
        parts.append(f'<h3>Lifecycle</h3><div class="diagram">{render_svg(api.mermaid)}</div>'
                     f"<details><summary>Mermaid</summary><pre>{escape(api.mermaid)}</pre></details>")
        parts.append('<h3>Lifecycle coverage</h3><table class="coverage-table"><thead><tr><th>of the '
                     "spec's</th><th>exercised</th><th></th><th>seen</th><th>never seen</th></tr>"
                     "</thead><tbody>")
        parts.extend(_coverage_html(c) for c in api.coverage)
        parts.append("</tbody></table>")
        parts.append(f"<h3>Jobs ({len(api.timelines)} drawn"
                     + (f", {api.more_jobs} more not drawn" if api.more_jobs else "") + ")</h3>"
                     "<p>Requests lane: a square is the submit, a dot a poll, the bar after it "
                     "the <code>Retry-After</code> it was given (a red dot came too early); "
                     "status lane: the status each answer showed; webhooks lane: each attempt "
                     "(green: answered 2xx).</p>")
        for i, tl in enumerate(api.timelines):
            flag = f' <span class="flag">{escape(tl.flag)}</span>' if tl.flag else ""
            parts.append(f'<details class="job" data-job="{escape(tl.job_id)}"'
                         f'{" open" if i < 3 or tl.flag else ""}><summary>{escape(tl.job_id)} '
                         f"&middot; {escape(tl.title)}{flag}</summary>{swimlane_svg(tl)}</details>")
        parts.append("</section>")
    parts.append("</main></body></html>")
    return "\n".join(parts)


def write_report(report: Report, path: str | Path) -> Path:
    """Write :func:`render_html` of ``report`` to ``path`` (its folder is created)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_html(report), encoding="utf-8")
    return target
