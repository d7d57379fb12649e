"""Microsoft.Compute: virtual machines (and their actions), disks, managed images, galleries, gallery
images and gallery image versions."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from typing import TYPE_CHECKING, Any

from .. import diskexport
from ..errors import ArmError
from ..hooks import ResourceView
from ..registry import ActionResult, Ref, TypeSpec
from . import catalog
from .common import stable_uuid

if TYPE_CHECKING:
    from ..engine import Engine
    from ..store import Resource

NS = "Microsoft.Compute"
VM = f"{NS}/virtualMachines"
DISK = f"{NS}/disks"
IMAGE = f"{NS}/images"
GALLERY = f"{NS}/galleries"
GALLERY_IMAGE = f"{GALLERY}/images"
VERSION = f"{GALLERY_IMAGE}/versions"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.0000000+00:00", time.gmtime())


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(p) for p in name.split(".") if p.isdigit())


def latest_version(engine: Engine, gallery_image: Resource) -> Resource | None:
    candidates = [
        v
        for v in engine.store.children(gallery_image.id, VERSION)
        if not (v.props.get("publishingProfile") or {}).get("excludeFromLatest")
        and v.provisioning_state == "Succeeded"
    ]
    return max(candidates, key=lambda v: _version_key(v.name), default=None)


# Virtual machines -------------------------------------------------------------------------------
def _source_of(engine: Engine, vm: Resource) -> tuple[str, str, Resource | None]:
    """(osType, hyperVGeneration, source resource) of a VM's image; fills exactVersion for platform."""
    storage = vm.props.setdefault("storageProfile", {})
    ref = storage.get("imageReference") or {}
    os_disk = storage.get("osDisk") or {}
    if ref.get("id"):
        source = engine.resolve(ref["id"])
        if source is None:
            raise ArmError(
                404, "NotFound", f"The Image '{ref['id']}' cannot be found in '{vm.location}' region."
            )
        if source.type.lower() == GALLERY_IMAGE.lower():
            version = latest_version(engine, source)
            if version is None:
                raise ArmError(
                    404,
                    "GalleryImageNotFound",
                    f"The gallery image {ref['id']} has no version to use as 'latest'.",
                )
            source = version
        if source.type.lower() == VERSION.lower():
            regions = [
                r.get("name", "")
                for r in (source.props.get("publishingProfile") or {}).get("targetRegions") or []
            ]
            if regions and _loc(vm.location) not in {_loc(r) for r in regions}:
                raise ArmError(
                    400,
                    "InvalidParameter",
                    f"Gallery image version {source.id} is not replicated to region '{vm.location}'; "
                    f"its target regions are {regions}.",
                )
            image = engine.store.get(source.id.rsplit("/", 2)[0])
            ip = image.props if image else {}
            return ip.get("osType", "Linux"), ip.get("hyperVGeneration", "V1"), source
        if source.type.lower() == IMAGE.lower():
            if _loc(source.location) != _loc(vm.location):
                raise ArmError(
                    400,
                    "InvalidParameter",
                    f"Image {source.id} is in '{source.location}', the VM in '{vm.location}'.",
                )
            od = (source.props.get("storageProfile") or {}).get("osDisk") or {}
            return od.get("osType", "Linux"), source.props.get("hyperVGeneration", "V1"), source
        raise ArmError(
            400, "InvalidParameter", f"{ref['id']} is not an image, gallery image or image version."
        )
    if ref.get("publisher"):
        wanted = str(ref.get("version") or "latest")
        found = catalog.resolve(ref["publisher"], ref.get("offer", ""), ref.get("sku", ""), wanted)
        if found is None:
            urn = f"{ref.get('publisher')}:{ref.get('offer')}:{ref.get('sku')}:{wanted}"
            raise ArmError(
                404,
                "PlatformImageNotFound",
                f"The platform image '{urn}' is not available. Verify "
                "that all fields in the storage profile are correct.",
            )
        ref["exactVersion"] = found[0]
        return found[1], found[2], None
    if str(os_disk.get("createOption", "")).lower() == "attach":
        disk = engine.store.get((os_disk.get("managedDisk") or {}).get("id", ""))
        if disk is None:
            raise ArmError(404, "NotFound", "The OS disk to attach was not found.")
        return disk.props.get("osType", "Linux"), disk.props.get("hyperVGeneration", "V1"), disk
    raise ArmError(
        400,
        "InvalidParameter",
        "Required parameter 'imageReference' is missing (null).",
        target="imageReference",
    )


