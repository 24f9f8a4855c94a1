"""QA scenarios against a real ``jobmock serve`` process (one per test, on a loopback port).

A sample of the catalog (at least one per API, the held-request and webhook kinds among
them) runs its story over real HTTP: ``jobmock serve API --clock virtual --scenario FILE``,
the clock moved through the control plane, webhooks sent by the server's own sender to
the story's loopback receiver. Also: loading a scenario at runtime with
``POST /_jobmock/scenario``, and ``serve`` taking the scenario's clock and seed.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from jobmock import bundled_names
from jobmock.scenarios import fixtures_dir, load_scenario
from jobmock.testing import ServeProcess, run_story

STARTUP_LIMIT = 30.0  # seconds: a guard against a hung start, not a measurement

SAMPLE = [
    "croma/inline-wait-times-out.yaml",
    "croma/callback-retried-after-two-500s.yaml",
    "enrich/results-in-order-1000.yaml",
    "bronid/second-dispatch-429-then-rejected.yaml",
    "cloro/fifo-concurrency-2.yaml",
    "cloro/webhook-exhausted-after-5-attempts.yaml",
    "docimprint/progress-then-failure.yaml",
    "docimprint/sync-extract-gateway-timeout.yaml",
]


@contextmanager
def serve(*args: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``jobmock serve ARGS`` on a port it picks; yields its base URL once it answers.

    Stopped with SIGTERM (a shell's background jobs and ``nohup`` ignore SIGINT) and
    reaped whatever happens (:class:`jobmock.testing.ServeProcess`).
    """
    served = ServeProcess(*args, startup_timeout=STARTUP_LIMIT)
    try:
        served.start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        assert served.proc is not None
        yield served.url, served.proc
    finally:
        served.stop()


def test_the_sample_covers_every_api() -> None:
    assert {name.split("/")[0] for name in SAMPLE} == set(bundled_names())


@pytest.mark.live
@pytest.mark.parametrize("name", SAMPLE)
def test_story_passes_against_jobmock_serve(name: str) -> None:
    path = fixtures_dir() / name
    scenario = load_scenario(path)
    with serve(scenario.spec.name, "--clock", "virtual", "--scenario", str(path)) as (base, _):
        log = run_story(path, base_url=base)
        state = httpx.get(base + "/_jobmock/scenario").json()
    assert len(log) == len(scenario.story)
    assert state["loaded"] == scenario.name
    assert sum(r["applied"] for r in state["rules"]) >= 1


@pytest.mark.live
def test_post_scenario_loads_one_into_a_running_server() -> None:
    path = fixtures_dir() / "cloro/queue-limit-429.yaml"
    with serve("cloro", "--clock", "virtual") as (base, _):
        assert httpx.get(base + "/_jobmock/scenario").json()["loaded"] is None
        log = run_story(path, base_url=base, load=True)
        state = httpx.get(base + "/_jobmock/scenario").json()
        bad = httpx.post(base + "/_jobmock/scenario", json={"api": "cloro", "description": "x",
                                                             "rules": [{"job": {"outcome": "DONE"}}]})
    assert len(log) == len(load_scenario(path).story)
    assert state["description"] == load_scenario(path).description
    assert bad.status_code == 400 and "at /rules/0/job/outcome:" in bad.json()["error"]


@pytest.mark.live
def test_serve_takes_the_scenarios_clock_and_seed_unless_told(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"api": "croma", "description": "x", "seed": 77, "clock": "virtual"}))
    with serve("croma", "--scenario", str(path)) as (base, _):
        clock = httpx.get(base + "/_jobmock/clock").json()
    assert clock["kind"] == "virtual"
    with serve("croma", "--clock", "real", "--speed", "5", "--scenario", str(path)) as (base, _):
        clock = httpx.get(base + "/_jobmock/clock").json()
        notes = httpx.get(base + "/_jobmock/scenario").json()["notes"]
    assert clock["kind"] == "real" and clock["speed"] == 5
    assert notes and "virtual clock" in notes[0]


@pytest.mark.live
def test_serve_banner_shows_the_scenarios_seed(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"api": "enrich", "description": "x", "seed": 77}))
    with ServeProcess("enrich", "--clock", "virtual", "--scenario", str(path)) as served:
        pass
    first, second = served.stdout.splitlines()[:2]
    assert first.startswith("jobmock serving enrich")
    assert "seed: 77" in second
