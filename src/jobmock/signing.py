"""Webhook signing schemes: pure functions over bytes, no I/O, nothing of jobmock imported.

=====================  ==================================================================
scheme                 what the receiver gets
=====================  ==================================================================
``hmac-sha256-hex``    one header (the spec's), ``format`` with ``{hex}`` = hex
                       HMAC-SHA256(secret, raw body); ``{timestamp}`` may appear but is not
                       signed (Croma: ``x-croma-signature: sha256=<hex>``)
``standard-webhooks``  ``webhook-id`` (the delivery id, the same on every retry),
                       ``webhook-timestamp`` (epoch seconds of the attempt) and
                       ``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``,
                       one space-separated ``v1,`` entry per secret (key rotation); secrets
                       are ``whsec_`` + base64 of the key (https://www.standardwebhooks.com)
``stripe``             one header (default ``Stripe-Signature``): ``t=<timestamp>,v1=<hex>``,
                       hex HMAC-SHA256(secret, "timestamp.body"), one ``v1=`` per secret
=====================  ==================================================================

The mock signs with these; the contract suite and the test receiver verify with the
``verify_*`` functions. jobmock's own tests verify with independent implementations (the
``standardwebhooks`` package, Python's ``hmac``), never with this module.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence

__all__ = [
    "SCHEMES",
    "STANDARD_HEADERS",
    "secret_problem",
    "sign_hex",
    "signature_headers",
    "standard_key",
    "verify",
]

SCHEMES = ("hmac-sha256-hex", "standard-webhooks", "stripe")
#: The three headers of a Standard Webhooks delivery.
STANDARD_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
_WHSEC = "whsec_"
#: Added to every key when a deliberate fault asks for a wrong signature.
_SPOIL = b"-wrong"


def standard_key(secret: str) -> bytes:
    """The key bytes of a Standard Webhooks secret (``whsec_`` + base64); ValueError if not one."""
    raw = secret[len(_WHSEC):] if secret.startswith(_WHSEC) else secret
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"a Standard Webhooks secret is whsec_ + base64 of the key ({exc})") from None
    if not key:
        raise ValueError("a Standard Webhooks secret must not be empty")
    return key


def secret_problem(scheme: str, secret: str) -> str | None:
    """Why ``secret`` cannot sign under ``scheme`` (None if it can)."""
    if scheme == "standard-webhooks":
        try:
            standard_key(secret)
        except ValueError as exc:
            return str(exc)
    elif not secret:
        return "the secret must not be empty"
    return None


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def sign_hex(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``body`` with the UTF-8 bytes of ``secret``."""
    return _hmac(secret.encode(), body).hex()


def signature_headers(scheme: str, *, secrets: Sequence[str], body: bytes, msg_id: str,
                      timestamp: int, header: str = "", fmt: str = "{hex}",
                      spoil: bool = False) -> dict[str, str]:
    """The headers that sign one attempt of a delivery under ``scheme``.

    ``secrets``: the current secret first, then any older ones still accepted (rotation).
    ``spoil``: sign with wrong keys (a deliberate fault).
    """
    if not secrets:
        return {}
    extra = _SPOIL if spoil else b""
    if scheme == "standard-webhooks":
        content = f"{msg_id}.{timestamp}.".encode() + body
        sigs = [base64.b64encode(_hmac(standard_key(s) + extra, content)).decode()
                for s in secrets]
        return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
                "webhook-signature": " ".join(f"v1,{s}" for s in sigs)}
    if scheme == "stripe":
        content = f"{timestamp}.".encode() + body
        parts = [f"t={timestamp}"] + [f"v1={_hmac(s.encode() + extra, content).hex()}"
                                      for s in secrets]
        return {header or "Stripe-Signature": ",".join(parts)}
    digest = _hmac(secrets[0].encode() + extra, body).hex()
    return {header: fmt.replace("{hex}", digest).replace("{timestamp}", str(timestamp))}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    name = name.lower()
    return next((v for k, v in headers.items() if k.lower() == name), None)


def verify(scheme: str, secret: str, headers: Mapping[str, str], body: bytes, *,
           header: str = "", fmt: str = "{hex}", now: float | None = None,
           tolerance: float | None = None) -> bool:
    """Whether ``headers`` sign ``body`` with ``secret`` under ``scheme``.

    With ``now`` and ``tolerance``, a timestamped scheme also needs its timestamp within
    ``tolerance`` seconds of ``now``.
    """
    if scheme == "standard-webhooks":
        msg_id, ts, sigs = (_header(headers, h) for h in STANDARD_HEADERS)
        if not (msg_id and ts and sigs) or not ts.isdigit():
            return False
        if now is not None and tolerance is not None and abs(now - int(ts)) > tolerance:
            return False
        want = signature_headers(scheme, secrets=[secret], body=body, msg_id=msg_id,
                                 timestamp=int(ts))["webhook-signature"]
        return any(hmac.compare_digest(want, s) for s in sigs.split(" "))
    got = _header(headers, header or ("Stripe-Signature" if scheme == "stripe" else ""))
    if got is None:
        return False
    if scheme == "stripe":
        fields = [p.partition("=") for p in got.split(",")]
        ts = next((v for k, _, v in fields if k == "t"), "")
        if not ts.isdigit():
            return False
        if now is not None and tolerance is not None and abs(now - int(ts)) > tolerance:
            return False
        digest = _hmac(secret.encode(), f"{ts}.".encode() + body).hex()
        return any(k == "v1" and hmac.compare_digest(v, digest) for k, _, v in fields)
    digest = sign_hex(secret, body)
    prefix, _, suffix = fmt.partition("{hex}")
    if "{timestamp}" in prefix or "{timestamp}" in suffix:
        return digest in got
    if not (got.startswith(prefix) and got.endswith(suffix)):
        return False
    return hmac.compare_digest(got[len(prefix): len(got) - len(suffix) if suffix else None], digest)
