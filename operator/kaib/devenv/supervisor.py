"""The background process behind `kaib dev up`: owns the control plane and the sandbox.

One process to stop makes `kaib dev down` simple and leak-free: on SIGTERM it stops the sandbox
(which stops what it started) and the control plane, then removes its files. If either child dies
on its own, the supervisor stops the other and exits, so nothing half-alive is left behind.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from kaib.devenv.controlplane import ControlPlane
from kaib.devenv.layout import DevLayout, crd_dir

# real: sandbox VMs, networks and the builder container run (root and namespaces needed);
# modelled: ARM only, container groups end after their modelled latency.
RUNTIMES = ("real", "modelled")


def supervisor_argv(root: Path, runtime: str, latency_scale: float | None) -> list[str]:
    """How `kaib dev up` and `kaib demo` start this module."""
    argv = [sys.executable, "-m", "kaib.devenv.supervisor", "--dir", str(root), "--runtime", runtime]
    if latency_scale is not None:
        argv += ["--latency-scale", str(latency_scale)]
    return argv


def _start_sandbox(layout: DevLayout, runtime: str, latency_scale: float | None) -> subprocess.Popen[bytes]:
    layout.sandbox_env.unlink(missing_ok=True)
    argv = [
        sys.executable,
        "-m",
        "kaib.cli",
        "sandbox",
        "--env-file",
        str(layout.sandbox_env),
        "--state",
        str(layout.root / "sandbox-state.json"),
        "--runtime",
        runtime,
    ]
    if latency_scale is not None:
        argv += ["--latency-scale", str(latency_scale)]
    with layout.sandbox_log.open("ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not layout.sandbox_env.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the sandbox did not start; see {layout.sandbox_log}")
        time.sleep(0.2)
    return proc


def run(layout: DevLayout, runtime: str, latency_scale: float | None = None) -> int:
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    plane = ControlPlane(layout.root / "controlplane")
    sandbox: subprocess.Popen[bytes] | None = None
    try:
        plane.start()
        plane.install_crds(crd_dir())
        sandbox = _start_sandbox(layout, runtime, latency_scale)
        exports = [f"export KUBECONFIG={plane.kubeconfig}"]
        exports += [line for line in layout.sandbox_env.read_text().splitlines() if line.strip()]
        tmp = layout.env_file.with_suffix(".tmp")
        tmp.write_text("\n".join(exports) + "\n")
        tmp.rename(layout.env_file)  # `up` waits for this file: write it whole or not at all
        print("kaib dev: ready", flush=True)
        while not stopping:
            if sandbox.poll() is not None:
                print(f"kaib dev: the sandbox exited ({sandbox.returncode}); stopping", flush=True)
                return 1
            if not plane.alive():
                print("kaib dev: the control plane exited; stopping", flush=True)
                return 1
            time.sleep(0.5)
        return 0
    except Exception as exc:  # reported in the log that `up` shows
        print(f"kaib dev: {exc}", flush=True)
        return 1
    finally:
        if sandbox and sandbox.poll() is None:
            sandbox.terminate()
            try:
                sandbox.wait(timeout=30)
            except subprocess.TimeoutExpired:
                sandbox.kill()
        plane.stop()
        layout.env_file.unlink(missing_ok=True)
        layout.pid_file.unlink(missing_ok=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--runtime", choices=RUNTIMES, default="real")
    parser.add_argument("--latency-scale", type=float, default=None)
    args = parser.parse_args()
    layout = DevLayout(args.dir)
    layout.pid_file.write_text(str(os.getpid()))
    return run(layout, args.runtime, args.latency_scale)


if __name__ == "__main__":
    sys.exit(main())
