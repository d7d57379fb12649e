"""Chaos: builds survive operator SIGKILLs, ARM faults, a sandbox restart and an apiserver restart.

Pass, for every build: the outcome its kind has without faults (measured by a baseline run of every
kind, never hard-coded: phase, message with the run's names taken out, run outputs), no resource
created twice (the sandbox's request log: at most one PUT answered 201 per resource id) and nothing
leaked (afterwards only the staging groups, their storage accounts and the distribution outputs are
new in the inventory).
"""

from __future__ import annotations

import json
import os
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kaib.devenv.manifests import LOCATION, image_build, image_template
from tests.fixtures.controlplane import Kube
from tests.fixtures.operator import Operator
from tests.fixtures.sandbox import FAST_SCALE, SandboxHandle, start_sandbox, stop_sandbox


def test_apiserver_restart_keeps_port_certificates_and_objects(kube: Kube) -> None:
    kube.kubectl("create", "configmap", "chaos-survivor", "-n", "default", "--from-literal=k=v")
    port = kube.plane.port
    before = {p.pid for p in kube.plane._procs}
    started = time.monotonic()
    kube.plane.restart_apiserver(down_seconds=0.5)
    assert time.monotonic() - started >= 0.5
    after = {p.pid for p in kube.plane._procs}
    assert len(before & after) == 1 and len(after) == 2, "etcd kept, a new kube-apiserver process"
    assert kube.plane.port == port and kube.plane.alive()
    # the same kubeconfig (address, CA, token) still works and etcd kept the object
    out = kube.kubectl("get", "configmap", "chaos-survivor", "-n", "default", "-o", "jsonpath={.data.k}")
    assert out.stdout == "v"
    kube.kubectl("delete", "configmap", "chaos-survivor", "-n", "default")


# -- the build shapes: every topology, every distribution type, each outcome ----------------------------


@dataclass(frozen=True)
class Kind:
    """One build shape. Its outcome without faults is what a baseline run measures; `designed` is the
    phase the kind is built to reach, checked on the baseline (None: it depends on the engine's version,
    as VHD distribution does while it is being made)."""

    name: str
    topology: str  # NoVNet | SubnetOnly (proxy) | SubnetAndAci
    distribute: tuple[str, ...]  # ManagedImage | SharedImage (Latest) | SharedImagePinned | VHD
    designed: str | None
    container: str = "ok"  # ok | fails | validation-fails


KINDS = (
    Kind("novnet-managed", "NoVNet", ("ManagedImage",), "Succeeded"),
    Kind("byo-sig", "SubnetAndAci", ("SharedImage",), "Succeeded"),
    Kind("proxy-managed", "SubnetOnly", ("ManagedImage",), "Succeeded"),
    Kind("novnet-sig-pinned-and-managed", "NoVNet", ("SharedImagePinned", "ManagedImage"), "Succeeded"),
    Kind("byo-customizer-fails", "SubnetAndAci", ("ManagedImage",), "Failed", "fails"),
    Kind("proxy-validation-fails", "SubnetOnly", ("SharedImage",), "PartiallySucceeded", "validation-fails"),
    Kind("novnet-vhd", "NoVNet", ("VHD",), None),
)
KIND = {k.name: k for k in KINDS}


@dataclass(frozen=True)
class Expected:
    """What a kind's build ends with without faults: the baseline's phase, its message with the run's
    own names taken out (`gist`), and its run outputs' names and states."""

    phase: str
    gist: str
    outputs: tuple[tuple[str, str], ...]


def gist(message: str, namespace: str, build: str, build_id: str) -> str:
    """The message without what differs between two runs of one kind: URLs, Azure ids, the namespace,
    the build's and templates' names and ids, generated names (a hex run of 6 or more)."""
    text = re.sub(r"https?://\S+", "<url>", message)
    text = re.sub(r"/subscriptions/\S+", "<id>", text)
    for name, mark in ((namespace, "<ns>"), (build_id, "<build-id>")):
        if name:
            text = text.replace(name, mark)
    text = re.sub(rf"\b{re.escape(build)}\b", "<build>", text)
    text = re.sub(r"\bt\d+\b", "<template>", text)
    return re.sub(r"[0-9a-f]{6,}", "<hex>", text)


