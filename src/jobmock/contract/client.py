"""The suite's HTTP side: a recording client, tenants' credentials, curl reproductions."""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from ..spec import ApiSpec, Operation

__all__ = ["ContractClient", "Exchange", "Tenant"]


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

    def __init__(self, spec: ApiSpec, base_url: str, *, timeout: float = 90.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.spec = spec
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport,
                                 follow_redirects=False)
        self.exchanges: list[Exchange] = []

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
             note: str = "") -> Exchange:
        hdrs = dict(headers or {})
        content = raw
        if body is not None and raw is None:
            content = json.dumps(body, ensure_ascii=False).encode()
        if content is not None:
            hdrs.setdefault("Content-Type", "application/json")
        url = self.base_url + path + (("?" + urlencode(query)) if query else "")
        started = time.monotonic()
        response = self.http.request(method, url, headers=hdrs, content=content)
        exchange = Exchange(method, url, hdrs, content, response.status_code,
                            {k.lower(): v for k, v in response.headers.items()},
                            response.content, time.monotonic() - started, note)
        self.exchanges.append(exchange)
        return exchange

    def call(self, op: Operation, *, tenant: Tenant | None, params: Mapping[str, Any] | None = None,
             query: Mapping[str, str] | None = None, body: Any = None, raw: bytes | None = None,
             headers: Mapping[str, str] | None = None, note: str = "") -> Exchange:
        """Call an operation as ``tenant`` (None: no credentials)."""
        hdrs = {**self.auth_headers(tenant), **(headers or {})}
        q = {**required_query(op), **self.auth_query(tenant), **(query or {})}
        return self.send(op.method, self.path_for(op, params or {}), headers=hdrs, query=q,
                         body=body, raw=raw, note=note)

    def reproduction(self, last: int = 30) -> str:
        return "\n".join(e.curl() for e in self.exchanges[-last:])
