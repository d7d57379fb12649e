"""The shape every Azure resource the engine creates shares (CAPZ's ResourceSpecGetter, in Python).

A spec is pure data: ARM type, where it lives, its deterministic name and the desired REST body.
`parameters(existing)` says what to PUT, or None when the existing resource needs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# ARM types, in the spelling of resource ids.
RESOURCE_GROUP = "Microsoft.Resources/resourceGroups"
STORAGE_ACCOUNT = "Microsoft.Storage/storageAccounts"
BLOB_CONTAINER = "Microsoft.Storage/storageAccounts/blobServices/containers"
VNET = "Microsoft.Network/virtualNetworks"
SUBNET = "Microsoft.Network/virtualNetworks/subnets"
NSG = "Microsoft.Network/networkSecurityGroups"
PRIVATE_ENDPOINT = "Microsoft.Network/privateEndpoints"
PRIVATE_LINK_SERVICE = "Microsoft.Network/privateLinkServices"
LOAD_BALANCER = "Microsoft.Network/loadBalancers"
NIC = "Microsoft.Network/networkInterfaces"
VM = "Microsoft.Compute/virtualMachines"
DISK = "Microsoft.Compute/disks"
IMAGE = "Microsoft.Compute/images"
GALLERY_IMAGE_VERSION = "Microsoft.Compute/galleries/images/versions"
CONTAINER_GROUP = "Microsoft.ContainerInstance/containerGroups"

# provisioningState values after which a PUT must be sent again.
RETRY_STATES = frozenset({"Failed", "Canceled"})


@dataclass(frozen=True)
class ResourceSpec:
    type: str
    subscription_id: str
    resource_group: str
    name: str
    body: Mapping[str, Any] = field(default_factory=dict)
    # Names of the parents for child resources: (vnet,) for a subnet, (gallery, image) for a version,
    # (account, "default") for a blob container.
    parents: tuple[str, ...] = ()
    step: str = ""
    # (tag, value) marking the resources this spec's writer made, for names others may use too
    # (distribution targets): an existing resource without it is never written over.
    owner_tag: tuple[str, str] | None = None

    @property
    def id(self) -> str:
        return resource_id(self.subscription_id, self.resource_group, self.type, (*self.parents, self.name))

    def parameters(self, existing: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The body to PUT, or None when the existing resource is fine as it is.

        The staging resources' names derive from the build, so an existing one in a good state is ours
        and complete; only a failed or canceled one is sent again. A spec with an `owner_tag` names a
        resource others may have made (a distribution target): one without the tag is left as it is,
        and the caller decides from the outcome's resource whether it is its own.
        """
        if existing is None:
            return dict(self.body)
        if self.owner_tag is not None:
            key, value = self.owner_tag
            tags = existing.get("tags")
            if not isinstance(tags, Mapping) or tags.get(key) != value:
                return None
        if provisioning_state(existing) in RETRY_STATES:
            return dict(self.body)
        return None


def provisioning_state(resource: Mapping[str, Any]) -> str | None:
    props = resource.get("properties")
    if isinstance(props, Mapping) and props.get("provisioningState"):
        return str(props["provisioningState"])
    state = resource.get("provisioningState")
    return str(state) if state else None


def resource_id(subscription_id: str, resource_group: str, type_: str, names: tuple[str, ...]) -> str:
    """`/subscriptions/s/resourceGroups/rg/providers/NS/t1/n1/t2/n2` for a type `NS/t1/t2`."""
    base = f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
    if type_ == RESOURCE_GROUP:
        return base
    namespace, *types = type_.split("/")
    if len(types) != len(names):
        raise ValueError(f"{type_} needs {len(types)} names, got {names}")
    path = "/".join(f"{t}/{n}" for t, n in zip(types, names, strict=True))
    return f"{base}/providers/{namespace}/{path}"


def parse_resource_id(rid: str) -> dict[str, str]:
    """The parts of a resource id: subscription, resourceGroup, namespace, type (full), name, parents."""
    parts = rid.strip("/").split("/")
    lower = [p.lower() for p in parts]
    out: dict[str, str] = {}
    if "subscriptions" in lower:
        out["subscription"] = parts[lower.index("subscriptions") + 1]
    if "resourcegroups" in lower:
        out["resourceGroup"] = parts[lower.index("resourcegroups") + 1]
    if "providers" in lower:
        i = lower.index("providers")
        namespace = parts[i + 1]
        rest = parts[i + 2 :]
        types = rest[0::2]
        names = rest[1::2]
        out["namespace"] = namespace
        out["type"] = "/".join([namespace, *types])
        out["name"] = names[-1] if names else ""
        out["parents"] = "/".join(names[:-1])
    return out
