#!/usr/bin/env python3
"""Copy the generated CRDs (crds/*.yaml) into the Helm chart (charts/kaib/crds/). `--check` only compares.

The chart holds copies, not symlinks, so every consumer (helm package, Argo CD, a plain git checkout)
sees the same files; tests/unit/test_chart_crds.py fails when the copies drift.
Run: `python3 scripts/sync_chart_crds.py` after `scripts/gen_crds.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "crds"
CHART_CRDS = ROOT / "charts" / "kaib" / "crds"


def chart_copy(source: Path) -> str:
    """The chart's copy: a leading document separator, because `helm show crds` concatenates the
    files and `helm show crds | kubectl apply -f -` must still see one document per CRD."""
    return "---\n" + source.read_text()


def stale() -> list[str]:
    """Names of the generated CRDs whose chart copy is missing or different."""
    return [p.name for p in sorted(SOURCE.glob("*.yaml")) if _read(CHART_CRDS / p.name) != chart_copy(p)]


def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


def main(argv: list[str]) -> int:
    names = stale()
    if "--check" in argv:
        for name in names:
            print(
                f"charts/kaib/crds/{name} differs from crds/{name}: run scripts/sync_chart_crds.py",
                file=sys.stderr,
            )
        return 1 if names else 0
    for name in names:
        (CHART_CRDS / name).write_text(chart_copy(SOURCE / name))
        print(f"copied crds/{name} -> charts/kaib/crds/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
