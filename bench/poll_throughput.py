"""Poll throughput: req/s of GET /jobs/{id} on jobmock vs a bare Starlette app, and of a
submit + poll mix.

Starts ``jobmock serve croma --clock virtual`` with one submitted job (the virtual
clock never moves, so the job stays queued and every poll renders the same
envelope), and ``bench/bare_app.py`` on the same server answering the very body
and headers jobmock answered. Runs ``wrk`` against the two job-status URLs in
turn (the order alternates by round), reports each round's req/s, the median
ratio jobmock/bare, and jobmock's RSS (``/proc/PID/status`` VmRSS) before the
load and after each round. The request journal is a ring buffer of
``--journal-size`` entries, so RSS should stop growing once it is full.

The mix (``--mix K``, default 4; 0 leaves it out) is what a client of the API
does: one submit (``POST /v1/lookups/policia-nacional`` with ``Prefer: wait=0``)
then K polls of the jobs it submitted (``bench/mix.lua`` reads each job id from
the 202). It runs against a second ``jobmock serve`` (reset to empty after each
round, so every round starts from no jobs) and against the bare app answering
jobmock's own 202 acknowledgment and poll envelope, in the same rounds.

    python bench/poll_throughput.py [--duration 10] [--rounds 3] [--connections 50]
                                    [--mix 4] [--server granian|uvicorn|both]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from contextlib import ExitStack
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
MIX_SCRIPT = BENCH_DIR / "mix.lua"


def granian_available() -> str | None:
    """None when granian imports, else why not."""
    try:
        import granian  # noqa: F401
    except ImportError as exc:
        return f"granian is not installed ({exc}); pip install granian"
    return None


def start_jobmock(server: str, journal_size: int, name: str = "jobmock") -> tuple[Server, str]:
    """A ``jobmock serve croma --clock virtual`` on ``server``: (server, base URL)."""
    port = free_port()
    argv = [console_script("jobmock"), "serve", API, "--clock", "virtual", "--host", HOST,
            "--port", str(port), "--journal-size", str(journal_size), "--server", server]
    srv = Server(argv, f"http://{HOST}:{port}/_jobmock/health", f"{name}-{server}").start()
    return srv, f"http://{HOST}:{port}"


def submit(base: str) -> dict[str, Any]:
    """Submit one job (``Prefer: wait=0``): jobmock's 202 as a bare-app route answer."""
    status, headers, body = http_json("POST", base + SUBMIT_PATH, SUBMIT_BODY, {
        "Authorization": f"Bearer {CREDENTIAL}", "Prefer": "wait=0"})
    if status != 202:
        raise RuntimeError(f"submit answered {status}: {body}")
    return {"status": status, "headers": [[k, v] for k, v in headers.items()
                                          if k not in _HOP_HEADERS],
            "body": json.dumps(body, separators=(",", ":"), ensure_ascii=False)}


def reset(base: str) -> None:
    status, _, body = http_json("POST", base + "/_jobmock/reset", {})
    if status != 200:
        raise RuntimeError(f"POST /_jobmock/reset answered {status}: {body}")


def capture(url: str) -> dict[str, Any]:
    """The status answer jobmock gives: status, headers (without hop-by-hop ones), body."""
    status, headers, body = http_json("GET", url, headers={
        "Authorization": f"Bearer {CREDENTIAL}"})
    if status != 200:
        raise RuntimeError(f"GET {url} answered {status}: {body}")
    kept = [[k, v] for k, v in headers.items() if k not in _HOP_HEADERS]
    return {"status": status, "headers": kept,
            "body": json.dumps(body, separators=(",", ":"), ensure_ascii=False)}


