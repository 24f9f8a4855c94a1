"""Where a poll's time goes: py-spy on ``jobmock serve`` under wrk, and cProfile in-process.

``--mode pyspy`` (end to end): starts ``jobmock serve croma --clock virtual`` as
installed (``--server`` to pick one), submits one job (it stays queued: the virtual
clock never moves), runs ``wrk`` polling ``GET /jobs/{id}``, and meanwhile samples the
server with ``py-spy record`` (``pip install py-spy``; it needs ptrace rights over the
server, e.g. root or ``kernel.yama.ptrace_scope=0``). It writes the collapsed stacks
(``poll-<server>.pyspy.txt.gz``: one line per distinct stack, ``frame;frame;... count``;
``zcat`` it into flamegraph.pl or speedscope)
and a summary: the server's CPU per request, and the functions with the most samples,
self and inclusive (the function or anything it calls), as a share of the samples and
in µs of CPU per request.

``--mode cprofile`` (jobmock's own work, no HTTP server): builds the ASGI app of
``jobmock.create_app(Mock(croma, VirtualClock()))`` and calls it directly with a
``GET /jobs/{id}`` scope ``--requests`` times (then submits the same number of jobs),
first timed without a profiler (µs per call), then under cProfile. It writes the
``.prof`` files and a summary of the top functions by own and cumulative time.

    python bench/profile_poll.py [--mode pyspy|cprofile|both] [--duration 20]
                                 [--server granian|uvicorn] [--requests 20000]
                                 [--out bench/profiles]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gzip
import io
import json
import pstats
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    API,
    AUTH,
    BENCH_DIR,
    CREDENTIAL,
    SUBMIT_BODY,
    SUBMIT_PATH,
    WrkResult,
    cpu_seconds,
    start_jobmock,
    submit,
)

TOP = 30


# -- py-spy ------------------------------------------------------------------------------

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def frame_key(frame: str) -> str:
    """``func (package/file.py:123)`` -> ``func (package/file.py)``: one key per function.

    py-spy already shortens paths to the package (``jobmock/asgi.py``).
    """
    m = _FRAME.match(frame)
    if m is None:
        return frame
    return f"{m.group('func')} ({m.group('file')})"


def is_jobmock(key: str) -> bool:
    """A frame of jobmock's request path (not the ``serve`` command around the loop)."""
    return "(jobmock/" in key and not key.endswith(("(jobmock/cli.py)",
                                                    "(jobmock/serving.py)"))


def summarize_collapsed(text: str, per_request_us: float | None) -> str:
    """Self and inclusive sample shares per function of py-spy's collapsed stacks."""
    self_c: Counter[str] = Counter()
    incl_c: Counter[str] = Counter()
    owner_c: Counter[str] = Counter()  # the deepest jobmock frame of each stack
    total = 0
    jobmock_incl = 0
    for line in text.splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = [frame_key(f) for f in stack.split(";")]
        # the first entry is the thread ("process 123:\"python ...\"" / "thread (0x..)")
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        self_c[frames[-1]] += count
        for f in set(frames):
            incl_c[f] += count
        mine = [f for f in frames if is_jobmock(f)]
        if mine:
            jobmock_incl += count
        owner_c[mine[-1] if mine else "(no jobmock frame: event loop, server's Python)"] += count
    if total == 0:
        return "no samples\n"

    def row(name: str, n: int) -> str:
        share = n / total
        us = f"{share * per_request_us:8.1f} µs" if per_request_us else ""
        return f"  {share * 100:5.1f}%  {us}  {name}"

    out = [f"{total} samples (Python threads, idle excluded)"]
    out.append(f"samples with a jobmock frame on the stack: {jobmock_incl / total * 100:.1f}%")
    out.append("\ntop functions by own time (self):")
    out += [row(k, v) for k, v in self_c.most_common(TOP)]
    out.append("\ntop functions by inclusive time (itself and what it calls):")
    out += [row(k, v) for k, v in incl_c.most_common(TOP)]
    out.append("\njobmock functions by inclusive time:")
    out += [row(k, v) for k, v in incl_c.most_common() if is_jobmock(k)][:TOP]
    out.append("\nby the innermost jobmock function on the stack (its own time plus the "
               "stdlib and library code it calls directly: dataclass __init__, json, "
               "jsonschema, ...):")
    out += [row(k, v) for k, v in owner_c.most_common(TOP)]
    return "\n".join(out) + "\n"


