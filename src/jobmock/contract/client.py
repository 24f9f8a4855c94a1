"""The suite's HTTP side: a recording client, tenants' credentials, curl reproductions."""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from ..spec import ApiSpec, Operation
from .budget import REQUEST_TIMEOUT
from .session import session_headers
from .verdicts import VERDICTS
from .violations import ContractViolation

__all__ = ["ANSWERS_TITLE", "EXCHANGE_HOOKS", "ContractClient", "Exchange", "Tenant"]

#: Called with every answered exchange of every client (the HTML report listens here).
EXCHANGE_HOOKS: list[Callable[[ContractClient, Exchange], None]] = []

#: The title of the ``answers`` check, which the client itself judges.
ANSWERS_TITLE = "every request gets an HTTP answer within its timeout"


@dataclass(frozen=True, slots=True)
class Tenant:
    """A tenant the suite acts as: a name and the credential that presents it."""

    name: str
    credential: str


@dataclass(slots=True)
class Exchange:
    """One request the suite sent and the answer it got."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    status: int
    response_headers: dict[str, str]
    response_body: bytes
    elapsed: float
    note: str = ""
    _json: Any = field(default=None, repr=False)

    def json(self) -> Any:
        if self._json is None and self.response_body:
            try:
                self._json = json.loads(self.response_body)
            except ValueError:
                self._json = ValueError("not JSON")
        return None if isinstance(self._json, ValueError) else self._json

    def header(self, name: str) -> str | None:
        return self.response_headers.get(name.lower())

    def curl(self) -> str:
        parts = ["curl", "-i", "-X", self.method]
        for k, v in self.headers.items():
            parts += ["-H", f"{k}: {v}"]
        if self.body:
            parts += ["--data-binary", self.body.decode("utf-8", "replace")]
        parts.append(self.url)
        line = " ".join(shlex.quote(p) for p in parts)
        return f"{line}\n    # -> {self.status}" + (f"  ({self.note})" if self.note else "")


def required_query(op: Operation) -> dict[str, str]:
    """A value for each query parameter the operation requires (Azure's ``api-version``),
    from its schema: ``const``, the first ``enum`` value, ``default`` or ``example``."""
    out: dict[str, str] = {}
    for p in op.parameters:
        if p.location != "query" or not p.required:
            continue
        schema = p.schema
        for key in ("const", "enum", "default", "example", "examples"):
            if key in schema:
                value = schema[key]
                if key in ("enum", "examples") and isinstance(value, list) and value:
                    value = value[0]
                out[p.name] = value if isinstance(value, str) else json.dumps(value)
                break
    return out


class ContractClient:
    """Sends the suite's requests to ``base_url`` and keeps every exchange for reproduction."""

    def __init__(self, spec: ApiSpec, base_url: str, *, timeout: float = REQUEST_TIMEOUT,
                 transport: httpx.BaseTransport | None = None,
                 on_failure: Callable[[ContractViolation, int], None] | None = None) -> None:
        self.spec = spec
        self.base_url = base_url.rstrip("/")
        #: Seconds a request may take beyond the inline wait it asks for.
        self.timeout = timeout
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport,
                                 follow_redirects=False)
        self.exchanges: list[Exchange] = []
        self.on_failure = on_failure
        #: The suite's own session on a jobmock server that offers sessions (else empty).
        self.session = session_headers(self.base_url) if transport is None else {}

    def close(self) -> None:
        self.http.close()

    def auth_headers(self, tenant: Tenant | None) -> dict[str, str]:
        return self.spec.auth.headers_for(tenant.credential) if tenant else {}

    def auth_query(self, tenant: Tenant | None) -> dict[str, str]:
        return self.spec.auth.query_for(tenant.credential) if tenant else {}

    def path_for(self, op: Operation, params: Mapping[str, Any]) -> str:
        path = op.path
        for name, value in params.items():
            path = path.replace("{" + name + "}", quote(str(value), safe=""))
        return path

    def send(self, method: str, path: str, *, headers: Mapping[str, str] | None = None,
             query: Mapping[str, str] | None = None, body: Any = None, raw: bytes | None = None,
             note: str = "", wait: float = 0.0) -> Exchange:
        """Send one request; ``wait``: seconds the server may hold it (an inline wait), on top
        of the client's timeout. No answer in time is a violation of ``answers``."""
        hdrs = {**self.session, **(headers or {})}
        content = raw
        if body is not None and raw is None:
            content = json.dumps(body, ensure_ascii=False).encode()
        if content is not None:
            hdrs.setdefault("Content-Type", "application/json")
        url = self.base_url + path + (("?" + urlencode(query)) if query else "")
        started = time.monotonic()
        try:
            response = self.http.request(method, url, headers=hdrs, content=content,
                                         timeout=self.timeout + max(0.0, wait))
        except httpx.HTTPError as exc:
            VERDICTS.judged(self.spec.name, "answers", failed=True)
            shown = Exchange(method, url, hdrs, content, 0, {}, b"", time.monotonic() - started,
                             note)
            self.exchanges.append(shown)
            kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
            violation = ContractViolation(
                "answers", ANSWERS_TITLE,
                f"{method} {path} {kind} after {time.monotonic() - started:.1f}s "
                f"(expected an answer within {self.timeout + max(0.0, wait):.0f}s): "
                f"{type(exc).__name__}: {exc}", self.reproduction())
            if self.on_failure is not None:
                self.on_failure(violation, len(self.exchanges))
            raise violation from exc
        if not path.startswith("/_jobmock/"):
            VERDICTS.judged(self.spec.name, "answers")
        exchange = Exchange(method, url, hdrs, content, response.status_code,
                            {k.lower(): v for k, v in response.headers.items()},
                            response.content, time.monotonic() - started, note)
        self.exchanges.append(exchange)
        for hook in EXCHANGE_HOOKS:
            hook(self, exchange)
        return exchange

    def call(self, op: Operation, *, tenant: Tenant | None, params: Mapping[str, Any] | None = None,
             query: Mapping[str, str] | None = None, body: Any = None, raw: bytes | None = None,
             headers: Mapping[str, str] | None = None, note: str = "",
             wait: float = 0.0) -> Exchange:
        """Call an operation as ``tenant`` (None: no credentials)."""
        hdrs = {**self.auth_headers(tenant), **(headers or {})}
        q = {**required_query(op), **self.auth_query(tenant), **(query or {})}
        VERDICTS.api(self.spec.name).operations.add(op.operation_id)
        return self.send(op.method, self.path_for(op, params or {}), headers=hdrs, query=q,
                         body=body, raw=raw, note=note, wait=wait)

    def reproduction(self, last: int = 30) -> str:
        return "\n".join(e.curl() for e in self.exchanges[-last:])
