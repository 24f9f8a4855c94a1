"""Poll throughput: req/s of GET /jobs/{id} on jobmock vs a bare Starlette app.

Starts ``jobmock serve croma --clock virtual`` with one submitted job (the virtual
clock never moves, so the job stays queued and every poll renders the same
envelope), and ``bench/bare_app.py`` on the same server answering the very body
and headers jobmock answered. Runs ``wrk`` against the two job-status URLs in
turn (the order alternates by round), reports each round's req/s, the median
ratio jobmock/bare, and jobmock's RSS (``/proc/PID/status`` VmRSS) before the
load and after each round. The request journal is a ring buffer of
``--journal-size`` entries, so RSS should stop growing once it is full.

    python bench/poll_throughput.py [--duration 10] [--rounds 3] [--connections 50]
                                    [--server uvicorn|granian|both]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH_DIR,
    HOST,
    Server,
    WrkResult,
    console_script,
    free_port,
    http_json,
    median,
    mib,
    proc_status_kib,
    run_wrk,
    tree_rss_kib,
)

API = "croma"
CREDENTIAL = "sk_test_croma_org_a"
SUBMIT_PATH = "/v1/lookups/policia-nacional"
SUBMIT_BODY = {"document_type": "CC", "document_number": "1020304050"}
_HOP_HEADERS = {"date", "server", "content-length", "transfer-encoding", "connection"}


def granian_available() -> str | None:
    """None when granian imports, else why not."""
    try:
        import granian  # noqa: F401
    except ImportError as exc:
        return f"granian is not installed ({exc}); pip install granian"
    return None


def start_jobmock(server: str, journal_size: int) -> tuple[Server, str, str]:
    """A jobmock serving croma with one queued job: (server, status URL, job id)."""
    port = free_port()
    argv = [console_script("jobmock"), "serve", API, "--clock", "virtual", "--host", HOST,
            "--port", str(port), "--journal-size", str(journal_size), "--server", server]
    srv = Server(argv, f"http://{HOST}:{port}/_jobmock/health", f"jobmock-{server}").start()
    auth = {"Authorization": f"Bearer {CREDENTIAL}"}
    status, _, body = http_json("POST", f"http://{HOST}:{port}{SUBMIT_PATH}", SUBMIT_BODY,
                                {**auth, "Prefer": "wait=0"})
    if status != 202:
        srv.stop()
        raise RuntimeError(f"submit answered {status}: {body}")
    job_id = body["id"]
    return srv, f"http://{HOST}:{port}/jobs/{job_id}", job_id


def capture(url: str) -> dict[str, Any]:
    """The status answer jobmock gives: status, headers (without hop-by-hop ones), body."""
    status, headers, body = http_json("GET", url, headers={
        "Authorization": f"Bearer {CREDENTIAL}"})
    if status != 200:
        raise RuntimeError(f"GET {url} answered {status}: {body}")
    kept = [[k, v] for k, v in headers.items() if k not in _HOP_HEADERS]
    return {"status": status, "headers": kept,
            "body": json.dumps(body, separators=(",", ":"), ensure_ascii=False)}


def start_bare(server: str, answer: dict[str, Any], workdir: Path) -> tuple[Server, str]:
    config = {"authorization": f"Bearer {CREDENTIAL}", "routes": {"GET /jobs/{id}": answer}}
    path = workdir / "bare.json"
    path.write_text(json.dumps(config))
    port = free_port()
    argv = [sys.executable, str(BENCH_DIR / "bare_app.py"), "--config", str(path), "--host",
            HOST, "--port", str(port), "--server", server]
    srv = Server(argv, f"http://{HOST}:{port}/_bare/health", f"bare-{server}").start()
    return srv, f"http://{HOST}:{port}/jobs/{answer_id(answer)}"


def answer_id(answer: dict[str, Any]) -> str:
    return str(json.loads(answer["body"])["id"])


def check(result: WrkResult, who: str) -> None:
    if result.non_2xx or result.socket_errors:
        print(f"  WARNING {who}: {result.non_2xx} non-2xx answers, "
              f"{result.socket_errors} socket errors")


def measure(server: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run the rounds for one server kind and print the figures."""
    print(f"\n== server: {server} ==")
    headers = {"Authorization": f"Bearer {CREDENTIAL}"}
    with tempfile.TemporaryDirectory(prefix="jobmock-bench-") as tmp:
        jm, jm_url, _ = start_jobmock(server, args.journal_size)
        try:
            answer = capture(jm_url)
            bare, bare_url = start_bare(server, answer, Path(tmp))
            try:
                # The bare app must answer byte for byte what jobmock answers.
                mine = capture(bare_url)
                if mine["body"] != answer["body"] or sorted(mine["headers"]) != sorted(
                        answer["headers"]):
                    raise RuntimeError(f"bare app answers differently:\n{mine}\n{answer}")
                print(f"GET job status: {len(answer['body'])} body bytes, headers "
                      f"{[h[0] for h in answer['headers']]}")
                rss: list[tuple[str, int]] = [("before load", tree_rss_kib(jm.pid))]
                jm_rps: list[float] = []
                bare_rps: list[float] = []
                ratios: list[float] = []
                for rnd in range(1, args.rounds + 1):
                    order = [("jobmock", jm_url), ("bare", bare_url)]
                    if rnd % 2 == 0:
                        order.reverse()
                    got: dict[str, WrkResult] = {}
                    for who, url in order:
                        got[who] = run_wrk(url, headers, args.threads, args.connections,
                                           args.duration)
                        check(got[who], who)
                    rss.append((f"after round {rnd}", tree_rss_kib(jm.pid)))
                    jm_rps.append(got["jobmock"].rps)
                    bare_rps.append(got["bare"].rps)
                    ratios.append(got["jobmock"].rps / got["bare"].rps)
                    print(f"round {rnd}: jobmock {got['jobmock'].rps:8.0f} req/s "
                          f"(lat avg {got['jobmock'].latency_avg}), bare "
                          f"{got['bare'].rps:8.0f} req/s (lat avg {got['bare'].latency_avg}), "
                          f"ratio {ratios[-1]:.3f}")
                peak = proc_status_kib(jm.pid, "VmHWM")
                journal = http_json("GET", jm_url.split("/jobs/")[0]
                                    + "/_jobmock/requests?limit=0")[2]
            finally:
                bare.stop()
        finally:
            jm.stop()
    print(f"median: jobmock {median(jm_rps):.0f} req/s, bare {median(bare_rps):.0f} req/s, "
          f"ratio jobmock/bare {median(ratios):.3f}")
    print("jobmock RSS: " + ", ".join(f"{label} {mib(kib)}" for label, kib in rss)
          + f"; peak (VmHWM) {mib(peak)}")
    print(f"journal: {journal['total']} requests seen, ring buffer of {journal['size']}")
    if len(rss) >= 3:
        drift = rss[-1][1] - rss[1][1]
        print(f"RSS change from the end of round 1 to the end: {drift / 1024:+.1f} MiB")
    return {"server": server, "jobmock_rps": jm_rps, "bare_rps": bare_rps, "ratios": ratios,
            "rss_kib": rss, "peak_kib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="wrk -t")
    parser.add_argument("--connections", type=int, default=50, help="wrk -c")
    parser.add_argument("--journal-size", type=int, default=10_000,
                        help="jobmock serve --journal-size")
    parser.add_argument("--server", choices=["uvicorn", "granian", "both"], default="uvicorn",
                        help="granian: also needs `pip install granian`")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.rounds < 1 or args.duration <= 0 or args.duration > 600:
        parser.error("--rounds must be >= 1 and --duration in (0, 600]")
    print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s, "
          f"{args.rounds} rounds, alternating order")
    servers = ["uvicorn", "granian"] if args.server == "both" else [args.server]
    results: list[dict[str, Any]] = []
    failed = False
    for server in servers:
        if server == "granian" and (why := granian_available()) is not None:
            print(f"\n== server: granian == skipped: {why}")
            failed = True
            continue
        try:
            results.append(measure(server, args))
        except RuntimeError as exc:
            print(f"\n== server: {server} == FAILED:\n{exc}")
            failed = True
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
