"""Benchmark: the sandbox's ARM throughput through the unmodified SDK, latency model off.

1,000 PUT+GET pairs (virtual networks: a long-running-operation type, answered at once when the
model is off) through NetworkManagementClient from two client processes (the SDK's own Python
overhead per request is larger than the server's, so one GIL-bound client cannot saturate it).
Figures: requests per second as the clients see them, the server's own handling time (p50/p99
from /_sandbox/stats) and CPU per request. The machine is shared, so the run is repeated ROUNDS
times and the best round counts (each round is recorded). Target: >= 500 requests/s.
Results: bench/results/sandbox.json.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from tests.fixtures.sandbox import SandboxHandle, start_sandbox, stop_sandbox

RESULTS = Path(__file__).parent / "results" / "sandbox.json"
PAIRS = 1000
CLIENTS = 2
ROUNDS = 3
TARGET_RPS = 500
LOCATION = {"location": "westeurope"}


def machine() -> dict[str, object]:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_pairs(env: dict[str, str], group: str, start: int, count: int) -> None:
    os.environ.update(env)
    net = SandboxHandle(env, None, Path()).client(NetworkManagementClient)  # type: ignore[arg-type]
    body = {**LOCATION, "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}}
    for i in range(start, start + count):
        name = f"vnet-{i}"
        made = net.virtual_networks.begin_create_or_update(group, name, body).result()
        assert made.provisioning_state == "Succeeded"
        assert net.virtual_networks.get(group, name).name == name


def one_round(sandbox: SandboxHandle, pool: ProcessPoolExecutor) -> dict[str, Any]:
    sandbox.reset()
    sandbox.client(ResourceManagementClient).resource_groups.create_or_update("bench", LOCATION)
    counts = [PAIRS // CLIENTS + (1 if c < PAIRS % CLIENTS else 0) for c in range(CLIENTS)]
    cpu_before = cpu_seconds(sandbox.process.pid)
    started = time.perf_counter()
    for f in [pool.submit(run_pairs, sandbox.env, "bench", c * 10000, counts[c]) for c in range(CLIENTS)]:
        f.result()
    wall = time.perf_counter() - started
    server_cpu = cpu_seconds(sandbox.process.pid) - cpu_before
    stats = sandbox.stats()
    requests = PAIRS * 2
    return {
        "requests": requests,
        "server_requests_counted": sandbox.counters()["total"],
        "wall_seconds": round(wall, 3),
        "requests_per_second": round(requests / wall, 1),
        "server_cpu_ms_per_request": round(server_cpu * 1000 / requests, 3),
        # What one core of server could answer at this cost: how far the sandbox is from a bottleneck.
        "server_capacity_rps_per_core": round(requests / server_cpu, 1) if server_cpu else None,
        "server_p50_ms": stats.get("p50_ms"),
        "server_p99_ms": stats.get("p99_ms"),
        "server_max_ms": stats.get("max_ms"),
    }


def main() -> int:
    sandbox = start_sandbox("--no-azurite", latency_scale=0)
    rounds = []
    try:
        os.environ.update(sandbox.env)
        sandbox.client(ResourceManagementClient).resource_groups.create_or_update("bench", LOCATION)
        with ProcessPoolExecutor(CLIENTS) as pool:
            # Each client process pays its imports and token once, before any clock starts.
            list(pool.map(run_pairs, [sandbox.env] * CLIENTS, ["bench"] * CLIENTS, [90000, 90001], [1, 1]))
            rounds = [one_round(sandbox, pool) for _ in range(ROUNDS)]
    finally:
        stop_sandbox(sandbox)
    best = max(rounds, key=lambda r: float(r["requests_per_second"]))
    figures = {"pairs": PAIRS, "client_processes": CLIENTS, "best": best, "rounds": rounds}
    result = {
        "name": "sandbox",
        "machine": machine(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "figures": figures,
        "targets": {"requests_per_second": TARGET_RPS},
        "met": float(best["requests_per_second"]) >= TARGET_RPS,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if result["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
