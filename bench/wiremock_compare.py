"""jobmock vs WireMock: req/s and RSS polling the same job envelope, in one run.

Starts, each on 127.0.0.1 and a free port:

- ``jobmock serve croma --clock virtual`` as installed (the default server, no
  ``--server``), with one submitted job: the virtual clock never moves, so the job
  stays queued and every poll renders the same envelope;
- WireMock standalone with its defaults (request journal on), serving that very body
  and those headers (``content-type``, ``Retry-After``) as a stub for
  ``GET /jobs/{id}`` that requires the same ``Authorization`` header;
- optionally (``--no-journal-too``) a second WireMock with ``--no-request-journal``;
- ``bench/bare_app.py`` on granian (the baseline of ``poll_throughput.py``): a bare
  Starlette app answering the same fixed response.

It checks that every server answers the same body and headers, warms each one up
(wrk in 5 s chunks until the rate stops climbing, at most ``--warmup`` seconds; not
counted: the JVM compiles as it goes, and WireMock needs a minute on a busy machine),
then runs
``wrk`` against each in turn for ``--rounds`` rounds, rotating the order each round.
It reports each round's req/s, the medians, the ratios jobmock/WireMock and
jobmock/bare-granian (median of the per-round ratios), and each server's RSS
(``/proc/PID/status`` VmRSS after each round; VmHWM at the end).

WireMock's standalone jar comes from the ``wiremock`` npm package, which ships it
(``npm pack wiremock@VERSION``; the npm registry is the only network access), and
is cached in ``--cache-dir``. ``--jar PATH`` (or ``$WIREMOCK_JAR``) uses a jar you
have. Java 11 or later must be on PATH. Without java, or when the jar cannot be
had, the benchmark prints why and exits 0 (skipped).

    python bench/wiremock_compare.py [--duration 10] [--rounds 3] [--connections 50]
                                     [--warmup 120] [--no-journal-too] [--jar PATH]
                                     [--wiremock-version 3.13.2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    AUTH,
    HOST,
    Server,
    WrkResult,
    capture,
    free_port,
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

WIREMOCK_VERSION = "3.13.2"
#: Headers WireMock adds to every stubbed answer; not part of the envelope.
_WIREMOCK_EXTRA = frozenset({"matched-stub-id", "vary"})


class Skip(Exception):
    """The benchmark cannot run here; the message says why."""


def java_version() -> tuple[str, int]:
    """(path to java, major version); Skip if there is none, or it is older than 11."""
    java = shutil.which("java")
    if java is None:
        raise Skip("java is not on PATH (WireMock 3 needs Java 11 or later)")
    done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60,
                          check=False)
    text = done.stderr + done.stdout
    m = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if m is None:
        raise Skip(f"cannot read the version of {java}: {text.strip()[:200]}")
    major = int(m.group(1))
    if major == 1 and m.group(2):  # "1.8.0_..." is Java 8
        major = int(m.group(2))
    if major < 11:
        raise Skip(f"{java} is Java {major}; WireMock 3 needs Java 11 or later")
    return java, major


def wiremock_jar(args: argparse.Namespace) -> Path:
    """The WireMock standalone jar: --jar, $WIREMOCK_JAR, the cache, or the npm package."""
    given = args.jar or os.environ.get("WIREMOCK_JAR")
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise Skip(f"WireMock jar {path} does not exist")
        return path
    cache = Path(args.cache_dir).expanduser()
    jar = cache / f"wiremock-standalone-{args.wiremock_version}.jar"
    if jar.is_file():
        return jar
    npm = shutil.which("npm")
    if npm is None:
        raise Skip("no WireMock jar: give --jar PATH (or $WIREMOCK_JAR), or install npm so "
                   "the benchmark can fetch the `wiremock` npm package, which ships the jar")
    print(f"fetching WireMock {args.wiremock_version}: npm pack wiremock@{args.wiremock_version}")
    with tempfile.TemporaryDirectory(prefix="jobmock-bench-npm-") as tmp:
        try:
            done = subprocess.run([npm, "pack", f"wiremock@{args.wiremock_version}"], cwd=tmp,
                                  capture_output=True, text=True, timeout=600, check=False)
        except subprocess.TimeoutExpired:
            raise Skip("npm pack wiremock did not finish within 600 s") from None
        tgz = sorted(Path(tmp).glob("wiremock-*.tgz"))
        if done.returncode != 0 or not tgz:
            raise Skip(f"npm pack wiremock@{args.wiremock_version} failed "
                       f"({done.returncode}): {(done.stderr or done.stdout).strip()[-500:]}")
        with tarfile.open(tgz[0]) as tar:
            member = next((m for m in tar.getmembers()
                           if re.fullmatch(r"package/build/wiremock-standalone-[^/]+\.jar",
                                           m.name)), None)
            if member is None:
                raise Skip(f"{tgz[0].name} holds no build/wiremock-standalone-*.jar")
            source = tar.extractfile(member)
            assert source is not None
            cache.mkdir(parents=True, exist_ok=True)
            partial = jar.with_suffix(".part")
            with source, partial.open("wb") as out:
                shutil.copyfileobj(source, out)
            partial.replace(jar)
    print(f"cached {jar} ({jar.stat().st_size / 1e6:.1f} MB)")
    return jar


def jobmock_with_job(extra: list[str]) -> tuple[Server, str, dict[str, Any]]:
    """``jobmock serve croma`` as installed, one queued job: (server, poll URL, its answer)."""
    srv, base = start_jobmock(extra)
    try:
        url = f"{base}/jobs/{json.loads(submit(base)['body'])['id']}"
        return srv, url, capture(url)
    except BaseException:
        srv.stop()
        raise


def start_wiremock(java: str, jar: Path, answer: dict[str, Any], name: str,
                   extra: list[str]) -> tuple[Server, str]:
    """WireMock with its defaults (plus ``extra``) and one stub answering ``answer``."""
    port = free_port()
    argv = [java, "-jar", str(jar), "--port", str(port), "--bind-address", HOST, *extra]
    base = f"http://{HOST}:{port}"
    srv = Server(argv, f"{base}/__admin/mappings", name, start_timeout=120).start()
    try:
        stub = {"request": {"method": "GET", "urlPathPattern": "/jobs/[^/]+",
                            "headers": {"Authorization": {"equalTo": AUTH["Authorization"]}}},
                "response": {"status": answer["status"], "body": answer["body"],
                             "headers": dict(answer["headers"])}}
        status, _, body = http_json("POST", f"{base}/__admin/mappings", stub)
        if status != 201:
            raise RuntimeError(f"WireMock refused the stub ({status}): {body}")
        return srv, base
    except BaseException:
        srv.stop()
        raise


def warm_up(who: str, url: str, headers: dict[str, str], args: argparse.Namespace) -> None:
    """wrk in chunks of ``--warmup-chunk`` seconds until the rate stops climbing (two
    chunks in a row no more than 10% above the best before them: the JVM has compiled
    what it serves), or ``--warmup`` seconds have passed."""
    if args.warmup <= 0:
        return
    rates: list[float] = []
    spent = 0.0
    while spent < args.warmup:
        chunk = min(args.warmup_chunk, args.warmup - spent)
        res = run_wrk(url, headers, args.threads, args.connections, chunk)
        spent += max(1, chunk)
        rates.append(res.rps)
        if len(rates) >= 3 and all(rates[i] <= 1.1 * max(rates[:i]) for i in (-1, -2)):
            break
    print(f"warm-up {who}: " + " → ".join(f"{r:,.0f}" for r in rates) + f" req/s ({spent:g} s)")


def run(args: argparse.Namespace, java: str, jar: Path) -> dict[str, Any]:
    headers = AUTH
    with tempfile.TemporaryDirectory(prefix="jobmock-bench-") as tmp, ExitStack() as stack:
        jm, jm_url, answer = jobmock_with_job(shlex.split(args.jobmock_args))
        stack.callback(jm.stop)
        job_path = jm_url.split(f"{HOST}:", 1)[1].split("/", 1)[1]
        servers: dict[str, tuple[Server, str]] = {"jobmock": (jm, jm_url)}
        bare, bare_base = start_bare({"GET /jobs/{id}": answer}, Path(tmp))
        stack.callback(bare.stop)
        servers["bare granian"] = (bare, f"{bare_base}/{job_path}")
        wm, wm_base = start_wiremock(java, jar, answer, "wiremock", [])
        stack.callback(wm.stop)
        servers["wiremock"] = (wm, f"{wm_base}/{job_path}")
        if args.no_journal_too:
            wmn, wmn_base = start_wiremock(java, jar, answer, "wiremock-nojournal",
                                           ["--no-request-journal"])
            stack.callback(wmn.stop)
            servers["wiremock no journal"] = (wmn, f"{wmn_base}/{job_path}")
        for who, (_, url) in servers.items():
            got = capture(url)
            if not same_answer(got, answer,
                               _WIREMOCK_EXTRA if who.startswith("wiremock") else frozenset()):
                raise RuntimeError(f"{who} answers differently:\n{got}\n{answer}")
        extra = sorted({h[0] for h in capture(servers["wiremock"][1])["headers"]}
                       - {h[0] for h in answer["headers"]})
        print(f"GET job status: {len(answer['body'])} body bytes, headers "
              f"{[h[0] for h in answer['headers']]}; every server answers them "
              f"(WireMock adds {extra})")
        print(f"jobmock: {' '.join(jm.argv[1:])}")
        print(f"WireMock: {wm.argv[0]} -jar {jar.name} {' '.join(wm.argv[3:])}")
        names = list(servers)
        for who in names:
            warm_up(who, servers[who][1], headers, args)
        rps: dict[str, list[float]] = {n: [] for n in names}
        rss: dict[str, list[int]] = {n: [] for n in names}
        ratios: dict[str, list[float]] = {n: [] for n in names if n != "jobmock"}
        for rnd in range(args.rounds):
            order = names[rnd % len(names):] + names[:rnd % len(names)]
            got: dict[str, WrkResult] = {}
            for who in order:
                got[who] = run_wrk(servers[who][1], headers, args.threads, args.connections,
                                   args.duration)
                warn_errors(got[who], who)
            for who in names:
                rps[who].append(got[who].rps)
                rss[who].append(tree_rss_kib(servers[who][0].pid))
                if who != "jobmock":
                    ratios[who].append(got["jobmock"].rps / got[who].rps)
            print(f"round {rnd + 1} ({' → '.join(order)}): "
                  + ", ".join(f"{who} {got[who].rps:,.0f}" for who in names) + " req/s")
        peak = {who: proc_status_kib(servers[who][0].pid, "VmHWM") for who in names}
    print()
    print(f"{'server':<22}{'median req/s':>14}{'RSS after last round':>22}{'peak RSS':>12}")
    for who in names:
        print(f"{who:<22}{median(rps[who]):>14,.0f}{mib(rss[who][-1]):>22}{mib(peak[who]):>12}")
    print()
    for who, values in ratios.items():
        print(f"ratio jobmock/{who}: {median(values):.3f} (rounds "
              + ", ".join(f"{v:.3f}" for v in values) + ")")
    return {"jar": jar.name, "rounds": args.rounds, "duration": args.duration,
            "connections": args.connections, "rps": rps, "rss_kib": rss, "peak_kib": peak,
            "ratios": {k: median(v) for k, v in ratios.items()}, "round_ratios": ratios}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="wrk -t")
    parser.add_argument("--connections", type=int, default=50, help="wrk -c")
    parser.add_argument("--warmup", type=float, default=120.0,
                        help="at most this many seconds of wrk per server before the rounds, "
                             "until its rate settles (0: none)")
    parser.add_argument("--warmup-chunk", type=float, default=5.0,
                        help="seconds per warm-up wrk run")
    parser.add_argument("--no-journal-too", action="store_true",
                        help="also measure WireMock with --no-request-journal")
    parser.add_argument("--jobmock-args", default="",
                        help="extra `jobmock serve` arguments, e.g. '--server uvicorn'")
    parser.add_argument("--jar", help="a WireMock standalone jar (default: $WIREMOCK_JAR, "
                                      "else the cache, else npm pack wiremock)")
    parser.add_argument("--wiremock-version", default=WIREMOCK_VERSION,
                        help="the wiremock npm package version to fetch")
    parser.add_argument("--cache-dir", default=os.environ.get(
        "JOBMOCK_BENCH_CACHE", "~/.cache/jobmock-bench"), help="where the fetched jar is kept")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if (args.rounds < 1 or not 0 < args.duration <= 600 or not 0 <= args.warmup <= 600
            or not 0 < args.warmup_chunk <= 60):
        parser.error("--rounds must be >= 1, --duration in (0, 600], --warmup in [0, 600], "
                     "--warmup-chunk in (0, 60]")
    try:
        java, major = java_version()
        jar = wiremock_jar(args)
    except Skip as exc:
        print(f"SKIPPED: {exc}")
        sys.exit(0)
    print(f"Java {major} ({java}), {jar}")
    print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s, {args.rounds} "
          f"rounds, order rotating each round")
    try:
        result = run(args, java, jar)
    except RuntimeError as exc:
        print(f"FAILED:\n{exc}")
        sys.exit(1)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
