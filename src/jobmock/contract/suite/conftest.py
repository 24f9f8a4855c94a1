"""Options and fixtures of the contract suite.

``pytest contract_tests/ --api croma --base-url URL`` judges a server; with no
``--base-url`` the suite starts the mock itself (a real server on a loopback port with
a virtual clock), so a plain ``pytest`` runs it against the mock for every bundled API.

Under pytest-xdist (``-n``) the workers send their closing tables to the controller, which
prints them (``--dist loadfile``, as the repository runs it, keeps the suite on one
worker). Judging one given server (``--base-url``), a pinned ``--receiver-port`` or an
HTML report (``--jobmock-report``) need one process: the suite turns the workers off for
such a run, and says so.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from jobmock.bundled import bundled_names, resolve_spec
from jobmock.contract import CHECKS
from jobmock.contract.budget import MARGIN, RunBudget
from jobmock.contract.verdicts import VERDICTS
from jobmock.receiver import WebhookReceiver
from jobmock.spec import ApiSpec

#: The suite's loopback webhook receiver, started when pytest is configured.
RECEIVER = pytest.StashKey[WebhookReceiver]()
#: The option that made this run keep to one process under pytest-xdist (said at the start).
ONE_PROCESS = pytest.StashKey[str]()
#: Closing-table lines the pytest-xdist workers sent (printed by the controller).
WORKER_TABLES = pytest.StashKey[list[str]]()
#: Where a pytest-xdist worker puts its closing table for the controller.
_TABLE_KEY = "jobmock_contract_table"
#: Options that need the suite in one process: one judged server (its session is the
#: suite's), one receiver on a pinned port, one report file.
_ONE_PROCESS_OPTIONS = ("--base-url", "--receiver-port", "--jobmock-report")

__all__ = [
    "ContractOptions",
    "api_spec",
    "base_url",
    "contract_options",
    "pytest_addoption",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_generate_tests",
    "pytest_sessionfinish",
    "pytest_sessionstart",
    "pytest_terminal_summary",
    "pytest_testnodedown",
    "pytest_unconfigure",
    "receiver",
    "run_budget",
    "stateless_base_url",
    "stateless_schema",
]


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
    g.addoption("--receiver-port", type=int, default=0,
                help="Port of the suite's webhook receiver on 127.0.0.1 (default: a free one, "
                     "printed at the start); pin it to forward a --receiver-url tunnel to it.")
    g.addoption("--contract-examples", type=int, default=int(os.environ.get("JOBMOCK_EXAMPLES", 6)),
                help="Hypothesis examples per API (default 6).")
    g.addoption("--contract-steps", type=int, default=int(os.environ.get("JOBMOCK_STEPS", 25)),
                help="Steps per example (default 25).")
    g.addoption("--contract-budget", type=float, default=300.0,
                help="Wall-clock seconds for the whole run of one API (state machine, probes, "
                     "webhook schedule, stateless phase; default 300). The run ends within it "
                     "plus a stated margin (jobmock.contract.budget.MARGIN).")
    g.addoption("--contract-seed", type=int, default=int(os.environ.get("JOBMOCK_SEED", 0)),
                help="Hypothesis seed (default 0, env JOBMOCK_SEED): the same seed gives the "
                     "same run; another explores other runs. A failure prints its seed.")
    g.addoption("--contract-webhook-schedule-budget", type=float, default=None,
                help="Real-time seconds to watch a failing webhook's retries against a server "
                     "without jobmock's virtual clock (default: only where the first retry fits).")
    g.addoption("--jobmock-report", default=None, metavar="PATH",
                help="Write a self-contained HTML report here: checks, failures with curl "
                     "reproductions, job timelines, lifecycle coverage.")


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
    seed: int = 0
    webhook_schedule_budget: float | None = None


def _apis(config: pytest.Config) -> list[str]:
    apis: list[str] = config.getoption("--api") or bundled_names()
    if config.getoption("--base-url") and len(apis) != 1:
        raise pytest.UsageError("--base-url judges one server: give exactly one --api")
    return apis


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "operation_label" in metafunc.fixturenames:
        pairs = [(api, f"{op.method} {op.path}") for api in _apis(metafunc.config)
                 for op in resolve_spec(api).operations]
        metafunc.parametrize(("api_name", "operation_label"), pairs, scope="module",
                             ids=[f"{a}:{label}" for a, label in pairs])
        return
    if "api_name" in metafunc.fixturenames:
        apis = _apis(metafunc.config)
        marker = metafunc.definition.get_closest_marker("needs_webhooks")
        if marker is not None:
            apis = [a for a in apis if resolve_spec(a).webhooks is not None]
        metafunc.parametrize("api_name", apis, scope="module")


def _distributed(config: pytest.Config) -> bool:
    """pytest-xdist hands this run's tests to workers (``-n`` and a ``--dist`` mode)."""
    return getattr(config.option, "dist", "no") != "no" and bool(getattr(config.option, "tx", None))


