"""Every topology with every distribution type (issue #6): one build per topology, run in parallel in
three namespaces, each template distributing at once to a ManagedImage, a SharedImage (versioning
Latest) and a VHD in the staging account. For each build: Succeeded and Ready, three runOutputs naming
artifacts that exist, nothing of the build left but the staging group, its account and the VHD blob,
no resource created twice.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from azure.mgmt.compute import ComputeManagementClient
from azure.storage.blob import BlobClient, BlobServiceClient

from kaib.devenv.manifests import LOCATION, image_build
from tests.fixtures.builds import (
    apply,
    assert_only_staging_left,
    condition,
    events,
    images_group,
    unique_template,
    wait_phase,
)
from tests.fixtures.controlplane import Kube
from tests.fixtures.operator import Operator
from tests.fixtures.sandbox import SandboxHandle
from tests.integration.test_engine import read_blob, user_network
from tests.integration.test_engine_vhd import _assert_disk_vhd, _staging_account

__all__ = ["user_network"]  # a fixture: imported for pytest to find, not called

TOPOLOGIES = ("NoVNet", "SubnetOnly", "SubnetAndAci")
GALLERY = "matrix"


def created_types(sandbox: SandboxHandle, build_id: str) -> set[str]:
    """The types of the resources the build created (PUTs answered 201), lower case."""
    return {
        str(rec.get("type")).lower()
        for rec in sandbox.requests(limit=20000)
        if rec.get("method") == "PUT" and rec.get("status") == 201 and build_id in str(rec.get("path"))
    }


def vnet_config(topology: str, network: dict[str, str]) -> dict[str, str] | None:
    if topology == "SubnetOnly":
        return {"subnetId": network["build"]}
    if topology == "SubnetAndAci":
        return {"subnetId": network["build"], "containerInstanceSubnetId": network["aci"]}
    return None


def gallery_image(sandbox: SandboxHandle, group_id: str, name: str) -> str:
    """A fresh image definition in the gallery: concurrent Latest versioning into one definition would
    race for the same version, which is not what this file tests."""
    compute = sandbox.client(ComputeManagementClient)
    group = group_id.rsplit("/", 1)[-1]
    compute.galleries.begin_create_or_update(group, GALLERY, {"location": LOCATION}).result()
    definition = {
        "location": LOCATION,
        "properties": {
            "osType": "Linux",
            "osState": "Generalized",
            "hyperVGeneration": "V2",
            "identifier": {"publisher": "kaib", "offer": "matrix", "sku": name},
        },
    }
    compute.gallery_images.begin_create_or_update(group, GALLERY, name, definition).result()
    return f"{group_id}/providers/Microsoft.Compute/galleries/{GALLERY}/images/{name}"


def matrix_template(
    sandbox: SandboxHandle, topology: str, network: dict[str, str], gallery_image_id: str
) -> dict[str, Any]:
    tmpl = unique_template("t", sandbox)
    managed = tmpl["spec"]["distribute"][0]  # unique_template's fresh managed image
    tmpl["spec"]["distribute"] = [
        {**managed, "runOutputName": "managed"},
        {
            "type": "SharedImage",
            "runOutputName": "gallery",
            "galleryImageId": gallery_image_id,
            "versioning": {"scheme": "Latest"},
            "targetRegions": [{"name": LOCATION, "replicaCount": 1}],
        },
        {"type": "VHD", "runOutputName": "vhd"},
    ]
    vnet = vnet_config(topology, network)
    if vnet:
        tmpl["spec"]["vmProfile"] = {"vmSize": "Standard_B2s", "vnetConfig": vnet}
    return tmpl


@pytest.fixture(scope="module")
def matrix(
    kube: Kube, sandbox: SandboxHandle, operator: Operator, user_network: dict[str, str]
) -> dict[str, tuple[str, dict[str, Any]]]:
    """The three builds, applied together and waited for: topology -> (namespace, final build)."""
    group = images_group(sandbox)
    suffix = uuid.uuid4().hex[:6]
    namespaces: dict[str, str] = {}
    for topology in TOPOLOGIES:
        ns = kube.namespace(f"matrix-{topology.lower()}-{suffix}")
        image = gallery_image(sandbox, group, f"{topology.lower()}-{suffix}")
        apply(kube, ns, matrix_template(sandbox, topology, user_network, image), image_build("b", "t"))
        namespaces[topology] = ns
    return {t: (ns, wait_phase(kube, operator, ns, "b", timeout=120)) for t, ns in namespaces.items()}


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_every_distribution_type_succeeds_in_every_topology(
    kube: Kube, sandbox: SandboxHandle, matrix: dict[str, tuple[str, dict[str, Any]]], topology: str
) -> None:
    ns, done = matrix[topology]
    status = done["status"]
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)[-4000:]
    assert condition(done, "Ready")["status"] == "True"
    assert condition(done, "Stalled")["status"] == "False"
    assert condition(done, "Reconciling")["status"] == "False"
    for step in ("StagingReady", "NetworkReady", "BuildVMReady", "Customized", "Distributed"):
        assert condition(done, step)["status"] == "True", condition(done, step)
    assert status["exactSourceVersion"] == "24.04.202411030"
    build_id = status["buildId"]

    outputs = {o["runOutputName"]: o for o in status["runOutputs"]}
    assert sorted(outputs) == ["gallery", "managed", "vhd"], status["runOutputs"]
    assert all(o["provisioningState"] == "Succeeded" for o in outputs.values()), outputs
    inventory = {r["id"].lower(): r for r in sandbox.inventory()}
    # the managed image and the gallery image version exist; the version is the definition's first
    assert outputs["managed"]["artifactId"].lower() in inventory, outputs["managed"]
    version_id = outputs["gallery"]["artifactId"]
    assert version_id.lower().endswith("/versions/0.0.1"), version_id
    parts = version_id.strip("/").split("/")
    group, gallery, image, version = parts[3], parts[7], parts[9], parts[11]
    got = sandbox.client(ComputeManagementClient).gallery_image_versions.get(group, gallery, image, version)
    assert got.provisioning_state == "Succeeded", got
    # the VHD, in the staging account, is the build VM's generalized OS disk (its footer valid)
    account, endpoint, key = _staging_account(sandbox, status)
    expected = f"{endpoint.rstrip('/')}/vhds/{build_id}/vhd.vhd"
    assert outputs["vhd"]["artifactUri"] == expected, outputs["vhd"]
    credential = {"account_name": account, "account_key": key}
    _assert_disk_vhd(
        BlobClient.from_blob_url(expected, credential=credential).download_blob().readall(), status
    )
    service = BlobServiceClient(endpoint, credential=credential)
    vhds = [b.name for b in service.get_container_client("vhds").list_blobs()]
    assert vhds == [f"{build_id}/vhd.vhd"], vhds  # one copy, nothing else

    # afterwards: nothing tagged as the build's; in the staging group only its account (the VHD's home)
    assert_only_staging_left(sandbox, status)

    # the operator rendered the Packer plan for the builder agent beside the logs
    plan = json.loads(read_blob(sandbox, status, f"{build_id}/plan.json"))
    assert [p["name"] for p in plan["phases"]] == ["customize", "deprovision"]
    assert "echo hello" in plan["phases"][0]["template"]
    # an event at each step
    reasons = {e["reason"] for e in events(kube, ns, "b")}
    steps = {"Queued", "Started", "Preflight", "Staging", "Network", "Buildvm", "Builder", "Customize"}
    assert steps | {"Distribute", "CleaningUp", "Succeeded"} <= reasons, reasons

    # each topology makes its own network: a whole one, the proxy's, or none
    types = created_types(sandbox, build_id)
    if topology == "NoVNet":
        assert "microsoft.network/virtualnetworks" in types, types
        assert "microsoft.network/privatelinkservices" not in types, types
    elif topology == "SubnetAndAci":
        assert types == {
            "microsoft.network/networkinterfaces",
            "microsoft.compute/virtualmachines",
            "microsoft.containerinstance/containergroups",
        }, types
    elif topology == "SubnetOnly":
        assert {
            "microsoft.network/privateendpoints",
            "microsoft.network/privatelinkservices",
            "microsoft.network/loadbalancers",
            "microsoft.network/virtualnetworks",
            "microsoft.network/networksecuritygroups",
        } <= types, types
    kube.kubectl("wait", "-n", ns, "--for=condition=Ready", "imagebuild/b", "--timeout=5s")
