"""Contract violations: ``AssertionError`` subclasses with a title, one per registered check."""

from __future__ import annotations

__all__ = ["ContractViolation"]


class ContractViolation(AssertionError):
    """A server broke its spec. ``check`` names the registered check, ``title`` says what broke."""

    def __init__(self, check: str, title: str, detail: str, reproduction: str = "") -> None:
        self.check = check
        self.title = title
        self.detail = detail
        self.reproduction = reproduction
        text = f"[{check}] {title}\n{detail}"
        if reproduction:
            text += f"\n\nRequests that reproduce it:\n{reproduction}"
        super().__init__(text)
