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

``--compare-src DIR`` adds, in the same rounds, a ``jobmock serve`` (and a mix one) run
from another copy of jobmock's source (``PYTHONPATH=DIR``): a before/after comparison.

    python bench/poll_throughput.py [--duration 10] [--rounds 3] [--connections 50]
                                    [--mix 4] [--server granian|uvicorn|both]
                                    [--compare-src DIR]
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
    AUTH,
    BENCH_DIR,
    SUBMIT_BODY,
    SUBMIT_PATH,
    Server,
    WrkResult,
    capture,
    cpu_seconds,
    http_json,
    median,
    mib,
    proc_status_kib,
    run_wrk,
    same_answer,
    start_bare,
    start_jobmock,
    submit,
    tree_rss_kib,
    warn_errors,
)

MIX_SCRIPT = BENCH_DIR / "mix.lua"


def granian_available() -> str | None:
    """None when granian imports, else why not."""
    try:
        import granian  # noqa: F401
    except ImportError as exc:
        return f"granian is not installed ({exc}); pip install granian"
    return None


def reset(base: str) -> None:
    status, _, body = http_json("POST", base + "/_jobmock/reset", {})
    if status != 200:
        raise RuntimeError(f"POST /_jobmock/reset answered {status}: {body}")


def run_mix(base: str, polls: int, args: argparse.Namespace, workdir: Path) -> WrkResult:
    """wrk with ``mix.lua`` against ``base``: one submit then ``polls`` polls, over and over."""
    body = workdir / "submit.json"
    body.write_text(json.dumps(SUBMIT_BODY))
    return run_wrk(base + SUBMIT_PATH, AUTH, args.threads,
                   args.connections, args.duration, script=MIX_SCRIPT,
                   script_args=[str(polls), SUBMIT_PATH, "/jobs/", str(body)])


