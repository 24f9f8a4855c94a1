"""Deliberate contract violations the mock can switch on, one at a time or together.

They exist so QA can reproduce a broken server on purpose, and so the contract suite can
prove it has teeth: with a fault on, the suite must fail with the check that names it.
Switch them with ``jobmock serve --fault NAME``, ``POST /_jobmock/faults``, or
``jobmock.faults.set_faults(mock, names)``. Each names the contract check (``jobmock.contract.checks``) that
catches it.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from .dispatch import JobAnswer, Mock, Response, json_response
from .errors import ApiError, ForeignJob, JobNotFound, Unauthenticated, ValidationFailed
from .pointers import find, get, replace_existing, with_value
from .records import Job
from .spec import ApiSpec
from .templates import iso, template_pointers
from .urlrules import check_callback_url
from .validation import REQUEST_FORMATS, schema_validator

__all__ = ["FAULTS", "MEMORY_SIZE", "Fault", "FaultNotApplicable", "FaultSwitch",
           "applicability", "enabled", "not_applicable", "set_faults", "switch"]

#: How many jobs a :class:`FaultSwitch` remembers (the latest ones, like the journal's ring
#: buffer): a fault's memory stays flat under load. A job that fell off answers its next
#: poll as if first seen (``terminal_changes``: honestly once more).
MEMORY_SIZE = 10_000

_PREFER_WAIT = re.compile(r"^\s*wait\s*=\s*\"?(\d{1,9})\"?\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Fault:
    name: str
    description: str
    check: str


FAULTS: dict[str, Fault] = {f.name: f for f in [
    Fault("drop_retry_after", "Retry-After is never sent", "retry_after"),
    Fault("terminal_changes", "a finished job reports another terminal status on later polls",
          "lifecycle"),
    Fault("data_while_running", "a job's result is shown while it is queued or running",
          "outcome_fields"),
    Fault("error_on_completed", "a completed job also carries an error", "outcome_fields"),
    Fault("wrong_status_word", "polls report a status word the spec does not have", "poll_schema"),
    Fault("foreign_job_200", "another tenant's job is answered as if it were the caller's", "auth"),
    Fault("foreign_403", "another tenant's job gets 403 instead of the spec's answer", "auth"),
    Fault("auth_missing_403", "a request without credentials gets 403 instead of the spec's answer",
          "auth"),
    Fault("unknown_job_500", "polling an unknown job id answers 500", "errors"),
    Fault("validation_500", "an invalid body answers 500", "errors"),
    Fault("missing_location", "submit answers lose the header that names the job's status "
          "(Location, or the header job_id_from reads, such as Operation-Location)",
          "submit_answer"),
    Fault("preference_unclamped", "Preference-Applied echoes the asked wait, unclamped",
          "inline_wait"),
    Fault("inline_200_while_running", "an inline wait that runs out answers as if the job ended",
          "inline_wait"),
    Fault("gate_ignored", "a second dispatch is accepted while a run of its gate is in flight",
          "limits"),
    Fault("idempotency_ignored", "a resubmitted idempotency key creates a new job", "limits"),
    Fault("results_out_of_order", "the items a job echoes from its request (an echoes_items "
          "invariant) come back in reverse order", "invariants"),
    Fault("timestamps_backwards", "updated_at goes backwards across polls (where an invariant "
          "says it never does)", "invariants"),
    Fault("progress_backwards", "progress_pct goes down across polls", "invariants"),
    Fault("wrong_signature", "webhooks are signed with the wrong secret", "webhooks"),
    Fault("no_webhook_retry", "a failed webhook is never retried", "webhook_retries"),
    Fault("callback_rule_ignored", "callback URLs the spec's rule forbids (loopback, private "
          "hosts) are accepted at submit", "callback_urls"),
    Fault("queue_lifo", "under the concurrency limit the newest waiting job starts first (LIFO)",
          "queue_order"),
    Fault("credits_on_failure", "a failed job shows its credits charged", "credits"),
    Fault("webhook_retry_early", "failed webhooks are retried six times sooner than the schedule",
          "webhook_retries"),
]}


class FaultNotApplicable(ValueError):
    """A fault that would change nothing on this spec (it lacks what the fault breaks)."""


def _assumed(spec: ApiSpec, *pointers: str) -> bool:
    """Whether the spec marks any of ``pointers`` (or a node above one) ``x-jobmock.assumed``:
    the contract suite does not demand what is assumed, so a fault there shows nothing."""
    listed = [str(a).rstrip("/") for a in spec.document["x-jobmock"].get("assumed") or ()]
    return any(p == a or p.startswith(a + "/") for p in pointers for a in listed)


def _status_template(spec: ApiSpec) -> Any:
    return spec.document["x-jobmock"]["render"][spec.status_render]


def _invariants(spec: ApiSpec, kind: str) -> list[str]:
    """The pointers of the spec's contract invariants of ``kind`` that it does not assume."""
    found = (spec.document["x-jobmock"].get("contract") or {}).get("invariants") or ()
    return [inv["pointer"] for i, inv in enumerate(found)
            if inv.get("kind") == kind and not _assumed(spec, f"/x-jobmock/contract/invariants/{i}")]


