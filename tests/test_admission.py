"""The admission line: a burst of requests never holds the event loop for long.

The tests count what ran before a probe callback (standing for the ticker or a held
answer) got its turn; they measure no time.
"""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import time

import pytest

from asgicall import asgi_post
from jobmock import admission as admission_module
from jobmock.admission import Admission, admission
from jobmock.asgi import create_app
from jobmock.mockbuild import build_mock


def _spin(seconds: float) -> None:
    """Hold the event loop, as a request's validation and rendering do."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def _burst(gated: bool, n: int, work: float) -> tuple[int, list[int]]:
    """n requests arrive in one pass; how many did their work before a probe scheduled
    right after them ran, and the order they did it in."""
    loop = asyncio.get_running_loop()
    line = admission()
    done: list[int] = []

    async def request(i: int) -> None:
        if gated and not line.admit():
            await line.wait()
        _spin(work)
        done.append(i)

    tasks = [loop.create_task(request(i)) for i in range(n)]
    probe: asyncio.Future[int] = loop.create_future()
    await asyncio.sleep(0)  # the requests' first steps are now ready, ahead of the probe
    loop.call_soon(lambda: probe.set_result(len(done)))
    before_probe = await probe
    await asyncio.gather(*tasks)
    return before_probe, done


def test_a_burst_without_the_line_holds_the_loop_until_all_of_it_is_done() -> None:
    before_probe, _ = asyncio.run(_burst(False, 60, 0.002))
    assert before_probe == 60  # the baseline the line exists to avoid


def test_a_burst_lets_a_due_callback_run_after_one_budget_of_work() -> None:
    work = 0.002
    before_probe, done = asyncio.run(_burst(True, 60, work))
    budget_fits = int(admission_module.PASS_BUDGET / work) + 1
    assert before_probe <= budget_fits < 60
    assert done == list(range(60)), "the line serves requests in the order they arrived"


def test_every_pass_admits_one_request_even_with_no_budget() -> None:
    async def main() -> tuple[int, list[int]]:
        loop = asyncio.get_running_loop()
        admission_module._ADMISSIONS[loop] = Admission(budget=0.0)
        return await _burst(True, 20, 0.0)

    before_probe, done = asyncio.run(main())
    assert before_probe <= 2
    assert done == list(range(20))


def test_a_request_cancelled_in_line_does_not_block_it() -> None:
    async def main() -> tuple[list[int], int]:
        loop = asyncio.get_running_loop()
        line = admission_module._ADMISSIONS[loop] = Admission(budget=0.0)
        done: list[int] = []

        async def request(i: int) -> None:
            if not line.admit():
                await line.wait()
            done.append(i)

        tasks = [loop.create_task(request(i)) for i in range(6)]
        await asyncio.sleep(0)  # all six arrived; the first went in, five wait
        assert line.waiting == 5
        tasks[2].cancel()
        tasks[3].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert sum(isinstance(r, asyncio.CancelledError) for r in results) == 2
        return done, line.waiting

    done, waiting = asyncio.run(main())
    assert done == [0, 1, 4, 5]
    assert waiting == 0


def test_a_finished_loop_leaves_no_line_behind() -> None:
    async def main() -> None:
        assert admission().admit()

    for _ in range(3):
        asyncio.run(main())
    gc.collect()
    assert len(admission_module._ADMISSIONS) == 0  # each loop and its line were freed


def test_a_lone_request_goes_straight_in() -> None:
    async def main() -> bool:
        return admission().admit()

    assert asyncio.run(main()) is True


def test_the_asgi_app_puts_every_request_in_the_line() -> None:
    """100 submits arriving at once through the app: with no budget, a probe scheduled
    after their arrival runs once one or two have been answered, not all 100."""
    mock = build_mock("croma", clock="virtual")
    app = create_app(mock)
    op = mock.spec.submit_operations[0]
    body = json.dumps(op.body_example).encode()
    headers = [(b"content-type", b"application/json"),
               (b"authorization", b"Bearer sk_test_croma_org_a"), (b"prefer", b"wait=0"),
               (b"content-length", str(len(body)).encode())]

    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        admission_module._ADMISSIONS[loop] = Admission(budget=0.0)
        started: list[int] = []
        tasks = [loop.create_task(asgi_post(app, op.path, body, headers, started))
                 for i in range(100)]
        probe: asyncio.Future[int] = loop.create_future()
        for _ in range(3):  # the requests read their bodies and reach the line
            await asyncio.sleep(0)
        loop.call_soon(lambda: probe.set_result(len(started)))
        before = await probe
        await asyncio.gather(*tasks)
        await app.aclose()
        return before, len(started)

    before, answered = asyncio.run(main())
    assert answered == 100
    assert before <= 3


def test_serve_freezes_its_startup_heap_and_collects_its_oldest_generation_less_often(
        ) -> None:
    code = ("import gc, json; from jobmock.serving import settle_heap; "
            "before = gc.get_threshold(); settle_heap(); "
            "print(json.dumps([before, gc.get_threshold(), gc.get_freeze_count()]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    before, after, frozen = json.loads(out)
    assert before == [700, 10, 10]
    assert after == [700, 10, 100]
    assert frozen > 1000  # the modules and objects built before serving


@pytest.fixture(autouse=True)
def _fresh_lines() -> None:
    admission_module._ADMISSIONS.clear()
