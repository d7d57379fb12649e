"""Compute resources: the build VM, the proxy VM, their OS disks, and the distribution targets
(images, gallery image versions, and the OS disk's export for a VHD)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from azure.mgmt.compute.models import GrantAccessData

from kaib.azure import spec as t
from kaib.azure.arm import LroOperation, Operation, to_rest
from kaib.azure.clients import ServiceClients
from kaib.azure.context import BuildContext
from kaib.azure.spec import ResourceSpec, parse_resource_id

DEFAULT_VM_SIZE = "Standard_D2ds_v4"
DEFAULT_PROXY_VM_SIZE = "Standard_A1_v2"
ADMIN_USER = "packer"

# The build that made a distributed image (a tag the orphan sweeper never reads: the image is the
# user's). Names of distribution targets are the user's, not derived from the build: another build,
# or a person, may have made the same one.
TAG_BUILT_BY = "kaib.dev/built-by"
TAG_BUILT_BY_ID = "kaib.dev/built-by-id"


@dataclass(frozen=True)
class Access:
    """How the builder logs in: an SSH public key (Linux) or an admin password for WinRM (Windows)."""

    os_type: str  # Linux | Windows
    admin_user: str = ADMIN_USER
    ssh_public_key: str = ""
    admin_password: str = ""


def image_reference(source: Mapping[str, Any], exact_version: str | None = None) -> dict[str, Any]:
    """The VM's imageReference for a template source (with `latest` resolved when known)."""
    kind = source.get("type")
    if kind == "PlatformImage":
        version = exact_version or str(source.get("version", "latest"))
        return {
            "publisher": source["publisher"],
            "offer": source["offer"],
            "sku": source["sku"],
            "version": version,
        }
    if kind == "ManagedImage":
        return {"id": source["imageId"]}
    if kind == "SharedImageVersion":
        return {"id": exact_version or source["imageVersionId"]}
    raise ValueError(f"unknown source type {kind!r}")


def _os_profile(computer_name: str, access: Access) -> dict[str, Any]:
    profile: dict[str, Any] = {"computerName": computer_name[:15], "adminUsername": access.admin_user}
    if access.os_type == "Windows":
        profile["adminPassword"] = access.admin_password
        profile["windowsConfiguration"] = {"winRM": {"listeners": [{"protocol": "Https"}]}}
    else:
        key_path = f"/home/{access.admin_user}/.ssh/authorized_keys"
        profile["linuxConfiguration"] = {
            "disablePasswordAuthentication": True,
            "ssh": {"publicKeys": [{"path": key_path, "keyData": access.ssh_public_key}]},
        }
    return profile


def virtual_machine(
    ctx: BuildContext,
    name: str,
    disk_name: str,
    nic_id: str,
    image: Mapping[str, Any],
    access: Access,
    *,
    size: str,
    step: str,
    os_disk_size_gb: int = 0,
    identities: tuple[str, ...] = (),
    plan: Mapping[str, str] | None = None,
) -> ResourceSpec:
    os_disk: dict[str, Any] = {
        "name": disk_name,
        "createOption": "FromImage",
        "deleteOption": "Delete",
        "managedDisk": {"storageAccountType": "Standard_LRS"},
    }
    if os_disk_size_gb:
        os_disk["diskSizeGB"] = os_disk_size_gb
    body: dict[str, Any] = {
        "location": ctx.location,
        "tags": ctx.tags(),
        "properties": {
            "hardwareProfile": {"vmSize": size},
            "storageProfile": {"imageReference": dict(image), "osDisk": os_disk},
            "osProfile": _os_profile(name, access),
            "networkProfile": {
                "networkInterfaces": [
                    {"id": nic_id, "properties": {"primary": True, "deleteOption": "Delete"}}
                ]
            },
        },
    }
    if identities:
        body["identity"] = {"type": "UserAssigned", "userAssignedIdentities": {i: {} for i in identities}}
    if plan:
        body["plan"] = {
            "name": plan["planName"],
            "product": plan["planProduct"],
            "publisher": plan["planPublisher"],
        }
    return ctx.spec(t.VM, name, body, step=step)


