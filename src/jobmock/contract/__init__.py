"""The contract suite: judges any server at a base URL against a jobmock spec, over HTTP only.

It reads the spec (``jobmock.spec``) and never imports the engine or the mock's
dispatcher, so it judges an independent server exactly as it judges the mock.
"""

from __future__ import annotations

from .checks import CHECKS, Check, Observation, register, run_checks
from .client import ContractClient, Exchange, Tenant
from .context import JobRecord, SuiteContext, TimeKeeper
from .machine import build_machine
from .violations import ContractViolation

__all__ = [
    "CHECKS",
    "Check",
    "ContractClient",
    "ContractViolation",
    "Exchange",
    "JobRecord",
    "Observation",
    "SuiteContext",
    "Tenant",
    "TimeKeeper",
    "build_machine",
    "register",
    "run_checks",
]
