"""The Redis store and replicas: poll throughput and inline-wait wakeups, as ratios in one run.

Starts, each on 127.0.0.1 and a free port (``jobmock.replicas``, ``jobmock.testing``):

- ``redis-server`` (no persistence), the real binary;
- M: ``jobmock serve croma --clock virtual`` with the in-memory store (the baseline);
- A and B: ``jobmock serve croma --clock virtual --store redis://...``, one mock on Redis;
- P1: a ``RoundRobinProxy`` in front of A alone, P2: one in front of A and B.

It submits one job to M and one to A (``Prefer: wait=0``); the virtual clock does not
move during the polls, so each job stays queued and every poll renders the same envelope.
Then, for ``--rounds`` rounds (the order reverses every other round), ``wrk`` polls
``GET /jobs/{id}``:

1. on M and on A: **Redis / memory**, one replica each, no proxy;
2. through P1 (A alone) and through P2 (A and B in turn): **two replicas / one**, both on
   Redis and both behind the same kind of proxy, so the proxy's cost is in both. For
   context, in the same rounds: the proxy in front of M (PM: what the proxy itself can
   carry), and A and B polled directly at once (two wrk, half the connections each)
   against A alone.

3. **Inline-wait wakeups across replicas**, also in alternating rounds: N submits with
   ``Prefer: wait=55`` are held on A (the virtual clock does not move, so none can end),
   then the clock is advanced 40 s on B, which ends every croma job (at most 22 s each).
   For each held request: the time from the advance call returning to its answer
   arriving (and from the advance call being sent). The baseline holds N on M and
   advances M itself. Every replica runs with ``--webhooks off``: with webhooks on, a
   clock move is played due entry by due entry (each a turn of its own), so jobs would
   end, and their answers arrive, while the advance call is still running; off, the move
   is one turn, and the call returns once every job has ended and the change is saved.

It reports each round's figures, the median over rounds of each ratio and percentile, and
the RSS of every replica and of redis-server after the run (VmRSS, and the peak VmHWM).
Without ``redis-server`` or ``wrk`` it says what is missing and exits 0.

    python bench/redis_store.py [--duration 8] [--rounds 3] [--connections 50]
                                [--waiters 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

try:
    import sniffio  # noqa: F401
except ImportError:
    # As in inline_wait.py: without sniffio, httpcore retries the import (a sys.path
    # search) on every lock; a None entry makes it fail at once.
    sys.modules["sniffio"] = None  # type: ignore[assignment]

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import WrkResult, median, mib, percentile, proc_status_kib, run_wrk, tree_rss_kib

from jobmock.replicas import RedisServer, RoundRobinProxy
from jobmock.testing import ServeProcess

API = "croma"
CREDENTIAL = "sk_test_croma_org_a"
AUTH = {"Authorization": f"Bearer {CREDENTIAL}"}
SUBMIT_PATH = "/v1/lookups/policia-nacional"
SUBMIT_BODY = {"document_type": "CC", "document_number": "1020304050"}
ADVANCE = 40  # clock seconds: more than any croma job takes (22 s), less than the wait (55 s)
PER_CLIENT = 50  # held requests per httpx client
GUARD = 120.0  # seconds: a bound against a hang, not a measurement


def missing_tools() -> str | None:
    """None when redis-server and wrk are on PATH, else what is missing and how to get it."""
    missing = [(tool, how) for tool, how in (
        ("redis-server", "apt-get install redis-server"), ("wrk", "apt-get install wrk"))
        if shutil.which(tool) is None]
    if not missing:
        return None
    return "; ".join(f"{tool} is not installed ({how})" for tool, how in missing)


def serve(*args: str) -> ServeProcess:
    """``jobmock serve croma --clock virtual ARGS`` (127.0.0.1, a free port)."""
    return ServeProcess(API, "--clock", "virtual", "--host", "127.0.0.1", *args)


def submit_one(http: httpx.Client, base: str) -> str:
    """Submit one job that stays queued (``Prefer: wait=0``); its poll URL."""
    r = http.post(base + SUBMIT_PATH, json=SUBMIT_BODY, headers={**AUTH, "Prefer": "wait=0"})
    if r.status_code != 202:
        raise RuntimeError(f"submit on {base} answered {r.status_code}: {r.text}")
    return f"{base}/jobs/{r.json()['id']}"


def control(http: httpx.Client, method: str, url: str, body: Any = None) -> Any:
    r = http.request(method, url, json=body)
    if r.status_code != 200:
        raise RuntimeError(f"{method} {url} answered {r.status_code}: {r.text}")
    return r.json()


def check(result: WrkResult, who: str) -> None:
    if result.non_2xx or result.socket_errors:
        print(f"  WARNING {who}: {result.non_2xx} non-2xx answers, "
              f"{result.socket_errors} socket errors")


# -- 3. inline waits held on one replica, ended by a clock move on another ---------------

async def held_wakeups(hold: str, mover: str, jobs: str, n: int) -> dict[str, Any]:
    """Hold n ``Prefer: wait=55`` submits on ``hold``, advance the clock on ``mover``; the
    delays (ms) from the advance call returning (and from it being sent) to each answer."""
    headers = {**AUTH, "Prefer": "wait=55"}
    arrivals: list[float] = []
    statuses: list[int] = []
    async with contextlib.AsyncExitStack() as stack:
        # As in inline_wait.py: one pool of PER_CLIENT connections per client, since
        # httpcore rescans a pool's connections on every event (encode/httpx#3215).
        limits = httpx.Limits(max_connections=PER_CLIENT, max_keepalive_connections=PER_CLIENT)
        pools = [await stack.enter_async_context(httpx.AsyncClient(timeout=GUARD, limits=limits))
                 for _ in range(-(-n // PER_CLIENT))]
        client = await stack.enter_async_context(httpx.AsyncClient(timeout=GUARD))

        async def one(i: int) -> None:
            body = {"document_type": "CC", "document_number": f"{1_000_000_000 + i}"}
            r = await pools[i // PER_CLIENT].post(hold + SUBMIT_PATH, json=body, headers=headers)
            arrivals.append(time.perf_counter())
            statuses.append(r.status_code)

        tasks = [asyncio.create_task(one(i)) for i in range(n)]
        try:
            deadline = time.monotonic() + GUARD
            held = 0
            while time.monotonic() < deadline:  # every job submitted (seen through `jobs`)
                held = len((await client.get(jobs + "/_jobmock/jobs?limit=1000")).json()["jobs"])
                if held >= n or any(t.done() for t in tasks):
                    break
                await asyncio.sleep(0.05)
            early = sum(t.done() for t in tasks)
            if held < n or early:
                raise RuntimeError(f"{held}/{n} jobs submitted, {early} answered before the "
                                   f"clock moved")
            sent = time.perf_counter()
            r = await client.post(mover + "/_jobmock/clock/advance", json={"seconds": ADVANCE})
            returned = time.perf_counter()
            if r.status_code != 200:
                raise RuntimeError(f"advance on {mover} answered {r.status_code}: {r.text}")
            await asyncio.wait_for(asyncio.gather(*tasks), GUARD)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    after_return = [(t - returned) * 1000 for t in arrivals]
    after_send = [(t - sent) * 1000 for t in arrivals]
    return {"answers": len(arrivals), "unfinished": statuses.count(202),
            "advance_ms": (returned - sent) * 1000,
            "statuses": dict(sorted(Counter(statuses).items())),
            "before_advance_returned": sum(d < 0 for d in after_return),
            "p50": percentile(after_return, 50), "p99": percentile(after_return, 99),
            "max": max(after_return),
            "p50_from_send": percentile(after_send, 50), "p99_from_send": percentile(after_send, 99)}


def wakeup_line(who: str, got: dict[str, Any]) -> str:
    line = (f"{who}: {got['answers']} answers {got['statuses']}, advance call "
            f"{got['advance_ms']:.0f} ms; after it returned p50 {got['p50']:.1f} ms, p99 "
            f"{got['p99']:.1f} ms, max {got['max']:.1f} ms; after it was sent p50 "
            f"{got['p50_from_send']:.1f}, p99 {got['p99_from_send']:.1f} ms")
    if got["unfinished"]:
        line += f"; WARNING: {got['unfinished']} answered 202 (not finished within the wait)"
    if got["before_advance_returned"]:
        line += f"; {got['before_advance_returned']} arrived before the advance call returned"
    return line


# -- the run -------------------------------------------------------------------------------

@contextlib.contextmanager
def replicas(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """redis-server, M (memory), A and B (Redis), P1 (A), P2 (A, B) and PM (M); all stopped
    on exit. Webhooks off: a clock move is then one turn (see the module docstring)."""
    journal = ("--journal-size", str(args.journal_size), "--webhooks", "off")
    with ExitStack() as stack:
        redis = stack.enter_context(RedisServer())
        m = stack.enter_context(serve(*journal))
        a = stack.enter_context(serve(*journal, "--store", redis.url))
        b = stack.enter_context(serve(*journal, "--store", redis.url))
        p1 = stack.enter_context(RoundRobinProxy([a.url]))
        p2 = stack.enter_context(RoundRobinProxy([a.url, b.url]))
        pm = stack.enter_context(RoundRobinProxy([m.url]))
        yield {"redis": redis, "M": m, "A": a, "B": b, "P1": p1, "P2": p2, "PM": pm}


def rss_report(parts: dict[str, Any]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for name in ("M", "A", "B", "redis"):
        proc = parts[name].proc
        if proc is None:
            continue
        out[name] = {"rss_kib": tree_rss_kib(proc.pid), "peak_kib": proc_status_kib(proc.pid,
                                                                                  "VmHWM")}
    return out


def wrk_pair(urls: tuple[str, str], args: argparse.Namespace) -> tuple[WrkResult, WrkResult]:
    """Two wrk runs at once (half the connections each): A and B polled directly."""
    half = max(1, args.connections // 2)
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = [pool.submit(run_wrk, u, AUTH, args.threads, half, args.duration) for u in urls]
        return runs[0].result(), runs[1].result()


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with replicas(args) as parts, httpx.Client(timeout=30) as http:
        m, a, b, p1, p2, pm = (parts[k] for k in ("M", "A", "B", "P1", "P2", "PM"))
        health = control(http, "GET", a.url + "/_jobmock/health")
        if health.get("store", {}).get("kind") != "redis":
            raise RuntimeError(f"replica A is not on the Redis store: {health}")
        control(http, "POST", a.url + "/_jobmock/reset", {})
        m_url = submit_one(http, m.url)
        a_url = submit_one(http, a.url)
        path = a_url[len(a.url):]
        urls = {"memory": m_url, "redis": a_url, "proxy-1": p1.url + path,
                "proxy-2": p2.url + path, "proxy-memory": pm.url + m_url[len(m.url):],
                "direct-2": ""}
        seen = {who: http.get(u, headers=AUTH) for who, u in urls.items() if u}
        seen["B"] = http.get(b.url + path, headers=AUTH)  # the job submitted on A, polled on B
        for who, r in seen.items():
            if r.status_code != 200:
                raise RuntimeError(f"poll via {who} answered {r.status_code}: {r.text}")
        mine, theirs = ({k: v for k, v in seen[w].json().items() if k != "status_url"}
                        for w in ("B", "redis"))  # status_url names the replica's own port
        if mine != theirs:
            raise RuntimeError("replica B answers A's job differently:\n"
                               f"{seen['B'].text}\n{seen['redis'].text}")
        print(f"poll: GET /jobs/{{id}} of a queued croma job, {len(seen['redis'].content)} body "
              f"bytes; wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s; "
              f"{args.rounds} rounds, the order reversed every other round")
        rps: dict[str, list[float]] = {who: [] for who in urls}
        store_ratio: list[float] = []
        scale_ratio: list[float] = []
        direct_ratio: list[float] = []
        for rnd in range(1, args.rounds + 1):
            order = list(urls)
            if rnd % 2 == 0:
                order.reverse()
            got: dict[str, float] = {}
            for who in order:
                if who == "direct-2":
                    pair = wrk_pair((a_url, b.url + path), args)
                    for side, result in zip("AB", pair, strict=True):
                        check(result, f"direct {side}")
                    got[who] = pair[0].rps + pair[1].rps
                else:
                    result = run_wrk(urls[who], AUTH, args.threads, args.connections,
                                     args.duration)
                    check(result, who)
                    got[who] = result.rps
                rps[who].append(got[who])
            store_ratio.append(got["redis"] / got["memory"])
            scale_ratio.append(got["proxy-2"] / got["proxy-1"])
            direct_ratio.append(got["direct-2"] / got["redis"])
            print(f"round {rnd}: memory {got['memory']:6.0f}, redis {got['redis']:6.0f} req/s "
                  f"(ratio {store_ratio[-1]:.3f}); proxy to A {got['proxy-1']:6.0f}, to A+B "
                  f"{got['proxy-2']:6.0f} req/s (ratio {scale_ratio[-1]:.3f}); proxy to memory "
                  f"{got['proxy-memory']:6.0f}; A and B polled directly at once "
                  f"{got['direct-2']:6.0f} req/s (/ A alone {direct_ratio[-1]:.3f})")
        print(f"requests served by the two-replica proxy: A {p2.served[0]}, B {p2.served[1]}")

        print(f"\ninline waits: {args.waiters} submits with Prefer: wait=55 held, then the "
              f"clock advanced {ADVANCE} s; {args.rounds} rounds, alternating")
        waits: dict[str, list[dict[str, Any]]] = {"redis A->B": [], "memory": []}
        for rnd in range(1, args.rounds + 1):
            order = ["redis A->B", "memory"] if rnd % 2 else ["memory", "redis A->B"]
            for who in order:
                hold, mover = (a.url, b.url) if who == "redis A->B" else (m.url, m.url)
                control(http, "POST", mover + "/_jobmock/reset", {})
                got_w = asyncio.run(held_wakeups(hold, mover, mover, args.waiters))
                waits[who].append(got_w)
                print(f"round {rnd} " + wakeup_line(who, got_w))
        rss = rss_report(parts)
    figures = {
        "rps": rps, "redis_over_memory": store_ratio, "two_over_one": scale_ratio,
        "direct_two_over_one": direct_ratio,
        "redis_over_memory_median": median(store_ratio), "two_over_one_median": median(scale_ratio),
        "direct_two_over_one_median": median(direct_ratio), "waits": waits, "rss": rss,
    }
    print_table(figures, args)
    return figures


def print_table(f: dict[str, Any], args: argparse.Namespace) -> None:
    rps = f["rps"]

    def rounds(values: list[float]) -> str:
        return " / ".join(f"{r:.3f}" for r in values)

    rows = [
        ("poll, 1 replica: Redis / memory",
         f"{median(rps['redis']):,.0f} / {median(rps['memory']):,.0f} req/s",
         f"{f['redis_over_memory_median']:.3f}", rounds(f["redis_over_memory"])),
        ("poll via proxy, Redis: 2 replicas / 1",
         f"{median(rps['proxy-2']):,.0f} / {median(rps['proxy-1']):,.0f} req/s",
         f"{f['two_over_one_median']:.3f}", rounds(f["two_over_one"])),
        ("  context: proxy to the memory replica", f"{median(rps['proxy-memory']):,.0f} req/s",
         "", ""),
        ("  context: Redis, A+B polled directly / A",
         f"{median(rps['direct-2']):,.0f} / {median(rps['redis']):,.0f} req/s",
         f"{f['direct_two_over_one_median']:.3f}", rounds(f["direct_two_over_one"])),
    ]
    red, mem = f["waits"]["redis A->B"], f["waits"]["memory"]
    for q in ("p50", "p99"):
        r_med, m_med = median([w[q] for w in red]), median([w[q] for w in mem])
        rows.append((f"inline-wait wakeup {q} (N={args.waiters}): Redis A->B / memory",
                     f"{r_med:.1f} / {m_med:.1f} ms",
                     f"{r_med / m_med:.2f}" if m_med > 0 else "n/a",
                     " / ".join(f"{w[q]:.1f}:{v[q]:.1f}" for w, v in zip(red, mem, strict=True))))
    width = max(len(r[0]) for r in rows)
    print(f"\n{'figure (median of ' + str(args.rounds) + ' rounds)':<{width}}  "
          f"{'measured':>24}  {'ratio':>6}  rounds")
    for name, value, ratio, per_round in rows:
        print(f"{name:<{width}}  {value:>24}  {ratio:>6}  {per_round}")
    print("RSS after the run (peak): " + ", ".join(
        f"{name} {mib(v['rss_kib'])} ({mib(v['peak_kib'])})" for name, v in f["rss"].items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="wrk -t")
    parser.add_argument("--connections", type=int, default=50, help="wrk -c")
    parser.add_argument("--waiters", type=int, default=200, help="inline waits held per round")
    parser.add_argument("--journal-size", type=int, default=10_000,
                        help="jobmock serve --journal-size")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if not (1 <= args.rounds <= 9 and 0 < args.duration <= 60 and 1 <= args.waiters <= 1000):
        # 1000: the largest page of GET /_jobmock/jobs, which counts the held submits
        parser.error("--rounds in 1..9, --duration in (0, 60], --waiters in 1..1000")
    why = missing_tools()
    if why is not None:
        print(f"SKIPPED: {why}; nothing measured")
        sys.exit(0)
    started = time.monotonic()
    figures = measure(args)
    print(f"run took {time.monotonic() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