def _keep_to_one_process(config: pytest.Config) -> str | None:
    """Turn pytest-xdist's workers off (before its own ``pytest_configure``, which is last)
    when an option needs one process; return that option."""
    option = config.option
    if not _distributed(config):
        return None
    given = next((name for name in _ONE_PROCESS_OPTIONS if config.getoption(name, None)), None)
    if given is not None:
        option.dist, option.tx, option.numprocesses = "no", [], 0
    return given


def _is_xdist_controller(config: pytest.Config) -> bool:
    """This process hands the tests to pytest-xdist's workers and runs none itself."""
    return _distributed(config) and not config.option.collectonly \
        and not hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_webhooks: only for APIs whose spec has webhooks")
    one = _keep_to_one_process(config)
    if one is not None:
        config.stash[ONE_PROCESS] = one
    if _is_xdist_controller(config):
        return  # the workers run the tests, each with its own receiver
    port = config.getoption("--receiver-port", 0)
    if not 0 <= port <= 65535:
        raise pytest.UsageError(f"--receiver-port must be a port from 0 to 65535, got {port}")
    try:
        config.stash[RECEIVER] = WebhookReceiver(port=port).start()
    except OSError as exc:
        raise pytest.UsageError(f"--receiver-port {port}: cannot listen on 127.0.0.1:{port} "
                                f"({exc.strerror or exc}); give another port, or 0 for a free "
                                f"one") from None
    if config.getoption("--jobmock-report", None):
        from jobmock.contract.reporting import ReportPlugin

        config.pluginmanager.register(ReportPlugin(config.getoption("--jobmock-report")),
                                      "jobmock-report")


def pytest_unconfigure(config: pytest.Config) -> None:
    found = config.stash.get(RECEIVER, None)
    if found is not None:
        found.stop()
        del config.stash[RECEIVER]


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Say where the receiver listens (and what URL the server is given), before any test."""
    config = session.config
    found = config.stash.get(RECEIVER, None)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if found is None or reporter is None:
        return
    one = config.stash.get(ONE_PROCESS, None)
    if one is not None:
        reporter.write_line(f"jobmock contract: {one} needs one process: pytest-xdist's workers "
                            f"are off for this run")
    given = config.getoption("--receiver-url")
    reporter.write_line(f"jobmock contract: webhook receiver listening at {found.url}"
                        + (f"; the server is given --receiver-url {given}, which must forward "
                           f"to it" if given else ""))


@pytest.fixture(scope="session")
def receiver(pytestconfig: pytest.Config) -> WebhookReceiver:
    """The suite's loopback webhook receiver (``--receiver-port`` pins its port)."""
    return pytestconfig.stash[RECEIVER]


@pytest.fixture(scope="session")
def contract_options(pytestconfig: pytest.Config) -> ContractOptions:
    o = pytestconfig.getoption
    return ContractOptions(o("--base-url"), o("--credential-a"), o("--credential-b"),
                           o("--webhook-secret"), o("--receiver-url"), o("--contract-examples"),
                           o("--contract-steps"), o("--contract-budget"), o("--contract-seed"),
                           o("--contract-webhook-schedule-budget"))