def _validate_vm(engine: Engine, vm: Resource, existing: Resource | None) -> None:
    size = (vm.props.get("hardwareProfile") or {}).get("vmSize")
    if not size:
        raise ArmError(
            400,
            "InvalidParameter",
            "Required parameter 'hardwareProfile.vmSize' is missing.",
            target="vmSize",
        )
    nics = (vm.props.get("networkProfile") or {}).get("networkInterfaces") or []
    if not nics:
        raise ArmError(
            400, "InvalidParameter", "At least one network interface is required.", target="networkProfile"
        )
    for nic_ref in nics:
        for user in engine.store.referrers(nic_ref.get("id", "")):
            if user.type.lower() == VM.lower() and user.key != vm.key:
                raise ArmError(400, "NicInUse", f"Network interface {nic_ref['id']} is used by VM {user.id}.")
    for identity_id in (vm.body.get("identity") or {}).get("userAssignedIdentities") or {}:
        engine.check_reference(vm, Ref("identity", same_location=False), identity_id, vm.location)
    if existing is not None:
        return
    os_type, _, source = _source_of(engine, vm)
    generalized = source is None or _os_state(source) == "Generalized"
    profile = vm.props.get("osProfile")
    if generalized and not (profile and profile.get("adminUsername")):
        raise ArmError(
            400,
            "InvalidParameter",
            "Required parameter 'osProfile.adminUsername' is missing (null).",
            target="adminUsername",
        )
    if profile and os_type == "Linux":
        linux = profile.get("linuxConfiguration") or {}
        keys = ((linux.get("ssh") or {}).get("publicKeys")) or []
        if not keys and not profile.get("adminPassword"):
            raise ArmError(
                400,
                "InvalidParameter",
                "Either an SSH public key or an admin password is required.",
                target="linuxConfiguration",
            )
    if profile and os_type == "Windows" and not profile.get("adminPassword"):
        raise ArmError(
            400,
            "InvalidParameter",
            "Required parameter 'adminPassword' is missing (null).",
            target="adminPassword",
        )


def _os_state(source: Resource) -> str:
    if source.type.lower() == VM.lower():
        return "Generalized" if source.state.get("generalized") else "Specialized"
    if source.type.lower() == IMAGE.lower():
        od = (source.props.get("storageProfile") or {}).get("osDisk") or {}
        return str(od.get("osState", "Generalized"))
    if source.type.lower() == VERSION.lower():
        return "Generalized"
    return "Specialized"


def _synthesize_vm(engine: Engine, vm: Resource, existing: Resource | None) -> None:
    from ..store import Resource as StoredResource

    vm.props["vmId"] = stable_uuid(vm.id)
    profile = vm.props.get("osProfile")
    if profile:
        if "adminPassword" in profile:
            vm.state["admin_password"] = profile.pop("adminPassword")  # never returned, as in Azure
        profile.setdefault("computerName", vm.name[:15])
        profile.setdefault("allowExtensionOperations", True)
    if existing is not None:
        # What the caller cannot change on update comes from before.
        vm.props["storageProfile"] = existing.props.get("storageProfile", vm.props.get("storageProfile"))
        vm.props["timeCreated"] = existing.props.get("timeCreated", _now())
        if existing.props.get("osProfile") and not profile:
            vm.props["osProfile"] = existing.props["osProfile"]
        return
    os_type, generation, source = _source_of(engine, vm)
    vm.state.update({"power": "running", "generalized": False, "os_type": os_type, "generation": generation})
    vm.state["source_id"] = source.id if source else None
    storage = vm.props["storageProfile"]
    os_disk = storage.setdefault("osDisk", {})
    os_disk.setdefault("osType", os_type)
    os_disk.setdefault("createOption", "FromImage")
    os_disk.setdefault("caching", "ReadWrite")
    os_disk.setdefault("deleteOption", "Detach")
    os_disk.setdefault("diskSizeGB", 30 if os_type == "Linux" else 127)
    managed = os_disk.setdefault("managedDisk", {})
    managed.setdefault("storageAccountType", "Premium_LRS")
    if not managed.get("id"):
        name = os_disk.get("name") or f"{vm.name}_OsDisk_1_{stable_uuid(vm.id).replace('-', '')}"
        os_disk["name"] = name
        disk_id = f"{vm.id.split('/providers/')[0]}/providers/{DISK}/{name}"
        disk = StoredResource(
            disk_id,
            DISK,
            {
                "id": disk_id,
                "name": name,
                "type": DISK,
                "location": vm.location,
                "managedBy": vm.id,
                "sku": {"name": managed["storageAccountType"]},
                "properties": {
                    "osType": os_type,
                    "hyperVGeneration": generation,
                    "diskSizeGB": os_disk["diskSizeGB"],
                    "creationData": {
                        "createOption": "FromImage",
                        "imageReference": {"id": source.id} if source else None,
                    },
                    "provisioningState": "Succeeded",
                    "timeCreated": _now(),
                    "uniqueId": stable_uuid(disk_id),
                },
            },
            state={"os_disk_of": vm.id},
        )
        engine.add_managed(disk)
        managed["id"] = disk_id
    vm.props["timeCreated"] = _now()


