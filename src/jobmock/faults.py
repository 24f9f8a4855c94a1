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

from .dispatch import JobAnswer, Mock, Response, json_response
from .errors import ApiError, ForeignJob, JobNotFound, Unauthenticated, ValidationFailed
from .pointers import get, replace_existing
from .records import Job
from .templates import iso, template_pointers

__all__ = ["FAULTS", "MEMORY_SIZE", "Fault", "FaultSwitch", "enabled", "set_faults", "switch"]

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
    Fault("missing_location", "202 answers lose their Location header", "submit_answer"),
    Fault("preference_unclamped", "Preference-Applied echoes the asked wait, unclamped",
          "inline_wait"),
    Fault("inline_200_while_running", "an inline wait that runs out answers as if the job ended",
          "inline_wait"),
    Fault("gate_ignored", "a second dispatch is accepted while a run of its gate is in flight",
          "limits"),
    Fault("idempotency_ignored", "a resubmitted idempotency key creates a new job", "limits"),
    Fault("results_out_of_order", "list results come back in reverse order", "invariants"),
    Fault("timestamps_backwards", "updated_at goes backwards across polls", "invariants"),
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


class FaultSwitch:
    """The faults switched on for one mock, attached to it through the core's hooks."""

    def __init__(self, mock: Mock) -> None:
        self.mock = mock
        self.enabled: frozenset[str] = frozenset()
        #: Jobs a fault has already seen, oldest first, at most :attr:`memory_size` of them;
        #: cleared by ``Mock.reset``.
        self.memory: OrderedDict[str, None] = OrderedDict()
        self.memory_size = MEMORY_SIZE
        mock.answer_hooks.append(self._on_answer)
        mock.error_hooks.append(self._on_error)
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
        self.enabled = chosen
        mock = self.mock
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
        return self._poll_faults(answer.job, answer.response)

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
            response.headers = [(k, v) for k, v in response.headers if k.lower() != "location"]
        if "drop_retry_after" in faults:
            response.headers = [(k, v) for k, v in response.headers if k.lower() != "retry-after"]
        return response

    def _poll_faults(self, job: Job, response: Response) -> Response:
        """Break a status answer the ways the switched-on faults say."""
        mock, faults, spec = self.mock, self.enabled, self.mock.spec
        if "drop_retry_after" in faults:
            response.headers = [(k, v) for k, v in response.headers if k.lower() != "retry-after"]
        tpl = spec.document["x-jobmock"]["render"][spec.status.render]
        role = spec.lifecycle.states[job.status]
        body = json.loads(response.body)
        # A derived status (lifecycle.status_from) has no word to replace.
        status_pointer = spec.lifecycle.status_pointer or "/-"
        if "terminal_changes" in faults and mock.engine.is_terminal(job):
            # The first terminal answer is honest; later ones report another terminal word.
            if job.id in self.memory:
                other = sorted(w for w in spec.lifecycle.terminal_words if w != job.status)
                if other:
                    replace_existing(body, status_pointer, other[0])
            self._remember(job.id)
        if "wrong_status_word" in faults:
            replace_existing(body, status_pointer, "DONE-ISH")
        if "data_while_running" in faults and role in ("queued", "running"):
            # The result the job will have, shown early (so it still matches the schema).
            op = next(o for o in spec.operations if o.operation_id == job.operation_id)
            early = op.result({"job": mock.engine.view(job)}) if op.result is not None else {"x": 1}
            for p in template_pointers(tpl, "job.result"):
                replace_existing(body, p, early)
        if "error_on_completed" in faults and role == "completed":
            for p in template_pointers(tpl, "job.error"):
                replace_existing(body, p, {"type": "bogus", "code": "bogus", "message": "bogus"})
        if "results_out_of_order" in faults:
            for p in template_pointers(tpl, "job.result"):
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
