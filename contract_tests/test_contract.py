"""The contract suite (defined in ``jobmock.contract.suite``): run with
``pytest contract_tests/ [--api NAME] [--base-url URL] [credentials options]``."""

from jobmock.contract.suite.test_contract import *  # noqa: F403
from jobmock.contract.suite.test_contract import __all__  # noqa: F401
