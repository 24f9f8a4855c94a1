"""The HTML report writer (jobmock.report) on records built by hand; a whole contract run
writing one, opened in Chromium, is in tests/test_report_live.py."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from jobmock import resolve_spec
from jobmock.diagram import mermaid
from jobmock.report import (
    ApiSection,
    CheckRow,
    Coverage,
    Failure,
    JobTimeline,
    Mark,
    Report,
    swimlane_svg,
    write_report,
)

SVG = "{http://www.w3.org/2000/svg}"


def _classes(svg: str) -> list[str]:
    return [g.get("class") or "" for g in ET.fromstring(svg).iter(f"{SVG}g")]


def test_a_poll_before_the_retry_after_it_was_given_is_drawn_early() -> None:
    timeline = JobTimeline("job_1", "t", [
        Mark("requests", 0.0, "submit 202", kind="submit", until=2.0),
        Mark("requests", 1.0, "poll 200", kind="poll", until=3.0),   # early: allowed from 2
        Mark("requests", 3.0, "poll 200", kind="poll", until=5.0),   # on time
        Mark("requests", 9.0, "poll 200", kind="poll"),              # terminal: no Retry-After
        Mark("requests", 9.5, "poll 200", kind="poll"),              # nothing to break
        Mark("status", 0.0, "queued", role="queued"),
        Mark("status", 4.0, "completed", role="completed"),
        Mark("webhooks", 4.0, "#1 500", kind="attempt", ok=False),
        Mark("webhooks", 64.0, "#2 200", kind="attempt", ok=True),
    ])
    svg = swimlane_svg(timeline)
    classes = _classes(svg)
    assert classes.count("jm-mark jm-poll jm-early") == 1
    assert classes.count("jm-mark jm-poll") == 3
    assert classes.count("jm-mark jm-submit") == 1
    assert [g.get("data-ok") for g in ET.fromstring(svg).iter(f"{SVG}g")
            if g.get("class") == "jm-mark jm-attempt"] == ["false", "true"]
    assert [g.get("data-status") for g in ET.fromstring(svg).iter(f"{SVG}g")
            if g.get("class") == "jm-mark jm-status"] == ["queued", "completed"]
    assert ">60 s<" in svg  # the axis reaches the last attempt at 64 s


def test_a_held_submit_is_drawn_from_its_request_to_its_answer() -> None:
    svg = swimlane_svg(JobTimeline("j", "t", [
        Mark("requests", 0.0, "submit 200", kind="submit", answered=5.0),
        Mark("requests", 5.5, "poll 200", kind="poll")]))
    held = [r for r in ET.fromstring(svg).iter(f"{SVG}rect") if r.get("class") == "jm-held"]
    assert len(held) == 1 and float(held[0].get("width") or 0) > 100


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)


def test_the_page_holds_checks_failures_with_curl_coverage_diagram_and_timelines(tmp_path: Path) -> None:
    spec = resolve_spec("croma")
    report = Report("jobmock contract report: croma", passed=1, failed=1, checks=[
        CheckRow("retry_after", "Retry-After on unfinished jobs", 31, 2,
                 ["no Retry-After on a 202 <queued>"], "croma", "FAILED (2)"),
        CheckRow("auth", "credentials", 22, 0, [], "croma", "ok"),
        CheckRow("limits", "gates", 0, 0, [], "croma", "not applicable: no gate")],
        failures=[Failure("test_contract.py::test_state_machine[croma]", "retry_after",
                          "Retry-After on unfinished jobs", "no Retry-After on a 202 <queued>",
                          "curl -i -X POST 'http://127.0.0.1:1/v1/lookups/sicaac'\n    # -> 202")],
        apis=[ApiSection("croma", spec.title, "http://127.0.0.1:1", mermaid(spec), [
            Coverage("status words", ["queued", "completed"], list(spec.lifecycle.states)),
            Coverage("operations", ["getJob"], ["getJob", "lookupSicaac"])],
            [JobTimeline("job_<1>", "lookupSicaac", [Mark("requests", 0, "submit", kind="submit")],
                         flag="failing example")], more_jobs=3)])
    page = write_report(report, tmp_path / "sub" / "report.html").read_text()
    parser = _Text()
    parser.feed(page)
    assert parser.tags.count("script") == 0 and "http-equiv" not in page
    assert not re.search(r"""(src|href)=["']https?://""", page)  # nothing from the network
    rows = re.findall(r'<tr class="check" data-check="(\w+)" data-api="croma">.*?</tr>', page)
    assert rows == ["retry_after", "auth", "limits"]
    assert 'class="bad">FAILED (2)' in page and "not applicable: no gate" in page
    assert "no Retry-After on a 202 &lt;queued&gt;" in page and "<queued>" not in page
    assert '<pre class="curl">curl -i -X POST' in page
    assert '<tr class="coverage" data-what="status words"><td>status words</td><td>2 of 6</td>' in page
    assert "running, failed, canceled, expired" in page  # never seen, in the spec's order
    assert page.count('class="jm-diagram"') == 1 and page.count('class="jm-swimlane"') == 1
    assert 'data-job="job_&lt;1&gt;" open>' in page and "failing example" in page
    assert "1 drawn, 3 more not drawn" in page
    assert '<span id="verdict">FAILED</span>' in page


