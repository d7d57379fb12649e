"""Benchmark: the full chaos run (the CI test tests/integration/test_chaos.py runs a reduced set).

1. Baseline: one build of every kind (topology x distribution type x outcome), no faults: the outcome
   (phase, message without the run's names, run outputs) each kind must reach under chaos.
2. Kills: SEEDS runs of BUILDS concurrent builds of kinds drawn by the seed; the operator is SIGKILLed
   at a random moment (0..2.5 s after the restarted operator first calls ARM) up to KILLS_PER_SEED
   times per run, while the sandbox answers about `fault_rate` (drawn by the seed, 5 to 20 percent)
   of ARM requests with 429, 500 or 503, and PUTs/DELETEs also with 409 AnotherOperationInProgress.
3. A sandbox restarted with --state mid-build, and a kube-apiserver restarted mid-build (each twice).
Pass, per run: every build reaches its baseline outcome, no resource is created twice (PUT 201 per id
in the sandbox's request log), nothing leaked (only staging groups, their storage accounts and the
run outputs are new in the inventory). Results: bench/results/chaos.json (`--out` elsewhere).
Usage: bench/run chaos [--seeds 6] [--kills-per-seed 11] [--builds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The repository root instead of bench/ (whose requests.py would shadow the requests package).
sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tests.integration.test_chaos as chaos_test
from bench.harness import code_version, load_average, operator_env, operator_environ, operator_python
from bench.sandbox import machine
from tests.fixtures.controlplane import Kube
from tests.fixtures.operator import Operator
from tests.fixtures.sandbox import start_sandbox, stop_sandbox
from tests.integration.test_chaos import (
    KINDS,
    Bed,
    Chaos,
    expectations,
    run_chaos,
    run_with_restartable_sandbox,
)

from kaib.devenv.controlplane import ControlPlane

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results" / "chaos.json"
TARGETS = {"kills": 50, "builds_under_kills": 10, "duplicated": 0, "leaked": 0, "wrong_outcomes": 0}


class RuntimeOperator(Operator):
    """The tests' operator, run from the runtime-only venv as in every benchmark (harness.operator_python)."""

    def argv(self) -> list[str]:
        return [operator_python(), *super().argv()[1:]]

    def environment(self) -> dict[str, str]:
        return operator_environ(super().environment())


# run_chaos starts its operators by this name; the tests themselves keep the dev venv's Python
chaos_test.Operator = RuntimeOperator  # type: ignore[attr-defined]


def row(stage: str, report: dict[str, Any]) -> dict[str, Any]:
    """One run's report as a row (printed as it ends)."""
    wrong = [b for b in report["builds"] if b["problem"]]
    print(
        f"{stage} seed {report['seed']}: passed={report['passed']} kills={report['kills']} "
        f"faulted={report['faultedShare']} {report['seconds']} s {wrong or ''}",
        flush=True,
    )
    return {"stage": stage, **report, "loadAverage": load_average()}


def save(rows: list[dict[str, Any]], out: Path) -> bool:
    """Write the results so far; whether the targets are met."""
    killed = [r for r in rows if r["stage"] == "kills+faults"]
    figures = {
        "runs": len(rows),
        "builds": sum(len(r["builds"]) for r in rows),
        "kills": sum(r["kills"] for r in rows),
        "builds_under_kills": sum(len(r["builds"]) for r in killed),
        "faulted_share_min": min((r["faultedShare"] for r in killed), default=0),
        "faulted_share_max": max((r["faultedShare"] for r in killed), default=0),
        "duplicated": sum(len(r["duplicates"]) for r in rows),
        "leaked": sum(len(r["leaked"]) for r in rows),
        "wrong_outcomes": sum(1 for r in rows for b in r["builds"] if b["problem"]),
        "failed_runs": [f"{r['stage']} seed {r['seed']}" for r in rows if not r["passed"]],
        "table": [
            {
                "stage": r["stage"],
                "seed": r["seed"],
                "kinds": [b["kind"] for b in r["builds"]],
                "outcomes": [b["phase"] for b in r["builds"]],
                "kills": r["kills"],
                "faultRate": r["faultRate"],
                "faultedShare": r["faultedShare"],
                "requests": r["requests"],
                "disruption": r["disruption"],
                "created": r.get("created"),
                "duplicates": len(r["duplicates"]),
                "leaked": len(r["leaked"]),
                "seconds": r["seconds"],
                "loadAverage": r["loadAverage"],
                "passed": r["passed"],
            }
            for r in rows
        ],
        "runs_detail": rows,
    }
    met = (
        figures["kills"] >= TARGETS["kills"]
        and figures["builds_under_kills"] >= TARGETS["builds_under_kills"]
        and all(r["passed"] for r in rows)
    )
    result = {
        "name": "chaos",
        "machine": {**machine(), "load_average": load_average(), "operator_env": operator_env()},
        "code": code_version(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "figures": figures,
        "targets": TARGETS,
        "met": met,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in figures.items() if k not in ("table", "runs_detail")}, indent=2))
    return met


