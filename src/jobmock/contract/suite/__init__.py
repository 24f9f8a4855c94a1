"""The contract suite as pytest tests (run by `pytest contract_tests/` and `jobmock contract`)."""
