"""The root object: one state directory, its registry, its disk space, and what it started."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from kaib.sandbox.runtime import commands
from kaib.sandbox.runtime.errors import CommandFailed
from kaib.sandbox.runtime.forwarder import Route
from kaib.sandbox.runtime.names import runtime_prefix
from kaib.sandbox.runtime.registry import Record, Registry, process_start_time
from kaib.sandbox.runtime.support import check_support

DEFAULT_ROOT = Path("/run/kaib-runtime")
# Host services appear to every sandbox network on this address (bound in each network's namespace).
SERVICE_IP = "100.127.255.254"


class Runtime:
    """Owns everything one sandbox made. Use as a context manager, or call `close()` (a full sweep).

    Disks (VM upper layers and captured image layers) live on a tmpfs of our own under the state dir:
    overlayfs refuses a lower layer below another lower layer's root, and the host root `/` is one.
    """

    def __init__(self, state_dir: Path | None = None, *, service_ip: str = SERVICE_IP) -> None:
        check_support()
        from kaib.sandbox.runtime.sweep import sweep_orphans

        sweep_orphans(DEFAULT_ROOT)  # what killed test runs and crashed sandboxes left behind
        self.id = secrets.token_hex(3)
        self.state_dir = state_dir or DEFAULT_ROOT / self.id
        self.service_ip = service_ip
        self.registry = Registry(self.state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        owner = {"id": self.id, "pid": os.getpid(), "start_time": process_start_time(os.getpid())}
        (self.state_dir / "owner.tmp").write_text(json.dumps(owner))
        os.replace(self.state_dir / "owner.tmp", self.state_dir / "owner.json")
        self.disks = self.state_dir / "disks"
        self.disks.mkdir(exist_ok=True)
        self.registry.add(Record("mount", str(self.disks)))
        commands.run(
            ["mount", "-t", "tmpfs", "-o", "mode=700", f"{runtime_prefix(self.id)}disks", str(self.disks)]
        )

    @property
    def prefix(self) -> str:
        """Every namespace of this runtime starts with this."""
        return runtime_prefix(self.id)

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        from kaib.sandbox.runtime.sweep import sweep

        sweep(self.state_dir)

    def image_path(self, name: str) -> Path:
        """Where a captured image layer named `name` is kept (on the runtime's tmpfs)."""
        from kaib.sandbox.runtime.names import digest, slug

        return self.disks / "images" / f"{slug(name)}-{digest(self.id, 'image', name)}"

    # Processes ------------------------------------------------------------------------------------

    def spawn(self, label: str, argv: Sequence[str], **popen: object) -> subprocess.Popen[bytes]:
        """Start a process in a session of its own and record it, so a sweep can kill its group."""
        proc: subprocess.Popen[bytes] = subprocess.Popen(list(argv), start_new_session=True, **popen)  # type: ignore[call-overload]
        self.registry.add(Record("process", f"{label}:{proc.pid}", proc.pid, process_start_time(proc.pid)))
        return proc

    def reap(self, proc: subprocess.Popen[bytes], label: str, timeout: float = 5.0) -> None:
        """Stop a process this runtime spawned (its whole process group) and forget it."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
        self.registry.remove("process", f"{label}:{proc.pid}")

    def run_in(
        self,
        namespace: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        **popen: object,
    ) -> subprocess.Popen[bytes]:
        """Run a container group's process in an attached network namespace.

        Only the network is isolated: the process sees the host filesystem, as `ip netns exec` would.
        It is recorded, and killed by `close()`/`sweep` if still running.
        """
        return self.spawn(
            f"run-in:{namespace}", ["nsenter", f"--net=/run/netns/{namespace}", "--", *argv], env=env, **popen
        )

    def forward(self, label: str, routes: Sequence[Route]) -> subprocess.Popen[bytes]:
        """Start a forwarder process for these routes; returns once all of them are listening."""
        arg = json.dumps([r.to_json() for r in routes])
        proc = self.spawn(
            f"forwarder:{label}",
            [sys.executable, "-m", "kaib.sandbox.runtime", "forward", arg],
            stdout=subprocess.PIPE,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != b"ready":
            proc.wait(5)
            raise CommandFailed(["forwarder", label], proc.returncode or -1, line.decode(errors="replace"))
        return proc


def wait_for(predicate: object, timeout: float, interval: float = 0.02) -> bool:
    """Poll a zero-argument callable until it returns true or the timeout passes."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
