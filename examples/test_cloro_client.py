"""Unit tests of :class:`jobclients.CloroClient` (async) against jobmock's in-process cloro mock.

The same ``jobmock`` fixture serves ``httpx.AsyncClient``; the client's async ``sleep`` is
the mock's virtual clock (``jobmock.asleep``). The webhook test routes cloro's deliveries to
the app's endpoint through the same respx router, so the 2/4/8/16-minute retry schedule
plays out in milliseconds.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from jobclients import CloroClient, CloroWebhookEndpoint, JobFailed

from jobmock import resolve_spec
from jobmock.behaviour import WebhookNotAcknowledged

pytestmark = pytest.mark.anyio
PROMPT = "What is the weather in New York?"
HOOK = "https://app.example.com/hooks/cloro"
RETRY_DELAYS = resolve_spec("cloro").webhooks.retry.delays  # type: ignore[union-attr]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def cloro(jobmock: Any) -> AsyncIterator[CloroClient]:
    client = CloroClient(jobmock.credential(), base_url=jobmock.base_url, sleep=jobmock.asleep)
    yield client
    await client.aclose()


@pytest.mark.jobmock("cloro", seed=3, check_client=True)
async def test_ask_polls_until_the_task_completes(jobmock: Any, cloro: CloroClient) -> None:
    jobmock.plan_next(outcome="COMPLETED")
    result = await cloro.ask(PROMPT, country="US")
    assert result["text"] == f"Mock answer to: {PROMPT}"
    [task] = jobmock.jobs
    assert task.status == "COMPLETED" and task.credits_charged == 10


@pytest.mark.jobmock("cloro", seed=3, check_client=True)
async def test_a_failed_task_raises_job_failed(jobmock: Any, cloro: CloroClient) -> None:
    jobmock.plan_next(outcome="FAILED")
    with pytest.raises(JobFailed, match="did not return a result"):
        await cloro.ask(PROMPT)


@pytest.mark.jobmock("cloro", seed=3, check_client=True)
async def test_a_full_queue_is_waited_out_as_retry_after_asks(jobmock: Any,
                                                              cloro: CloroClient) -> None:
    jobmock.refuse_next(2)  # the queue limit: 429 with Retry-After, twice
    task = await cloro.submit(PROMPT)
    statuses = [e.status for e in jobmock.requests]
    assert statuses == [429, 429, 200]
    assert [j.id for j in jobmock.jobs] == [task["id"]]
    result = await cloro.result(task["id"], first_delay=5)
    assert result["text"].endswith(PROMPT)


@pytest.mark.jobmock("cloro", seed=3)
async def test_the_result_arrives_by_webhook_despite_an_outage(jobmock: Any,
                                                               cloro: CloroClient) -> None:
    app = CloroWebhookEndpoint()
    outage = iter([503, 503])  # the app is being deployed: two attempts fail

    def receive(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(outage, None) or app.handle(request.content))

    route = jobmock.router.post(HOOK).mock(side_effect=receive)
    jobmock.plan_next(outcome="COMPLETED")
    task = await cloro.submit(PROMPT, webhook_url=HOOK)
    jobmock.run_until_idle()  # the task ends, then every attempt falls due in turn

    assert app.results[task["id"]]["text"] == f"Mock answer to: {PROMPT}"
    assert route.call_count == 3
    [delivery] = jobmock.deliveries(task["id"])
    assert [a.status for a in delivery.attempts] == [503, 503, 200]
    sent = [a.sent_at for a in delivery.attempts]
    assert [b - a for a, b in itertools.pairwise(sent)] == list(RETRY_DELAYS[:2])
    # The client never polled: it relied on the webhook, which is fine ...
    jobmock.assert_no_ignored_jobs()
    # ... but its endpoint failed twice, which the behaviour checks report.
    with pytest.raises(WebhookNotAcknowledged):
        jobmock.assert_webhooks_acknowledged()
