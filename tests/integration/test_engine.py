"""The build engine end to end: `kaib run` as a process, the real control plane, the sandbox.

The sandbox's container groups are modelled (no builder runtime): they terminate after the modelled
latency with the configured exit code and write result.json where KAIB_LOG_CONTAINER_URL says.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from kaib import health
from kaib.devenv.manifests import LOCATION as LOCATION  # test_chaos and test_engine_real import it here
from kaib.devenv.manifests import image_build, image_template
from tests.fixtures import builds
from tests.fixtures.builds import apply as apply  # test_engine_real imports it here
from tests.fixtures.builds import condition as condition  # test_engine_real imports it here
from tests.fixtures.builds import creates_per_resource, get, owned
from tests.fixtures.builds import wait_phase as wait_phase  # test_engine_real imports it here
from tests.fixtures.controlplane import Kube
from tests.fixtures.operator import Operator as Operator  # test_chaos and test_engine_real import it here
from tests.fixtures.operator import OperatorFailed
from tests.fixtures.sandbox import FAST_SCALE, SandboxHandle

# The manifest builders under the names the tests here (and test_chaos, test_engine_real) use.
build = image_build


def template(name: str, sandbox: SandboxHandle, images_group: str, **spec: Any) -> dict[str, Any]:
    """image_template distributing to a managed image of its own: many tests use the template name
    `t`, and a managed image another build made fails the build (DistributionTargetExists)."""
    spec.setdefault("image_name", f"{name}-{uuid.uuid4().hex[:6]}")
    return image_template(name, sandbox, images_group, **spec)


def real(seconds: float) -> float:
    """Outcome run times are scaled by the sandbox's latency scale: this many real seconds."""
    return seconds / FAST_SCALE


IMAGES_RG = "images"


@pytest.fixture(scope="module")
def images_group(sandbox: SandboxHandle) -> str:
    return builds.images_group(sandbox, IMAGES_RG)


def read_blob(sandbox: SandboxHandle, status: dict[str, Any], name: str) -> str:
    from azure.mgmt.storage import StorageManagementClient
    from azure.storage.blob import ContainerClient

    group = status["stagingResourceGroup"].rsplit("/", 1)[-1]
    account = status["logs"]["storageAccount"]
    storage = sandbox.client(StorageManagementClient)
    key = storage.storage_accounts.list_keys(group, account).as_dict()["keys"][0]["value"]
    url = storage.storage_accounts.get_properties(group, account).primary_endpoints.blob
    container = ContainerClient.from_container_url(
        f"{url.rstrip('/')}/packerlogs", credential={"account_name": account, "account_key": key}
    )
    data: bytes = container.get_blob_client(name).download_blob().readall()
    return data.decode()


# -- helpers for the failure paths ------------------------------------------------------------------


def build_id_of(kube: Kube, namespace: str, name: str, op: Operator) -> str:
    def check() -> str | None:
        return (get(kube, namespace, "imagebuild", name).get("status") or {}).get("buildId")

    result: str = op.wait_for(f"{name} buildId", check, 30)
    return result


