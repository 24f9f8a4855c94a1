"""The contract suite's options and fixtures live in the package (so `jobmock contract` works
from an installed wheel); this file makes them available to `pytest contract_tests/`."""

from jobmock.contract.suite.conftest import *  # noqa: F403
from jobmock.contract.suite.conftest import __all__  # noqa: F401
