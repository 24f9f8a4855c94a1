"""The spec model: what jobmock knows of one API once its spec file is loaded.

Plain frozen values, built by :mod:`jobmock.spec` from an OpenAPI document and its
``x-jobmock`` block, read by the engine, the core, the features and the contract suite.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from referencing import Registry

from .pointers import find
from .templates import Renderer
from .webhookspec import Webhooks

__all__ = [
    "ROLES",
    "TERMINAL_ROLES",
    "ApiSpec",
    "Auth",
    "CallbackRule",
    "ErrorDef",
    "FlowStep",
    "Gate",
    "Lifecycle",
    "Limits",
    "Operation",
    "Paging",
    "Parameter",
    "ResponseDef",
    "Timing",
    "WaitPolicy",
]

ROLES = ("queued", "running", "completed", "failed", "canceled", "expired", "rejected")
TERMINAL_ROLES = frozenset(ROLES[2:])


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """Status words, their roles and the allowed moves between them."""

    states: Mapping[str, str]
    transitions: Mapping[str, frozenset[str]]
    #: Where a body shows the status word ("" when ``status_from`` derives it).
    status_pointer: str
    #: Rules that derive the status word from a body: (pointer -> condition, word), in order.
    status_from: tuple[tuple[tuple[tuple[str, Any], ...], str], ...] = ()

    def status_of(self, body: Any) -> Any:
        """The status word a body shows: read at ``status_pointer``, or derived by the first
        ``status_from`` rule whose conditions all hold (None when none does)."""
        if not self.status_from:
            found, value = find(body, self.status_pointer)
            return value if found else None
        for conditions, word in self.status_from:
            if all(_holds(body, pointer, cond) for pointer, cond in conditions):
                return word
        return None

    @property
    def status_pointers(self) -> tuple[str, ...]:
        """Every pointer the status is read from."""
        if not self.status_from:
            return (self.status_pointer,)
        return tuple(dict.fromkeys(p for conds, _ in self.status_from for p, _ in conds))

    def role(self, word: str) -> str:
        return self.states[word]

    def words(self, role: str) -> tuple[str, ...]:
        return tuple(w for w, r in self.states.items() if r == role)

    def word(self, role: str) -> str | None:
        """The first status word with this role, or None."""
        words = self.words(role)
        return words[0] if words else None

    def is_terminal(self, word: str) -> bool:
        return self.states[word] in TERMINAL_ROLES

    @property
    def queued(self) -> str:
        return self.words("queued")[0]

    @property
    def running(self) -> str | None:
        return self.word("running")

    @property
    def terminal_words(self) -> frozenset[str]:
        return frozenset(w for w, r in self.states.items() if r in TERMINAL_ROLES)

    def can_move(self, old: str, new: str) -> bool:
        return new in self.transitions.get(old, frozenset())

    def route(self, old: str, new: str) -> tuple[str, ...] | None:
        """The shortest run of moves from ``old`` to ``new`` (the words after ``old``, ending
        with ``new``) by the transitions, trying them in the spec's order; None if none."""
        frontier: list[tuple[str, ...]] = [()]
        seen = {old}
        while frontier:
            nxt: list[tuple[str, ...]] = []
            for trail in frontier:
                here = trail[-1] if trail else old
                for w in sorted(self.transitions.get(here, ()), key=list(self.states).index):
                    if w == new:
                        return (*trail, w)
                    if w not in seen:
                        seen.add(w)
                        nxt.append((*trail, w))
            frontier = nxt
        return None


def _holds(body: Any, pointer: str, cond: Any) -> bool:
    found, value = find(body, pointer)
    if isinstance(cond, dict) and set(cond) == {"present"}:
        return (found and value is not None) is bool(cond["present"])
    return found and value == cond


@dataclass(frozen=True, slots=True)
class FlowStep:
    """One non-terminal state of a lifecycle graph: how long a job stays, where it goes next."""

    duration: tuple[float, float]
    #: Next status word and its weight; empty: the state ends in one of ``Timing.outcomes``.
    next: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Timing:
    """How long each job stays queued and running, and the odds of each outcome.

    ``flow`` (empty for the classic queued -> running -> outcome shape) makes the lifecycle
    a graph: any number of non-terminal states, each with its own duration and weighted
    next states.
    """

    queued: tuple[float, float]
    running: tuple[float, float]
    outcomes: tuple[tuple[str, float], ...]
    flow: Mapping[str, FlowStep] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ErrorDef:
    name: str
    status: int
    body: Renderer
    headers: Mapping[str, Renderer]
    content_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class ResponseDef:
    status: int
    #: The render's name; None for an answer with no body.
    render: str | None
    body: Renderer | None
    headers: Mapping[str, Renderer]
    retry_after: bool
    content_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class WaitPolicy:
    default: float = 0.0
    max: float = 0.0
    prefer_header: bool = False
    applied_header: str | None = None
    query: tuple[tuple[str, str, float], ...] = ()
    callback_skips_wait: bool = False
    #: Body switches: (pointer, value, wait), checked before the query switches.
    body: tuple[tuple[str, Any, float], ...] = ()
    respond_async: bool = False
    #: Answer statuses that carry ``applied_header`` (empty: every answer).
    applied_on: frozenset[int] = frozenset()
    #: Echo the default wait in ``applied_header`` when no Prefer wait parses.
    applied_default: bool = False


