"""ImageTemplate spec: AIB 2024-02-01 template `properties`, field for field, plus `identity` and `azure`.

Names and case are AIB's. Defaults are AIB's too, but they are NOT written into the stored object:
a field left out stays out (so `kubectl get -o yaml` shows what the user wrote, and AIB JSON round
trips). `kaib.api.defaults.spec_with_defaults` applies them for the engine.

Edits after creation. AIB refuses to update a template except its `tags`, `identity`, `distribute`
and `vmProfile` ("Update/Upgrade of image templates is currently not supported"). kaib allows
editing any field, because every ImageBuild snapshots the template spec when it starts: an edit can
never change a running build, and the next build simply uses the new spec (AIB users list
"immutable templates" among their complaints). Two things stay fixed, because the template owns
Azure resources there: `azure` (subscriptionId, location) and `stagingResourceGroup`. Changing them
would orphan the staging resource group; create a new ImageTemplate instead. Those two are transition
rules (CEL on the apiserver, `kaib.api.manifest.update_problems` offline).
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from kaib.api.common import MAX_ID, MAX_SHORT, MAX_TEXT, NAME_PATTERN, ApiModel, Rule, present

Id = Annotated[str, Field(max_length=MAX_ID)]
# A URL or path that must name something: an empty one fails only when the build runs.
Location = Annotated[str, Field(min_length=1, max_length=MAX_ID)]
Short = Annotated[str, Field(max_length=MAX_SHORT)]
Text = Annotated[str, Field(max_length=MAX_TEXT)]
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)]
Tags = Annotated[dict[str, Annotated[str, Field(max_length=MAX_SHORT)]], Field(max_length=50)]

# ARM ids are case-insensitive. The same spelling works in Go's RE2 (the apiserver) and in Python.
_SUB_RG = r"/subscriptions/[^/]+/resourceGroups/[^/]+"
IMAGE_ID = rf"(?i)^{_SUB_RG}/providers/Microsoft\.Compute/images/[^/]+$"
GALLERY_IMAGE_ID = (
    rf"(?i)^{_SUB_RG}/providers/Microsoft\.Compute/galleries/[^/]+/images/[^/]+(/versions/[^/]+)?$"
)
IMAGE_VERSION_ID = (
    r"(?i)^/(subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/galleries/[^/]+"
    r"|SharedGalleries/[^/]+|CommunityGalleries/[^/]+)/images/[^/]+/versions/[^/]+$"
)
SUBNET_ID = rf"(?i)^{_SUB_RG}/providers/Microsoft\.Network/virtualNetworks/[^/]+/subnets/[^/]+$"
RESOURCE_GROUP_ID = rf"(?i)^{_SUB_RG}$"
IDENTITY_ID = rf"(?i)^{_SUB_RG}/providers/Microsoft\.ManagedIdentity/userAssignedIdentities/[^/]+$"
GUID = r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$"
GO_DURATION = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$"
# A Windows Update filter: shorter than MAX_TEXT, so that the `{{` rule over 64 of them in each of 256
# customizers stays within the apiserver's CEL cost budget.
MAX_FILTER = 1024
Filter = Annotated[str, Field(max_length=MAX_FILTER)]
SHA256 = r"^([0-9a-fA-F]{64})?$"  # empty is AIB's default: no check
Sha256 = Annotated[str, Field(max_length=64, pattern=SHA256)]

StorageAccountType = Literal["Standard_LRS", "Standard_ZRS", "Premium_LRS"]
EXACTLY_ONE_SCRIPT = "Exactly one of 'scriptUri' or 'inline' can be specified"


def _exactly_one_script(m: Script) -> bool:
    return present(m, "scriptUri") != present(m, "inline")


# Packer runs Go's text/template over these provisioner settings again and again, so no escape
# survives a literal `{{` (kaib.packer.hcl). Inline commands can carry it (kaib uploads them as a
# script); these fields cannot, so the API refuses it instead of the renderer at build time.
GO_TEMPLATED_REASON = "Packer expands it as a Go template action and no escape passes it through unchanged"


def no_template_action(field: str) -> Rule:
    """A rule: the string `field` holds no `{{`."""
    return Rule(
        cel=f"!has(self.{field}) || !self.{field}.contains('{{{{')",
        message=f"{field} must not contain '{{{{': {GO_TEMPLATED_REASON}",
        check=lambda m: "{{" not in (getattr(m, field) or ""),
        field=field,
    )


def no_template_action_in_items(field: str) -> Rule:
    """A rule: no item of the string list `field` holds `{{`."""
    return Rule(
        cel=f"!has(self.{field}) || self.{field}.all(x, !x.contains('{{{{'))",
        message=f"{field} must not contain '{{{{': {GO_TEMPLATED_REASON}",
        check=lambda m: not any("{{" in item for item in getattr(m, field) or []),
        field=field,
    )


# -- source ------------------------------------------------------------------------------------------


class PlanInfo(ApiModel):
    """Purchase plan of a Marketplace platform image: all three fields or none."""

    planName: Short | None = None
    planProduct: Short | None = None
    planPublisher: Short | None = None

    rules = (
        Rule(
            cel="has(self.planName) == has(self.planProduct) "
            "&& has(self.planProduct) == has(self.planPublisher)",
            message="planInfo needs all of planName, planProduct and planPublisher, or none of them",
            check=lambda m: (
                present(m, "planName") == present(m, "planProduct") == present(m, "planPublisher")
            ),
        ),
    )


class PlatformImageSource(ApiModel):
    """An Azure Marketplace image; version `latest` is resolved when a build starts."""

    variant = "PlatformImage"
    type: Literal["PlatformImage"]
    publisher: Short
    offer: Short
    sku: Short
    version: Short = Field(description="Image version, or 'latest' (resolved at build time)")
    planInfo: PlanInfo | None = None


class ManagedImageSource(ApiModel):
    """A generalized managed image in the template's subscription and region."""

    variant = "ManagedImage"
    type: Literal["ManagedImage"]
    imageId: Annotated[str, Field(max_length=MAX_ID, pattern=IMAGE_ID)] = Field(
        description="Resource id of the managed image"
    )


