"""How a client behaved, judged from the mock's request journal and webhook deliveries.

A mock sees every request its client makes, so it can say more than "called N times":
it knows the ``Retry-After`` it sent, the status each answer showed, and what the
client's webhook endpoint answered. Each check is a registered function with one
signature, ``judge(context) -> list[Finding]``; a failed check raises an
:class:`AssertionError` subclass with a title, so a test reads well:

======================  ================================================================
check                   what it flags
======================  ================================================================
``retry_after``         a poll of a job sooner than the ``Retry-After`` the last answer
                        about that job allowed
``after_terminal``      a poll of a job after an answer had already shown it terminal
``ignored_job``         a submit answered with a job still pending (such as the 202 of
                        an inline wait that ran out) that the client never polled, and
                        for which it gave no webhook URL
``permanent_4xx``       the same request (method, path, query, body, credential) sent
                        again after a 400, 401, 404, 405, 410 or 422, which can never
                        succeed
``backoff_429``         after a 429, the same request by the same tenant sooner than
                        its ``Retry-After`` (1 s when the 429 sent none)
``webhooks``            a webhook attempt answered with a non-2xx status, not answered
                        (error, timeout), or answered slower than half the timeout
                        (judged where clock times measure the receiver: see :func:`find`);
                        the probes below are left to their own checks
``webhook_receiver_     a forged or stale delivery (``POST /_jobmock/webhooks/{id}/forge``)
verifies``              not refused with a 4xx: answered 2xx (accepted), 3xx or 5xx, or not
                        answered at all
``webhook_receiver_     a duplicate delivery (same id and body, signed afresh) the client
deduplicates``          visibly processed again: answered 5xx or 3xx or not answered (a
                        receiver that has the id acknowledges it, 2xx, or refuses it, 4xx),
                        or, while its endpoint held the duplicate, the client sent API
                        requests (about the job, or as its tenant) as it did while holding
                        the original (see
                        :func:`_deduplicates`; where it sent none for the original, the
                        processing can't be seen over HTTP and the report says so)
======================  ================================================================

Exceptions::

    AssertionError
     └── ClientBehaviourError          (several checks failed at once)
          ├── PolledBeforeRetryAfter
          ├── PolledAfterTerminal
          ├── IgnoredPendingJob
          ├── RetriedPermanentError
          ├── NoBackoffAfter429
          ├── WebhookNotAcknowledged
          ├── AcceptedForgedWebhook
          └── ProcessedDuplicateWebhook

The report (:func:`client_report`) is what ``GET /_jobmock/report`` serves and what
``jobmock serve`` summarises on exit (:func:`client_summary`). The judgement covers the
journal's window (its last ``size`` requests) and every delivery still recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .spec import TERMINAL_ROLES
from .templates import iso

if TYPE_CHECKING:
    from .dispatch import Mock
    from .journal import JournalEntry
    from .webhooks import Attempt, Delivery

__all__ = [
    "CHECKS",
    "AcceptedForgedWebhook",
    "Check",
    "ClientBehaviourError",
    "Finding",
    "IgnoredPendingJob",
    "NoBackoffAfter429",
    "PolledAfterTerminal",
    "PolledBeforeRetryAfter",
    "ProcessedDuplicateWebhook",
    "RetriedPermanentError",
    "WebhookNotAcknowledged",
    "assert_backed_off_after_429",
    "assert_client_behaved",
    "assert_client_honoured_retry_after",
    "assert_no_ignored_jobs",
    "assert_no_polling_after_terminal",
    "assert_no_retried_permanent_errors",
    "assert_webhook_receiver_deduplicates",
    "assert_webhook_receiver_verifies",
    "assert_webhooks_acknowledged",
    "client_report",
    "client_summary",
    "find",
]

#: Answers a retry of the very same request can never turn into a success.
PERMANENT_4XX = frozenset({400, 401, 404, 405, 410, 422})
#: The back-off expected after a 429 that sent no Retry-After, in seconds.
DEFAULT_429_BACKOFF = 1.0
#: Clock slack when comparing times (a virtual clock is exact; this absorbs float noise).
EPSILON = 1e-6
#: How many findings an assertion message lists before "... and N more".
SHOWN = 10


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing the client did wrong: which check, what happened, and where."""

    check: str
    message: str
    job_id: str | None = None
    at: float | None = None
    #: Journal sequence numbers of the requests involved (see ``GET /_jobmock/requests``).
    requests: tuple[int, ...] = ()
    delivery_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "title": CHECKS[self.check].title, "message": self.message,
                "job_id": self.job_id, "at": iso(self.at), "requests": list(self.requests),
                "delivery_id": self.delivery_id}


