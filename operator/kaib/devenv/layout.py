"""Where the local environment keeps its files."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from kaib.devenv.assets import cache_root

REPO = Path(__file__).resolve().parents[3]


def crd_dir() -> Path:
    """The CRDs of this checkout (kaib runs from its source tree; the chart ships them for clusters)."""
    path = REPO / "crds"
    if not any(path.glob("*.yaml")):
        raise FileNotFoundError(f"no CRDs in {path}: run kaib from its source checkout")
    return path


@dataclass(frozen=True)
class DevLayout:
    root: Path

    @classmethod
    def default(cls) -> DevLayout:
        return cls(Path(os.environ.get("KAIB_DEV_DIR") or cache_root() / "dev"))

    @property
    def pid_file(self) -> Path:
        return self.root / "supervisor.pid"

    @property
    def env_file(self) -> Path:
        return self.root / "env.sh"

    @property
    def log(self) -> Path:
        return self.root / "supervisor.log"

    @property
    def sandbox_env(self) -> Path:
        return self.root / "sandbox.env"

    @property
    def sandbox_log(self) -> Path:
        return self.root / "sandbox.log"
