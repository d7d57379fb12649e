"""Errors of the sandbox runtime."""

from __future__ import annotations


class RuntimeUnavailable(RuntimeError):
    """This machine cannot run sandbox VMs and networks; the message says exactly what is missing."""


class CommandFailed(RuntimeError):
    """A system command (ip, nft, mount, ...) failed; carries its argv and stderr."""

    def __init__(self, argv: list[str], returncode: int, stderr: str) -> None:
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(f"{' '.join(argv)} exited {returncode}: {stderr.strip()}")
