"""One build for real: the sandbox's real runtime (namespaced VMs and networks), the builder agent
running real Packer over SSH from the container group into the build VM, then a managed image.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.controlplane import Kube
from tests.fixtures.sandbox import SandboxHandle
from tests.integration.test_engine import (
    IMAGES_RG,
    LOCATION,
    Operator,
    apply,
    assert_nothing_left,
    build,
    condition,
    read_blob,
    template,
    wait_phase,
)

pytestmark = [
    pytest.mark.skipif(shutil.which("packer") is None, reason="packer is not installed (scripts/setup.sh)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox's real runtime needs root (namespaces)"),
]


@pytest.fixture(scope="module")
def real_operator(
    kube: Kube, real_sandbox: SandboxHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    op = Operator(kube, real_sandbox, tmp_path_factory.mktemp("operator-real") / "operator.log")
    op.start()
    try:
        yield op
    finally:
        op.stop()


def container_logs(sandbox: SandboxHandle, status: dict[str, Any]) -> str:
    from azure.mgmt.containerinstance import ContainerInstanceManagementClient

    group = status["stagingResourceGroup"].rsplit("/", 1)[-1]
    client = sandbox.client(ContainerInstanceManagementClient)
    try:
        logs = client.containers.list_logs(group, f"kaib-{status['buildId']}-builder", "builder")
    except Exception as exc:
        return f"container logs: {exc}"
    return str(logs.content)[-4000:]


def test_real_customization_through_the_builder_agent(
    kube: Kube, real_sandbox: SandboxHandle, real_operator: Operator
) -> None:
    from azure.mgmt.resource.resources import ResourceManagementClient

    sandbox = real_sandbox
    sandbox.client(ResourceManagementClient).resource_groups.create_or_update(
        IMAGES_RG, {"location": LOCATION}
    )
    images = f"/subscriptions/{sandbox.subscription_id}/resourceGroups/{IMAGES_RG}"
    tmpl = template("real", sandbox, images)
    tmpl["spec"]["customize"] = [
        {
            "type": "Shell",
            "name": "mark",
            "inline": ["echo built-by-kaib | sudo tee /etc/kaib-built", "uname -a"],
        }
    ]
    tmpl["spec"]["errorHandling"] = {"onCustomizerError": "abort"}  # keep the group to show its logs
    ns = kube.namespace(f"real-{uuid.uuid4().hex[:6]}")
    apply(kube, ns, tmpl, build("b", "real"))
    done = wait_phase(kube, real_operator, ns, "b", {"Succeeded", "Failed", "Canceled"}, timeout=300)
    status = done["status"]
    if status["phase"] != "Succeeded":
        details = []
        for name in ("result.json", "customization.log"):
            try:
                details.append(read_blob(sandbox, status, f"{status['buildId']}/{name}")[-3000:])
            except Exception as exc:
                details.append(f"{name}: {exc}")
        details.append(container_logs(sandbox, status))
        raise AssertionError(f"{status['message']}\n" + "\n".join(details))
    assert condition(done, "Customized")["status"] == "True"
    log = read_blob(sandbox, status, f"{status['buildId']}/customization.log")
    assert f"[{status['buildId']}] PACKER OUT" in log and "built-by-kaib" in log, log[-2000:]
    result = json.loads(read_blob(sandbox, status, f"{status['buildId']}/result.json"))
    assert result.get("status") == "Succeeded", result
    assert_nothing_left(sandbox, status["buildId"])
