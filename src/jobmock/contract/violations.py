"""Contract violations: ``AssertionError`` subclasses with a title, one per registered check."""

from __future__ import annotations

__all__ = ["ContractViolation"]


class ContractViolation(AssertionError):
    """A server broke its spec. ``check`` names the registered check, ``title`` says what it
    checks, ``detail`` what was expected and what was seen (its first line says both), and
    ``reproduction`` the requests, as curl lines, that reproduce it. ``notes`` are added by
    the runner (the seed, whether shrinking was cut short)."""

    def __init__(self, check: str, title: str, detail: str, reproduction: str = "",
                 notes: tuple[str, ...] = ()) -> None:
        self.check = check
        self.title = title
        self.detail = detail
        self.reproduction = reproduction
        self.notes = tuple(notes)
        super().__init__(self.report())

    @property
    def summary(self) -> str:
        """One line: the check and what was expected and seen."""
        return f"[{self.check}] {self.detail.splitlines()[0] if self.detail else self.title}"

    def report(self) -> str:
        """The check, what it checks, expected vs seen, notes, and the reproduction."""
        text = f"[{self.check}] FAILED: {self.title}\n{self.detail}"
        for note in self.notes:
            text += f"\n{note}"
        if self.reproduction:
            text += f"\n\nRequests that reproduce it:\n{self.reproduction}"
        return text

    def with_notes(self, *notes: str) -> ContractViolation:
        """The same violation with more notes."""
        return ContractViolation(self.check, self.title, self.detail, self.reproduction,
                                 (*self.notes, *(n for n in notes if n)))
