"""jobmock's pytest plugin, run in throw-away pytest sessions (pytester).

The plugin comes from the ``pytest11`` entry point, exactly as for a user who installed
jobmock: the inner sessions have no conftest of ours.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

pytest_plugins = ["pytester"]

STRICT = ("-p", "no:cacheprovider", "--strict-markers", "-W", "error")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess(*STRICT, *args)


def test_the_marker_is_registered(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.jobmock(api, *"])


def test_the_jobmock_fixture_mocks_the_marked_api_for_sync_and_async_clients(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import asyncio
        import httpx
        import pytest

        @pytest.mark.jobmock("croma", seed=1)
        def test_sync(jobmock):
            assert jobmock.spec.name == "croma" and jobmock.mock.engine.seed == 1
            with httpx.Client(base_url=jobmock.base_url, headers=jobmock.auth_headers()) as c:
                r = c.post("/v1/lookups/sicaac", headers={"Prefer": "wait=0"},
                           json={"document_type": "CC", "document_number": "1020304050"})
            assert r.status_code == 202
            assert [j.id for j in jobmock.jobs] == [r.json()["id"]]

        @pytest.mark.jobmock("cloro", seed=2, clock="virtual")
        def test_async(jobmock):
            async def go():
                async with httpx.AsyncClient(base_url=jobmock.base_url,
                                             headers=jobmock.auth_headers()) as c:
                    return await c.post("/v1/task", json={"taskType": "CHATGPT",
                                                          "payload": {"prompt": "hi"}})
            r = asyncio.run(go())
            assert r.status_code == 200 and r.json()["task"]["status"] == "QUEUED"
            start = jobmock.now
            jobmock.advance(60)
            assert jobmock.now - start == 60
            assert jobmock.jobs[0].status in ("COMPLETED", "FAILED")

        @pytest.mark.jobmock("cloro")
        def test_each_test_gets_a_fresh_mock(jobmock):
            assert jobmock.jobs == [] and len(jobmock.journal) == 0
    """)
    run(pytester).assert_outcomes(passed=3)


def test_the_mock_stops_after_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import httpx
        import pytest

        seen = []

        @pytest.mark.jobmock("croma")
        def test_one(jobmock):
            seen.append(jobmock)

        def test_after():
            [api] = seen
            transport = httpx.MockTransport(lambda request: httpx.Response(599))
            with httpx.Client(transport=transport) as c:
                assert c.get(api.url("/_jobmock/health")).status_code == 599
    """)
    run(pytester).assert_outcomes(passed=2)


def test_without_the_marker_the_fixture_says_what_to_write(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        def test_x(jobmock):
            pass
    """)
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*the jobmock fixture needs the API to mock*"
                                 "@pytest.mark.jobmock('croma', seed=1)*"])


def test_indirect_parametrisation_names_the_api(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.parametrize("jobmock", ["croma", {"api": "enrich", "seed": 5}],
                                 indirect=True)
        def test_x(jobmock):
            assert jobmock.spec.name in ("croma", "enrich")
            if jobmock.spec.name == "enrich":
                assert jobmock.mock.engine.seed == 5
    """)
    run(pytester).assert_outcomes(passed=2)


def test_check_client_fails_an_impatient_test_and_passes_a_patient_one(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import httpx
        import pytest

        BODY = {"document_type": "CC", "document_number": "1020304050"}

        def poll_twice(jobmock, pause):
            with httpx.Client(base_url=jobmock.base_url, headers=jobmock.auth_headers()) as c:
                r = c.post("/v1/lookups/sicaac", headers={"Prefer": "wait=0"}, json=BODY)
                jobmock.sleep(pause)
                c.get(r.headers["Location"])

        @pytest.mark.jobmock("croma", check_client=True)
        def test_impatient(jobmock):
            poll_twice(jobmock, 0)

        @pytest.mark.jobmock("croma", check_client=True)
        def test_patient(jobmock):
            poll_twice(jobmock, 2)

        @pytest.mark.jobmock("croma", check_client=True)
        def test_failing_anyway(jobmock):
            poll_twice(jobmock, 0)
            assert False, "the test's own failure"
    """)
    result = run(pytester)
    result.assert_outcomes(passed=2, errors=1, failed=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_impatient*",
                                 "*PolledBeforeRetryAfter: Polled before Retry-After allowed*"])
    assert "ERROR at teardown of test_failing_anyway" not in result.stdout.str()


