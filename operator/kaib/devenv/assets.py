"""Control-plane binaries (etcd, kube-apiserver, kubectl) for tests and `kaib dev up`.

No package registry ships kube-apiserver, so we build it from its Go module once and cache it
outside the work tree. envtest's lookup convention is honoured first, so a user who already has
envtest binaries never builds anything.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

K8S_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.16"
BINARIES = ("etcd", "kube-apiserver", "kubectl")


@dataclass(frozen=True)
class Assets:
    etcd: Path
    kube_apiserver: Path
    kubectl: Path


def cache_root() -> Path:
    if os.environ.get("KAIB_CACHE"):
        return Path(os.environ["KAIB_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kaib"


def bin_dir() -> Path:
    return cache_root() / "controlplane" / f"k8s-{K8S_VERSION}-etcd-{ETCD_VERSION}"


def _from_environment() -> Assets | None:
    """envtest's convention: KUBEBUILDER_ASSETS, or TEST_ASSET_* for each binary."""
    folder = os.environ.get("KUBEBUILDER_ASSETS")
    env = {
        "etcd": os.environ.get("TEST_ASSET_ETCD"),
        "kube-apiserver": os.environ.get("TEST_ASSET_KUBE_APISERVER"),
        "kubectl": os.environ.get("TEST_ASSET_KUBECTL"),
    }
    paths: dict[str, Path] = {}
    for name in BINARIES:
        if env[name]:
            paths[name] = Path(env[name] or "")
        elif folder and (Path(folder) / name).exists():
            paths[name] = Path(folder) / name
    if len(paths) == len(BINARIES):
        return Assets(paths["etcd"], paths["kube-apiserver"], paths["kubectl"])
    return None


def find() -> Assets | None:
    """The binaries if they exist already (environment first, then our cache)."""
    found = _from_environment()
    if found:
        return found
    d = bin_dir()
    if all((d / name).exists() for name in BINARIES):
        return Assets(d / "etcd", d / "kube-apiserver", d / "kubectl")
    return None


def _go(args: list[str], cwd: Path, log: bool) -> str:
    env = dict(os.environ, GOTOOLCHAIN="local", CGO_ENABLED="0", GOFLAGS="-mod=mod")
    if log:
        print(f"  $ go {' '.join(args)}", file=sys.stderr, flush=True)
    result = subprocess.run(["go", *args], cwd=cwd, env=env, text=True, capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"go {' '.join(args)} failed:\n{result.stderr[-4000:]}")
    return result.stdout


def _wrapper_module(work: Path, name: str) -> None:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    _go(["mod", "init", name], work, log=False)


def _build_kubernetes(out: Path, log: bool) -> None:
    """kube-apiserver and kubectl through a wrapper module that pins the staging modules.

    k8s.io/kubernetes requires its staging modules at v0.0.0 with replace directives, which
    `go install` refuses; replacing each with its published v0.X.Y makes a normal build work.
    """
    work = cache_root() / "controlplane" / "build-kubernetes"
    _wrapper_module(work, "kaib.dev/controlplane/kubernetes")
    info = json.loads(_go(["mod", "download", "-json", f"k8s.io/kubernetes@{K8S_VERSION}"], work, log))
    staging_version = "v0." + K8S_VERSION.removeprefix("v1.")
    replaces = []
    for line in Path(info["GoMod"]).read_text().splitlines():
        parts = line.strip().split()
        if len(parts) >= 2 and parts[0].startswith("k8s.io/") and parts[1] == "v0.0.0":
            replaces.append(f"-replace={parts[0]}={parts[0]}@{staging_version}")
    _go(["mod", "edit", *replaces], work, log=False)
    _go(["get", f"k8s.io/kubernetes@{K8S_VERSION}"], work, log)
    minor = K8S_VERSION.split(".")[1]
    ldflags = (
        f"-s -w -X k8s.io/component-base/version.gitVersion={K8S_VERSION} "
        f"-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor={minor} "
        f"-X k8s.io/client-go/pkg/version.gitVersion={K8S_VERSION}"
    )
    for cmd in ("kube-apiserver", "kubectl"):
        _go(
            ["build", "-trimpath", "-ldflags", ldflags, "-o", str(out / cmd), f"k8s.io/kubernetes/cmd/{cmd}"],
            work,
            log,
        )


def _build_etcd(out: Path, log: bool) -> None:
    work = cache_root() / "controlplane" / "build-etcd"
    _wrapper_module(work, "kaib.dev/controlplane/etcd")
    _go(["get", f"go.etcd.io/etcd/server/v3@{ETCD_VERSION}"], work, log)
    _go(
        ["build", "-trimpath", "-ldflags", "-s -w", "-o", str(out / "etcd"), "go.etcd.io/etcd/server/v3"],
        work,
        log,
    )


def ensure(log: bool = True) -> Assets:
    """Find the binaries, building the missing ones (10 to 25 minutes cold on two cores)."""
    found = find()
    if found:
        return found
    out = bin_dir()
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "etcd").exists():
        if log:
            print(
                f"kaib: building etcd {ETCD_VERSION} from its Go module (once)...",
                file=sys.stderr,
                flush=True,
            )
        _build_etcd(out, log)
    if not ((out / "kube-apiserver").exists() and (out / "kubectl").exists()):
        if log:
            print(
                f"kaib: building kube-apiserver and kubectl {K8S_VERSION} from Go modules "
                "(once; 10 to 25 minutes on two cores)...",
                file=sys.stderr,
                flush=True,
            )
        _build_kubernetes(out, log)
    found = find()
    assert found is not None
    return found


if __name__ == "__main__":
    assets = ensure()
    print(f"etcd={assets.etcd}\nkube-apiserver={assets.kube_apiserver}\nkubectl={assets.kubectl}")
