"""Helpers shared by the benchmarks: ports, server processes, RSS, wrk, statistics, and
starting the servers they compare (``jobmock serve croma`` with one queued job, the bare
app answering what jobmock answered) and reading their answers.

Every server is bound to 127.0.0.1 and every wait here is bounded in time.
"""

from __future__ import annotations

import json
import math
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "API",
    "AUTH",
    "BENCH_DIR",
    "CREDENTIAL",
    "HOP_HEADERS",
    "HOST",
    "SUBMIT_BODY",
    "SUBMIT_PATH",
    "Server",
    "WrkResult",
    "capture",
    "console_script",
    "cpu_seconds",
    "free_port",
    "http_json",
    "median",
    "mib",
    "percentile",
    "proc_status_kib",
    "raise_nofile",
    "run_wrk",
    "same_answer",
    "start_bare",
    "start_jobmock",
    "submit",
    "tree_rss_kib",
    "warn_errors",
]

HOST = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent

#: The API the throughput benchmarks serve, a credential of it, and its submit.
API = "croma"
CREDENTIAL = "sk_test_croma_org_a"
AUTH = {"Authorization": f"Bearer {CREDENTIAL}"}
SUBMIT_PATH = "/v1/lookups/policia-nacional"
SUBMIT_BODY = {"document_type": "CC", "document_number": "1020304050"}
#: Headers that belong to the connection or the server, not to the answer compared.
HOP_HEADERS = frozenset({"date", "server", "content-length", "transfer-encoding", "connection"})