def markdown(result: dict[str, Any]) -> str:
    """The results file's table as docs/chaos.md shows it."""
    lines = [
        "| stage | seed | builds (kind → phase) | kills | faults asked / answered | requests | disruption "
        "| created | dup | leaked | s | load (1 min) | passed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["figures"]["table"]:
        builds = "<br>".join(f"{k} → {o}" for k, o in zip(r["kinds"], r["outcomes"], strict=True))
        lines.append(
            f"| {r['stage']} | {r['seed']} | {builds} | {r['kills']} | {r['faultRate']:.0%} / "
            f"{r['faultedShare']:.1%} | {r['requests']} | {r['disruption'] or '-'} | {r['created']} "
            f"| {r['duplicates']} | {r['leaked']} | {r['seconds']} | {r['loadAverage'][0]} "
            f"| {'yes' if r['passed'] else '**no**'} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--render", action="store_true", help="print the results file's table and stop")
    parser.add_argument("--seeds", type=int, default=6)  # about 9.5 kills a seed: 50 and more
    parser.add_argument("--kills-per-seed", type=int, default=11)
    parser.add_argument("--builds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.render:
        print(markdown(json.loads(args.out.read_text())), end="")
        return 0
    operator_env()  # the operator's venv synced and checked before anything starts
    workdir = Path(tempfile.mkdtemp(prefix="kaib-bench-chaos-"))
    plane = ControlPlane(workdir / "controlplane")
    plane.start()
    rows: list[dict[str, Any]] = []

    def add(stage: str, report: dict[str, Any]) -> None:
        rows.append(row(stage, report))
        save(rows, args.out)  # after every run: a run cut short still leaves its table

    try:
        plane.install_crds(REPO / "crds")
        kube = Kube(plane)
        sandbox = start_sandbox()
        os.environ.update(sandbox.env)
        try:
            bed = Bed(sandbox).prepare()
            add("baseline", run_chaos(kube, bed, Chaos(seed=0, kills=False, kinds=KINDS), workdir, None))
            if not rows[0]["passed"]:
                return 1  # no outcome to hold the chaos runs to
            expected = expectations(rows[0])
            for seed in (101, 102):
                chaos = Chaos(seed=seed, builds=2, kills=False, disruption="apiserver-restart")
                add("apiserver-restart", run_chaos(kube, bed, chaos, workdir, expected))
            for seed in (201, 202):
                chaos = Chaos(seed=seed, builds=2, kills=False, disruption="sandbox-restart")
                report = run_with_restartable_sandbox(kube, chaos, workdir / str(seed), expected)
                add("sandbox-restart", report)
            for seed in range(1, args.seeds + 1):
                rate = round(random.Random(seed).uniform(0.05, 0.20), 3)
                chaos = Chaos(seed=seed, builds=args.builds, fault_rate=rate, max_kills=args.kills_per_seed)
                add("kills+faults", run_chaos(kube, bed, chaos, workdir, expected))
        finally:
            stop_sandbox(sandbox)
    finally:
        plane.stop()
    return 0 if save(rows, args.out) else 1


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"chaos: {time.monotonic() - started:.0f} s")
    sys.exit(code)