def os_disk(ctx: BuildContext, name: str, step: str) -> ResourceSpec:
    """Only deleted: the VM creates it. Listed so cleanup checks it is gone (404 = done)."""
    return ctx.spec(t.DISK, name, {}, step=step)


def _artifact_tags(distributor: Mapping[str, Any], tags: Mapping[str, str]) -> dict[str, str]:
    """kaib's tags and the target's artifactTags; the build id tag always wins (it proves ownership)."""
    merged = {**tags, **(distributor.get("artifactTags") or {})}
    if TAG_BUILT_BY_ID in tags:
        merged[TAG_BUILT_BY_ID] = tags[TAG_BUILT_BY_ID]
    return merged


def _target(rid: str, type_: str, body: dict[str, Any], step: str = "distribute") -> ResourceSpec:
    parts = parse_resource_id(rid)
    owner = body.get("tags", {}).get(TAG_BUILT_BY_ID)
    names = [p for p in parts.get("parents", "").split("/") if p]
    return ResourceSpec(
        type=type_,
        subscription_id=parts["subscription"],
        resource_group=parts["resourceGroup"],
        name=parts["name"],
        body=body,
        parents=tuple(names),
        step=step,
        owner_tag=(TAG_BUILT_BY_ID, owner) if owner else None,
    )


def managed_image(distributor: Mapping[str, Any], vm_id: str, tags: Mapping[str, str]) -> ResourceSpec:
    """distribute[].type ManagedImage: an image from the generalized build VM."""
    body = {
        "location": distributor["location"],
        "tags": _artifact_tags(distributor, tags),
        "properties": {"sourceVirtualMachine": {"id": vm_id}, "hyperVGeneration": "V2"},
    }
    return _target(distributor["imageId"], t.IMAGE, body)


def gallery_image_version(
    distributor: Mapping[str, Any],
    version: str,
    vm_id: str,
    location: str,
    tags: Mapping[str, str],
) -> ResourceSpec:
    """distribute[].type SharedImage: a gallery image version from the generalized build VM."""
    image_id = str(distributor["galleryImageId"])
    if "/versions/" in image_id.lower():
        image_id = image_id[: image_id.lower().index("/versions/")]
    regions = distributor.get("targetRegions") or [
        {"name": r} for r in (distributor.get("replicationRegions") or [location])
    ]
    body = {
        "location": location,
        "tags": _artifact_tags(distributor, tags),
        "properties": {
            "publishingProfile": {
                "targetRegions": [
                    {
                        "name": r["name"],
                        "regionalReplicaCount": r.get("replicaCount", 1),
                        "storageAccountType": r.get("storageAccountType", "Standard_LRS"),
                    }
                    for r in regions
                ],
                "excludeFromLatest": bool(distributor.get("excludeFromLatest", False)),
            },
            "storageProfile": {"source": {"virtualMachineId": vm_id}},
        },
    }
    return _target(f"{image_id}/versions/{version}", t.GALLERY_IMAGE_VERSION, body)


TargetDecision = Literal["ours", "next-version", "conflict"]


def target_source_vm(resource: Mapping[str, Any]) -> str:
    """The VM an image or gallery image version was made from ("" when it names none)."""
    props = resource.get("properties") or {}
    source = ((props.get("storageProfile") or {}).get("source")) or {}
    vm = source.get("virtualMachineId") or source.get("id")
    return str(vm or (props.get("sourceVirtualMachine") or {}).get("id") or "")


def made_by_build(resource: Mapping[str, Any], build_id: str, vm_id: str) -> bool:
    """An existing target is this build's when it carries the build's id tag; one made before that
    tag existed is recognised by its source, the build's own VM (named after the build id)."""
    tags = resource.get("tags") or {}
    if tags.get(TAG_BUILT_BY_ID):
        return bool(build_id) and tags[TAG_BUILT_BY_ID] == build_id
    return bool(vm_id) and target_source_vm(resource).lower() == vm_id.lower()