def outputs_of(status: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(
        sorted(
            (str(o.get("runOutputName")), str(o.get("provisioningState")))
            for o in status.get("runOutputs") or []
        )
    )


def expectations(baseline: dict[str, Any]) -> dict[str, Expected]:
    """Each kind's outcome, from a passed baseline run's report."""
    assert baseline["passed"], json.dumps(baseline, indent=1)
    return {
        b["kind"]: Expected(b["phase"], b["gist"], tuple(tuple(o) for o in b["outputs"]))
        for b in baseline["builds"]
    }


RG_IMAGES, RG_NET, GALLERY = "chaos-images", "chaos-net", "chaosgal"
TERMINAL = {"Succeeded", "PartiallySucceeded", "Failed", "Canceled"}
# The faults ARM really answers under load; 409 only where a write can collide with another operation.
FAULT_CODES = {"TooManyRequests", "InternalServerError", "ServiceUnavailable", "AnotherOperationInProgress"}


@dataclass
class Bed:
    """What builds of every kind need in one sandbox: an images group, a gallery, a user's VNet."""

    sandbox: SandboxHandle
    images_group: str = ""
    subnets: dict[str, str] = field(default_factory=dict)

    def prepare(self) -> Bed:
        from azure.mgmt.compute import ComputeManagementClient
        from azure.mgmt.network import NetworkManagementClient
        from azure.mgmt.resource.resources import ResourceManagementClient

        sub = f"/subscriptions/{self.sandbox.subscription_id}/resourceGroups"
        groups = self.sandbox.client(ResourceManagementClient).resource_groups
        for group in (RG_IMAGES, RG_NET):
            groups.create_or_update(group, {"location": LOCATION})
        self.images_group = f"{sub}/{RG_IMAGES}"
        compute = self.sandbox.client(ComputeManagementClient)
        compute.galleries.begin_create_or_update(RG_IMAGES, GALLERY, {"location": LOCATION}).result()
        delegation = {
            "name": "aci",
            "properties": {"serviceName": "Microsoft.ContainerInstance/containerGroups"},
        }
        vnet = {
            "location": LOCATION,
            "properties": {
                "addressSpace": {"addressPrefixes": ["10.60.0.0/16"]},
                "subnets": [
                    {
                        "name": "build",
                        "properties": {
                            "addressPrefix": "10.60.0.0/24",
                            "privateLinkServiceNetworkPolicies": "Disabled",
                        },
                    },
                    {
                        "name": "aci",
                        "properties": {"addressPrefix": "10.60.1.0/24", "delegations": [delegation]},
                    },
                ],
            },
        }
        network = self.sandbox.client(NetworkManagementClient)
        network.virtual_networks.begin_create_or_update(RG_NET, "corp", vnet).result()
        base = f"{sub}/{RG_NET}/providers/Microsoft.Network/virtualNetworks/corp/subnets"
        self.subnets = {"build": f"{base}/build", "aci": f"{base}/aci"}
        return self

    def gallery_image(self, name: str) -> str:
        """A fresh image definition per template: concurrent Latest builds never share a version."""
        from azure.mgmt.compute import ComputeManagementClient

        definition = {
            "location": LOCATION,
            "properties": {
                "osType": "Linux",
                "osState": "Generalized",
                "hyperVGeneration": "V2",
                "identifier": {"publisher": "kaib", "offer": "chaos", "sku": name},
            },
        }
        compute = self.sandbox.client(ComputeManagementClient)
        compute.gallery_images.begin_create_or_update(RG_IMAGES, GALLERY, name, definition).result()
        return f"{self.images_group}/providers/Microsoft.Compute/galleries/{GALLERY}/images/{name}"

    def template(self, kind: Kind, name: str, run: str) -> dict[str, Any]:
        """The template `name` of a `kind`; its artifacts are named after the `run` too (never reused)."""
        tmpl = image_template(name, self.sandbox, self.images_group)
        spec = tmpl["spec"]
        if kind.topology == "SubnetOnly":
            spec["vmProfile"]["vnetConfig"] = {"subnetId": self.subnets["build"]}
        elif kind.topology == "SubnetAndAci":
            spec["vmProfile"]["vnetConfig"] = {
                "subnetId": self.subnets["build"],
                "containerInstanceSubnetId": self.subnets["aci"],
            }
        spec["distribute"] = [
            self._target(f"{run}-{name}", i, what) for i, what in enumerate(kind.distribute)
        ]
        if kind.container == "validation-fails":
            spec["validate"] = {
                "continueDistributeOnFailure": True,
                "inVMValidations": [{"type": "Shell", "name": "check", "inline": ["false"]}],
            }
        return tmpl

    def _target(self, name: str, i: int, what: str) -> dict[str, Any]:
        output = f"out{i}"
        if what == "ManagedImage":
            image = f"{self.images_group}/providers/Microsoft.Compute/images/{name}-{i}"
            return {"type": what, "runOutputName": output, "imageId": image, "location": LOCATION}
        if what == "VHD":
            return {"type": what, "runOutputName": output}
        image = self.gallery_image(f"{name}-{i}")
        if what == "SharedImagePinned":
            image += "/versions/1.0.0"
        return {"type": "SharedImage", "runOutputName": output, "galleryImageId": image}

    def outcome(self, kind: Kind, build_id: str, scale: float) -> None:
        """How this build's modelled builder container ends (one real second of customizing)."""
        seconds = 1.0 / scale
        pattern = f"kaib-{build_id}-*"
        if kind.container == "fails":
            result: dict[str, Any] = {"message": "Shell customizer 'hello' failed"}
            self.sandbox.add_outcome(
                pattern, exitCode=1, seconds=seconds, logs="hello failed\n", result=result
            )
        elif kind.container == "validation-fails":
            phases: list[dict[str, Any]] = [
                {
                    "name": "customize",
                    "start": "2026-01-01T00:00:00Z",
                    "end": "2026-01-01T00:00:01Z",
                    "exitCode": 0,
                },
                {
                    "name": "validate",
                    "start": "2026-01-01T00:00:01Z",
                    "end": "2026-01-01T00:00:02Z",
                    "exitCode": 1,
                },
            ]
            result = {"status": "Failed", "message": "validator 'check' failed", "phases": phases}
            self.sandbox.add_outcome(pattern, exitCode=1, seconds=seconds, result=result)
        else:
            self.sandbox.add_outcome(pattern, exitCode=0, seconds=seconds)


# -- watching a run: creations, faults, leaks ------------------------------------------------------------


class RequestWatch:
    """The sandbox's request log, read often enough that nothing scrolls out of it, and across restarts
    of the sandbox: the union of what every read returned since `start`."""

    def __init__(self) -> None:
        self.seen: dict[tuple[float, str, str, int], dict[str, Any]] = {}
        self.start = time.time()
        self.gap = False

    def poll(self, sandbox: SandboxHandle, limit: int = 4000) -> None:
        batch = [r for r in sandbox.requests(limit=limit) if r["at"] >= self.start]
        if len(batch) == limit and self.seen and batch[0]["at"] > max(k[0] for k in self.seen):
            self.gap = True  # more requests than `limit` since the last read: some were never seen
        for r in batch:
            self.seen[(r["at"], r["method"], r["path"], r["status"])] = r

    def creations(self) -> Counter[str]:
        """PUTs answered 201 (a resource created) per resource id."""
        return Counter(
            r["path"].split("?")[0].lower()
            for r in self.seen.values()
            if r["method"] == "PUT" and r["status"] == 201
        )

    def duplicates(self) -> dict[str, int]:
        return {path: n for path, n in self.creations().items() if n > 1}

    def faulted(self) -> int:
        return sum(1 for r in self.seen.values() if r.get("code") in FAULT_CODES)


def leaks(before: set[str], after: list[dict[str, Any]], statuses: list[dict[str, Any]]) -> list[str]:
    """New resources that are neither a staging group, a storage account in one, nor a run output."""
    staging = {str(s.get("stagingResourceGroup", "")).lower() for s in statuses} - {""}
    outputs = {str(o.get("artifactId", "")).lower() for s in statuses for o in s.get("runOutputs") or []}
    left = []
    for r in after:
        rid = r["id"].lower()
        if rid in before or rid in staging or rid in outputs:
            continue
        in_staging = any(rid.startswith(group + "/") for group in staging)
        if in_staging and r["type"].lower() == "microsoft.storage/storageaccounts":
            continue
        left.append(r["id"])
    return sorted(left)


def outcome_problem(
    kind: Kind, expected: Expected | None, status: dict[str, Any], message_gist: str, inventory: set[str]
) -> str | None:
    """Why this terminal status is not the outcome the build has without faults (None: it is).
    Without an `expected` (the baseline itself) the kind's designed phase is checked."""
    phase, outputs = status.get("phase"), outputs_of(status)
    if expected is None:
        if kind.designed is not None and phase != kind.designed:
            return f"phase {phase}, designed {kind.designed}: {status.get('message')}"
        made = [name for name, state in outputs if state == "Succeeded"]
        if phase in ("Succeeded", "PartiallySucceeded") and len(made) != len(kind.distribute):
            return f"run outputs {outputs} for {len(kind.distribute)} distribution targets"
    elif phase != expected.phase:
        return f"phase {phase}, expected {expected.phase}: {status.get('message')}"
    elif message_gist != expected.gist:
        return f"message {message_gist!r}, expected {expected.gist!r}"
    elif outputs != expected.outputs:
        return f"run outputs {outputs}, expected {expected.outputs}"
    for o in status.get("runOutputs") or []:
        artifact = str(o.get("artifactId") or "").lower()  # a VHD's is a blob URI, not in ARM
        if o.get("provisioningState") == "Succeeded" and artifact and artifact not in inventory:
            return f"run output not in the inventory: {o}"
    return None


# -- one chaos run ---------------------------------------------------------------------------------------


@dataclass
class Chaos:
    """What one run disturbs and how hard; `seed` decides the kinds, the kill moments and the fault mix."""

    seed: int
    builds: int = 3
    kills: bool = True
    fault_rate: float = 0.0  # about this share of ARM requests is answered with an injected fault
    disruption: str = ""  # "" | "sandbox-restart" | "apiserver-restart"
    trigger: str = ""  # the subState that sets off the disruption; "": drawn by the seed
    kinds: tuple[Kind, ...] = ()  # default: `builds` different kinds drawn by the seed
    scale: float = FAST_SCALE * 5
    kill_window: float = 2.5  # a kill lands this long at most after the new operator first calls ARM
    max_kills: int = 1000  # then the builds finish undisturbed (CI's budget)
    timeout: float = 900  # a build stuck this long is a failure


def add_faults(sandbox: SandboxHandle, rate: float, rng: random.Random) -> None:
    # Rules are tried in order and the first that fires answers: two rules of rate/2 fault about `rate`
    # of the reads, PUTs and DELETEs meet a third (409) as well.
    share = rate / 2
    five = rng.choice([(500, "InternalServerError"), (503, "ServiceUnavailable")])
    sandbox.add_fault(status=429, code="TooManyRequests", probability=share, retryAfter=1)
    sandbox.add_fault(status=five[0], code=five[1], probability=share)
    for method in ("PUT", "DELETE"):
        sandbox.add_fault(status=409, code="AnotherOperationInProgress", method=method, probability=share)


def run_chaos(
    kube: Kube,
    bed: Bed,
    chaos: Chaos,
    workdir: Path,
    expected: dict[str, Expected] | None,
    restart_sandbox: Callable[[], SandboxHandle] | None = None,
) -> dict[str, Any]:
    """Run the builds under chaos to their end; the report says what happened and whether it passed.
    `expected`: each kind's outcome without faults (None: this is the baseline run that measures it)."""
    rng = random.Random(chaos.seed)
    kinds = list(chaos.kinds) or rng.sample(KINDS, chaos.builds)
    ns = kube.namespace(f"chaos-{chaos.seed}-{uuid.uuid4().hex[:4]}")
    docs = [bed.template(kind, f"t{i}", ns) for i, kind in enumerate(kinds)]
    before = {r["id"].lower() for r in bed.sandbox.inventory()}
    watch = RequestWatch()
    bed.sandbox.set_latency(scale=chaos.scale)
    if chaos.fault_rate:
        add_faults(bed.sandbox, chaos.fault_rate, rng)
    # watching only the run's namespace: other tests' builds are not its business
    op = Operator(kube, bed.sandbox, workdir / f"operator-{chaos.seed}.log", namespace=ns)
    op.start()
    for i, doc in enumerate(docs):
        for manifest in (doc, image_build(f"b{i}", f"t{i}")):
            kube.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(manifest))
    trigger = rng.choice(["Building", "Customizing", "Distributing"])  # drawn even when given: same kills
    trigger = chaos.trigger or trigger
    ids: dict[str, Kind] = {}
    statuses: dict[str, dict[str, Any]] = {}
    kills = crashes = 0
    disrupted = ""
    active_from, kill_at = bed.sandbox.counters()["total"], None
    started = time.monotonic()
    try:
        while time.monotonic() - started < chaos.timeout:
            items = json.loads(
                kube.kubectl("get", "imagebuild", "-n", ns, "-o", "json", check=False).stdout or "{}"
            )
            statuses = {
                i["metadata"]["name"]: i.get("status") or {} for i in items.get("items", [])
            } or statuses
            for name, status in statuses.items():
                if status.get("buildId") and status["buildId"] not in ids:
                    ids[status["buildId"]] = kinds[int(name[1:])]
                    bed.outcome(ids[status["buildId"]], status["buildId"], chaos.scale)
            watch.poll(bed.sandbox)
            if len(statuses) == len(kinds) and all(s.get("phase") in TERMINAL for s in statuses.values()):
                break
            if not op.alive():
                crashes += 1  # it died by itself: an engine defect, but the run goes on
                op.start()
            if (
                chaos.disruption
                and not disrupted
                and any(s.get("subState") == trigger for s in statuses.values())
            ):
                disrupted = f"{chaos.disruption} at {trigger}, {time.monotonic() - started:.1f} s in"
                if chaos.disruption == "apiserver-restart":
                    kube.plane.restart_apiserver(down_seconds=rng.uniform(1, 3))
                elif restart_sandbox is not None:
                    # Nothing is set again: its --state keeps the latency scale and the outcomes.
                    watch.poll(bed.sandbox)
                    bed.sandbox = op.sandbox = restart_sandbox()
                    active_from = bed.sandbox.counters()["total"]
            if chaos.kills and kills < chaos.max_kills:
                total = bed.sandbox.counters()["total"]
                if kill_at is None and total > active_from:
                    kill_at = time.monotonic() + rng.uniform(0, chaos.kill_window)
                if kill_at is not None and time.monotonic() >= kill_at:
                    op.kill()
                    kills += 1
                    op.start()
                    active_from, kill_at = bed.sandbox.counters()["total"], None
            time.sleep(0.2)
    finally:
        bed.sandbox.clear_faults()
        op.stop()
    watch.poll(bed.sandbox)
    after = bed.sandbox.inventory()
    inventory = {r["id"].lower() for r in after}
    results = []
    for name in sorted(statuses):
        kind = kinds[int(name[1:])]
        status = statuses[name]
        message_gist = gist(str(status.get("message", "")), ns, name, str(status.get("buildId", "")))
        want = expected[kind.name] if expected is not None else None
        problem = (
            outcome_problem(kind, want, status, message_gist, inventory)
            if status.get("phase") in TERMINAL
            else "not finished"
        )
        results.append(
            {
                "build": name,
                "kind": kind.name,
                "expected": want.phase if want else kind.designed,
                "phase": status.get("phase"),
                "gist": message_gist,
                "outputs": outputs_of(status),
                "problem": problem,
            }
        )
    leaked = leaks(before, after, list(statuses.values()))
    leaked += [r["id"] for r in after if (r.get("tags") or {}).get("kaib.dev/build-id") in ids]
    requests = len(watch.seen)
    report = {
        "seed": chaos.seed,
        "namespace": ns,
        "builds": results,
        "kills": kills,
        "crashes": crashes,
        "disruption": disrupted,
        "faultRate": chaos.fault_rate,
        "requests": requests,
        "faulted": watch.faulted(),
        "faultedShare": round(watch.faulted() / requests, 3) if requests else 0.0,
        "created": len(watch.creations()),  # resources created (PUT 201): the duplicate check saw them
        "duplicates": watch.duplicates(),
        "leaked": sorted(set(leaked)),
        "logGap": watch.gap,
        "seconds": round(time.monotonic() - started, 1),
        "operatorLog": str(op.log_path),
    }
    report["passed"] = (
        all(r["problem"] is None for r in results)
        and len(results) == len(kinds)
        and not report["duplicates"]
        and not report["leaked"]
        and not watch.gap
        and len(watch.creations()) > 0
        and crashes == 0
        and (bool(disrupted) or not chaos.disruption)  # a restart that never happened proves nothing
    )
    return report