class SharedImageVersionSource(ApiModel):
    """An Azure Compute Gallery image version; `.../versions/latest` is resolved when a build starts."""

    variant = "SharedImageVersion"
    type: Literal["SharedImageVersion"]
    imageVersionId: Annotated[str, Field(max_length=MAX_ID, pattern=IMAGE_VERSION_ID)] = Field(
        description="Resource id of the gallery image version (may end in /versions/latest)"
    )


Source = Annotated[
    PlatformImageSource | ManagedImageSource | SharedImageVersionSource, Field(discriminator="type")
]


# -- customizers and validators -----------------------------------------------------------------------


class Script(ApiModel):
    name: Short | None = Field(None, description="Friendly name of the step")
    scriptUri: Location | None = Field(
        None, description="URL of the script (exactly one of scriptUri, inline)"
    )
    sha256Checksum: Sha256 | None = Field(
        None, description="SHA256 of the script at scriptUri: 64 hex digits [Default: '' (no check)]"
    )
    # At least one command: Packer refuses an empty `inline` only when the build runs.
    inline: Annotated[list[Text], Field(min_length=1, max_length=1000)] | None = Field(
        None, description="Commands to run (exactly one of scriptUri, inline)"
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="has(self.scriptUri) != has(self.inline)",
            message=EXACTLY_ONE_SCRIPT,
            check=_exactly_one_script,
        ),
    )


class ShellStep(Script):
    """Runs a shell script (Linux): Packer's shell provisioner."""

    variant = "Shell"
    type: Literal["Shell"]


class PowerShellStep(Script):
    """Runs PowerShell (Windows): Packer's powershell provisioner."""

    variant = "PowerShell"
    type: Literal["PowerShell"]
    runElevated: bool | None = Field(None, description="Run with elevated privileges [Default: false]")
    runAsSystem: bool | None = Field(
        None, description="Run elevated as Local System; only with runElevated [Default: false]"
    )
    validExitCodes: Annotated[list[int], Field(max_length=64)] | None = Field(
        None, description="[Default: [0]]"
    )

    rules = (
        *Script.rules,
        Rule(
            cel="!has(self.runAsSystem) || !self.runAsSystem || (has(self.runElevated) && self.runElevated)",
            message="runAsSystem can only be true when the runElevated field is set to true",
            check=lambda m: not m.runAsSystem or bool(m.runElevated),
            field="runAsSystem",
        ),
    )


