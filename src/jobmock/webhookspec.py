"""The spec model of ``x-jobmock.webhooks``: events, signing, retry schedule. Pure values.

:func:`build_webhooks` is called by :func:`jobmock.spec.load_spec` once the JSON Schema has
accepted the block; it cross-checks the names the block uses and returns a frozen
:class:`Webhooks`. :mod:`jobmock.spec` re-exports the classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import SpecError
from .signing import SCHEMES, secret_problem
from .templates import Renderer, render_string

__all__ = ["EVENT_KINDS", "RetryPolicy", "Signature", "Webhooks", "build_webhooks"]

#: Event kinds a spec may list besides terminal roles and terminal status words:
#: ``start`` (the job starts running), ``progress`` and ``output`` (each progress step),
#: ``terminal`` (any end).
EVENT_KINDS = ("start", "progress", "output", "terminal")


@dataclass(frozen=True, slots=True)
class Signature:
    """How each attempt is signed (see :mod:`jobmock.signing` for the schemes)."""

    header: str
    algorithm: str
    format: str
    secret: str
    #: The tenants whose callbacks are signed; None: all (issue 11: signing on request).
    enabled_for: tuple[str, ...] | None = None
    scheme: str = "hmac-sha256-hex"
    #: Older secrets still signed with during a key rotation (one more signature each).
    previous: tuple[str, ...] = ()
    #: Seconds a receiver should accept a timestamp off by (for the contract checks).
    tolerance: float = 300.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """A webhook retry schedule: an immutable value with a pure backoff function."""

    delays: tuple[float, ...]
    timeout: float = 10.0
    #: Each delay is spread by up to this fraction either way (0: exact), from a seeded draw.
    jitter: float = 0.0

    @property
    def attempts(self) -> int:
        return 1 + len(self.delays)

    def delay_after(self, attempt: int, draw: float = 0.5) -> float | None:
        """Seconds from failed attempt ``attempt`` (1-based) to the next, or None if it was
        the last. ``draw`` in [0, 1) places the jitter (0.5: none)."""
        if not 1 <= attempt <= len(self.delays):
            return None
        delay = self.delays[attempt - 1]
        return delay * (1 + self.jitter * (2 * draw - 1)) if self.jitter else delay


@dataclass(frozen=True, slots=True)
class Webhooks:
    url_pointer: str
    url_rule: str
    events: frozenset[str]
    event_names: Mapping[str, str]
    render: str
    body: Renderer
    headers: Mapping[str, Renderer]
    signature: Signature | None
    retry: RetryPolicy
    #: ``per_job``: a job's next event waits until the one before is delivered or exhausted;
    #: ``parallel``: every event is delivered on its own.
    ordering: str = "per_job"
    #: JSON pointer to a list of event names in the submit body (only those are delivered).
    filter_pointer: str | None = None
    #: The event names delivered when the body names none (None: every event).
    filter_default: frozenset[str] | None = None


def build_webhooks(w: Mapping[str, Any] | None, renders: Mapping[str, Renderer],
                   states: Mapping[str, str], terminal_roles: frozenset[str],
                   file: str) -> Webhooks | None:
    """The :class:`Webhooks` of an ``x-jobmock.webhooks`` block the JSON Schema accepted."""
    if not w:
        return None
    where = "/x-jobmock/webhooks"
    if w["render"] not in renders:
        raise SpecError(file, where + "/render", f"a key of x-jobmock/render {sorted(renders)}")
    words = {word for word, role in states.items() if role in terminal_roles}
    for ev in w["events"]:
        if ev not in EVENT_KINDS and ev not in terminal_roles and ev not in words:
            raise SpecError(file, where + "/events",
                            f"one of {', '.join(EVENT_KINDS)}, a terminal role "
                            f"{sorted(terminal_roles)} or a terminal status word {sorted(words)}, "
                            f"got {ev!r}")
    sig = w.get("signature")
    signature = None
    if sig:
        scheme = sig.get("scheme", "hmac-sha256-hex")
        assert scheme in SCHEMES  # the JSON Schema's enum
        header = sig.get("header") or ("Stripe-Signature" if scheme == "stripe" else
                                       "webhook-signature" if scheme == "standard-webhooks" else "")
        if scheme == "hmac-sha256-hex" and ("{hex}" not in sig.get("format", "") or not header):
            raise SpecError(file, where + "/signature",
                            "header and a format with {hex}, for the hmac-sha256-hex scheme")
        secrets = [sig["secret"], *sig.get("previous_secrets", [])]
        for i, s in enumerate(secrets):
            problem = secret_problem(scheme, s)
            if problem:
                key = "secret" if i == 0 else f"previous_secrets/{i - 1}"
                raise SpecError(file, f"{where}/signature/{key}", problem)
        enabled = sig.get("enabled_for")
        signature = Signature(header, sig.get("algorithm", "hmac-sha256"),
                              sig.get("format", "{hex}"), sig["secret"],
                              tuple(enabled) if enabled is not None else None, scheme,
                              tuple(secrets[1:]), float(sig.get("tolerance", 300)))
    retry = w.get("retry") or {"delays": []}
    default = w.get("filter_default")
    return Webhooks(
        w["url_from"], w.get("url_rule", "any"), frozenset(w["events"]),
        dict(w.get("event_names") or {}), w["render"], renders[w["render"]],
        {h: render_string(v, file, f"{where}/headers/{h}")
         for h, v in (w.get("headers") or {}).items()},
        signature,
        RetryPolicy(tuple(float(d) for d in retry["delays"]), float(retry.get("timeout", 10)),
                    float(retry.get("jitter", 0))),
        ordering=w.get("ordering", "per_job"),
        filter_pointer=w.get("filter_from"),
        filter_default=frozenset(default) if default is not None else None,
    )
