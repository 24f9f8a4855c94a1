"""In-process mocking for httpx clients, through respx: no server, no socket, no sleeping.

::

    import httpx, jobmock

    with jobmock.mock("croma", seed=1) as api:          # a context manager ...
        client = httpx.Client(base_url=api.base_url, headers=api.auth_headers())
        r = client.post("/v1/lookups/sicaac", json={...}, headers={"Prefer": "wait=0"})
        api.advance(30)                                  # the virtual clock: every job ends
        assert client.get(r.headers["Location"]).json()["status"] == "completed"
        api.assert_client_honoured_retry_after()

    @jobmock.mock("cloro")                               # ... or a decorator (a fresh mock
    def test_it(jobmock): ...                            # per call, passed as ``jobmock``)

Requests for the API's base URL (default: the spec's ``servers[0].url``) reach
:meth:`Mock.dispatch` synchronously from a respx side effect, so ``httpx.Client`` and
``httpx.AsyncClient`` are served alike (respx's ASGI handler serves only async clients).
Requests to other hosts fail (respx's "not mocked" error) unless ``pass_through=True``
sends them to the network; add routes of your own to :attr:`InProcessMock.router` as with
``respx.mock`` (routes on another respx router are consulted only if it started first).

Time. On the virtual clock (the default) nothing moves until the test says so:
:meth:`InProcessMock.advance` (also :meth:`~InProcessMock.sleep`, to inject into a client
as its sleep function), or an ``auto_advance`` policy that moves the clock before each
request: ``"retry-after"`` (each poll of a job first moves time to when the ``Retry-After``
last sent about it allows; a request retried after a 429 likewise), a number of seconds
per API request, or a callable ``(api, request) -> seconds``. An inline wait
(``Prefer: wait=N``) never blocks: the clock moves to the job's end or to the wait's
deadline, whichever comes first, and the answer is sent. A scenario's response delay moves
the clock the same way; a dropped connection raises ``httpx.RemoteProtocolError``.

Webhooks. Each attempt is an ``httpx.Request`` resolved through the same respx router, so
a test registers the receiving endpoint as a route (:meth:`InProcessMock.webhook_route`,
or any ``api.router.post(url)`` route with its own side effect) and asserts the calls the
respx way. An attempt whose URL no route matches goes over the network when the URL is on
loopback (``jobmock``'s ``webhook_receiver`` fixture; needs
``allow_private_callbacks=True``) or when ``pass_through=True``; otherwise it fails
("no respx route ...") and is retried on the spec's schedule like any unreachable
endpoint. A receiver "answers slowly" in-process when its side effect moves the clock
(``webhook_route(..., latency=s)``); past the spec's timeout the attempt counts as a
timeout.
"""

from __future__ import annotations

import functools
import inspect
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, cast
from urllib.parse import parse_qsl

import httpx
import respx
from respx.models import AllMockedAssertionError, PassThrough

from . import behaviour
from .clock import Clock
from .control import is_control
from .dispatch import Request, Response, Suspend
from .engine import Advance, Job, JobPlan
from .errors import LimitExceeded, RequestRefused
from .faults import set_faults
from .idle import IdlePolls
from .journal import Journal, JournalEntry
from .lifecycle import check_plan
from .mockbuild import build_mock
from .scenarios import install_scenario
from .sessions import SESSION_HEADER, SessionRefused, session_name, session_options
from .spec import TERMINAL_ROLES, ApiSpec
from .stack import Stack
from .urlrules import is_loopback_host
from .webhooks import Attempt, Delivery

__all__ = ["AutoAdvance", "InProcessMock", "build_mock", "mock"]

F = TypeVar("F", bound=Callable[..., Any])

#: How the clock moves before each API request: "retry-after", seconds, or a callable.
AutoAdvance = str | float | Callable[["InProcessMock", Request], float] | None

