"""Shared fixtures: in-process mocks of any bundled API, driven through the ASGI app."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from jobmock import Mock, VirtualClock, bundled_names, resolve_spec
from jobmock.asgi import create_app

APIS = bundled_names()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def make_mock() -> Callable[..., Mock]:
    """``make_mock("croma", seed=1)``: a Mock on a virtual clock."""

    def make(api: str, **kwargs: Any) -> Mock:
        kwargs.setdefault("clock", VirtualClock())
        return Mock(resolve_spec(api), **kwargs)

    return make


@pytest.fixture
def make_client(make_mock: Callable[..., Mock]) -> Iterator[Callable[..., tuple[Mock, TestClient]]]:
    """``mock, client = make_client("croma")``: a Mock and a sync HTTP client on its ASGI app."""
    clients: list[TestClient] = []

    def make(api: str, **kwargs: Any) -> tuple[Mock, TestClient]:
        mock = make_mock(api, **kwargs)
        client = TestClient(create_app(mock), base_url="http://mock.test")
        client.__enter__()
        clients.append(client)
        return mock, client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def tenant_headers(api: str, index: int = 0) -> dict[str, str]:
    """Headers presenting the demo credential of tenant ``index`` (0 or 1)."""
    spec = resolve_spec(api)
    _, credential = spec.demo_tenants()[index]
    return spec.auth.headers_for(credential)