def monitor_headers(spec: ApiSpec) -> frozenset[str]:
    """The headers of a submit answer that name the job (lower case): ``Location`` and every
    header ``job_id_from`` reads (``Operation-Location``, ``X-Job-Id``)."""
    names = {"location"}
    for op in spec.submit_operations:
        for source in op.job_id_from:
            if source.startswith("header:"):
                names.add(source[len("header:"):].split("|")[0].strip().lower())
    return frozenset(names)


def _answered_headers(spec: ApiSpec) -> set[str]:
    """Headers (lower case) some submit answer of the spec sends."""
    return {name.lower() for op in spec.submit_operations for r in op.responses.values()
            for name in r.headers}


def _inline_waits(op: Any) -> list[float]:
    """The inline waits (seconds, > 0) a client can ask ``op`` for."""
    w = op.wait
    out = [w.default, *(x for _, _, x in w.query), *(x for _, _, x in w.body)]
    if w.prefer_header:
        out += [1.0, w.max]
    return [x for x in out if x > 0]


def _longest_job(spec: ApiSpec) -> float:
    """The longest a job runs by the spec's timing model: along its longest flow path, or
    queued then running."""
    t = spec.timing
    if not t.flow:
        return t.queued[1] + t.running[1]

    def longest(word: str, seen: frozenset[str]) -> float:
        step = t.flow.get(word)
        if step is None or word in seen:
            return 0.0
        later = [longest(w, seen | {word}) for w, _ in step.next or ()]
        return step.duration[1] + max(later, default=0.0)

    return longest(spec.lifecycle.queued, frozenset())


def _resolve(spec: ApiSpec, node: Any) -> Any:
    """``node`` with its local ``$ref`` followed (a few levels at most)."""
    for _ in range(8):
        if not (isinstance(node, dict) and isinstance(node.get("$ref"), str)):
            break
        node = get(spec.document, node["$ref"].removeprefix("#"))
    return node


def _monitor_demanded(spec: ApiSpec) -> bool:
    """Whether losing the monitor headers breaks a submit answer the suite judges: the job id
    is read only from headers, or the OpenAPI answer marks such a header required (and the
    spec does not assume it)."""
    monitors = monitor_headers(spec)
    renders = spec.document["x-jobmock"]["render"]
    for op in spec.submit_operations:
        in_body = [s[len("body:"):].split("|")[0] for s in op.job_id_from if s.startswith("body:")]
        for r in op.responses.values():
            # An answer whose body carries none of the body sources: the header is the id.
            tpl = renders.get(r.render) if r.render else None
            if ({h.lower() for h in r.headers} & monitors
                    and not any(find(tpl, p)[0] for p in in_body)):
                return True
        node = get(spec.document, "/paths/" + op.path.replace("~", "~0").replace("/", "~1")
                   + "/" + op.method.lower()) or {}
        for code, answer in (node.get("responses") or {}).items():
            headers = (_resolve(spec, answer) or {}).get("headers") or {}
            for hname, header in headers.items():
                where = f"/paths/{op.path}/{op.method.lower()}/responses/{code}/headers/{hname}"
                if (hname.lower() in monitors and (_resolve(spec, header) or {}).get("required")
                        and not _assumed(spec, where)
                        and not (isinstance(header, dict) and "$ref" in header
                                 and _assumed(spec, header["$ref"].removeprefix("#")))):
                    return True
    return False