#: The host an API without ``servers`` is mocked at.
FALLBACK_BASE_URL = "https://jobmock.invalid"


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timeout: {type(exc).__name__}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class _Router(respx.MockRouter):
    """respx's router, which can also send what it does not match to the network."""

    pass_through_unmatched = False
    #: The origin a pass-through names: no route of this router matched.
    _unmatched = respx.Route()

    #: Added to respx's "not mocked" error: what is mocked, and how to reach anything else.
    hint = ""

    def _unmocked(self, exc: AllMockedAssertionError) -> AllMockedAssertionError:
        return AllMockedAssertionError(f"{exc} {self.hint}") if self.hint else exc

    def _unmatched_request(self, request: httpx.Request) -> PassThrough:
        """What an unmatched request becomes when pass-through is on."""
        return PassThrough(f"not mocked, passed through: {request!r}", request=request,
                           origin=self._unmatched)

    def handler(self, request: httpx.Request) -> httpx.Response:
        try:
            response: httpx.Response = super().handler(request)
        except AllMockedAssertionError as exc:
            if not self.pass_through_unmatched:
                raise self._unmocked(exc) from None
            raise self._unmatched_request(request) from None
        return response

    async def async_handler(self, request: httpx.Request) -> httpx.Response:
        try:
            response: httpx.Response = await super().async_handler(request)
        except AllMockedAssertionError as exc:
            if not self.pass_through_unmatched:
                raise self._unmocked(exc) from None
            raise self._unmatched_request(request) from None
        return response