# -- CI: a reduced set of seeds (the full run: bench/run chaos) -------------------------------------------


@pytest.fixture(scope="module")
def bed(sandbox: SandboxHandle) -> Iterator[Bed]:
    yield Bed(sandbox).prepare()
    sandbox.set_latency(scale=FAST_SCALE)
    sandbox.clear_faults()
    sandbox.clear_outcomes()


@pytest.fixture(scope="module")
def baseline(kube: Kube, bed: Bed, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One build of every kind without faults: the outcomes the chaos runs are held to."""
    return run_chaos(
        kube, bed, Chaos(seed=0, kills=False, kinds=KINDS), tmp_path_factory.mktemp("base"), None
    )


def check(report: dict[str, Any]) -> None:
    assert report["passed"], json.dumps(report, indent=1)


def test_every_kind_without_faults_has_its_designed_outcome(baseline: dict[str, Any]) -> None:
    check(baseline)


def test_operator_killed_at_random_under_arm_faults(
    kube: Kube, bed: Bed, baseline: dict[str, Any], tmp_path: Path
) -> None:
    chaos = Chaos(seed=7, builds=3, fault_rate=0.12, max_kills=3)
    report = run_chaos(kube, bed, chaos, tmp_path, expectations(baseline))
    check(report)
    assert report["kills"] == 3 and 0.05 <= report["faultedShare"] <= 0.2, report


class StatefulSandbox:
    """A sandbox of its own with --state, restartable mid-build (its ports are kept by the state). Its
    environment is applied to os.environ while it runs (DefaultAzureCredential reads it there), as the
    fixture does."""

    def __init__(self, workdir: Path) -> None:
        self.args = ("--state", str(workdir / "sandbox-state.json"))
        self.handle = start_sandbox(*self.args)
        self.saved = {k: os.environ.get(k) for k in self.handle.env}
        os.environ.update(self.handle.env)

    def restart(self) -> SandboxHandle:
        before = self.handle.env
        stop_sandbox(self.handle)
        self.handle = start_sandbox(*self.args)
        assert self.handle.env == before, "a sandbox restarted with its state has the same endpoints"
        return self.handle

    def stop(self) -> None:
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        stop_sandbox(self.handle)


def run_with_restartable_sandbox(
    kube: Kube, chaos: Chaos, workdir: Path, expected: dict[str, Expected]
) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    own = StatefulSandbox(workdir)
    try:
        return run_chaos(
            kube, Bed(own.handle).prepare(), chaos, workdir, expected, restart_sandbox=own.restart
        )
    finally:
        own.stop()


def test_sandbox_restarted_with_its_state_while_the_builder_runs(
    kube: Kube, baseline: dict[str, Any], tmp_path: Path
) -> None:
    """The full run's sandbox-restart seed 201: a restart while customizing failed the build."""
    chaos = Chaos(
        seed=3,
        kills=False,
        disruption="sandbox-restart",
        trigger="Customizing",
        kinds=(KIND["novnet-managed"],),
    )
    report = run_with_restartable_sandbox(kube, chaos, tmp_path, expectations(baseline))
    check(report)
    assert report["disruption"].startswith("sandbox-restart at Customizing"), report


def test_apiserver_restarted_mid_build(
    kube: Kube, bed: Bed, baseline: dict[str, Any], tmp_path: Path
) -> None:
    chaos = Chaos(seed=5, kills=False, disruption="apiserver-restart", kinds=(KIND["byo-sig"],))
    report = run_chaos(kube, bed, chaos, tmp_path, expectations(baseline))
    check(report)
    assert report["disruption"].startswith("apiserver-restart"), report
