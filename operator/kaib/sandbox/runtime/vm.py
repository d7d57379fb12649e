"""A sandbox VM: sshd in its own mount, PID and UTS namespaces, on an overlay root, in an attached
network namespace. The host root (read-only) stands for the platform image; captured layers stack on it.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kaib.sandbox.runtime import commands, names
from kaib.sandbox.runtime.errors import RuntimeUnavailable
from kaib.sandbox.runtime.netns import read_banner
from kaib.sandbox.runtime.runtime import Runtime, wait_for

BOOT_SCRIPT = Path(__file__).with_name("vm.sh")

# The host root stands for a platform image, so a VM made from it sees the standard top-level
# directories only; people's homes, the host's own state and its SSH host keys are hidden (an
# overlay whiteout, or an opaque empty directory), in the VM's first upper layer, so images keep that.
PLATFORM_TOP = {"bin", "boot", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "run", "sbin", "sys",
                "tmp", "usr", "var", "home", "media", "mnt", "opt", "root", "srv"}  # fmt: skip
PLATFORM_EMPTY = ("home", "media", "mnt", "opt", "root", "srv", "var/tmp", "var/log")


def _whiteout(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(path, stat.S_IFCHR, os.makedev(0, 0))


def _prepare_platform_disk(upper: Path) -> None:
    """Hide the host's private parts in a fresh upper layer over the host root."""
    for entry in os.listdir("/"):
        if entry not in PLATFORM_TOP:
            _whiteout(upper / entry)
    for name in PLATFORM_EMPTY:
        if Path("/", name).is_dir():
            opaque = upper / name
            opaque.mkdir(parents=True, exist_ok=True)
            os.chmod(opaque, stat.S_IMODE(os.stat(Path("/", name)).st_mode))
            os.setxattr(opaque, "trusted.overlay.opaque", b"y")
    for key in Path("/etc/ssh").glob("ssh_host_*"):
        _whiteout(upper / "etc" / "ssh" / key.name)


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
        fresh = not self.upper_dir.exists()
        for d in (self.upper_dir, self.work_dir, self.root_dir, self.console_log.parent):
            d.mkdir(parents=True, exist_ok=True)
        if fresh and not self.layers:
            _prepare_platform_disk(self.upper_dir)
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
