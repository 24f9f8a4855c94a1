"""jobmock: contract tests and a stateful mock server for asynchronous job APIs.

The public surface::

    load_spec, resolve_spec, bundled_names   read a spec (a bundled name or a path)
    Mock, Request, Response                  one mocked API and its framework-free handler
    Engine, Advance, Job, Event              the lifecycle engine
    RealClock, ScaledClock, VirtualClock     clocks
    create_app                               the ASGI app serving a Mock
    mock                                     mock an API in-process for httpx clients (respx)
"""

from __future__ import annotations

from .bundled import bundled_names, resolve_spec
from .clock import RealClock, ScaledClock, VirtualClock, make_clock
from .dispatch import Mock, Request, Response, Suspend
from .engine import Advance, Engine, Event, Job
from .errors import ApiError, JobmockError, ScenarioError, SpecError
from .spec import ApiSpec, load_spec

__all__ = [
    "Advance",
    "ApiError",
    "ApiSpec",
    "Engine",
    "Event",
    "Job",
    "JobmockError",
    "Mock",
    "RealClock",
    "Request",
    "Response",
    "ScaledClock",
    "ScenarioError",
    "SpecError",
    "Suspend",
    "VirtualClock",
    "bundled_names",
    "create_app",
    "load_spec",
    "make_clock",
    "mock",
    "resolve_spec",
]


def __getattr__(name: str) -> object:
    if name == "create_app":
        from .asgi import create_app

        return create_app
    if name == "mock":
        from .inprocess import mock

        return mock
    raise AttributeError(name)