def pyspy(args: argparse.Namespace) -> str:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise SystemExit("py-spy not found: pip install py-spy")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get update && apt-get install -y wrk")
    label = args.server or "default"
    raw = args.out / f"poll-{label}.pyspy.txt"
    srv, base = start_jobmock(["--server", args.server] if args.server else [], "jobmock-profile")
    try:
        url = f"{base}/jobs/{json.loads(submit(base)['body'])['id']}"
        wrk_s = int(args.duration) + 4
        wrk = subprocess.Popen(["wrk", "-t1", f"-c{args.connections}", f"-d{wrk_s}s", "-H",
                                f"Authorization: {AUTH['Authorization']}", url],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            time.sleep(2)  # past wrk's connection setup
            # The event loop, and so every line of jobmock, runs on the main thread.
            cpu0, main0, t0 = cpu_seconds(srv.pid), cpu_seconds(srv.pid, srv.pid), time.monotonic()
            done = subprocess.run([spy, "record", "--pid", str(srv.pid), "--duration",
                                   str(int(args.duration)), "--rate", str(args.rate),
                                   "--format", "raw", "--output", str(raw)],
                                  capture_output=True, text=True, timeout=args.duration + 120,
                                  check=False)
            cpu1, main1, t1 = cpu_seconds(srv.pid), cpu_seconds(srv.pid, srv.pid), time.monotonic()
            out, _ = wrk.communicate(timeout=wrk_s + 60)
        finally:
            if wrk.poll() is None:
                wrk.kill()
                wrk.wait()
        if done.returncode != 0:
            raise RuntimeError(f"py-spy failed ({done.returncode}): {done.stderr[-2000:]}")
    finally:
        srv.stop()
    result = WrkResult(out)
    rate = result.requests / wrk_s  # requests per second over wrk's whole run
    served = rate * (t1 - t0)
    cpu_per_req = (cpu1 - cpu0) / served * 1e6 if served else float("nan")
    main_per_req = (main1 - main0) / served * 1e6 if served else float("nan")
    head = [f"jobmock serve {API} --clock virtual (server: {label}); wrk -t1 "
            f"-c{args.connections}, GET one queued job's status; py-spy {args.rate} Hz for "
            f"{args.duration:g} s",
            f"throughput {result.rps:,.0f} req/s (non-2xx {result.non_2xx}; slowed by py-spy's "
            f"pauses); server CPU {(cpu1 - cpu0) / (t1 - t0) * 100:.0f}% of a core",
            f"CPU per request: {cpu_per_req:.0f} µs in all, of which {main_per_req:.0f} µs on "
            f"the main thread (the event loop: jobmock, asyncio, granian's Python side and "
            f"what the Rust core does holding the GIL on that thread) and "
            f"{cpu_per_req - main_per_req:.0f} µs on the server's other threads",
            "µs columns: a function's share of the main thread's samples times the main thread's "
            "CPU per request. A Rust call (granian's send) counts as its Python caller's own "
            "time.", ""]
    summary = "\n".join(head) + summarize_collapsed(raw.read_text(), main_per_req)
    (args.out / f"poll-{label}.pyspy-summary.txt").write_text(summary)
    with raw.open("rb") as plain, gzip.open(f"{raw}.gz", "wb") as packed:
        shutil.copyfileobj(plain, packed)  # a few hundred KB of text: keep it packed
    raw.unlink()
    return summary


# -- cProfile ----------------------------------------------------------------------------

Message = dict[str, Any]


async def _drive(app: Callable[..., Awaitable[None]], scope: dict[str, Any], body: bytes,
                 n: int) -> tuple[int, bytes]:
    """Call ``app`` ``n`` times with ``scope``: the last answer's status and body."""
    status, answer = 0, b""

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status, answer
        if message["type"] == "http.response.start":
            status, answer = message["status"], b""
        elif message["type"] == "http.response.body":
            answer += message.get("body", b"")

    for _ in range(n):
        await app(scope, receive, send)
    return status, answer


def _scope(method: str, path: str, headers: dict[str, str]) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8080),
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}


