"""The chart's RBAC on a real apiserver: the rendered chart is applied, a token of the operator's
ServiceAccount is minted with `kubectl create token`, and `kubectl auth can-i` (and a few real requests
with that token) show the operator can do exactly what it needs, and no more.

Two installs: cluster-wide (the default) and confined to watched namespaces.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.controlplane import Kube
from tests.integration.test_chart_render import CHART, KUBE_VERSION, _run, _script

# Rules every authenticated user has (system:basic-user): not the chart's doing.
BASIC_USER = {
    "selfsubjectreviews.authentication.k8s.io",
    "selfsubjectaccessreviews.authorization.k8s.io",
    "selfsubjectrulesreviews.authorization.k8s.io",
}
OBJECT_RULES = {
    "imagetemplates.kaib.dev": {"get", "list", "watch", "patch", "update"},
    "imagebuilds.kaib.dev": {"get", "list", "watch", "patch", "update", "create"},
    "imagetemplates.kaib.dev/status": {"get", "patch", "update"},
    "imagebuilds.kaib.dev/status": {"get", "patch", "update"},
    "imagetemplates.kaib.dev/finalizers": {"update"},
    "imagebuilds.kaib.dev/finalizers": {"update"},
    "secrets": {"create", "get", "list", "delete"},
    "events": {"create", "patch"},
    "events.events.k8s.io": {"create", "patch"},
}
CRDS = {"customresourcedefinitions.apiextensions.k8s.io": {"list", "watch"}}

Rules = dict[str, set[str]]
CanI = Callable[..., bool]


def parse_can_i_list(text: str) -> tuple[Rules, Rules]:
    """`kubectl auth can-i --list` as (resource -> verbs, "resource/name" -> verbs); URL rows dropped."""
    unnamed: Rules = {}
    named: Rules = {}
    for line in text.splitlines()[1:]:
        match = re.match(r"^(\S+)\s+\[(.*?)\]\s+\[(.*?)\]\s+\[(.*?)\]\s*$", line)
        if not match:
            continue  # a non-resource URL row starts with spaces
        resource, _urls, names, verbs = match.groups()
        if resource in BASIC_USER:
            continue
        for name in names.split() or [""]:
            key = f"{resource}/{name}" if name else resource
            (named if name else unnamed).setdefault(key, set()).update(verbs.split())
    return unnamed, named


@pytest.fixture(scope="module")
def helm() -> Path:
    path: Path = _script("build_tools").tools_bin() / "helm"
    if not path.exists():
        message = "helm not built: run scripts/build_tools.py (setup.sh does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def install(kube: Kube, helm: Path, release: str, namespace: str, *sets: str) -> str:
    """Apply the rendered chart (every object: the apiserver validates them too); return the SA name."""
    kube.kubectl("apply", "--server-side", "-f", str(CHART / "crds" / "kopf.dev_peerings.yaml"))
    kube.kubectl(
        "wait", "--for=condition=Established", "crd/kopfpeerings.kopf.dev", "crd/clusterkopfpeerings.kopf.dev"
    )
    kube.namespace(namespace)
    args = [str(helm), "template", release, str(CHART), "-n", namespace, "--kube-version", KUBE_VERSION]
    for item in sets:
        args += ["--set", item]
    manifests = _run(args)
    kube.kubectl("apply", "--server-side", "-f", "-", input=manifests)
    return f"{release}-kaib"


Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def token_kubectl(kube: Kube, tmp_path: Path, namespace: str, account: str) -> Kubectl:
    token = kube.kubectl("-n", namespace, "create", "token", account).stdout.strip()
    config = kube.plane.kubeconfig_for_token(token, tmp_path / f"{account}.kubeconfig")

    def as_operator(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return kube.kubectl(f"--kubeconfig={config}", *args, check=check)

    return as_operator


def can_i(
    kube: Kube, tmp_path: Path, namespace: str, account: str
) -> tuple[CanI, Callable[[str], tuple[Rules, Rules]]]:
    as_operator = token_kubectl(kube, tmp_path, namespace, account)

    def check(verb: str, resource: str, *extra: str) -> bool:
        result = as_operator("auth", "can-i", verb, resource, *extra)
        answer = result.stdout.strip()
        assert answer in ("yes", "no"), result
        return answer == "yes"

    def listing(ns: str) -> tuple[Rules, Rules]:
        result = as_operator("auth", "can-i", "--list", "-n", ns, check=True)
        return parse_can_i_list(result.stdout)

    return check, listing


def test_cluster_wide_install_grants_exactly_the_operators_needs(
    kube: Kube, helm: Path, tmp_path: Path
) -> None:
    ns = "kaib-rbac-all"
    account = install(kube, helm, "all", ns)
    check, listing = can_i(kube, tmp_path, ns, account)

    unnamed, named = listing("some-team")
    assert unnamed == {**OBJECT_RULES, **CRDS, "clusterkopfpeerings.kopf.dev": {"list", "watch"}}
    assert named == {"clusterkopfpeerings.kopf.dev/kaib": {"get", "patch"}}

    assert check("patch", "imagebuilds.kaib.dev", "--subresource=status", "-n", "any-namespace")
    assert check("create", "secrets", "-n", "any-namespace")
    assert check("patch", "clusterkopfpeerings.kopf.dev/kaib")
    for verb, resource in [
        ("delete", "imagebuilds.kaib.dev"),
        ("create", "imagetemplates.kaib.dev"),
        ("update", "secrets"),
        ("delete", "namespaces"),
        ("create", "pods"),
        ("get", "configmaps"),
        ("create", "customresourcedefinitions.apiextensions.k8s.io"),
        ("create", "clusterroles.rbac.authorization.k8s.io"),
        ("impersonate", "serviceaccounts"),
        ("patch", "clusterkopfpeerings.kopf.dev/someone-else"),
        ("list", "kopfpeerings.kopf.dev"),
    ]:
        assert not check(verb, resource, "-n", "some-team"), f"{verb} {resource} should be denied"


def test_watched_namespaces_confine_the_operator(kube: Kube, helm: Path, tmp_path: Path) -> None:
    ns = "kaib-rbac-ns"
    watched = ["rbac-team-a", "rbac-team-b"]
    for name in [*watched, "rbac-elsewhere"]:
        kube.namespace(name)
    account = install(kube, helm, "confined", ns, "watchNamespaces={rbac-team-a,rbac-team-b}")
    check, listing = can_i(kube, tmp_path, ns, account)

    for team in watched:
        unnamed, named = listing(team)
        assert unnamed == {
            **OBJECT_RULES,
            **CRDS,
            "namespaces": {"list", "watch"},
            "kopfpeerings.kopf.dev": {"list", "watch"},
        }
        assert named == {"kopfpeerings.kopf.dev/kaib": {"get", "patch"}}

    unnamed, named = listing("rbac-elsewhere")
    assert unnamed == {**CRDS, "namespaces": {"list", "watch"}}
    assert named == {}
    assert not check("get", "secrets", "-n", "rbac-elsewhere")
    assert not check("list", "secrets", "--all-namespaces")
    assert not check("list", "imagebuilds.kaib.dev", "--all-namespaces")
    assert not check("delete", "namespaces/rbac-team-a")
    assert not check("patch", "clusterkopfpeerings.kopf.dev/kaib")


def test_token_really_works_in_a_watched_namespace_only(kube: Kube, helm: Path, tmp_path: Path) -> None:
    ns = "kaib-rbac-real"
    kube.namespace("rbac-real-team")
    kube.namespace("rbac-real-other")
    account = install(kube, helm, "real", ns, "watchNamespaces={rbac-real-team}")
    as_operator = token_kubectl(kube, tmp_path, ns, account)

    created = as_operator(
        "-n", "rbac-real-team", "create", "secret", "generic", "b1-ssh", "--from-literal=k=v"
    )
    assert created.returncode == 0, created.stderr
    kube.kubectl("-n", "rbac-real-other", "create", "secret", "generic", "precious", "--from-literal=k=v")
    stolen = as_operator("-n", "rbac-real-other", "get", "secret", "precious")
    assert stolen.returncode != 0 and "forbidden" in stolen.stderr

    # kopf's keep-alive: a merge patch of the peering object's status.
    patched = as_operator(
        "-n",
        "rbac-real-team",
        "patch",
        "kopfpeering",
        "kaib",
        "--type=merge",
        "-p",
        '{"status":{"me":{"priority":100}}}',
    )
    assert patched.returncode == 0, patched.stderr
    deleted = as_operator("-n", "rbac-real-team", "delete", "secret", "b1-ssh")
    assert deleted.returncode == 0, deleted.stderr


# --- kopf itself with nothing but the chart's token ----------------------------------------------

PROBE_OPERATOR = '''
"""A stand-in for kaib's engine: the same framework calls (watch, finalizer, progress annotations,
status patch, events, peering) plus a Secret per build, as the ServiceAccount."""
import asyncio

import kopf
from kubernetes import client, config

SELECT = {"kaib-probe": "yes"}


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_):
    settings.persistence.finalizer = "kaib.dev/probe"
    settings.watching.server_timeout = 10


def secrets():
    config.load_kube_config()
    return client.CoreV1Api()


@kopf.on.create("kaib.dev", "v1alpha1", "imagebuilds", labels=SELECT)
async def created(body, name, namespace, patch, **_):
    secret = {"metadata": {"name": f"{name}-probe"}, "stringData": {"k": "v"}}
    await asyncio.to_thread(secrets().create_namespaced_secret, namespace, secret)
    # kopf 1.45 posts events only when asked (kopf.info/warn/event), not for logger calls.
    kopf.info(body, reason="Probe", message="probe saw the build")
    patch.status["message"] = "seen by the probe"


@kopf.on.delete("kaib.dev", "v1alpha1", "imagebuilds", labels=SELECT)
async def deleted(name, namespace, **_):
    await asyncio.to_thread(secrets().delete_namespaced_secret, f"{name}-probe", namespace)
'''


def _wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("confined", [True, False], ids=["watched-namespace", "cluster-wide"])
def test_kopf_runs_with_only_the_chart_token(kube: Kube, helm: Path, tmp_path: Path, confined: bool) -> None:
    ns = "kaib-rbac-kopf-ns" if confined else "kaib-rbac-kopf-all"
    team = kube.namespace("rbac-kopf-team" if confined else "rbac-kopf-any")
    sets = [f"watchNamespaces={{{team}}}"] if confined else []
    release = "kopfns" if confined else "kopfall"
    account = install(kube, helm, release, ns, *sets)
    token = kube.kubectl("-n", ns, "create", "token", account).stdout.strip()
    config = kube.plane.kubeconfig_for_token(token, tmp_path / "operator.kubeconfig")
    script = tmp_path / "probe.py"
    script.write_text(PROBE_OPERATOR)
    scope = ["-n", team] if confined else ["-A"]
    log = tmp_path / "kopf.log"
    with log.open("w") as out:
        operator = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kopf",
                "run",
                str(script),
                "--verbose",
                "--peering",
                "kaib",
                "-p",
                "100",
                *scope,
            ],
            env={**os.environ, "KUBECONFIG": str(config)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        build = f"""
