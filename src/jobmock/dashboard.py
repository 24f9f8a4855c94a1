"""The live dashboard at ``/_jobmock/ui``, and the control-plane endpoints it reads.

The page (``jobmock/ui/dashboard.html`` and ``dashboard.js``, shipped in the wheel; vanilla
JavaScript, no build step, no CDN) reads only the control plane's JSON: jobs with filters,
one job's timeline, webhook deliveries, the client-behaviour report, the lifecycle
diagram, the clock (and moves a virtual one), refreshing every second. Given
``#token=SECRET`` in its URL it sends ``Authorization: Bearer SECRET`` with every call
(the fragment never reaches the server, so the page itself needs no token).

Endpoints this module answers for :mod:`jobmock.control`:

=======  ===========================  ==================================================
GET      /_jobmock/                   the control plane's endpoints (from its table)
GET      /_jobmock/ui                 the dashboard page (static; ``ui/dashboard.js`` too)
GET      /_jobmock/diagram            the lifecycle: status words, tenants, Mermaid, SVG
GET      /_jobmock/jobs/{id}/timeline one job's timeline: marks and their SVG swimlane
=======  ===========================  ==================================================

A control-plane feature: it reads a :class:`~jobmock.dispatch.Mock` and draws with
:mod:`jobmock.report` and :mod:`jobmock.diagram`.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from .diagram import mermaid, render_svg
from .dispatch import Request, Response
from .report import JobTimeline, Mark, swimlane_svg

if TYPE_CHECKING:
    from .dispatch import Mock

__all__ = ["UI_PATH", "answer", "endpoints", "page", "timeline"]

#: Where the page is served.
UI_PATH = "/_jobmock/ui"
_ASSETS = {"": ("dashboard.html", "text/html; charset=utf-8"),
           "dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8")}
_BORDER = re.compile(r"^=+\s+=+\s+=+\s*$")
_METHOD = re.compile(r"^(GET|POST|PUT|PATCH|DELETE)(/(GET|POST|PUT|PATCH|DELETE))*$")


@cache
def _asset(name: str) -> bytes:
    return resources.files("jobmock").joinpath(f"ui/{name}").read_bytes()


def page(request: Request) -> Response | None:
    """The dashboard's static files for ``GET /_jobmock/ui[/dashboard.js]``, else None.

    They hold no data (the page asks the JSON endpoints for it), so they are served to
    anyone who can reach the control plane: a browser cannot send a bearer token when it
    opens a URL, and the token travels in the URL's fragment, which it never sends.
    """
    if not request.path.startswith(UI_PATH) or request.method not in ("GET", "HEAD"):
        return None
    rest = request.path[len(UI_PATH):].strip("/")
    if rest not in _ASSETS:
        return None
    name, kind = _ASSETS[rest]
    return Response(200, [("content-type", kind), ("cache-control", "no-store"),
                          ("x-content-type-options", "nosniff"),
                          ("content-security-policy",
                           "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                           "img-src 'self' data:; frame-ancestors 'none'")], _asset(name))


def endpoints(table: str) -> list[dict[str, str]]:
    """The rows of a control-plane table (an RST simple table whose columns are method, path
    and what it does) as ``{"method", "path", "description"}``. A line with an empty method
    column continues the row above it: its path part (a long path wraps) and its words."""
    rows: list[dict[str, str]] = []
    columns: list[int] = []
    for line in table.splitlines():
        if _BORDER.match(line):
            columns = [m.start() for m in re.finditer(r"=+", line)]
            continue
        if len(columns) != 3 or not line.strip():
            continue
        method = line[:columns[1]].strip()
        path = line[columns[1]:columns[2]].strip()
        text = line[columns[2]:].strip().replace("``", "")
        if method and path.startswith("/_jobmock/") and _METHOD.match(method):
            rows.append({"method": method, "path": path, "description": text})
        elif not method and rows:
            indent = len(line) - len(line.lstrip())
            path, _, text = line.strip().partition(" ") if indent == columns[1] else ("", "", line)
            text = text.strip().replace("``", "")
            rows[-1]["path"] += path
            rows[-1]["description"] = f"{rows[-1]['description']} {text}".strip()
    return rows


def answer(mock: Mock, request: Request, parts: list[str], table: str) -> tuple[int, Any] | None:
    """This module's control-plane answers (``table``: the control plane's endpoint table),
    or None when ``parts`` names none of them."""
    if request.method != "GET":
        return None
    if not parts:
        unique: dict[tuple[str, str], dict[str, str]] = {}
        for e in endpoints(table) + endpoints(__doc__ or ""):
            unique.setdefault((e["method"], e["path"]), e)
        return 200, {"api": mock.spec.name, "ui": UI_PATH, "endpoints": list(unique.values())}
    if parts == ["diagram"]:
        text = mermaid(mock.spec)
        return 200, {"api": mock.spec.name, "title": mock.spec.title,
                     "states": dict(mock.spec.lifecycle.states),
                     "tenants": list(mock.spec.auth.tenants), "mermaid": text,
                     "svg": render_svg(text)}
    if len(parts) == 3 and parts[0] == "jobs" and parts[2] == "timeline":
        found = timeline(mock, parts[1])
        if found is None:
            return 404, {"error": f"no job {parts[1]}"}
        return 200, {"job": parts[1],
                     "marks": [_mark_dict(m) for m in found.marks], "svg": swimlane_svg(found)}
    return None


def _mark_dict(m: Mark) -> dict[str, Any]:
    return {"lane": m.lane, "at": m.at, "label": m.label, "kind": m.kind, "detail": m.detail,
            "until": m.until, "ok": m.ok, "role": m.role, "answered": m.answered}


def timeline(mock: Mock, job_id: str) -> JobTimeline | None:
    """One job's timeline from what the mock holds: its status history, the journaled
    answers about it (the submit, each poll and the ``Retry-After`` it carried) and its
    webhook attempts. Times are clock seconds after the job was created."""
    job = mock.engine.get(job_id)
    if job is None:
        return None
    t0 = job.created_at
    states = mock.spec.lifecycle.states
    marks: list[Mark] = []
    for word, at in job.history:
        marks.append(Mark("status", at - t0, word, role=states.get(word, ""),
                          detail=f"{word} ({states.get(word, '?')}) at {at - t0:g} s"))
    status_ops = {o.operation_id for o in mock.spec.operations if o.role == "status"}
    for entry in mock.journal:
        if entry.job_id != job_id:
            continue
        ra = entry.retry_after
        wait = float(ra) if ra is not None and ra.strip().isdigit() else None
        if entry.operation in status_ops:
            at = entry.at - t0
            marks.append(Mark("requests", at, f"poll {entry.status}", kind="poll",
                              detail=f"{entry.job_status or ''}"
                                     + (f", Retry-After {ra}" if ra is not None else ""),
                              until=at + wait if wait is not None else None))
        else:
            answered = entry.at - t0
            marks.append(Mark("requests", 0.0, f"submit {entry.status}", kind="submit",
                              detail=f"{entry.method} {entry.path} -> {entry.job_status or ''}"
                                     + (f", Retry-After {ra}" if ra is not None else ""),
                              answered=answered,
                              until=answered + wait if wait is not None else None))
    book = mock.webhooks
    for delivery in book.for_job(job_id) if book is not None else []:
        for attempt in delivery.attempts:
            at = (attempt.sent_at if attempt.sent_at is not None else attempt.scheduled_at) - t0
            answer_text = str(attempt.status) if attempt.status is not None else (
                attempt.error or "pending")
            marks.append(Mark("webhooks", at, f"#{attempt.number} {answer_text[:24]}",
                              kind="attempt", ok=attempt.ok,
                              detail=f"{delivery.event} -> {delivery.url}: {answer_text}"))
    return JobTimeline(job.id, f"{job.operation_id} as {job.tenant} - {job.status}", marks)