@dataclass(frozen=True, slots=True)
class Paging:
    """How a list operation pages: ``after`` (an id cursor) or ``token`` (opaque)."""

    style: str = "after"
    limit_param: str = "limit"
    cursor_param: str = "after"
    default_limit: int = 20
    max_limit: int = 100


@dataclass(frozen=True, slots=True)
class Auth:
    scheme: str
    kind: str  # "bearer" | "basic" | "apikey"
    location: str  # "header" | "query"
    param: str  # header or query parameter name
    tenants: Mapping[str, tuple[str, ...]]
    missing: str
    invalid: str
    foreign_job: str

    @property
    def credential_tenants(self) -> dict[str, str]:
        return {c: t for t, creds in self.tenants.items() for c in creds}

    def headers_for(self, credential: str) -> dict[str, str]:
        """The request headers that present ``credential`` (empty for query-string keys)."""
        if self.kind == "bearer":
            return {"Authorization": f"Bearer {credential}"}
        if self.kind == "basic":
            import base64

            return {"Authorization": "Basic " + base64.b64encode(credential.encode()).decode()}
        return {self.param: credential} if self.location == "header" else {}

    def query_for(self, credential: str) -> dict[str, str]:
        """The query parameters that present ``credential`` (for apiKey in query)."""
        return {self.param: credential} if self.location == "query" else {}


@dataclass(frozen=True, slots=True)
class Gate:
    key: Renderer
    blocks_submit_while: frozenset[str]
    claim_conflict: str | None
    error: str


@dataclass(frozen=True, slots=True)
class Limits:
    queue_max: int | None = None
    queue_error: str | None = None
    concurrency_max: int | None = None
    gate: Gate | None = None


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    location: str
    required: bool
    schema: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Operation:
    """One OpenAPI operation and what it does to jobs (``role`` None: not a job operation)."""

    operation_id: str
    method: str
    path: str
    role: str | None
    parameters: tuple[Parameter, ...]
    body_schema: Mapping[str, Any] | None
    body_required: bool
    secured: bool
    job_type: Renderer | None = None
    result: Renderer | None = None
    credits: int | None = None
    items_pointer: str | None = None
    wait: WaitPolicy = WaitPolicy()
    responses: Mapping[str, ResponseDef] = field(default_factory=dict)
    job_id_from: tuple[str, ...] = ()
    job_id_param: str | None = None
    match: Mapping[str, Renderer] = field(default_factory=dict)
    documented_statuses: frozenset[str] = frozenset()
    body_example: Any = None
    #: cancel: the terminal word, and the transient word passed through first (or None).
    cancel_to: str | None = None
    cancel_via: str | None = None
    #: cancel, delete, list: the answer.
    answer: ResponseDef | None = None
    #: cancel: the error answered when the job has already ended (None: answer unchanged).
    when_terminal_error: str | None = None
    #: result: the answer (an error's name, or a response) while the job is unfinished, and
    #: when it ended other than completed.
    when_unfinished: str | ResponseDef | None = None
    when_ended: str | ResponseDef | None = None
    #: list: paging, filters (query parameter -> job field) and the render of each item.
    paging: Paging | None = None
    filters: Mapping[str, str] = field(default_factory=dict)
    item_render: str | None = None


@dataclass(frozen=True, slots=True)
class CallbackRule:
    """A callback URL's place in a submit body (a JSON pointer) and the rule it must keep."""

    url_pointer: str
    url_rule: str


@dataclass(frozen=True, slots=True)
class ApiSpec:
    """Everything jobmock knows about one API, read from its spec file."""

    name: str
    title: str
    file: str
    document: Mapping[str, Any]
    ids: str
    lifecycle: Lifecycle
    timing: Timing
    outcome_errors: Mapping[str, Renderer]
    outcome_results: Mapping[str, Renderer]
    auth: Auth
    errors: Mapping[str, ErrorDef]
    retry_after_seconds: int | None
    retry_after_roles: frozenset[str]
    limits: Limits
    idempotency_pointer: str | None
    credits_cost: int | None
    credits_charge_on: frozenset[str]
    progress_steps: tuple[tuple[int, str], ...]
    progress_done_message: str
    status: ResponseDef
    renders: Mapping[str, Renderer]
    webhooks: Webhooks | None
    operations: tuple[Operation, ...]
    registry: Registry[Any] = field(repr=False)
    credits_balances: Mapping[str, int] = field(default_factory=dict)  # absent tenant: no limit
    #: Where a submit gives its callback URL and which it may give: the webhooks' (when the
    #: spec has them) or ``x-jobmock.callbacks`` (checked, never delivered); None: neither.
    callbacks: CallbackRule | None = None

    @property
    def submit_operations(self) -> tuple[Operation, ...]:
        return tuple(o for o in self.operations if o.role == "submit")

    @property
    def status_render(self) -> str:
        """The render name of the status answer (checked at load to be set)."""
        assert self.status.render is not None
        return self.status.render

    def operations_with(self, role: str) -> tuple[Operation, ...]:
        """The operations whose x-jobmock role is ``role``."""
        return tuple(o for o in self.operations if o.role == role)

    @property
    def status_operation(self) -> Operation:
        return next(o for o in self.operations if o.role == "status")

    @property
    def server_url(self) -> str | None:
        servers = self.document.get("servers") or []
        return servers[0].get("url") if servers else None

    def demo_tenants(self) -> list[tuple[str, str]]:
        """The first two tenants and the first credential of each."""
        return [(t, creds[0]) for t, creds in list(self.auth.tenants.items())[:2]]