class FileStep(ApiModel):
    """Uploads one file (under 20 MB; on Linux only /tmp is writable): Packer's file provisioner."""

    variant = "File"
    type: Literal["File"]
    name: Short | None = Field(None, description="Friendly name of the step")
    sourceUri: Location = Field(description="URL of the file to upload")
    destination: Location = Field(description="Absolute path on the VM (its folder must exist)")
    sha256Checksum: Sha256 | None = Field(
        None, description="SHA256 of the file at sourceUri: 64 hex digits [Default: '' (no check)]"
    )

    rules = (no_template_action("destination"),)


class WindowsRestartStep(ApiModel):
    """Reboots the VM and waits for it (Windows): Packer's windows-restart provisioner."""

    variant = "WindowsRestart"
    type: Literal["WindowsRestart"]
    name: Short | None = Field(None, description="Friendly name of the step")
    restartCommand: Text | None = Field(
        None, description="""[Default: 'shutdown /r /f /t 0 /c "packer restart"']"""
    )
    restartCheckCommand: Text | None = Field(None, description="[Default: '']")
    restartTimeout: Annotated[str, Field(max_length=32, pattern=GO_DURATION)] | None = Field(
        None, description="Magnitude and unit, e.g. '5m' or '2h' [Default: '5m']"
    )

    # restartTimeout needs no rule: its pattern has no '{'.
    rules = (no_template_action("restartCommand"), no_template_action("restartCheckCommand"))


class WindowsUpdateStep(ApiModel):
    """Installs Windows updates: the packer-provisioner-windows-update provisioner."""

    variant = "WindowsUpdate"
    type: Literal["WindowsUpdate"]
    name: Short | None = Field(None, description="Friendly name of the step")
    searchCriteria: Text | None = Field(None, description="[Default: '' (search all)]")
    filters: Annotated[list[Filter], Field(max_length=64)] | None = Field(
        None, description="[Default: no filter]"
    )
    updateLimit: Annotated[int, Field(ge=0)] | None = Field(None, description="0 means 1000 [Default: 0]")

    rules = (no_template_action("searchCriteria"), no_template_action_in_items("filters"))


Customizer = Annotated[
    ShellStep | PowerShellStep | FileStep | WindowsRestartStep | WindowsUpdateStep,
    Field(discriminator="type"),
]
Validator = Annotated[ShellStep | PowerShellStep | FileStep, Field(discriminator="type")]


class Validate(ApiModel):
    """Validation of the image after customization (or of the source alone)."""

    continueDistributeOnFailure: bool | None = Field(
        None, description="Distribute even if validation fails (the run still fails) [Default: false]"
    )
    sourceValidationOnly: bool | None = Field(
        None, description="Validate the source image itself, without customization [Default: false]"
    )
    inVMValidations: Annotated[list[Validator], Field(max_length=256)] | None = None


# -- distribution -------------------------------------------------------------------------------------


class Distributor(ApiModel):
    runOutputName: Name = Field(description="Name of this output in status.runOutputs; unique")
    artifactTags: Tags | None = Field(None, description="Tags for the distributed image or VHD")


class ManagedImageDistributor(Distributor):
    """Distribute as a managed image; its resource group must exist."""

    variant = "ManagedImage"
    type: Literal["ManagedImage"]
    imageId: Annotated[str, Field(max_length=MAX_ID, pattern=IMAGE_ID)] = Field(
        description="Resource id of the managed image to create (its resource group must exist)"
    )
    location: Short = Field(description="Region of the managed image")


class TargetRegion(ApiModel):
    name: Short
    replicaCount: Annotated[int, Field(ge=1)] | None = Field(None, description="[Default: 1]")
    storageAccountType: StorageAccountType | None = Field(None, description="[Default: Standard_LRS]")


class LatestVersioning(ApiModel):
    """Next version after the highest existing one (within `major` unless it is -1)."""

    variant = "Latest"
    scheme: Literal["Latest"]
    major: Annotated[int, Field(ge=-1)] | None = Field(None, description="[Default: -1 (any major)]")


