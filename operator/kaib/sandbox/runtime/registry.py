"""The on-disk record of what a runtime made, written before each thing is made.

A crashed or killed process leaves its records behind, so `sweep` can still remove its namespaces,
processes and mounts. One JSON file per object under `<state dir>/registry/`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from kaib.sandbox.runtime.names import digest


@dataclass(frozen=True)
class Record:
    kind: str  # "netns", "process" or "mount"
    name: str  # namespace name, process label, or mount point
    pid: int = 0
    start_time: str = ""  # field 22 of /proc/<pid>/stat, so a reused pid is never killed


class Registry:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "registry"

    def _path(self, kind: str, name: str) -> Path:
        return self.dir / f"{kind}-{digest(kind, name, length=16)}.json"

    def add(self, record: Record) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self._path(record.kind, record.name)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(record)))
        os.replace(tmp, path)

    def remove(self, kind: str, name: str) -> None:
        self._path(kind, name).unlink(missing_ok=True)

    def records(self) -> list[Record]:
        if not self.dir.exists():
            return []
        return [Record(**json.loads(p.read_text())) for p in sorted(self.dir.glob("*.json"))]


def process_start_time(pid: int) -> str:
    """The kernel's start time of a process ('' if it is gone): with the pid, its identity."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # The command name (field 2) may hold spaces; fields after it are plain.
    return stat.rsplit(")", 1)[1].split()[19]
