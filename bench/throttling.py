"""Benchmark: concurrent builds with the sandbox's ARM throttling model on (per-subscription token
buckets as ARM has them: writes 200 + 10/s, reads 250 + 25/s, answering 429 with Retry-After).

Targets: every build Succeeded; the 429s are counted, and bounded: at most MAX_429_PER_REQUEST
throttled answers per successful request, i.e. the engine backs off instead of hammering, and at most
MAX_RETRIES_OF_ONE_REQUEST 429s in a row for one request (method and URL) before it is answered.

    bench/run throttling [--builds 100] [--scale 0.05]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent))  # after site-packages: see bench/run
import harness

BUILDS = 100
SCALE = 0.05
MAX_429_PER_REQUEST = 1.0
# azure-core retries a 429 itself (3 times, honouring Retry-After), then the engine comes back after
# the Retry-After; a request refused more often than this in a row would mean nothing paces it.
MAX_RETRIES_OF_ONE_REQUEST = 10


def retries(records: list[dict[str, Any]]) -> dict[str, Any]:
    """429s in a row for one request (method + URL) before an answer: how often each request was retried."""
    run: Counter[str] = Counter()
    runs: list[int] = []
    worst = ("", 0)
    for rec in sorted(records, key=lambda r: float(r["at"])):
        key = f"{rec['method']} {str(rec['path']).split('?')[0]}"
        if int(rec["status"]) == 429:
            run[key] += 1
            continue
        if run[key]:
            runs.append(run[key])
            if run[key] > worst[1]:
                worst = (key, run[key])
            run[key] = 0
    runs += [n for n in run.values() if n]  # refused until the end of the log (none once all are final)
    runs.sort()
    return {
        "requests_retried": len(runs),
        "retries_in_a_row_p50": harness.percentile([float(n) for n in runs], 0.5) if runs else 0,
        "retries_in_a_row_p99": harness.percentile([float(n) for n in runs], 0.99) if runs else 0,
        "retries_in_a_row_max": max(runs, default=0),
        "retried_most": worst[0].rsplit("/providers/", 1)[-1],
        "still_refused_at_the_end": sum(1 for n in run.values() if n),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--builds", type=int, default=BUILDS)
    parser.add_argument("--scale", type=float, default=SCALE, help="the sandbox's latency scale")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    load: dict[str, Any] = {"before": harness.load_average()}
    with harness.environment(
        args.scale, max_active=args.builds, quotas=harness.quotas_for(args.builds)
    ) as env:
        ns = env.cluster.namespace("throttle")
        templates = harness.many_templates(env, ns, args.builds)
        harness.wait_templates_ready(env, ns, args.builds, 600)
        env.sandbox.call("PUT", "throttling", {"enabled": True})
        before = env.sandbox.counters()["total"]
        t0 = time.time()
        names = harness.start_builds(env, ns, templates)
        done = harness.wait_builds(env, ns, names, args.timeout, every=2.0)["builds"]
        wall = time.time() - t0
        load["during"] = harness.load_average()
        counters = env.sandbox.counters()
        records = [r for r in env.sandbox.requests(20000) if float(r["at"]) >= t0]
        tracebacks = harness.operator_errors(env.operator.log_path.read_text(errors="replace"))
    load["after"] = harness.load_average()
    phases = Counter(obj["status"]["phase"] for obj in done.values())
    by_status: Counter[str] = Counter()
    throttled_by_method: Counter[str] = Counter()
    for row in counters["requests"]:
        by_status[str(row["status"])] += row["count"]
        if row["status"] == 429:
            throttled_by_method[row["method"]] += row["count"]
    throttled = by_status["429"]
    requests = counters["total"] - before  # the builds' requests (the templates' came before)
    succeeded_requests = requests - throttled
    durations = sorted(harness.build_seconds(obj) for obj in done.values())
    figures: dict[str, Any] = {
        "builds": args.builds,
        "latency_scale": args.scale,
        "phases": dict(phases),
        "wall_s": round(wall, 1),
        "build_seconds_p50": harness.percentile(durations, 0.5),
        "build_seconds_max": durations[-1],
        "requests": requests,
        "throttled_429": throttled,
        "throttled_by_method": dict(throttled_by_method),
        "throttled_per_build": round(throttled / args.builds, 1),
        "throttled_per_successful_request": round(throttled / max(1, succeeded_requests), 3),
        "answers_by_status": dict(by_status),
    }
    figures["retries"] = retries(records)
    figures["retries"]["log_covers_the_run"] = len(records) >= requests
    figures["operator_tracebacks"] = tracebacks  # exceptions the engine did not handle (it retried them)
    targets = {
        "every_build": "Succeeded",
        "throttled_per_successful_request_at_most": MAX_429_PER_REQUEST,
        "retries_in_a_row_of_one_request_at_most": MAX_RETRIES_OF_ONE_REQUEST,
    }
    at_this_size = (
        phases.get("Succeeded", 0) == args.builds
        and figures["throttled_per_successful_request"] <= MAX_429_PER_REQUEST
        and figures["retries"]["retries_in_a_row_max"] <= MAX_RETRIES_OF_ONE_REQUEST
    )
    figures["targets_met_at_this_size"] = at_this_size
    met = at_this_size and args.builds >= BUILDS  # a smaller run does not show the size
    notes = [
        f"{args.builds} builds of {args.builds} templates (a template runs one build at a time), all "
        f"applied at once, --max-active-builds {args.builds}; throttling switched on after the templates "
        "were ready.",
        "request counts from the sandbox's counters; retries in a row from its request log (the last "
        "20,000 requests: log_covers_the_run says whether that was all of the builds' requests).",
    ]
    if args.builds != BUILDS:
        notes.append(
            f"run with {args.builds} builds, not the issue's {BUILDS}: `bench/run throttling` runs {BUILDS}."
        )
    harness.write_result("throttling", figures, targets, met, notes, load)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
