"""examples/specs/replicate.yaml: Replicate-style predictions, one YAML file.

It validates, its mock serves a prediction to its end with `Prefer: wait`, and the contract
suite judges that mock from the spec alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from jobmock import load_spec
from jobmock.cli import main
from jobmock.contract.runner import RunOptions, run_machine
from jobmock.testing import serve_mock

SPEC = Path(__file__).resolve().parents[1] / "examples" / "specs" / "replicate.yaml"


def test_validate_accepts_it() -> None:
    result = CliRunner().invoke(main, ["validate", str(SPEC)])
    assert result.exit_code == 0, result.output


@pytest.mark.live
def test_the_contract_suite_passes_on_its_mock() -> None:
    spec = load_spec(SPEC)
    with serve_mock(spec, seed=1) as server:
        run_machine(spec, server.url, RunOptions(examples=6, steps=20, shrink=False), None)
