"""Manifests for the API tests: a valid base of each kind, and a table of invalid variations of them.

The same table drives `kaib validate` (tests/unit/test_api_rules.py) and the real apiserver
(tests/integration/test_crds.py): each case must be rejected by both, naming `path`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from kaib.api.validate_cli import manifest_bytes

SUB = "00000000-0000-0000-0000-000000000001"
RG = f"/subscriptions/{SUB}/resourceGroups/kaib-network"
SUBNET = f"{RG}/providers/Microsoft.Network/virtualNetworks/vnet/subnets/build"
ACI_SUBNET = f"{RG}/providers/Microsoft.Network/virtualNetworks/vnet/subnets/aci"
IMAGE = f"/subscriptions/{SUB}/resourceGroups/images/providers/Microsoft.Compute/images/out"
GALLERY_IMAGE = (
    f"/subscriptions/{SUB}/resourceGroups/images/providers/Microsoft.Compute/galleries/g/images/def"
)
IDENTITY = (
    f"/subscriptions/{SUB}/resourceGroups/id/providers/Microsoft.ManagedIdentity"
    "/userAssignedIdentities/builder"
)
DELETE = object()  # a patch value that removes the key


def template(name: str = "case") -> dict[str, Any]:
    return {
        "apiVersion": "kaib.dev/v1alpha1",
        "kind": "ImageTemplate",
        "metadata": {"name": name},
        "spec": {
            "azure": {"subscriptionId": SUB, "location": "eastus"},
            "source": {
                "type": "PlatformImage",
                "publisher": "Canonical",
                "offer": "ubuntu-24_04-lts",
                "sku": "server",
                "version": "latest",
            },
            "customize": [{"type": "Shell", "name": "hello", "inline": ["echo hello"]}],
            "distribute": [
                {"type": "ManagedImage", "runOutputName": "out", "imageId": IMAGE, "location": "eastus"}
            ],
        },
    }


def build(name: str = "case-1", template_name: str = "case") -> dict[str, Any]:
    return {
        "apiVersion": "kaib.dev/v1alpha1",
        "kind": "ImageBuild",
        "metadata": {"name": name},
        "spec": {"templateRef": {"name": template_name}},
    }


def sized(name: str, size: int) -> dict[str, Any]:
    """A valid ImageTemplate of exactly `size` bytes as compact JSON (commands of 4096 characters)."""
    doc = patched(template(name), {"spec.customize[0].inline": ["x" * 4096] * (size // 4099 + 1)})
    lines = doc["spec"]["customize"][0]["inline"]
    while manifest_bytes(doc) > size:
        lines.pop()
    lines.append("x" * (size - manifest_bytes(doc) - len('"",')))
    assert manifest_bytes(doc) == size
    return doc


def patched(doc: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A copy of `doc` with `patch` applied: "a.b[0].c" -> value (DELETE removes the key)."""
    out = copy.deepcopy(doc)
    for path, value in patch.items():
        target: Any = out
        keys: list[str | int] = []
        for part in path.split("."):
            name, _, rest = part.partition("[")
            keys.append(name)
            if rest:
                keys.append(int(rest.rstrip("]")))
        for key in keys[:-1]:
            target = target[key]
        last = keys[-1]
        if value is DELETE:
            del target[last]
        elif isinstance(last, int) and last == len(target):
            target.append(copy.deepcopy(value))
        else:
            target[last] = copy.deepcopy(value)
    return out


@dataclass
class Case:
    id: str
    patch: dict[str, Any]
    path: str  # the field both the apiserver and `kaib validate` must name
    kind: str = "ImageTemplate"

    def manifest(self, name: str) -> dict[str, Any]:
        base = template(name) if self.kind == "ImageTemplate" else build(name)
        return patched(base, self.patch)


PS = {"type": "PowerShell", "inline": ["Write-Output hi"]}
FILE = {"type": "File", "sourceUri": "https://x/f", "destination": "/tmp/f"}
SHARED = {"type": "SharedImage", "runOutputName": "sig", "galleryImageId": GALLERY_IMAGE}

