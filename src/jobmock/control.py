"""The control plane under ``/_jobmock/``, in the spirit of WireMock's ``/__admin``.

=======  ===========================  ===============================================
method   path                         what it does
=======  ===========================  ===============================================
GET      /_jobmock/health             liveness, the API's name and the clock
GET      /_jobmock/clock              the clock: time, kind, speed
POST     /_jobmock/clock/advance      ``{"seconds": N}``: move a virtual clock forward
GET      /_jobmock/jobs               every job (``?status=``, ``?tenant=`` filter)
GET      /_jobmock/jobs/{id}          one job, with its history and planned timing
POST     /_jobmock/jobs/{id}/outcome  ``{"status": word|role, "error"?, "result"?,
                                      "when": "now"|"scheduled"}``: force a status
GET      /_jobmock/requests           the request journal (``?limit=N``)
GET/POST /_jobmock/advance            how jobs advance: ``{"mode": "time"|"polls"|"manual",
                                      "polls": N}`` (applies to jobs submitted after)
GET      /_jobmock/webhooks           every webhook delivery and attempt (``?job_id=``)
GET/POST /_jobmock/faults             deliberate contract violations: ``{"faults": [names]}``
GET/POST /_jobmock/scenario           load a scenario (the file's YAML, or the same as JSON), or see it
GET      /_jobmock/report             how the client behaved (see jobmock.behaviour)
GET      /_jobmock/spec               the OpenAPI document this mock serves
POST     /_jobmock/reset              forget every job and journal entry
=======  ===========================  ===============================================

Answers are JSON; a bad control request gets 400 ``{"error": ...}``, an unknown
job 404.

The control plane is a feature over the core: its own router over a
:class:`~jobmock.dispatch.Mock`, composed with the API router by the adapters
(:mod:`jobmock.stack`). It reaches faults and scenarios through their own modules.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

from jsonschema.exceptions import best_match

from . import faults
from .behaviour import client_report
from .dispatch import Mock, Request, Response, json_response
from .errors import ScenarioError
from .records import Advance
from .scenarios import active_scenario, install_scenario
from .templates import iso
from .validation import schema_validator

if TYPE_CHECKING:
    from .records import Job

__all__ = ["CONTROL_PREFIX", "handle_control", "is_control"]

#: Where the control plane lives; no API path starts with it.
CONTROL_PREFIX = "/_jobmock/"


def is_control(request: Request) -> bool:
    """Whether ``request`` is for the control plane."""
    return request.path.startswith(CONTROL_PREFIX)


class _Bad(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _body(request: Request, yaml_ok: bool = False) -> dict[str, Any]:
    if not request.body.strip():
        return {}
    try:
        data = json.loads(request.body)
    except (ValueError, RecursionError) as exc:
        if not yaml_ok:
            raise _Bad(400, f"body is not valid JSON: {exc}") from exc
        import yaml

        try:
            data = yaml.safe_load(request.body)
        except yaml.YAMLError as yexc:
            raise _Bad(400, f"body is neither JSON nor YAML: {yexc}") from yexc
    if not isinstance(data, dict):
        raise _Bad(400, "body must be a JSON object")
    return data


def clock_info(mock: Mock) -> dict[str, Any]:
    now = mock.clock.now()
    return {"now": iso(now), "epoch": now, "kind": "virtual" if mock.clock.speed == 0 else "real",
            "speed": mock.clock.speed, "next_due": iso(mock.engine.next_due())}


def handle_control(mock: Mock, request: Request) -> Response:
    """Answer one control-plane request."""
    try:
        status, body = _route(mock, request)
    except _Bad as exc:
        status, body = exc.status, {"error": exc.message}
    return json_response(status, body)


def _route(mock: Mock, request: Request) -> tuple[int, Any]:
    path = request.path[len("/_jobmock/"):].strip("/")
    parts = path.split("/") if path else []
    method = request.method
    engine = mock.engine
    engine.run_due()
    if parts == ["health"] and method == "GET":
        return 200, {"status": "ok", "api": mock.spec.name, "jobs": len(engine.store),
                     "allow_private_callbacks": mock.allow_private_callbacks,
                     "clock": clock_info(mock)}
    if parts == ["clock"] and method == "GET":
        return 200, clock_info(mock)
    if parts == ["clock", "advance"] and method == "POST":
        seconds = _body(request).get("seconds")
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            raise _Bad(400, "seconds must be a non-negative number")
        if mock.clock.speed != 0:
            raise _Bad(409, "the clock is real; start the mock with --clock virtual to move it")
        fired = engine.advance_clock(float(seconds))
        return 200, {**clock_info(mock), "fired": fired}
    if parts == ["jobs"] and method == "GET":
        jobs = [j for j in engine.jobs()
                if request.query.get("status") in (None, j.status)
                and request.query.get("tenant") in (None, j.tenant)]
        return 200, {"jobs": [j.as_dict(mock.spec) for j in jobs], "counts": engine.counts()}
    if len(parts) == 2 and parts[0] == "jobs" and method == "GET":
        job = engine.get(parts[1])
        if job is None:
            raise _Bad(404, f"no job {parts[1]}")
        return 200, job.as_dict(mock.spec)
    if len(parts) == 3 and parts[0] == "jobs" and parts[2] == "outcome" and method == "POST":
        data = _body(request)
        status = data.get("status")
        lc = mock.spec.lifecycle
        if not isinstance(status, str) or (status not in lc.states and lc.word(status) is None):
            raise _Bad(400, f"status must be a status word {sorted(lc.states)} or a role")
        if data.get("when", "now") not in ("now", "scheduled"):
            raise _Bad(400, "when must be 'now' or 'scheduled'")
        existing = engine.get(parts[1])
        if existing is not None and (data.get("error") is not None or data.get("result") is not None):
            word = status if status in lc.states else lc.word(status)
            problem = _forced_body_problem(mock, existing, str(word), data.get("error"),
                                           data.get("result"))
            if problem:
                raise _Bad(400, f"the forced error/result would break the spec's status body: "
                                f"{problem}")
        try:
            job = engine.force(parts[1], status, error=data.get("error"), result=data.get("result"),
                               when=str(data.get("when", "now")))
        except KeyError:
            raise _Bad(404, f"no job {parts[1]}") from None
        except ValueError as exc:
            raise _Bad(409, str(exc)) from None
        return 200, job.as_dict(mock.spec)
    if parts == ["requests"] and method == "GET":
        entries = [e.as_dict() for e in mock.journal]
        limit = request.query.get("limit")
        if limit is not None:
            if not limit.isdigit():
                raise _Bad(400, "limit must be a non-negative integer")
            entries = entries[-int(limit):] if int(limit) else []
        return 200, {"requests": entries, "total": mock.journal.total, "size": mock.journal.size}
    if parts == ["advance"] and method == "GET":
        return 200, {"mode": engine.advance.mode, "polls": engine.advance.polls}
    if parts == ["advance"] and method == "POST":
        data = _body(request)
        try:
            engine.set_advance(Advance(str(data.get("mode", "time")), int(data.get("polls", 1))))
        except (TypeError, ValueError) as exc:
            raise _Bad(400, str(exc)) from None
        return 200, {"mode": engine.advance.mode, "polls": engine.advance.polls}
    if parts == ["webhooks"] and method == "GET":
        book = mock.webhooks
        deliveries = book.deliveries() if book is not None else []
        job_id = request.query.get("job_id")
        return 200, {"deliveries": [d.as_dict() for d in deliveries
                                    if job_id in (None, d.job_id)]}
    if parts == ["faults"] and method == "GET":
        return 200, {"enabled": sorted(faults.enabled(mock)),
                     "available": {f.name: {"description": f.description, "caught_by": f.check}
                                   for f in faults.FAULTS.values()}}
    if parts == ["faults"] and method == "POST":
        names = _body(request).get("faults")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise _Bad(400, "faults must be a list of fault names")
        try:
            faults.set_faults(mock, names)
        except ValueError as exc:
            raise _Bad(400, str(exc)) from None
        return 200, {"enabled": sorted(faults.enabled(mock))}
    if parts == ["scenario"] and method == "POST":
        try:
            scenario = install_scenario(mock, _body(request, yaml_ok=True))
        except ScenarioError as exc:
            raise _Bad(400, str(exc)) from None
        return 200, {"loaded": scenario.name}
    if parts == ["scenario"] and method == "GET":
        active = active_scenario(mock)
        if active is None:
            return 200, {"loaded": None, "description": None}
        return 200, {"loaded": active.name, "description": active.description, **active.state()}
    if parts == ["report"] and method == "GET":
        return 200, client_report(mock)
    if parts == ["spec"] and method == "GET":
        return 200, mock.spec.document
    if parts == ["reset"] and method == "POST":
        mock.reset()
        return 200, {"status": "reset"}
    raise _Bad(404, f"no control endpoint {method} /_jobmock/{path}")


def _forced_body_problem(mock: Mock, job: Job, word: str, error: Any, result: Any) -> str | None:
    """Why the status body of ``job`` ended in ``word`` with this error/result would not
    match the spec's status schema (None if it would)."""
    trial = dataclasses.replace(job, status=word, history=list(job.history))
    if error is not None:
        trial.error = error
    if result is not None:
        trial.result = result
    if mock.spec.lifecycle.is_terminal(word):
        trial.completed_at = mock.clock.now()
    op = mock.spec.status_operation
    node = mock.spec.document["paths"][op.path][op.method.lower()]["responses"]
    response = node.get(str(mock.spec.status.status))
    while isinstance(response, dict) and "$ref" in response:
        target: Any = mock.spec.document
        for part in response["$ref"][2:].split("/"):
            target = target[part]
        response = target
    schema = (((response or {}).get("content") or {}).get("application/json") or {}).get("schema")
    if schema is None:
        return None
    body = mock.render_job(mock.spec.status, trial, Request("GET", op.path), {}).json()
    err = best_match(schema_validator(mock.spec, schema).iter_errors(body))
    if err is None:
        return None
    where = "/" + "/".join(str(p) for p in err.absolute_path)
    return f"at {where}: {err.message}"
