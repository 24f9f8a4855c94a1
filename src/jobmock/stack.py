"""What an adapter serves: the API router and the control router over one :class:`Mock`.

The core (:mod:`jobmock.dispatch`) answers API operations only; the control plane
(:mod:`jobmock.control`) is a feature with a router of its own. Every adapter (the ASGI
app, the in-process respx mock, the pytest plugin through them) hands requests to one
:class:`Stack`, so a request walks through exactly one of the two routers.

Who may use the control router is the mock's policy (:func:`jobmock.control.configure_control`:
a token, loopback names only, secrets shown or not); ``control=False`` (``jobmock serve
--control off``) removes it, and ``/_jobmock/`` paths are then the API's own (its 404).
"""

from __future__ import annotations

from .control import handle_control, is_control
from .dispatch import Mock, Request, Response, Suspend

__all__ = ["Stack"]


class Stack:
    """The API router and, unless switched off, the control router over ``mock``."""

    __slots__ = ("control", "mock")

    def __init__(self, mock: Mock, *, control: bool = True) -> None:
        self.mock = mock
        self.control = control

    def handle(self, request: Request) -> Response | Suspend:
        """Answer ``request`` with the control plane or the mocked API."""
        if self.control and is_control(request):
            return handle_control(self.mock, request)
        return self.mock.dispatch(request)
