"""Inline waits: N concurrent ``Prefer: wait=55`` submits held open by one jobmock.

Starts one ``jobmock serve croma --clock real [--speed S]`` and sends N POSTs at
once (httpx.AsyncClient, one connection each), every one asking to wait inline up
to 55 s. Croma's jobs take 0.2-2 s queued plus 1-20 s running (clock seconds), so
with ``--speed 1`` every answer is a 200 within about 22 s of its submit.

Reports:
- the server's peak RSS (``/proc/PID/status`` VmHWM) against its idle RSS measured
  in the same run after a warm-up request (ratio, and KiB per held request);
- for each job, the delay between its completion (``completed_at`` from
  ``GET /_jobmock/jobs``, converted from clock to wall time) and the moment its
  answer arrived at the client: p50/p90/p99/max. This delay includes the
  ticker's lateness, rendering, the network stack and the client's own event loop
  (one Python process parsing N answers), so it is an upper bound on the mock's
  share.

    python bench/inline_wait.py [--requests 10000] [--speed 1] [--wait 55]

With ``--speed S`` the server's clock runs S times the wall clock: a job's clock
times are mapped to wall times through one ``GET /_jobmock/clock`` sample, and the
run is S times shorter; the 55 s wait is in clock seconds too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import ssl
import sys
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

try:
    import sniffio  # noqa: F401
except ImportError:
    # httpcore tries `import sniffio` on every lock and connection; without it each try
    # searches sys.path again, which dominates the client's connect phase. A None entry
    # makes the import fail at once (httpcore then assumes asyncio, as it would anyway).
    sys.modules["sniffio"] = None  # type: ignore[assignment]

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    HOST,
    Server,
    console_script,
    free_port,
    http_json,
    mib,
    percentile,
    proc_status_kib,
    raise_nofile,
)

API = "croma"
CREDENTIAL = "sk_test_croma_org_a"
SUBMIT_PATH = "/v1/lookups/policia-nacional"


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class RssSampler(threading.Thread):
    """Samples VmRSS of one process every ``interval`` seconds until stopped."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.samples.append((time.time(), proc_status_kib(self.pid)))
            except (OSError, RuntimeError):
                return
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)


def clock_offset(base: str, speed: float) -> tuple[float, float]:
    """(wall time, clock time) of one control-plane sample, the one with the least RTT."""
    best: tuple[float, float, float] | None = None
    for _ in range(7):
        t0 = time.time()
        _, _, body = http_json("GET", base + "/_jobmock/clock")
        t1 = time.time()
        if best is None or t1 - t0 < best[0]:
            best = (t1 - t0, (t0 + t1) / 2, float(body["epoch"]))
    assert best is not None
    if abs(best[2] - best[1]) > 5 and speed == 1:
        print(f"WARNING: the server clock is {best[2] - best[1]:+.3f} s off the wall clock")
    return best[1], best[2]


async def _run_all(one: Callable[[int], Awaitable[None]], n: int, timeout: float) -> None:
    """Run ``one(0) .. one(n - 1)`` at once, for at most ``timeout + 60`` s."""
    tasks = [asyncio.ensure_future(one(i)) for i in range(n)]
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), timeout + 60)
    except TimeoutError:
        print("WARNING: the run hit its time limit; unfinished requests were cancelled")


async def submit_all(base: str, n: int, wait: int, timeout: float, per_client: int,
                     ) -> tuple[list[dict[str, Any]], float, float]:
    """Send n submits at once; each answer's status, job id and arrival time.

    The requests are spread over ``ceil(n / per_client)`` AsyncClients (one pool
    each): httpcore's pool re-scans its connections for every queued request on
    every event (encode/httpx#3215), so one pool of 10,000 connections would make
    the client, not the server, the bottleneck.
    """
    headers = {"Authorization": f"Bearer {CREDENTIAL}", "Prefer": f"wait={wait}"}
    limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
    http_timeout = httpx.Timeout(timeout, connect=min(timeout, 120.0))
    ssl_context = ssl.create_default_context()  # one, shared: plain http never uses it
    out: list[dict[str, Any]] = []

    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(
                base_url=base, timeout=http_timeout,
                transport=httpx.AsyncHTTPTransport(verify=ssl_context, limits=limits)))
            for _ in range(-(-n // per_client))
        ]

        async def one(i: int) -> None:
            body = {"document_type": "CC", "document_number": f"{1000000000 + i}"}
            try:
                r = await clients[i // per_client].post(SUBMIT_PATH, json=body,
                                                        headers=headers)
                arrived = time.time()
                out.append({"status": r.status_code, "job_id": r.headers.get("x-job-id"),
                            "arrived": arrived})
            except httpx.HTTPError as exc:
                out.append({"status": None, "error": type(exc).__name__,
                            "arrived": time.time()})

        started = time.time()
        await _run_all(one, n, timeout)
        return out, started, time.time()


class _OneExchange(asyncio.Protocol):
    """One HTTP/1.1 request on its own connection; the answer's status, headers, arrival."""

    def __init__(self, request: bytes, done: asyncio.Future[tuple[int, dict[str, str], float]],
                 ) -> None:
        self.request = request
        self.done = done
        self.buffer = bytearray()
        self.head: tuple[int, dict[str, str], int] | None = None  # status, headers, body start

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.head is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip()
                       for k, _, v in (line.partition(":") for line in lines[1:])}
            self.head = (int(lines[0].split()[1]), headers, end + 4)
        status, headers, start = self.head
        if len(self.buffer) - start >= int(headers.get("content-length", "0")):
            if not self.done.done():
                self.done.set_result((status, headers, time.time()))
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(exc or ConnectionResetError("closed before the answer"))


