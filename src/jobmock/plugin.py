"""jobmock's pytest plugin (entry point ``pytest11``). Imports nothing heavy until a fixture is used.

Fixtures:

- ``webhook_receiver``: a started :class:`jobmock.receiver.WebhookReceiver` on loopback,
  stopped after the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .receiver import WebhookReceiver

__all__ = ["webhook_receiver"]


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A loopback webhook receiver that records, verifies and fails on request."""
    from .receiver import WebhookReceiver

    with WebhookReceiver() as receiver:
        yield receiver
