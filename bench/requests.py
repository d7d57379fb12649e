"""Benchmark: ARM requests per build, for each topology, with realistic latencies (scaled): writes,
reads, polls, from the sandbox's request log while the build ran alone.

Targets:
- writes == resources created + resources deleted + distinct actions (no write repeated);
- no poll sooner than the Retry-After of the answer before it (the sandbox sends retry-after-ms);
- reads per long-running operation (polls of its status URL + GETs of its resource while it runs
  and just after) at most READS_PER_LRO.

    bench/run requests [--scale 0.05] [--topology NoVNet ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent))  # after site-packages: see bench/run
import armlog
import harness

SCALE = 0.05
# With Retry-After set to the time left, one poll at the end suffices; azure-core adds an immediate
# status check after the initial answer (base_polling.py _poll), the engine reads the resource once
# when the operation ends, and one more read covers a poll landing a moment before the end.
READS_PER_LRO = 4


def lro_reads(op: armlog.Operation, records: list[dict[str, Any]]) -> int:
    """Polls of the operation plus GETs of its resource from its start to just after its last poll."""
    last = max((answered for _, answered in op.polls), default=op.end) + 0.2
    target = f"/{op.name.lower()}"
    gets = sum(
        1
        for r in records
        if armlog.kind(r) == "read"
        and op.start <= float(r["at"]) <= last
        and str(r["path"]).split("?")[0].lower().endswith(target)
        and str(r["type"]).lower() == op.type
    )
    return len(op.polls) + gets


def analyse(b: harness.SingleBuild, latency: armlog.Latency) -> dict[str, Any]:
    ops = armlog.operations(b.records, latency)
    lros = [o for o in ops if o.polls]
    early = {o.label: armlog.early_polls(o) for o in lros}
    early_first = sum(1 for e in early.values() for poll in e if poll["poll"] == 1)
    early_all = sum(len(e) for e in early.values())
    reads = {o.label: lro_reads(o, b.records) for o in lros}
    accounting = armlog.write_accounting(b.records)
    worst = max(reads.items(), key=lambda kv: kv[1], default=("", 0))
    run = next((o for o in ops if o.op == "run"), None)
    run_reads = 0
    if run is not None:  # the engine watches the builder's container group while it runs
        run_reads = sum(
            1 for r in b.records
            if armlog.kind(r) == "read" and run.start <= float(r["at"]) <= run.end + 1
            and str(r["type"]).lower() == run.type
        )  # fmt: skip
    figures = {
        "phase": b.phase,
        **armlog.summary(b.records),
        "write_accounting": accounting,
        "long_running_operations": len(lros),
        "polls_sooner_than_retry_after": early_all,
        "of_which_immediately_after_the_initial_answer": early_first,
        "early_polls": {k: v for k, v in early.items() if v},
        "reads_per_lro_max": worst[1],
        "reads_per_lro_max_operation": worst[0],
        "reads_per_lro": reads,
        "builder_run_modelled_s": round(run.seconds, 2) if run else None,
        "reads_while_builder_ran": run_reads,
    }
    figures["met"] = {
        "succeeded": b.phase == "Succeeded",
        "writes_equal_created_deleted_actions": accounting["writes"] == accounting["expected_writes"],
        "no_poll_before_retry_after": early_all == 0,
        "reads_per_lro_bounded": worst[1] <= READS_PER_LRO,
    }
    return figures


def findings(per: dict[str, dict[str, Any]]) -> list[str]:
    """What the figures show, in words, for the report (derived from the figures, never fixed)."""
    out = []
    for kind, f in per.items():
        first = f["of_which_immediately_after_the_initial_answer"]
        if first:
            out.append(
                f"{kind}: {first} of {f['long_running_operations']} LROs had their first poll before the "
                "retry-after-ms of the initial answer (azure-core's LROBasePolling._poll checks status once "
                "before its first delay when a caller awaits the poller's result())."
            )
        for op, polls in f["early_polls"].items():
            for p in polls:
                if p["poll"] != 1:
                    out.append(
                        f"{kind}: {op}: poll {p['poll']} sent {p['after_s']} s after the previous answer, "
                        f"whose retry-after-ms said {p['retry_after_s']} s."
                    )
        dups = f["write_accounting"]["duplicates"]
        if dups:
            out.append(f"{kind}: writes repeated on one path: {dups}.")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=SCALE, help="the sandbox's latency scale")
    parser.add_argument("--topology", action="append", choices=harness.TOPOLOGIES)
    args = parser.parse_args()
    load: dict[str, Any] = {"before": harness.load_average()}
    with harness.environment(args.scale) as env:
        latency = armlog.Latency(env.sandbox.latency())
        builds = harness.single_builds(env, args.topology or list(harness.TOPOLOGIES))
    load["after"] = harness.load_average()
    per = {b.topology: analyse(b, latency) for b in builds}
    notes = [
        "writes: PUT/PATCH/DELETE/POST answered < 300; reads: other GETs (404s included: that is how "
        "the engine learns a resource is absent); polls: GETs of .../operations/{id} and "
        ".../operationresults/{id}.",
        "a poll is early when it was sent before the previous answer's retry-after-ms had passed "
        "(recomputed from the modelled end, as operations.py retry_hint does), 5 ms tolerance.",
        f"reads per LRO bound {READS_PER_LRO}: one poll at the end (Retry-After is the time left), "
        "azure-core's immediate status check after the initial answer, the engine's read of the finished "
        "resource, one spare.",
    ]
    targets = {
        "writes": "== created + deleted + distinct actions",
        "polls_sooner_than_retry_after": 0,
        "reads_per_lro_max": READS_PER_LRO,
    }
    notes += findings(per)
    met = all(all(f["met"].values()) for f in per.values())
    harness.write_result(
        "requests", {"latency_scale": args.scale, "per_topology": per}, targets, met, notes, load
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
