"""Distribution: generalize the build VM once, then each distribute[] target (ManagedImage,
SharedImage with its versioning, VHD: see vhd.py); runOutputs record what was made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kaib.azure import compute
from kaib.azure import spec as t
from kaib.azure.arm import VirtualMachines, list_names
from kaib.azure.async_step import action
from kaib.azure.spec import ResourceSpec, parse_resource_id
from kaib.controller import vhd, waves
from kaib.controller.run_context import Run
from kaib.controller.stepresult import StepResult, azure_problem


async def generalize(run: Run) -> StepResult:
    """Deallocate then generalize the build VM, once."""
    ctx = run.ctx
    vm = ctx.spec(t.VM, ctx.names.build_vm, {}, "buildvm")
    vms = VirtualMachines(run.clients)
    try:
        codes = await vms.status_codes(vm)
    except Exception as exc:
        return azure_problem(run, exc, f"reading virtual machine {vm.name}")
    if "OSState/generalized" in codes:
        return StepResult.done()
    if "PowerState/deallocated" not in codes:
        saved = run.status.saved_operation(vm.id)
        outcome = await action(vms.deallocate(vm), vm, "deallocate", saved, run.settings)
        run.status.save_operation(vm.id, outcome.operation)
        if outcome.state == "failed":
            assert outcome.failure is not None
            return StepResult.fail(outcome.failure.describe(f"deallocating {vm.name}"), outcome.failure.code)
        if outcome.state == "waiting":
            return StepResult.wait(outcome.requeue_after or run.settings.requeue)
    outcome = await action(vms.generalize(vm), vm, "generalize", None, run.settings)
    if outcome.state == "failed":
        assert outcome.failure is not None
        return StepResult.fail(outcome.failure.describe(f"generalizing {vm.name}"), outcome.failure.code)
    if outcome.state == "waiting":
        return StepResult.wait(outcome.requeue_after or run.settings.requeue)
    return StepResult.done()


# How many times one operator process picks another version for one Latest target whose version
# another writer took (kept in memory: status.runOutputs has no field for it). Each pick is above every
# version listed, so only writers that keep winning the same race could use them all up.
MAX_VERSION_PICKS = 5
_version_picks: dict[tuple[str, str], int] = {}


def artifact_tags(run: Run) -> dict[str, str]:
    # Not ownership tags: distributed images are the user's and must survive cleanup and the sweeper.
    # The build id tag says which build made a target, as target names are the user's to choose.
    return {
        compute.TAG_BUILT_BY: f"{run.namespace}/{run.name}",
        compute.TAG_BUILT_BY_ID: run.build_id,
        "kaib.dev/template": run.template_name,
    }


async def distribute(run: Run) -> StepResult:
    result = await generalize(run)
    if result.state != "done":
        return result
    ctx = run.ctx
    vm_id = ctx.id(t.VM, ctx.names.build_vm)
    outputs = {o.get("runOutputName"): dict(o) for o in run.status.data.get("runOutputs") or []}
    targets: list[tuple[dict[str, Any], ResourceSpec]] = []
    vhds: list[dict[str, Any]] = []
    for target in run.spec.get("distribute") or []:
        name = str(target.get("runOutputName"))
        kind = target.get("type")
        if kind == "ManagedImage":
            targets.append((target, compute.managed_image(target, vm_id, artifact_tags(run))))
        elif kind == "SharedImage":
            version = await _gallery_version(run, target, outputs.get(name))
            if isinstance(version, StepResult):
                return version
            spec = compute.gallery_image_version(target, version, vm_id, run.location, artifact_tags(run))
            targets.append((target, spec))
        elif kind == "VHD":
            vhds.append(target)
        else:
            return StepResult.fail(
                f"distribute {name}: {kind} distribution is not supported by this kaib version; "
                "use ManagedImage, SharedImage or VHD",
                reason="UnsupportedDistribution",
            )
    pending = []
    chosen = False
    for target, spec in targets:
        name = str(target["runOutputName"])
        if outputs.get(name, {}).get("provisioningState") == "Succeeded":
            continue
        chosen = chosen or name not in outputs
        outputs[name] = {"runOutputName": name, "artifactId": spec.id, "provisioningState": "Creating"}
        pending.append(spec)
    _record(run, outputs)
    if chosen:
        # Save the artifacts chosen (a gallery version picked by Latest) before creating them: a
        # restart then creates that same version, never a second one.
        return StepResult.wait(0.0)
    images = await _images(run, targets, pending, outputs, vm_id) if pending else StepResult.done()
    copied = await vhd.distribute(run, vhds, outputs) if vhds else StepResult.done()
    _record(run, outputs)
    return _both(images, copied)


def _record(run: Run, outputs: Mapping[str, dict[str, Any]]) -> None:
    """runOutputs in the order of distribute[]."""
    order = [str(d.get("runOutputName")) for d in run.spec.get("distribute") or []]
    run.status.data["runOutputs"] = [outputs[n] for n in order if n in outputs]


async def _images(
    run: Run,
    targets: list[tuple[dict[str, Any], ResourceSpec]],
    pending: list[ResourceSpec],
    outputs: dict[str, dict[str, Any]],
    vm_id: str,
) -> StepResult:
    """Managed images and gallery image versions, as one wave of ARM resources.

    A target found in Azure is this build's only when it carries the build's id tag: another build
    may have taken the same gallery version (Latest), or a user's name may already be used.
    """
    result_waves = await waves.ensure(run.status, [pending], run.ops_for, run.settings, record=False)
    outcomes = result_waves.outcomes or {}
    repicked = False
    for target, spec in targets:
        outcome = outcomes.get(spec.id)
        if outcome is None:
            continue
        name = str(target["runOutputName"])
        decision = compute.target_decision(outcome.resource, run.build_id, vm_id, _latest(target))
        picks = _version_picks.get((run.build_id, name), 0)
        if decision == "conflict" or (decision == "next-version" and picks >= MAX_VERSION_PICKS):
            assert outcome.resource is not None
            del outputs[name]  # nothing of this build's: not an artifact to report
            return _exists(run, name, spec, outcome.resource, picks)
        if decision == "next-version":
            assert outcome.resource is not None
            picked = await _pick_again(run, target, spec, outputs[name])
            if isinstance(picked, StepResult):
                return picked
            _version_picks[(run.build_id, name)] = picks + 1
            repicked = True
        elif outcome.state == "done":
            outputs[name]["provisioningState"] = "Succeeded"
            _version_picks.pop((run.build_id, name), None)
    if repicked:
        # Save the new version before creating it, as for the first pick: a restart never makes two.
        return StepResult.wait(0.0)
    if result_waves.state == "done":
        return StepResult.done()
    return StepResult(result_waves.state, result_waves.requeue, result_waves.message, "Failed")


def _latest(target: Mapping[str, Any]) -> bool:
    """A SharedImage target whose version kaib picks (scheme Latest), rather than one the user named."""
    if target.get("type") != "SharedImage" or "/versions/" in str(target["galleryImageId"]).lower():
        return False
    return bool((target.get("versioning") or {"scheme": "Latest"}).get("scheme") == "Latest")


def _exists(run: Run, name: str, spec: ResourceSpec, existing: Mapping[str, Any], picks: int) -> StepResult:
    """Fail the target: its name is taken by something this build did not make."""
    what = waves.describe(spec)
    if picks:
        message = (
            f"distribute {name}: {what} ({spec.id}) already exists and was not made by this build "
            f"({compute.made_by_text(existing)}), after {picks} other versions were taken the same way; "
            "retry the build, or set an explicit version"
        )
    else:
        message = (
            f"distribute {name}: {spec.id} already exists and was not made by this build "
            f"({compute.made_by_text(existing)}); choose another name/version or delete it"
        )
    _version_picks.pop((run.build_id, name), None)
    return StepResult.fail(message, "DistributionTargetExists")


async def _pick_again(
    run: Run, target: Mapping[str, Any], taken: ResourceSpec, output: dict[str, Any]
) -> StepResult | None:
    """Latest versioning, when another writer made the version picked: the next free one, above every
    version listed and above the taken one (still being created, it may not be listed yet)."""
    names = await _version_names(run, str(target["galleryImageId"]))
    if isinstance(names, StepResult):
        return names
    major = int((target.get("versioning") or {}).get("major", -1))
    version = compute.next_version([*names, taken.name], major)
    output["artifactId"] = taken.id.rsplit("/", 1)[0] + "/" + version
    output["provisioningState"] = "Creating"
    run.event(
        "DistributionVersionTaken",
        f"distribute {output['runOutputName']}: version {taken.name} was made by another writer; "
        f"using {version}",
    )
    return None


async def _version_names(run: Run, image_id: str) -> list[str] | StepResult:
    parts = parse_resource_id(image_id)
    clients = run.engine.azure.for_subscription(parts.get("subscription"))
    try:
        return await list_names(
            clients.compute.gallery_image_versions.list_by_gallery_image(
                parts["resourceGroup"], parts.get("parents", ""), parts["name"]
            )
        )
    except Exception as exc:
        return azure_problem(run, exc, f"listing versions of {image_id}")


def _both(a: StepResult, b: StepResult) -> StepResult:
    for r in (a, b):
        if r.state == "failed":
            return r
    waiting = [r for r in (a, b) if r.state == "waiting"]
    return min(waiting, key=lambda r: r.requeue) if waiting else StepResult.done()


async def _gallery_version(
    run: Run, target: Mapping[str, Any], recorded: Mapping[str, Any] | None
) -> str | StepResult:
    """The version to create: explicit, the source's (scheme Source), or the next one (Latest)."""
    if recorded and recorded.get("artifactId"):
        return str(recorded["artifactId"]).rsplit("/", 1)[-1]  # chosen once, kept across restarts
    image_id = str(target["galleryImageId"])
    if "/versions/" in image_id.lower():
        return image_id.rsplit("/", 1)[-1]
    versioning = target.get("versioning") or {"scheme": "Latest"}
    if versioning.get("scheme") == "Source":
        exact = str(run.status.data.get("exactSourceVersion") or "")
        version = exact.rsplit("/", 1)[-1]
        if len(version.split(".")) != 3:
            return StepResult.fail(
                f"versioning Source needs a source version x.y.z, got {version!r}", "InvalidVersion"
            )
        return version
    names = await _version_names(run, image_id)
    if isinstance(names, StepResult):
        return names
    return compute.next_version(names, int(versioning.get("major", -1)))