class SourceVersioning(ApiModel):
    """The source image's version number."""

    variant = "Source"
    scheme: Literal["Source"]


Versioning = Annotated[LatestVersioning | SourceVersioning, Field(discriminator="scheme")]


class SharedImageDistributor(Distributor):
    """Distribute as an Azure Compute Gallery image version."""

    variant = "SharedImage"
    type: Literal["SharedImage"]
    galleryImageId: Annotated[str, Field(max_length=MAX_ID, pattern=GALLERY_IMAGE_ID)] = Field(
        description="Gallery image definition id (automatic version) or .../versions/x.y.z"
    )
    targetRegions: Annotated[list[TargetRegion], Field(max_length=64)] | None = Field(
        None, description="Regions to replicate to [Default: the template's location]"
    )
    replicationRegions: Annotated[list[Short], Field(max_length=64)] | None = Field(
        None, description="[Deprecated] use targetRegions"
    )
    storageAccountType: StorageAccountType | None = Field(
        None, description="[Deprecated] only with replicationRegions [Default: Standard_LRS]"
    )
    excludeFromLatest: bool | None = Field(None, description="[Default: false]")
    versioning: Versioning | None = Field(None, description="[Default: {scheme: Latest, major: -1}]")

    rules = (
        Rule(
            cel="!has(self.targetRegions) || !has(self.replicationRegions)",
            message="targetRegions can be specified only if replicationRegions is not specified",
            check=lambda m: not (present(m, "targetRegions") and present(m, "replicationRegions")),
            field="targetRegions",
        ),
        Rule(
            cel="!has(self.storageAccountType) || has(self.replicationRegions)",
            message="storageAccountType can be specified only if replicationRegions is specified",
            check=lambda m: not present(m, "storageAccountType") or present(m, "replicationRegions"),
            field="storageAccountType",
        ),
    )


class VhdDistributor(Distributor):
    """Distribute as a VHD blob; no uri means the staging storage account."""

    variant = "VHD"
    type: Literal["VHD"]
    uri: Id | None = Field(None, description="[Default: '' (staging storage account)]")


Distribute = Annotated[
    ManagedImageDistributor | SharedImageDistributor | VhdDistributor, Field(discriminator="type")
]


# -- the rest -----------------------------------------------------------------------------------------


class VmBoot(ApiModel):
    state: Literal["Enabled", "Disabled"] | None = None


class Optimize(ApiModel):
    vmBoot: VmBoot | None = None


OnError = Literal["cleanup", "abort"]


class ErrorHandling(ApiModel):
    """`abort` keeps the build VM and staging resources after a failure, for debugging."""

    onCustomizerError: OnError | None = Field(None, description="[Default: cleanup]")
    onValidationError: OnError | None = Field(None, description="[Default: cleanup]")


def _given(value: str | None) -> bool:
    return bool(value)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def lower_ascii(value: str) -> str:
    """CEL's lowerAscii(): only A-Z change (str.lower() would also fold 'À' and the Kelvin sign)."""
    return value.translate(_ASCII_LOWER)


class VnetConfig(ApiModel):
    """Where the build runs: nothing (kaib makes a VNet), subnetId (proxy), or both subnets (no proxy)."""

    subnetId: Annotated[str, Field(max_length=MAX_ID, pattern=SUBNET_ID)] | None = Field(
        None, description="Existing subnet for the build VM (and the proxy VM when alone)"
    )
    containerInstanceSubnetId: Annotated[str, Field(max_length=MAX_ID, pattern=SUBNET_ID)] | None = Field(
        None,
        description="Existing subnet, delegated to Microsoft.ContainerInstance/containerGroups, in the same "
        "VNet as subnetId, for the builder container; no proxy VM then",
    )
    proxyVmSize: Short | None = Field(None, description="[Default: '' (Standard_A1_v2)]")

    rules = (
        Rule(
            cel="!has(self.containerInstanceSubnetId) || has(self.subnetId)",
            message="containerInstanceSubnetId may be specified only if subnetId is also specified",
            check=lambda m: not present(m, "containerInstanceSubnetId") or present(m, "subnetId"),
            field="containerInstanceSubnetId",
        ),
        Rule(
            cel="!has(self.proxyVmSize) || self.proxyVmSize == '' || !has(self.containerInstanceSubnetId)",
            message="proxyVmSize must not be specified if containerInstanceSubnetId is specified, "
            "because no proxy virtual machine is deployed in that case",
            check=lambda m: not _given(m.proxyVmSize) or not present(m, "containerInstanceSubnetId"),
            field="proxyVmSize",
        ),
        Rule(
            cel="!has(self.containerInstanceSubnetId) || !has(self.subnetId) "
            "|| self.containerInstanceSubnetId.lowerAscii() != self.subnetId.lowerAscii()",
            message="containerInstanceSubnetId must be a different subnet than subnetId",
            check=lambda m: (
                not (m.containerInstanceSubnetId and m.subnetId)
                or lower_ascii(m.containerInstanceSubnetId) != lower_ascii(m.subnetId)
            ),
            field="containerInstanceSubnetId",
        ),
    )