#: URLs a callback rule may forbid: wrong schemes, relative, private and loopback hosts.
_PROBE_URLS = ("http://contract-probe.invalid/hook", "ftp://contract-probe.invalid/hook",
               "/hook", "not a url", "https://127.0.0.1/hook", "https://10.0.0.1/hook",
               "https://localhost/hook", "https://[::1]/hook")


def _rule_beyond_schema(spec: ApiSpec) -> bool:
    """Whether the callback URL rule refuses some URL the submit body's schema accepts (only
    then does ignoring the rule change an answer)."""
    hooks = spec.webhooks
    assert hooks is not None
    for op in spec.submit_operations:
        if op.body_schema is None:
            return True
        validator = schema_validator(spec, op.body_schema, REQUEST_FORMATS)
        for url in _PROBE_URLS:
            if check_callback_url(url, hooks.url_rule) is None:
                continue
            if validator.is_valid(with_value(op.body_example or {}, hooks.url_pointer, url)):
                return True
    return False


def _roles(spec: ApiSpec) -> set[str]:
    return set(spec.lifecycle.states.values())


def _webhook_reason(spec: ApiSpec, name: str) -> str | None:
    hooks = spec.webhooks
    if hooks is None:
        return "the spec sends no webhooks"
    if name == "wrong_signature" and hooks.signature is None:
        return "the spec's webhooks are not signed"
    if name == "wrong_signature" and _assumed(spec, "/x-jobmock/webhooks/signature"):
        return "the spec assumes its webhook signature (the suite does not demand it)"
    if name in ("no_webhook_retry", "webhook_retry_early") and hooks.retry.attempts < 2:
        return "the spec's webhooks are never retried"
    if name == "webhook_retry_early" and not any(d > 0 for d in hooks.retry.delays):
        return "the spec's webhook retries have no delays to shorten"
    if name in ("no_webhook_retry", "webhook_retry_early") and _assumed(
            spec, "/x-jobmock/webhooks/retry"):
        return "the spec assumes its webhook retries (the suite does not demand them)"
    if name == "webhook_retry_early" and _assumed(spec, "/x-jobmock/webhooks/retry/delays"):
        return "the spec assumes its retry delays (the suite judges only that retries come)"
    if name == "callback_rule_ignored" and hooks.url_rule == "any":
        return "the spec's callback URL rule accepts any URL"
    if name == "callback_rule_ignored" and _assumed(spec, "/x-jobmock/webhooks/url_rule"):
        return "the spec assumes its callback URL rule (the suite does not demand it)"
    if name == "callback_rule_ignored" and not _rule_beyond_schema(spec):
        return (f"the submit body's schema already refuses every URL the rule "
                f"({hooks.url_rule}) forbids")
    return None


