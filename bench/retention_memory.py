"""Retention: 1,000,000 jobs through one mock under a 10-minute retention, in bounded memory.

Each run is a fresh child process (so RSS starts clean) holding one ``Mock`` of croma on a
virtual clock. It submits N jobs through ``Mock.dispatch`` (the whole request path: auth,
validation, rendering, the journal; ``Prefer: wait=0``), ``--rate`` a clock second: after
each ``--rate`` submits the clock moves one second, so jobs run their spec timings and
end, and a job that ended ``--retain`` clock seconds ago is forgotten.

- **retention** (the measurement): N jobs (default 1,000,000), ``retain`` 600 s. Sampled
  every ``--every`` submits: RSS (VmRSS), and the engine's footprint (jobs stored, heap
  entries, indexes). Reported: peak RSS (VmHWM), the most jobs held at once, against
  what the rate allows (``rate * (retain + longest job)``), submits/s.
- **baseline** (same run, smaller): ``--baseline`` jobs (default 100,000) with retention
  off; its RSS growth per job projects what N jobs would take without retention.

The ratio peak/projection is the figure to compare between runs (absolute RSS swings
with the machine). The run fails (exit 1) if the peak RSS passes ``--limit-mib`` (300).

    python bench/retention_memory.py [--jobs 1000000] [--retain 600] [--rate 100]
                                     [--baseline 100000] [--every 50000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

#: Runs in the child: one mock, N submits on a virtual clock, samples as JSON lines.
CHILD = r"""
import json, sys, time
from jobmock import Mock, Request, VirtualClock, resolve_spec

def kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0

jobs, retain, rate, every = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
spec = resolve_spec("croma")
mock = Mock(spec, clock=VirtualClock(), seed=1)
mock.engine.retain = retain
op = spec.submit_operations[0]
headers = {**spec.auth.headers_for(spec.demo_tenants()[0][1]), "prefer": "wait=0",
           "content-type": "application/json"}
body = json.dumps(op.body_example).encode()
request = Request("POST", op.path, headers=headers, body=body)
print(json.dumps({"at": 0, "rss_kib": kib("VmRSS"), **mock.engine.footprint()}), flush=True)
started = time.perf_counter()
for i in range(1, jobs + 1):
    answer = mock.dispatch(request)
    if answer.status != 202:
        raise SystemExit(f"submit {i} answered {answer.status}: {answer.body[:200]!r}")
    if i % rate == 0:
        mock.engine.advance_clock(1.0)
    if i % every == 0 or i == jobs:
        print(json.dumps({"at": i, "rss_kib": kib("VmRSS"), "seconds": time.perf_counter() - started,
                          **mock.engine.footprint()}), flush=True)
print(json.dumps({"done": jobs, "hwm_kib": kib("VmHWM"), "seconds": time.perf_counter() - started}),
      flush=True)
"""


def run(jobs: int, retain: float, rate: int, every: int, timeout: float) -> list[dict[str, Any]]:
    """One child run; its samples (the last one carries the peak, ``hwm_kib``)."""
    done = subprocess.run([sys.executable, "-c", CHILD, str(jobs), str(retain), str(rate),
                           str(every)], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise SystemExit(f"the run failed ({done.returncode}): {done.stderr[-2000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=1_000_000)
    ap.add_argument("--retain", type=float, default=600.0, help="clock seconds (10 minutes)")
    ap.add_argument("--rate", type=int, default=100, help="submits per clock second")
    ap.add_argument("--baseline", type=int, default=100_000, help="jobs of the run without retention")
    ap.add_argument("--every", type=int, default=50_000, help="submits between samples")
    ap.add_argument("--limit-mib", type=float, default=300.0)
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds a run may take")
    ap.add_argument("--json", default=None, help="write the figures here")
    args = ap.parse_args()

    from jobmock import resolve_spec

    spec = resolve_spec("croma")
    longest = spec.timing.queued[1] + spec.timing.running[1]
    allowed = args.rate * (args.retain + longest + 1)

    base = run(args.baseline, 0.0, args.rate, max(1, args.baseline // 4), args.timeout)
    base_growth = (base[-2]["rss_kib"] - base[0]["rss_kib"]) / args.baseline  # KiB a job
    projected_mib = (base[0]["rss_kib"] + base_growth * args.jobs) / 1024

    t0 = time.monotonic()
    samples = run(args.jobs, args.retain, args.rate, args.every, args.timeout)
    wall = time.monotonic() - t0
    end = samples[-1]
    points = samples[:-1]
    peak_mib = end["hwm_kib"] / 1024
    held = max(p["jobs"] for p in points)
    heap = max(p["heap"] for p in points)
    figures = {
        "jobs": args.jobs, "retain_s": args.retain, "rate_per_clock_s": args.rate,
        "peak_rss_mib": round(peak_mib, 1), "limit_mib": args.limit_mib,
        "most_jobs_held": held, "jobs_the_rate_allows": int(allowed), "most_heap_entries": heap,
        "submits_per_s": round(args.jobs / end["seconds"]), "wall_s": round(wall, 1),
        "baseline_jobs": args.baseline, "baseline_kib_per_job": round(base_growth, 2),
        "projected_mib_without_retention": round(projected_mib),
        "ratio_peak_to_projection": round(peak_mib / projected_mib, 3),
        "samples": [{k: p[k] for k in ("at", "rss_kib", "jobs", "heap", "idempotency_keys",
                                       "gates", "waiting", "watched")} for p in points],
    }
    print(f"{args.jobs:,} croma jobs, {args.rate}/clock s, retained {args.retain:g} s: "
          f"peak RSS {peak_mib:.1f} MiB (limit {args.limit_mib:g}), at most {held:,} jobs held "
          f"(the rate allows {int(allowed):,}), heap at most {heap:,} entries, "
          f"{figures['submits_per_s']:,} submits/s")
    print(f"baseline without retention: {base_growth:.2f} KiB a job, so {args.jobs:,} jobs "
          f"would take about {projected_mib:,.0f} MiB; ratio {figures['ratio_peak_to_projection']}")
    for p in points:
        print(f"  after {p['at']:>9,}: RSS {p['rss_kib'] / 1024:7.1f} MiB, jobs {p['jobs']:>7,}, "
              f"heap {p['heap']:>7,}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)
    if peak_mib > args.limit_mib or held > allowed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
