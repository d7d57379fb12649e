"""Benchmark: sandbox VMs. Start time and memory per VM, and 20 VMs at once.

Start time: from VirtualMachine.start() to sshd's banner on the VM's private address. Memory: PSS
(shared pages split fairly) of every process in the VM's PID namespace, idle, plus what its disk
(upper layer, on tmpfs) holds after boot. Results: bench/results/vms.json.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from kaib.sandbox.runtime import Network, Runtime, VirtualMachine, missing

RESULTS = Path(__file__).parent / "results" / "vms.json"
SEQUENTIAL = 5
CONCURRENT = 20
TARGETS = {
    "start_p95_s": 1.0,  # one VM answers SSH within a second
    "pss_per_idle_vm_mib": 16.0,
    "concurrent_all_up_s": 10.0,  # 20 VMs started together all answer SSH
    "concurrent_pss_total_mib": 400.0,
}


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def vm_memory_kib(vm: VirtualMachine) -> tuple[int, int]:
    """(PSS of the VM's processes, KiB its disk holds) for one running VM."""
    out = subprocess.run(["ip", "netns", "pids", vm.namespace], capture_output=True, text=True).stdout
    pss = sum(_pss_kib(int(p)) for p in out.split())
    du = subprocess.run(["du", "-sk", str(vm.upper_dir)], capture_output=True, text=True).stdout
    return pss, int(du.split()[0]) if du else 0


def ssh_ok(rt: Runtime, client: str, vm: VirtualMachine, key: Path) -> bool:
    options = ["BatchMode=yes", "StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "LogLevel=ERROR"]
    argv = ["ssh", "-i", str(key), *(f"-o{o}" for o in options), f"azureuser@{vm.ip}", "true"]
    proc = rt.run_in(client, argv)
    return proc.wait(30) == 0


def machine() -> dict[str, object]:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory_mib": mem_kib // 1024, "kernel": platform.release()}


def run() -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp, Runtime() as rt:
        key = Path(tmp) / "key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        public = key.with_suffix(".pub").read_text()
        t0 = time.perf_counter()
        net = Network.create(rt, "bench", ["10.60.0.0/16"])
        client = net.attach("client", "10.60.0.4", 16)
        network_s = time.perf_counter() - t0

        # One at a time.
        starts, pss, disk = [], [], []
        for i in range(SEQUENTIAL):
            ns = net.attach(f"seq{i}", f"10.60.1.{10 + i}", 16)
            vm = VirtualMachine(rt, f"seq{i}", ns, f"10.60.1.{10 + i}", "azureuser", public)
            t = time.perf_counter()
            vm.start()
            starts.append(time.perf_counter() - t)
            assert ssh_ok(rt, client, vm, key), f"ssh into seq{i}"
            time.sleep(0.2)  # let the session's processes leave before measuring the idle VM
            p, d = vm_memory_kib(vm)
            pss.append(p)
            disk.append(d)
            vm.delete()

        # Twenty at once.
        vms = []
        for i in range(CONCURRENT):
            ip = f"10.60.2.{10 + i}"
            vms.append(VirtualMachine(rt, f"par{i}", net.attach(f"par{i}", ip, 16), ip, "azureuser", public))
        t = time.perf_counter()
        with ThreadPoolExecutor(CONCURRENT) as pool:
            list(pool.map(lambda vm: vm.start(timeout=60), vms))
        all_up = time.perf_counter() - t
        reachable = sum(ssh_ok(rt, client, vm, key) for vm in vms)
        time.sleep(0.2)
        total_pss = sum(vm_memory_kib(vm)[0] for vm in vms)

    starts.sort()
    figures = {
        "network_create_and_attach_s": round(network_s, 4),
        "start_s": [round(s, 4) for s in starts],
        "start_median_s": round(statistics.median(starts), 4),
        "start_p95_s": round(starts[min(len(starts) - 1, round(0.95 * (len(starts) - 1)))], 4),
        "pss_per_idle_vm_mib": round(statistics.median(pss) / 1024, 2),
        "disk_per_booted_vm_kib": int(statistics.median(disk)),
        "concurrent_vms": CONCURRENT,
        "concurrent_all_up_s": round(all_up, 3),
        "concurrent_reachable_over_ssh": reachable,
        "concurrent_pss_total_mib": round(total_pss / 1024, 1),
    }
    met = {name: figures[name] <= limit for name, limit in TARGETS.items()}  # type: ignore[operator]
    met["concurrent_all_reachable"] = reachable == CONCURRENT
    return {
        "name": "vms",
        "machine": machine(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "figures": figures,
        "targets": {**TARGETS, "concurrent_all_reachable": True},
        "met": met,
    }


def main() -> int:
    problems = missing()
    if problems:
        print("bench vms: sandbox runtime unavailable: missing " + "; ".join(problems), file=sys.stderr)
        return 2
    result = run()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if all(result["met"].values()) else 1  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.exit(main())
