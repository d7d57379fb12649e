"""Cancel (spec.cancel) and deletion (kubectl delete) while each step of the engine runs (issue #6).

Each case holds one step Running for a few real seconds, by slowing the sandbox's operation that step
waits for (or a retryable fault, or the builder's run time), acts as soon as status.steps[] shows the
step Running, then checks: the phase (Canceled; a cancel during cleanup keeps the outcome the build had,
docs/architecture.md), nothing tagged with the build left, nothing created twice, the build's Secret
gone, and for deletion the ImageBuild gone. One operator for the module; a namespace per case.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from kaib import health
from kaib.builder.result import BuildResult, PhaseResult
from kaib.controller.credentials import secret_name
from kaib.devenv.manifests import image_build, image_template
from kaib.sandbox.latency import LatencyModel
from tests.fixtures.builds import (
    GROUP,
    VERSION,
    apply,
    condition,
    creates_per_resource,
    images_group,
    owned,
    wait_phase,
)
from tests.fixtures.controlplane import Kube
from tests.fixtures.operator import Operator
from tests.fixtures.sandbox import FAST_SCALE, SandboxHandle
from tests.integration.test_engine import user_network as user_network  # the subnetId-only case's VNet

WINDOW = 2.5  # real seconds a held step stays Running: wide enough to act in on a loaded machine
HELD = WINDOW / FAST_SCALE  # the same, in the sandbox's unscaled seconds


@dataclass(frozen=True)
class Case:
    step: str  # the status.steps[] entry to interrupt
    slow: str = ""  # "Type:operation" slowed to hold it (empty: held another way, see hold())
    flavour: str = "image"  # image | proxy | vhd | validate | optimize: the template

    def __str__(self) -> str:
        name = f"{self.step}-{self.flavour}" if self.flavour not in ("image", self.step) else self.step
        return f"{name}-{self.slow.rsplit(':', 1)[-1]}" if self.flavour == "vhd" else name


COMMON = [
    Case("preflight"),  # a retryable fault on the quota read
    Case("staging", "Microsoft.Storage/storageAccounts:put"),
    Case("network", "Microsoft.Network/virtualNetworks:put"),
    Case("network", "Microsoft.Network/privateEndpoints:put", "proxy"),  # PE, PLS, LB, proxy VM
    Case("buildvm", "Microsoft.Compute/virtualMachines:put"),
    Case("builder", "Microsoft.ContainerInstance/containerGroups:put"),
    Case("customize"),  # the builder's run time
    Case("validate", flavour="validate"),  # result.json says customization is done, validation runs
    Case("optimize", "Microsoft.Compute/virtualMachines:deallocate", "optimize"),
    Case("distribute", "Microsoft.Compute/images:put"),
    Case("cleanup", "Microsoft.Compute/virtualMachines:delete"),
]
# test_engine_vhd cancels mid-grant: here a cancel while the disk's access is revoked, a deletion mid-grant.
CANCEL_CASES = [*COMMON, Case("distribute", "Microsoft.Compute/disks:endGetAccess", "vhd")]
DELETE_CASES = [*COMMON, Case("distribute", "Microsoft.Compute/disks:beginGetAccess", "vhd")]


class Knobs:
    """The sandbox settings one case changes, put back after it."""

    def __init__(self, sandbox: SandboxHandle) -> None:
        self.sandbox = sandbox
        self.slowed: list[str] = []
        self.faults: list[int] = []

    def slow(self, key: str) -> None:
        self.slowed.append(key)
        self.sandbox.set_latency(**{key: HELD})

    def fault(self, **rule: Any) -> None:
        self.faults.append(int(self.sandbox.add_fault(**rule)["id"]))

    def release_faults(self) -> None:
        for fault_id in self.faults:
            self.sandbox.remove_fault(fault_id)
        self.faults.clear()

    def restore(self) -> None:
        self.release_faults()
        defaults = LatencyModel()  # scale 1: the unscaled defaults
        for key in self.slowed:
            type_name, _, operation = key.rpartition(":")
            self.sandbox.set_latency(**{key: defaults.seconds(type_name, operation)})
        self.sandbox.clear_outcomes()


@pytest.fixture(scope="module")
def interrupted(sandbox: SandboxHandle) -> Iterator[list[str]]:
    """The build ids of the module's cases, checked again once the last case's held operation is
    over: a step still running after cleanup (or after the finalizer went) must not create anything."""
    ids: list[str] = []
    yield ids
    time.sleep(WINDOW)  # the last case's slowed operation ends by then
    late = {bid: [r["id"] for r in owned(sandbox, bid)] for bid in ids}
    assert not any(late.values()), late


@pytest.fixture()
def knobs(sandbox: SandboxHandle) -> Iterator[Knobs]:
    k = Knobs(sandbox)
    try:
        yield k
    finally:
        k.restore()


@pytest.fixture(scope="module")
def builds_api(kube: Kube) -> Any:
    """ImageBuilds through the API client: polled every 50 ms, quicker than a kubectl process."""
    from kubernetes import client

    return client.CustomObjectsApi(kube.api_client())


def read(api: Any, namespace: str, name: str) -> dict[str, Any] | None:
    from kubernetes.client.exceptions import ApiException

    try:
        obj: dict[str, Any] = api.get_namespaced_custom_object(GROUP, VERSION, namespace, "imagebuilds", name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return obj


def step_state(obj: dict[str, Any] | None, step: str) -> str:
    for s in ((obj or {}).get("status") or {}).get("steps") or []:
        if s.get("name") == step:
            return str(s.get("state") or "Pending")
    return "Pending"


def in_flight(obj: dict[str, Any] | None, slow: str) -> bool:
    """Whether status.operations holds the slowed operation ("Type:put|delete|action"): the step is
    inside the held window, not in a quick operation before it."""
    type_name, _, operation = slow.rpartition(":")
    for op in ((obj or {}).get("status") or {}).get("operations") or []:
        if f"/providers/{type_name}/".lower() not in str(op.get("resourceId", "")).lower():
            continue
        if operation in ("put", "delete"):
            if str(op.get("method", "")).lower() == operation:
                return True
        elif str(op.get("action", "")).lower() == operation.lower():
            return True
    return False


def template_for(case: Case, sandbox: SandboxHandle, network: dict[str, str]) -> dict[str, Any]:
    name = f"t-{uuid.uuid4().hex[:6]}"
    images = images_group(sandbox)
    if case.flavour == "proxy":
        vm = {"vmSize": "Standard_B2s", "vnetConfig": {"subnetId": network["build"]}}
        return image_template(name, sandbox, images, vmProfile=vm)
    if case.flavour == "vhd":
        return image_template(name, sandbox, "", distribute=[{"type": "VHD", "runOutputName": "vhd"}])
    if case.flavour == "validate":
        checks = [{"type": "Shell", "name": "check", "inline": ["true"]}]
        return image_template(name, sandbox, images, validate={"inVMValidations": checks})
    if case.flavour == "optimize":
        return image_template(name, sandbox, images, optimize={"vmBoot": {"state": "Enabled"}})
    return image_template(name, sandbox, images)


def hold(case: Case, knobs: Knobs) -> None:
    """Make `case.step` stay Running for about WINDOW seconds once it starts."""
    if case.slow:
        knobs.slow(case.slow)
    elif case.step == "preflight":  # AnotherOperationInProgress: retryable, and the SDK does not retry a 409
        knobs.fault(
            status=409,
            code="AnotherOperationInProgress",
            method="GET",
            type="Microsoft.Compute/locations/usages",
        )
    if case.step in ("customize", "validate"):
        knobs.sandbox.add_outcome("*", exitCode=0, seconds=HELD * (4 if case.step == "validate" else 1))


def report_customization_done(sandbox: SandboxHandle, status: dict[str, Any]) -> None:
    """What the builder agent writes once the customizers ran and the validators start (the modelled
    container writes result.json only at its end)."""
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
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result = BuildResult(
        build_id=status["buildId"],
        status="Running",
        phases=[
            PhaseResult(name="customize", status="Succeeded", start_time=now, end_time=now, exit_code=0),
            PhaseResult(name="validate", status="Running", start_time=now),
        ],
    )
    container.get_blob_client(f"{status['buildId']}/result.json").upload_blob(result.dumps(), overwrite=True)


def wait_running(api: Any, operator: Operator, sandbox: SandboxHandle, ns: str, case: Case) -> dict[str, Any]:
    """The build once `case.step` is Running with the slowed operation in flight (for validate: once the
    builder said customization is done)."""

    def poll(check: Callable[[dict[str, Any] | None], bool]) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            obj = read(api, ns, "b")
            return obj if check(obj) else None

        found: dict[str, Any] = operator.wait_for(f"{case.step} Running", probe, 60, interval=0.05)
        return found

    if case.step == "validate":
        customizing = poll(lambda obj: step_state(obj, "customize") == "Running")
        report_customization_done(sandbox, customizing["status"])
    return poll(
        lambda obj: step_state(obj, case.step) == "Running" and (not case.slow or in_flight(obj, case.slow))
    )


def start(
    kube: Kube, api: Any, operator: Operator, knobs: Knobs, case: Case, network: dict[str, str], prefix: str
) -> tuple[str, dict[str, Any]]:
    """A build held in `case.step`: its namespace and the status that showed the step Running."""
    sandbox = knobs.sandbox
    hold(case, knobs)
    ns = kube.namespace(f"{prefix}-{case.step[:8]}-{uuid.uuid4().hex[:6]}")
    tmpl = template_for(case, sandbox, network)
    apply(kube, ns, tmpl, image_build("b", tmpl["metadata"]["name"]))
    running = wait_running(api, operator, sandbox, ns, case)
    return ns, running["status"]


def assert_clean(kube: Kube, sandbox: SandboxHandle, ns: str, build_id: str) -> None:
    left = owned(sandbox, build_id)
    assert left == [], [r["id"] for r in left]
    created = creates_per_resource(sandbox, build_id)
    assert not created or max(created.values()) == 1, created
    secret = kube.kubectl("get", "secret", "-n", ns, secret_name("b"), check=False)
    assert secret.returncode != 0, f"the build's Secret is still there: {secret.stdout}"


@pytest.mark.parametrize("case", CANCEL_CASES, ids=str)
def test_cancel_while_the_step_runs(
    kube: Kube,
    builds_api: Any,
    operator: Operator,
    knobs: Knobs,
    user_network: dict[str, str],
    interrupted: list[str],
    case: Case,
) -> None:
    ns, running = start(kube, builds_api, operator, knobs, case, user_network, "cxl")
    interrupted.append(running["buildId"])
    builds_api.patch_namespaced_custom_object(
        GROUP, VERSION, ns, "imagebuilds", "b", {"spec": {"cancel": True}}
    )
    knobs.release_faults()
    done = wait_phase(kube, operator, ns, "b", timeout=60)
    status = done["status"]
    if case.step == "cleanup":  # the outcome was decided: the image is distributed
        assert status["phase"] == "Succeeded", status["message"]
        assert status["runOutputs"][0]["provisioningState"] == "Succeeded"
    else:
        assert status["phase"] == "Canceled", status["message"]
        # The cancel interrupted the step: it never finished.
        assert step_state(done, case.step) != "Done", status["steps"]
        assert condition(done, "Stalled")["status"] == "True"  # kstatus: finished, not InProgress forever
    assert step_state(done, "cleanup") == "Done", status["steps"]
    assert_clean(kube, knobs.sandbox, ns, running["buildId"])


@pytest.mark.parametrize("case", DELETE_CASES, ids=str)
def test_delete_while_the_step_runs(
    kube: Kube,
    builds_api: Any,
    operator: Operator,
    knobs: Knobs,
    user_network: dict[str, str],
    interrupted: list[str],
    case: Case,
) -> None:
    ns, running = start(kube, builds_api, operator, knobs, case, user_network, "del")
    interrupted.append(running["buildId"])
    assert health.compute(read(builds_api, ns, "b") or {}).status == health.Status.IN_PROGRESS
    kube.kubectl("delete", "-n", ns, "imagebuild", "b", "--wait=false")
    knobs.release_faults()
    seen: list[dict[str, Any]] = []

    def gone() -> bool:
        obj = read(builds_api, ns, "b")
        seen.extend([obj] if obj else [])
        return obj is None

    operator.wait_for("the ImageBuild to go", gone, 60, interval=0.1)
    for obj in seen:  # cleanup behind the finalizer: Terminating, and the build did not go on
        assert health.compute(obj).status == health.Status.TERMINATING
        assert step_state(obj, case.step) != "Done" or case.step == "cleanup", obj["status"]["steps"]
    assert_clean(kube, knobs.sandbox, ns, running["buildId"])
