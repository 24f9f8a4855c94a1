"""The dashboard's control-plane side, in-process: the endpoint index, the page and its
script, the lifecycle diagram, and one job's timeline (submit, polls and their
Retry-After, statuses, webhook attempts). The page itself runs in Chromium in
tests/test_browser_live.py."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx

import jobmock
from jobmock import control, dashboard
from jobmock.diagram import mermaid

HOOK = "https://hooks.example.test/jobmock"


def test_the_index_lists_every_control_endpoint_and_each_listed_get_answers() -> None:
    with jobmock.mock("cloro", seed=1) as api, httpx.Client(
            base_url=api.base_url, headers=api.auth_headers()) as client:
        job_id = client.post("/v1/task", json={"taskType": "CHATGPT",
                                               "payload": {"prompt": "hi"}}).json()["task"]["id"]
        index = client.get("/_jobmock/")
        assert index.status_code == 200
        listed = {(e["method"], e["path"]) for e in index.json()["endpoints"]}
        table = {(e["method"], e["path"]) for e in dashboard.endpoints(control.__doc__ or "")}
        assert len(table) >= 15 and table <= listed
        for path in ("/_jobmock/", "/_jobmock/ui", "/_jobmock/diagram", "/_jobmock/jobs/{id}/timeline"):
            assert ("GET", path) in listed, path
        assert index.json()["ui"] == "/_jobmock/ui"
        assert all(e["description"] and "``" not in e["description"]
                   for e in index.json()["endpoints"])
        for method, path in sorted(listed):
            if "GET" in method.split("/"):
                r = client.get(path.replace("{id}", job_id))
                assert r.status_code == 200, (path, r.status_code, r.text[:200])


def test_the_page_and_its_script_are_served_and_hold_no_data() -> None:
    with jobmock.mock("croma") as api, httpx.Client(base_url=api.base_url) as client:
        page = client.get("/_jobmock/ui")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert '<script src="/_jobmock/ui/dashboard.js"></script>' in page.text
        assert "sk_test" not in page.text  # no credential, no job: the page asks for data
        script = client.get("/_jobmock/ui/dashboard.js")
        assert script.headers["content-type"].startswith("text/javascript")
        for needed in ('params.get("token")', '"Authorization"', '"Bearer "', "setInterval",
                       '"jobs/"', '"/timeline"', '"webhooks"', '"report"', '"clock/advance"',
                       '"diagram"', "textContent"):
            assert needed in script.text, needed
        assert client.get("/_jobmock/ui/").status_code == 200
        missing = client.get("/_jobmock/ui/secrets.txt")
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/json"


def test_the_diagram_endpoint_gives_states_tenants_mermaid_and_svg() -> None:
    with jobmock.mock("bronid") as api, httpx.Client(base_url=api.base_url) as client:
        data = client.get("/_jobmock/diagram").json()
    assert data["api"] == "bronid" and data["states"] == dict(api.spec.lifecycle.states)
    assert data["tenants"] == list(api.spec.auth.tenants)
    assert data["mermaid"] == mermaid(api.spec)
    root = ET.fromstring(data["svg"])
    assert sorted(g.get("data-state") for g in root.iter("{http://www.w3.org/2000/svg}g")
                  if g.get("class") == "jm-state") == sorted(api.spec.lifecycle.states)


def test_a_job_timeline_shows_its_submit_polls_retry_after_statuses_and_webhook_attempts() -> None:
    with jobmock.mock("cloro", seed=3) as api, httpx.Client(
            base_url=api.base_url, headers=api.auth_headers()) as client:
        api.plan_next(outcome="COMPLETED", queued_for=2, running_for=10)
        hook = api.webhook_route(HOOK, 500, 200)
        job_id = client.post("/v1/task", json={"taskType": "CHATGPT", "payload": {"prompt": "hi"},
                                               "webhook": {"url": HOOK}}).json()["task"]["id"]
        client.get(f"/v1/task/{job_id}")       # polled at once: before Retry-After allowed
        api.advance(6)
        client.get(f"/v1/task/{job_id}")       # running
        api.advance(300)                       # done; webhook #1 fails, #2 after 120 s works
        client.get(f"/v1/task/{job_id}")       # completed: no Retry-After
        assert hook.call_count == 2
        r = client.get(f"/_jobmock/jobs/{job_id}/timeline")
        assert r.status_code == 200
        marks = r.json()["marks"]
        assert client.get("/_jobmock/jobs/nope/timeline").status_code == 404

    requests = [m for m in marks if m["lane"] == "requests"]
    assert [m["kind"] for m in requests] == ["submit", "poll", "poll", "poll"]
    submit, first, second, last = requests
    assert submit["at"] == 0 and submit["until"] == 5.0          # cloro's Retry-After: 5
    assert first["at"] == 0 and first["until"] == 5.0
    assert second["at"] == 6 and second["until"] == 11.0
    assert last["at"] == 306 and last["until"] is None
    assert [(m["label"], m["at"]) for m in marks if m["lane"] == "status"] == [
        ("QUEUED", 0.0), ("PROCESSING", 2.0), ("COMPLETED", 12.0)]
    attempts = [m for m in marks if m["lane"] == "webhooks"]
    assert [(m["label"], m["ok"], m["at"]) for m in attempts] == [
        ("#1 500", False, 12.0), ("#2 200", True, 132.0)]

    svg = ET.fromstring(r.json()["svg"])
    assert svg.get("data-job") == job_id
    groups = [g.get("class") or "" for g in svg.iter("{http://www.w3.org/2000/svg}g")]
    assert groups.count("jm-mark jm-attempt") == 2
    assert groups.count("jm-mark jm-poll jm-early") == 1     # the poll at 0 s came too early
    assert groups.count("jm-mark jm-poll") == 2
