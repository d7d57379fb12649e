"""A sandbox VM: sshd in its own mount, PID and UTS namespaces, on an overlay root, in an attached
network namespace. The host root (read-only) stands for the platform image; captured layers stack on it.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kaib.sandbox.runtime import commands, names
from kaib.sandbox.runtime.errors import RuntimeUnavailable
from kaib.sandbox.runtime.netns import read_banner
from kaib.sandbox.runtime.runtime import Runtime, wait_for

BOOT_SCRIPT = Path(__file__).with_name("vm.sh")


@dataclass
class VirtualMachine:
    """`layers` are captured image layers, oldest first; the host root is always the bottom one."""

    runtime: Runtime
    name: str
    namespace: str  # from Network.attach
    ip: str
    admin_user: str
    ssh_public_key: str
    layers: Sequence[Path] = ()
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.id = names.digest(self.runtime.id, "vm", self.name, length=12)
        self.dir = self.runtime.disks / "vms" / f"{names.slug(self.name)}-{self.id}"
        self.upper_dir = self.dir / "upper"
        self.work_dir = self.dir / "work"
        self.root_dir = self.dir / "root"
        self.console_log = self.runtime.state_dir / "consoles" / f"{names.slug(self.name)}-{self.id}.log"

    @property
    def _label(self) -> str:
        return f"vm:{self.name}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 15.0) -> None:
        """Boot (or boot again after stop): returns once sshd answers on ip:22."""
        if self.running:
            return
        for d in (self.upper_dir, self.work_dir, self.root_dir, self.console_log.parent):
            d.mkdir(parents=True, exist_ok=True)
        lower = ":".join([*(str(p) for p in reversed(self.layers)), "/"])
        argv = [
            "nsenter", f"--net=/run/netns/{self.namespace}", "--",
            "unshare", "--mount", "--pid", "--uts", "--fork", "--kill-child", "--propagation", "private",
            "--", "/bin/sh", str(BOOT_SCRIPT),
            str(self.root_dir), str(self.upper_dir), str(self.work_dir), lower,
            names.slug(self.name, 63), self.id, self.ip, self.admin_user, self.ssh_public_key.strip(),
        ]  # fmt: skip
        with self.console_log.open("ab") as log:
            self.process = self.runtime.spawn(self._label, argv, stdout=log, stderr=subprocess.STDOUT)
        if not wait_for(lambda: not self.running or self._ssh_answers(), timeout):
            self.stop()
            raise RuntimeUnavailable(
                f"VM {self.name}: sshd did not answer in {timeout}s\n{self.console_tail()}"
            )
        if not self.running:
            raise RuntimeUnavailable(f"VM {self.name} failed to boot:\n{self.console_tail()}")

    def _ssh_answers(self) -> bool:
        try:
            return read_banner(self.namespace, self.ip, 22).startswith(b"SSH-")
        except OSError:
            return False

    def console_tail(self, lines: int = 30) -> str:
        if not self.console_log.exists():
            return ""
        return "\n".join(self.console_log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Deallocate: every process of the VM ends, its disk (upper_dir) stays."""
        if self.process is not None:
            self.runtime.reap(self.process, self._label)
            self.process = None

    def capture(self, dest: Path) -> Path:
        """Copy the VM's disk changes into `dest` as an image layer (whiteouts and xattrs kept).
        Stop the VM first, as Azure requires a deallocated VM for capture."""
        if self.running:
            raise RuntimeError(f"VM {self.name} is running; stop (deallocate) it before capture")
        dest.parent.mkdir(parents=True, exist_ok=True)
        commands.run(["cp", "-a", str(self.upper_dir), str(dest)])
        return dest

    def delete(self) -> None:
        """Stop and remove the disk. The network attachment is the caller's (the NIC outlives the VM)."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