async def submit_all_raw(base: str, n: int, wait: int, timeout: float,
                         ) -> tuple[list[dict[str, Any]], float, float]:
    """Send n submits at once over n plain asyncio connections (one HTTP/1.1 request each).

    The default client: the measured delay is the server's and the network stack's, not a
    client library's. httpx spent about 1 ms of the client's one event loop per answer,
    so with thousands of answers due at once the client itself made them late.
    """
    host, _, port = urllib.parse.urlsplit(base).netloc.partition(":")
    loop = asyncio.get_running_loop()
    out: list[dict[str, Any]] = []

    async def one(i: int) -> None:
        body = json.dumps({"document_type": "CC",
                           "document_number": f"{1000000000 + i}"}).encode()
        request = (f"POST {SUBMIT_PATH} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                   f"Authorization: Bearer {CREDENTIAL}\r\nPrefer: wait={wait}\r\n"
                   f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                   f"Connection: close\r\n\r\n").encode() + body
        done: asyncio.Future[tuple[int, dict[str, str], float]] = loop.create_future()
        try:
            transport, _ = await loop.create_connection(
                lambda: _OneExchange(request, done), host, int(port))
            try:
                status, headers, arrived = await done
            finally:
                transport.close()
            out.append({"status": status, "job_id": headers.get("x-job-id"),
                        "arrived": arrived})
        except OSError as exc:
            out.append({"status": None, "error": type(exc).__name__, "arrived": time.time()})

    started = time.time()
    await _run_all(one, n, timeout)
    return out, started, time.time()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", "-n", type=int, default=10_000)
    parser.add_argument("--wait", type=int, default=55, help="Prefer: wait=N (clock seconds)")
    parser.add_argument("--speed", type=float, default=1.0, help="jobmock serve --speed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-client", type=int, default=50,
                        help="connections per httpx.AsyncClient (the requests are sharded)")
    parser.add_argument("--server", choices=["granian", "uvicorn"], default=None,
                        help="jobmock serve --server (default: what serve picks, granian)")
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw",
                        help="raw asyncio connections (default) or httpx.AsyncClient pools")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if not 1 <= args.requests <= 15_000:
        parser.error("--requests must be in 1..15000 (sockets on both ends)")
    if args.speed <= 0 or args.per_client < 1:
        parser.error("--speed must be positive and --per-client at least 1")
    nofile = raise_nofile(2 * args.requests + 1024)
    if nofile < args.requests + 256:
        raise SystemExit(f"open-files limit {nofile} is too low for {args.requests} sockets")

    port = free_port()
    base = f"http://{HOST}:{port}"
    argv = [console_script("jobmock"), "serve", API, "--clock", "real", "--speed",
            str(args.speed), "--seed", str(args.seed), "--host", HOST, "--port", str(port),
            "--journal-size", str(args.requests + 100)] + (
                ["--server", args.server] if args.server else [])
    with Server(argv, base + "/_jobmock/health", "inline-wait") as srv:
        # Warm up the submit path (lazy imports, first-call caches), then read idle RSS.
        warm = http_json("POST", base + SUBMIT_PATH,
                         {"document_type": "CC", "document_number": "1020304050"},
                         {"Authorization": f"Bearer {CREDENTIAL}", "Prefer": "wait=0"})
        if warm[0] != 202:
            raise SystemExit(f"warm-up submit answered {warm[0]}: {warm[2]}")
        time.sleep(0.5)
        idle_kib = proc_status_kib(srv.pid)
        sampler = RssSampler(srv.pid)
        sampler.start()
        wall_timeout = args.wait / args.speed + 60
        # Like timeit, the client measures with its garbage collector off: with 10,000
        # connections alive, each full collection of the client's heap stopped its event
        # loop for 0.4-2.4 s (gc.callbacks), and an answer that arrived then was counted
        # late by up to that much. The server's collector is left as it is.
        gc.collect()
        gc.freeze()
        gc.disable()
        try:
            answers, started, ended = asyncio.run(
                submit_all_raw(base, args.requests, args.wait, wall_timeout)
                if args.client == "raw" else
                submit_all(base, args.requests, args.wait, wall_timeout, args.per_client))
        finally:
            gc.enable()
            gc.unfreeze()
            sampler.stop()
        peak_kib = proc_status_kib(srv.pid, "VmHWM")
        after_kib = proc_status_kib(srv.pid)
        wall0, clock0 = clock_offset(base, args.speed)
        jobs: dict[str, Any] = {}
        after = ""
        while True:  # the listing comes a page at a time; ``next`` is None on the last one
            _, _, listing = http_json("GET", base + "/_jobmock/jobs?limit=1000" + after,
                                      timeout=120)
            jobs.update((j["id"], j) for j in listing["jobs"])
            if listing.get("next") is None:
                break
            after = "&after=" + urllib.parse.quote(listing["next"], safe="")
        _, _, journal = http_json("GET", base + "/_jobmock/requests", timeout=120)

    # When the server rendered each answer (the journal records a held submit at finish).
    rendered = {e["job_id"]: e["at"] for e in journal["requests"]
                if e["job_id"] and e["method"] == "POST"}

    speed = float(args.speed)

    def to_wall(clock_time: float) -> float:
        if speed == 1.0:
            return clock_time  # RealClock is time.time() itself, in the same machine
        return wall0 + (clock_time - clock0) / speed

    statuses: dict[str, int] = {}
    delays: list[float] = []
    server_part: list[float] = []
    created: list[float] = []
    completed: list[float] = []
    for a in answers:
        key = str(a["status"]) if a["status"] is not None else a["error"]
        statuses[key] = statuses.get(key, 0) + 1
        job = jobs.get(a.get("job_id") or "")
        if job is None:
            continue
        created.append(to_wall(parse_iso(job["created_at"])))
        if a["status"] == 200 and job["completed_at"]:
            completed.append(to_wall(parse_iso(job["completed_at"])))
            delays.append(a["arrived"] - completed[-1])
            if a["job_id"] in rendered:
                server_part.append(to_wall(rendered[a["job_id"]]) - completed[-1])

    n = args.requests
    print(f"jobmock serve {API} --clock real --speed {args.speed:g}; {n} concurrent POST "
          f"{SUBMIT_PATH} with Prefer: wait={args.wait}; open-files limit {nofile}")
    print(f"answers: {dict(sorted(statuses.items()))} in {ended - started:.1f} s wall")
    if created and completed:
        print(f"timeline (s after the first request was started): first submit accepted "
              f"{min(created) - started:.1f}, last accepted {max(created) - started:.1f}, "
              f"last job completed {max(completed) - started:.1f}, last answer "
              f"{max(a['arrived'] for a in answers) - started:.1f}")
    spans = [(to_wall(parse_iso(jobs[a["job_id"]]["created_at"])), to_wall(rendered[a["job_id"]]))
             for a in answers if a.get("job_id") in jobs and a.get("job_id") in rendered]
    if spans:
        events = sorted([(t0, 1) for t0, _ in spans] + [(t1, -1) for _, t1 in spans])
        held = peak_held = 0
        for _, step in events:
            held += step
            peak_held = max(peak_held, held)
        print(f"requests held open in the server at once: at most {peak_held:,}")
    if created:
        print(f"server accepted the submits over {max(created) - min(created):.1f} s "
              f"({len(created) / max(max(created) - min(created), 1e-9):.0f} submits/s)")
    if delays:
        ms = [d * 1000 for d in delays]
        print(f"completion -> answer at client, {len(ms)} jobs: p50 {percentile(ms, 50):.1f} ms, "
              f"p90 {percentile(ms, 90):.1f} ms, p99 {percentile(ms, 99):.1f} ms, "
              f"max {max(ms):.1f} ms")
    if server_part:
        ms = [d * 1000 for d in server_part]
        print(f"  of which in the server (completion -> answer rendered, from the journal): "
              f"p50 {percentile(ms, 50):.1f} ms, p90 {percentile(ms, 90):.1f} ms, "
              f"p99 {percentile(ms, 99):.1f} ms, max {max(ms):.1f} ms")
    print(f"server RSS: idle {mib(idle_kib)} (baseline), peak {mib(peak_kib)} "
          f"(ratio {peak_kib / idle_kib:.2f}), after the run {mib(after_kib)}; "
          f"{(peak_kib - idle_kib) / n:.1f} KiB per held request")
    if args.json:
        args.json.write_text(json.dumps({
            "requests": n, "speed": args.speed, "statuses": statuses,
            "wall_s": ended - started, "idle_kib": idle_kib, "peak_kib": peak_kib,
            "after_kib": after_kib, "delays_ms": {
                q: percentile([d * 1000 for d in delays], q) for q in (50, 90, 99, 100)},
            "server_delays_ms": {
                q: percentile([d * 1000 for d in server_part], q) for q in (50, 90, 99, 100)},
            "rss_samples": sampler.samples,
        }, indent=2))
    # Every request got an HTTP answer (the job's outcome decides which: croma's jobs can
    # also end in 502 or 504), and none was refused or lost.
    ok = sum(statuses.get(k, 0) for k in ("200", "502", "504")) == n
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