def not_applicable(spec: ApiSpec, name: str) -> str | None:
    """Why fault ``name`` would change nothing the contract suite judges on ``spec``, read
    from the spec alone; None when it applies. Unknown names raise ``KeyError``."""
    if name not in FAULTS:
        raise KeyError(name)
    tpl, lc, auth = _status_template(spec), spec.lifecycle, spec.auth
    roles = _roles(spec)
    if name == "drop_retry_after":
        if spec.retry_after_seconds is None:
            return "the spec sends no Retry-After"
        if _assumed(spec, "/x-jobmock/retry_after"):
            return "the spec assumes its Retry-After (the suite does not demand it)"
    elif name == "terminal_changes":
        if len(lc.terminal_words) < 2:
            return "the lifecycle has one terminal status: there is no other to change to"
    elif name == "data_while_running":
        if not template_pointers(tpl, "job.result"):
            return "the status answer shows no {job.result} to show early"
    elif name == "error_on_completed":
        if not template_pointers(tpl, "job.error"):
            return "the status answer shows no {job.error}"
        if "completed" not in roles:
            return "the lifecycle has no completed status"
    elif name in ("foreign_job_200", "foreign_403", "auth_missing_403"):
        if name == "auth_missing_403" and not any(o.secured for o in spec.operations):
            return "no operation needs credentials"
        if name != "auth_missing_403" and not spec.status_operation.secured:
            return "the status operation needs no credentials: any caller reads any job"
        if len(auth.tenants) < 2 and name != "auth_missing_403":
            return "the spec has one tenant: no job belongs to another"
        error = auth.missing if name == "auth_missing_403" else auth.foreign_job
        pointer = "/x-jobmock/auth/" + ("missing" if name == "auth_missing_403" else "foreign_job")
        if name != "foreign_job_200" and spec.errors[error].status == 403:
            return f"the spec already answers 403 ({error})"
        if name != "foreign_job_200" and _assumed(spec, pointer, f"/x-jobmock/errors/{error}/status"):
            return f"the spec assumes this answer ({error}): the suite accepts any 4xx there"
    elif name == "validation_500":
        if not any(o.body_schema is not None for o in spec.submit_operations):
            return "no submit operation takes a body to get wrong"
    elif name == "missing_location":
        if not monitor_headers(spec) & _answered_headers(spec):
            return "no submit answer sends a header that names the job (Location or a job_id_from header)"
        if not _monitor_demanded(spec):
            return ("no submit answer requires the header that names the job (the job id is "
                    "read from the body, and the header is optional or assumed)")
    elif name in ("preference_unclamped", "inline_200_while_running"):
        ops = spec.submit_operations
        waits = [w for o in ops for w in _inline_waits(o)]
        if not waits:
            return "no submit operation answers inline (no wait)"
        if name == "inline_200_while_running" and min(waits) >= _longest_job(spec):
            return (f"every inline wait ({min(waits):g}s or more) outlasts the longest job "
                    f"({_longest_job(spec):g}s by timing): none runs out while a job runs")
        if name == "preference_unclamped" and not any(
                o.wait.prefer_header and o.wait.applied_header for o in ops):
            return "no submit operation echoes the applied wait (wait.applied_header)"
    elif name == "gate_ignored":
        if spec.limits.gate is None:
            return "the spec has no gate (limits.gate)"
    elif name == "idempotency_ignored":
        if spec.idempotency_pointer is None:
            return "the spec has no idempotency key"
    elif name == "results_out_of_order":
        if not _invariants(spec, "echoes_items"):
            return "the spec declares no echoes_items invariant (no order to judge)"
    elif name in ("timestamps_backwards", "progress_backwards"):
        field = "job.updated_at" if name == "timestamps_backwards" else "job.progress_pct"
        if not set(template_pointers(tpl, field)) & set(_invariants(spec, "non_decreasing")):
            return f"no non_decreasing invariant covers a {{{field}}} of the status answer"
    elif name == "queue_lifo":
        if spec.limits.concurrency_max is None:
            return "the spec has no concurrency limit (limits.concurrency), so no queue"
    elif name == "credits_on_failure":
        if not template_pointers(tpl, "job.credits_charged"):
            return "the status answer shows no {job.credits_charged}"
        if "failed" not in roles:
            return "the lifecycle has no failed status"
        if spec.credits_cost is None:
            return "the spec charges no credits"
        if _assumed(spec, "/x-jobmock/credits/charge_on"):
            return "the spec assumes which statuses are charged (the suite does not demand it)"
    elif name in ("wrong_signature", "no_webhook_retry", "callback_rule_ignored",
                  "webhook_retry_early"):
        return _webhook_reason(spec, name)
    return None


def applicability(spec: ApiSpec) -> dict[str, str | None]:
    """Every fault with why it does not apply to ``spec`` (None: it applies)."""
    return {name: not_applicable(spec, name) for name in FAULTS}