def start_bare(server: str, routes: dict[str, dict[str, Any]], workdir: Path) -> tuple[Server, str]:
    """bare_app.py answering ``routes`` (``"METHOD /path"`` → answer): (server, base URL)."""
    config = {"authorization": f"Bearer {CREDENTIAL}", "routes": routes}
    path = workdir / "bare.json"
    path.write_text(json.dumps(config))
    port = free_port()
    argv = [sys.executable, str(BENCH_DIR / "bare_app.py"), "--config", str(path), "--host",
            HOST, "--port", str(port), "--server", server]
    srv = Server(argv, f"http://{HOST}:{port}/_bare/health", f"bare-{server}").start()
    return srv, f"http://{HOST}:{port}"


def same_answer(mine: dict[str, Any], theirs: dict[str, Any]) -> bool:
    return bool(mine["status"] == theirs["status"] and mine["body"] == theirs["body"]
                and sorted(mine["headers"]) == sorted(theirs["headers"]))


def run_mix(base: str, polls: int, args: argparse.Namespace, workdir: Path) -> WrkResult:
    """wrk with ``mix.lua`` against ``base``: one submit then ``polls`` polls, over and over."""
    body = workdir / "submit.json"
    body.write_text(json.dumps(SUBMIT_BODY))
    return run_wrk(base + SUBMIT_PATH, {"Authorization": f"Bearer {CREDENTIAL}"}, args.threads,
                   args.connections, args.duration, script=MIX_SCRIPT,
                   script_args=[str(polls), SUBMIT_PATH, "/jobs/", str(body)])


def check(result: WrkResult, who: str) -> None:
    if result.non_2xx or result.socket_errors:
        print(f"  WARNING {who}: {result.non_2xx} non-2xx answers, "
              f"{result.socket_errors} socket errors")