class InProcessMock:
    """One API mocked in-process for httpx clients; see the module docstring.

    Attributes: :attr:`mock` (the :class:`Mock`), :attr:`engine`, :attr:`clock`,
    :attr:`router` (the respx router), :attr:`base_url`.
    """

    def __init__(self, api: str | Path | ApiSpec, *, base_url: str | None = None,
                 assert_all_called: bool = False, pass_through: bool = False,
                 auto_advance: AutoAdvance = None, max_idle_polls: int | None = 200,
                 **options: Any) -> None:
        self._args: dict[str, Any] = {"base_url": base_url, "assert_all_called": assert_all_called,
                                      "pass_through": pass_through, "auto_advance": auto_advance,
                                      "max_idle_polls": max_idle_polls, **options}
        self._api = api
        self.mock = build_mock(api, **options)
        #: The API router and the control router over :attr:`mock`.
        self.stack = Stack(self.mock)
        self.engine = self.mock.engine
        self.clock = self.mock.clock
        self.spec = self.mock.spec
        self.base_url = (base_url or self.spec.server_url or FALLBACK_BASE_URL).rstrip("/")
        url = httpx.URL(self.base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"base_url must be an absolute http(s) URL, got {self.base_url!r}")
        self._prefix = url.path.rstrip("/")
        self.pass_through = pass_through
        if auto_advance is not None:
            if not hasattr(self.clock, "advance"):
                raise ValueError("auto_advance moves a virtual clock; use clock='virtual'")
            if isinstance(auto_advance, str) and auto_advance != "retry-after":
                raise ValueError(f"auto_advance must be 'retry-after', seconds or a callable, "
                                 f"got {auto_advance!r}")
            if isinstance(auto_advance, int | float) and auto_advance < 0:
                raise ValueError(f"auto_advance seconds must not be negative, got {auto_advance}")
        self.auto_advance = auto_advance
        #: job id or (operation, tenant) -> (answered at, Retry-After seconds)
        self._retry_after: dict[Any, tuple[float, float]] = {}
        self.router = _Router(assert_all_called=assert_all_called, assert_all_mocked=True,
                              using="httpx")
        self.router.pass_through_unmatched = pass_through
        self.router.hint = (f"jobmock.mock({self.spec.name!r}) answers requests to "
                            f"{self.base_url} only: give base_url= to mock the API elsewhere, "
                            f"pass_through=True to send other hosts to the network, or add a "
                            f"route to api.router")
        #: Fails a poll loop on a job nothing moves (see jobmock.idle); None: off.
        self._idle = IdlePolls(self.mock, max_idle_polls) if max_idle_polls is not None else None
        self._status_ops = {o.operation_id for o in self.spec.operations if o.role == "status"}
        port = url.port or (443 if url.scheme == "https" else 80)
        path_rx = rf"^{re.escape(self._prefix)}(/|$)" if self._prefix else r"^/"
        self.api_route = self.router.route(scheme=url.scheme, host=url.host, port=port,
                                           path__regex=path_rx, name=f"jobmock:{self.spec.name}")
        self.api_route.side_effect = self._handle
        self._transport: httpx.HTTPTransport | None = None
        self._active = False
        #: One request (or clock move) at a time: the engine is not thread-safe, and a client
        #: may call from several threads.
        self._lock = threading.RLock()
        #: Sessions (X-Jobmock-Session), each a mock of its own; None in a session itself.
        self._sessions: dict[str, InProcessMock] | None = {}

    # -- context manager and decorator ---------------------------------------------------

    def start(self) -> InProcessMock:
        """Start routing httpx requests to this mock (``__enter__`` calls this)."""
        if self._active:
            raise RuntimeError("this jobmock.mock(...) is already active")
        self.router.start()
        self._active = True
        for api in (self, *(self._sessions or {}).values()):
            if api.mock.webhooks is not None and getattr(api.mock, "deliver_webhooks", True):
                api.mock.webhooks.set_sender(api._send_webhook)
        return self

    def stop(self, quiet: bool = False) -> None:
        """Stop routing; state (jobs, journal, deliveries) stays readable."""
        if not self._active:
            return
        self._active = False
        try:
            self.router.stop(clear=False, reset=False, quiet=quiet)
        finally:
            for api in (self, *(self._sessions or {}).values()):
                if api.mock.webhooks is not None:
                    api.mock.webhooks.set_sender(None)
                if api._transport is not None:
                    api._transport.close()
                    api._transport = None

    def __enter__(self) -> InProcessMock:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop(quiet=exc_type is not None)

    async def __aenter__(self) -> InProcessMock:
        return self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.stop(quiet=exc_type is not None)

    def session(self, name: str) -> InProcessMock:
        """Session ``name``: an isolated mock (own clock, jobs, journal, faults, reset) that
        answers requests sent with ``X-Jobmock-Session: name``; made on first use with this
        mock's options but no faults or scenario, seeded from the seed and the name."""
        if self._sessions is None:
            raise RuntimeError("a session has no sessions of its own")
        session_name({SESSION_HEADER.lower(): name})  # a name the header could carry
        child = self._sessions.get(name)
        if child is None:
            child = InProcessMock(self._api, **session_options(self._args, name))
            child._sessions, child.router = None, self.router  # webhooks reach our routes
            child.mock.extensions["session"] = name
            if self._active and child.mock.webhooks is not None and child.mock.deliver_webhooks:
                child.mock.webhooks.set_sender(child._send_webhook)
            self._sessions[name] = child
        return child

    def fresh(self) -> InProcessMock:
        """A new, unstarted mock with the same options (what the decorator uses per call)."""
        return InProcessMock(self._api, **self._args)

    def __call__(self, func: F) -> F:
        """Decorate ``func`` (sync or async): each call runs under a fresh copy of this mock,
        passed as the keyword argument ``jobmock`` if ``func`` takes one."""
        wants = "jobmock" in inspect.signature(func).parameters
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with self.fresh() as api:
                    if wants:
                        kwargs["jobmock"] = api
                    return await func(*args, **kwargs)

            wrapper: Callable[..., Any] = run_async
        else:
            @functools.wraps(func)
            def run(*args: Any, **kwargs: Any) -> Any:
                with self.fresh() as api:
                    if wants:
                        kwargs["jobmock"] = api
                    return func(*args, **kwargs)

            wrapper = run
        if wants:  # hide the parameter from pytest, which would look for a fixture
            sig = inspect.signature(func)
            wrapper.__signature__ = sig.replace(  # type: ignore[attr-defined]
                parameters=[p for n, p in sig.parameters.items() if n != "jobmock"])
        return cast(F, wrapper)

    # -- the API route ---------------------------------------------------------------------

    def _to_request(self, request: httpx.Request) -> Request:
        url = request.url
        path = url.path[len(self._prefix):] if self._prefix else url.path
        qs = url.query.decode("latin-1")
        query: dict[str, str] = {}
        if qs:
            for k, v in parse_qsl(qs, keep_blank_values=True):
                query.setdefault(k, v)
        headers = {k.lower(): v for k, v in request.headers.items()}
        return Request(method=request.method, path=path or "/", query=query, headers=headers,
                       body=request.content, base_url=self.base_url, query_string=qs)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            if self._sessions is not None:
                try:
                    query = dict(parse_qsl(request.url.query.decode("latin-1")))
                    name = session_name({k.lower(): v for k, v in request.headers.items()},
                                        query if "/_jobmock" in request.url.path else None)
                except SessionRefused as exc:
                    refused = self.mock.refuse(self._to_request(request),
                                               RequestRefused(exc.message, status=exc.status))
                    return httpx.Response(refused.status, headers=refused.headers,
                                          content=refused.body, request=request)
                if name is not None:
                    return self.session(name)._answer(request)
            return self._answer(request)

    def _answer(self, request: httpx.Request) -> httpx.Response:
        req = self._to_request(request)
        api_request = not is_control(req)
        if api_request and self.auto_advance is not None:
            self._auto_advance(req)
        result = self.stack.handle(req)
        if isinstance(result, Suspend):
            result = self._hold(result)
        if result.delay > 0:
            self._pass(result.delay)
        if result.drop:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.",
                                            request=request)
        if api_request and self.auto_advance == "retry-after":
            self._note_retry_after(result)
        entry = self.mock.journal.last() if api_request and self._idle is not None else None
        if entry is not None and entry.job_id is not None and entry.operation in self._status_ops:
            self._idle.polled(entry.job_id)  # type: ignore[union-attr]
        return httpx.Response(result.status, headers=result.headers,
                              content=b"" if req.method == "HEAD" else result.body,
                              request=request)

    def _hold(self, suspend: Suspend) -> Response:
        """Wait for the job or the deadline: on a virtual clock by moving it, never blocking."""
        ended: list[bool] = []
        watch = self.engine.watch(suspend.job, suspend.deadline, lambda _j, e: ended.append(e))
        try:
            speed = self.clock.speed
            while not ended:
                nxt = self.engine.next_due()
                if speed == 0:
                    if nxt is None:  # cannot happen: the watch's deadline is due
                        break
                    self.engine.advance_clock(max(0.0, nxt - self.clock.now()))
                else:
                    if nxt is not None:
                        time.sleep(min(0.05, max(0.0, (nxt - self.clock.now()) / speed)))
                    self.engine.run_due()
        finally:
            watch.cancel()
        return suspend.finish()

    def _pass(self, seconds: float) -> None:
        """Let ``seconds`` of clock time pass: move a virtual clock, sleep on a real one."""
        if self.clock.speed == 0:
            self.engine.advance_clock(seconds)
        else:
            time.sleep(seconds / self.clock.speed)
            self.engine.run_due()

    # -- auto-advance ------------------------------------------------------------------------

    def _key(self, req: Request) -> Any:
        op, params, _ = self.mock.route(req.method, req.path)
        if op is None:
            return None
        if op.role == "status" and op.job_id_param is not None:
            return params.get(op.job_id_param)
        try:
            tenant = self.mock.authenticate(req) if op.secured else None
        except Exception:
            tenant = None
        return (op.operation_id, tenant)

    def _auto_advance(self, req: Request) -> None:
        policy = self.auto_advance
        if policy == "retry-after":
            key = self._key(req)
            held = self._retry_after.pop(key, None) if key is not None else None
            if held is not None:
                wait = held[0] + held[1] - self.clock.now()
                if wait > 0:
                    self.engine.advance_clock(wait)
            return
        seconds = policy(self, req) if callable(policy) else float(cast(float, policy))
        if seconds > 0:
            self.engine.advance_clock(seconds)

    def _note_retry_after(self, response: Response) -> None:
        entry = self.mock.journal.last()
        value = response.header("retry-after")
        if entry is None or value is None or not value.strip().isdigit():
            if entry is not None and entry.job_id is not None:
                self._retry_after.pop(entry.job_id, None)
            return
        key = entry.job_id if entry.job_id is not None else (entry.operation, entry.tenant)
        self._retry_after[key] = (self.clock.now(), float(value))

    # -- webhooks ----------------------------------------------------------------------------

    def webhook_route(self, url: str, *statuses: int, latency: float = 0.0) -> respx.Route:
        """A respx route receiving webhooks POSTed to ``url``: answers ``statuses`` in turn
        (the last one repeats; default 200), each after ``latency`` clock seconds."""
        answers = list(statuses) or [200]
        calls = [0]

        def answer(request: httpx.Request) -> httpx.Response:
            n = calls[0]
            calls[0] += 1
            if latency > 0:
                advance = getattr(self.clock, "advance", None)
                if advance is not None:
                    advance(latency)  # only the clock: the engine fires what fell due later
                else:
                    time.sleep(latency / self.clock.speed)
            return httpx.Response(answers[min(n, len(answers) - 1)])

        return self.router.post(url).mock(side_effect=answer)

    def _send_webhook(self, delivery: Delivery, attempt: Attempt) -> None:
        book = self.mock.webhooks
        assert book is not None
        request = httpx.Request("POST", delivery.url, content=delivery.body,
                                headers=attempt.headers)
        timeout = book.timeout
        try:
            status = self._deliver(request, timeout)
        except (httpx.HTTPError, _NotRouted) as exc:
            book.report(delivery, attempt, error=_describe(exc))
            return
        took = self.clock.now() - (attempt.sent_at if attempt.sent_at is not None else 0.0)
        if took > timeout:
            book.report(delivery, attempt, error=f"timeout: no answer within {timeout:g} s")
        else:
            book.report(delivery, attempt, status=status)

    def _deliver(self, request: httpx.Request, timeout: float) -> int:
        try:
            return self.router.handler(request).status_code
        except AllMockedAssertionError:
            if not (self.pass_through or is_loopback_host(request.url.host)):
                raise _NotRouted(f"no respx route matches POST {request.url} (add one with "
                                 f"api.webhook_route(url)); not sent") from None
        except PassThrough:
            pass
        if self._transport is None:
            self._transport = httpx.HTTPTransport()
        request.extensions["timeout"] = httpx.Timeout(timeout).as_dict()
        response = self._transport.handle_request(request)
        try:
            response.read()
        finally:
            response.close()
        return response.status_code

    @property
    def webhooks(self) -> list[Delivery]:
        """Every webhook delivery (with its attempts), oldest first."""
        return self.mock.webhooks.deliveries() if self.mock.webhooks is not None else []

    def deliveries(self, job_id: str | None = None) -> list[Delivery]:
        """The webhook deliveries, of one job if ``job_id`` is given."""
        return [d for d in self.webhooks if job_id in (None, d.job_id)]

    # -- time, jobs, journal -------------------------------------------------------------------

    @property
    def now(self) -> float:
        """The clock's time, in seconds since the epoch."""
        return self.clock.now()

    def advance(self, seconds: float) -> int:
        """Move the virtual clock forward; every transition and webhook attempt that falls due
        fires in time order. Returns how many fired."""
        if self.clock.speed != 0:
            raise TypeError("only a virtual clock can be advanced; use clock='virtual'")
        with self._lock:
            return self.engine.advance_clock(seconds)

    def sleep(self, seconds: float) -> None:
        """:meth:`advance` as a ``sleep`` function to inject into a client under test."""
        self.advance(seconds)

    async def asleep(self, seconds: float) -> None:
        """:meth:`advance` as an async ``sleep`` (for clients that ``await asyncio.sleep``)."""
        self.advance(seconds)

    def run_until_idle(self, limit: float = 86_400.0) -> float:
        """Advance until nothing is scheduled (every job ended, every webhook settled) or
        ``limit`` clock seconds passed. Returns the seconds advanced."""
        start = self.clock.now()
        while (nxt := self.engine.next_due()) is not None and nxt - start <= limit:
            self.advance(max(0.0, nxt - self.clock.now()))
        return self.clock.now() - start

    @property
    def jobs(self) -> list[Job]:
        """Every job, oldest first."""
        return sorted(self.engine.jobs(), key=lambda j: j.seq)

    def job(self, job_id: str) -> Job:
        """The job ``job_id``; :class:`KeyError` if there is none."""
        job = self.engine.get(job_id)
        if job is None:
            raise KeyError(job_id)
        return job

    def force(self, job_id: str, status: str, *, error: Any = None, result: Any = None,
              when: str = "now") -> Job:
        """Force ``job_id`` to ``status`` (a word or a role); ``when="scheduled"`` only
        replaces the outcome it will reach (see :meth:`Engine.force`). What falls due at once
        (the job's webhook) fires before this returns."""
        with self._lock:
            job = self.engine.force(job_id, status, error=error, result=result, when=when)
            self.engine.run_due()
            return job

    def plan_next(self, count: int | None = 1, *, outcome: str | None = None,
                  queued_for: float | None = None, running_for: float | None = None,
                  error: Any = None, result: Any = None, polls: int | None = None,
                  manual: bool = False, path: tuple[str, ...] | list[str] | None = None) -> None:
        """Plan the next ``count`` jobs submitted (every later one if None), whatever the
        timing model would draw: ``plan_next(outcome="expired")`` makes the next job expire.

        ``outcome`` is a status word or a role; ``path`` the non-terminal words to pass
        through after queued (a lifecycle graph); the other fields are those of
        :class:`~jobmock.engine.JobPlan`. A path or outcome the transitions don't allow is
        refused here.
        """
        lc = self.spec.lifecycle
        word = outcome
        if outcome is not None:
            word = outcome if outcome in lc.states else lc.word(outcome)
            if word is None or lc.states[word] not in TERMINAL_ROLES:
                raise ValueError(f"outcome {outcome!r} is not a terminal status word "
                                 f"{sorted(lc.terminal_words)} or role of {self.spec.name}")
        plan = JobPlan(queued_for=queued_for, running_for=running_for, outcome=word,
                       error=error, result=result, polls=polls, manual=manual,
                       path=tuple(path) if path is not None else None)
        check_plan(self.spec, plan.path, plan.outcome if plan.path is not None else None)
        self._next_submits(count, lambda: plan)

    def refuse_next(self, count: int | None = 1, error: str | None = None) -> None:
        """Answer the next ``count`` submits (every later one if None) with the spec's named
        ``error`` and create no job: by default the queue-limit error (a 429), as when the
        queue is full."""
        name = error or self.spec.limits.queue_error or (
            self.spec.limits.gate.error if self.spec.limits.gate is not None else None)
        if name is None or name not in self.spec.errors:
            raise ValueError(f"name one of {self.spec.name}'s errors {sorted(self.spec.errors)}"
                             + (f", not {error!r}" if error else ""))
        def refuse() -> JobPlan:
            raise LimitExceeded(f"refused by refuse_next({count}, {name!r})", error_name=name)

        self._next_submits(count, refuse)

    def _next_submits(self, count: int | None, act: Callable[[], JobPlan]) -> None:
        """Apply ``act`` to the next ``count`` submits (every later one if None)."""
        left = [count]

        def hook(*_args: Any) -> JobPlan | None:
            if left[0] is not None:
                if left[0] <= 0:
                    return None
                left[0] -= 1
            return act()

        self.mock.submit_hooks.append(hook)

    def set_advance(self, mode: str, polls: int = 1) -> None:
        """How jobs submitted from now on advance: ``time``, ``polls`` or ``manual``."""
        self.engine.set_advance(Advance(mode, polls))

    def set_faults(self, *names: str) -> None:
        """Switch on exactly these deliberate contract violations."""
        set_faults(self.mock, names)

    def load_scenario(self, source: Any) -> Any:
        """Install a scenario (a path or its mapping); see :mod:`jobmock.scenarios`."""
        return install_scenario(self.mock, source)

    def reset(self) -> None:
        """Forget every job, journal entry and delivery (the clock keeps its time)."""
        self.mock.reset()
        self._retry_after.clear()
        if self._idle is not None:
            self._idle.reset()

    @property
    def journal(self) -> Journal:
        """The request journal (iterate it for :class:`~jobmock.journal.JournalEntry`)."""
        return self.mock.journal

    @property
    def requests(self) -> list[JournalEntry]:
        """The journaled API requests, oldest first."""
        return list(self.mock.journal)

    # -- credentials ---------------------------------------------------------------------------

    def credential(self, tenant: int = 0) -> str:
        """The demo credential of tenant ``tenant`` (0 or 1)."""
        return self.spec.demo_tenants()[tenant][1]

    def auth_headers(self, tenant: int = 0) -> dict[str, str]:
        """Headers presenting demo tenant ``tenant``'s credential (empty for query keys)."""
        return self.spec.auth.headers_for(self.credential(tenant))

    def auth_params(self, tenant: int = 0) -> dict[str, str]:
        """Query parameters presenting the credential (for APIs keyed in the query)."""
        return self.spec.auth.query_for(self.credential(tenant))

    def url(self, path: str) -> str:
        """``base_url`` + ``path``."""
        return self.base_url + path

    # -- client behaviour ------------------------------------------------------------------------

    def report(self, *, slow_webhook: float | None = None) -> dict[str, Any]:
        """The client-behaviour report (see :mod:`jobmock.behaviour`)."""
        return behaviour.client_report(self.mock, slow_webhook=slow_webhook, timed_webhooks=True)

    def summary(self) -> str:
        """The report as text (what ``jobmock serve`` prints on exit)."""
        return behaviour.client_summary(self.mock, timed_webhooks=True)

    def assert_client_behaved(self, *checks: str, slow_webhook: float | None = None) -> None:
        """Every client-behaviour check (or those named) passed; see :mod:`jobmock.behaviour`."""
        behaviour.assert_client_behaved(self.mock, *checks, slow_webhook=slow_webhook,
                                        timed_webhooks=True)

    def assert_client_honoured_retry_after(self) -> None:
        """No job was polled sooner than the Retry-After of the last answer about it."""
        self.assert_client_behaved("retry_after")

    def assert_no_polling_after_terminal(self) -> None:
        """No job was polled again once an answer had shown it terminal."""
        self.assert_client_behaved("after_terminal")

    def assert_no_ignored_jobs(self) -> None:
        """Every job a submit answered as pending was polled (or had a webhook URL)."""
        self.assert_client_behaved("ignored_job")

    def assert_no_retried_permanent_errors(self) -> None:
        """No request was repeated unchanged after a 400, 401, 404, 405, 410 or 422."""
        self.assert_client_behaved("permanent_4xx")

    def assert_backed_off_after_429(self) -> None:
        """No request was retried sooner than the Retry-After of the 429 it got."""
        self.assert_client_behaved("backoff_429")

    def assert_webhooks_acknowledged(self, *, slow_webhook: float | None = None) -> None:
        """Every webhook attempt was answered 2xx and in time (half the spec's timeout, or
        ``slow_webhook`` clock seconds)."""
        self.assert_client_behaved("webhooks", slow_webhook=slow_webhook)

    def assert_webhook_receiver_verifies(self) -> None:
        """Every forged or stale probe (``forge``) was refused with a 4xx."""
        self.assert_client_behaved("webhook_receiver_verifies")

    def assert_webhook_receiver_deduplicates(self) -> None:
        """No duplicate probe was visibly processed again (see :mod:`jobmock.behaviour`)."""
        self.assert_client_behaved("webhook_receiver_deduplicates")

    def __repr__(self) -> str:
        state = "active" if self._active else "inactive"
        return f"<jobmock.mock {self.spec.name!r} at {self.base_url} ({state})>"


