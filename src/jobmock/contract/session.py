"""The suite's own session on a jobmock server that offers sessions.

A jobmock server answers ``GET /_jobmock/health`` with ``sessions`` when it keeps isolated
sessions (``X-Jobmock-Session``): the suite then sends every request in a session of its
own, so its resets and clock moves never touch anyone else's jobs, and two runs against one
server do not disturb each other. Any other server is judged without the header.
"""

from __future__ import annotations

import os
import secrets
import threading

import httpx

from ..sessions import SESSION_HEADER

__all__ = ["SESSION_HEADER", "session_headers"]

_lock = threading.Lock()
#: base URL -> the session this process uses there (None: the server offers none).
_chosen: dict[str, str | None] = {}


def _offers_sessions(base_url: str) -> bool:
    try:
        with httpx.Client(base_url=base_url, timeout=10.0, follow_redirects=False) as http:
            answer = http.get("/_jobmock/health")
        data = answer.json() if answer.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return False
    return isinstance(data, dict) and isinstance(data.get("sessions"), dict)


def session_headers(base_url: str) -> dict[str, str]:
    """The header naming this process's session on ``base_url`` (asked once per server),
    or nothing when the server offers no sessions."""
    key = base_url.rstrip("/")
    with _lock:
        if key not in _chosen:
            name = (f"contract-{os.getpid()}-{secrets.token_hex(4)}"
                    if _offers_sessions(key) else None)
            _chosen[key] = name
        name = _chosen[key]
    return {SESSION_HEADER: name} if name is not None else {}