@pytest.fixture(scope="module")
def api_spec(api_name: str) -> ApiSpec:
    return resolve_spec(api_name)


@pytest.fixture(scope="module")
def run_budget(api_spec: ApiSpec, contract_options: ContractOptions) -> Iterator[RunBudget]:
    """The time budget of this API's whole run, from its first test; phases take shares.
    When the API's tests are over its closing table is kept: later tests in this process
    (a pytest-xdist worker goes on with other files) may reuse ``VERDICTS``."""
    VERDICTS.reset(api_spec.name)
    _JUDGED[api_spec.name] = api_spec
    yield RunBudget(contract_options.budget)
    _TABLES[api_spec.name] = _table_of(api_spec)


#: The specs judged in this session, for the closing table.
_JUDGED: dict[str, ApiSpec] = {}
#: Each judged spec's closing table, kept when its tests ended.
_TABLES: dict[str, list[str]] = {}


@pytest.fixture(scope="module")
def stateless_base_url(api_spec: ApiSpec, contract_options: ContractOptions) -> Iterator[str]:
    """The server for the stateless phase. The suite's own mock runs on a fast real clock here:
    schemathesis cannot move a virtual clock while an inline wait holds its request."""
    if contract_options.base_url:
        yield contract_options.base_url
        return
    from jobmock.clock import ScaledClock
    from jobmock.testing import serve_mock

    # Its webhooks go to generated URLs: they are journaled, never sent.
    with serve_mock(api_spec, clock=ScaledClock(100), seed=1, deliver_webhooks=False) as server:
        yield server.url


@pytest.fixture(scope="module")
def stateless_schema(api_spec: ApiSpec, stateless_base_url: str,
                     contract_options: ContractOptions) -> Any:
    """The spec as a schemathesis schema against the server, with tenant A's credential."""
    import json

    import schemathesis

    from jobmock.contract.stateless import schemathesis_config

    schema = schemathesis.openapi.from_dict(json.loads(json.dumps(api_spec.document)),
                                            config=schemathesis_config(api_spec))
    schema.config.update(base_url=stateless_base_url)
    return schema


@pytest.fixture(scope="module")
def base_url(api_spec: ApiSpec, contract_options: ContractOptions) -> Iterator[str]:
    """The server under judgement: --base-url, or a mock the suite starts itself."""
    if contract_options.base_url:
        yield contract_options.base_url
        return
    from jobmock.testing import serve_mock

    with serve_mock(api_spec, seed=1, allow_private_callbacks=True, webhook_timeout=2.0) as server:
        yield server.url


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop the webhook tests of APIs without webhooks (an empty parameter set), not skip them."""
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        marker = item.get_closest_marker("skip")
        reason = str(marker.kwargs.get("reason", "")) if marker else ""
        (drop if reason.startswith("got empty parameter set") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _table_of(spec: ApiSpec) -> list[str]:
    return VERDICTS.table(spec, {name: c.title for name, c in CHECKS.items()})


def _table() -> list[str]:
    return [line for name, spec in _JUDGED.items()
            for line in _TABLES.get(name) or _table_of(spec)]


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A pytest-xdist worker hands its closing table to the controller."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None and _JUDGED:
        output[_TABLE_KEY] = _table()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist's controller: keep the table a finished worker sent."""
    lines = getattr(node, "workeroutput", {}).get(_TABLE_KEY)
    if lines:
        node.config.stash.setdefault(WORKER_TABLES, []).extend(lines)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Per API judged: a row per registered check (ok, FAILED, not run and why, not
    applicable and why), then coverage, then what the budget left unfinished."""
    lines = _table() + terminalreporter.config.stash.get(WORKER_TABLES, [])
    if not lines:
        return
    terminalreporter.section("jobmock contract checks")
    for line in lines:
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"(each API's run ends within --contract-budget + {MARGIN:.0f}s: "
                                f"a request in flight and a failure's replay may overrun it)")
