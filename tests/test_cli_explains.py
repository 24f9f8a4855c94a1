"""A CLI and an in-process mock that explain themselves: "did you mean" for API, option,
fault and scenario names; refused callback URLs that name --allow-private-callbacks;
`jobmock scenarios run`; a poll loop nobody moves; an unmocked host; a bad marker option."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import respx
import yaml
from click.testing import CliRunner

import jobmock
from jobmock import Mock, VirtualClock, resolve_spec
from jobmock.cli import main
from jobmock.idle import StuckPolling
from jobmock.scenarios import active_scenario, fixtures_dir, load_scenario
from jobmock.testing import LiveServer

pytest_plugins = ["pytester"]

CATALOG_NAME = "cloro/queue-limit-429.yaml"


def invoke(*args: str) -> tuple[int, str]:
    done = CliRunner().invoke(main, list(args))
    return done.exit_code, done.output


# -- did you mean ---------------------------------------------------------------------------


def test_a_mistyped_api_name_gets_a_suggestion() -> None:
    code, out = invoke("serve", "crom")
    assert code == 1 and "Did you mean 'croma'" in out
    code, out = invoke("apis", "docimprnt")
    assert code == 1 and "Did you mean 'docimprint'?" in out
    code, out = invoke("contract", "enrch", "--base-url", "http://127.0.0.1:9")
    assert code == 1 and "Did you mean 'enrich'?" in out


def test_a_mistyped_option_command_or_choice_gets_a_suggestion() -> None:
    code, out = invoke("serve", "croma", "--prot", "8081")
    assert code == 2 and "Did you mean" in out and "--port" in out
    code, out = invoke("serv", "croma")
    assert code == 2 and "Did you mean 'serve'?" in out
    code, out = invoke("serve", "croma", "--clock", "virtul")
    assert code == 2 and "'real', 'virtual'" in out


def test_a_mistyped_fault_gets_a_suggestion_and_the_list() -> None:
    code, out = invoke("serve", "croma", "--fault", "drop_retry_aftr")
    assert code == 2 and "Did you mean 'drop_retry_after'?" in out and "wrong_signature" in out


def test_a_mistyped_scenario_name_gets_the_closest_catalog_names() -> None:
    code, out = invoke("serve", "cloro", "--scenario", "cloro/queue-limt-429.yaml")
    assert code == 1 and f"Did you mean {CATALOG_NAME!r}?" in out, out
    code, out = invoke("scenarios", "run", "cloro/queue-limit-492")
    assert code == 1 and f"Did you mean {CATALOG_NAME!r}?" in out, out


def test_the_catalog_names_jobmock_scenarios_prints_load_from_anywhere(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    code, listing = invoke("scenarios")
    assert code == 0 and CATALOG_NAME in listing
    monkeypatch.chdir(tmp_path)  # not the repository root: the name is the catalog's
    assert load_scenario(CATALOG_NAME).file == str(fixtures_dir() / CATALOG_NAME)
    assert load_scenario(CATALOG_NAME.removesuffix(".yaml")).name == "queue-limit-429"
    with jobmock.mock("cloro", scenario=CATALOG_NAME) as api:
        assert active_scenario(api.mock).name == "queue-limit-429"  # type: ignore[union-attr]


# -- callback URLs --------------------------------------------------------------------------


def test_a_refused_callback_url_names_allow_private_callbacks() -> None:
    spec = resolve_spec("croma")
    body = {"document_type": "CC", "document_number": "1020304050",
            "callback_url": "https://127.0.0.1/hook"}
    with jobmock.mock("croma") as api, httpx.Client(base_url=api.base_url,
                                                    headers=api.auth_headers()) as client:
        r = client.post("/v1/lookups/sicaac", json=body, headers={"Prefer": "wait=0"})
    assert r.status_code == spec.errors["validation"].status
    assert "--allow-private-callbacks" in r.text and "allow_private_callbacks=True" in r.text
    with jobmock.mock("croma", allow_private_callbacks=True) as api, httpx.Client(
            base_url=api.base_url, headers=api.auth_headers()) as client:
        api.router.post("https://127.0.0.1/hook").respond(200)
        assert client.post("/v1/lookups/sicaac", json=body,
                           headers={"Prefer": "wait=0"}).status_code == 202


# -- jobmock scenarios run ------------------------------------------------------------------


def test_scenarios_run_reports_each_step_of_a_story() -> None:
    story = load_scenario(CATALOG_NAME).story
    code, out = invoke("scenarios", "run", CATALOG_NAME)
    assert code == 0, out
    lines = [line for line in out.splitlines() if line.startswith("  ok ")]
    assert len(lines) == len(story)
    assert lines[4].split()[1:3] == ["4", "submit"] and "-> 429" in lines[4]
    assert out.rstrip().endswith(f"passed: {len(story)} steps")


def test_scenarios_run_stops_at_the_failing_step_and_exits_1(tmp_path: Path) -> None:
    source = fixtures_dir() / CATALOG_NAME
    doc = yaml.safe_load(source.read_text())
    index = next(i for i, step in enumerate(doc["story"]) if "expect" in step
                 and step["expect"].get("status") == 429)
    doc["story"][index]["expect"]["status"] = 418
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(doc))
    code, out = invoke("scenarios", "run", str(broken))
    assert code == 1
    oks = [line for line in out.splitlines() if line.startswith("  ok ")]
    assert len(oks) == index
    assert f"FAIL {broken}: story step {index} (expect" in out and "418" in out


@pytest.mark.live
def test_scenarios_run_against_a_live_server() -> None:
    scenario = load_scenario(CATALOG_NAME)
    with LiveServer(Mock(scenario.spec, clock=VirtualClock())) as server:
        code, out = invoke("scenarios", "run", CATALOG_NAME, "--base-url", server.url, "--load")
        assert code == 0, out
        assert active_scenario(server.mock).name == scenario.name  # type: ignore[union-attr]
    assert out.rstrip().endswith(f"passed: {len(scenario.story)} steps")


# -- in-process -----------------------------------------------------------------------------


def _poll_forever(api: jobmock.inprocess.InProcessMock, limit: int = 1000) -> int:
    """A client's poll loop that never sleeps: polls until the task ends (bounded here)."""
    with httpx.Client(base_url=api.base_url, headers=api.auth_headers()) as client:
        task = client.post("/v1/task", json={"taskType": "CHATGPT", "payload": {"prompt": "hi"}})
        job_id = task.json()["task"]["id"]
        for n in range(1, limit + 1):
            status = client.get(f"/v1/task/{job_id}").json()["task"]["status"]
            if status in ("COMPLETED", "FAILED"):
                return n
    return limit


