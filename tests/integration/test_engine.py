"""The build engine end to end: `kaib run` as a process, the real control plane, the sandbox.

The sandbox's container groups are modelled (no builder runtime): they terminate after the modelled
latency with the configured exit code and write result.json where KAIB_LOG_CONTAINER_URL says.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.controlplane import Kube
from tests.fixtures.sandbox import SandboxHandle

GROUP, VERSION = "kaib.dev", "v1alpha1"
LOCATION = "westus"
IMAGES_RG = "images"


class Operator:
    def __init__(self, kube: Kube, sandbox: SandboxHandle, log_path: Path) -> None:
        self.kube, self.sandbox, self.log_path = kube, sandbox, log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            **self.sandbox.env,
            "KUBECONFIG": self.kube.kubeconfig,
            "KAIB_POLLING_INTERVAL": "0.05",
        }
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "kaib.cli", "run", "--watch-timeout", "60"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


@pytest.fixture(scope="module")
def operator(
    kube: Kube, sandbox: SandboxHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    op = Operator(kube, sandbox, tmp_path_factory.mktemp("operator") / "operator.log")
    op.start()
    try:
        yield op
    finally:
        op.stop()


@pytest.fixture(scope="module")
def images_group(sandbox: SandboxHandle) -> str:
    from azure.mgmt.resource.resources import ResourceManagementClient

    client = sandbox.client(ResourceManagementClient)
    client.resource_groups.create_or_update(IMAGES_RG, {"location": LOCATION})
    return f"/subscriptions/{sandbox.subscription_id}/resourceGroups/{IMAGES_RG}"


def template(name: str, sandbox: SandboxHandle, images_group: str, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "source": {
            "type": "PlatformImage",
            "publisher": "Canonical",
            "offer": "ubuntu-24_04-lts",
            "sku": "server",
            "version": "latest",
        },
        "customize": [{"type": "Shell", "name": "hello", "inline": ["echo hello"]}],
        "distribute": [
            {
                "type": "ManagedImage",
                "runOutputName": "golden",
                "imageId": f"{images_group}/providers/Microsoft.Compute/images/{name}-img",
                "location": LOCATION,
            }
        ],
        "vmProfile": {"vmSize": "Standard_B2s"},
        "azure": {"subscriptionId": sandbox.subscription_id, "location": LOCATION},
    }
    spec.update(extra)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ImageTemplate",
        "metadata": {"name": name},
        "spec": spec,
    }


def build(name: str, template_name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ImageBuild",
        "metadata": {"name": name},
        "spec": {"templateRef": {"name": template_name}},
    }


def apply(kube: Kube, namespace: str, *docs: dict[str, Any]) -> None:
    for doc in docs:
        kube.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(doc))


def get(kube: Kube, namespace: str, kind: str, name: str) -> dict[str, Any]:
    out = kube.kubectl("get", "-n", namespace, kind, name, "-o", "json").stdout
    result: dict[str, Any] = json.loads(out)
    return result


def wait_for(what: str, check: Callable[[], Any], timeout: float, op: Operator) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert op.process is not None and op.process.poll() is None, f"the operator died\n{op.log()}"
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n--- operator log ---\n{op.log()}")


def wait_phase(
    kube: Kube, op: Operator, namespace: str, name: str, phases: set[str], timeout: float = 90
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = get(kube, namespace, "imagebuild", name)
        return obj if (obj.get("status") or {}).get("phase") in phases else None

    try:
        result: dict[str, Any] = wait_for(f"{name} in {phases}", check, timeout, op)
    except AssertionError:
        status = get(kube, namespace, "imagebuild", name).get("status")
        raise AssertionError(f"status: {json.dumps(status, indent=1)[-4000:]}\n{op.log()}") from None
    return result


def owned(sandbox: SandboxHandle, build_id: str) -> list[dict[str, Any]]:
    return [r for r in sandbox.inventory() if (r.get("tags") or {}).get("kaib.dev/build-id") == build_id]


def creates_per_resource(sandbox: SandboxHandle, build_id: str) -> Counter[str]:
    """PUTs answered 201 (created) per resource path, for this build's names."""
    created: Counter[str] = Counter()
    for rec in sandbox.requests(limit=20000):
        if rec.get("method") == "PUT" and rec.get("status") == 201 and build_id in str(rec.get("path")):
            created[str(rec["path"]).split("?")[0].lower()] += 1
    return created


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return dict(c)
    raise AssertionError(f"no condition {type_}: {obj.get('status')}")


def test_no_vnet_build_with_managed_image_succeeds(
    kube: Kube, sandbox: SandboxHandle, operator: Operator, images_group: str
) -> None:
    ns = kube.namespace(f"novnet-{uuid.uuid4().hex[:6]}")
    apply(kube, ns, template("ubuntu", sandbox, images_group), build("ubuntu-1", "ubuntu"))
    done = wait_phase(kube, operator, ns, "ubuntu-1", {"Succeeded", "Failed", "Canceled"})
    status = done["status"]
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)
    assert condition(done, "Ready")["status"] == "True"
    assert condition(done, "Stalled")["status"] == "False"
    assert condition(done, "Reconciling")["status"] == "False"
    assert all(
        condition(done, c)["status"] == "True" for c in ("StagingReady", "NetworkReady", "BuildVMReady")
    )
    assert status["exactSourceVersion"] == "24.04.202411030"
    # runOutputs name an artifact that exists in the sandbox
    (output,) = status["runOutputs"]
    assert output["runOutputName"] == "golden" and output["provisioningState"] == "Succeeded"
    ids = {r["id"].lower() for r in sandbox.inventory()}
    assert output["artifactId"].lower() in ids
    # afterwards only the staging group and its storage account remain of what kaib made
    assert owned(sandbox, status["buildId"]) == []
    staging = status["stagingResourceGroup"].lower()
    left = sorted(r["type"] for r in sandbox.inventory() if r["id"].lower().startswith(staging))
    assert left == ["Microsoft.Resources/resourceGroups", "Microsoft.Storage/storageAccounts"] or left == [
        "Microsoft.Storage/storageAccounts"
    ], left
    # nothing created twice
    created = creates_per_resource(sandbox, status["buildId"])
    assert created and max(created.values()) == 1, created
    # kubectl wait works on Ready
    kube.kubectl("wait", "-n", ns, "--for=condition=Ready", "imagebuild/ubuntu-1", "--timeout=5s")