class ClientBehaviourError(AssertionError):
    """The client broke one or more client-behaviour checks (see :data:`CHECKS`)."""

    title = "The client misbehaved"

    def __init__(self, findings: Sequence[Finding], title: str | None = None) -> None:
        self.findings = list(findings)
        if title is not None:
            self.title = title
        lines = [f"{self.title} ({len(self.findings)} time{'s' if len(self.findings) != 1 else ''}):"]
        for f in self.findings[:SHOWN]:
            lines.append(f"  - [{f.check}] {f.message}")
        if len(self.findings) > SHOWN:
            lines.append(f"  ... and {len(self.findings) - SHOWN} more")
        super().__init__("\n".join(lines))


class PolledBeforeRetryAfter(ClientBehaviourError):
    title = "Polled before Retry-After allowed"


class PolledAfterTerminal(ClientBehaviourError):
    title = "Kept polling after a terminal status"


class IgnoredPendingJob(ClientBehaviourError):
    title = "Ignored a pending job (never polled it, no webhook)"


class RetriedPermanentError(ClientBehaviourError):
    title = "Retried a 4xx that will never succeed"


class NoBackoffAfter429(ClientBehaviourError):
    title = "Did not back off after a 429"


class WebhookNotAcknowledged(ClientBehaviourError):
    title = "Answered webhooks slowly or with non-2xx"


class AcceptedForgedWebhook(ClientBehaviourError):
    title = "Did not refuse a forged or stale webhook with a 4xx"


class ProcessedDuplicateWebhook(ClientBehaviourError):
    title = "Processed a duplicate webhook again"


@dataclass(slots=True)
class Context:
    """What a check reads: the journal window, the spec's words, the deliveries."""

    mock: Mock
    entries: list[JournalEntry]
    deliveries: list[Delivery]
    status_ops: frozenset[str]
    submit_ops: frozenset[str]
    slow_webhook: float | None = None
    #: Whether an attempt's clock times measure the receiver (see :func:`client_report`).
    timed_webhooks: bool = False
    #: What a check could not judge, and why, by check name (shown in the report).
    notes: dict[str, list[str]] = field(default_factory=dict)
    _terminal: dict[str, bool] = field(default_factory=dict)

    def terminal(self, word: str | None) -> bool:
        if word is None:
            return False
        known = self._terminal.get(word)
        if known is None:
            role = self.mock.spec.lifecycle.states.get(word)
            known = self._terminal[word] = role in TERMINAL_ROLES
        return known


Judge = Callable[[Context], list[Finding]]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    title: str
    error: type[ClientBehaviourError]
    judge: Judge


#: Every client-behaviour check, by name, in report order.
CHECKS: dict[str, Check] = {}


def _register(name: str, error: type[ClientBehaviourError]) -> Callable[[Judge], Judge]:
    def add(judge: Judge) -> Judge:
        CHECKS[name] = Check(name, error.title, error, judge)
        return judge

    return add


def _seconds(value: str | None) -> float | None:
    """Retry-After as seconds (the delta-seconds form; an HTTP-date is not judged)."""
    if value is None:
        return None
    value = value.strip()
    return float(value) if value.isdigit() else None


def _ok(status: int) -> bool:
    return 200 <= status < 300


# -- the checks ---------------------------------------------------------------------------------


