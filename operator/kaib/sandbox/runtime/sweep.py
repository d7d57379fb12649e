"""Removing everything a runtime made, from its registry: also after its process was killed."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from kaib.sandbox.runtime import commands
from kaib.sandbox.runtime.names import PREFIX, runtime_prefix
from kaib.sandbox.runtime.registry import Registry, process_start_time


@dataclass
class SweepReport:
    processes: list[int] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)


def list_namespaces(prefix: str = PREFIX) -> list[str]:
    out = commands.ip("netns", "list", check=False)
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]


def _kill_group(pid: int) -> None:
    for kill in (os.killpg, os.kill):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """True while the process runs; a zombie counts as gone (and is reaped if it is our child)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_gone(pids: list[int], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.01)


def remove_namespace(namespace: str) -> list[int]:
    """Kill every process inside a network namespace, then delete it (its veths and nft go with it)."""
    pids = [int(p) for p in commands.ip("netns", "pids", namespace, check=False).split()]
    for pid in pids:
        _kill_group(pid)
    _wait_gone(pids)
    commands.ip("netns", "del", namespace, check=False)
    return pids


def sweep(state_dir: Path) -> SweepReport:
    """Kill recorded processes, delete recorded and prefixed namespaces, unmount, remove the state dir."""
    report = SweepReport()
    registry = Registry(state_dir)
    records = registry.records()
    killed = []
    for rec in records:
        if rec.kind == "process" and rec.start_time and process_start_time(rec.pid) == rec.start_time:
            _kill_group(rec.pid)
            killed.append(rec.pid)
    _wait_gone(killed)
    report.processes += killed
    namespaces = [r.name for r in records if r.kind == "netns"]
    owner = state_dir / "owner.json"
    with contextlib.suppress(OSError, ValueError):  # the prefix catches what a crash left unrecorded
        namespaces += list_namespaces(runtime_prefix(json.loads(owner.read_text())["id"]))
    existing = set(list_namespaces())
    for ns in dict.fromkeys(namespaces):
        if ns in existing:
            report.processes += remove_namespace(ns)
            report.namespaces.append(ns)
    for rec in records:
        if rec.kind == "mount" and os.path.ismount(rec.name):
            commands.run(["umount", "-l", rec.name], check=False)
            report.mounts.append(rec.name)
    shutil.rmtree(state_dir, ignore_errors=True)
    return report


def sweep_orphans(root: Path) -> list[SweepReport]:
    """Sweep every runtime under `root` whose owning process is gone (crashed or killed)."""
    reports = []
    for owner in sorted(root.glob("*/owner.json")):
        try:
            info = json.loads(owner.read_text())
        except (OSError, ValueError):
            continue  # being written or swept by someone else right now
        if process_start_time(info["pid"]) != info["start_time"]:
            reports.append(sweep(owner.parent))
    return reports
