"""Callback URL rules: which webhook targets a spec accepts.

``public-https`` (Croma) accepts only absolute HTTPS URLs on public hosts:
loopback, private, link-local, unspecified, reserved and multicast addresses are
refused in every spelling ``inet_aton`` or ``ipaddress`` accepts (``127.1``,
``0x7f000001``, ``[::1]``, ``[::ffff:127.0.0.1]``), as are ``localhost`` names and
userinfo tricks (the host is what follows the ``@``).

``allow_private`` (``jobmock serve --allow-private-callbacks``) is for local
development: it accepts any absolute http(s) URL, so a receiver on your own machine
gets its webhooks.

:func:`is_loopback_host` is the one test of "this machine" every part of jobmock uses: the
control plane's ``Host`` check, ``serve --host`` without a token, and the in-process mock
sending a webhook to a local receiver over the network.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

__all__ = ["check_callback_url", "check_resolved", "is_loopback_host", "needs_resolution"]

_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa")
#: Appended to a refusal the mock would lift for local development.
PRIVATE_HINT = (" (to receive webhooks on your own machine, start the mock with "
                "--allow-private-callbacks, or allow_private_callbacks=True in-process)")


def _literal_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        # inet_aton takes the legacy spellings: 127.1, 0x7f000001, 017700000001, 2130706433.
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


#: What an address may be written with (IPv4 in any inet_aton spelling, IPv6 with a zone):
#: glibc's inet_aton reads "127.0.0.1 evil.example" as 127.0.0.1, so nothing else may pass.
_ADDRESS_CHARS = re.compile(r"^[0-9a-z.:%_-]+$")


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or address, without a port) is this machine's loopback.

    Case, surrounding space, ``[]`` brackets and trailing dots are ignored. Loopback is
    ``localhost`` and every ``*.localhost`` name (RFC 6761), and a loopback address in every
    spelling ``inet_aton`` or ``ipaddress`` reads: ``127.0.0.0/8`` (``127.0.0.1``,
    ``127.1``, ``0x7f000001``, ``2130706433``), ``::1`` and ``::ffff:127.x.y.z`` (an
    IPv4-mapped loopback address). Not loopback: ``0.0.0.0``, ``::`` and names that only
    start with one (``127.0.0.1.nip.io``, ``localhost.example.com``).
    """
    name = host.strip().strip("[]").rstrip(".").lower()
    if _localhost_name(name):
        return True
    ip = _literal_ip(name) if _ADDRESS_CHARS.match(name) else None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip is not None and ip.is_loopback


def _localhost_name(name: str) -> bool:
    """``localhost`` or a ``*.localhost`` name (RFC 6761: always this machine)."""
    return name == "localhost" or name.endswith(".localhost")


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            return _is_public(mapped)
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def check_callback_url(url: object, rule: str, *, allow_private: bool = False) -> str | None:
    """Why ``url`` breaks ``rule`` (``any``, ``https`` or ``public-https``), or None if it is fine."""
    if not isinstance(url, str) or not url:
        return "callback URL must be a non-empty string"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return f"callback URL is malformed: {exc}"
    if parts.scheme not in ("http", "https") or not host:
        return "callback URL must be an absolute http(s) URL"
    if rule == "any" or allow_private:
        return None
    if parts.scheme != "https":
        return "callback URL must use https" + PRIVATE_HINT
    if rule == "https":
        return None
    name = host.rstrip(".").lower()
    ip = _literal_ip(name)
    dotless = "." not in name and ":" not in name and ip is None
    if _localhost_name(name) or name.endswith(_LOCAL_SUFFIXES) or dotless:
        return f"callback URL host {host!r} is not a public host{PRIVATE_HINT}"
    if ip is not None and not _is_public(ip):
        return f"callback URL host {host!r} is a private, loopback or reserved address{PRIVATE_HINT}"
    return None


def needs_resolution(url: str, rule: str, *, allow_private: bool = False) -> str | None:
    """The host name to resolve before sending to ``url`` under ``rule`` (None: no need).

    Under ``public-https`` a name could resolve to a private address (``127.0.0.1.nip.io``,
    or DNS rebinding after the URL was accepted), so senders resolve it and check every
    address with :func:`check_resolved` before connecting.
    """
    if rule != "public-https" or allow_private:
        return None
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    return host if host and _literal_ip(host) is None else None


def check_resolved(host: str, addresses: list[str]) -> str | None:
    """Why a host whose addresses are ``addresses`` must not get a webhook, or None."""
    for address in addresses:
        ip = _literal_ip(address.split("%", 1)[0])
        if ip is not None and not _is_public(ip):
            return (f"callback host {host!r} resolves to {address}, a private or loopback "
                    f"address{PRIVATE_HINT}")
    return None