def measure(server: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run the rounds for one server kind and print the figures."""
    print(f"\n== server: {server} ==")
    headers = {"Authorization": f"Bearer {CREDENTIAL}"}
    mix = args.mix > 0
    with tempfile.TemporaryDirectory(prefix="jobmock-bench-") as tmp, ExitStack() as stack:
        jm, jm_base = start_jobmock(server, args.journal_size)
        stack.callback(jm.stop)
        job_id = json.loads(submit(jm_base)["body"])["id"]
        jm_url = f"{jm_base}/jobs/{job_id}"
        answer = capture(jm_url)
        routes = {"GET /jobs/{id}": answer}
        mjm_base = ""
        if mix:  # a second jobmock for the mix: its jobs never touch the poll figures
            mjm, mjm_base = start_jobmock(server, args.journal_size, "jobmock-mix")
            stack.callback(mjm.stop)
            routes["POST /v1/lookups/{source}"] = submit(mjm_base)
            reset(mjm_base)
        bare, bare_base = start_bare(server, routes, Path(tmp))
        stack.callback(bare.stop)
        bare_url = f"{bare_base}/jobs/{job_id}"
        # The bare app must answer byte for byte what jobmock answers.
        mine = capture(bare_url)
        if not same_answer(mine, answer):
            raise RuntimeError(f"bare app answers the poll differently:\n{mine}\n{answer}")
        if mix:
            ack = submit(bare_base)
            if not same_answer(ack, routes["POST /v1/lookups/{source}"]):
                raise RuntimeError(f"bare app answers the submit differently:\n{ack}")
        print(f"GET job status: {len(answer['body'])} body bytes, headers "
              f"{[h[0] for h in answer['headers']]}")
        if mix:
            print(f"mix: 1 submit then {args.mix} polls of the submitted jobs, over and over "
                  f"(bench/mix.lua)")
        rss: list[tuple[str, int]] = [("before load", tree_rss_kib(jm.pid))]
        jm_rps: list[float] = []
        bare_rps: list[float] = []
        ratios: list[float] = []
        mix_jm: list[float] = []
        mix_bare: list[float] = []
        mix_ratios: list[float] = []
        mix_rss: list[int] = []
        for rnd in range(1, args.rounds + 1):
            order = [("jobmock", jm_url), ("bare", bare_url)]
            if mix:
                order += [("jobmock mix", mjm_base), ("bare mix", bare_base)]
            if rnd % 2 == 0:
                order.reverse()
            got: dict[str, WrkResult] = {}
            for who, url in order:
                if who.endswith(" mix"):
                    got[who] = run_mix(url, args.mix, args, Path(tmp))
                else:
                    got[who] = run_wrk(url, headers, args.threads, args.connections,
                                       args.duration)
                check(got[who], who)
            rss.append((f"after round {rnd}", tree_rss_kib(jm.pid)))
            jm_rps.append(got["jobmock"].rps)
            bare_rps.append(got["bare"].rps)
            ratios.append(got["jobmock"].rps / got["bare"].rps)
            line = (f"round {rnd}: poll jobmock {got['jobmock'].rps:8.0f} req/s "
                    f"(lat avg {got['jobmock'].latency_avg}), bare {got['bare'].rps:8.0f} "
                    f"req/s (lat avg {got['bare'].latency_avg}), ratio {ratios[-1]:.3f}")
            if mix:
                mix_jm.append(got["jobmock mix"].rps)
                mix_bare.append(got["bare mix"].rps)
                mix_ratios.append(mix_jm[-1] / mix_bare[-1])
                mix_rss.append(tree_rss_kib(mjm.pid))
                line += (f"; mix jobmock {mix_jm[-1]:8.0f} req/s, bare {mix_bare[-1]:8.0f} "
                         f"req/s, ratio {mix_ratios[-1]:.3f}")
                reset(mjm_base)
            print(line)
        peak = proc_status_kib(jm.pid, "VmHWM")
        journal = http_json("GET", jm_base + "/_jobmock/requests?limit=0")[2]
    print(f"median poll: jobmock {median(jm_rps):.0f} req/s, bare {median(bare_rps):.0f} req/s, "
          f"ratio jobmock/bare {median(ratios):.3f}")
    if mix:
        print(f"median mix 1:{args.mix}: jobmock {median(mix_jm):.0f} req/s, bare "
              f"{median(mix_bare):.0f} req/s, ratio jobmock/bare {median(mix_ratios):.3f}")
        print("mix jobmock RSS after each round (before its reset): "
              + ", ".join(mib(k) for k in mix_rss))
    print("jobmock RSS: " + ", ".join(f"{label} {mib(kib)}" for label, kib in rss)
          + f"; peak (VmHWM) {mib(peak)}")
    if isinstance(journal, dict) and "total" in journal:
        print(f"journal: {journal['total']} requests seen, ring buffer of {journal.get('size')}")
    if len(rss) >= 3:
        drift = rss[-1][1] - rss[1][1]
        print(f"RSS change from the end of round 1 to the end: {drift / 1024:+.1f} MiB")
    return {"server": server, "jobmock_rps": jm_rps, "bare_rps": bare_rps, "ratios": ratios,
            "rss_kib": rss, "peak_kib": peak, "mix_polls_per_submit": args.mix,
            "mix_jobmock_rps": mix_jm, "mix_bare_rps": mix_bare, "mix_ratios": mix_ratios,
            "mix_rss_kib": mix_rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="wrk -t")
    parser.add_argument("--connections", type=int, default=50, help="wrk -c")
    parser.add_argument("--journal-size", type=int, default=10_000,
                        help="jobmock serve --journal-size")
    parser.add_argument("--mix", type=int, default=4, metavar="K",
                        help="polls per submit in the submit + poll mix (0: no mix)")
    parser.add_argument("--server", choices=["granian", "uvicorn", "both"], default="granian",
                        help="granian is what `jobmock serve` runs by default")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.rounds < 1 or args.duration <= 0 or args.duration > 600 or args.mix < 0:
        parser.error("--rounds must be >= 1, --duration in (0, 600] and --mix >= 0")
    print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s, "
          f"{args.rounds} rounds, alternating order")
    servers = ["granian", "uvicorn"] if args.server == "both" else [args.server]
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
