"""Running the system commands the runtime is built from (ip, nft, mount, kill)."""

from __future__ import annotations

import subprocess

from kaib.sandbox.runtime.errors import CommandFailed


def run(argv: list[str], *, stdin: str | None = None, check: bool = True) -> str:
    """Run argv, return its stdout; raise CommandFailed (with stderr) when it fails and check is set."""
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise CommandFailed(argv, proc.returncode, proc.stderr)
    return proc.stdout


def ip(*args: str, namespace: str | None = None, check: bool = True) -> str:
    """`ip [-n namespace] args...`."""
    prefix = ["ip", "-n", namespace] if namespace else ["ip"]
    return run([*prefix, *args], check=check)


def nft_apply(namespace: str, ruleset: str) -> None:
    """Load an nft script atomically inside a network namespace."""
    run(["ip", "netns", "exec", namespace, "nft", "-f", "-"], stdin=ruleset)
