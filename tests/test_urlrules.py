"""Callback URL rules (jobmock.urlrules): which webhook targets a spec's ``url_rule`` accepts."""

from __future__ import annotations

import pytest

from jobmock import resolve_spec
from jobmock.urlrules import check_callback_url, is_loopback_host

# Every spelling of a non-public target the ``public-https`` rule must refuse.
PRIVATE_OR_LOCAL = [
    "https://127.0.0.1/x",
    "https://127.1/x",  # inet_aton short form
    "https://0x7f000001/x",  # hex
    "https://2130706433/x",  # one decimal integer
    "https://017700000001/x",  # octal
    "https://[::1]/x",
    "https://[::ffff:127.0.0.1]/x",  # IPv4-mapped IPv6
    "https://169.254.169.254/latest/meta-data",  # link-local (cloud metadata)
    "https://10.0.0.1/x",
    "https://192.168.1.1/x",
    "https://172.16.0.1/x",
    "https://172.31.255.255/x",
    "https://0.0.0.0/x",
    "https://[::]/x",
    "https://224.0.0.1/x",  # multicast
    "https://localhost/x",
    "https://LOCALHOST./x",
    "https://foo.localhost/x",
    "https://good.com@127.0.0.1/",  # userinfo trick: the host follows the @
    "https://good.com:pw@10.0.0.1:8443/hook",
]

NOT_ABSOLUTE_HTTPS = [
    "http://hooks.example.com/x",  # not https
    "/relative/path",
    "hooks.example.com/x",
    "//hooks.example.com/x",
    "ftp://hooks.example.com/x",
    "",
]

PUBLIC = [
    "https://hooks.example.com/x",
    "https://8.8.8.8/x",
    "https://[2001:4860:4860::8888]/x",
    "https://hooks.example.com:8443/x?a=1",
    "https://127.0.0.1@hooks.example.com/x",  # userinfo looks local, host is public
]


@pytest.mark.parametrize("url", PRIVATE_OR_LOCAL)
def test_public_https_refuses_private_and_local_hosts(url: str) -> None:
    reason = check_callback_url(url, "public-https")
    assert reason is not None
    assert "host" in reason


@pytest.mark.parametrize("url", NOT_ABSOLUTE_HTTPS)
def test_public_https_refuses_non_https_and_relative_urls(url: str) -> None:
    assert check_callback_url(url, "public-https") is not None


def test_http_is_refused_because_of_the_scheme() -> None:
    reason = check_callback_url("http://hooks.example.com/x", "public-https")
    assert reason is not None and "https" in reason


@pytest.mark.parametrize("url", PUBLIC)
def test_public_https_accepts_public_https_hosts(url: str) -> None:
    assert check_callback_url(url, "public-https") is None


@pytest.mark.parametrize("value", [None, 42, b"https://hooks.example.com/x"])
def test_non_strings_are_refused(value: object) -> None:
    assert check_callback_url(value, "any") is not None


def test_malformed_port_is_refused() -> None:
    reason = check_callback_url("https://hooks.example.com:99999/x", "public-https")
    assert reason is not None and "malformed" in reason


def test_allow_private_lifts_the_host_check() -> None:
    assert check_callback_url("https://127.0.0.1:9000/x", "public-https") is not None
    assert check_callback_url("https://127.0.0.1:9000/x", "public-https",
                              allow_private=True) is None
    assert check_callback_url("https://localhost/x", "public-https", allow_private=True) is None


def test_allow_private_still_needs_an_absolute_url() -> None:
    assert check_callback_url("/relative", "public-https", allow_private=True) is not None


def test_rule_any_accepts_local_http() -> None:
    assert check_callback_url("http://localhost", "any") is None
    assert check_callback_url("http://127.0.0.1:8080/hook", "any") is None
    assert check_callback_url("/relative", "any") is not None


def test_rule_https_only_checks_the_scheme() -> None:
    assert check_callback_url("https://localhost/x", "https") is None
    assert check_callback_url("http://hooks.example.com/x", "https") is not None


def test_croma_spec_states_the_public_https_rule() -> None:
    # The rule tested above is the one a bundled spec actually uses.
    webhooks = resolve_spec("croma").webhooks
    assert webhooks is not None
    assert webhooks.url_rule == "public-https"


# -- is_loopback_host: the one test of "this machine" (guard, serve --host, in-process) --------

# guard's and inprocess's former copies missed the inet_aton spellings and IPv4-mapped IPv6
# (both reach 127.0.0.1), and inprocess's missed case, a trailing dot and surrounding space.
LOOPBACK = ["localhost", "LOCALHOST", "localhost.", "LocalHost..", " localhost ", "api.localhost",
            "127.0.0.1", "127.9.8.7", "127.255.255.254", "127.1", "0x7f000001", "2130706433",
            "017700000001", "::1", "[::1]", "0:0:0:0:0:0:0:1", "::1%lo", "::ffff:127.0.0.1",
            "[::FFFF:127.0.0.1]", "[::ffff:7f00:1]"]
NOT_LOOPBACK = ["", "0.0.0.0", "::", "[::]", "10.0.0.1", "8.8.8.8", "example.com",
                "127.0.0.1.nip.io", "localhost.example.com", "notlocalhost", "localhost-1",
                "::127.0.0.1",  # IPv4-compatible (deprecated): not routed to loopback
                "2002:7f00:1::",  # 6to4 of 127.0.0.1: a relay, not this machine
                "::ffff:10.0.0.1", "127.0.0.1 evil.example", "127.0.0.1\tevil.example", "0x7f.1.evil"]


@pytest.mark.parametrize("host", LOOPBACK)
def test_loopback_hosts_in_every_spelling(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize("host", NOT_LOOPBACK)
def test_hosts_that_are_not_loopback(host: str) -> None:
    assert not is_loopback_host(host)


def test_every_loopback_check_is_this_one() -> None:
    from jobmock import control, guard, inprocess

    assert guard.is_loopback_host is is_loopback_host
    assert control.is_loopback_host is is_loopback_host
    assert inprocess.is_loopback_host is is_loopback_host
    assert not hasattr(inprocess, "_is_loopback")


@pytest.mark.parametrize("host", [h for h in LOOPBACK if h.strip() == h and "%" not in h])
def test_public_https_refuses_every_loopback_spelling(host: str) -> None:
    bracketed = f"[{host.strip('[]')}]" if ":" in host else host
    assert check_callback_url(f"https://{bracketed}/x", "public-https") is not None
