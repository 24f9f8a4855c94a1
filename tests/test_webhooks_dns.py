"""Callback hosts that resolve to private addresses are refused at send time (SSRF guard),
under croma's public-https rule; --allow-private-callbacks lifts it."""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx
import pytest

from jobmock import Mock, Request, VirtualClock, resolve_spec
from jobmock.senders import SyncSender
from jobmock.urlrules import check_resolved, needs_resolution

SPEC = resolve_spec("croma")
ADDRESSES = {"evil.example.com": "127.0.0.1", "rebind.example.com": "10.1.2.3",
             "good.example.com": "93.184.216.34", "v6.example.com": "::1"}


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> Any:
        if host in ADDRESSES:
            address = ADDRESSES[host]
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (address, 443))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def run_job(host: str, allow_private: bool) -> tuple[list[str], list[Any]]:
    """Submit a croma lookup with a callback to ``host``; return the hosts contacted and attempts."""
    contacted: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        contacted.append(request.url.host)
        return httpx.Response(200)

    mock = Mock(SPEC, clock=VirtualClock(), seed=1, allow_private_callbacks=allow_private)
    assert mock.webhooks is not None
    SyncSender(mock.webhooks, client=httpx.Client(transport=httpx.MockTransport(handler)))
    body = {"document_type": "CC", "document_number": "1020304050",
            "callback_url": f"https://{host}/hook"}
    answer = mock.dispatch(Request("POST", "/v1/lookups/sicaac", headers={
        **SPEC.auth.headers_for(SPEC.demo_tenants()[0][1]), "prefer": "wait=0"},
        body=json.dumps(body).encode()))
    assert answer.status == 202, answer.body  # type: ignore[union-attr]
    mock.engine.advance_clock(3600)
    attempts = [a for d in mock.webhooks.deliveries() for a in d.attempts]
    return contacted, attempts


@pytest.mark.parametrize("host", ["evil.example.com", "rebind.example.com", "v6.example.com"])
def test_a_host_resolving_to_a_private_address_gets_nothing(fake_dns: None, host: str) -> None:
    contacted, attempts = run_job(host, allow_private=False)
    assert contacted == []
    assert attempts and all(a.error and a.error.startswith("refused:") for a in attempts)
    assert len(attempts) == SPEC.webhooks.retry.attempts  # type: ignore[union-attr]


def test_a_host_resolving_to_a_public_address_gets_its_webhook(fake_dns: None) -> None:
    contacted, attempts = run_job("good.example.com", allow_private=False)
    assert contacted == ["good.example.com"] and attempts[0].status == 200


def test_the_development_option_lifts_the_guard(fake_dns: None) -> None:
    contacted, attempts = run_job("evil.example.com", allow_private=True)
    assert contacted == ["evil.example.com"] and attempts[0].status == 200


def test_resolution_is_needed_only_for_names_under_public_https() -> None:
    assert needs_resolution("https://hooks.example.com/x", "public-https") == "hooks.example.com"
    assert needs_resolution("https://93.184.216.34/x", "public-https") is None
    assert needs_resolution("https://hooks.example.com/x", "https") is None
    assert needs_resolution("https://hooks.example.com/x", "public-https", allow_private=True) is None
    assert check_resolved("h", ["93.184.216.34"]) is None
    assert check_resolved("h", ["93.184.216.34", "192.168.0.1"]) is not None
    assert check_resolved("h", ["fe80::1%eth0"]) is not None
