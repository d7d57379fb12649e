"""Benchmark: scale. Many templates and many concurrent builds on one operator: all complete; the
operator's peak RSS, CPU seconds per build, and reconcile latency p50/p99.

Reconcile latency (the target's figure) from status transitions: a watch on the apiserver (in this
process, one clock) records when each object appeared and when the operator first wrote its status
(a template's `topology`, a build's `phase`): the time from a change to the operator's first
reaction to it, queueing included. When the operator serves kaib.metrics (KAIB_METRICS_PORT), its
reconcile-time histogram (one handler run, no queueing) is recorded beside it.

CPU per build: the operator's CPU seconds (utime + stime from /proc) while the builds ran, divided
by the builds; the templates' reconciles before that are reported apart.

Memory: VmHWM (peak), plus VmRSS sampled every second (at start, templates reconciled, the builds'
peak, builds done), the RSS of a bare Python that only imports the operator (the floor before any
work), and whether the installed packages carry bytecode: without .pyc files (PYTHONDONTWRITEBYTECODE
and a venv synced without --compile-bytecode) every start compiles ~15 MB of azure-mgmt sources and
the compiler's peak stays resident; the operator image compiles them (Dockerfile UV_COMPILE_BYTECODE).
The operator, the floor and the bytecode check all use the runtime-only venv that mirrors the image
(harness.operator_python: no dev-group packages, which kopf would otherwise import if installed).

Targets: all builds Succeeded; peak RSS <= 300 MiB; CPU <= 0.5 s per build; p99 <= 1 s.

    bench/run scale [--templates 1000] [--builds 200] [--scale 0.05]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent))  # after site-packages: see bench/run
import harness

TEMPLATES, BUILDS = 1000, 200
SCALE = 0.05
TARGETS = {"peak_rss_mib": 300.0, "cpu_s_per_build": 0.5, "reconcile_p99_s": 1.0}
IMPORT_ONLY = (
    "import kaib.cli, kaib.controller.run; from pathlib import Path; "
    "print(next(line.split()[1] for line in Path('/proc/self/status').read_text().splitlines() "
    "if line.startswith('VmRSS:')))"
)
HAS_PYC = (
    "import importlib.util as u, os, sys; "
    "print(os.path.exists(u.cache_from_source(u.find_spec(sys.argv[1]).origin)))"
)


class RssSampler:
    """The operator's VmRSS every second, in a thread: its largest value between two marks."""

    def __init__(self, op: harness.Operator) -> None:
        self.op, self.peak, self.stopped = op, 0.0, False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self.stopped and self.op.alive():
            self.peak = max(self.peak, self.op.rss_mib())
            time.sleep(1)

    def mark(self) -> float:
        """The peak since the last mark (then starts over)."""
        peak, self.peak = max(self.peak, self.op.rss_mib()), 0.0
        return round(peak, 1)


def import_only_rss_mib() -> float:
    """VmRSS of the operator's Python (harness.operator_python) importing the operator, nothing else."""
    cmd = [harness.operator_python(), "-c", IMPORT_ONLY]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return round(int(out.stdout.strip()) / 1024, 1)


def bytecode_installed() -> bool:
    """Whether the largest SDK module the operator imports has its .pyc next to it, in the operator's venv."""
    module = "azure.mgmt.compute.aio.operations._operations"
    cmd = [harness.operator_python(), "-c", HAS_PYC, module]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip() == "True"


