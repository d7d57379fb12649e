"""`kaib dev up` / `kaib dev down` / `kaib dev env`: the local environment for people.

`up` starts a control plane and the sandbox in the background and prints `export` lines for
`eval "$(kaib dev up)"`; `down` stops everything `up` started. Progress goes to stderr so that
stdout stays safe to eval.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

from kaib.devenv import assets
from kaib.devenv.layout import DevLayout
from kaib.devenv.supervisor import RUNTIMES, supervisor_argv


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["up", "down", "env"], help="start, stop, or print the exports")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for `up` (default 300)")
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default="real",
        help="real (default): sandbox VMs and builder containers run, needs root; modelled: ARM only",
    )
    parser.add_argument(
        "--latency-scale",
        type=float,
        default=None,
        help="multiply the sandbox's realistic Azure latencies (e.g. 0.1 for a ten times faster Azure)",
    )


def _alive(layout: DevLayout) -> int | None:
    try:
        pid = int(layout.pid_file.read_text())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None


def up(layout: DevLayout, args: argparse.Namespace) -> int:
    timeout = args.timeout
    if _alive(layout) and layout.env_file.exists():
        print("kaib dev: already running", file=sys.stderr)
        sys.stdout.write(layout.env_file.read_text())
        return 0
    assets.ensure(log=True)  # the first time, this builds the binaries in the foreground, with progress
    layout.root.mkdir(parents=True, exist_ok=True)
    layout.env_file.unlink(missing_ok=True)
    print("kaib dev: starting the control plane and the sandbox...", file=sys.stderr, flush=True)
    with layout.log.open("ab") as log:
        proc = subprocess.Popen(
            supervisor_argv(layout.root, args.runtime, args.latency_scale),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives this command and the terminal that ran it
        )
    deadline = time.monotonic() + timeout
    while not layout.env_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.terminate()
            tail = layout.log.read_text(errors="replace")[-2000:]
            print(f"kaib dev: failed to start; {layout.log} ends:\n{tail}", file=sys.stderr)
            return 1
        time.sleep(0.2)
    sys.stdout.write(layout.env_file.read_text())
    print(f"kaib dev: up (logs in {layout.root}); stop with `kaib dev down`", file=sys.stderr)
    return 0


def down(layout: DevLayout, timeout: float) -> int:
    pid = _alive(layout)
    if pid is None:
        print("kaib dev: not running", file=sys.stderr)
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(layout) == pid:
        if time.monotonic() > deadline:
            print(f"kaib dev: supervisor {pid} did not stop; killing it", file=sys.stderr)
            os.killpg(pid, signal.SIGKILL)
            break
        time.sleep(0.2)
    print("kaib dev: stopped", file=sys.stderr)
    return 0


def main(args: argparse.Namespace) -> int:
    layout = DevLayout.default()
    if args.action == "up":
        return up(layout, args)
    if args.action == "down":
        return down(layout, args.timeout)
    if layout.env_file.exists() and _alive(layout):
        sys.stdout.write(layout.env_file.read_text())
        return 0
    print('kaib dev: not running; start it with `eval "$(kaib dev up)"`', file=sys.stderr)
    return 1
