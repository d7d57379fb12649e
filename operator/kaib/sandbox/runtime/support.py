"""What the runtime needs from the machine, and a clear refusal when something is missing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from kaib.sandbox.runtime.errors import RuntimeUnavailable

# command -> the Debian package that provides it (scripts/setup.sh installs them).
COMMANDS = {
    "ip": "iproute2",
    "nft": "nftables",
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "mount": "mount",
    "chroot": "coreutils",
    "ssh-keygen": "openssh-client",
    "useradd": "passwd",
}
SSHD = Path("/usr/sbin/sshd")


def missing() -> list[str]:
    """Everything this machine lacks to run the sandbox runtime, in words; empty when all is there."""
    problems = []
    if os.geteuid() != 0:
        problems.append(f"root privileges (running as uid {os.geteuid()}; namespaces and mounts need root)")
    for command, package in COMMANDS.items():
        if shutil.which(command) is None:
            problems.append(f"the `{command}` command (Debian package {package})")
    if not SSHD.exists():
        problems.append(f"{SSHD} (Debian package openssh-server)")
    filesystems = Path("/proc/filesystems").read_text() if Path("/proc/filesystems").exists() else ""
    for fs in ("overlay", "tmpfs"):
        if fs not in filesystems.split():
            problems.append(f"the {fs} filesystem in the kernel (/proc/filesystems)")
    for ns in ("net", "mnt", "pid", "uts"):
        if not Path(f"/proc/self/ns/{ns}").exists():
            problems.append(f"{ns} namespaces in the kernel (/proc/self/ns/{ns})")
    if not Path("/proc/sys/net/bridge").exists():
        problems.append("bridge netfilter in the kernel (/proc/sys/net/bridge; NSG rules need it)")
    return problems


def check_support() -> None:
    """Raise RuntimeUnavailable naming every missing piece, rather than pretend to run VMs."""
    problems = missing()
    if problems:
        raise RuntimeUnavailable(
            "the sandbox runtime cannot run real VMs and networks here; missing: "
            + "; ".join(problems)
            + ". Run scripts/setup.sh as root on a Linux host with namespaces, overlayfs and nftables."
        )
