"""The control plane under ``/_jobmock/``, in the spirit of WireMock's ``/__admin``.

=======  ===========================  ===============================================
method   path                         what it does
=======  ===========================  ===============================================
GET      /_jobmock/health             liveness, the API's name and the clock
GET      /_jobmock/clock              the clock: time, kind, speed
POST     /_jobmock/clock/advance      ``{"seconds": N}``: move a virtual clock forward
GET      /_jobmock/jobs               jobs, a page at a time (``?status=``, ``?tenant=``,
                                     ``?limit=`` (100, at most 1000), ``?after=ID``; ``next``)
GET      /_jobmock/jobs/{id}          one job, with its history and planned timing
POST     /_jobmock/jobs/{id}/outcome  ``{"status": word|role, "error"?, "result"?,
                                      "when": "now"|"scheduled"}``: force a status
GET      /_jobmock/requests           the request journal (``?limit=N``, ``?after=SEQ``)
GET/POST /_jobmock/advance            how jobs advance: ``{"mode": "time"|"polls"|"manual",
                                      "polls": N}`` (applies to jobs submitted after)
GET      /_jobmock/webhooks           every webhook delivery and attempt (``?job_id=``)
POST     /_jobmock/webhooks/{id}/     send a delivery that is over once more (same id and
         redeliver                    body, a new attempt, not retried)
POST     /_jobmock/webhooks/{id}/     ``{"kind": "forged"|"stale"|"duplicate"}``: send the
         forge                        receiver a delivery it must not act on (judged by
                                      ``webhook_receiver_verifies`` / ``_deduplicates``)
GET/POST /_jobmock/faults             deliberate contract violations: ``{"faults": [names]}``
GET/POST /_jobmock/scenario           load a scenario (the file's YAML, or the same as JSON), or see it
GET      /_jobmock/report             how the client behaved (see jobmock.behaviour)
GET/POST /_jobmock/credits            each tenant's credit balance, held and available;
                                      ``{"tenant": name, "balance": N}`` sets one
GET      /_jobmock/spec               the OpenAPI document this mock serves
POST     /_jobmock/reset              forget every job and journal entry
GET      /_jobmock/                   this list, as JSON (jobmock.dashboard)
GET      /_jobmock/ui                 the live dashboard page (jobmock.dashboard)
GET      /_jobmock/diagram            the lifecycle: words, tenants, Mermaid and SVG
GET      /_jobmock/jobs/{id}/timeline one job's timeline: marks and an SVG swimlane
=======  ===========================  ===============================================

Answers are JSON; a bad control request gets 400 ``{"error": ...}``, an unknown
job 404. Error messages quote at most a short prefix of a bad value.

Safe by default (see :func:`configure_control`, set by ``jobmock serve``):

- with a token (``--control-token``), every call but ``GET /_jobmock/health`` needs
  ``Authorization: Bearer <token>`` (401 otherwise, compared in constant time); without
  one, ``serve`` listens on loopback only and the control plane answers only requests
  addressed to a loopback name (a DNS-rebinding page gets 403);
- a mutating call (POST, PUT, PATCH, DELETE) is refused with 403 when it comes from
  another origin (an ``Origin`` that is not the server's, or ``Sec-Fetch-Site:
  cross-site|same-site``), and with 415 unless its ``Content-Type`` is JSON (or YAML, for
  ``/_jobmock/scenario``): a web page can't send one without a CORS preflight, which the
  mock never grants;
- every input is bounded: bodies up to 1 MiB (413), JSON without ``NaN``/``Infinity`` or
  out-of-range numbers, YAML without aliases, nesting and value counts limited, scenarios
  up to 1,000 rules (and, like scenario files, 100 progress steps or path words a job, a
  latency up to an hour), clock moves finite and never past :data:`MAX_CLOCK`;
- no secret is shown: the journal masks credentials (:mod:`jobmock.journal`), the webhook
  log the signature header, the served spec its tenants' credentials and signing secret
  (``--journal-secrets`` shows them, for debugging).

The control plane is a feature over the core: its own router over a
:class:`~jobmock.dispatch.Mock`, composed with the API router by the adapters
(:mod:`jobmock.stack`). It reaches faults and scenarios through their own modules.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jsonschema.exceptions import best_match

from . import dashboard, faults
from .behaviour import client_report
from .dispatch import Mock, Request, Response, json_response
from .errors import ScenarioError
from .guard import (
    MAX_BODY,
    MAX_CLOCK,
    ControlPolicy,
    configure_control,
    control_policy,
    is_loopback_host,
)
from .guard import Refusal as _Bad
from .guard import check_caller as _guard
from .guard import clip as _clip
from .guard import clock_seconds as _seconds
from .guard import known_secrets as _secrets
from .guard import poll_count as _polls
from .guard import query_int as _query_int
from .guard import read_body as _body
from .guard import redacted as _redacted
from .guard import short as _short
from .records import Advance
from .scenarios import active_scenario, install_scenario
from .templates import iso
from .validation import schema_validator, shorten
from .webhooks import PROBES

if TYPE_CHECKING:
    from .records import Job

__all__ = ["CONTROL_PREFIX", "MAX_BODY", "MAX_CLOCK", "MAX_RULES", "ControlPolicy",
           "advance_answer", "advance_request", "configure_control", "control_policy",
           "handle_control", "is_control", "is_loopback_host"]

#: Where the control plane lives; no API path starts with it.
CONTROL_PREFIX = "/_jobmock/"

#: The most rules (and story steps) a scenario loaded through the control plane may have.
MAX_RULES = 1000
#: ``GET /_jobmock/jobs``: the page size unless ``limit`` says, its maximum, and the most
#: bytes of jobs one page carries (a page ends early rather than grow past it).
JOBS_PAGE = 100
JOBS_PAGE_MAX = 1000
PAGE_BYTES = 4 * 1024 * 1024


def is_control(request: Request) -> bool:
    """Whether ``request`` is for the control plane."""
    return request.path.startswith(CONTROL_PREFIX)


# -- answers --------------------------------------------------------------------------------


def _iso_or_none(ts: float | None) -> str | None:
    """``iso`` for a time a date can show, else None (a scenario may schedule far ahead)."""
    try:
        return iso(ts)
    except (ValueError, OverflowError, OSError):
        return None


def clock_info(mock: Mock) -> dict[str, Any]:
    """The clock as the control plane shows it."""
    now = mock.clock.now()
    return {"now": iso(now), "epoch": now, "kind": "virtual" if mock.clock.speed == 0 else "real",
            "speed": mock.clock.speed, "next_due": _iso_or_none(mock.engine.next_due())}


def handle_control(mock: Mock, request: Request) -> Response:
    """Answer one control-plane request."""
    page = dashboard.page(request)  # static, no data: a browser opens it without a token
    if page is not None:
        return page
    headers: list[tuple[str, str]] = []
    try:
        status, body = _route(mock, request)
    except _Bad as exc:
        status, body = exc.status, {"error": _short(exc.message, 2000)}
        if status == 401:
            headers.append(("WWW-Authenticate", 'Bearer realm="jobmock control plane"'))
    return json_response(status, body, headers)


def _route(mock: Mock, request: Request) -> tuple[int, Any]:
    path = request.path[len("/_jobmock/"):].strip("/")
    parts = path.split("/") if path else []
    method = request.method
    _guard(mock, request, parts)
    engine = mock.engine
    engine.run_due()
    if parts == ["health"] and method == "GET":
        health = {"status": "ok", "api": mock.spec.name, "jobs": len(engine.store),
                  "allow_private_callbacks": mock.allow_private_callbacks,
                  "clock": clock_info(mock)}
        sessions = mock.extensions.get("sessions")  # the session adapter's book, if served
        if sessions is not None:
            health["sessions"] = sessions.info()
        if "session" in mock.extensions:
            health["session"] = mock.extensions["session"]
        health["store"] = mock.extensions.get("store", {"kind": "memory"})
        return 200, health
    if parts == ["clock"] and method == "GET":
        return 200, clock_info(mock)
    if parts == ["clock", "advance"] and method == "POST":
        fired = engine.advance_clock(_advance_seconds(mock, request))
        return 200, {**clock_info(mock), "fired": fired}
    if parts == ["jobs"] and method == "GET":
        return 200, _jobs_page(mock, request)
    if len(parts) == 2 and parts[0] == "jobs" and method == "GET":
        job = engine.get(parts[1])
        if job is None:
            raise _Bad(404, f"no job {_clip(parts[1])}")
        return 200, job.as_dict(mock.spec)
    if len(parts) == 3 and parts[0] == "jobs" and parts[2] == "outcome" and method == "POST":
        data = _body(request)
        status = data.get("status")
        lc = mock.spec.lifecycle
        if not isinstance(status, str) or (status not in lc.states and lc.word(status) is None):
            raise _Bad(400, f"status must be a status word {sorted(lc.states)} or a role, got "
                            f"{_clip(status)}")
        if data.get("when", "now") not in ("now", "scheduled"):
            raise _Bad(400, f"when must be 'now' or 'scheduled', got {_clip(data.get('when'))}")
        existing = engine.get(parts[1])
        if existing is None:
            raise _Bad(404, f"no job {_clip(parts[1])}")
        if data.get("error") is not None or data.get("result") is not None:
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
            raise _Bad(404, f"no job {_clip(parts[1])}") from None
        except ValueError as exc:
            raise _Bad(409, str(exc)) from None
        return 200, job.as_dict(mock.spec)
    if parts == ["requests"] and method == "GET":
        return 200, _requests_page(mock, request)
    if parts == ["advance"] and method == "GET":
        return 200, {"mode": engine.advance.mode, "polls": engine.advance.polls}
    if parts == ["advance"] and method == "POST":
        data = _body(request)
        mode = data.get("mode", "time")
        if mode not in ("time", "polls", "manual"):
            raise _Bad(400, f"mode must be 'time', 'polls' or 'manual', got {_clip(mode)}")
        engine.set_advance(Advance(str(mode), _polls(data.get("polls", 1))))
        return 200, {"mode": engine.advance.mode, "polls": engine.advance.polls}
    if parts == ["webhooks"] and method == "GET":
        book = mock.webhooks
        deliveries = book.deliveries() if book is not None else []
        job_id = request.query.get("job_id")
        return 200, {"deliveries": [d.as_dict(_hidden_headers(mock)) for d in deliveries
                                    if job_id in (None, d.job_id)]}
    if (len(parts) == 3 and parts[0] == "webhooks" and parts[2] == "redeliver"
            and method == "POST"):  # (webhooks, issue 14)
        book = mock.webhooks
        delivery = book.get(parts[1]) if book is not None else None
        if book is None or delivery is None:
            raise _Bad(404, f"no webhook delivery {_clip(parts[1])}")
        try:
            book.redeliver(delivery)
        except ValueError as exc:
            raise _Bad(409, str(exc)) from None
        return 200, delivery.as_dict(_hidden_headers(mock))
    if (len(parts) == 3 and parts[0] == "webhooks" and parts[2] == "forge"
            and method == "POST"):  # (the receiver side, issue 14 item 7)
        kind = _body(request).get("kind")
        book = mock.webhooks
        delivery = book.get(parts[1]) if book is not None else None
        if book is None or delivery is None:
            raise _Bad(404, f"no webhook delivery {_clip(parts[1])}")
        if kind not in PROBES:
            raise _Bad(400, f"kind must be one of {', '.join(PROBES)}, got {_clip(kind)}")
        try:
            book.forge(delivery, str(kind))
        except ValueError as exc:
            raise _Bad(409, str(exc)) from None
        return 200, delivery.as_dict(_hidden_headers(mock))
    if parts == ["faults"] and method == "GET":
        fit = faults.applicability(mock.spec)
        return 200, {"enabled": sorted(faults.enabled(mock)),
                     "available": {f.name: {"description": f.description, "caught_by": f.check,
                                            "applicable": fit[f.name] is None,
                                            "not_applicable": fit[f.name]}
                                   for f in faults.FAULTS.values()}}
    if parts == ["faults"] and method == "POST":
        names = _body(request).get("faults")
        if isinstance(names, list) and len(names) > len(faults.FAULTS):  # before its items
            raise _Bad(400, f"at most {len(faults.FAULTS)} fault names, got {len(names)}")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise _Bad(400, "faults must be a list of fault names")
        try:
            faults.set_faults(mock, names)
        except faults.FaultNotApplicable as exc:
            raise _Bad(422, shorten(str(exc))) from None
        except ValueError as exc:
            raise _Bad(400, shorten(str(exc))) from None
        return 200, {"enabled": sorted(faults.enabled(mock))}
    if parts == ["scenario"] and method == "POST":
        document = _scenario_document(mock, _body(request, yaml_ok=True))
        try:
            scenario = install_scenario(mock, document)
        except ScenarioError as exc:
            raise _Bad(400, shorten(str(exc))) from None
        return 200, {"loaded": scenario.name}
    if parts == ["scenario"] and method == "GET":
        active = active_scenario(mock)
        if active is None:
            return 200, {"loaded": None, "description": None}
        return 200, {"loaded": active.name, "description": active.description, **active.state()}
    if parts == ["report"] and method == "GET":
        return 200, client_report(mock)
    if parts == ["spec"] and method == "GET":
        if control_policy(mock).keep_secrets:
            return 200, mock.spec.document
        return 200, _redacted(mock.spec.document, _secrets(mock))
    if parts == ["credits"] and method in ("GET", "POST"):
        if mock.spec.credits_cost is None:
            raise _Bad(404, f"{mock.spec.name} keeps no credits (its spec has no x-jobmock credits)")
        if method == "POST":
            data, tenants = _body(request), sorted(mock.spec.auth.tenants)
            tenant, balance = data.get("tenant"), data.get("balance")
            if tenant not in tenants:
                raise _Bad(400, f"tenant must be one of {tenants}")
            if not isinstance(balance, int) or isinstance(balance, bool) or not 0 <= balance <= 10**15:
                raise _Bad(400, "balance must be an integer from 0 to 10**15")
            engine.set_credits(str(tenant), balance)
        return 200, {"cost": mock.spec.credits_cost, "credits": engine.credits()}
    if parts == ["reset"] and method == "POST":
        _body(request)  # its media type: a web page can't send a JSON one
        mock.reset()
        return 200, {"status": "reset"}
    found = dashboard.answer(mock, request, parts, __doc__ or "")
    if found is not None:
        return found
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
    for _ in range(32):  # follow local $refs, boundedly (a cycle ends here: no schema)
        if not (isinstance(response, dict) and "$ref" in response):
            break
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
    return (f"at {_short(where, 200)}: {shorten(err.message)}; expected "
            f"{_describe(err.schema, mock.spec.document)}")


_TYPE_WORDS = {"string": "string", "integer": "integer", "number": "number",
               "boolean": "boolean", "null": "null", "array": "array", "object": "object"}


def _describe(schema: Any, document: Any, depth: int = 0) -> str:
    """A short description of what ``schema`` accepts, e.g. ``object {code: string,
    message: string, details?: object}`` (``?``: optional), ``null or string``."""
    for _ in range(32):  # follow local $refs, boundedly
        ref = schema.get("$ref") if isinstance(schema, dict) else None
        if not (isinstance(ref, str) and ref.startswith("#/")):
            break
        target: Any = document
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part) if isinstance(target, dict) else None
        schema = target
    if not isinstance(schema, dict):
        return "any value"
    if "const" in schema:
        return f"exactly {_short(json.dumps(schema['const']), 60)}"
    if isinstance(schema.get("enum"), list):
        return "one of " + _short(", ".join(json.dumps(v) for v in schema["enum"]), 200)
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(alternatives, list) and alternatives:
        if depth >= 3:
            return "one of several shapes"
        return " or ".join(_describe(a, document, depth + 1) for a in alternatives[:6])
    kind = schema.get("type")
    kinds = [k for k in (kind if isinstance(kind, list) else [kind]) if isinstance(k, str)]
    if not kinds and "properties" in schema:
        kinds = ["object"]
    words = []
    for k in kinds:
        word = _TYPE_WORDS.get(k, k)
        props = schema.get("properties")
        if k == "object" and isinstance(props, dict) and props and depth < 2:
            required = set(schema.get("required") or [])
            fields = [f"{name}{'' if name in required else '?'}: "
                      f"{_describe(sub, document, depth + 1)}" for name, sub in list(props.items())[:12]]
            word += " {" + ", ".join(fields) + (", ..." if len(props) > 12 else "") + "}"
        elif k == "object" and schema.get("required"):
            word += f" with {', '.join(map(str, schema['required']))}"
        elif k == "array" and isinstance(schema.get("items"), dict) and depth < 2:
            word += " of " + _describe(schema["items"], document, depth + 1)
        words.append(word)
    return " or ".join(words) if words else "any value"


def _jobs_page(mock: Mock, request: Request) -> dict[str, Any]:
    """``GET /_jobmock/jobs``: one page of jobs in submission order, the counts, and
    ``next`` (the ``after`` of the next page; None on the last one)."""
    spec = mock.spec
    status, tenant = request.query.get("status"), request.query.get("tenant")
    if status is not None and status not in spec.lifecycle.states:
        raise _Bad(400, f"status must be one of {spec.name}'s status words "
                        f"{sorted(spec.lifecycle.states)}, got {_clip(status)}")
    if tenant is not None and tenant not in spec.auth.tenants:
        raise _Bad(400, f"tenant must be one of {sorted(spec.auth.tenants)}, got {_clip(tenant)}")
    limit = _query_int(request, "limit", JOBS_PAGE, JOBS_PAGE_MAX)
    assert limit is not None
    after = request.query.get("after")
    after_seq = -1
    if after is not None:
        mark = mock.engine.get(after)
        if mark is None:
            raise _Bad(400, f"after must be the id of a job (the previous page's next), got "
                            f"{_clip(after)}: no such job (a reset forgets every job)")
        after_seq = mark.seq
    page: list[dict[str, Any]] = []
    size, more = 0, False
    for job in mock.engine.jobs():
        if job.seq <= after_seq or status not in (None, job.status) or tenant not in (None, job.tenant):
            continue
        if len(page) >= limit:
            more = True
            break
        item = job.as_dict(spec)
        size += len(json.dumps(item, separators=(",", ":")))
        if page and size > PAGE_BYTES:  # a page of big jobs ends early; one job always fits
            more = True
            break
        page.append(item)
    return {"jobs": page, "counts": mock.engine.counts(),
            "next": page[-1]["id"] if more and page else None}


def _requests_page(mock: Mock, request: Request) -> dict[str, Any]:
    """``GET /_jobmock/requests``: the last ``limit`` entries (all kept, by default), or with
    ``after=SEQ`` the ``limit`` (default 1000) entries after that one and ``next``."""
    journal = mock.journal
    limit = _query_int(request, "limit", None, 999_999_999)
    after = _query_int(request, "after", None, 999_999_999)
    entries = list(journal)
    nxt = None
    if after is None:
        chosen = entries if limit is None else (entries[-limit:] if limit else [])
    else:
        newer = [e for e in entries if e.seq > after]
        chosen = newer[:1000 if limit is None else limit]
        if len(newer) > len(chosen) and chosen:
            nxt = chosen[-1].seq
    return {"requests": [e.as_dict() for e in chosen], "total": journal.total,
            "size": journal.size, "next": nxt}


def _advance_seconds(mock: Mock, request: Request) -> float:
    seconds = _seconds(_body(request), mock.clock.now())
    if mock.clock.speed != 0:
        raise _Bad(409, "the clock is real; start the mock with --clock virtual to move it")
    return seconds


def advance_request(mock: Mock, request: Request) -> float | Response:
    """For an adapter that plays a clock move itself (the ASGI app, so webhook attempts are
    awaited step by step): the seconds a ``POST /_jobmock/clock/advance`` asks for, once the
    guard and the checks passed; else the control plane's answer refusing it."""
    try:
        _guard(mock, request, ["clock", "advance"])
        return _advance_seconds(mock, request)
    except _Bad:
        return handle_control(mock, request)  # the same refusal, in the control plane's shape


