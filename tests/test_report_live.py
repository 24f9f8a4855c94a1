"""`jobmock contract ... --report PATH` against a live mock that breaks its contract on
purpose (the ``drop_retry_after`` fault): the page names the failed check and test, draws
job swimlanes and the lifecycle, counts coverage; opened in
headless Chromium it renders them (a screenshot is kept as the test's artefact)."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from browser import dump_dom, png_size, screenshot
from jobmock import resolve_spec
from jobmock.faults import set_faults
from jobmock.testing import serve_mock

RUN_LIMIT = 600  # seconds: a guard against a hung run, not a measurement


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    out = tmp_path_factory.mktemp("report") / "report.html"
    with serve_mock("croma", seed=1, allow_private_callbacks=True, webhook_timeout=2.0) as server:
        set_faults(server.mock, ["drop_retry_after"])
        done = subprocess.run(
            [sys.executable, "-m", "jobmock.cli", "contract", "croma", "--base-url", server.url,
             "--examples", "3", "--steps", "12", "--report", str(out), "-k", "state_machine",
             "-p", "no:cacheprovider", "-q"],
            capture_output=True, text=True, timeout=RUN_LIMIT, stdin=subprocess.DEVNULL)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]  # the fault is caught
    assert f"jobmock contract report: {out.resolve()}" in done.stdout
    yield out, out.read_text()


@pytest.mark.live
def test_the_report_names_the_failed_check_and_the_failed_test(report: tuple[Path, str]) -> None:
    _, page = report
    row = re.search(r'<tr class="check" data-check="retry_after" data-api="croma">(.*?)</tr>', page)
    assert row is not None and 'class="bad">FAILED' in row.group(1), row
    # a check judged before the violation reads ok (the submit's own answer was judged first)
    assert re.search(r'<tr class="check" data-check="submit_answer" data-api="croma">.*?class="ok">ok<', page)
    assert re.search(r'<span class="bad">1 failed</span>', page)
    assert "test_state_machine[croma]</code>" in page
    # The suite's own failure: its violation with reason and curl lines when it raised one
    # (tests/test_report.py checks that part on violations raised on purpose).
    failure = re.search(r'<div class="failure" data-check="(\w*)">(.*?)</div>', page, re.S)
    assert failure is not None and "test_state_machine[croma]" in failure.group(2)
    if failure.group(1):
        assert failure.group(1) == "retry_after"
        curl = re.search(r'<pre class="curl">(.*?)</pre>', failure.group(2), re.S)
        assert curl is not None and curl.group(1).lstrip().startswith("curl -i -X ")
        assert 'class="flag">failing example<' in page  # its jobs are drawn first


@pytest.mark.live
def test_the_report_draws_timelines_the_lifecycle_and_coverage(report: tuple[Path, str]) -> None:
    _, page = report
    assert page.count('class="jm-diagram"') == 1
    lanes = re.findall(r'<svg [^>]*class="jm-swimlane"[^>]*data-job="([^"]+)"', page)
    assert lanes, "at least one job timeline"
    assert "jm-mark jm-submit" in page and "jm-mark jm-status" in page
    for what in ("status words", "transitions", "operations", "documented errors"):
        m = re.search(rf'data-what="{what}"><td>{what}</td><td>(\d+) of (\d+)</td>', page)
        assert m is not None and int(m.group(2)) > 0, what
    ops = re.search(r'data-what="operations"><td>operations</td><td>(\d+) of (\d+)</td>', page)
    assert ops is not None and int(ops.group(1)) >= 2  # a submit and the status operation
    assert not re.search(r"""(src|href)=["']https?://""", page)  # self-contained


@pytest.mark.live
def test_the_report_draws_the_webhook_retry_schedule_on_the_virtual_clock(tmp_path: Path) -> None:
    out = tmp_path / "schedule.html"
    with serve_mock("cloro", seed=1, allow_private_callbacks=True, webhook_timeout=2.0) as server:
        done = subprocess.run(
            [sys.executable, "-m", "jobmock.cli", "contract", "cloro", "--base-url", server.url,
             "--report", str(out), "-k", "retry_schedule", "-p", "no:cacheprovider", "-q"],
            capture_output=True, text=True, timeout=RUN_LIMIT, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    page = out.read_text()
    lane = re.search(r'<details class="job" data-job="[^"]+" open><summary>[^<]*the webhook retry '
                     r'schedule</summary>(.*?)</details>', page, re.S)
    assert lane is not None
    times = [float(t) for t in re.findall(r"<title>#\d+ 500 at ([\d.]+) s", lane.group(1))]
    delays = resolve_spec("cloro").webhooks.retry.delays  # type: ignore[union-attr]
    assert len(times) == len(delays) + 1
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(abs(gap - want) <= 1.0 for gap, want in zip(gaps, delays, strict=True)), gaps


@pytest.mark.live
def test_the_report_renders_in_chromium(report: tuple[Path, str], tmp_path: Path) -> None:
    path, _ = report
    dom = dump_dom(path.as_uri())
    assert 'id="check-table"' in dom and 'data-check="retry_after"' in dom
    assert dom.count('class="jm-swimlane"') >= 1 and 'class="jm-diagram"' in dom
    shot = screenshot(path.as_uri(), tmp_path / "report.png", size="1280,2400")
    width, height = png_size(shot)
    assert (width, height) == (1280, 2400) and shot.stat().st_size > 50_000  # not a blank page
    print(f"\nreport: {path} ({path.stat().st_size} bytes); screenshot: {shot} "
          f"({width}x{height}, {shot.stat().st_size} bytes)")
