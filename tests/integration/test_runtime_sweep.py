"""Clean exits: after close() or a sweep of a killed runtime's leftovers, nothing of ours remains."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kaib.sandbox.runtime import Runtime, RuntimeUnavailable, missing, support, sweep_orphans
from kaib.sandbox.runtime.sweep import list_namespaces
from tests.fixtures.runtime import RuntimeKit

# Builds one of everything, reports what it made, then waits to be killed.
CRASHING_OWNER = """
import json, subprocess, sys, time
from pathlib import Path
from kaib.sandbox.runtime import Network, PrivateLinkProxy, Runtime, VirtualMachine
rt = Runtime(Path(sys.argv[1]))
net = Network.create(rt, "vnet", ["10.60.0.0/16"])
other = Network.create(rt, "other", ["10.70.0.0/16"])
vm = VirtualMachine(rt, "vm", net.attach("vm", "10.60.1.4", 24), "10.60.1.4", "azureuser", sys.argv[2])
vm.start()
aci = net.attach("aci", "10.60.2.4", 24)
sleeper = rt.run_in(aci, ["sleep", "600"])
forwarder = net.expose(1, 8080) and list(net._forwarders.values())[0]
PrivateLinkProxy.create(other, ("pe", "10.70.2.5", 24), net, ("proxy", "10.60.1.5", 24), vm.ip)
pids = [vm.process.pid, sleeper.pid, forwarder.pid]
inside = subprocess.run(["ip", "netns", "pids", vm.namespace], capture_output=True, text=True).stdout
pids += [int(p) for p in inside.split()]
print(json.dumps({"id": rt.id, "pids": pids}), flush=True)
time.sleep(600)
"""


def _running(pid: int) -> bool:
    """Alive and not a zombie (orphans of a killed owner wait for init to reap them)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _leftovers(runtime_id: str, state_dir: Path, pids: list[int]) -> dict[str, list[str]]:
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    return {
        "namespaces": list_namespaces(f"kaib-{runtime_id}-"),
        "mounts": [m for m in mounts if str(state_dir) in m or f"kaib-{runtime_id}-" in m],
        "processes": [str(p) for p in pids if _running(p)],
        "state": [str(state_dir)] if state_dir.exists() else [],
    }


def test_sweep_removes_what_a_killed_process_left(sandbox_runtime: RuntimeKit, tmp_path: Path) -> None:
    root = tmp_path / "runtimes"
    state_dir = root / "crashed"
    key = sandbox_runtime.ssh_key()
    owner = subprocess.Popen(
        [sys.executable, "-c", CRASHING_OWNER, str(state_dir), key.public], stdout=subprocess.PIPE, text=True
    )
    try:
        assert owner.stdout is not None
        made = json.loads(owner.stdout.readline())
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    before = _leftovers(made["id"], state_dir, made["pids"])
    assert len(before["namespaces"]) == 6 and before["mounts"] and len(before["processes"]) >= 4, before

    reports = sweep_orphans(root)

    assert len(reports) == 1 and len(reports[0].namespaces) == 6
    assert _leftovers(made["id"], state_dir, made["pids"]) == {
        "namespaces": [],
        "mounts": [],
        "processes": [],
        "state": [],
    }


def test_sweep_orphans_leaves_live_runtimes_alone(sandbox_runtime: RuntimeKit) -> None:
    runtime = sandbox_runtime.runtime
    net = sandbox_runtime.network()
    sweep_orphans(runtime.state_dir.parent)  # may sweep others' orphans, never a live runtime
    assert net.namespace in list_namespaces()
    assert (runtime.state_dir / "owner.json").exists()


def test_close_leaves_nothing(tmp_path: Path) -> None:
    if missing():
        pytest.skip("sandbox runtime unavailable: missing " + "; ".join(missing()))
    key = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    from kaib.sandbox.runtime import Network, VirtualMachine

    with Runtime(tmp_path / "state") as rt:
        net = Network.create(rt, "vnet", ["10.60.0.0/16"])
        vm = VirtualMachine(
            rt, "vm", net.attach("vm", "10.60.1.4", 24), "10.60.1.4", "u", key.with_suffix(".pub").read_text()
        )
        vm.start()
        pids = [
            int(p)
            for p in subprocess.run(
                ["ip", "netns", "pids", vm.namespace], capture_output=True, text=True
            ).stdout.split()
        ]
        assert pids
    assert _leftovers(rt.id, rt.state_dir, pids) == {
        "namespaces": [],
        "mounts": [],
        "processes": [],
        "state": [],
    }


def test_refuses_to_pretend_without_root_or_tools(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    real_which = support.shutil.which
    monkeypatch.setattr(support.shutil, "which", lambda cmd: None if cmd == "nft" else real_which(cmd))
    with pytest.raises(RuntimeUnavailable) as caught:
        Runtime(tmp_path / "state")
    message = str(caught.value)
    assert "root privileges (running as uid 1000" in message
    assert "the `nft` command (Debian package nftables)" in message
    assert not (tmp_path / "state").exists()  # refused before making anything