@_register("retry_after", PolledBeforeRetryAfter)
def _retry_after(ctx: Context) -> list[Finding]:
    out: list[Finding] = []
    allowed: dict[str, tuple[float, float, int]] = {}  # job id -> (answered at, seconds, seq)
    for e in ctx.entries:
        job_id = e.job_id
        if job_id is None:
            continue
        if e.operation in ctx.status_ops and job_id in allowed:
            at, seconds, seq = allowed[job_id]
            gap = e.at - at
            if gap + EPSILON < seconds:
                out.append(Finding("retry_after", f"{e.method} {e.path} polled job {job_id} "
                                   f"{gap:g} s after an answer with Retry-After: {seconds:g}",
                                   job_id, e.at, (seq, e.seq)))
        seconds_sent = _seconds(e.retry_after) if _ok(e.status) else None
        if seconds_sent is None:
            allowed.pop(job_id, None)
        else:
            allowed[job_id] = (e.at, seconds_sent, e.seq)
    return out


@_register("after_terminal", PolledAfterTerminal)
def _after_terminal(ctx: Context) -> list[Finding]:
    out: list[Finding] = []
    ended: dict[str, tuple[str, int]] = {}  # job id -> (terminal word shown, seq)
    for e in ctx.entries:
        job_id = e.job_id
        if job_id is None:
            continue
        if e.operation in ctx.status_ops and job_id in ended:
            word, seq = ended[job_id]
            out.append(Finding("after_terminal", f"{e.method} {e.path} polled job {job_id} "
                               f"after an answer had shown it {word}", job_id, e.at, (seq, e.seq)))
        elif _ok(e.status) and ctx.terminal(e.job_status):
            assert e.job_status is not None
            ended.setdefault(job_id, (e.job_status, e.seq))
    return out


@_register("ignored_job", IgnoredPendingJob)
def _ignored_job(ctx: Context) -> list[Finding]:
    pending: dict[str, JournalEntry] = {}
    for e in ctx.entries:
        job_id = e.job_id
        if job_id is None:
            continue
        if e.operation in ctx.status_ops:
            pending.pop(job_id, None)
        elif (e.operation in ctx.submit_ops and _ok(e.status) and e.job_status is not None
              and not ctx.terminal(e.job_status)):
            pending.setdefault(job_id, e)
    out: list[Finding] = []
    for job_id, e in pending.items():
        job = ctx.mock.engine.get(job_id)
        if job is not None and job.callback_url:
            continue  # the client asked to be told by webhook
        out.append(Finding("ignored_job", f"{e.method} {e.path} answered {e.status} with job "
                           f"{job_id} still {e.job_status}; the client never polled it and gave "
                           f"no webhook URL", job_id, e.at, (e.seq,)))
    return out


def _credential(ctx: Context) -> Callable[[JournalEntry], str | None]:
    auth = ctx.mock.spec.auth
    if auth.location != "header":
        return lambda e: None  # the credential is in the query string, which the key holds
    name = auth.param.lower()
    return lambda e: e.headers.get(name)


@_register("permanent_4xx", RetriedPermanentError)
def _permanent_4xx(ctx: Context) -> list[Finding]:
    out: list[Finding] = []
    credential = _credential(ctx)
    failed: dict[tuple[Any, ...], JournalEntry] = {}
    for e in ctx.entries:
        key = (e.method, e.path, e.query, e.body_crc, credential(e))
        first = failed.get(key)
        if first is not None:
            out.append(Finding("permanent_4xx", f"{e.method} {e.path} sent again, unchanged, "
                               f"after it was answered {first.status}", e.job_id, e.at,
                               (first.seq, e.seq)))
        if e.status in PERMANENT_4XX:
            failed.setdefault(key, e)
        else:
            failed.pop(key, None)
    return out


