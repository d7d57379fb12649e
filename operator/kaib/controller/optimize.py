"""optimize.vmBoot: AIB's Optimizing subState, between customization/validation and distribution.

In AIB, boot optimization takes the customized, generalized OS disk, copies it into Microsoft's own
subscription, optimizes it there for a faster first boot, and hands it back; that part has no
public API. kaib does the part that has one: it generalizes the build VM (optimization applies to
generalized images only) as its own step with its own timing and status, so the subState sequence
and the timing are AIB's, then says plainly, in the condition and an event, that the image is
distributed without the internal boot optimization. The unsupported combinations AIB documents
(OS disks over 2 TB, Arm64 images) are refused: the disk size by the CRD's CEL rule and again in
preflight, the architecture in preflight.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kaib.azure.arm import to_rest
from kaib.azure.spec import parse_resource_id
from kaib.controller import conditions, distribution
from kaib.controller.run_context import Run
from kaib.controller.stepresult import StepResult

MAX_DISK_GB = 2048  # AIB: images over 2 TB are not supported by boot optimization
UNAVAILABLE = (
    "the build VM is generalized for boot optimization; AIB's boot optimization itself runs inside "
    "Microsoft's service with no public API, so kaib distributes the generalized image without it"
)


def enabled(spec: Mapping[str, Any]) -> bool:
    return str(((spec.get("optimize") or {}).get("vmBoot") or {}).get("state") or "") == "Enabled"


def unsupported(spec: Mapping[str, Any], architecture: str | None) -> str | None:
    """Why vmBoot cannot apply to this template (None: it can, or it is not Enabled)."""
    if not enabled(spec):
        return None
    disk = int((spec.get("vmProfile") or {}).get("osDiskSizeGB") or 0)
    if disk > MAX_DISK_GB:
        return (
            f"optimize.vmBoot does not support OS disks over 2 TB (vmProfile.osDiskSizeGB is {disk}); "
            "set optimize.vmBoot.state Disabled or a smaller osDiskSizeGB"
        )
    if (architecture or "").lower() == "arm64":
        return (
            "optimize.vmBoot does not support Arm64 images (the source image is Arm64); "
            "set optimize.vmBoot.state Disabled"
        )
    return None


async def source_architecture(run: Run) -> str | None:
    """The source's architecture (x64 | Arm64) where Azure says it: platform images and gallery images."""
    source = run.spec.get("source") or {}
    compute = run.clients.compute
    exact = str(run.status.data.get("exactSourceVersion") or "")
    if source.get("type") == "PlatformImage" and exact:
        image = await compute.virtual_machine_images.get(
            run.location, source["publisher"], source["offer"], source["sku"], exact
        )
        body = to_rest(image) or {}
    elif source.get("type") == "SharedImageVersion":
        parts = parse_resource_id(str(source.get("imageVersionId", "")))
        gallery, image_name = [*parts.get("parents", "").split("/"), "", ""][:2]
        ops = run.engine.azure.for_subscription(parts.get("subscription")).compute
        body = to_rest(await ops.gallery_images.get(parts["resourceGroup"], gallery, image_name)) or {}
    else:
        return None  # a managed image does not say
    props = body.get("properties") or body
    value = props.get("architecture")
    return str(value) if value else None


async def optimize(run: Run) -> StepResult:
    result = await distribution.generalize(run)
    if result.state != "done":
        return result
    run.status.set_step("optimize", "Done")
    run.status.condition("Optimized", conditions.FALSE, "NotAvailable", UNAVAILABLE)
    run.event("OptimizeUnavailable", UNAVAILABLE, warning=True)
    return StepResult.done()