class _NotRouted(Exception):
    pass


def mock(api: str | Path | ApiSpec, *, seed: int = 0, clock: str | Clock = "virtual",
         base_url: str | None = None, assert_all_called: bool = False,
         pass_through: bool = False, scenario: Any = None, auto_advance: AutoAdvance = None,
         **options: Any) -> InProcessMock:
    """Mock ``api`` in-process for httpx clients: a context manager and a decorator.

    ``base_url``: where the API is mocked (default: the spec's ``servers[0].url``).
    ``assert_all_called``: respx's check that every route was called, on exit.
    ``pass_through``: send requests no route matches to the network instead of failing.
    ``auto_advance``: ``"retry-after"``, seconds per request, or ``(api, request) -> s``.
    ``max_idle_polls`` (200): a job polled this often while neither the virtual clock nor the
    job moved fails the request with :class:`jobmock.idle.StuckPolling` (None: never).
    Other options go to :func:`build_mock` (``speed``, ``advance``, ``polls``, ``faults``,
    ``allow_private_callbacks``, ``webhook_secret``, ``webhook_timeout``, ``journal_size``).
    """
    return InProcessMock(api, base_url=base_url, assert_all_called=assert_all_called,
                         pass_through=pass_through, auto_advance=auto_advance, seed=seed,
                         clock=clock, scenario=scenario, **options)