@_register("backoff_429", NoBackoffAfter429)
def _backoff_429(ctx: Context) -> list[Finding]:
    out: list[Finding] = []
    credential = _credential(ctx)
    throttled: dict[tuple[Any, ...], tuple[float, float, int]] = {}
    for e in ctx.entries:
        key = (e.tenant or credential(e), e.method, e.path)
        held = throttled.pop(key, None)
        if held is not None:
            at, seconds, seq = held
            gap = e.at - at
            if gap + EPSILON < seconds:
                out.append(Finding("backoff_429", f"{e.method} {e.path} sent again {gap:g} s "
                                   f"after a 429 that asked for {seconds:g} s", e.job_id, e.at,
                                   (seq, e.seq)))
        if e.status == 429:
            asked = _seconds(e.retry_after)
            throttled[key] = (e.at, DEFAULT_429_BACKOFF if asked is None else asked, e.seq)
    return out


@_register("webhooks", WebhookNotAcknowledged)
def _webhooks(ctx: Context) -> list[Finding]:
    out: list[Finding] = []
    speed = ctx.mock.clock.speed
    for d in ctx.deliveries:
        slow = ctx.slow_webhook if ctx.slow_webhook is not None else d.policy.timeout / 2
        for a in d.attempts:
            if a.finished_at is None or a.probe is not None:
                continue  # still in flight, or a probe (judged by the receiver checks)
            where = f"webhook {d.id} (job {d.job_id}) attempt {a.number} to {d.url}"
            took = None
            if a.sent_at is not None and (ctx.timed_webhooks or speed > 0):
                took = (a.finished_at - a.sent_at) / (speed or 1.0)
            if a.error is not None:
                message = f"{where} got no answer: {a.error}"
            elif not a.ok:
                message = f"{where} was answered {a.status}"
            elif took is not None and took > slow + EPSILON:
                message = (f"{where} took {took:g} s to answer (slow: over {slow:g} s of a "
                           f"{d.policy.timeout:g} s timeout)")
            else:
                continue
            out.append(Finding("webhooks", message, d.job_id, a.finished_at, (),
                               delivery_id=d.id))
    return out


def _answer(a: Attempt) -> str:
    return f"got no answer ({a.error})" if a.status is None else f"was answered {a.status}"


@_register("webhook_receiver_verifies", AcceptedForgedWebhook)
def _verifies(ctx: Context) -> list[Finding]:
    out: list[Finding] = []
    for d in ctx.deliveries:
        for a in d.attempts:
            if a.probe not in ("forged", "stale") or a.finished_at is None:
                continue
            if a.status is not None and 400 <= a.status < 500:
                continue
            what = ("signed with a wrong key" if a.probe == "forged" else
                    "signed with a timestamp past the spec's tolerance")
            accepted = " (accepted it)" if a.ok else ""
            out.append(Finding("webhook_receiver_verifies",
                               f"a {a.probe} copy of webhook {d.id} (job {d.job_id}), {what}, "
                               f"sent to {d.url} {_answer(a)}{accepted}; a receiver that "
                               f"verifies signatures refuses it with a 4xx", d.job_id,
                               a.finished_at, (), delivery_id=d.id))
    return out


def _reaction(ctx: Context, d: Delivery, a: Attempt) -> list[JournalEntry]:
    """The client's API requests (about the delivery's job, or by its tenant) while its
    endpoint held attempt ``a``: what it did on receiving it."""
    if a.sent_mark is None or a.answered_mark is None:
        return []
    job = ctx.mock.engine.get(d.job_id)
    tenant = job.tenant if job is not None else None
    return [e for e in ctx.entries if a.sent_mark < e.seq <= a.answered_mark
            and (e.job_id == d.job_id or (tenant is not None and e.tenant == tenant))]