def cprofile(args: argparse.Namespace) -> str:
    from jobmock import Mock, VirtualClock, create_app, resolve_spec

    mock = Mock(resolve_spec(API), clock=VirtualClock(), seed=0, journal_size=10_000)
    app = create_app(mock)
    auth = {"host": "127.0.0.1:8080", "authorization": f"Bearer {CREDENTIAL}"}
    body = json.dumps(SUBMIT_BODY).encode()
    post = _scope("POST", SUBMIT_PATH, {**auth, "content-type": "application/json",
                                        "content-length": str(len(body)), "prefer": "wait=0"})
    loop = asyncio.new_event_loop()
    try:
        status, answer = loop.run_until_complete(_drive(app, post, body, 1))
        if status != 202:
            raise RuntimeError(f"submit answered {status}: {answer[:500]!r}")
        get = _scope("GET", f"/jobs/{json.loads(answer)['id']}", auth)
        status, answer = loop.run_until_complete(_drive(app, get, b"", 1))
        if status != 200:
            raise RuntimeError(f"poll answered {status}: {answer[:500]!r}")
        lines = [f"jobmock.create_app(Mock({API}, VirtualClock())) called directly (no HTTP "
                 f"server), {args.requests} calls each", ""]
        for name, scope, payload in (("poll", get, b""), ("submit", post, body)):
            t0 = time.process_time()
            loop.run_until_complete(_drive(app, scope, payload, args.requests))
            us = (time.process_time() - t0) / args.requests * 1e6
            prof = cProfile.Profile()
            prof.enable()
            loop.run_until_complete(_drive(app, scope, payload, args.requests))
            prof.disable()
            path = args.out / f"{name}-inprocess.prof"
            prof.dump_stats(str(path))
            buf = io.StringIO()
            stats = pstats.Stats(prof, stream=buf)
            stats.strip_dirs()
            total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
            lines.append(f"== {name}: {us:.1f} µs of CPU per call without the profiler "
                         f"({path.name}) ==")
            lines.append(f"profiled: {total / args.requests * 1e6:.1f} µs of own time per call "
                         f"(the profiler inflates small calls)")
            buf.truncate(0)
            stats.sort_stats("tottime").print_stats(TOP)
            lines.append(_trim(buf.getvalue(), "by own time (tottime)"))
            buf.seek(0)
            buf.truncate(0)
            stats.sort_stats("cumulative").print_stats(TOP)
            lines.append(_trim(buf.getvalue(), "by cumulative time"))
    finally:
        loop.close()
    summary = "\n".join(lines) + "\n"
    (args.out / "inprocess-cprofile-summary.txt").write_text(summary)
    return summary


def _trim(text: str, title: str) -> str:
    keep = text[text.find("   ncalls"):] if "   ncalls" in text else text
    return f"-- top {TOP} {title} --\n{keep.rstrip()}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["pyspy", "cprofile", "both"], default="both")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds py-spy samples")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--connections", type=int, default=50, help="wrk -c")
    parser.add_argument("--server", choices=["granian", "uvicorn"], default=None,
                        help="jobmock serve --server (default: what serve picks)")
    parser.add_argument("--requests", type=int, default=20_000, help="cProfile: calls")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "profiles")
    args = parser.parse_args()
    if not 0 < args.duration <= 600 or args.requests < 1:
        parser.error("--duration in (0, 600], --requests >= 1")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.mode in ("pyspy", "both"):
        print(pyspy(args))
    if args.mode in ("cprofile", "both"):
        print(cprofile(args))


if __name__ == "__main__":
    main()
