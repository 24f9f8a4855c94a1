"""Capacity: 100,000 queued cloro tasks, in-process and over HTTP.

cloro documents a queue limit of 100,000 waiting tasks per organization (then
429) and a concurrency limit of 10. On a virtual clock that never moves no task
leaves the queue, so N submits leave N tasks queued.

In-process (each part in a fresh child process, so RSS figures start clean):
- baseline: N plain dict inserts (a small record per key), timed and measured;
- jobmock: N ``Mock.dispatch`` submits of ``POST /v1/task``; then one more,
  which must answer the documented 429 when N is the queue limit.
  Reported: submits/s (wall and CPU), the ratio to the baseline's inserts/s, RSS
  growth per job against the baseline's per entry. ``--tracemalloc N`` adds a run
  under tracemalloc (Python-allocated bytes per job; slower).

Over HTTP (``--http``, the default): ``jobmock serve cloro --clock virtual`` and
the bare Starlette app answering the same acknowledgment, both on uvicorn; wrk
POSTs (``-t1 -c50``, ``--rounds`` alternating runs, jobmock reset to empty after
each) measure each one's submits/s (ratio jobmock/bare). wrk then fills jobmock
in bounded chunks, and httpx tops the queue up to exactly the limit, so the next
submit is the 100,001st: it must get 429. Reported: submits/s per fill chunk
against the queue depth, and the server's RSS idle vs full.

    python bench/capacity.py [--count 100000] [--no-http] [--tracemalloc 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH_DIR,
    HOST,
    Server,
    console_script,
    free_port,
    http_json,
    median,
    mib,
    proc_status_kib,
    run_wrk,
)

API = "cloro"
CREDENTIAL = "sk_test_cloro_org_a"
SUBMIT_PATH = "/v1/task"
BODY = b'{"taskType":"CHATGPT","payload":{"prompt":"What do you know about Acme %d?","country":"US"}}'
_HOP_HEADERS = {"date", "server", "content-length", "transfer-encoding", "connection"}


def documented_429() -> tuple[int, str, str | None]:
    """What the spec documents for a full queue: status, error code, Retry-After."""
    from jobmock.bundled import resolve_spec

    spec = resolve_spec(API)
    op = spec.document["paths"][SUBMIT_PATH]["post"]
    assert "429" in op["responses"], "cloro documents no 429 on submit"
    ref = op["responses"]["429"]["$ref"].split("/")[-1]
    example = next(iter(spec.document["components"]["responses"][ref]["content"][
        "application/json"]["examples"].values()))["value"]
    assert spec.limits.queue_error is not None, "cloro names no queue-limit error"
    edef = spec.errors[spec.limits.queue_error]
    retry = next((str(h({})) for k, h in edef.headers.items() if k.lower() == "retry-after"),
                 None)
    return 429, example["error"]["code"], retry


def queue_limit() -> int:
    from jobmock.bundled import resolve_spec

    limit = resolve_spec(API).limits.queue_max
    assert limit is not None
    return limit


# -- in-process children ------------------------------------------------------------------


def _self_rss() -> int:
    gc.collect()
    return proc_status_kib(os.getpid())


def child_dict(count: int) -> dict[str, Any]:
    """Baseline: ``count`` plain dict inserts of a small record."""
    store: dict[str, dict[str, Any]] = {}
    rss0 = _self_rss()
    w0, c0 = time.perf_counter(), time.process_time()
    for i in range(count):
        key = f"task-{i:08d}"
        store[key] = {"id": key, "status": "QUEUED", "body": BODY % i}
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return {"count": len(store), "wall": wall, "cpu": cpu, "rss_growth_kib": _self_rss() - rss0}


def child_mock(count: int, trace: bool) -> dict[str, Any]:
    """``count`` submits through ``Mock.dispatch``, then one more."""
    from jobmock.bundled import resolve_spec
    from jobmock.clock import VirtualClock
    from jobmock.dispatch import Mock, Request, Response

    mock = Mock(resolve_spec(API), clock=VirtualClock())
    headers = {"authorization": f"Bearer {CREDENTIAL}", "content-type": "application/json"}
    base = f"http://{HOST}:8080"

    def submit(body: bytes) -> Response:
        answer = mock.dispatch(Request("POST", SUBMIT_PATH, {}, headers, body, base))
        assert isinstance(answer, Response), "a cloro submit never waits inline"
        return answer

    # Warm the path (first-call caches), then forget the job.
    submit(BODY % -1)
    mock.reset()
    statuses: dict[int, int] = {}
    rss0 = _self_rss()
    if trace:
        tracemalloc.start()
    w0, c0 = time.perf_counter(), time.process_time()
    for i in range(count):
        resp = submit(BODY % i)
        statuses[resp.status] = statuses.get(resp.status, 0) + 1
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    traced = tracemalloc.get_traced_memory()[0] if trace else None
    if trace:
        tracemalloc.stop()
    rss1 = _self_rss()
    extra = submit(BODY % count)
    body = extra.json()
    return {"count": count, "wall": wall, "cpu": cpu, "statuses": statuses,
            "rss_growth_kib": rss1 - rss0, "traced_bytes": traced,
            "counts": mock.engine.counts(), "jobs": len(mock.engine.store),
            "next": {"status": extra.status, "retry_after": extra.header("retry-after"),
                     "code": (body.get("error") or {}).get("code")
                     if isinstance(body, dict) else None}}


def run_child(kind: str, count: int, trace: bool = False) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--child", kind, "--count", str(count)]
    if trace:
        argv.append("--child-trace")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child {kind} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def in_process(count: int, trace_count: int) -> dict[str, Any]:
    print(f"== in-process: {count} submits through Mock.dispatch vs {count} dict inserts ==")
    base = run_child("dict", count)
    mock = run_child("mock", count)
    limit = queue_limit()
    status, code, retry = documented_429()
    dict_rate, mock_rate = count / base["wall"], count / mock["wall"]
    dict_cpu, mock_cpu = count / max(base["cpu"], 1e-9), count / max(mock["cpu"], 1e-9)
    print(f"baseline dict inserts: {dict_rate:,.0f}/s wall ({dict_cpu:,.0f}/s CPU), "
          f"RSS +{mib(base['rss_growth_kib'])} "
          f"({base['rss_growth_kib'] * 1024 / count:.0f} B/entry)")
    print(f"jobmock submits:       {mock_rate:,.0f}/s wall ({mock_cpu:,.0f}/s CPU, "
          f"{mock['cpu'] / count * 1e6:.0f} us CPU each), RSS +{mib(mock['rss_growth_kib'])} "
          f"({mock['rss_growth_kib'] * 1024 / count:.0f} B/job)")
    print(f"ratio jobmock/dict: rate {mock_rate / dict_rate:.5f} wall, "
          f"{mock_cpu / dict_cpu:.5f} CPU (1 submit = {dict_cpu / mock_cpu:,.0f} inserts); "
          f"memory per job / per dict entry "
          f"{mock['rss_growth_kib'] / max(base['rss_growth_kib'], 1):.1f}x")
    print(f"answers: {mock['statuses']}; jobs by status {mock['counts']}")
    nxt = mock["next"]
    ok = True
    if count == limit:
        ok = (nxt["status"] == status and nxt["code"] == code and nxt["retry_after"] == retry
              and mock["jobs"] == limit)
        print(f"submit #{limit + 1:,}: {nxt['status']} {nxt['code']} Retry-After "
              f"{nxt['retry_after']} -> {'OK' if ok else 'WRONG'} (documented: {status} "
              f"{code} Retry-After {retry}); jobs kept: {mock['jobs']:,}")
    else:
        print(f"submit #{count + 1:,}: {nxt['status']} (the 429 check needs --count {limit})")
    out: dict[str, Any] = {"dict": base, "mock": mock, "ok": ok}
    if trace_count:
        traced = run_child("mock", trace_count, trace=True)
        per_job = traced["traced_bytes"] / trace_count
        print(f"tracemalloc ({trace_count:,} submits): {per_job:,.0f} B allocated per job "
              f"still held")
        out["tracemalloc"] = traced
    return out


# -- over HTTP -----------------------------------------------------------------------------


def _lua(path: Path) -> Path:
    body = (BODY % 0).decode()
    path.write_text(
        'wrk.method = "POST"\n'
        f'wrk.body = {json.dumps(body)}\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {CREDENTIAL}"\n')
    return path


async def _top_up(url: str, n: int, concurrency: int = 16) -> dict[int, int]:
    import httpx

    statuses: dict[int, int] = {}
    left = n
    headers = {"Authorization": f"Bearer {CREDENTIAL}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(timeout=30,
                                 limits=httpx.Limits(max_connections=concurrency)) as client:

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                r = await client.post(url, content=BODY % left, headers=headers)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), 300)
    return statuses


def over_http(args: argparse.Namespace) -> dict[str, Any]:
    limit = queue_limit()
    target = min(args.count, limit)
    print(f"\n== over HTTP: wrk -t1 -c{args.connections} POST {SUBMIT_PATH}, jobmock vs bare; "
          f"then fill to {target:,} ==")
    status429, code429, retry429 = documented_429()
    deadline = time.monotonic() + args.http_time_limit
    with tempfile.TemporaryDirectory(prefix="jobmock-bench-") as tmp:
        script = _lua(Path(tmp) / "post.lua")
        port = free_port()
        jm_base = f"http://{HOST}:{port}"
        argv = [console_script("jobmock"), "serve", API, "--clock", "virtual", "--host", HOST,
                "--port", str(port)]
        with Server(argv, jm_base + "/_jobmock/health", "capacity-jobmock") as jm:
            auth = {"Authorization": f"Bearer {CREDENTIAL}"}
            st, headers, body = http_json("POST", jm_base + SUBMIT_PATH,
                                          json.loads(BODY % 0), auth)
            if st != 200:
                raise RuntimeError(f"warm-up submit answered {st}: {body}")
            http_json("POST", jm_base + "/_jobmock/reset", {})
            answer = {"status": st, "body": json.dumps(body, separators=(",", ":")),
                      "headers": [[k, v] for k, v in headers.items() if k not in _HOP_HEADERS]}
            config = Path(tmp) / "bare.json"
            config.write_text(json.dumps({"authorization": f"Bearer {CREDENTIAL}",
                                          "routes": {f"POST {SUBMIT_PATH}": answer}}))
            bport = free_port()
            bargv = [sys.executable, str(BENCH_DIR / "bare_app.py"), "--config", str(config),
                     "--host", HOST, "--port", str(bport)]
            time.sleep(0.5)
            idle_kib = proc_status_kib(jm.pid)
            with Server(bargv, f"http://{HOST}:{bport}/_bare/health", "capacity-bare"):
                bare_url = f"http://{HOST}:{bport}{SUBMIT_PATH}"
                bare_rps: list[float] = []
                jm_rps: list[float] = []
                for rnd in range(1, args.rounds + 1):
                    order = ["jobmock", "bare"] if rnd % 2 else ["bare", "jobmock"]
                    for who in order:
                        if who == "bare":
                            bare_rps.append(run_wrk(bare_url, {}, 1, args.connections,
                                                    args.chunk, script).rps)
                            continue
                        res = run_wrk(jm_base + SUBMIT_PATH, {}, 1, args.connections,
                                      args.chunk, script)
                        if res.non_2xx:
                            raise RuntimeError(f"{res.non_2xx} non-2xx answers while measuring")
                        jm_rps.append(res.rps)
                        http_json("POST", jm_base + "/_jobmock/reset", {})  # back to empty
                    print(f"  round {rnd}: jobmock {jm_rps[-1]:7.0f} submits/s, bare "
                          f"{bare_rps[-1]:7.0f} req/s, ratio {jm_rps[-1] / bare_rps[-1]:.3f}")
                rate = median(jm_rps)
                chunks: list[tuple[int, float, int]] = []  # (depth before, req/s, non-2xx)
                jobs = 0
                while time.monotonic() < deadline:
                    seconds = min(args.chunk, int(0.8 * (target - jobs) / max(rate, 1.0)))
                    if seconds < 1:
                        break
                    res = run_wrk(jm_base + SUBMIT_PATH, {}, 1, args.connections, seconds,
                                  script)
                    new_jobs = http_json("GET", jm_base + "/_jobmock/health")[2]["jobs"]
                    rate = max((new_jobs - jobs) / seconds, 1.0)
                    chunks.append((jobs, res.rps, res.non_2xx))
                    print(f"  fill at depth {jobs:>7,}: {res.rps:7.0f} submits/s for {seconds} s"
                          + (f", {res.non_2xx} non-2xx" if res.non_2xx else ""))
                    jobs = new_jobs
                full_kib = proc_status_kib(jm.pid)
                top: dict[int, int] = {}
                if target - jobs > 0 and time.monotonic() < deadline:
                    top = asyncio.run(_top_up(jm_base + SUBMIT_PATH, target - jobs))
                    jobs = http_json("GET", jm_base + "/_jobmock/health")[2]["jobs"]
                    full_kib = proc_status_kib(jm.pid)
                st, hdrs, body = http_json("POST", jm_base + SUBMIT_PATH,
                                           json.loads(BODY % (target + 1)), auth)
                after = http_json("GET", jm_base + "/_jobmock/health")[2]["jobs"]
                peak_kib = proc_status_kib(jm.pid, "VmHWM")
    ratio = median(jm_rps) / median(bare_rps)
    print(f"submits/s (median of {args.rounds}): jobmock {median(jm_rps):.0f}, bare "
          f"{median(bare_rps):.0f}; ratio jobmock/bare {ratio:.3f}")
    if top:
        print(f"top-up to the limit with httpx: {top}")
    got_code = (body.get("error") or {}).get("code") if isinstance(body, dict) else None
    exact = jobs == limit
    ok = (not exact) or (st == status429 and got_code == code429
                         and hdrs.get("retry-after") == retry429 and after == limit)
    label = f"submit #{jobs + 1:,}" if exact else f"submit after {jobs:,} jobs (not the limit)"
    print(f"{label}: {st} {got_code} Retry-After {hdrs.get('retry-after')} -> "
          f"{'OK' if ok else 'WRONG'}; jobs kept {after:,}")
    print(f"server RSS: idle {mib(idle_kib)} (baseline), with {jobs:,} jobs {mib(full_kib)} "
          f"(ratio {full_kib / idle_kib:.2f}, {(full_kib - idle_kib) * 1024 / max(jobs, 1):.0f}"
          f" B/job incl. the 10,000-entry journal), peak {mib(peak_kib)}")
    return {"bare_rps": bare_rps, "jobmock_rps": jm_rps, "fill": chunks, "ratio": ratio, "jobs": jobs,
            "idle_kib": idle_kib, "full_kib": full_kib, "next_status": st, "ok": ok}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=None,
                        help="submits (default: cloro's queue limit, 100000)")
    parser.add_argument("--http", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--connections", type=int, default=50, help="wrk -c")
    parser.add_argument("--chunk", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="wrk rounds for the HTTP ratio")
    parser.add_argument("--http-time-limit", type=float, default=600,
                        help="stop filling over HTTP after this many seconds")
    parser.add_argument("--tracemalloc", type=int, default=0, metavar="N",
                        help="also run N submits under tracemalloc")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--child", choices=["dict", "mock"], help=argparse.SUPPRESS)
    parser.add_argument("--child-trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        count = args.count if args.count is not None else queue_limit()
        result = (child_dict(count) if args.child == "dict"
                  else child_mock(count, args.child_trace))
        print(json.dumps(result))
        return
    if args.count is None:
        args.count = queue_limit()
    if not 1 <= args.count <= queue_limit():
        parser.error(f"--count must be in 1..{queue_limit()}")
    results: dict[str, Any] = {"in_process": in_process(args.count, args.tracemalloc)}
    if args.http:
        results["http"] = over_http(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    ok = results["in_process"]["ok"] and results.get("http", {"ok": True})["ok"]
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
