"""Options and fixtures of the contract suite.

``pytest contract_tests/ --api croma --base-url URL`` judges a server; with no
``--base-url`` the suite starts the mock itself (a real server on a loopback port with
a virtual clock), so a plain ``pytest`` runs it against the mock for every bundled API.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from jobmock.bundled import bundled_names, resolve_spec
from jobmock.contract import CHECKS
from jobmock.spec import ApiSpec


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("jobmock contract", "jobmock contract suite")
    g.addoption("--api", action="append", default=[],
                help="API to judge: a bundled name or a spec path (repeatable; default: all bundled).")
    g.addoption("--base-url", default=None,
                help="Server to judge; without it the suite starts the mock itself.")
    g.addoption("--credential-a", default=os.environ.get("JOBMOCK_CREDENTIAL_A"),
                help="Credential of the first tenant (env JOBMOCK_CREDENTIAL_A; default: the spec's demo).")
    g.addoption("--credential-b", default=os.environ.get("JOBMOCK_CREDENTIAL_B"),
                help="Credential of a second tenant (env JOBMOCK_CREDENTIAL_B; default: the spec's demo).")
    g.addoption("--webhook-secret", default=os.environ.get("JOBMOCK_WEBHOOK_SECRET"),
                help="Secret to verify webhook signatures (default: the spec's demo secret).")
    g.addoption("--receiver-url", default=None,
                help="A URL the server can reach that forwards to the suite's local receiver "
                     "(for servers that refuse loopback callbacks).")
    g.addoption("--contract-examples", type=int, default=int(os.environ.get("JOBMOCK_EXAMPLES", 6)),
                help="Hypothesis examples per API (default 6).")
    g.addoption("--contract-steps", type=int, default=int(os.environ.get("JOBMOCK_STEPS", 25)),
                help="Steps per example (default 25).")
    g.addoption("--contract-budget", type=float, default=300.0,
                help="Wall-clock seconds the suite may sleep against a real-time server (default 300).")


@dataclass
class ContractOptions:
    base_url: str | None
    credential_a: str | None
    credential_b: str | None
    webhook_secret: str | None
    receiver_url: str | None
    examples: int
    steps: int
    budget: float


def _apis(config: pytest.Config) -> list[str]:
    apis: list[str] = config.getoption("--api") or bundled_names()
    if config.getoption("--base-url") and len(apis) != 1:
        raise pytest.UsageError("--base-url judges one server: give exactly one --api")
    return apis


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "api_name" in metafunc.fixturenames:
        apis = _apis(metafunc.config)
        marker = metafunc.definition.get_closest_marker("needs_webhooks")
        if marker is not None:
            apis = [a for a in apis if resolve_spec(a).webhooks is not None]
        metafunc.parametrize("api_name", apis, scope="module")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_webhooks: only for APIs whose spec has webhooks")


@pytest.fixture(scope="session")
def contract_options(pytestconfig: pytest.Config) -> ContractOptions:
    o = pytestconfig.getoption
    return ContractOptions(o("--base-url"), o("--credential-a"), o("--credential-b"),
                           o("--webhook-secret"), o("--receiver-url"), o("--contract-examples"),
                           o("--contract-steps"), o("--contract-budget"))


@pytest.fixture(scope="module")
def api_spec(api_name: str) -> ApiSpec:
    return resolve_spec(api_name)


@pytest.fixture(scope="module")
def base_url(api_spec: ApiSpec, contract_options: ContractOptions) -> Iterator[str]:
    """The server under judgement: --base-url, or a mock the suite starts itself."""
    if contract_options.base_url:
        yield contract_options.base_url
        return
    from jobmock.testing import serve_mock

    with serve_mock(api_spec, seed=1, allow_private_callbacks=True, webhook_timeout=2.0) as server:
        yield server.url


def pytest_terminal_summary(terminalreporter: Any) -> None:
    ran = [c for c in CHECKS.values() if c.runs]
    if not ran:
        return
    terminalreporter.section("jobmock contract checks")
    for c in CHECKS.values():
        state = "FAILED" if c.failures else ("ok" if c.runs else "not run")
        terminalreporter.write_line(f"{c.name:<16} {state:<8} {c.runs:>6} observations   {c.title}")
