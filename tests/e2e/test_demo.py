"""The README's first command, as a user runs it: `kaib demo --exit` on this machine.

A real control plane, the sandbox with its real runtime (a build VM with sshd on an overlay root,
the builder agent running real Packer over SSH through the sandbox network), the operator as a
process, and kubectl. It must end Succeeded, show live log lines and leave nothing running.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _ours() -> set[str]:
    """Processes and namespaces the demo could leave behind."""
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    procs = {
        line.strip() for line in ps.splitlines() if "kaib-demo-" in line or "kaib.devenv.supervisor" in line
    }
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    return procs | {f"netns {n.split()[0]}" for n in netns.splitlines() if n.startswith("kaib")}


@pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox's real runtime needs root (namespaces, mounts)")
def test_demo_builds_the_quickstart_image_and_cleans_up() -> None:
    before = _ours()
    result = subprocess.run(
        [sys.executable, "-m", "kaib.cli", "demo", "--exit", "--timeout", "600"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-6000:]
    assert "build quickstart-1 ended: Succeeded" in out
    # The customizer ran on the build VM, and `kaib logs -f` showed its output while the build ran.
    assert "log |" in out and "PACKER OUT" in out, out[-6000:]
    assert "built by kaib" in out, out[-6000:]
    assert result.stdout.index("built by kaib") < result.stdout.index("ended: Succeeded")
    assert "/providers/Microsoft.Compute/images/quickstart" in out
    assert _ours() <= before, f"left behind: {_ours() - before}"
