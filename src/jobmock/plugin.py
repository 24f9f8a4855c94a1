"""jobmock's pytest plugin (entry point ``pytest11``). Imports nothing heavy until a fixture is used.

Marker::

    @pytest.mark.jobmock("cloro", seed=1, clock="virtual", check_client=True)

names the API and the options of :func:`jobmock.mock` (``seed``, ``clock``, ``base_url``,
``auto_advance``, ``advance``, ``scenario``, ``faults``, ``allow_private_callbacks``, ...).
``check_client=True`` also asserts, after the test, that the client passed every
client-behaviour check (:mod:`jobmock.behaviour`). Indirect parametrisation works too:
``@pytest.mark.parametrize("jobmock", ["croma", "cloro"], indirect=True)``.

Fixtures:

- ``jobmock``: the API mocked in-process for httpx clients (an active
  :class:`jobmock.inprocess.InProcessMock`), configured by the marker.
- ``jobmock_server``: a real jobmock server for the marker's API on a free loopback port,
  in a thread (:class:`jobmock.testing.LiveServer`: ``.url``, ``.mock``), for clients that
  are not httpx or not Python; stopped after the test. Virtual clock unless the marker says
  ``clock="real"``; move it with ``POST {url}/_jobmock/clock/advance``.
- ``webhook_receiver``: a started :class:`jobmock.receiver.WebhookReceiver` on loopback,
  stopped after the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .inprocess import InProcessMock
    from .receiver import WebhookReceiver
    from .testing import LiveServer

__all__ = ["jobmock", "jobmock_server", "pytest_configure", "pytest_runtest_makereport",
           "webhook_receiver"]

MARKER = "jobmock"
_CALL_FAILED = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "jobmock(api, seed=0, clock='virtual', check_client=False, **options): the API (a "
        "bundled name or a spec path) and options of the jobmock and jobmock_server fixtures.",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed  # check_client stays quiet after a failure
    return report


def _config(request: pytest.FixtureRequest, fixture: str) -> tuple[Any, dict[str, Any]]:
    """The API and options for ``fixture``, from indirect parametrisation or the marker."""
    param = getattr(request, "param", None)
    if param is not None:
        if isinstance(param, dict):
            options = dict(param)
            return options.pop("api"), options
        return param, {}
    marker = request.node.get_closest_marker(MARKER)
    if marker is None or not marker.args:
        pytest.fail(f"the {fixture} fixture needs the API to mock: mark the test "
                    f"@pytest.mark.jobmock('croma', seed=1) (a bundled name or a spec path)",
                    pytrace=False)
    if len(marker.args) > 1:
        pytest.fail(f"@pytest.mark.jobmock takes one API name, got {marker.args!r}; pass "
                    f"options as keywords", pytrace=False)
    return marker.args[0], dict(marker.kwargs)


def _check_options(fixture: str, options: dict[str, Any], *, server: bool) -> None:
    """Fail the test, naming the valid options, when the marker gives an unknown one."""
    import inspect

    from .dispatch import Mock
    from .inprocess import InProcessMock, build_mock, mock

    funcs: list[Any] = [build_mock, Mock.__init__] + ([] if server else [mock, InProcessMock.__init__])
    valid = {name for f in funcs for name, p in inspect.signature(f).parameters.items()
             if p.kind is p.KEYWORD_ONLY or (p.kind is p.POSITIONAL_OR_KEYWORD
                                             and name not in ("self", "api", "spec"))}
    valid.add("check_client")
    bad = sorted(set(options) - valid)
    if bad:
        from .hints import did_you_mean

        pytest.fail(f"@pytest.mark.jobmock: the {fixture} fixture takes no option {bad[0]!r}."
                    f"{did_you_mean(bad[0], valid)} Its options: {', '.join(sorted(valid))}",
                    pytrace=False)


@pytest.fixture
def jobmock(request: pytest.FixtureRequest) -> Iterator[InProcessMock]:
    """The marked API mocked in-process for httpx (sync and async) clients."""
    from .inprocess import mock

    api, options = _config(request, "jobmock")
    check_client = bool(options.pop("check_client", False))
    _check_options("jobmock", options, server=False)
    with mock(api, **options) as active:
        yield active
    if check_client and not request.node.stash.get(_CALL_FAILED, False):
        active.assert_client_behaved()


@pytest.fixture
def jobmock_server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    """A real jobmock server for the marked API on a free loopback port, in a thread."""
    from .inprocess import build_mock
    from .testing import LiveServer

    api, options = _config(request, "jobmock_server")
    options.pop("check_client", None)
    for key in ("base_url", "auto_advance"):
        if options.get(key) is not None:
            pytest.fail(f"jobmock_server does not take {key}= (it serves on its own URL and "
                        f"its clock moves through the control plane)", pytrace=False)
    for key in ("base_url", "auto_advance", "pass_through", "assert_all_called", "max_idle_polls"):
        options.pop(key, None)
    _check_options("jobmock_server", options, server=True)
    from .sessions import session_options

    def session(name: str) -> Any:  # each session: the options, no faults or scenario
        return build_mock(api, **session_options(options, name))

    with LiveServer(build_mock(api, **options), sessions=session) as server:
        yield server


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A loopback webhook receiver that records, verifies and fails on request."""
    from .receiver import WebhookReceiver

    with WebhookReceiver() as receiver:
        yield receiver