@_register("webhook_receiver_deduplicates", ProcessedDuplicateWebhook)
def _deduplicates(ctx: Context) -> list[Finding]:
    """A duplicate is flagged when it was answered 3xx or 5xx or not at all, or when the
    client, while its endpoint held the duplicate, sent API requests (about the job, or as
    the job's tenant) as it did while holding the original (the first attempt answered
    2xx): it acted on it again, the way it acts on a webhook.
    A receiver that sent no request while holding the original gives no sign of processing
    over HTTP: such a duplicate answered 2xx or 4xx passes, with a note saying so."""
    out: list[Finding] = []
    notes = ctx.notes.setdefault("webhook_receiver_deduplicates", [])
    for d in ctx.deliveries:
        original = next((a for a in d.attempts if a.probe is None and a.ok), None)
        for a in d.attempts:
            if a.probe != "duplicate" or a.finished_at is None:
                continue
            where = f"a duplicate of webhook {d.id} (job {d.job_id}) sent to {d.url}"
            if a.status is None or not 200 <= a.status < 500 or 300 <= a.status < 400:
                out.append(Finding("webhook_receiver_deduplicates",
                                   f"{where} {_answer(a)}; a receiver that has seen its id "
                                   f"acknowledges it (2xx) without processing it again",
                                   d.job_id, a.finished_at, (), delivery_id=d.id))
                continue
            before = _reaction(ctx, d, original) if original is not None else []
            again = _reaction(ctx, d, a)
            if before and again:
                out.append(Finding("webhook_receiver_deduplicates",
                                   f"{where} was processed again: while its endpoint held it, "
                                   f"the client sent {again[0].method} {again[0].path}, as it "
                                   f"sent {before[0].method} {before[0].path} while holding "
                                   f"the original", d.job_id,
                                   a.finished_at, tuple(e.seq for e in before + again),
                                   delivery_id=d.id))
            elif not before:
                notes.append(f"{where} was answered {a.status}; whether it was processed "
                             f"again can't be seen over HTTP (the client sent no API request "
                             f"while its endpoint held the original)")
    return out


# -- running them -----------------------------------------------------------------------------


def _context(mock: Mock, slow_webhook: float | None = None,
             timed_webhooks: bool = False) -> Context:
    ops = mock.spec.operations
    return Context(
        mock=mock,
        entries=list(mock.journal),
        deliveries=mock.webhooks.deliveries() if mock.webhooks is not None else [],
        status_ops=frozenset(o.operation_id for o in ops if o.role == "status"),
        submit_ops=frozenset(o.operation_id for o in ops if o.role == "submit"),
        slow_webhook=slow_webhook,
        timed_webhooks=timed_webhooks,
    )


def _names(checks: Iterable[str] | None) -> list[str]:
    names = list(CHECKS) if checks is None else list(checks)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise ValueError(f"unknown client-behaviour check(s) {unknown}; known: {list(CHECKS)}")
    return names


def find(mock: Mock, *checks: str, slow_webhook: float | None = None,
         timed_webhooks: bool = False) -> dict[str, list[Finding]]:
    """Run ``checks`` (all when none is named) and return their findings by check name.

    ``slow_webhook``: seconds past which an answered attempt is slow (default: half the
    spec's timeout). How long a receiver took is judged on a running clock (clock seconds
    over its speed); on a virtual clock only when ``timed_webhooks`` says each attempt's
    clock times measure the receiver, as the in-process sender's do (an async sender
    reports after the clock has jumped, so its times say nothing about the receiver).
    """
    return _judge(_context(mock, slow_webhook, timed_webhooks), checks)


def _judge(ctx: Context, checks: Iterable[str]) -> dict[str, list[Finding]]:
    return {name: CHECKS[name].judge(ctx) for name in _names(checks or None)}


def client_report(mock: Mock, *, slow_webhook: float | None = None,
                  timed_webhooks: bool = False) -> dict[str, Any]:
    """The client-behaviour report served at ``/_jobmock/report`` (options as :func:`find`)."""
    ctx = _context(mock, slow_webhook, timed_webhooks)
    found = _judge(ctx, ())
    attempts = sum(len(d.attempts) for d in (mock.webhooks.deliveries() if mock.webhooks else []))
    return {
        "api": mock.spec.name,
        "requests": mock.journal.total,
        "judged_requests": len(mock.journal),
        "webhook_attempts": attempts,
        "ok": not any(found.values()),
        "checks": [{"name": name, "title": CHECKS[name].title, "passed": not fs,
                    "findings": len(fs), "notes": ctx.notes.get(name, [])}
                   for name, fs in found.items()],
        "findings": [f.as_dict() for fs in found.values() for f in fs],
    }


