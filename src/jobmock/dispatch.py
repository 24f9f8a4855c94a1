"""The framework-free entry point: ``Mock.dispatch(Request) -> Response | Suspend``.

A :class:`Mock` owns everything one mocked API holds: its spec, clock, engine and
request journal. Adapters (the ASGI app, the respx router) only translate to and
from the plain :class:`Request` and :class:`Response` values here. An inline wait
returns a :class:`Suspend`: the adapter waits for the job through
:meth:`Engine.watch` (an event, never a polling loop) and then calls
:meth:`Suspend.finish`.

Domain errors (:mod:`jobmock.errors`) carry no HTTP; :meth:`Mock.error_response`
is the one place that turns them into the API's documented status and body.

The core knows no feature. The control plane, faults, scenarios and behaviour checks
attach through hooks, pytest/pluggy style: ``submit_hooks`` (a plan for a job about to be
created, or a refusal), ``answer_hooks`` (a rendered answer about one job),
``error_hooks`` (the answer to a domain error), ``response_hooks`` (every API answer)
and ``reset_hooks``; a feature keeps its state in ``Mock.extensions``.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import re
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import pointers
from .clock import Clock, VirtualClock
from .engine import Engine
from .errors import (
    ApiError,
    ForeignJob,
    InvalidCredentials,
    JobEnded,
    JobNotFound,
    RequestRefused,
    Unauthenticated,
    ValidationFailed,
)
from .journal import Journal
from .records import Advance, Job, JobPlan
from .rendercache import RenderCache
from .routing import Router
from .spec import ApiSpec, Operation, ResponseDef
from .store import JobStore
from .templates import iso
from .urlrules import check_callback_url
from .validation import OperationValidator, shorten
from .webhooks import DeliveryBook

__all__ = ["AnswerHook", "ErrorHook", "JobAnswer", "Mock", "Request", "Response", "ResponseHook",
           "SubmitHook", "Suspend", "json_response"]

_JSON = ("content-type", "application/json")
_PREFER_WAIT = re.compile(r"^\s*wait\s*=\s*\"?(\d{1,9})\"?\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Request:
    """An HTTP request as plain values. Header names are lower case."""

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    base_url: str = "http://127.0.0.1"
    query_string: str = ""

    def __post_init__(self) -> None:
        names = "".join(self.headers)
        if names != names.lower():
            object.__setattr__(self, "headers", {k.lower(): v for k, v in self.headers.items()})


@dataclass(slots=True)
class Response:
    """An HTTP response as plain values."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    #: Clock seconds an adapter waits before answering (a scenario's latency).
    delay: float = 0.0
    #: The adapter closes the connection without answering (a scenario's dropped connection).
    drop: bool = False

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None


#: Called before a job is created: may return a plan for it, or raise an ApiError
#: (e.g. LimitExceeded to reproduce a full queue). Arguments: operation, request, tenant, body.
SubmitHook = Callable[["Operation", "Request", "str | None", Any], "JobPlan | None"]
#: Called with every API answer before it is journaled; returns the answer to send.
ResponseHook = Callable[["Request", "Response", dict[str, Any]], "Response"]
#: Called with a domain error and the spec's answer to it; returns the answer to send.
ErrorHook = Callable[[ApiError, "Response"], "Response"]


@dataclass(frozen=True, slots=True)
class JobAnswer:
    """A rendered answer about one job (a submit's or a poll's), handed to answer hooks."""

    #: ``submit`` or ``status``.
    kind: str
    operation: Operation
    job: Job
    request: Request
    #: The ``request`` root the templates saw (params, query, body, path_template).
    context: Mapping[str, Any]
    response: Response
    #: Headers the mock added to the rendered definition (``Preference-Applied``).
    extra: tuple[tuple[str, str], ...] = ()


#: Called with every rendered job answer; returns the answer to send.
AnswerHook = Callable[[JobAnswer], "Response"]


@dataclass(slots=True)
class Suspend:
    """An inline wait: hold the request until ``job`` ends or the clock reaches ``deadline``."""

    job: Job
    deadline: float
    finish: Callable[[], Response]