def target_decision(
    existing: Mapping[str, Any] | None, build_id: str, vm_id: str, latest: bool
) -> TargetDecision:
    """What to do about a distribution target found in Azure: ours (nothing found, or this build made
    it), take the next version (Latest versioning: another writer took this one), or a conflict (a
    name the user chose, already used by someone else)."""
    if existing is None or made_by_build(existing, build_id, vm_id):
        return "ours"
    return "next-version" if latest else "conflict"


def made_by_text(resource: Mapping[str, Any]) -> str:
    """Who made an existing target, for messages: "made by build ns/name (build id x)" or "not by kaib"."""
    tags = resource.get("tags") or {}
    who = tags.get(TAG_BUILT_BY)
    if not who:
        return "not made by kaib"
    build_id = tags.get(TAG_BUILT_BY_ID)
    return f"made by build {who}" + (f" (build id {build_id})" if build_id else "")


def next_version(existing: list[str], major: int = -1) -> str:
    """AIB's `Latest` versioning: one patch above the highest version (within `major` unless -1).

    Versions up to 2.1.0 exist: major -1 gives 2.1.1; major 1 gives 1.2.1 when 1.2.0 is the highest
    1.x.y. With no version yet (in that major): 0.0.1, or major.0.1.
    """
    parsed = []
    for v in existing:
        try:
            a, b, c = (int(x) for x in v.split("."))
        except ValueError:
            continue
        if major == -1 or a == major:
            parsed.append((a, b, c))
    if not parsed:
        return f"{max(major, 0)}.0.1"
    a, b, c = max(parsed)
    return f"{a}.{b}.{c + 1}"


def version_key(version: str) -> tuple[int, ...]:
    """Sort key of a dotted version; anything else sorts first."""
    try:
        return tuple(int(x) for x in version.split("."))
    except ValueError:
        return (-1,)


# -- disk export (VHD distribution) ----------------------------------------------------------------


def disk_access_request(seconds: int) -> GrantAccessData:
    """Read access for `seconds` (long enough for the copy to finish)."""
    return GrantAccessData(access="Read", duration_in_seconds=int(seconds))


class KeepingOperation:
    """An operation that keeps its result: the async step helper reads an action's result and drops
    it, and a grant's result (the SAS URL) is what we need."""

    def __init__(self, inner: Operation, kept: list[Any]) -> None:
        self.inner, self.kept = inner, kept

    def done(self) -> bool:
        return self.inner.done()

    async def update(self) -> None:
        await self.inner.update()

    async def result(self) -> Any:
        value = await self.inner.result()
        self.kept.append(value)
        return value

    def continuation_token(self) -> str | None:
        return self.inner.continuation_token()

    def retry_after(self) -> float | None:
        return self.inner.retry_after()


class DiskAccess:
    """Grant and revoke read access to a managed disk (POST beginGetAccess / endGetAccess, both
    long-running), in the shape `async_step.action` drives."""

    def __init__(self, clients: ServiceClients) -> None:
        self.ops = clients.compute.disks

    def grant(
        self, disk: ResourceSpec, seconds: int, kept: list[Any]
    ) -> Callable[[str | None], Awaitable[Operation]]:
        """`kept` receives the AccessUri (its `accessSAS`) when the operation is done."""

        async def begin(token: str | None) -> Operation:
            if token is not None:
                poller = await self.ops.begin_grant_access(
                    disk.resource_group, disk.name, disk_access_request(seconds), continuation_token=token
                )
            else:
                poller = await self.ops.begin_grant_access(
                    disk.resource_group, disk.name, disk_access_request(seconds)
                )
            return KeepingOperation(LroOperation(poller), kept)

        return begin

    def revoke(self, disk: ResourceSpec) -> Callable[[str | None], Awaitable[Operation]]:
        async def begin(token: str | None) -> Operation:
            if token is not None:
                poller = await self.ops.begin_revoke_access(
                    disk.resource_group, disk.name, continuation_token=token
                )
            else:
                poller = await self.ops.begin_revoke_access(disk.resource_group, disk.name)
            return LroOperation(poller)

        return begin


def access_sas(result: Any) -> str:
    """The SAS URL of a grant's AccessUri (SDK model or REST dict); "" when it has none."""
    body = to_rest(result) or {}
    return str(body.get("accessSAS") or body.get("access_sas") or "")
