"""QA scenarios (filled in by the scenarios issue)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ScenarioError

if TYPE_CHECKING:
    from .dispatch import Mock

__all__ = ["catalog", "install_scenario"]


def install_scenario(mock: Mock, source: Any) -> Any:
    raise ScenarioError(str(source), "", "scenarios are not implemented yet")


def catalog() -> list[dict[str, str]]:
    return []
