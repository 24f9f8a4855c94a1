"""Unit tests of :class:`jobclients.CromaClient` (sync) against jobmock's in-process croma mock.

The ``jobmock`` fixture (jobmock's pytest plugin) mocks https://api.croma.example for every
httpx client in the test; the marker names the API and its options. The client's ``sleep``
is the mock's virtual clock, so a poll loop that would wait minutes runs at once.
``check_client=True`` also fails the test if the client misbehaved (polled before
Retry-After, retried a 401, ...).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from jobclients import CromaClient, JobError, JobExpired

PERSON = ("CC", "1020304050")


@pytest.fixture
def croma(jobmock: Any) -> Iterator[CromaClient]:
    client = CromaClient(jobmock.credential(), base_url=jobmock.base_url, sleep=jobmock.sleep)
    yield client
    client.close()


@pytest.mark.jobmock("croma", seed=1, check_client=True)
def test_lookup_waits_inline_and_returns_the_data(jobmock: Any, croma: CromaClient) -> None:
    jobmock.plan_next(outcome="completed")
    data = croma.lookup("sicaac", *PERSON)
    assert data["source"] == "sicaac"
    assert data["document_number"] == PERSON[1]
    [job] = jobmock.jobs
    assert job.status == "completed"
    # The 55 s inline wait ended the moment the job did: no real waiting, no extra clock time.
    assert jobmock.now == job.completed_at
    assert [e.status for e in jobmock.requests] == [200]


@pytest.mark.jobmock("croma", seed=1, check_client=True)
def test_lookup_polls_as_retry_after_asks_when_the_wait_runs_out(jobmock: Any) -> None:
    jobmock.plan_next(outcome="completed", queued_for=1, running_for=20)
    client = CromaClient(jobmock.credential(), base_url=jobmock.base_url, wait=1,
                         sleep=jobmock.sleep)
    try:
        data = client.lookup("superfinanciera", *PERSON)
    finally:
        client.close()
    assert data["source"] == "superfinanciera"
    submit, *polls = jobmock.requests
    assert submit.status == 202
    assert polls and all(p.path == f"/jobs/{submit.job_id}" for p in polls)
    assert polls[-1].job_status == "completed"


@pytest.mark.jobmock("croma", seed=7, check_client=True)
def test_an_expired_lookup_raises_job_expired(jobmock: Any, croma: CromaClient) -> None:
    """Reproduces a failure: the registry never answered and the job expired."""
    jobmock.plan_next(outcome="expired")
    with pytest.raises(JobExpired) as caught:
        croma.lookup("policia-nacional", *PERSON)
    [job] = jobmock.jobs
    assert caught.value.job_id == job.id
    assert job.status == "expired"


@pytest.mark.jobmock("croma", seed=7, check_client=True)
def test_a_job_that_expires_while_polled_raises_job_expired(jobmock: Any,
                                                            croma: CromaClient) -> None:
    job_id = croma.submit("rree", *PERSON)
    jobmock.force(job_id, "expired")
    with pytest.raises(JobExpired):
        croma.wait_for(job_id)


@pytest.mark.jobmock("croma", check_client=True)
def test_a_wrong_key_is_reported_once_and_not_retried(jobmock: Any) -> None:
    client = CromaClient("sk_live_wrong", base_url=jobmock.base_url, sleep=jobmock.sleep)
    try:
        with pytest.raises(JobError) as caught:
            client.lookup("sicaac", *PERSON)
    finally:
        client.close()
    assert caught.value.status == 401
    assert len(jobmock.requests) == 1
    assert jobmock.jobs == []