def test_marker_options_reach_the_mock(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.jobmock("croma", base_url="http://croma.test", advance="manual",
                             faults=["drop_retry_after"], auto_advance="retry-after")
        def test_x(jobmock):
            assert jobmock.base_url == "http://croma.test"
            assert jobmock.engine.advance.mode == "manual"
            from jobmock.faults import enabled
            assert enabled(jobmock.mock) == {"drop_retry_after"}
            assert jobmock.auto_advance == "retry-after"
    """)
    run(pytester).assert_outcomes(passed=1)


@pytest.mark.live
def test_jobmock_server_serves_the_marked_api_on_loopback_and_stops(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import httpx
        import pytest

        @pytest.mark.jobmock("cloro", seed=3)
        def test_server(jobmock_server, tmp_path_factory):
            assert jobmock_server.url.startswith("http://127.0.0.1:")
            health = httpx.get(jobmock_server.url + "/_jobmock/health").json()
            assert health["api"] == "cloro" and health["clock"]["kind"] == "virtual"
            assert jobmock_server.mock.engine.seed == 3
            (tmp_path_factory.getbasetemp() / "port").write_text(str(jobmock_server.port))

        @pytest.mark.jobmock("cloro", base_url="http://x.test")
        def test_server_refuses_in_process_options(jobmock_server):
            pass
    """)
    result = run(pytester, "--basetemp", str(pytester.path / "bt"))
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*jobmock_server does not take base_url=*"])
    port = int((pytester.path / "bt" / "port").read_text())
    with socket.socket() as s:
        s.settimeout(2)
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the server still listens after the test"


@pytest.mark.live
def test_jobmock_server_and_jobmock_keep_sessions_apart(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import httpx
        import pytest

        S = {"X-Jobmock-Session": "mine"}

        @pytest.mark.jobmock("croma", seed=2, faults=["drop_retry_after"])
        def test_server(jobmock_server):
            url = jobmock_server.url
            httpx.post(url + "/_jobmock/clock/advance", json={"seconds": 60}, headers=S)
            assert httpx.get(url + "/_jobmock/clock", headers=S).json()["epoch"] == \\
                httpx.get(url + "/_jobmock/clock").json()["epoch"] + 60
            assert httpx.get(url + "/_jobmock/faults").json()["enabled"] == ["drop_retry_after"]
            assert httpx.get(url + "/_jobmock/faults", headers=S).json()["enabled"] == []
            assert httpx.get(url + "/_jobmock/health").json()["sessions"]["names"] == ["mine"]

        @pytest.mark.jobmock("croma", seed=2)
        def test_in_process(jobmock):
            client = httpx.Client(base_url=jobmock.base_url)
            client.post("/_jobmock/clock/advance", json={"seconds": 60}, headers=S)
            assert jobmock.session("mine").now == jobmock.now + 60
    """)
    run(pytester).assert_outcomes(passed=2)


def test_webhook_receiver_fixture_is_still_offered(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        def test_x(webhook_receiver):
            assert webhook_receiver.url.startswith("http://127.0.0.1:")
    """)
    run(pytester).assert_outcomes(passed=1)


def test_loading_the_plugin_imports_no_http_stack() -> None:
    """What pytest loads for every session of every project that has jobmock installed."""
    code = ("import sys; import jobmock.plugin;"
            "heavy = ['httpx', 'respx', 'starlette', 'uvicorn', 'asyncio', 'jobmock.inprocess',"
            " 'jobmock.asgi', 'jobmock.testing', 'jobmock.receiver'];"
            "print([m for m in heavy if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
