#!/usr/bin/env python3
"""Write crds/*.yaml from the kaib.api models (the one source of truth). `--check` only compares.

Run: `uv run --frozen python scripts/gen_crds.py` after changing a model; tests/unit/test_api_crds.py
fails when the files and the models disagree.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kaib.api.schema import crd_files

CRDS = Path(__file__).resolve().parents[1] / "crds"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if crds/ differs from the models")
    args = parser.parse_args()
    stale = [name for name, text in crd_files().items() if _read(CRDS / name) != text]
    if args.check:
        for name in stale:
            print(f"crds/{name} is stale: run scripts/gen_crds.py", file=sys.stderr)
        return 1 if stale else 0
    CRDS.mkdir(exist_ok=True)
    for name, text in crd_files().items():
        (CRDS / name).write_text(text)
        print(f"wrote crds/{name}")
    return 0


def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


if __name__ == "__main__":
    sys.exit(main())