def process_counts(pid: int) -> dict[str, int]:
    """Threads and open file descriptors (sockets included) of a process."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    threads = next(int(line.split()[1]) for line in status if line.startswith("Threads:"))
    fds = list(Path(f"/proc/{pid}/fd").iterdir())
    sockets = 0
    for fd in fds:
        try:
            sockets += "socket" in str(fd.readlink())
        except OSError:  # closed meanwhile
            continue
    return {"threads": threads, "fds": len(fds), "sockets": sockets}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--templates", type=int, default=TEMPLATES)
    parser.add_argument("--builds", type=int, default=BUILDS)
    parser.add_argument("--scale", type=float, default=SCALE, help="the sandbox's latency scale")
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args()
    assert args.builds <= args.templates, "a template runs one build at a time: builds <= templates"
    load: dict[str, Any] = {"before": harness.load_average()}
    quotas = harness.quotas_for(args.builds)
    with harness.environment(args.scale, max_active=args.builds, quotas=quotas) as env:
        op = env.operator
        templates_w = harness.Watcher(env.cluster.kubeconfig, "imagetemplates")
        builds_w = harness.Watcher(env.cluster.kubeconfig, "imagebuilds")
        ns = env.cluster.namespace("scale")
        idle_rss = op.rss_mib()
        sampler = RssSampler(op)
        rss_phases = {"after_start": sampler.mark()}
        cpu0, t0 = op.cpu_seconds(), time.time()
        names = harness.many_templates(env, ns, args.templates)
        templates_s = templates_w.wait(
            env,
            lambda: sum(1 for key in templates_w.first_status if key.startswith(f"{ns}/")) >= args.templates,
            f"templates in {ns} not ready",
            args.timeout,
        )
        cpu1 = op.cpu_seconds()
        load["templates_ready"] = harness.load_average()
        rss_phases["templates"] = sampler.mark()
        time.sleep(2)
        cpu2, t2 = op.cpu_seconds(), time.time()
        started = harness.start_builds(env, ns, names[: args.builds])
        with contextlib.suppress(TimeoutError):  # then the final ones are reported, the rest counted
            builds_w.wait(
                env,
                lambda: len(builds_w.final(ns, started)) == len(started),
                "builds not final",
                args.timeout,
            )
        done = builds_w.final(ns, started)
        builds_s = time.time() - t2
        cpu3 = op.cpu_seconds()
        load["builds_done"] = harness.load_average()
        rss_phases["builds"] = sampler.mark()
        assert op.process is not None
        counts = process_counts(op.process.pid)
        time.sleep(5)  # the last builds' connections and tasks wind down
        rss_phases["after_builds"] = sampler.mark()
        sampler.stopped = True
        rss = op.peak_rss_mib()
        metrics = op.metrics()
        tracebacks = harness.operator_errors(env.operator.log_path.read_text(errors="replace"))
        templates_w.stop()
        builds_w.stop()
        # Each object's watch times, beside the logs, for looking into a latency figure afterwards.
        timeline = {w.plural: {"added": w.added, "first_status": w.first_status, "phases": w.phases}
                    for w in (templates_w, builds_w)}  # fmt: skip
        (env.workdir / "timeline.json").write_text(json.dumps(timeline))
    load["after"] = harness.load_average()
    phases = Counter(obj["status"]["phase"] for obj in done.values())
    if len(done) < args.builds:
        phases["not final within --timeout"] = args.builds - len(done)
    t_lat, b_lat = templates_w.latencies(), builds_w.latencies()
    reconcile = t_lat + b_lat
    durations = sorted(harness.build_seconds(obj) for obj in done.values())
    figures: dict[str, Any] = {
        "templates": args.templates,
        "builds": args.builds,
        "latency_scale": args.scale,
        "phases": dict(phases),
        "templates_all_reconciled_s": round(templates_s, 1),
        "builds_wall_s": round(builds_s, 1),
        "build_seconds_p50": harness.percentile(durations, 0.5),
        "build_seconds_max": durations[-1] if durations else None,
        "peak_rss_mib": round(rss, 1),
        "rss_after_start_mib": round(idle_rss, 1),
        "rss_peak_mib_by_phase": rss_phases,
        "rss_import_only_mib": import_only_rss_mib(),
        "bytecode_installed": bytecode_installed(),
        "operator_at_builds_done": counts,
        "cpu_s_templates": round(cpu1 - cpu0, 2),
        "cpu_s_per_template": round((cpu1 - cpu0) / args.templates, 4),
        "cpu_s_builds": round(cpu3 - cpu2, 2),
        "cpu_s_per_build": round((cpu3 - cpu2) / args.builds, 3),
        "reconcile_p50_s": round(harness.percentile(reconcile, 0.5), 3),
        "reconcile_p99_s": round(harness.percentile(reconcile, 0.99), 3),
        "template_first_status_p50_s": round(harness.percentile(t_lat, 0.5), 3),
        "template_first_status_p99_s": round(harness.percentile(t_lat, 0.99), 3),
        "build_first_status_p50_s": round(harness.percentile(b_lat, 0.5), 3),
        "build_first_status_p99_s": round(harness.percentile(b_lat, 0.99), 3),
        "reconcile_samples": len(reconcile),
        "reconcile_handler_seconds_from_metrics": harness.histogram_quantiles(
            metrics or "", "controller_runtime_reconcile_time_seconds", (0.5, 0.99)
        ),
        "event_loop_lag_seconds_from_metrics": harness.histogram_quantiles(
            metrics or "", "kaib_event_loop_lag_seconds", (0.5, 0.99)
        ),
        "since_first_apply_s": round(time.time() - t0, 1),
    }
    at_this_size = phases.get("Succeeded", 0) == args.builds and all(
        figures[name] <= limit for name, limit in TARGETS.items()
    )
    figures["targets_met_at_this_size"] = at_this_size
    met = at_this_size and args.templates >= TEMPLATES and args.builds >= BUILDS
    notes = [
        "reconcile latency: from an object's appearance on a watch to the operator's first status write "
        "on it (kopf's queueing included), templates and builds pooled; per kind beside it.",
        "reconcile_handler_seconds_from_metrics: the operator's controller_runtime_reconcile_time_seconds "
        "histogram (one handler run, no queueing), quantiles as bucket upper bounds; null if not served.",
        "templates and builds applied in batches of 100 (kubectl apply of a List), all at once otherwise.",
        "rss_peak_mib_by_phase: the operator's largest VmRSS (sampled every second) in each phase; "
        "rss_import_only_mib: the operator's Python only importing the operator's modules (the floor).",
    ]
    if args.templates < TEMPLATES or args.builds < BUILDS:
        notes.append(
            f"run at {args.templates} templates / {args.builds} builds, not the issue's "
            f"{TEMPLATES} / {BUILDS}: `bench/run scale` runs the full size."
        )
    figures["operator_tracebacks"] = tracebacks  # exceptions the engine did not handle (it retried them)
    targets = {**TARGETS, "every_build": "Succeeded", "templates": TEMPLATES, "builds": BUILDS}
    harness.write_result("scale", figures, targets, met, notes, load)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