def console_script(name: str) -> str:
    """The console script ``name`` installed beside the running interpreter."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise SystemExit(f"{path} not found: install the package into this interpreter's env")
    return str(path)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def raise_nofile(wanted: int) -> int:
    """Raise the soft open-files limit towards ``wanted`` (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def proc_status_kib(pid: int, field: str = "VmRSS") -> int:
    """A ``kB`` field of ``/proc/PID/status`` (VmRSS: now; VmHWM: peak)."""
    text = Path(f"/proc/{pid}/status").read_text()
    m = re.search(rf"^{field}:\s+(\d+)\s+kB", text, re.MULTILINE)
    if m is None:
        raise RuntimeError(f"no {field} in /proc/{pid}/status")
    return int(m.group(1))


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """utime + stime of ``pid`` (all its threads), or of its thread ``tid``, from /proc."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def tree_rss_kib(pid: int, field: str = "VmRSS") -> int:
    """``field`` summed over ``pid`` and its descendants (a server may fork workers)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            total += proc_status_kib(p, field)
            stack += _children(p)
        except (OSError, RuntimeError):
            continue
    return total


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), nearest-rank on the sorted values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def http_json(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
              timeout: float = 10.0) -> tuple[int, dict[str, str], Any]:
    """One blocking request with the standard library: (status, headers, parsed JSON)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, (
                json.loads(raw) if raw else None)
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, (
            json.loads(raw) if raw else None)


class Server:
    """A server subprocess on 127.0.0.1, started in its own session and always stopped.

    ``ready_url`` is polled (bounded by ``start_timeout``) until it answers.
    """

    def __init__(self, argv: list[str], ready_url: str, name: str,
                 start_timeout: float = 30.0, env: Mapping[str, str] | None = None) -> None:
        self.argv = argv
        #: Environment variables set for the server on top of this process's own.
        self.env = dict(env or {})
        self.ready_url = ready_url
        self.name = name
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / (
            f"jobmock-bench-{name}-{os.getpid()}.log")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def start(self) -> Server:
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     env={**os.environ, **self.env} if self.env else None)
        log.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} at start:\n"
                                   f"{self.log()[-3000:]}")
            try:
                with urllib.request.urlopen(self.ready_url, timeout=1.0):
                    return self
            except urllib.error.HTTPError:
                return self  # it answers: that is all "ready" means
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer {self.ready_url} within "
                           f"{self.start_timeout:g} s:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # its own session: only what it started
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class WrkResult:
    """What one wrk run reported."""

    def __init__(self, output: str) -> None:
        self.output = output
        m = re.search(r"Requests/sec:\s+([\d.]+)", output)
        if m is None:
            raise RuntimeError(f"wrk printed no Requests/sec:\n{output}")
        self.rps = float(m.group(1))
        m = re.search(r"(\d+) requests in", output)
        self.requests = int(m.group(1)) if m else 0
        m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
        self.non_2xx = int(m.group(1)) if m else 0
        m = re.search(r"Socket errors:\s+connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                      output)
        self.socket_errors = sum(int(x) for x in m.groups()) if m else 0
        m = re.search(r"Latency\s+(\S+)", output)
        self.latency_avg = m.group(1) if m else "?"


def run_wrk(url: str, headers: dict[str, str], threads: int, connections: int,
            duration: float, script: Path | None = None,
            script_args: Sequence[str] = ()) -> WrkResult:
    """Run wrk once (bounded by ``duration`` plus a margin) and parse its summary.

    wrk takes whole seconds: ``duration`` is rounded up to at least 1. ``script_args``
    go to the Lua script's ``init(args)`` (after ``--``).
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk not found: apt-get update && apt-get install -y wrk")
    duration = max(1, math.ceil(duration))
    argv = [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency"]
    if script is not None:
        argv += ["-s", str(script)]
    for k, v in headers.items():
        argv += ["-H", f"{k}: {v}"]
    argv.append(url)
    if script_args:
        argv += ["--", *script_args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return WrkResult(done.stdout)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


# -- the servers the benchmarks compare ------------------------------------------------------


def _answer(status: int, headers: Mapping[str, str], body: Any) -> dict[str, Any]:
    """An answer as the benchmarks compare it: status, headers without hop-by-hop ones,
    compact JSON body."""
    return {"status": status, "headers": [[k, v] for k, v in headers.items()
                                          if k not in HOP_HEADERS],
            "body": json.dumps(body, separators=(",", ":"), ensure_ascii=False)}


def capture(url: str) -> dict[str, Any]:
    """The answer to ``GET url`` with the credential (it must be a 200)."""
    status, headers, body = http_json("GET", url, headers=AUTH)
    if status != 200:
        raise RuntimeError(f"GET {url} answered {status}: {body}")
    return _answer(status, headers, body)


def submit(base: str) -> dict[str, Any]:
    """Submit one job to ``base`` (``Prefer: wait=0``); its 202 answer."""
    status, headers, body = http_json("POST", base + SUBMIT_PATH, SUBMIT_BODY,
                                      {**AUTH, "Prefer": "wait=0"})
    if status != 202:
        raise RuntimeError(f"submit answered {status}: {body}")
    return _answer(status, headers, body)


def start_jobmock(extra: Sequence[str] = (), name: str = "jobmock",
                  env: Mapping[str, str] | None = None) -> tuple[Server, str]:
    """``jobmock serve croma --clock virtual`` (plus ``extra``) on a free port: (server,
    base URL). ``env`` is set for it (``PYTHONPATH`` to serve another copy of jobmock)."""
    port = free_port()
    argv = [console_script("jobmock"), "serve", API, "--clock", "virtual", "--host", HOST,
            "--port", str(port), *extra]
    srv = Server(argv, f"http://{HOST}:{port}/_jobmock/health", name, env=env).start()
    return srv, f"http://{HOST}:{port}"


def start_bare(routes: Mapping[str, Mapping[str, Any]], workdir: Path,
               server: str = "granian") -> tuple[Server, str]:
    """bare_app.py on ``server`` answering ``routes`` (``"METHOD /path"`` → an answer as
    :func:`capture` gives it): (server, base URL)."""
    config = {"authorization": AUTH["Authorization"], "routes": dict(routes)}
    path = workdir / "bare.json"
    path.write_text(json.dumps(config))
    port = free_port()
    argv = [sys.executable, str(BENCH_DIR / "bare_app.py"), "--config", str(path), "--host",
            HOST, "--port", str(port), "--server", server]
    srv = Server(argv, f"http://{HOST}:{port}/_bare/health", f"bare-{server}").start()
    return srv, f"http://{HOST}:{port}"


def same_answer(mine: Mapping[str, Any], theirs: Mapping[str, Any],
                ignore: frozenset[str] = frozenset()) -> bool:
    """Whether two answers are the same, but for the headers named in ``ignore``."""
    kept = sorted(h for h in mine["headers"] if h[0] not in ignore)
    return bool(mine["status"] == theirs["status"] and mine["body"] == theirs["body"]
                and kept == sorted(theirs["headers"]))


def warn_errors(result: WrkResult, who: str) -> None:
    """Print a warning when a wrk run saw errors or non-2xx answers."""
    if result.non_2xx or result.socket_errors:
        print(f"  WARNING {who}: {result.non_2xx} non-2xx answers, "
              f"{result.socket_errors} socket errors")