def _instance_view(engine: Engine, vm: Resource) -> dict[str, Any]:
    state = vm.provisioning_state or "Succeeded"
    power = vm.state.get("power", "running")
    statuses = [
        {
            "code": f"ProvisioningState/{state.lower()}",
            "level": "Info",
            "displayStatus": f"Provisioning {state.lower()}",
            "time": _now(),
        },
        {"code": f"PowerState/{power}", "level": "Info", "displayStatus": f"VM {power}"},
    ]
    if vm.state.get("generalized"):
        statuses.append({"code": "OSState/generalized", "level": "Info", "displayStatus": "VM generalized"})
    os_disk = (vm.props.get("storageProfile") or {}).get("osDisk") or {}
    return {
        "computerName": (vm.props.get("osProfile") or {}).get("computerName", vm.name),
        "osName": "ubuntu"
        if vm.state.get("os_type", "Linux") == "Linux"
        else "Windows Server 2022 Datacenter",
        "hyperVGeneration": vm.state.get("generation", "V2"),
        "vmAgent": {
            "vmAgentVersion": "2.11.1.12",
            "statuses": [{"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Ready"}],
        },
        "disks": [{"name": os_disk.get("name", ""), "statuses": statuses[:1]}],
        "statuses": statuses,
    }


def _render_vm(engine: Engine, vm: Resource, body: dict[str, Any], listing: bool, expand: str) -> None:
    if "instanceview" in expand.lower():
        body["properties"]["instanceView"] = _instance_view(engine, vm)


async def _vm_ready(engine: Engine, vm: Resource) -> None:
    if vm.state.get("power", "running") == "running":
        await engine.hooks.vm_started(engine.view(vm))


async def _vm_deleted(engine: Engine, vm: Resource) -> None:
    await engine.hooks.vm_deleted(engine.view(vm))


def _vm_cascade(engine: Engine, vm: Resource) -> list[str]:
    out = []
    os_disk = (vm.props.get("storageProfile") or {}).get("osDisk") or {}
    if str(os_disk.get("deleteOption", "")).lower() == "delete":
        out.append((os_disk.get("managedDisk") or {}).get("id", ""))
    for nic in (vm.props.get("networkProfile") or {}).get("networkInterfaces") or []:
        if str((nic.get("properties") or {}).get("deleteOption", "")).lower() == "delete":
            out.append(nic.get("id", ""))
    return [i for i in out if i]


def _vm_quota(engine: Engine, vm: Resource) -> list[tuple[str, str, int]]:
    size = str((vm.props.get("hardwareProfile") or {}).get("vmSize", ""))
    info = catalog.size_info(size)
    digits = re.findall(r"\d+", size)
    family, cores = info if info else ("standardDSv3Family", int(digits[0]) if digits else 2)
    return [("compute", "cores", cores), ("compute", "virtualMachines", 1), ("compute", family, cores)]