def advance_answer(mock: Mock, fired: int) -> Response:
    """The control plane's answer to a clock move an adapter played (``fired`` entries)."""
    return json_response(200, {**clock_info(mock), "fired": fired})


def _hidden_headers(mock: Mock) -> tuple[str, ...]:
    """Webhook headers whose values the webhook log hides: the signature, any credential."""
    if control_policy(mock).keep_secrets:
        return ()
    hooks = mock.spec.webhooks
    signature = hooks.signature.header if hooks is not None and hooks.signature else None
    return ("authorization", *((signature,) if signature else ()))


def _scenario_document(mock: Mock, data: dict[str, Any]) -> dict[str, Any]:
    """A scenario posted to the control plane, within bounds: at most MAX_RULES rules and
    story steps, and for this mock's API (never a path to some other file to read)."""
    for key in ("rules", "story"):
        items = data.get(key)
        if isinstance(items, list) and len(items) > MAX_RULES:
            raise _Bad(400, str(ScenarioError("<scenario>", f"/{key}", f"at most {MAX_RULES} "
                                              f"{key} (a control-plane limit), got {len(items)}")))
    api = data.get("api")
    if isinstance(api, str) and api != mock.spec.name and not _same_file(api, mock.spec.file):
        raise _Bad(400, str(ScenarioError("<scenario>", "/api", f"the API this mock serves "
                                          f"({mock.spec.name!r}), got {_clip(api)}")))
    return data


def _same_file(path: str, spec_file: str) -> bool:
    try:
        return Path(path).resolve() == Path(spec_file).resolve()
    except (OSError, ValueError, RuntimeError):
        return False