def wait_substate(kube: Kube, op: Operator, namespace: str, name: str, sub_state: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = get(kube, namespace, "imagebuild", name)
        return obj if (obj.get("status") or {}).get("subState") == sub_state else None

    try:
        result: dict[str, Any] = op.wait_for(f"{name} subState {sub_state}", check, 60)
    except OperatorFailed as exc:
        status = get(kube, namespace, "imagebuild", name).get("status")
        raise AssertionError(f"{exc}\nstatus: {json.dumps(status)[-3000:]}") from None
    return result


def assert_nothing_left(sandbox: SandboxHandle, build_id: str) -> None:
    left = owned(sandbox, build_id)
    assert left == [], [r["id"] for r in left]


@pytest.fixture()
def outcomes(sandbox: SandboxHandle) -> Iterator[SandboxHandle]:
    """Modelled container outcomes for this test only."""
    yield sandbox
    sandbox.call("DELETE", "outcomes")
    sandbox.call("DELETE", "policies")
    sandbox.set_latency(scale=FAST_SCALE)
    sandbox.clear_faults()
    for provider in ("Microsoft.ContainerInstance", "Microsoft.Network"):
        sandbox.set_provider(provider, "Registered")


def test_failing_customizer_fails_the_build_and_cleans_up(
    kube: Kube, outcomes: SandboxHandle, operator: Operator, images_group: str
) -> None:
    sandbox = outcomes
    sandbox.add_outcome(
        "*", exitCode=1, logs="step hello failed\n", result={"message": "Shell customizer 'hello' failed"}
    )
    ns = kube.namespace(f"custfail-{uuid.uuid4().hex[:6]}")
    apply(kube, ns, template("t", sandbox, images_group), build("b", "t"))
    done = wait_phase(kube, operator, ns, "b", {"Succeeded", "Failed", "Canceled"})
    status = done["status"]
    assert status["phase"] == "Failed"
    assert condition(done, "Stalled")["status"] == "True"
    assert condition(done, "Ready")["status"] == "False"
    assert condition(done, "Customized")["status"] == "False"
    assert "customization failed: Shell customizer 'hello' failed" in status["message"]
    assert "customization.log" in status["message"]
    assert status.get("runOutputs") in (None, [])
    assert_nothing_left(sandbox, status["buildId"])
    # kstatus (Flux, kubectl wait): a terminal failure is Failed, never InProgress forever.
    assert health.compute(done).status == health.Status.FAILED


def test_abort_keeps_resources_until_the_build_is_deleted(
    kube: Kube, outcomes: SandboxHandle, operator: Operator, images_group: str
) -> None:
    sandbox = outcomes
    sandbox.add_outcome("*", exitCode=2)
    ns = kube.namespace(f"abort-{uuid.uuid4().hex[:6]}")
    tmpl = template("t", sandbox, images_group, errorHandling={"onCustomizerError": "abort"})
    apply(kube, ns, tmpl, build("b", "t"))
    done = wait_phase(kube, operator, ns, "b", {"Succeeded", "Failed", "Canceled"})
    status = done["status"]
    assert status["phase"] == "Failed"
    assert "errorHandling is abort" in status["message"]
    kept = {r["id"].lower() for r in status["resources"] if r["state"] == "Kept"}
    assert kept, status["resources"]
    assert kept <= {r["id"].lower() for r in owned(sandbox, status["buildId"])}
    kube.kubectl("delete", "-n", ns, "imagebuild", "b", "--timeout=60s")
    assert_nothing_left(sandbox, status["buildId"])


def test_unregistered_provider_fails_in_preflight_before_creating_anything(
    kube: Kube, outcomes: SandboxHandle, operator: Operator, images_group: str
) -> None:
    sandbox = outcomes
    sandbox.set_provider("Microsoft.ContainerInstance", "NotRegistered")
    ns = kube.namespace(f"provider-{uuid.uuid4().hex[:6]}")
    apply(kube, ns, template("t", sandbox, images_group), build("b", "t"))
    done = wait_phase(kube, operator, ns, "b", {"Succeeded", "Failed", "Canceled"})
    status = done["status"]
    assert status["phase"] == "Failed"
    assert condition(done, "Stalled")["status"] == "True"
    assert "Microsoft.ContainerInstance is not registered" in status["message"]
    assert "az provider register -n Microsoft.ContainerInstance" in status["message"]
    assert not status.get("stagingResourceGroup")
    assert_nothing_left(sandbox, status["buildId"])


def test_policy_denial_is_fatal_with_the_arm_code(
    kube: Kube, outcomes: SandboxHandle, operator: Operator, images_group: str
) -> None:
    sandbox = outcomes
    sandbox.add_policy("Microsoft.Network/virtualNetworks", "VNets are not allowed here")
    ns = kube.namespace(f"policy-{uuid.uuid4().hex[:6]}")
    apply(kube, ns, template("t", sandbox, images_group), build("b", "t"))
    done = wait_phase(kube, operator, ns, "b", {"Succeeded", "Failed", "Canceled"})
    status = done["status"]
    assert status["phase"] == "Failed"
    assert "RequestDisallowedByPolicy" in status["message"], status["message"]
    assert condition(done, "NetworkReady")["status"] == "False"
    assert_nothing_left(sandbox, status["buildId"])


def test_builds_of_one_template_run_one_at_a_time(
    kube: Kube, outcomes: SandboxHandle, operator: Operator, images_group: str
) -> None:
    sandbox = outcomes
    sandbox.add_outcome("*", exitCode=0, seconds=real(3))
    ns = kube.namespace(f"queue-{uuid.uuid4().hex[:6]}")
    # Gallery versions (Latest), as a managed image name made by the first build fails the second.
    image = gallery_image_definition(sandbox, f"queue-{uuid.uuid4().hex[:6]}")
    dist = [{"type": "SharedImage", "runOutputName": "gallery", "galleryImageId": image}]
    apply(kube, ns, template("t", sandbox, images_group, distribute=dist), build("first", "t"))
    wait_substate(kube, operator, ns, "first", "Customizing")
    apply(kube, ns, build("second", "t"))
    # Queued at once ("waiting to start"), then the queue says whom it waits for.
    operator.wait_for(
        "second Queued behind first",
        lambda: (
            (status := get(kube, ns, "imagebuild", "second").get("status") or {}).get("phase") == "Queued"
            and "first" in str(status.get("message"))
        ),
        30,
    )
    first = wait_phase(kube, operator, ns, "first", {"Succeeded", "Failed"})
    assert first["status"]["phase"] == "Succeeded"
    later = wait_phase(kube, operator, ns, "second", {"Succeeded", "Failed"})
    assert later["status"]["phase"] == "Succeeded"
    assert later["status"]["startTime"] >= first["status"]["endTime"]


def test_operator_killed_mid_build_resumes_without_duplicates(
    kube: Kube, outcomes: SandboxHandle, operator: Operator, images_group: str
) -> None:
    sandbox = outcomes
    sandbox.add_outcome("*", exitCode=0, seconds=real(2))
    ns = kube.namespace(f"kill-{uuid.uuid4().hex[:6]}")
    apply(kube, ns, template("t", sandbox, images_group), build("b", "t"))
    bid = build_id_of(kube, ns, "b", operator)
    # Kill as soon as the first Azure resource of the build exists: its status write may not have happened.
    operator.wait_for("a first resource", lambda: owned(sandbox, bid), 30)
    operator.kill()
    operator.start()
    done = wait_phase(kube, operator, ns, "b", {"Succeeded", "Failed", "Canceled"})
    assert done["status"]["phase"] == "Succeeded", done["status"]["message"]
    created = creates_per_resource(sandbox, bid)
    assert created and max(created.values()) == 1, created
    assert_nothing_left(sandbox, bid)


# -- topologies and distribution types ----------------------------------------------------------------
# A successful build in each topology, to every distribution type at once: test_engine_matrix.py.


@pytest.fixture(scope="module")
def user_network(sandbox: SandboxHandle) -> dict[str, str]:
    """A user's VNet: a build subnet (private link policies off), an ACI subnet (delegated)."""
    from azure.mgmt.network import NetworkManagementClient
    from azure.mgmt.resource.resources import ResourceManagementClient

    sandbox.client(ResourceManagementClient).resource_groups.create_or_update("net", {"location": LOCATION})
    network = sandbox.client(NetworkManagementClient)
    body = {
        "location": LOCATION,
        "properties": {
            "addressSpace": {"addressPrefixes": ["10.50.0.0/16"]},
            "subnets": [
                {
                    "name": "build",
                    "properties": {
                        "addressPrefix": "10.50.0.0/24",
                        "privateLinkServiceNetworkPolicies": "Disabled",
                    },
                },
                {
                    "name": "aci",
                    "properties": {
                        "addressPrefix": "10.50.1.0/24",
                        "delegations": [
                            {
                                "name": "aci",
                                "properties": {"serviceName": "Microsoft.ContainerInstance/containerGroups"},
                            }
                        ],
                    },
                },
                {"name": "plain", "properties": {"addressPrefix": "10.50.2.0/24"}},
            ],
        },
    }
    network.virtual_networks.begin_create_or_update("net", "corp", body).result()
    group = f"/subscriptions/{sandbox.subscription_id}/resourceGroups/net"
    base = f"{group}/providers/Microsoft.Network/virtualNetworks/corp"
    return {"build": f"{base}/subnets/build", "aci": f"{base}/subnets/aci", "plain": f"{base}/subnets/plain"}


def gallery_image_definition(sandbox: SandboxHandle, name: str, gallery: str = "gal") -> str:
    """A gallery image definition in IMAGES_RG (the gallery too, if missing); its resource id."""
    from azure.mgmt.compute import ComputeManagementClient

    compute = sandbox.client(ComputeManagementClient)
    compute.galleries.begin_create_or_update(IMAGES_RG, gallery, {"location": LOCATION}).result()
    definition = {
        "location": LOCATION,
        "properties": {
            "osType": "Linux",
            "osState": "Generalized",
            "hyperVGeneration": "V2",
            "identifier": {"publisher": "kaib", "offer": "golden", "sku": name},
        },
    }
    compute.gallery_images.begin_create_or_update(IMAGES_RG, gallery, name, definition).result()
    group = builds.images_group(sandbox, IMAGES_RG)
    return f"{group}/providers/Microsoft.Compute/galleries/{gallery}/images/{name}"


@pytest.fixture(scope="module")
def gallery_image(sandbox: SandboxHandle, images_group: str) -> str:
    return gallery_image_definition(sandbox, "ubuntu")


def run_to_success(
    kube: Kube, sandbox: SandboxHandle, op: Operator, prefix: str, tmpl: dict[str, Any]
) -> dict[str, Any]:
    ns = kube.namespace(f"{prefix}-{uuid.uuid4().hex[:6]}")
    apply(kube, ns, tmpl, build("b", tmpl["metadata"]["name"]))
    done = wait_phase(kube, op, ns, "b", {"Succeeded", "PartiallySucceeded", "Failed", "Canceled"})
    status: dict[str, Any] = done["status"]
    assert status["phase"] == "Succeeded", status["message"]
    assert_nothing_left(sandbox, status["buildId"])
    created = creates_per_resource(sandbox, status["buildId"])
    assert max(created.values()) == 1, created
    return status


def test_aci_subnet_not_delegated_fails_preflight(
    kube: Kube, sandbox: SandboxHandle, operator: Operator, images_group: str, user_network: dict[str, str]
) -> None:
    vnet = {"subnetId": user_network["build"], "containerInstanceSubnetId": user_network["plain"]}
    tmpl = template("nodeleg", sandbox, images_group, vmProfile={"vnetConfig": vnet})
    ns = kube.namespace(f"nodeleg-{uuid.uuid4().hex[:6]}")
    apply(kube, ns, tmpl, build("b", "nodeleg"))
    done = wait_phase(kube, operator, ns, "b", {"Succeeded", "Failed"})
    assert done["status"]["phase"] == "Failed"
    assert "is not delegated to Microsoft.ContainerInstance/containerGroups" in done["status"]["message"]
    assert not done["status"].get("stagingResourceGroup")


def test_shared_image_gallery_distribution_with_latest_versioning(
    kube: Kube, sandbox: SandboxHandle, operator: Operator, images_group: str, gallery_image: str
) -> None:
    dist = [
        {
            "type": "SharedImage",
            "runOutputName": "gallery",
            "galleryImageId": gallery_image,
            "targetRegions": [{"name": LOCATION, "replicaCount": 1}],
            "artifactTags": {"release": "candidate"},
        }
    ]
    first = run_to_success(
        kube, sandbox, operator, "sig", template("sig", sandbox, images_group, distribute=dist)
    )
    (output,) = first["runOutputs"]
    assert output["artifactId"].lower() == f"{gallery_image}/versions/0.0.1".lower()
    second = run_to_success(
        kube, sandbox, operator, "sig", template("sig", sandbox, images_group, distribute=dist)
    )
    assert second["runOutputs"][0]["artifactId"].endswith("/versions/0.0.2")
    ids = {r["id"].lower(): r for r in sandbox.inventory()}
    version = ids[second["runOutputs"][0]["artifactId"].lower()]
    assert (version.get("tags") or {}).get("release") == "candidate"
    assert "kaib.dev/managed-by" not in (version.get("tags") or {}), (
        "artifacts must survive the orphan sweeper"
    )


@pytest.mark.parametrize("continue_distribute", [True, False])
def test_a_failing_validator_partially_succeeds_or_fails_by_continue_distribute_on_failure(
    kube: Kube, outcomes: SandboxHandle, operator: Operator, images_group: str, continue_distribute: bool
) -> None:
    sandbox = outcomes
    result = {
        "status": "Failed",
        "message": "validator 'check' failed",
        "phases": [
            {
                "name": "customize",
                "startTime": "2026-01-01T00:00:00Z",
                "endTime": "2026-01-01T00:00:01Z",
                "exitCode": 0,
            },
            {
                "name": "validate",
                "startTime": "2026-01-01T00:00:01Z",
                "endTime": "2026-01-01T00:00:02Z",
                "exitCode": 1,
            },
        ],
    }
    sandbox.add_outcome("*", exitCode=1, result=result)
    validate = {
        "continueDistributeOnFailure": continue_distribute,
        "inVMValidations": [{"type": "Shell", "name": "check", "inline": ["false"]}],
    }
    tmpl = template("val", sandbox, images_group, validate=validate)
    ns = kube.namespace(f"val-{uuid.uuid4().hex[:6]}")
    apply(kube, ns, tmpl, build("b", "val"))
    done = wait_phase(kube, operator, ns, "b", {"Succeeded", "PartiallySucceeded", "Failed"})
    status = done["status"]
    assert "validator 'check' failed" in status["message"], json.dumps(status["conditions"], indent=1)
    assert condition(done, "Customized")["status"] == "True", json.dumps(status["conditions"], indent=1)
    assert condition(done, "Validated")["status"] == "False"
    assert condition(done, "Stalled")["status"] == "True"
    if continue_distribute:  # AIB: the image is distributed and the run is PartiallySucceeded
        assert status["phase"] == "PartiallySucceeded", status["message"]
        assert condition(done, "Distributed")["status"] == "True"
        assert status["runOutputs"][0]["provisioningState"] == "Succeeded"
    else:  # nothing is distributed and the run fails
        assert status["phase"] == "Failed", status["message"]
        assert status["message"].count("validator 'check' failed") == 1, status["message"]
        assert all(c["status"] != "True" for c in status["conditions"] if c["type"] == "Distributed")
        assert not status.get("runOutputs"), status.get("runOutputs")
        image = tmpl["spec"]["distribute"][0]["imageId"].lower()
        assert image not in {r["id"].lower() for r in sandbox.inventory()}
    assert_nothing_left(sandbox, status["buildId"])


# -- templates, restarts ----------------------------------------------------------------------------


def test_template_status_autorun_and_deletion_with_a_running_build(
    kube: Kube, outcomes: SandboxHandle, operator: Operator, images_group: str
) -> None:
    sandbox = outcomes
    sandbox.add_outcome("*", exitCode=0, seconds=real(60))
    ns = kube.namespace(f"tmpl-{uuid.uuid4().hex[:6]}")
    apply(kube, ns, template("t", sandbox, images_group, autoRun={"state": "Enabled"}))
    kube.kubectl("wait", "-n", ns, "--for=condition=Ready", "imagetemplate/t", "--timeout=30s")
    tmpl = get(kube, ns, "imagetemplate", "t")
    assert tmpl["status"]["topology"] == "NoVNet"
    bid = build_id_of(kube, ns, "t-autorun", operator)
    wait_substate(kube, operator, ns, "t-autorun", "Customizing")
    staging = get(kube, ns, "imagetemplate", "t")["status"]["exactStagingResourceGroup"]
    assert get(kube, ns, "imagetemplate", "t")["status"]["stagingResourceGroupOwnership"] == "Created"
    # Deleting the template cancels its running build, waits for its cleanup, then deletes the staging group.
    kube.kubectl("delete", "-n", ns, "imagetemplate", "t", "--timeout=90s")
    build_after = get(kube, ns, "imagebuild", "t-autorun")
    assert build_after["status"]["phase"] == "Canceled", json.dumps(build_after["status"])[-3000:]
    assert_nothing_left(sandbox, bid)
    assert staging.lower() not in {r["id"].lower() for r in sandbox.inventory()}


def test_operator_killed_whenever_a_new_resource_appears_still_finishes_cleanly(
    kube: Kube, outcomes: SandboxHandle, operator: Operator, images_group: str
) -> None:
    """SIGKILL right after each begin_* of the build (the resource exists, the status write may not)."""
    sandbox = outcomes
    sandbox.set_latency(scale=FAST_SCALE * 10)  # slower Azure: more moments to kill in
    sandbox.add_outcome("*", exitCode=0, seconds=1 / (FAST_SCALE * 10))
    ns = kube.namespace(f"chaos-{uuid.uuid4().hex[:6]}")
    apply(kube, ns, template("t", sandbox, images_group), build("b", "t"))
    bid = build_id_of(kube, ns, "b", operator)
    seen: set[str] = set()
    kills = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        phase = (get(kube, ns, "imagebuild", "b").get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed", "Canceled"):
            break
        types = {r["type"] for r in owned(sandbox, bid)}
        if types - seen:
            seen |= types
            operator.kill()
            kills += 1
            operator.start()
        time.sleep(0.1)
    done = wait_phase(kube, operator, ns, "b", {"Succeeded", "Failed", "Canceled"})
    assert done["status"]["phase"] == "Succeeded", done["status"]["message"]
    assert kills >= 3, f"only {kills} kills: {seen}"
    created = creates_per_resource(sandbox, bid)
    assert max(created.values()) == 1, created
    assert_nothing_left(sandbox, bid)


# -- more preflight, adoption, deletion at each step --------------------------------------------------


def run_to_failure(kube: Kube, op: Operator, prefix: str, tmpl: dict[str, Any]) -> dict[str, Any]:
    ns = kube.namespace(f"{prefix}-{uuid.uuid4().hex[:6]}")
    apply(kube, ns, tmpl, build("b", tmpl["metadata"]["name"]))
    done = wait_phase(kube, op, ns, "b", {"Succeeded", "PartiallySucceeded", "Failed", "Canceled"})
    assert done["status"]["phase"] == "Failed", done["status"]["message"]
    assert condition(done, "Stalled")["status"] == "True"
    return done


@pytest.mark.parametrize("case", ["identity", "gallery", "vnets"])
def test_preflight_failures_say_what_to_fix(
    kube: Kube,
    sandbox: SandboxHandle,
    operator: Operator,
    images_group: str,
    user_network: dict[str, str],
    case: str,
) -> None:
    extra: dict[str, Any]
    if case == "identity":
        missing = f"{images_group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/nobody"
        extra = {"identity": {"type": "UserAssigned", "userAssignedIdentities": {missing: {}}}}
        expected = "user-assigned identity"
    elif case == "gallery":
        image = f"{images_group}/providers/Microsoft.Compute/galleries/gal/images/missing"
        extra = {"distribute": [{"type": "SharedImage", "runOutputName": "g", "galleryImageId": image}]}
        expected = "gallery image definition"
    else:
        other = user_network["aci"].replace("/virtualNetworks/corp/", "/virtualNetworks/other/")
        extra = {
            "vmProfile": {
                "vnetConfig": {"subnetId": user_network["build"], "containerInstanceSubnetId": other}
            }
        }
        expected = "one virtual network"
    done = run_to_failure(
        kube, operator, f"pre-{case}", template(f"pre-{case}", sandbox, images_group, **extra)
    )
    assert expected in done["status"]["message"], done["status"]["message"]
    assert condition(done, "PreflightPassed")["status"] == "False"
    assert not done["status"].get("stagingResourceGroup"), "preflight must fail before creating anything"


def test_existing_empty_staging_group_is_adopted_and_kept(
    kube: Kube, sandbox: SandboxHandle, operator: Operator, images_group: str
) -> None:
    from azure.mgmt.resource.resources import ResourceManagementClient

    rgs = sandbox.client(ResourceManagementClient).resource_groups
    rgs.create_or_update("mystaging", {"location": LOCATION, "tags": {"team": "images"}})
    group_id = f"/subscriptions/{sandbox.subscription_id}/resourceGroups/mystaging"
    ns = kube.namespace(f"adopt-{uuid.uuid4().hex[:6]}")
    apply(kube, ns, template("t", sandbox, images_group, stagingResourceGroup=group_id), build("b", "t"))
    done = wait_phase(kube, operator, ns, "b", {"Succeeded", "Failed"})
    assert done["status"]["phase"] == "Succeeded", done["status"]["message"]
    tstatus = get(kube, ns, "imagetemplate", "t")["status"]
    assert tstatus["stagingResourceGroupOwnership"] == "Adopted"
    tags = rgs.get("mystaging").tags
    assert tags["team"] == "images" and tags["usedBy"] == "kaib" and tags["imageTemplateName"] == "t"
    kube.kubectl("delete", "-n", ns, "imagetemplate", "t", "--timeout=60s")
    # an adopted group stays; only what kaib put there goes
    assert rgs.check_existence("mystaging")
    inside = [r["type"] for r in sandbox.inventory() if r["id"].lower().startswith(group_id.lower() + "/")]
    assert inside == [], inside


def test_quota_failure_inside_the_vm_operation_is_fatal_and_actionable(
    kube: Kube, outcomes: SandboxHandle, operator: Operator, images_group: str
) -> None:
    sandbox = outcomes
    sandbox.add_fault(
        status=409,
        code="OperationNotAllowed",
        message="Operation results in exceeding approved standardBSFamily Cores quota.",
        method="PUT",
        type="Microsoft.Compute/virtualMachines",
        inOperation=True,
    )
    done = run_to_failure(kube, operator, "quota", template("quota", sandbox, images_group))
    message = done["status"]["message"]
    assert "OperationNotAllowed" in message and "Cores quota" in message and "request more quota" in message
    assert condition(done, "BuildVMReady")["status"] == "False"
    assert_nothing_left(sandbox, done["status"]["buildId"])


def test_transient_arm_errors_are_retried_and_the_build_succeeds(
    kube: Kube, outcomes: SandboxHandle, operator: Operator, images_group: str
) -> None:
    sandbox = outcomes
    sandbox.add_fault(
        status=429, code="TooManyRequests", method="PUT", type="Microsoft.Network/*", count=2, retryAfter=0.2
    )
    sandbox.add_fault(
        status=503, code="ServiceUnavailable", method="GET", type="Microsoft.Compute/virtualMachines", count=2
    )
    sandbox.add_fault(
        status=409,
        code="AnotherOperationInProgress",
        method="DELETE",
        type="Microsoft.Network/virtualNetworks",
        count=1,
    )
    sandbox.add_fault(
        status=400,
        code="InUseNetworkSecurityGroupCannotBeDeleted",
        method="DELETE",
        type="Microsoft.Network/networkSecurityGroups",
        count=2,
    )
    status = run_to_success(kube, sandbox, operator, "flaky", template("flaky", sandbox, images_group))
    assert status["runOutputs"][0]["provisioningState"] == "Succeeded"
    hit = {r.get("code") for r in sandbox.requests(limit=20000) if status["buildId"] in str(r.get("path"))}
    assert {
        "TooManyRequests",
        "AnotherOperationInProgress",
        "InUseNetworkSecurityGroupCannotBeDeleted",
    } <= hit, hit


def test_windows_build_uses_winrm_credentials_and_reports_last_build(
    kube: Kube, sandbox: SandboxHandle, operator: Operator, images_group: str
) -> None:
    tmpl = template("win", sandbox, images_group)
    tmpl["spec"]["source"] = {
        "type": "PlatformImage",
        "publisher": "MicrosoftWindowsServer",
        "offer": "WindowsServer",
        "sku": "2022-datacenter-azure-edition",
        "version": "latest",
    }
    tmpl["spec"]["customize"] = [{"type": "PowerShell", "name": "hello", "inline": ["Write-Host hello"]}]
    status = run_to_success(kube, sandbox, operator, "win", tmpl)
    plan = json.loads(read_blob(sandbox, status, f"{status['buildId']}/plan.json"))
    assert plan["osType"] == "Windows"
    assert status["exactSourceVersion"] == "20348.2762.241006"
    ns = next(r for r in [status["logs"]["command"].rsplit(" ", 1)[-1]])
    last = get(kube, ns, "imagetemplate", "win")["status"]["lastBuild"]
    assert last["name"] == "b" and last["phase"] == "Succeeded" and last["endTime"] == status["endTime"]


def test_template_edits_never_change_a_running_build(
    kube: Kube, outcomes: SandboxHandle, operator: Operator, images_group: str
) -> None:
    sandbox = outcomes
    sandbox.add_outcome("*", exitCode=0, seconds=real(3))
    ns = kube.namespace(f"snap-{uuid.uuid4().hex[:6]}")
    apply(kube, ns, template("t", sandbox, images_group), build("b", "t"))
    running = wait_substate(kube, operator, ns, "b", "Customizing")
    generation = running["status"]["template"]["generation"]
    edit = {"spec": {"customize": [{"type": "Shell", "name": "other", "inline": ["echo changed"]}]}}
    kube.kubectl("patch", "-n", ns, "imagetemplate", "t", "--type=merge", "-p", json.dumps(edit))
    done = wait_phase(kube, operator, ns, "b", {"Succeeded", "Failed"})
    status = done["status"]
    assert status["phase"] == "Succeeded"
    assert status["template"]["generation"] == generation
    assert status["template"]["spec"]["customize"][0]["inline"] == ["echo hello"]
    plan = json.loads(read_blob(sandbox, status, f"{status['buildId']}/plan.json"))
    assert (
        "echo hello" in plan["phases"][0]["template"] and "echo changed" not in plan["phases"][0]["template"]
    )


def test_shared_image_explicit_version(
    kube: Kube, sandbox: SandboxHandle, operator: Operator, images_group: str, gallery_image: str
) -> None:
    dist = [
        {
            "type": "SharedImage",
            "runOutputName": "pinned",
            "galleryImageId": f"{gallery_image}/versions/7.1.0",
            "excludeFromLatest": True,
        }
    ]
    status = run_to_success(
        kube, sandbox, operator, "pin", template("pin", sandbox, images_group, distribute=dist)
    )
    assert status["runOutputs"][0]["artifactId"].endswith("/versions/7.1.0")