def _power_action(power: str, started: bool) -> Any:
    def action(engine: Engine, vm: Resource, body: dict[str, Any], query: dict[str, str]) -> ActionResult:
        async def work() -> Any:
            vm.state["power"] = power
            if started:
                await engine.hooks.vm_started(engine.view(vm))
            else:
                await engine.hooks.vm_stopped(engine.view(vm), deallocated=power == "deallocated")
            return None

        vm.state["power"] = {"running": "starting", "deallocated": "deallocating", "stopped": "stopping"}[
            power
        ]
        return ActionResult(work=work)

    return action


def _restore_vm(engine: Engine, vm: Resource) -> None:
    """A power action in flight when a persisted sandbox stopped counts as done, as its operation does
    (Engine.restore): the VM is in the state the action was heading to, not stuck on the way there."""
    settled = {"starting": "running", "deallocating": "deallocated", "stopping": "stopped"}
    power = str(vm.state.get("power", "running"))
    vm.state["power"] = settled.get(power, power)


def _generalize(engine: Engine, vm: Resource, body: dict[str, Any], query: dict[str, str]) -> ActionResult:
    vm.state["generalized"] = True
    view = engine.view(vm)
    engine.ops.background(lambda: engine.hooks.vm_generalized(view))
    return ActionResult(200, None)


def _capture(engine: Engine, vm: Resource, body: dict[str, Any], query: dict[str, str]) -> ActionResult:
    if not vm.state.get("generalized"):
        raise ArmError(
            409,
            "OperationNotAllowed",
            f"Capture operation cannot be completed because the VM '{vm.name}' is not generalized.",
        )
    prefix = body.get("vhdPrefix", "capture")
    container = body.get("destinationContainerName", "system")
    uri = f"https://sandbox.blob.core.windows.net/{container}/Microsoft.Compute/Images/{prefix}-osDisk.vhd"

    async def work() -> Any:
        image = ResourceView(
            f"{vm.id}/capture/{prefix}",
            f"{VM}/capture",
            prefix,
            vm.location,
            {"vhdUri": uri},
            lambda _id: None,
        )
        await engine.hooks.image_created(image, engine.view(vm))
        return {
            "id": f"{vm.id}/capture",
            "$schema": "https://schema.management.azure.com/schemas/2015-01-01/deploymentTemplate.json#",
            "contentVersion": "1.0.0.0",
            "parameters": {"vmName": {"type": "string"}},
            "resources": [
                {
                    "name": "[parameters('vmName')]",
                    "type": VM,
                    "properties": {
                        "storageProfile": {
                            "osDisk": {
                                "osType": vm.state.get("os_type", "Linux"),
                                "name": f"{prefix}-osDisk",
                                "createOption": "FromImage",
                                "image": {"uri": uri},
                            }
                        }
                    },
                }
            ],
        }

    return ActionResult(work=work)


def _get_instance_view(
    engine: Engine, vm: Resource, body: dict[str, Any], query: dict[str, str]
) -> ActionResult:
    return ActionResult(200, _instance_view(engine, vm))


# Disks, images, galleries -------------------------------------------------------------------------
def _synthesize_disk(engine: Engine, disk: Resource, existing: Resource | None) -> None:
    disk.props.setdefault("creationData", {"createOption": "Empty"})
    disk.props.setdefault("diskSizeGB", 30)
    disk.props["timeCreated"] = existing.props.get("timeCreated", _now()) if existing else _now()
    disk.props["uniqueId"] = stable_uuid(disk.id)
    disk.body.setdefault("sku", {"name": "Premium_LRS", "tier": "Premium"})
    if existing is not None and "os_disk_of" in existing.state:
        disk.body.setdefault("managedBy", existing.body.get("managedBy"))


def _render_disk(engine: Engine, disk: Resource, body: dict[str, Any], listing: bool, expand: str) -> None:
    users = [u for u in engine.store.referrers(disk.id) if u.type.lower() == VM.lower()]
    body["properties"]["diskState"] = "Attached" if users else "Unattached"
    if disk.state.get("export") is not None:
        body["properties"]["diskState"] = "ActiveSAS"
    if users:
        body["managedBy"] = users[0].id
    else:
        body.pop("managedBy", None)


