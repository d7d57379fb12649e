#!/usr/bin/env python3
"""Build helm and kubeconform from their Go modules into ~/.cache/kaib/tools (idempotent).

Layout: ``$CACHE/tools/<name>-<version>-<flags hash>/<name>`` (a version or flag change rebuilds)
and ``$CACHE/tools/bin/<name>``, a symlink to the current one; tests and docs use ``bin/``.
Neither module has replace directives, so ``go install module/cmd@version`` works directly.

Measured on the 2-core machine (2026-11-25): with empty Go module and build caches helm takes about
5 min 45 s and kubeconform 14 s; with the modules the control-plane build already fetched, helm
takes about 1.5 min; afterwards nothing is rebuilt.

Usage: ``python3 scripts/build_tools.py [--print-bin]``. Standard library only: setup.sh runs it
before or without the project environment.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GoTool:
    name: str
    package: str
    version: str
    # -X variables the upstream Makefile sets: the real version instead of a placeholder, and for
    # helm the Kubernetes version of its client-go (the default of `helm template`'s capabilities).
    link_vars: tuple[tuple[str, str], ...]


TOOLS = (
    GoTool(
        "helm",
        "helm.sh/helm/v3/cmd/helm",
        "v3.21.4",
        (
            ("helm.sh/helm/v3/internal/version.version", "v3.21.4"),
            # helm v3.21.4 is built on client-go v0.36: Kubernetes 1.36.
            *((f"helm.sh/helm/v3/pkg/{pkg}.k8sVersionMajor", "1") for pkg in ("lint/rules", "chartutil")),
            *((f"helm.sh/helm/v3/pkg/{pkg}.k8sVersionMinor", "36") for pkg in ("lint/rules", "chartutil")),
        ),
    ),
    GoTool(
        "kubeconform", "github.com/yannh/kubeconform/cmd/kubeconform", "v0.7.0", (("main.version", "v0.7.0"),)
    ),
)


def cache_dir() -> Path:
    base = os.environ.get("KAIB_CACHE")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "kaib"


def tools_bin() -> Path:
    return cache_dir() / "tools" / "bin"


def say(message: str) -> None:
    print(f"build_tools: {message}", file=sys.stderr, flush=True)


def build(tool: GoTool) -> Path:
    """Return the binary for ``tool``, building it first when this version is not cached yet."""
    ldflags = " ".join(["-s", "-w", *(f"-X {var}={value}" for var, value in tool.link_vars)])
    # The folder names the flags too, so changing them rebuilds.
    flavour = hashlib.sha256(ldflags.encode()).hexdigest()[:8]
    target_dir = cache_dir() / "tools" / f"{tool.name}-{tool.version}-{flavour}"
    binary = target_dir / tool.name
    if not binary.exists():
        go = shutil.which("go") or "/usr/local/go/bin/go"
        say(f"building {tool.name} {tool.version} from {tool.package} (a few minutes, cold)")
        started = time.monotonic()
        partial = target_dir.with_name(target_dir.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        env = {**os.environ, "GOBIN": str(partial), "CGO_ENABLED": "0", "GOTOOLCHAIN": "local"}
        subprocess.run(
            [go, "install", "-trimpath", "-ldflags", ldflags, f"{tool.package}@{tool.version}"],
            env=env,
            check=True,
        )
        # Rename last, so an interrupted build never looks finished.
        shutil.rmtree(target_dir, ignore_errors=True)
        partial.rename(target_dir)
        say(f"built {tool.name} {tool.version} in {time.monotonic() - started:.0f} s")
    else:
        say(f"{tool.name} {tool.version}: cached")
    link = tools_bin() / tool.name
    link.parent.mkdir(parents=True, exist_ok=True)
    if not (link.is_symlink() and link.resolve() == binary.resolve()):
        link.unlink(missing_ok=True)
        link.symlink_to(binary)
    return link


def main(argv: list[str]) -> int:
    for tool in TOOLS:
        build(tool)
    if "--print-bin" in argv:
        print(tools_bin())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