class FaultSwitch:
    """The faults switched on for one mock, attached to it through the core's hooks."""

    def __init__(self, mock: Mock) -> None:
        self.mock = mock
        self.enabled: frozenset[str] = frozenset()
        #: Jobs a fault has already seen, oldest first, at most :attr:`memory_size` of them;
        #: cleared by ``Mock.reset``.
        self.memory: OrderedDict[str, None] = OrderedDict()
        self.memory_size = MEMORY_SIZE
        mock.reset_hooks.append(self.memory.clear)
        #: What the faults below change, as the mock had it before any was switched on.
        self._webhooks_config = mock.webhooks.config if mock.webhooks is not None else None

    def set(self, names: Iterable[str]) -> None:
        chosen = frozenset(names)
        unknown = sorted(chosen - set(FAULTS))
        if unknown:
            from .hints import did_you_mean

            raise ValueError(f"unknown fault(s) {unknown};{did_you_mean(unknown[0], FAULTS)} "
                             f"known: {sorted(FAULTS)}")
        idle = {n: why for n in sorted(chosen) if (why := not_applicable(self.mock.spec, n))}
        if idle:
            raise FaultNotApplicable(
                f"fault(s) not applicable to {self.mock.spec.name}: " + "; ".join(
                    f"{n} ({why})" for n, why in idle.items())
                + ": they would change nothing the contract suite judges")
        self.enabled = chosen
        mock = self.mock
        # The answer and error hooks are on the mock only while a fault is: with none, a
        # poll builds no JobAnswer for a hook that would hand it back unchanged.
        for hooks, hook in ((mock.answer_hooks, self._on_answer),
                            (mock.error_hooks, self._on_error)):
            if chosen and hook not in hooks:
                hooks.append(hook)  # type: ignore[arg-type]
            elif not chosen and hook in hooks:
                hooks.remove(hook)  # type: ignore[arg-type]
        mock.enforce_tenancy = "foreign_job_200" not in chosen
        mock.engine.enforce_gate = "gate_ignored" not in chosen
        mock.engine.honour_idempotency = "idempotency_ignored" not in chosen
        mock.engine.queue_lifo = "queue_lifo" in chosen
        # Only the submit-time check: the senders still refuse private addresses.
        mock.enforce_callback_rule = "callback_rule_ignored" not in chosen
        if mock.webhooks is not None and self._webhooks_config is not None:
            mock.webhooks.wrong_signature = "wrong_signature" in chosen
            mock.webhooks.retries_enabled = "no_webhook_retry" not in chosen
            config = self._webhooks_config
            if "webhook_retry_early" in chosen:
                retry = replace(config.retry, delays=tuple(d / 6 for d in config.retry.delays))
                config = replace(config, retry=retry)
            mock.webhooks.config = config

    def _remember(self, job_id: str) -> None:
        """Note ``job_id`` as seen, forgetting the oldest beyond :attr:`memory_size`."""
        self.memory[job_id] = None
        self.memory.move_to_end(job_id)
        while len(self.memory) > self.memory_size:  # one pass, unless the size was lowered
            self.memory.popitem(last=False)

    def _on_error(self, exc: ApiError, response: Response) -> Response:
        faults = self.enabled
        if not faults:
            return response
        if ("unknown_job_500" in faults and isinstance(exc, JobNotFound)) or (
                "validation_500" in faults and isinstance(exc, ValidationFailed)):
            return json_response(500, {"error": "Internal Server Error"})
        if "auth_missing_403" in faults and isinstance(exc, Unauthenticated):
            response.status = 403
        if "foreign_403" in faults and isinstance(exc, ForeignJob):
            response.status = 403
        return response

    def _on_answer(self, answer: JobAnswer) -> Response:
        if not self.enabled:
            return answer.response
        if answer.kind == "submit":
            return self._submit_faults(answer)
        return self._poll_faults(answer)

    def _submit_faults(self, answer: JobAnswer) -> Response:
        faults, mock, op, job = self.enabled, self.mock, answer.operation, answer.job
        extra = list(answer.extra)
        if "preference_unclamped" in faults and extra:
            asked = _PREFER_WAIT.match(answer.request.headers.get("prefer", "").split(",")[0])
            extra = [(k, f"wait={asked.group(1)}" if asked else v) for k, v in extra]
        response = answer.response
        if "inline_200_while_running" in faults and not mock.engine.is_terminal(job):
            # The answer the job will get once it reaches its planned outcome, given now.
            ended = _as_ended(mock, job)
            rdef = mock.pick_response(op.responses, ended)
            if rdef is not op.responses.get("pending"):
                response = mock.render_job(rdef, ended, answer.request, answer.context, extra)
        elif extra != list(answer.extra):
            names = {k.lower() for k, _ in extra}
            response.headers = [(k, v) for k, v in response.headers if k.lower() not in names]
            response.headers.extend(extra)
        if "missing_location" in faults:
            monitors = monitor_headers(mock.spec)
            response.headers = [(k, v) for k, v in response.headers if k.lower() not in monitors]
        if "drop_retry_after" in faults:
            response.headers = [(k, v) for k, v in response.headers if k.lower() != "retry-after"]
        return response

    def _poll_faults(self, answer: JobAnswer) -> Response:
        """Break a status answer the ways the switched-on faults say."""
        mock, faults, spec = self.mock, self.enabled, self.mock.spec
        job, response = answer.job, answer.response
        if "drop_retry_after" in faults:
            response.headers = [(k, v) for k, v in response.headers if k.lower() != "retry-after"]
        if not response.body:
            return response
        tpl = _status_template(spec)
        role = spec.lifecycle.states[job.status]
        body = json.loads(response.body)
        lc = spec.lifecycle
        if "terminal_changes" in faults and mock.engine.is_terminal(job):
            # The first terminal answer is honest; later ones report another terminal status.
            if job.id in self.memory:
                other = sorted(w for w in lc.terminal_words if w != job.status)
                if other and lc.status_pointer:
                    replace_existing(body, lc.status_pointer, other[0])
                elif other:  # a derived status (lifecycle.status_from): the other end's body
                    ended = _as_ended(mock, replace(job, outcome=other[0], forced_result=None,
                                                    forced_error=None))
                    again = mock.render_job(spec.status, ended, answer.request, answer.context)
                    body = json.loads(again.body)
            self._remember(job.id)
        if "wrong_status_word" in faults:
            # Every place the status is read from (a derived status: each field of its rules).
            for p in lc.status_pointers:
                replace_existing(body, p, "DONE-ISH")
        if "data_while_running" in faults and role in ("queued", "running"):
            # The result the job will have, shown early (so it still matches the schema).
            op = next(o for o in spec.operations if o.operation_id == job.operation_id)
            early = op.result({"job": mock.engine.view(job)}) if op.result is not None else {"x": 1}
            for p in template_pointers(tpl, "job.result"):
                body = with_value(body, p, early)
        if "error_on_completed" in faults and role == "completed":
            error = _an_error(mock, job)
            for p in template_pointers(tpl, "job.error"):
                body = with_value(body, p, error)
        if "results_out_of_order" in faults:
            for p in _invariants(spec, "echoes_items"):
                value = get(body, p)
                if isinstance(value, list) and len(value) > 1:
                    replace_existing(body, p, list(reversed(value)))
        if "timestamps_backwards" in faults:
            for p in template_pointers(tpl, "job.updated_at"):
                replace_existing(body, p, iso(job.created_at - 60 * job.polls))
        if "credits_on_failure" in faults and role == "failed":
            charge = job.credits_to_charge or spec.credits_cost or 1
            for p in template_pointers(tpl, "job.credits_charged"):
                replace_existing(body, p, charge)
        if "progress_backwards" in faults:
            for p in template_pointers(tpl, "job.progress_pct"):
                replace_existing(body, p, max(0, 100 - 10 * job.polls))
        response.body = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        return response