apiVersion: kaib.dev/v1alpha1
kind: ImageBuild
metadata: {{name: b1, namespace: {team}, labels: {{kaib-probe: "yes"}}}}
spec: {{templateRef: {{name: ubuntu}}}}
"""
        kube.kubectl("apply", "-f", "-", input=build)

        def status_message() -> str:
            return kube.kubectl(
                "-n", team, "get", "imagebuild", "b1", "-o", "jsonpath={.status.message}"
            ).stdout

        _wait_for(
            lambda: status_message() == "seen by the probe", f"the probe's status write\n{log.read_text()}"
        )
        assert kube.kubectl("-n", team, "get", "secret", "b1-probe", check=False).returncode == 0

        def events() -> str:
            return kube.kubectl("-n", team, "get", "events", "-o", "jsonpath={.items[*].message}").stdout

        _wait_for(lambda: "probe saw the build" in events(), f"the probe's event\n{log.read_text()}")
        peering = (
            ["-n", team, "get", "kopfpeering", "kaib"] if confined else ["get", "clusterkopfpeering", "kaib"]
        )
        _wait_for(
            lambda: "priority" in kube.kubectl(*peering, "-o", "jsonpath={.status}").stdout,
            "the peering keep-alive",
        )
        kube.kubectl("-n", team, "delete", "imagebuild", "b1", "--wait=true", "--timeout=30s")
        assert kube.kubectl("-n", team, "get", "secret", "b1-probe", check=False).returncode != 0
    finally:
        operator.terminate()
        operator.wait(timeout=30)
    text = log.read_text()
    # Without the "[2026-11-25 14:53:05,403]" prefixes: a timestamp's milliseconds can read 403.
    messages = "\n".join(re.sub(r"^\[[^\]]*\]", "", line) for line in text.splitlines())
    for complaint in ("403", "Forbidden", "forbidden", "Not enough permissions"):
        assert complaint not in messages, f"{complaint!r} in kopf's log:\n{text}"