def _attached_vm(engine: Engine, disk: Resource) -> Resource | None:
    return next((u for u in engine.store.referrers(disk.id) if u.type.lower() == VM.lower()), None)


def _begin_get_access(
    engine: Engine, disk: Resource, body: dict[str, Any], query: dict[str, str]
) -> ActionResult:
    """Export the disk: a read SAS URL of its bytes (see diskexport.py). As Azure: only when the VM it
    is attached to is deallocated; a second grant answers a new SAS of the same export."""
    access = str(body.get("access") or "")
    if access not in ("Read", "Write"):
        raise ArmError(
            400,
            "InvalidParameter",
            f"The value '{access}' of parameter 'access' is invalid.",
            target="access",
        )
    seconds = int(body.get("durationInSeconds") or 0)
    if seconds <= 0:
        raise ArmError(
            400,
            "InvalidParameter",
            "The value of parameter 'durationInSeconds' must be a positive number of seconds.",
            target="durationInSeconds",
        )
    vm = _attached_vm(engine, disk)
    if vm is not None and vm.state.get("power", "running") != "deallocated":
        raise ArmError(
            409,
            "Conflict",
            f"Access not permitted because disk {disk.name} is currently attached to running VM {vm.id}.",
        )
    azurite = engine.extensions.get("azurite")
    if azurite is None:
        raise ArmError(
            409, "OperationNotAllowed", "The sandbox runs without Azurite: disks cannot be exported."
        )

    async def work() -> Any:
        export = disk.state.get("export")
        if export is None:
            data = await engine.hooks.disk_contents(engine.view(disk), engine.view(vm) if vm else None)
            if data is None:
                data = _disk_description(disk, vm)
            unique = uuid.UUID(str(disk.props.get("uniqueId") or stable_uuid(disk.id))).bytes
            vhd = diskexport.fixed_vhd(data, unique)
            container = diskexport.new_container()
            await asyncio.to_thread(diskexport.publish, azurite, container, vhd)
            export = {"container": container, "bytes": len(vhd)}
            disk.state["export"] = export
        sas = diskexport.sas_url(azurite, str(export["container"]), seconds)
        return {"accessSAS": sas}

    return ActionResult(work=work)


def _disk_description(disk: Resource, vm: Resource | None) -> bytes:
    """What a modelled disk holds: where it came from, as JSON (no runtime: no real content)."""
    creation = disk.props.get("creationData") or {}
    source = (vm.props.get("storageProfile") or {}).get("imageReference") if vm is not None else None
    return json.dumps(
        {
            "kind": "kaib-sandbox-disk",
            "modelled": True,
            "disk": disk.id,
            "uniqueId": disk.props.get("uniqueId"),
            "osType": disk.props.get("osType"),
            "diskSizeGB": disk.props.get("diskSizeGB"),
            "vm": vm.id if vm is not None else None,
            "generalized": bool(vm.state.get("generalized")) if vm is not None else None,
            "source": source or creation.get("imageReference"),
        },
        sort_keys=True,
    ).encode()


def _end_get_access(
    engine: Engine, disk: Resource, body: dict[str, Any], query: dict[str, str]
) -> ActionResult:
    """Revoke access: the export's SAS URLs stop working. Revoking a disk not exported is no error."""

    async def work() -> Any:
        export = disk.state.pop("export", None)
        azurite = engine.extensions.get("azurite")
        if export is not None and azurite is not None:
            await asyncio.to_thread(diskexport.withdraw, azurite, str(export["container"]))
        return None

    return ActionResult(work=work)


def _check_disk_delete(engine: Engine, disk: Resource) -> None:
    # Azure keeps an exported disk (a resource group delete hangs on it): revoke access first.
    # A grant still running counts too: it would export a disk that no longer exists.
    granting = any(
        op.status == "InProgress" and op.resource_id.lower() == disk.id.lower()
        for op in list(engine.ops.by_id.values())
    )
    if granting:
        raise ArmError(
            409, "Conflict", f"An operation is in progress on disk {disk.name}; retry when it has finished."
        )
    if disk.state.get("export") is not None:
        raise ArmError(
            409,
            "Conflict",
            f"Disk {disk.name} has an active SAS (diskState ActiveSAS) and cannot be deleted; "
            "revoke its access first (endGetAccess).",
        )


