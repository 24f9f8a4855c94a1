"""The request journal: a bounded ring buffer of what the mock was asked and answered.

No secret is journaled by default: a :class:`Redactor` masks the request's credentials
(the spec's auth header or query parameter, ``Authorization``, ``Cookie``, ``X-API-Key``
and every name the spec's security schemes give) before an entry is stored. A masked
value keeps what helps debugging and nothing more: the auth scheme word, the tenant the
credential resolved to, and a short keyed fingerprint (HMAC under a key random per
journal) that tells two different credentials apart within one run, e.g.
``Bearer [redacted: org_a #3fa2c1d0]``. ``Journal.keep_secrets`` (``jobmock serve
--journal-secrets``) stores them as sent.

A served request is journaled as plain values (:meth:`Journal.record_request`); its
:class:`JournalEntry` is built, and its credentials masked, when the journal is first read,
so the cost stays off the request's path. What a reader sees is the same either way.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

if TYPE_CHECKING:
    from .spec import ApiSpec

__all__ = ["REDACTED", "Journal", "JournalEntry", "Redactor", "credential_names"]

#: What stands in for a secret wherever jobmock shows one it keeps hidden.
REDACTED = "[redacted]"

#: Request headers that carry credentials whatever the spec says.
_ALWAYS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})


def credential_names(spec: ApiSpec) -> tuple[frozenset[str], frozenset[str]]:
    """The lower-case request header names and the query parameter names that carry
    credentials for ``spec``: its auth parameter and every apiKey its security schemes name."""
    headers: set[str] = set(_ALWAYS)
    query: set[str] = set()
    auth = spec.auth
    (query if auth.location == "query" else headers).add(auth.param.lower())
    schemes = (spec.document.get("components") or {}).get("securitySchemes") or {}
    for scheme in schemes.values():
        if isinstance(scheme, dict) and scheme.get("type") == "apiKey":
            name = str(scheme.get("name", "")).lower()
            if name and scheme.get("in") == "header":
                headers.add(name)
            elif name and scheme.get("in") == "query":
                query.add(name)
    return frozenset(headers), frozenset(query)


class Redactor:
    """Masks the credential headers and query parameters of one spec's requests."""

    __slots__ = ("_cache", "_key", "auth_header", "auth_query", "headers", "query")

    def __init__(self, spec: ApiSpec, key: bytes | None = None) -> None:
        self.headers, self.query = credential_names(spec)
        auth = spec.auth
        #: The one name whose value resolves to a tenant (the mask names that tenant).
        self.auth_header = auth.param.lower() if auth.location == "header" else None
        self.auth_query = auth.param.lower() if auth.location == "query" else None
        self._key = key if key is not None else os.urandom(16)
        #: Masks already made (clients resend one credential): bounded, cleared when full.
        self._cache: dict[tuple[str, str | None, bool], str] = {}

    @property
    def key(self) -> bytes:
        """The fingerprints' key (replicas that share one journal share it)."""
        return self._key

    def mask(self, value: str, tenant: str | None = None, *, resolves: bool = False) -> str:
        """``value`` as ``[scheme ][redacted: tenant #fingerprint]``.

        ``resolves``: the value is the spec's credential, so the mask names the tenant it
        resolved to (``unknown`` when it resolved to none).
        """
        key = (value, tenant, resolves)
        found = self._cache.get(key)
        if found is not None:
            return found
        digest = hmac.new(self._key, value.encode("utf-8", "surrogatepass"),
                          hashlib.sha256).hexdigest()[:8]
        scheme, sep, rest = value.strip().partition(" ")
        prefix = f"{scheme} " if sep and rest and scheme.isalpha() and len(scheme) <= 20 else ""
        who = f"{tenant or 'unknown'} " if resolves else ""
        masked = f"{prefix}[redacted: {who}#{digest}]"
        if len(self._cache) >= 1024:
            self._cache.clear()
        if len(value) <= 1024:  # (a huge header is masked each time, never kept)
            self._cache[key] = masked
        return masked

    def scrub_headers(self, headers: Mapping[str, str], tenant: str | None) -> dict[str, str]:
        """``headers`` (lower-case names) with every credential masked."""
        out = dict(headers)
        for name in self.headers.intersection(out):
            out[name] = self.mask(out[name], tenant, resolves=name == self.auth_header)
        return out

    def scrub_query(self, query_string: str, tenant: str | None) -> str:
        """``query_string`` with the value of every credential parameter masked."""
        if not query_string or not self.query:
            return query_string
        parts = query_string.split("&")
        for i, part in enumerate(parts):
            raw_name, eq, value = part.partition("=")
            name = unquote_plus(raw_name).lower()
            if eq and name in self.query:
                masked = self.mask(unquote_plus(value), tenant, resolves=name == self.auth_query)
                parts[i] = f"{raw_name}={masked}"
        return "&".join(parts)