CASES = [
    # customizers and validators
    Case("script-and-inline", {"spec.customize[0].scriptUri": "https://x/s.sh"}, "spec.customize[0]"),
    Case("neither-script-nor-inline", {"spec.customize[0].inline": DELETE}, "spec.customize[0]"),
    Case(
        "validator-neither",
        {"spec.validate": {"inVMValidations": [{"type": "PowerShell", "name": "v"}]}},
        "spec.validate.inVMValidations[0]",
    ),
    Case(
        "runAsSystem-without-runElevated",
        {"spec.customize": [{**PS, "runAsSystem": True}]},
        "spec.customize[0].runAsSystem",
    ),
    Case("runElevated-on-shell", {"spec.customize[0].runElevated": True}, "spec.customize[0].runElevated"),
    Case("unknown-customizer-type", {"spec.customize[0].type": "Ansible"}, "spec.customize[0].type"),
    Case("customizer-without-type", {"spec.customize[0].type": DELETE}, "spec.customize[0].type"),
    Case(
        "file-without-destination",
        {"spec.customize": [{"type": "File", "sourceUri": "https://x/f"}]},
        "spec.customize[0].destination",
    ),
    Case(
        "negative-updateLimit",
        {"spec.customize": [{"type": "WindowsUpdate", "updateLimit": -1}]},
        "spec.customize[0].updateLimit",
    ),
    Case(
        "restartTimeout-not-a-duration",
        {"spec.customize": [{"type": "WindowsRestart", "restartTimeout": "5 minutes"}]},
        "spec.customize[0].restartTimeout",
    ),
    Case(
        "restart-as-validator",
        {"spec.validate": {"inVMValidations": [{"type": "WindowsRestart"}]}},
        "spec.validate.inVMValidations[0].type",
    ),
    Case("inline-not-a-list", {"spec.customize[0].inline": "echo hi"}, "spec.customize[0].inline"),
    Case(
        "sha256-not-hex", {"spec.customize[0].sha256Checksum": "g" * 64}, "spec.customize[0].sha256Checksum"
    ),
    Case(
        "sha256-too-short", {"spec.customize[0].sha256Checksum": "a" * 63}, "spec.customize[0].sha256Checksum"
    ),
    Case(
        "file-sha256-with-newline",
        {"spec.customize": [{**FILE, "sha256Checksum": "a" * 63 + "\n"}]},
        "spec.customize[0].sha256Checksum",
    ),
    Case(
        "scriptUri-empty",
        {"spec.customize[0]": {"type": "Shell", "scriptUri": ""}},
        "spec.customize[0].scriptUri",
    ),
    Case(
        "file-sourceUri-empty", {"spec.customize": [{**FILE, "sourceUri": ""}]}, "spec.customize[0].sourceUri"
    ),
    Case(
        "file-destination-empty",
        {"spec.validate": {"inVMValidations": [{**FILE, "destination": ""}]}},
        "spec.validate.inVMValidations[0].destination",
    ),
    Case(
        "file-destination-go-template",
        {"spec.customize": [{**FILE, "destination": "/tmp/{{ .Name }}"}]},
        "spec.customize[0].destination",
    ),
    Case(
        "validator-destination-go-template",
        {"spec.validate": {"inVMValidations": [{**FILE, "destination": "/tmp/{{x"}]}},
        "spec.validate.inVMValidations[0].destination",
    ),
    Case(
        "restartCommand-go-template",
        {"spec.customize": [{"type": "WindowsRestart", "restartCommand": "shutdown {{user `x`}}"}]},
        "spec.customize[0].restartCommand",
    ),
    Case(
        "restartCheckCommand-go-template",
        {"spec.customize": [{"type": "WindowsRestart", "restartCheckCommand": "echo {{"}]},
        "spec.customize[0].restartCheckCommand",
    ),
    Case(
        "searchCriteria-go-template",
        {"spec.customize": [{"type": "WindowsUpdate", "searchCriteria": "IsInstalled={{0}}"}]},
        "spec.customize[0].searchCriteria",
    ),
    Case(
        "filters-go-template",
        {"spec.customize": [{"type": "WindowsUpdate", "filters": ["include:$true", "{{ .x }}"]}]},
        "spec.customize[0].filters",
    ),
    Case("inline-empty", {"spec.customize[0].inline": []}, "spec.customize[0].inline"),
    Case(
        "validator-inline-empty",
        {"spec.validate": {"inVMValidations": [{"type": "PowerShell", "inline": []}]}},
        "spec.validate.inVMValidations[0].inline",
    ),
    # network
    Case(
        "aci-subnet-without-subnet",
        {"spec.vmProfile": {"vnetConfig": {"containerInstanceSubnetId": ACI_SUBNET}}},
        "spec.vmProfile.vnetConfig.containerInstanceSubnetId",
    ),
    Case(
        "proxy-size-with-aci-subnet",
        {
            "spec.vmProfile": {
                "vnetConfig": {
                    "subnetId": SUBNET,
                    "containerInstanceSubnetId": ACI_SUBNET,
                    "proxyVmSize": "Standard_A2_v2",
                }
            }
        },
        "spec.vmProfile.vnetConfig.proxyVmSize",
    ),
    Case(
        "aci-subnet-same-as-subnet",
        {"spec.vmProfile": {"vnetConfig": {"subnetId": SUBNET, "containerInstanceSubnetId": SUBNET}}},
        "spec.vmProfile.vnetConfig.containerInstanceSubnetId",
    ),
    Case(
        "subnet-not-a-subnet-id",
        {"spec.vmProfile": {"vnetConfig": {"subnetId": "build-subnet"}}},
        "spec.vmProfile.vnetConfig.subnetId",
    ),
    Case("negative-osDiskSizeGB", {"spec.vmProfile": {"osDiskSizeGB": -1}}, "spec.vmProfile.osDiskSizeGB"),
    Case(
        "unknown-vnetConfig-field",
        {"spec.vmProfile": {"vnetConfig": {"subnetId": SUBNET, "publicIp": True}}},
        "spec.vmProfile.vnetConfig.publicIp",
    ),
    # distribution
    Case(
        "duplicate-runOutputName",
        {"spec.distribute[1]": {"type": "VHD", "runOutputName": "out"}},
        "spec.distribute",
    ),
    Case(
        "runOutputName-bad-chars",
        {"spec.distribute[0].runOutputName": "my output"},
        "spec.distribute[0].runOutputName",
    ),
    Case(
        "runOutputName-too-long",
        {"spec.distribute[0].runOutputName": "x" * 65},
        "spec.distribute[0].runOutputName",
    ),
    Case(
        "runOutputName-missing",
        {"spec.distribute[0].runOutputName": DELETE},
        "spec.distribute[0].runOutputName",
    ),
    Case("distribute-empty", {"spec.distribute": []}, "spec.distribute"),
    Case("distribute-missing", {"spec.distribute": DELETE}, "spec.distribute"),
    Case(
        "managed-image-without-location",
        {"spec.distribute[0].location": DELETE},
        "spec.distribute[0].location",
    ),
    Case(
        "targetRegions-and-replicationRegions",
        {
            "spec.distribute": [
                {**SHARED, "targetRegions": [{"name": "eastus"}], "replicationRegions": ["westus"]}
            ]
        },
        "spec.distribute[0].targetRegions",
    ),
    Case(
        "storageAccountType-without-replicationRegions",
        {"spec.distribute": [{**SHARED, "storageAccountType": "Standard_LRS"}]},
        "spec.distribute[0].storageAccountType",
    ),
    Case(
        "replicaCount-zero",
        {"spec.distribute": [{**SHARED, "targetRegions": [{"name": "eastus", "replicaCount": 0}]}]},
        "spec.distribute[0].targetRegions[0].replicaCount",
    ),
    Case(
        "bad-storageAccountType",
        {"spec.distribute": [{**SHARED, "targetRegions": [{"name": "eastus", "storageAccountType": "HDD"}]}]},
        "spec.distribute[0].targetRegions[0].storageAccountType",
    ),
    Case(
        "bad-versioning-scheme",
        {"spec.distribute": [{**SHARED, "versioning": {"scheme": "Semver"}}]},
        "spec.distribute[0].versioning.scheme",
    ),
    Case(
        "versioning-major-below-minus-one",
        {"spec.distribute": [{**SHARED, "versioning": {"scheme": "Latest", "major": -2}}]},
        "spec.distribute[0].versioning.major",
    ),
    Case(
        "major-with-source-versioning",
        {"spec.distribute": [{**SHARED, "versioning": {"scheme": "Source", "major": 1}}]},
        "spec.distribute[0].versioning.major",
    ),
    Case(
        "galleryImageId-on-vhd",
        {"spec.distribute": [{"type": "VHD", "runOutputName": "v", "galleryImageId": GALLERY_IMAGE}]},
        "spec.distribute[0].galleryImageId",
    ),
    # source
    Case(
        "planInfo-partial",
        {"spec.source.planInfo": {"planName": "p", "planProduct": "q"}},
        "spec.source.planInfo",
    ),
    Case("platform-image-without-sku", {"spec.source.sku": DELETE}, "spec.source.sku"),
    Case(
        "managed-image-source-without-imageId",
        {"spec.source": {"type": "ManagedImage"}},
        "spec.source.imageId",
    ),
    Case("unknown-source-type", {"spec.source.type": "Iso"}, "spec.source.type"),
    Case("source-missing", {"spec.source": DELETE}, "spec.source"),
    # timeouts, enums, identity, azure, names
    Case("timeout-below-6", {"spec.buildTimeoutInMinutes": 5}, "spec.buildTimeoutInMinutes"),
    Case("timeout-above-960", {"spec.buildTimeoutInMinutes": 961}, "spec.buildTimeoutInMinutes"),
    Case("timeout-not-a-number", {"spec.buildTimeoutInMinutes": "60"}, "spec.buildTimeoutInMinutes"),
    Case(
        "bad-onCustomizerError",
        {"spec.errorHandling": {"onCustomizerError": "keep"}},
        "spec.errorHandling.onCustomizerError",
    ),
    Case("bad-vmBoot-state", {"spec.optimize": {"vmBoot": {"state": "On"}}}, "spec.optimize.vmBoot.state"),
    Case(
        "vmBoot-with-disk-over-2TB",
        {"spec.optimize": {"vmBoot": {"state": "Enabled"}}, "spec.vmProfile": {"osDiskSizeGB": 2049}},
        "spec.optimize",
    ),
    Case("bad-autoRun-state", {"spec.autoRun": {"state": "yes"}}, "spec.autoRun.state"),
    Case(
        "user-assigned-without-identities",
        {"spec.identity": {"type": "UserAssigned"}},
        "spec.identity.userAssignedIdentities",
    ),
    Case(
        "identity-key-not-an-identity-id",
        {"spec.identity": {"type": "UserAssigned", "userAssignedIdentities": {"builder": {}}}},
        "spec.identity.userAssignedIdentities",
    ),
    Case(
        "two-identities",
        {
            "spec.identity": {
                "type": "UserAssigned",
                "userAssignedIdentities": {IDENTITY: {}, IDENTITY + "2": {}},
            }
        },
        "spec.identity.userAssignedIdentities",
    ),
    Case("azure-missing", {"spec.azure": DELETE}, "spec.azure"),
    Case("subscription-not-a-guid", {"spec.azure.subscriptionId": "my-sub"}, "spec.azure.subscriptionId"),
    Case("location-display-name", {"spec.azure.location": "East US"}, "spec.azure.location"),
    Case(
        "staging-group-not-a-group-id",
        {"spec.stagingResourceGroup": "my-staging-rg"},
        "spec.stagingResourceGroup",
    ),
    Case("unknown-spec-field", {"spec.vmSize": "Standard_D2s_v3"}, "spec.vmSize"),
    Case("template-name-too-long", {"metadata.name": "t" * 65}, "metadata.name"),
    # ImageBuild
    Case("build-without-templateRef", {"spec.templateRef": DELETE}, "spec.templateRef", kind="ImageBuild"),
    Case(
        "build-templateRef-bad-name",
        {"spec.templateRef.name": "My_Template"},
        "spec.templateRef.name",
        kind="ImageBuild",
    ),
    Case("build-cancel-not-bool", {"spec.cancel": "yes"}, "spec.cancel", kind="ImageBuild"),
    Case("build-unknown-field", {"spec.priority": 1}, "spec.priority", kind="ImageBuild"),
]
