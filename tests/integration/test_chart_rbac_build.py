"""RBAC proved: `kaib run`, started exactly as the chart's Deployment starts it (its args and plain
env), with nothing but the chart's ServiceAccount token, completes a build against the sandbox and
then lets the build and its template be deleted (finalizers), never hitting a Forbidden."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from kaib import health
from kaib.devenv.manifests import image_build, image_template
from tests.fixtures import builds
from tests.fixtures.builds import FINAL, apply
from tests.fixtures.controlplane import Kube
from tests.fixtures.operator import Operator
from tests.fixtures.sandbox import SandboxHandle
from tests.integration import test_chart_rbac
from tests.integration.test_chart_render import CHART, KUBE_VERSION, _run

helm = test_chart_rbac.helm  # the fixture


@dataclass(frozen=True)
class Mode:
    """One way to install the chart; names differ per mode so both can share a control plane."""

    release: str
    namespace: str
    team: str
    sets: tuple[str, ...]


MODES = {
    "cluster-wide": Mode("bcw", "kaib-rbac-bcw", "rbac-bcw-team", ("peering.name=rbac-bcw",)),
    "watched-namespace": Mode(
        "bns", "kaib-rbac-bns", "rbac-bns-team", ("peering.name=rbac-bns", "watchNamespaces={rbac-bns-team}")
    ),
}


def rendered_container(helm: Path, mode: Mode) -> dict[str, Any]:
    args = [
        str(helm),
        "template",
        mode.release,
        str(CHART),
        "-n",
        mode.namespace,
        "--kube-version",
        KUBE_VERSION,
    ]
    sets = mode.sets
    for item in sets:
        args += ["--set", item]
    docs = [d for d in yaml.safe_load_all(_run(args)) if d]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


@pytest.fixture(params=list(MODES))
def chart_operator(
    request: pytest.FixtureRequest, kube: Kube, sandbox: SandboxHandle, helm: Path, tmp_path: Path
) -> Iterator[tuple[Mode, Operator]]:
    mode = MODES[request.param]
    with running_chart_operator(kube, sandbox, helm, tmp_path, mode) as operator:
        yield mode, operator


@contextlib.contextmanager
def running_chart_operator(
    kube: Kube, sandbox: SandboxHandle, helm: Path, tmp_path: Path, mode: Mode
) -> Iterator[Operator]:
    """Install the chart in ``mode`` and run `kaib run` with its args, plain env and SA token."""
    kube.namespace(mode.team)
    account = test_chart_rbac.install(kube, helm, mode.release, mode.namespace, *mode.sets)
    token = kube.kubectl("-n", mode.namespace, "create", "token", account, "--duration=1h").stdout.strip()
    config = kube.plane.kubeconfig_for_token(token, tmp_path / "operator.kubeconfig")

    container = rendered_container(helm, mode)
    plain_env = {e["name"]: str(e["value"]) for e in container["env"] if "value" in e and e["name"] != "HOME"}
    assert container["command"] == ["kaib", "run"]
    # The chart's args and plain env; a free metrics port, not the chart's 8080 (tests run side by side).
    operator = Operator(
        kube,
        sandbox,
        tmp_path / "operator.log",
        args=container.get("args", []),
        env=plain_env,
        kubeconfig=str(config),
    )
    operator.start()
    try:
        yield operator
    finally:
        operator.stop()


def template(
    sandbox: SandboxHandle, images_group: str, namespace: str, name: str = "rbac-ubuntu"
) -> dict[str, Any]:
    # A fresh image name each time: kaib never takes over an image another build made (a retried test's).
    image = f"{namespace}-{name}-{uuid.uuid4().hex[:6]}"
    return image_template(name, sandbox, images_group, namespace=namespace, image_name=image)


def build(namespace: str, name: str = "rbac-ubuntu-1", template_name: str = "rbac-ubuntu") -> dict[str, Any]:
    return image_build(name, template_name, namespace=namespace)


def images_group(sandbox: SandboxHandle) -> str:
    return builds.images_group(sandbox, "rbac-images")


def get_object(kube: Kube, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    result = kube.kubectl("-n", namespace, "get", kind, name, "-o", "json", check=False)
    if result.returncode != 0:
        assert "NotFound" in result.stderr, result.stderr
        return None
    obj: dict[str, Any] = json.loads(result.stdout)
    return obj


def build_status(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    obj = get_object(kube, "imagebuild", namespace, name) or {}
    status: dict[str, Any] = obj.get("status") or {}
    return status


def wait_final(
    kube: Kube,
    operator: Operator,
    namespace: str,
    name: str,
    during: Callable[[], None] | None = None,
    observed: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Poll the build until a final phase (each polled object appended to ``observed``); fail fast
    when the operator dies or is refused."""
    deadline = time.monotonic() + 120
    while True:
        obj = get_object(kube, "imagebuild", namespace, name) or {}
        if observed is not None:
            observed.append(obj)
        status: dict[str, Any] = obj.get("status") or {}
        if status.get("phase") in FINAL:
            return status
        assert operator.alive(), f"the operator died\n{operator.log()[-6000:]}"
        assert "Forbidden" not in operator.log(), f"the operator was refused:\n{operator.log()[-6000:]}"
        assert time.monotonic() < deadline, f"no final phase\n{operator.log()[-6000:]}"
        if during is not None:
            during()
        time.sleep(0.3)


def wait_gone(kube: Kube, kind: str, namespace: str, name: str, observed: list[dict[str, Any]]) -> None:
    """Poll until the object is gone (its finalizers done), appending each polled object."""
    deadline = time.monotonic() + 90
    while (obj := get_object(kube, kind, namespace, name)) is not None:
        observed.append(obj)
        assert time.monotonic() < deadline, f"{kind}/{name} still there: {obj.get('status')}"
        time.sleep(0.2)


def test_operator_with_only_the_chart_token_completes_a_build(
    kube: Kube, sandbox: SandboxHandle, chart_operator: tuple[Mode, Operator]
) -> None:
    mode, operator = chart_operator
    team = mode.team
    apply(kube, team, template(sandbox, images_group(sandbox), team), build(team))
    observed: list[dict[str, Any]] = []
    final = wait_final(kube, operator, team, "rbac-ubuntu-1", observed=observed)
    assert final["phase"] == "Succeeded", f"{json.dumps(final, indent=1)[-3000:]}\n{operator.log()[-6000:]}"
    kube.kubectl("wait", "-n", team, "--for=condition=Ready", "imagebuild/rbac-ubuntu-1", "--timeout=5s")
    # kstatus on the real statuses: in progress, then current. (Before the operator's first status
    # write kstatus says Current for any object: that window is cli-utils' rule, not the engine's.)
    assert health.statuses([o for o in observed if o.get("status")]) == [
        health.Status.IN_PROGRESS,
        health.Status.CURRENT,
    ]

    # Deletion goes through the operator's finalizers, with the same token; kstatus: Terminating.
    deleting: list[dict[str, Any]] = []
    kube.kubectl("-n", team, "delete", "imagebuild", "rbac-ubuntu-1", "--wait=false")
    wait_gone(kube, "imagebuild", team, "rbac-ubuntu-1", deleting)
    kube.kubectl("-n", team, "delete", "imagetemplate", "rbac-ubuntu", "--wait=false")
    wait_gone(kube, "imagetemplate", team, "rbac-ubuntu", deleting)
    assert set(health.statuses(deleting)) <= {health.Status.TERMINATING}

    log = operator.log()
    for complaint in ("Forbidden", "forbidden", "Not enough permissions", " 403"):
        assert complaint not in log, f"{complaint!r} in the operator's log:\n{log[-6000:]}"