@dataclass(frozen=True, slots=True)
class JournalEntry:
    seq: int
    at: float
    method: str
    path: str
    query: str
    headers: dict[str, str]
    status: int
    operation: str | None
    tenant: str | None
    job_id: str | None
    duration_ms: float
    #: The Retry-After value answered, if any (client-behaviour checks read it).
    retry_after: str | None = None
    #: The status word of the job the answer showed, if it showed one.
    job_status: str | None = None
    #: CRC-32 of the request body (0 for none): tells a repeated request from a new one.
    body_crc: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Journal:
    """The last ``size`` requests (older ones fall off, so memory stays flat under load)."""

    def __init__(self, size: int = 10_000, *, keep_secrets: bool = False) -> None:
        self.size = size
        #: Entries, and requests journaled by record_request not yet built into entries.
        self._entries: deque[JournalEntry | tuple[Any, ...]] = deque(maxlen=size)
        self._unbuilt = 0
        self._seq = 0
        #: True (``jobmock serve --journal-secrets``): credentials are stored as sent.
        self.keep_secrets = keep_secrets
        self._redactor: Redactor | None = None
        #: How often :meth:`clear` ran: a shared store tells a clear from new entries by it.
        self.clears = 0

    def redactor(self, spec: ApiSpec) -> Redactor:
        """The :class:`Redactor` for ``spec``'s requests (built once per journal)."""
        if self._redactor is None:
            self._redactor = Redactor(spec)
        return self._redactor

    def use_redactor(self, redactor: Redactor) -> None:
        """Mask with ``redactor`` from now on (replicas that share one journal share its key)."""
        self._redactor = redactor

    def scrub(self, spec: ApiSpec, headers: Mapping[str, str], query_string: str,
              tenant: str | None) -> tuple[dict[str, str], str]:
        """A request's headers and query string as the journal keeps them: credentials
        masked (see the module docstring) unless :attr:`keep_secrets`."""
        if self.keep_secrets:
            return dict(headers), query_string
        redactor = self.redactor(spec)
        return redactor.scrub_headers(headers, tenant), redactor.scrub_query(query_string, tenant)

    def record(self, **fields: Any) -> JournalEntry:
        self._seq += 1
        entry = JournalEntry(seq=self._seq, **fields)
        self._entries.append(entry)
        return entry

    def record_request(self, spec: ApiSpec, headers: Mapping[str, str], query_string: str,
                       tenant: str | None, at: float, method: str, path: str, status: int,
                       operation: str | None, job_id: str | None, duration_ms: float,
                       retry_after: str | None, job_status: str | None, body_crc: int) -> None:
        """Journal one answered request, as :meth:`scrub` and :meth:`record` would, but
        cheaply: the entry is built (its credentials masked, as :attr:`keep_secrets` says
        now) when it is first read, not on the request's path."""
        self._seq += 1
        self._entries.append((spec, dict(headers), query_string, tenant, self.keep_secrets,
                              self._seq, at, method, path, status, operation, job_id,
                              duration_ms, retry_after, job_status, body_crc))
        self._unbuilt += 1

    def _built(self) -> deque[JournalEntry]:
        """The entries, every one built (see :meth:`record_request`)."""
        if self._unbuilt:
            self._entries = deque((e if isinstance(e, JournalEntry) else self._build(e)
                                   for e in self._entries), maxlen=self.size)
            self._unbuilt = 0
        return self._entries  # type: ignore[return-value]

    def _build(self, raw: tuple[Any, ...]) -> JournalEntry:
        (spec, headers, query_string, tenant, keep, seq, at, method, path, status, operation,
         job_id, duration_ms, retry_after, job_status, body_crc) = raw
        if not keep:
            redactor = self.redactor(spec)
            headers = redactor.scrub_headers(headers, tenant)
            query_string = redactor.scrub_query(query_string, tenant)
        return JournalEntry(seq, at, method, path, query_string, headers, status, operation,
                            tenant, job_id, duration_ms, retry_after, job_status, body_crc)

    def last(self) -> JournalEntry | None:
        """The latest entry, or None."""
        return self._entry_at(-1) if self._entries else None

    def _entry_at(self, index: int) -> JournalEntry:
        """The entry at ``index``, built alone if it is not yet (O(1) near either end)."""
        entry = self._entries[index]
        if not isinstance(entry, JournalEntry):
            entry = self._entries[index] = self._build(entry)
            self._unbuilt -= 1
        return entry

    @property
    def total(self) -> int:
        """Requests recorded since the last clear, including those that fell off."""
        return self._seq

    def __iter__(self) -> Iterator[JournalEntry]:
        return iter(list(self._built()))

    def __len__(self) -> int:
        return len(self._entries)

    def tail(self, n: int) -> list[JournalEntry]:
        """The last ``n`` entries (built), oldest first."""
        return [self._entry_at(i) for i in range(max(0, len(self._entries) - n),
                                                 len(self._entries))]

    def adopt(self, entries: Iterable[JournalEntry], total: int, *, replace: bool) -> None:
        """Hold ``entries`` after those kept (instead of them all, with ``replace``) and count
        ``total`` requests recorded: for a shared store whose replicas keep one journal.
        Not a :meth:`clear`."""
        if replace:
            self._entries.clear()
            self._unbuilt = 0
        self._entries.extend(entries)
        self._seq = total

    def clear(self) -> None:
        self._entries.clear()
        self._unbuilt = 0
        self._seq = 0
        self.clears += 1
