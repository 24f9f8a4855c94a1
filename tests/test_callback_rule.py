"""``x-jobmock.callbacks``: a callback URL rule for an API whose deliveries the spec does not
simulate (the URL is checked at submit, nothing is ever sent).

Built from croma's spec with its webhooks taken out and its rule kept: a forbidden URL gets
croma's validation error, an allowed one is accepted and no delivery is made; the contract
suite judges the rule (``callback_urls`` ok, not "not applicable"); a spec may not give both
the webhooks and a separate rule.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from apihelpers import ApiHelpers
from jobmock.errors import SpecError
from jobmock.inprocess import InProcessMock
from jobmock.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]


def croma_without_hooks(tmp_path: Path, *, keep_hooks: bool = False) -> Path:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "openapi" / "croma.yaml").read_text())
    x = doc["x-jobmock"]
    hooks = x["webhooks"] if keep_hooks else x.pop("webhooks")
    x["callbacks"] = {"url_from": hooks["url_from"], "url_rule": hooks["url_rule"]}
    x["assumed"] = [a for a in x.get("assumed", []) if not a.startswith("/x-jobmock/webhooks")]
    path = tmp_path / "croma-callbacks.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_the_rule_is_kept_and_nothing_is_sent(tmp_path: Path) -> None:
    spec = load_spec(croma_without_hooks(tmp_path))
    assert spec.webhooks is None and spec.callbacks is not None
    assert spec.callbacks.url_rule == "public-https"
    helpers = ApiHelpers(spec)
    op = spec.submit_operations[0]
    headers = {**helpers.creds(0), "Prefer": "wait=0"}
    with InProcessMock(spec) as api:
        client = httpx.Client(base_url=api.base_url)
        refused = client.post(op.path, json={**op.body_example,
                                             "callback_url": "http://127.0.0.1/hook"},
                              headers=headers)
        assert refused.status_code == 400, refused.text
        assert "callback" in refused.text.lower() or "url" in refused.text.lower()
        taken = client.post(op.path, json={**op.body_example,
                                           "callback_url": "https://hooks.example.com/x"},
                            headers=headers)
        assert taken.status_code == 202, taken.text
        api.advance(3600)
        assert api.mock.webhooks is None and api.webhooks == []
        assert [j.callback_url for j in api.jobs] == ["https://hooks.example.com/x"]


def test_webhooks_and_a_separate_rule_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="/x-jobmock/callbacks"):
        load_spec(croma_without_hooks(tmp_path, keep_hooks=True))


def test_the_contract_suite_judges_the_rule(tmp_path: Path) -> None:
    path = croma_without_hooks(tmp_path)
    run = subprocess.run([sys.executable, "-m", "jobmock.cli", "contract", str(path),
                          "-p", "no:cacheprovider"], capture_output=True, text=True,
                         timeout=600, cwd=ROOT, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stdout[-4000:]
    table = run.stdout[run.stdout.index("jobmock contract checks"):]
    assert "callback_urls    ok" in table
    assert "webhooks         not applicable: the spec has no webhooks" in table