def client_summary(mock: Mock, *, timed_webhooks: bool = False) -> str:
    """A short text of :func:`client_report`, printed by ``serve`` on exit."""
    report = client_report(mock, timed_webhooks=timed_webhooks)
    checks = report["checks"]
    passed = sum(1 for c in checks if c["passed"])
    lines = [f"{report['requests']} requests served, {report['webhook_attempts']} webhook "
             f"attempts made.",
             f"Client behaviour: {passed} of {len(checks)} checks passed."]
    by_check: dict[str, list[dict[str, Any]]] = {}
    for f in report["findings"]:
        by_check.setdefault(f["check"], []).append(f)
    for c in checks:
        if c["passed"]:
            continue
        found = by_check.get(c["name"], [])
        lines.append(f"  FAIL {c['title']} ({c['findings']}): {found[0]['message']}"
                     + (f" (and {len(found) - 1} more)" if len(found) > 1 else ""))
    return "\n".join(lines)


def assert_client_behaved(mock: Mock, *checks: str, slow_webhook: float | None = None,
                          timed_webhooks: bool = False) -> None:
    """Raise if any of ``checks`` (all when none is named) found something (options as
    :func:`find`).

    One failed check raises its own :class:`ClientBehaviourError` subclass; several raise a
    :class:`ClientBehaviourError` listing every finding.
    """
    found = {k: v for k, v in find(mock, *checks, slow_webhook=slow_webhook,
                                   timed_webhooks=timed_webhooks).items() if v}
    if not found:
        return
    if len(found) == 1:
        [(name, findings)] = found.items()
        raise CHECKS[name].error(findings)
    titles = ", ".join(CHECKS[n].title for n in found)
    raise ClientBehaviourError([f for fs in found.values() for f in fs],
                               title=f"The client broke {len(found)} checks: {titles}")


def assert_client_honoured_retry_after(mock: Mock) -> None:
    """No job was polled sooner than the ``Retry-After`` of the last answer about it."""
    assert_client_behaved(mock, "retry_after")


def assert_no_polling_after_terminal(mock: Mock) -> None:
    """No job was polled again once an answer had shown it terminal."""
    assert_client_behaved(mock, "after_terminal")


def assert_no_ignored_jobs(mock: Mock) -> None:
    """Every job a submit answered as pending was polled (or had a webhook URL)."""
    assert_client_behaved(mock, "ignored_job")


def assert_no_retried_permanent_errors(mock: Mock) -> None:
    """No request was repeated unchanged after a 400, 401, 404, 405, 410 or 422."""
    assert_client_behaved(mock, "permanent_4xx")


def assert_backed_off_after_429(mock: Mock) -> None:
    """No request was retried sooner than the Retry-After of the 429 it got."""
    assert_client_behaved(mock, "backoff_429")


def assert_webhook_receiver_verifies(mock: Mock) -> None:
    """Every forged or stale probe delivery was refused with a 4xx."""
    assert_client_behaved(mock, "webhook_receiver_verifies")


def assert_webhook_receiver_deduplicates(mock: Mock) -> None:
    """No duplicate probe delivery was visibly processed again (see :func:`_deduplicates`)."""
    assert_client_behaved(mock, "webhook_receiver_deduplicates")


def assert_webhooks_acknowledged(mock: Mock, *, slow_webhook: float | None = None,
                                 timed_webhooks: bool = False) -> None:
    """Every webhook attempt was answered 2xx, within half the timeout (or
    ``slow_webhook`` seconds) where that can be judged (see :func:`find`)."""
    assert_client_behaved(mock, "webhooks", slow_webhook=slow_webhook,
                          timed_webhooks=timed_webhooks)
