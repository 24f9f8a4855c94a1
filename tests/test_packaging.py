"""A wheel carries what an installed jobmock needs outside this repository: the specs, the
scenario catalog, the schemas and the contract suite."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_ships_the_specs_schemas_and_the_contract_suite(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(tmp_path)], check=True, timeout=300)
    (wheel,) = tmp_path.glob("jobmock-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for spec in (ROOT / "openapi").glob("*.yaml"):
        assert f"jobmock/specs/{spec.name}" in names, spec.name
    for scenario in (ROOT / "fixtures").rglob("*.yaml"):
        assert f"jobmock/fixtures/{scenario.relative_to(ROOT / 'fixtures').as_posix()}" in names
    for needed in ("jobmock/schemas/x-jobmock.schema.json", "jobmock/schemas/scenario.schema.json",
                   "jobmock/py.typed", "jobmock/ui/dashboard.html", "jobmock/ui/dashboard.js",
                   "jobmock/contract/suite/pytest.ini", "jobmock/contract/suite/conftest.py",
                   "jobmock/contract/suite/test_contract.py"):
        assert needed in names, needed
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "jobmock = jobmock.cli:main" in text and "[pytest11]" in text


def test_the_wheel_carries_the_license(tmp_path: Path) -> None:
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert (ROOT / "CHANGELOG.md").read_text().startswith("# Changelog")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(tmp_path)], check=True, timeout=300)
    (wheel,) = tmp_path.glob("jobmock-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE")
               for n in names), [n for n in names if "dist-info" in n]
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "License-Expression: MIT" in metadata or "License: MIT" in metadata
