"""Messages that explain themselves: "did you mean" for a mistyped name.

A leaf: the CLI, the pytest plugin, the in-process mock and the scenario loader use it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["did_you_mean", "unknown"]


def did_you_mean(word: str, choices: Iterable[str], *, n: int = 3) -> str:
    """``" Did you mean 'x'?"`` (or ``'x' or 'y'``) for the closest ``choices``, else ``""``."""
    options = sorted(set(choices))
    close = difflib.get_close_matches(word, options, n=n, cutoff=0.6)
    if not close:
        lowered = {o.lower(): o for o in options}
        close = [lowered[c] for c in difflib.get_close_matches(word.lower(), list(lowered), n=n,
                                                                cutoff=0.6)]
    if not close:
        close = [o for o in options if word and (word.lower() in o.lower() or o.lower() in word.lower())][:n]
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?"


def unknown(kind: str, word: str, choices: Iterable[str]) -> str:
    """``"unknown KIND 'word'. Did you mean ...? Known: a, b, c"``."""
    options = sorted(set(choices))
    return (f"unknown {kind} {word!r}.{did_you_mean(word, options)} "
            f"Known: {', '.join(options) if options else '(none)'}")