def _as_ended(mock: Mock, job: Job) -> Job:
    """A copy of ``job`` as it will be at its planned outcome: its status, result and error."""
    spec = mock.spec
    ended = replace(job, status=job.outcome, history=list(job.history))
    ctx = {"job": mock.engine.view(ended)}
    if spec.lifecycle.states[job.outcome] == "completed":
        op = next(o for o in spec.operations if o.operation_id == job.operation_id)
        ended.result = job.forced_result if job.forced_result is not None else (
            op.result(ctx) if op.result is not None else {})
    if job.forced_error is not None or job.outcome in spec.outcome_errors:
        ended.error = job.forced_error if job.forced_error is not None else (
            spec.outcome_errors[job.outcome](ctx))
    return ended


def _an_error(mock: Mock, job: Job) -> Any:
    """An error as the spec renders one for an outcome that carries one (so it matches the
    schema), or a made-up one where no outcome does."""
    for word, render in sorted(mock.spec.outcome_errors.items()):
        if mock.spec.lifecycle.states.get(word) == "failed":
            return render({"job": mock.engine.view(replace(job, status=word))})
    return {"type": "bogus", "code": "bogus", "message": "bogus"}


def switch(mock: Mock) -> FaultSwitch:
    """The fault switch of ``mock``, attached on first use."""
    found = mock.extensions.get("faults")
    if not isinstance(found, FaultSwitch):
        found = mock.extensions["faults"] = FaultSwitch(mock)
    return found


def set_faults(mock: Mock, names: Iterable[str]) -> None:
    """Switch on exactly these deliberate contract violations on ``mock``."""
    switch(mock).set(names)


def enabled(mock: Mock) -> frozenset[str]:
    """The faults switched on for ``mock``."""
    found = mock.extensions.get("faults")
    return found.enabled if isinstance(found, FaultSwitch) else frozenset()