def _validate_image(engine: Engine, image: Resource, existing: Resource | None) -> None:
    source_id = (image.props.get("sourceVirtualMachine") or {}).get("id")
    if source_id:
        vm = engine.store.get(source_id)
        if vm is not None and not vm.state.get("generalized"):
            raise ArmError(
                409,
                "OperationNotAllowed",
                f"The operation 'Create Image' is not allowed on VM '{vm.name}' since the VM is not "
                "generalized.",
            )
    elif not (image.props.get("storageProfile") or {}).get("osDisk"):
        raise ArmError(
            400, "InvalidParameter", "An image needs sourceVirtualMachine or storageProfile.osDisk."
        )


def _synthesize_image(engine: Engine, image: Resource, existing: Resource | None) -> None:
    source_id = (image.props.get("sourceVirtualMachine") or {}).get("id")
    vm = engine.store.get(source_id) if source_id else None
    storage = image.props.setdefault("storageProfile", {})
    od = storage.setdefault("osDisk", {})
    if vm is not None:
        vm_disk = (vm.props.get("storageProfile") or {}).get("osDisk") or {}
        od.setdefault("osType", vm.state.get("os_type", "Linux"))
        od.setdefault("osState", "Generalized")
        od.setdefault("diskSizeGB", vm_disk.get("diskSizeGB", 30))
        od.setdefault("managedDisk", {"id": (vm_disk.get("managedDisk") or {}).get("id")})
        image.props.setdefault("hyperVGeneration", vm.state.get("generation", "V1"))
    od.setdefault("osState", "Generalized")
    od.setdefault("caching", "ReadWrite")
    storage.setdefault("dataDisks", [])
    image.props.setdefault("hyperVGeneration", "V1")


async def _image_ready(engine: Engine, image: Resource) -> None:
    source_id = (image.props.get("sourceVirtualMachine") or {}).get("id") or (
        ((image.props.get("storageProfile") or {}).get("source") or {}).get("id")
    )
    source = engine.store.get(source_id) if source_id else None
    await engine.hooks.image_created(engine.view(image), engine.view(source) if source else None)


async def _image_deleted(engine: Engine, image: Resource) -> None:
    await engine.hooks.image_deleted(engine.view(image))


def _synthesize_gallery(engine: Engine, gallery: Resource, existing: Resource | None) -> None:
    sub = gallery.id.strip("/").split("/")[1]
    gallery.props["identifier"] = {"uniqueName": f"{sub}-{gallery.name.upper()}"}


def _validate_gallery_image(engine: Engine, image: Resource, existing: Resource | None) -> None:
    p = image.props
    ident = p.get("identifier") or {}
    missing = [k for k in ("publisher", "offer", "sku") if not ident.get(k)]
    if missing or not p.get("osType") or not p.get("osState"):
        raise ArmError(
            400,
            "InvalidParameter",
            "A gallery image needs osType, osState and identifier.publisher/offer/sku.",
        )
    p.setdefault("hyperVGeneration", "V1")


def _validate_version(engine: Engine, version: Resource, existing: Resource | None) -> None:
    if not re.fullmatch(r"\d+\.\d+\.\d+", version.name):
        raise ArmError(
            400,
            "InvalidParameter",
            f"The gallery image version name '{version.name}' is invalid: it must be "
            "MajorVersion.MinorVersion.Patch (for example 1.0.0).",
            target="galleryImageVersionName",
        )
    source = _version_source(version)
    if not source:
        raise ArmError(400, "InvalidParameter", "Required parameter 'storageProfile.source' is missing.")
    target = engine.check_reference(version, Ref("source"), source, version.location)
    image = engine.current(version.id.rsplit("/", 2)[0])
    wants_generalized = image is not None and str(image.props.get("osState")).lower() == "generalized"
    if target is not None and wants_generalized and _os_state(target) != "Generalized":
        raise ArmError(
            409,
            "OperationNotAllowed",
            f"The source {target.id} is not generalized; gallery image "
            f"{ids_name(version)} expects a generalized image.",
        )