def json_response(status: int, body: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    try:
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a lone surrogate the client sent: escape it, never a 500
        data = json.dumps(body, separators=(",", ":")).encode()
    return Response(status, [_JSON, *(headers or [])], data)


class Mock:
    """One mocked API: spec, clock, engine, journal, and the request handler."""

    def __init__(self, spec: ApiSpec, *, clock: Clock | None = None, seed: int = 0,
                 store: JobStore | None = None, journal_size: int = 10_000,
                 allow_private_callbacks: bool = False, advance: Advance | None = None,
                 webhook_secret: str | None = None, webhook_timeout: float | None = None,
                 deliver_webhooks: bool = True) -> None:
        self.spec = spec
        self.clock: Clock = clock if clock is not None else VirtualClock()
        self.engine = Engine(spec, self.clock, seed=seed, store=store, advance=advance)
        self.journal = Journal(journal_size)
        self.allow_private_callbacks = allow_private_callbacks
        #: False: webhooks are scheduled and journaled, but no adapter sends them.
        self.deliver_webhooks = deliver_webhooks
        self.webhooks: DeliveryBook | None = None
        if spec.webhooks is not None:
            self.webhooks = DeliveryBook(self.engine, spec.webhooks, secret=webhook_secret)
            self.webhooks.allow_private = allow_private_callbacks
            self.webhooks.mark = lambda: self.journal.total
            if webhook_timeout is not None:
                self.webhooks.timeout = webhook_timeout
        self.validators = {o.operation_id: OperationValidator(spec, o) for o in spec.operations}
        self.router = Router(spec.operations)
        self._credentials = spec.auth.credential_tenants
        #: Credential texts already resolved to their tenant (see authenticate).
        self._authenticated: dict[str, str] = {}
        #: Switched off only by a deliberate fault: another tenant's job is then answered.
        self.enforce_tenancy = True
        #: Refuse callback URLs the spec's rule forbids (switched off only by a deliberate fault).
        self.enforce_callback_rule = True
        self.submit_hooks: list[SubmitHook] = []
        self.answer_hooks: list[AnswerHook] = []
        self.error_hooks: list[ErrorHook] = []
        self.response_hooks: list[ResponseHook] = []
        self.reset_hooks: list[Callable[[], None]] = []
        #: Features' state on this mock, by feature name (``faults``, ``scenario``, ...).
        self.extensions: dict[str, Any] = {}
        #: Poll answers of unchanged jobs (:mod:`jobmock.rendercache`); None renders each poll.
        self.renders: RenderCache | None = RenderCache()
        #: Whether a template of the spec reads the clock: then the cache keys on its time.
        self._reads_clock = "{now" in repr(spec.document)

    # -- entry point ------------------------------------------------------------------

    def dispatch(self, request: Request) -> Response | Suspend:
        """Answer ``request``: an API operation or a documented error."""
        started = time.perf_counter()
        self.engine.run_due()
        info: dict[str, Any] = {"operation": None, "tenant": None, "job_id": None,
                                "job_status": None}
        try:
            result = self._dispatch_api(request, info)
        except ApiError as exc:
            result = self.error_response(exc, request, info)
            for error_hook in self.error_hooks:
                result = error_hook(exc, result)
        if isinstance(result, Suspend):
            inner = result.finish

            def finish() -> Response:
                response = self._after(request, inner(), info)
                self._record(request, response, info, started)
                return response

            result.finish = finish
            return result
        result = self._after(request, result, info)
        self._record(request, result, info, started)
        return result

    def _after(self, request: Request, response: Response, info: dict[str, Any]) -> Response:
        for hook in self.response_hooks:
            response = hook(request, response, info)
        return response

    def _answer(self, answer: JobAnswer) -> Response:
        response = answer.response
        for hook in self.answer_hooks:
            response = hook(answer)
            if response is not answer.response:
                answer = dataclasses.replace(answer, response=response)
        return response

    def _record(self, request: Request, response: Response, info: dict[str, Any],
                started: float) -> None:
        # No secret is journaled: credentials are masked (when the entry is first read)
        # unless the journal keeps secrets.
        self.journal.record_request(
            self.spec, request.headers, request.query_string, info["tenant"],
            self.clock.now(), request.method, request.path, response.status,
            info["operation"], info["job_id"], round((time.perf_counter() - started) * 1000, 3),
            response.header("retry-after"), info.get("job_status"),
            zlib.crc32(request.body) if request.body else 0)

    def reset(self) -> None:
        """Forget every job and journal entry (the clock keeps its time)."""
        self.engine.reset()
        self.journal.clear()
        if self.renders is not None:
            self.renders.clear()
        for hook in self.reset_hooks:
            hook()
        if self.webhooks is not None:
            self.webhooks.reset()

    # -- routing ------------------------------------------------------------------------

    def route(self, method: str, path: str) -> tuple[Operation | None, dict[str, str], bool]:
        """The operation for ``method path``, its path parameters, and whether the path exists."""
        return self.router.route(method, path)

    def allowed_methods(self, path: str) -> list[str]:
        """The methods the operations at ``path`` answer (HEAD wherever GET is)."""
        return self.router.allowed_methods(path)

    # -- API operations -------------------------------------------------------------------

    def _dispatch_api(self, request: Request, info: dict[str, Any]) -> Response | Suspend:
        op, raw_params, exists = self.route(request.method, request.path)
        if op is None:
            if exists:
                allow = ("Allow", ", ".join(self.allowed_methods(request.path)))
                if "method_not_allowed" in self.spec.errors:
                    response = self.error_response(
                        ApiError(f"method {request.method} not allowed",
                                 error_name="method_not_allowed"), request, info)
                    response.headers.append(allow)
                    return response
                return json_response(405, {"error": f"method {request.method} not allowed"},
                                     [allow])
            raise JobNotFound(f"no operation at {request.method} {request.path}")
        info["operation"] = op.operation_id
        tenant = self.authenticate(request) if op.secured else None
        info["tenant"] = tenant
        validator = self.validators[op.operation_id]
        exempt = None
        if self.allow_private_callbacks and op.role == "submit" and self.spec.webhooks is not None:
            exempt = self.spec.webhooks.url_pointer
        try:
            params, query, body = validator.validate(raw_params, request, exempt)
        except ValidationFailed as exc:
            raise self._malformed_id(op, exc) from None
        ctx_request = {"method": request.method, "path": request.path,
                       "path_template": op.path, "params": params, "query": query, "body": body}
        if op.role == "submit":
            return self._submit(op, request, tenant, params, query, body, ctx_request, info)
        if op.role == "status":
            return self._status(op, request, tenant, params, ctx_request, info)
        if op.role == "cancel":
            return self._cancel(op, request, tenant, params, ctx_request, info)
        if op.role == "delete":
            job = self._job_for(op, params, tenant, info)
            self.engine.delete(job)
            assert op.answer is not None
            return self.render_job(op.answer, job, request, ctx_request)
        if op.role == "list":
            return self._list(op, request, tenant, query, ctx_request)
        if op.role == "wait":
            return self._hold_until_done(op, request, tenant, params, query, body, ctx_request,
                                         info)
        if op.role == "result":
            return self._result(op, request, tenant, params, ctx_request, info)
        # An operation the spec describes but gives no job role: documented, not simulated.
        return json_response(501, {"error": f"{op.operation_id} is described by the spec but has "
                                            f"no x-jobmock role, so the mock does not simulate it"})

    def authenticate(self, request: Request) -> str:
        """The tenant the request's credentials name; raises for missing or unknown ones."""
        auth = self.spec.auth
        if auth.location == "query":
            raw = request.query.get(auth.param, "")
        else:
            raw = request.headers.get(auth.param.lower(), "")
        known = self._authenticated.get(raw)
        if known is not None:
            return known  # this very credential text named this tenant before
        raw = raw.strip()
        if not raw:
            raise Unauthenticated("no credentials", error_name=auth.missing)
        credential: str | None = raw
        if auth.kind in ("bearer", "basic"):
            scheme, _, value = raw.partition(" ")
            value = value.strip()
            if scheme.lower() != auth.kind or not value:
                raise InvalidCredentials("malformed Authorization header", error_name=auth.invalid)
            credential = value
            if auth.kind == "basic":
                try:
                    credential = base64.b64decode(value, validate=True).decode("utf-8")
                except ValueError:  # binascii.Error, non-ASCII text, or not UTF-8
                    credential = None
        tenant = self._credentials.get(credential) if credential is not None else None
        if tenant is None:
            raise InvalidCredentials("unknown credentials", error_name=auth.invalid)
        if len(self._authenticated) < 4096:  # bounded: a client sends a few
            self._authenticated[raw] = tenant
        return tenant

    def _submit(self, op: Operation, request: Request, tenant: str | None,
                params: dict[str, Any], query: dict[str, Any], body: Any,
                ctx_request: dict[str, Any], info: dict[str, Any]) -> Response | Suspend:
        callback_url = None
        rule = self.spec.callbacks  # the webhooks' rule, or a rule without deliveries
        if rule is not None:
            callback_url = pointers.get(body, rule.url_pointer)
            if callback_url is not None:
                problem = check_callback_url(callback_url, rule.url_rule,
                                             allow_private=self.allow_private_callbacks)
                if problem and self.enforce_callback_rule:
                    raise ValidationFailed(problem)
        plan = None
        for hook in self.submit_hooks:
            plan = hook(op, request, tenant, body) or plan
        job, _ = self.engine.submit(op, tenant=tenant, body=body, params=params, query=query,
                                    callback_url=callback_url, request_context=ctx_request,
                                    base_url=request.base_url, plan=plan)
        info["job_id"] = job.id
        wait, applied = self._wait_for(op, request, query, body)
        if callback_url is not None and op.wait.callback_skips_wait:
            # "Callback: 202 now" - the wait applied is none, whatever was asked.
            wait, applied = 0.0, (0 if applied is not None else None)
        extra: list[tuple[str, str]] = []
        if applied is not None and op.wait.applied_header:
            extra.append((op.wait.applied_header, f"wait={applied}"))

        def finish() -> Response:
            self.engine.run_due()
            now = self.engine.get(job.id) or job  # a shared store may have restored the state
            info["job_status"] = now.status
            return self._submit_response(op, now, request, ctx_request, extra)

        if wait > 0 and not self.engine.is_terminal(job):
            return Suspend(job, self.clock.now() + wait, finish)
        # No wait: answer with the job as submitted, whatever the clock did meanwhile.
        info["job_status"] = job.status
        return self._submit_response(op, job, request, ctx_request, extra)

    def _wait_for(self, op: Operation, request: Request, query: Mapping[str, Any],
                  body: Any = None) -> tuple[float, int | None]:
        """Seconds to hold this submit, and the Prefer wait applied (None if none was asked).

        Query switches first (an explicit ``?async=true`` wins), then body switches, then
        ``Prefer`` (RFC 7240: preferences are
        comma separated, parameters after ``;`` are ignored; ``respond-async`` answers at
        once and a bare ``wait`` waits the maximum when the spec allows), else the default.
        """
        policy = op.wait
        for param, value, wait in policy.query:
            got = request.query.get(param)
            if got is not None and str(got).lower() == value.lower():
                return min(wait, policy.max) if policy.max else wait, None
        for pointer, value, wait in policy.body:
            if pointers.get(body, pointer) == value:
                return min(wait, policy.max) if policy.max else wait, None
        if policy.prefer_header:
            prefs = [p.split(";", 1)[0].strip() for p in request.headers.get("prefer", "").split(",")]
            for pref in prefs:
                m = _PREFER_WAIT.match(pref)
                if m:
                    applied = min(int(m.group(1)), int(policy.max))
                    return float(applied), applied
            if policy.respond_async:
                lowered = [p.lower() for p in prefs]
                if "respond-async" in lowered:
                    return 0.0, None
                if "wait" in lowered:
                    return policy.max, int(policy.max)
        return policy.default, (int(policy.default) if policy.applied_default else None)

    def pick_response(self, responses: Mapping[str, ResponseDef], job: Job) -> ResponseDef:
        """The submit answer for the job's state: its word, its role, 'terminal', else 'pending'."""
        role = self.engine.role(job)
        for key in (job.status, role, "terminal" if self.engine.is_terminal(job) else None):
            if key is not None and key in responses:
                return responses[key]
        return responses["pending"]

    def _submit_response(self, op: Operation, job: Job, request: Request,
                         ctx_request: dict[str, Any], extra: list[tuple[str, str]]) -> Response:
        rdef = self.pick_response(op.responses, job)
        if op.wait.applied_on and rdef.status not in op.wait.applied_on and op.wait.applied_header:
            name = op.wait.applied_header.lower()
            extra = [(k, v) for k, v in extra if k.lower() != name]
        response = self.render_job(rdef, job, request, ctx_request, extra)
        if self.answer_hooks:
            response = self._answer(JobAnswer("submit", op, job, request, ctx_request, response,
                                              tuple(extra)))
        return response

    def render_job(self, rdef: ResponseDef, job: Job, request: Request,
                   ctx_request: Mapping[str, Any], extra: list[tuple[str, str]] | None = None,
                   ) -> Response:
        """Render ``job`` through a response definition (body, headers, Retry-After)."""
        now = self.clock.now()
        ctx = {"job": self.engine.view(job), "base_url": request.base_url, "now": iso(now),
               "now_ms": int(now * 1000), "request": ctx_request, "tenant": job.tenant}
        extra = list(extra or ())
        spec = self.spec
        if (rdef.retry_after and spec.retry_after_seconds is not None
                and self.engine.role(job) in spec.retry_after_roles):
            extra.append(("Retry-After", str(spec.retry_after_seconds)))
        return self._respond(rdef, ctx, extra)

    def _status(self, op: Operation, request: Request, tenant: str | None,
                params: dict[str, Any], ctx_request: dict[str, Any],
                info: dict[str, Any]) -> Response:
        job = self._job_for(op, params, tenant, info)
        self.engine.read(job)
        info["job_status"] = job.status
        response = self._render_status(op, job, request, ctx_request)
        if self.answer_hooks:
            response = self._answer(JobAnswer("status", op, job, request, ctx_request, response))
        return response

    def _render_status(self, op: Operation, job: Job, request: Request,
                       ctx_request: Mapping[str, Any]) -> Response:
        """The status definition's render of ``job``: from the render cache while neither
        the job nor anything else the render reads has changed (a copy: hooks may edit it)."""
        cache, spec = self.renders, self.spec
        if cache is None:
            return self.render_job(spec.status, job, request, ctx_request)
        key = (op.operation_id, request.method, request.path, request.query_string,
               tuple(request.query.items()) if request.query else (), request.body,
               request.base_url, self.clock.now() if self._reads_clock else None)
        hit = cache.get(job, spec, key)
        if hit is not None:
            return Response(hit[0], list(hit[1]), hit[2])
        response = self.render_job(spec.status, job, request, ctx_request)
        cache.put(job, spec, key, (response.status, tuple(response.headers), response.body))
        return response

    def _malformed_id(self, op: Operation, exc: ValidationFailed) -> ApiError:
        """A path parameter that breaks its schema names no job: where the operation
        documents the not-found answer and not the validation one, answer not found."""
        if exc.context.get("cause") != "path" or op.job_id_param is None:
            return exc
        codes = op.documented_statuses
        validation = self.spec.errors.get(exc.error_name)
        not_found = self.spec.errors.get("not_found")
        if (validation is not None and not_found is not None
                and str(validation.status) not in codes and str(not_found.status) in codes):
            return JobNotFound(exc.message)
        return exc

    def _job_for(self, op: Operation, params: Mapping[str, Any], tenant: str | None,
                 info: dict[str, Any]) -> Job:
        """The job a status, cancel or delete operation names; raises as the spec says."""
        assert op.job_id_param is not None
        job_id = str(params[op.job_id_param])
        job = self.engine.get(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id}")
        if op.match:
            ctx = {"job": self.engine.view(job)}
            for name, expected in op.match.items():
                if str(params.get(name)) != str(expected(ctx)):
                    raise JobNotFound(f"job {job_id} is not under {name}={params.get(name)}")
        if op.secured and job.tenant != tenant and self.enforce_tenancy:
            raise ForeignJob(f"job {job_id} belongs to another tenant",
                             error_name=self.spec.auth.foreign_job)
        info["job_id"] = job.id
        return job

    def _cancel(self, op: Operation, request: Request, tenant: str | None,
                params: dict[str, Any], ctx_request: dict[str, Any],
                info: dict[str, Any]) -> Response:
        job = self._job_for(op, params, tenant, info)
        assert op.cancel_to is not None
        moved = self.engine.cancel(job, op.cancel_to, op.cancel_via)
        info["job_status"] = job.status
        if not moved and op.when_terminal_error is not None:
            raise JobEnded(f"job {job.id} is {job.status} and can't be canceled",
                           error_name=op.when_terminal_error,
                           context={"job": self.engine.view(job)})
        return self.render_job(op.answer or self.spec.status, job, request, ctx_request)

    def _result(self, op: Operation, request: Request, tenant: str | None,
                params: dict[str, Any], ctx_request: dict[str, Any],
                info: dict[str, Any]) -> Response:
        """A result resource: the spec's answer when the job completed, else the answer it
        names while the job is unfinished or when it ended otherwise."""
        job = self._job_for(op, params, tenant, info)
        self.engine.read(job)
        info["job_status"] = job.status
        answer: str | ResponseDef | None = op.answer
        if self.engine.role(job) != "completed":
            answer = op.when_ended if self.engine.is_terminal(job) else op.when_unfinished
        if isinstance(answer, str):
            raise ApiError(f"job {job.id} is {job.status}: no result", error_name=answer,
                           context={"job": self.engine.view(job)})
        assert answer is not None
        return self.render_job(answer, job, request, ctx_request)

    def _hold_until_done(self, op: Operation, request: Request, tenant: str | None,
                         params: dict[str, Any], query: Mapping[str, Any], body: Any,
                         ctx_request: dict[str, Any], info: dict[str, Any]) -> Response | Suspend:
        """A wait operation (AIP-151 ``:wait``): hold until the job ends or the wait runs out,
        then answer with the job as it is."""
        job = self._job_for(op, params, tenant, info)
        wait, _ = self._wait_for(op, request, query, body)

        def finish() -> Response:
            self.engine.run_due()
            now = self.engine.get(job.id) or job  # a shared store may have restored the state
            info["job_status"] = now.status
            return self.render_job(op.answer or self.spec.status, now, request, ctx_request)

        if wait > 0 and not self.engine.is_terminal(job):
            return Suspend(job, self.clock.now() + wait, finish)
        return finish()

    def _list(self, op: Operation, request: Request, tenant: str | None,
              query: Mapping[str, Any], ctx_request: dict[str, Any]) -> Response:
        paging = op.paging
        assert paging is not None and op.answer is not None
        raw_limit = query.get(paging.limit_param)
        limit = paging.default_limit
        if raw_limit is not None:
            try:
                limit = int(raw_limit)
            except (TypeError, ValueError):
                raise ValidationFailed(f"{paging.limit_param} must be an integer") from None
            if not 1 <= limit <= paging.max_limit:
                raise ValidationFailed(f"{paging.limit_param} must be between 1 and "
                                       f"{paging.max_limit}")
        cursor = query.get(paging.cursor_param)
        after = None
        if cursor:
            after = str(cursor)
            if paging.style == "token":
                try:
                    after = base64.urlsafe_b64decode(after.encode() + b"==").decode()
                except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
                    after = ""
        where = {field: str(query[param]) for param, field in op.filters.items()
                 if query.get(param) not in (None, "")}
        known = self.engine.get(after) if after else None
        jobs: list[Job]
        if after is not None and (known is None or known.tenant != tenant):
            # A cursor that names none of the caller's jobs (expired, forged, another
            # tenant's) gives an empty last page, as list endpoints commonly do.
            jobs, more = [], False
        else:
            jobs, more = self.engine.page(tenant, limit=limit, after=after, where=where)
        item = self.spec.renders[op.item_render] if op.item_render else self.spec.status.body
        assert item is not None
        now = self.clock.now()
        base = {"base_url": request.base_url, "now": iso(now), "now_ms": int(now * 1000),
                "request": ctx_request, "tenant": tenant}
        items = [item({**base, "job": self.engine.view(j)}) for j in jobs]
        last = jobs[-1].id if jobs else None
        token = (base64.urlsafe_b64encode(last.encode()).decode().rstrip("=")
                 if paging.style == "token" and last else last)
        page = {"items": items, "has_more": more, "first_id": jobs[0].id if jobs else None,
                "last_id": last, "next": token if more else None}
        ctx = {**base, "page": page}
        return self._respond(op.answer, ctx)

    def _respond(self, rdef: ResponseDef, ctx: Mapping[str, Any],
                 extra: list[tuple[str, str]] | None = None) -> Response:
        """The answer a response definition gives in ``ctx``: its body (or none), headers."""
        headers = [(name, str(h(ctx))) for name, h in rdef.headers.items()]
        if extra:
            headers.extend(extra)
        if rdef.body is None:
            return Response(rdef.status, headers, b"")
        response = json_response(rdef.status, rdef.body(ctx), headers)
        if rdef.content_type != "application/json":
            response.headers[0] = ("content-type", rdef.content_type)
        return response

    # -- errors ----------------------------------------------------------------------------

    def error_response(self, exc: ApiError, request: Request,
                       info: Mapping[str, Any] | None = None) -> Response:
        """The API's documented answer to a domain error."""
        edef = self.spec.errors.get(exc.error_name)
        if isinstance(exc, RequestRefused):
            # The spec's error with that status, else its validation error's shape.
            edef = next((e for e in self.spec.errors.values() if e.status == exc.status), edef)
        if edef is None:
            edef = self.spec.errors.get("internal")
            if edef is None:
                return json_response(500, {"error": str(exc)})
        now = self.clock.now()
        op, params, _ = self.route(request.method, request.path)
        ctx: dict[str, Any] = {
            "message": shorten(exc.message), "now": iso(now), "now_ms": int(now * 1000),
            "base_url": request.base_url, "tenant": (info or {}).get("tenant"),
            "request": {"method": request.method, "path": request.path,
                        "path_template": op.path if op else request.path, "params": params,
                        "query": dict(request.query)},
            **exc.context,
        }
        headers = [(name, str(h(ctx))) for name, h in edef.headers.items()]
        body = edef.body(ctx)
        status = edef.status
        if isinstance(exc, RequestRefused) and edef.status != exc.status:
            # Another error's shape answers with the refusal's status; a field of the body
            # that states the shape's own status (a wrapper's statusCode) states this one.
            if isinstance(body, dict):
                body = {k: exc.status if v == edef.status and type(v) is int else v
                        for k, v in body.items()}
            status = exc.status
        response = json_response(status, body, headers)
        if edef.content_type != "application/json":
            response.headers[0] = ("content-type", edef.content_type)
        return response

    def refuse(self, request: Request, exc: ApiError) -> Response:
        """The API's answer to a request an adapter refuses before it is dispatched (a body
        too large, headers too large, a client too slow), through the error hooks and the
        journal like any answer."""
        started = time.perf_counter()
        op, _, _ = self.route(request.method, request.path)
        info: dict[str, Any] = {"operation": op.operation_id if op else None, "tenant": None,
                                "job_id": None, "job_status": None}
        if op is not None and op.secured:
            # The tenant, where the credentials name one: the answer and the journal say so.
            with contextlib.suppress(ApiError):
                info["tenant"] = self.authenticate(request)
        result = self.error_response(exc, request, info)
        for error_hook in self.error_hooks:
            result = error_hook(exc, result)
        self._record(request, result, info, started)
        return result


