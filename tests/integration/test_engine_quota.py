"""Quota in preflight: with too few vCPUs left in the build VM's family, or no container group left
in the region (the sandbox serves its quota model as Microsoft.Compute and
Microsoft.ContainerInstance usages), the build fails before creating anything, naming the quota,
what it needs, the limit and the current use."""

from __future__ import annotations

import uuid

from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.containerinstance import ContainerInstanceManagementClient

from kaib.devenv.manifests import LOCATION, image_build
from tests.fixtures.builds import apply, condition, events, unique_template, wait_phase
from tests.fixtures.controlplane import Kube
from tests.fixtures.operator import StartOperator
from tests.fixtures.sandbox import SandboxHandle

FAMILY = "standardBSFamily"  # Standard_B2s: 2 vCPUs


def test_a_build_over_its_family_quota_fails_in_preflight_with_nothing_created(
    kube: Kube, sandbox: SandboxHandle, start_operator: StartOperator
) -> None:
    ns = kube.namespace(f"quota-{uuid.uuid4().hex[:6]}")
    served = {u.name.value: u for u in sandbox.client(ComputeManagementClient).usage.list(LOCATION)}
    assert served[FAMILY].unit == "Count" and served["cores"].limit >= 2
    in_use = int(served[FAMILY].current_value)
    aci = {
        u.name.value: u
        for u in sandbox.client(ContainerInstanceManagementClient).location.list_usage(LOCATION)
    }
    groups_in_use = int(aci["ContainerGroups"].current_value)
    sandbox.set_quota("compute", **{FAMILY: in_use + 1})  # one vCPU left; the build needs two
    try:
        op = start_operator(namespace=ns)
        apply(kube, ns, unique_template("q", sandbox), image_build("q-1", "q"))
        final = wait_phase(kube, op, ns, "q-1", timeout=120)
        q_events = events(kube, ns, "q-1")
        # The same for the builder's container group: no ContainerGroups left in the region.
        sandbox.set_quota("compute", **{FAMILY: int(served[FAMILY].limit)})
        sandbox.set_quota("aci", ContainerGroups=groups_in_use)
        apply(kube, ns, unique_template("qa", sandbox), image_build("qa-1", "qa"))
        aci_final = wait_phase(kube, op, ns, "qa-1", timeout=120)
        op.stop()
    finally:
        sandbox.set_quota("compute", **{FAMILY: int(served[FAMILY].limit)})
        sandbox.set_quota("aci", ContainerGroups=int(aci["ContainerGroups"].limit))
    aci_message = aci_final["status"]["message"]
    assert aci_final["status"]["phase"] == "Failed", aci_final["status"]
    assert f"not enough container instance ContainerGroups quota in {LOCATION}" in aci_message, aci_message
    assert f"the limit is {groups_in_use} and {groups_in_use} are in use" in aci_message
    assert "az container list-usage" in aci_message and "nothing was created" in aci_message
    status = final["status"]
    assert status["phase"] == "Failed", status
    message = status["message"]
    assert f"not enough {FAMILY} vCPUs quota in {LOCATION}" in message, message
    assert "the build needs 2 (build VM Standard_B2s (2))" in message
    assert f"the limit is {in_use + 1} and {in_use} are in use" in message
    assert "request more quota" in message and "nothing was created" in message
    preflight = condition(final, "PreflightPassed")
    assert preflight["status"] == "False" and preflight["reason"] == "QuotaExceeded"
    assert condition(final, "Stalled")["status"] == "True"
    assert not status.get("stagingResourceGroup")
    writes = [
        r
        for r in sandbox.requests(limit=5000)
        if r["method"] in ("PUT", "POST") and status["buildId"] in r["path"]
    ]
    assert writes == [], writes
    assert "PreflightFailed" in {e["reason"] for e in q_events if e["type"] == "Warning"}
