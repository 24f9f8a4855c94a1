"""A sixth API is one more YAML file: a spec the code has never seen (enrich renamed, with
its own paths and status words) loads, serves, and passes the contract suite, which also
still catches a fault in it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from jobmock.cli import main
from jobmock.contract import ContractViolation
from jobmock.contract.runner import RunOptions, run_machine
from jobmock.faults import set_faults
from jobmock.spec import ApiSpec, load_spec
from jobmock.testing import serve_mock

ROOT = Path(__file__).resolve().parents[1]
WORDS = {"processing": "crunching", "complete": "finished"}  # its own words (roles stay)


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> ApiSpec:
    text = (ROOT / "openapi" / "enrich.yaml").read_text()
    text = text.replace("/v1/enrich/async", "/v9/acme/batches")
    for old, new in WORDS.items():
        text = re.sub(rf"\b{old}\b", new, text)
    path = tmp_path_factory.mktemp("acme") / "acme.yaml"
    path.write_text(text)
    return load_spec(path)


def test_it_loads_with_its_own_words_and_paths(acme: ApiSpec) -> None:
    assert acme.name == "acme"
    assert set(acme.lifecycle.states) == {"queued", "crunching", "finished", "failed"}
    assert acme.status_operation.path == "/v9/acme/batches/{id}"
    result = CliRunner().invoke(main, ["validate", acme.file])
    assert result.exit_code == 0, result.output


def test_the_contract_suite_passes_it_and_catches_a_fault_in_it(acme: ApiSpec) -> None:
    options = RunOptions(examples=6, steps=25, shrink=False)
    with serve_mock(acme, seed=2) as server:
        run_machine(acme, server.url, options, None)
        set_faults(server.mock, ["results_out_of_order"])
        with pytest.raises(ContractViolation) as caught:
            run_machine(acme, server.url, options, None)
    assert caught.value.check == "invariants"
