"""Writing a rendered build to a directory (for `kaib render` and for the builder agent)."""

from __future__ import annotations

import json
from pathlib import Path

from kaib.packer.model import RenderedBuild

PLAN_FILE = "plan.json"


def write_build(build: RenderedBuild, out_dir: Path, *, plan: bool = True) -> list[Path]:
    """Write every template and generated script (and plan.json), returning the paths written."""
    written = []
    for rel, content in sorted(build.files().items()):
        path = _inside(out_dir, rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        # newline="": keep the user's line endings byte for byte.
        with path.open("w", encoding="utf-8", newline="") as f:
            f.write(content)
        written.append(path)
    if plan:
        path = out_dir / PLAN_FILE
        path.write_text(json.dumps(build.to_plan(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written


def _inside(root: Path, rel: str) -> Path:
    """`root/rel`, refusing paths that would escape `root` (a plan is input to the agent)."""
    path = (root / rel).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ValueError(f"path {rel!r} leaves {root}")
    return path