def test_a_poll_loop_on_a_job_nobody_moves_raises_with_a_hint() -> None:
    with jobmock.mock("cloro") as api, pytest.raises(StuckPolling) as info:
        _poll_forever(api)
    message = str(info.value)
    assert "polled 201 times while the virtual clock stood still" in message
    assert "api.advance(seconds)" in message and "auto_advance='retry-after'" in message
    with jobmock.mock("cloro", max_idle_polls=5) as api, pytest.raises(StuckPolling, match="6 times"):
        _poll_forever(api)


def test_the_guard_stays_quiet_when_the_clock_moves_or_it_is_off() -> None:
    with jobmock.mock("cloro", auto_advance="retry-after") as api:
        assert _poll_forever(api) < 20
    with jobmock.mock("cloro", max_idle_polls=None) as api:
        assert _poll_forever(api, limit=300) == 300


def test_an_unmocked_request_names_the_mocked_base_url() -> None:
    with jobmock.mock("croma") as api, httpx.Client() as client, \
            pytest.raises(respx.models.AllMockedAssertionError) as info:
        client.get("https://api.croma.example.invalid/jobs/1")
    message = str(info.value)
    assert f"jobmock.mock('croma') answers requests to {api.base_url} only" in message
    assert "pass_through=True" in message and "base_url=" in message


def test_a_bad_marker_option_names_the_valid_ones(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.jobmock("croma", sed=1)
        def test_typo(jobmock):
            pass

        @pytest.mark.jobmock("croma", auto_advanse="retry-after")
        def test_server_typo(jobmock_server):
            pass
    """)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=2)  # at fixture setup, before the test runs
    result.stdout.fnmatch_lines([
        "*the jobmock fixture takes no option 'sed'. Did you mean 'seed'* Its options: *",
        "*the jobmock_server fixture takes no option 'auto_advanse'.*Its options: *"])
    assert "TypeError" not in result.stdout.str()
    assert "allow_private_callbacks" in result.stdout.str()

