"""How a client behaved, judged from the request journal (filled in by the in-process issue)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .dispatch import Mock

__all__ = ["client_report", "client_summary"]


def client_report(mock: Mock) -> dict[str, Any]:
    """The client-behaviour report served at ``/_jobmock/report``."""
    return {"requests": mock.journal.total, "findings": []}


def client_summary(mock: Mock) -> str:
    """A short text of :func:`client_report`, printed by ``serve`` on exit."""
    report = client_report(mock)
    return f"{report['requests']} requests served."
