"""Distribution targets kaib did not make: a gallery version another build took (Latest versioning
picks the next one) and a managed image name already used (the build fails and touches nothing)."""

from __future__ import annotations

import uuid
from typing import Any

from azure.mgmt.compute import ComputeManagementClient

from kaib.azure.spec import parse_resource_id
from kaib.devenv.manifests import LOCATION, image_build, image_template
from tests.fixtures.builds import apply, wait_phase
from tests.fixtures.controlplane import Kube
from tests.fixtures.operator import Operator
from tests.fixtures.sandbox import SandboxHandle
from tests.integration.test_engine import (
    IMAGES_RG,
    assert_nothing_left,
    creates_per_resource,
    gallery_image_definition,
    images_group,  # noqa: F401 (a fixture)
)

FINAL = {"Succeeded", "PartiallySucceeded", "Failed", "Canceled"}


def by_id(sandbox: SandboxHandle) -> dict[str, dict[str, Any]]:
    return {r["id"].lower(): r for r in sandbox.inventory()}


def test_two_builds_distributing_latest_into_one_image_make_two_versions(
    kube: Kube,
    sandbox: SandboxHandle,
    operator: Operator,
    images_group: str,  # noqa: F811
) -> None:
    gallery_image = gallery_image_definition(sandbox, f"both-{uuid.uuid4().hex[:6]}", gallery="targets")
    dist = [{"type": "SharedImage", "runOutputName": "gallery", "galleryImageId": gallery_image}]
    ns = kube.namespace(f"targets-{uuid.uuid4().hex[:6]}")
    templates = [image_template(n, sandbox, images_group, distribute=dist) for n in ("left", "right")]
    apply(kube, ns, *templates, image_build("bl", "left"), image_build("br", "right"))
    statuses = [wait_phase(kube, operator, ns, b, FINAL)["status"] for b in ("bl", "br")]
    for status in statuses:
        assert status["phase"] == "Succeeded", status["message"]
        assert_nothing_left(sandbox, status["buildId"])
    artifacts = [s["runOutputs"][0]["artifactId"].lower() for s in statuses]
    assert len(set(artifacts)) == 2, artifacts
    resources = by_id(sandbox)
    compute = sandbox.client(ComputeManagementClient)
    for status, artifact in zip(statuses, artifacts, strict=True):
        version = resources[artifact]
        # Each build's runOutput names the version made from its own VM.
        assert version["tags"]["kaib.dev/built-by-id"] == status["buildId"]
        parts = parse_resource_id(artifact)
        gallery, image = parts["parents"].split("/")
        made = compute.gallery_image_versions.get(IMAGES_RG, gallery, image, parts["name"]).as_dict()
        source = made["properties"]["storageProfile"]["source"]
        assert status["buildId"] in str(source.get("virtualMachineId") or source.get("id")), source
        assert made["properties"]["provisioningState"] == "Succeeded"
        assert max(creates_per_resource(sandbox, status["buildId"]).values()) == 1
    versions = [r for r in resources if r.startswith(f"{gallery_image.lower()}/versions/")]
    assert sorted(versions) == sorted(artifacts), "no version made but not reported"


def test_an_existing_managed_image_not_made_by_the_build_fails_it_and_is_left_alone(
    kube: Kube,
    sandbox: SandboxHandle,
    operator: Operator,
    images_group: str,  # noqa: F811
) -> None:
    name = f"byhand-{uuid.uuid4().hex[:6]}"
    compute = sandbox.client(ComputeManagementClient)
    by_hand = {
        "location": LOCATION,
        "tags": {"owner": "alice"},
        "properties": {
            "storageProfile": {
                "osDisk": {
                    "osType": "Linux",
                    "osState": "Generalized",
                    "blobUri": "https://example.blob.core.windows.net/vhds/golden.vhd",
                }
            }
        },
    }
    made = compute.images.begin_create_or_update(IMAGES_RG, name, by_hand).result().as_dict()
    image_id = str(made["id"])
    tmpl = image_template("taken", sandbox, images_group, image_name=name)
    ns = kube.namespace(f"targets-{uuid.uuid4().hex[:6]}")
    apply(kube, ns, tmpl, image_build("b", "taken"))
    status = wait_phase(kube, operator, ns, "b", FINAL)["status"]
    assert status["phase"] == "Failed"
    assert f"{image_id} already exists and was not made by this build (not made by kaib)" in status["message"]
    assert "choose another name/version or delete it" in status["message"]
    assert "DistributionTargetExists" in {c.get("reason") for c in status["conditions"]}
    assert not status.get("runOutputs"), "the image is not this build's artifact"
    assert_nothing_left(sandbox, status["buildId"])
    after = compute.images.get(IMAGES_RG, name).as_dict()
    assert after == made, "the image made by hand must be untouched"
    puts = [
        r
        for r in sandbox.requests(limit=20000)
        if r.get("method") == "PUT" and str(r.get("path")).split("?")[0].lower() == image_id.lower()
    ]
    assert len(puts) == 1, "only the test's own PUT"