pytest_plugins = ["pytester"]


def test_the_report_plugin_lists_a_contract_violation_with_its_reason_and_curl_lines(
        pytester: pytest.Pytester) -> None:
    """The suite's report plugin, in a throw-away session: a test raising a ContractViolation
    (as the suite's checks do) and one failing otherwise are both listed; the violation with
    its check, reason and reproduction."""
    out = pytester.path / "out" / "report.html"
    pytester.makeconftest(f"""
        from jobmock.contract.reporting import ReportPlugin

        def pytest_configure(config):
            config.pluginmanager.register(ReportPlugin({str(out)!r}), "jobmock-report")
    """)
    pytester.makepyfile(test_suite="""
        from jobmock.contract import ContractViolation

        def test_breaks_the_contract():
            raise ContractViolation("retry_after", "Retry-After on unfinished jobs",
                                    "the 202 for job_1 has no Retry-After <queued>",
                                    "curl -i -X POST 'http://127.0.0.1:9/v1/lookups/sicaac'\\n"
                                    "    # -> 202")

        def test_reraised_as_a_plain_failure():  # as the suite's verdict() does without -v
            import pytest
            try:
                raise ContractViolation("auth", "credentials", "a 200 for another tenant's job",
                                        "curl -i -X GET 'http://127.0.0.1:9/jobs/1'")
            except ContractViolation as violation:
                pytest.fail(violation.report(), pytrace=False)

        def test_fails_otherwise():
            assert 1 == 2, "not a contract check"

        def test_passes():
            pass
    """)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines([f"jobmock contract report: {out}"])
    page = out.read_text()
    violation = re.search(r'<div class="failure" data-check="retry_after">(.*?)</div>', page, re.S)
    assert violation is not None
    assert "[retry_after] Retry-After on unfinished jobs" in violation.group(1)
    assert "the 202 for job_1 has no Retry-After &lt;queued&gt;" in violation.group(1)
    assert "<code>test_suite.py::test_breaks_the_contract</code>" in violation.group(1)
    curl = re.search(r'<pre class="curl">(.*?)</pre>', violation.group(1), re.S)
    assert curl is not None
    assert curl.group(1) == ("curl -i -X POST &#x27;http://127.0.0.1:9/v1/lookups/sicaac&#x27;\n"
                             "    # -&gt; 202")
    other = re.search(r'<div class="failure" data-check="">(.*?)</div>', page, re.S)
    assert other is not None and "not a contract check" in other.group(1)
    reraised = re.search(r'<div class="failure" data-check="auth">(.*?)</div>', page, re.S)
    assert reraised is not None and "a 200 for another tenant&#x27;s job" in reraised.group(1)
    assert "curl -i -X GET &#x27;http://127.0.0.1:9/jobs/1&#x27;</pre>" in reraised.group(1)
    assert '<span class="ok">1 passed</span>' in page and '<span class="bad">3 failed</span>' in page