def measure(server: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run the rounds for one server kind and print the figures."""
    print(f"\n== server: {server} ==")
    mix = args.mix > 0
    # The jobmocks measured: this one, and with --compare-src another copy of its source.
    variants: dict[str, dict[str, str] | None] = {"jobmock": None}
    if args.compare_src:
        variants["jobmock-other"] = {"PYTHONPATH": str(args.compare_src)}
    with tempfile.TemporaryDirectory(prefix="jobmock-bench-") as tmp, ExitStack() as stack:
        def serve(name: str, env: dict[str, str] | None) -> tuple[Server, str]:
            srv, base = start_jobmock(["--journal-size", str(args.journal_size), "--server",
                                       server], f"{name}-{server}", env)
            stack.callback(srv.stop)
            return srv, base

        polled: dict[str, tuple[Server, str]] = {}  # name -> (server, poll URL)
        mixed: dict[str, tuple[Server, str]] = {}  # name -> (server, base URL)
        answer: dict[str, Any] | None = None
        job_id = ""
        for name, env in variants.items():
            srv, base = serve(name, env)
            job_id = json.loads(submit(base)["body"])["id"]
            got = capture(f"{base}/jobs/{job_id}")
            answer = answer or got
            polled[name] = (srv, f"{base}/jobs/{job_id}")
        assert answer is not None
        first_id = polled["jobmock"][1].rsplit("/", 1)[1]
        routes = {"GET /jobs/{id}": answer}
        if mix:  # other jobmocks for the mix: their jobs never touch the poll figures
            for name, env in variants.items():
                mixed[name] = serve(f"{name}-mix", env)
            routes["POST /v1/lookups/{source}"] = submit(mixed["jobmock"][1])
            for _, base in mixed.values():
                reset(base)
        bare, bare_base = start_bare(routes, Path(tmp), server)
        stack.callback(bare.stop)
        bare_url = f"{bare_base}/jobs/{first_id}"
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
        if args.compare_src:
            print(f"jobmock-other: the same, from PYTHONPATH={args.compare_src}")
        if mix:
            print(f"mix: 1 submit then {args.mix} polls of the submitted jobs, over and over "
                  f"(bench/mix.lua)")
        jm = polled["jobmock"][0]
        rss: list[tuple[str, int]] = [("before load", tree_rss_kib(jm.pid))]
        rps: dict[str, list[float]] = {}
        ratios: dict[str, list[float]] = {}
        # The server's CPU per request (all its threads): steadier than req/s on a busy
        # machine; bare's CPU per request / jobmock's is the ratio req/s would reach when
        # each server has a core to itself.
        cpu_us: dict[str, list[float]] = {}
        pids = {name: srv.pid for name, (srv, _) in polled.items()}
        pids.update({f"{name} mix": srv.pid for name, (srv, _) in mixed.items()})
        pids.update({"bare": bare.pid, "bare mix": bare.pid})
        mix_rss: list[int] = []
        for rnd in range(1, args.rounds + 1):
            order = [(name, url) for name, (_, url) in polled.items()] + [("bare", bare_url)]
            if mix:
                order += [(f"{name} mix", base) for name, (_, base) in mixed.items()]
                order.append(("bare mix", bare_base))
            if rnd % 2 == 0:
                order.reverse()
            got: dict[str, WrkResult] = {}
            for who, url in order:
                pid = pids[who]
                cpu0 = cpu_seconds(pid)
                if who.endswith(" mix"):
                    got[who] = run_mix(url, args.mix, args, Path(tmp))
                else:
                    got[who] = run_wrk(url, AUTH, args.threads, args.connections,
                                       args.duration)
                used = cpu_seconds(pid) - cpu0
                warn_errors(got[who], who)
                rps.setdefault(who, []).append(got[who].rps)
                cpu_us.setdefault(who, []).append(used / max(1, got[who].requests) * 1e6)
            rss.append((f"after round {rnd}", tree_rss_kib(jm.pid)))
            parts = []
            for name in variants:
                for kind in ("", " mix"):
                    if f"{name}{kind}" in got:
                        ratio = got[f"{name}{kind}"].rps / got[f"bare{kind}"].rps
                        ratios.setdefault(f"{name}{kind}", []).append(ratio)
                        parts.append(f"{name}{kind} {got[f'{name}{kind}'].rps:,.0f} req/s "
                                     f"(ratio {ratio:.3f})")
            parts += [f"{who} {got[who].rps:,.0f} req/s" for who in ("bare", "bare mix")
                      if who in got]
            print(f"round {rnd}: " + ", ".join(parts))
            if mix:
                mix_rss.append(tree_rss_kib(mixed["jobmock"][0].pid))
                for _, base in mixed.values():
                    reset(base)
        peak = proc_status_kib(jm.pid, "VmHWM")
        journal = http_json("GET", polled["jobmock"][1].rsplit("/jobs/", 1)[0]
                            + "/_jobmock/requests?limit=0")[2]
    cpu_ratios: dict[str, list[float]] = {}
    for who, values in ratios.items():
        bare_who = "bare mix" if who.endswith(" mix") else "bare"
        print(f"median {who}: {median(rps[who]):.0f} req/s vs {bare_who} "
              f"{median(rps[bare_who]):.0f} req/s, ratio {median(values):.3f} (rounds "
              + ", ".join(f"{v:.3f}" for v in values) + ")")
        cpu_ratios[who] = [b / j for b, j in zip(cpu_us[bare_who], cpu_us[who], strict=True)]
        print(f"  server CPU per request: {who} {median(cpu_us[who]):.0f} µs, {bare_who} "
              f"{median(cpu_us[bare_who]):.0f} µs; ratio {bare_who}/{who} "
              f"{median(cpu_ratios[who]):.3f} (rounds "
              + ", ".join(f"{v:.3f}" for v in cpu_ratios[who]) + ")")
    if mix:
        print("mix jobmock RSS after each round (before its reset): "
              + ", ".join(mib(k) for k in mix_rss))
    print("jobmock RSS: " + ", ".join(f"{label} {mib(kib)}" for label, kib in rss)
          + f"; peak (VmHWM) {mib(peak)}")
    if isinstance(journal, dict) and "total" in journal:
        print(f"journal: {journal['total']} requests seen, ring buffer of {journal.get('size')}")
    if len(rss) >= 3:
        drift = rss[-1][1] - rss[1][1]
        print(f"RSS change from the end of round 1 to the end: {drift / 1024:+.1f} MiB")
    return {"server": server, "rps": rps, "ratios": ratios,
            "median_ratios": {k: median(v) for k, v in ratios.items()},
            "cpu_us_per_request": cpu_us,
            "median_cpu_ratios": {k: median(v) for k, v in cpu_ratios.items()},
            "jobmock_rps": rps["jobmock"], "bare_rps": rps["bare"],
            "rss_kib": rss, "peak_kib": peak, "mix_polls_per_submit": args.mix,
            "mix_rss_kib": mix_rss, "compare_src": str(args.compare_src or "")}


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
    parser.add_argument("--compare-src", type=Path, metavar="DIR",
                        help="also measure `jobmock serve` run from another copy of jobmock's "
                             "source (PYTHONPATH=DIR, e.g. a checkout's src) in the same rounds")
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