class VmProfile(ApiModel):
    vmSize: Short | None = Field(
        None, description="[Default: '' (Standard_D2ds_v4; Standard_D1_v2 for Gen1)]"
    )
    osDiskSizeGB: Annotated[int, Field(ge=0)] | None = Field(None, description="0 keeps the source's size")
    userAssignedIdentities: (
        Annotated[list[Annotated[str, Field(max_length=MAX_ID, pattern=IDENTITY_ID)]], Field(max_length=16)]
        | None
    ) = Field(None, description="Identities for the build VM")
    vnetConfig: VnetConfig | None = None


class AutoRun(ApiModel):
    state: Literal["Enabled", "Disabled"] | None = Field(
        None, description="Build on creation [Default: Disabled]"
    )


class UserAssignedIdentity(ApiModel):
    principalId: Short | None = None
    clientId: Short | None = None


class Identity(ApiModel):
    """The identity builds act as in Azure: one user-assigned identity, or None."""

    type: Literal["UserAssigned", "None"]
    userAssignedIdentities: Annotated[dict[str, UserAssignedIdentity], Field(max_length=1)] | None = None

    rules = (
        Rule(
            cel="self.type == 'None' "
            "|| (has(self.userAssignedIdentities) && size(self.userAssignedIdentities) == 1)",
            message="type UserAssigned needs exactly one entry in userAssignedIdentities",
            check=lambda m: m.type == "None" or len(m.userAssignedIdentities or {}) == 1,
            field="userAssignedIdentities",
        ),
        Rule(
            cel="self.type == 'UserAssigned' || !has(self.userAssignedIdentities) "
            "|| size(self.userAssignedIdentities) == 0",
            message="type None takes no userAssignedIdentities",
            check=lambda m: m.type == "UserAssigned" or not m.userAssignedIdentities,
            field="userAssignedIdentities",
        ),
        Rule(
            cel="!has(self.userAssignedIdentities) "
            f"|| self.userAssignedIdentities.all(k, k.matches(r'{IDENTITY_ID}'))",
            message="userAssignedIdentities keys must be user-assigned identity resource ids "
            "(/subscriptions/.../providers/Microsoft.ManagedIdentity/userAssignedIdentities/NAME)",
            check=lambda m: all(_matches(IDENTITY_ID, k) for k in (m.userAssignedIdentities or {})),
            field="userAssignedIdentities",
        ),
    )


def _matches(pattern: str, value: str) -> bool:
    return re.search(pattern, value) is not None


class Azure(ApiModel):
    """Where this template's builds run. Fixed after creation: the staging resource group lives there."""

    subscriptionId: Annotated[str, Field(pattern=GUID, max_length=36)]
    location: Annotated[str, Field(pattern=r"^[a-z0-9]+$", max_length=64)] = Field(
        description="Azure region name, e.g. eastus"
    )

    rules = (
        Rule(
            cel="self == oldSelf",
            message="azure cannot change after creation (the template's staging resource group lives "
            "there); create a new ImageTemplate instead",
            check=lambda old, new: old == new,
            transition=True,
        ),
    )


