"""The dashboard in a real browser (headless Chromium, tests/browser.py) against a live mock:
jobs, a job's timeline and the lifecycle diagram render; a job submitted meanwhile appears
without a reload; the clock buttons move a virtual clock; the page sends the control
token it was given in its URL fragment. A screenshot is kept as the test's artefact."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from browser import Browser, chromium, png_size
from jobmock import Mock, VirtualClock, resolve_spec
from jobmock.guard import configure_control
from jobmock.testing import LiveServer

SPEC = resolve_spec("cloro")
TOKEN = "dashboard-test-token"
BODY = {"taskType": "CHATGPT", "payload": {"prompt": "hi"}}


@pytest.fixture
def server() -> Iterator[LiveServer]:
    mock = Mock(SPEC, clock=VirtualClock(), seed=4)
    configure_control(mock, token=TOKEN, loopback_only=True)
    with LiveServer(mock) as live:
        yield live


def _submit(server: LiveServer) -> str:
    r = httpx.post(server.url + "/v1/task", json=BODY, timeout=10,
                   headers=SPEC.auth.headers_for(SPEC.demo_tenants()[0][1]))
    assert r.status_code == 200, r.text
    job_id: str = r.json()["task"]["id"]
    return job_id


@pytest.mark.live
def test_the_dashboard_shows_jobs_timeline_and_diagram_and_updates_after_a_submit(
        server: LiveServer, tmp_path: Path) -> None:
    first = _submit(server)
    with Browser(width=1280, height=1100) as browser:
        browser.open(f"{server.url}/_jobmock/ui#token={TOKEN}")
        rows = "document.querySelectorAll('#jobs tbody tr[data-job]')"
        assert browser.wait_for(f"{rows}.length === 1 && {rows}[0].dataset.job === {json.dumps(first)}")
        # the newest job is selected: its timeline (from /_jobmock/jobs/{id}/timeline) is drawn
        assert browser.wait_for(
            f"document.querySelector('#timeline svg.jm-swimlane[data-job={json.dumps(first)}]') !== null")
        assert browser.evaluate("document.querySelectorAll('#timeline .jm-submit').length") == 1
        states = browser.evaluate(
            "Array.from(document.querySelectorAll('#diagram svg.jm-diagram g.jm-state'))"
            ".map(g => g.dataset.state).sort()")
        assert states == sorted(SPEC.lifecycle.states)
        assert browser.evaluate("document.getElementById('api-name').textContent") == "cloro"
        assert browser.evaluate("document.getElementById('clock-kind').textContent") == "virtual"
        assert browser.wait_for("document.querySelectorAll('#verdicts tbody tr').length > 0")

        # Live: a job submitted now appears without a reload (the same document, still there).
        browser.evaluate("window.__sameDocument = true")
        second = _submit(server)
        assert browser.wait_for(f"document.querySelector('#jobs tr[data-job={json.dumps(second)}]') !== null")
        assert browser.evaluate("window.__sameDocument === true")
        assert browser.evaluate("performance.getEntriesByType('navigation').length") == 1

        # The clock buttons move the virtual clock (POST /_jobmock/clock/advance, with the
        # token): both jobs end, and the page shows it.
        before = httpx.get(server.url + "/_jobmock/clock", timeout=5,
                           headers={"Authorization": f"Bearer {TOKEN}"}).json()["epoch"]
        browser.evaluate("document.querySelector('#advance-form button[data-seconds=\"3600\"]').click()")
        terminal = json.dumps(sorted(SPEC.lifecycle.terminal_words))
        assert browser.wait_for(
            f"Array.from(document.querySelectorAll('#jobs tbody tr[data-job]'))"
            f".every(tr => {terminal}.includes(tr.dataset.status))")
        after = httpx.get(server.url + "/_jobmock/clock", timeout=5,
                          headers={"Authorization": f"Bearer {TOKEN}"}).json()["epoch"]
        assert after - before == 3600
        # the selected job's timeline now shows the status it ended in
        assert browser.wait_for(
            f"Array.from(document.querySelectorAll('#timeline .jm-status'))"
            f".some(g => {terminal}.includes(g.dataset.status))")
        assert browser.evaluate("document.getElementById('error').textContent") == ""
        shot = browser.screenshot(tmp_path / "dashboard.png")
    width, height = png_size(shot)
    assert width >= 1000 and height >= 800
    print(f"\ndashboard screenshot: {shot} ({width}x{height}, {shot.stat().st_size} bytes)")


@pytest.mark.live
def test_without_its_token_the_page_says_how_to_give_it(server: LiveServer) -> None:
    _submit(server)
    with Browser() as browser:
        browser.open(f"{server.url}/_jobmock/ui")
        message = browser.wait_for("document.getElementById('error').textContent")
        assert "401" in message and "#token=" in message
        assert browser.evaluate("document.querySelectorAll('#jobs tbody tr[data-job]').length") == 0
        assert browser.wait_for("document.getElementById('live').textContent === 'offline'")


def test_without_chromium_the_browser_tests_fail_saying_how_to_install_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no chromium on this PATH
    with pytest.raises(pytest.fail.Exception, match=r"apt-get install -y chromium"):
        chromium()