def _version_source(version: Resource) -> str | None:
    storage = version.props.get("storageProfile") or {}
    source = storage.get("source") or {}
    found = source.get("id") or source.get("virtualMachineId")
    return str(found) if found else None


def _synthesize_version(engine: Engine, version: Resource, existing: Resource | None) -> None:
    profile = version.props.setdefault("publishingProfile", {})
    regions = profile.get("targetRegions") or [{"name": version.location}]
    for r in regions:
        r.setdefault("regionalReplicaCount", profile.get("replicaCount", 1))
        r.setdefault("storageAccountType", profile.get("storageAccountType", "Standard_LRS"))
    profile["targetRegions"] = regions
    profile.setdefault("replicaCount", 1)
    profile.setdefault("excludeFromLatest", False)
    profile["publishedDate"] = (
        existing.props.get("publishingProfile", {}).get("publishedDate", _now()) if existing else _now()
    )
    version.props["storageProfile"].setdefault("osDiskImage", {"sizeInGB": 30, "hostCaching": "ReadWrite"})
    version.state["replication_started"] = time.time()


def _render_version(
    engine: Engine, version: Resource, body: dict[str, Any], listing: bool, expand: str
) -> None:
    if "replicationstatus" not in expand.lower():
        return
    done = version.provisioning_state == "Succeeded"
    seconds = max(engine.latency.seconds(VERSION, "put"), 0.001)
    progress = (
        100
        if done
        else min(99, int((time.time() - version.state.get("replication_started", 0)) / seconds * 100))
    )
    regions = (version.props.get("publishingProfile") or {}).get("targetRegions") or []
    body["properties"]["replicationStatus"] = {
        "aggregatedState": "Completed" if done else "InProgress",
        "summary": [
            {
                "region": r.get("name"),
                "state": "Completed" if done else "Replicating",
                "progress": progress,
                "details": "",
            }
            for r in regions
        ],
    }


async def _version_ready(engine: Engine, version: Resource) -> None:
    source_id = _version_source(version)
    source = engine.store.get(source_id) if source_id else None
    await engine.hooks.image_created(engine.view(version), engine.view(source) if source else None)


def _loc(location: str | None) -> str:
    return (location or "").replace(" ", "").lower()


SPECS = [
    TypeSpec(
        VM,
        validate=_validate_vm,
        synthesize=_synthesize_vm,
        render=_render_vm,
        on_ready=_vm_ready,
        on_delete=_vm_deleted,
        on_restore=_restore_vm,
        cascade=_vm_cascade,
        quota=_vm_quota,
        refs=(
            Ref("properties.networkProfile.networkInterfaces[].id"),
            Ref("properties.storageProfile.osDisk.managedDisk.id"),
        ),
        actions={
            "start": ("POST", _power_action("running", True)),
            "restart": ("POST", _power_action("running", True)),
            "deallocate": ("POST", _power_action("deallocated", False)),
            "poweroff": ("POST", _power_action("stopped", False)),
            "generalize": ("POST", _generalize),
            "capture": ("POST", _capture),
            "instanceview": ("GET", _get_instance_view),
        },
    ),
    TypeSpec(
        DISK,
        create_status=202,
        synthesize=_synthesize_disk,
        render=_render_disk,
        in_use=(409, "OperationNotAllowed"),
        check_delete=_check_disk_delete,
        actions={
            "begingetaccess": ("POST", _begin_get_access),
            "endgetaccess": ("POST", _end_get_access),
        },
    ),
    TypeSpec(
        IMAGE,
        validate=_validate_image,
        synthesize=_synthesize_image,
        on_ready=_image_ready,
        on_delete=_image_deleted,
        refs=(Ref("properties.sourceVirtualMachine.id"),),
    ),
    TypeSpec(GALLERY, synthesize=_synthesize_gallery),
    TypeSpec(GALLERY_IMAGE, validate=_validate_gallery_image),
    TypeSpec(
        VERSION,
        validate=_validate_version,
        synthesize=_synthesize_version,
        render=_render_version,
        on_ready=_version_ready,
        on_delete=_image_deleted,
    ),
]


def ids_name(version: Resource) -> str:
    """The gallery image's name, from a version's id."""
    return version.id.rsplit("/", 3)[-3]
