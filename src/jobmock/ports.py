"""Free loopback ports, for the harnesses that start servers (:mod:`jobmock.testing`,
:mod:`jobmock.replicas`).

A leaf: it imports nothing of jobmock, so sibling adapters may share it.
"""

from __future__ import annotations

import socket

__all__ = ["free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port