class ImageTemplateSpec(ApiModel):
    """What to build: AIB template properties (2024-02-01) plus identity and the Azure home."""

    source: Source
    customize: Annotated[list[Customizer], Field(max_length=256)] | None = None
    validate_: Validate | None = Field(None, alias="validate")
    distribute: Annotated[list[Distribute], Field(min_length=1, max_length=64)]
    optimize: Optimize | None = None
    errorHandling: ErrorHandling | None = None
    buildTimeoutInMinutes: Annotated[int, Field(ge=0, le=960)] | None = Field(
        None, description="0 means 240; otherwise 6..960 [Default: 0]"
    )
    vmProfile: VmProfile | None = None
    stagingResourceGroup: Annotated[str, Field(max_length=MAX_ID, pattern=RESOURCE_GROUP_ID)] | None = Field(
        None, description="Resource group id for build resources; empty: kaib creates one"
    )
    managedResourceTags: Tags | None = Field(None, description="Tags for every resource kaib creates")
    autoRun: AutoRun | None = None
    identity: Identity | None = None
    azure: Azure

    rules = (
        Rule(
            cel="!has(self.buildTimeoutInMinutes) || self.buildTimeoutInMinutes == 0 "
            "|| self.buildTimeoutInMinutes >= 6",
            message="buildTimeoutInMinutes must be 0 (the default, 240 minutes) or between 6 and 960",
            check=lambda m: m.buildTimeoutInMinutes in (None, 0) or m.buildTimeoutInMinutes >= 6,
            field="buildTimeoutInMinutes",
        ),
        Rule(
            cel="!has(self.optimize) || !has(self.optimize.vmBoot) || !has(self.optimize.vmBoot.state) "
            "|| self.optimize.vmBoot.state != 'Enabled' || !has(self.vmProfile) "
            "|| !has(self.vmProfile.osDiskSizeGB) || self.vmProfile.osDiskSizeGB <= 2048",
            message="optimize.vmBoot does not support OS disks over 2 TB: set optimize.vmBoot.state "
            "Disabled or vmProfile.osDiskSizeGB to 2048 or less",
            check=lambda m: (
                not _boot_optimized(m) or m.vmProfile is None or (m.vmProfile.osDiskSizeGB or 0) <= 2048
            ),
            field="optimize",
        ),
        Rule(
            cel="self.distribute.all(d, self.distribute.exists_one(e, e.runOutputName == d.runOutputName))",
            message="runOutputName must be unique across distribute",
            check=lambda m: len({d.runOutputName for d in m.distribute}) == len(m.distribute),
            field="distribute",
        ),
        Rule(
            cel="has(self.stagingResourceGroup) == has(oldSelf.stagingResourceGroup) && "
            "(!has(self.stagingResourceGroup) || self.stagingResourceGroup == oldSelf.stagingResourceGroup)",
            message="stagingResourceGroup cannot change after creation (the template owns that group); "
            "create a new ImageTemplate instead",
            check=lambda old, new: old.stagingResourceGroup == new.stagingResourceGroup,
            field="stagingResourceGroup",
            transition=True,
        ),
    )


def _boot_optimized(spec: ImageTemplateSpec) -> bool:
    return (
        spec.optimize is not None
        and spec.optimize.vmBoot is not None
        and spec.optimize.vmBoot.state == "Enabled"
    )


def _union(tag: str, members: tuple[type[ApiModel], ...]) -> tuple[str, dict[str, set[str]]]:
    return tag, {m.variant: {f.alias or n for n, f in m.model_fields.items()} for m in members}


_CUSTOMIZERS = (ShellStep, PowerShellStep, FileStep, WindowsRestartStep, WindowsUpdateStep)
# The discriminated unions by the field holding them: (discriminator, {variant: its fields}).
UNIONS: dict[str, tuple[str, dict[str, set[str]]]] = {
    "source": _union("type", (PlatformImageSource, ManagedImageSource, SharedImageVersionSource)),
    "customize": _union("type", _CUSTOMIZERS),
    "inVMValidations": _union("type", _CUSTOMIZERS[:3]),
    "distribute": _union("type", (ManagedImageDistributor, SharedImageDistributor, VhdDistributor)),
    "versioning": _union("scheme", (LatestVersioning, SourceVersioning)),
}
