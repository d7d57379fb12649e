"""ImageTemplate and ImageBuild status, exactly as the shared status contract declares them.

The controller writes these fields (as plain dicts through the status subresource); every one of them
is declared in the CRD schema, because the apiserver silently prunes undeclared status fields.
Times are RFC 3339 strings (`2026-01-02T03:04:05Z`). Every field is optional: a status fills in as a
build goes.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from kaib.api.common import ApiModel
from kaib.api.template import ImageTemplateSpec


class Format:
    """Schema marker: an OpenAPI string format (the apiserver checks `date-time`)."""

    def __init__(self, name: str) -> None:
        self.name = name


Time = Annotated[str, Format("date-time")]

Phase = Literal["Queued", "Running", "Canceling", "Succeeded", "PartiallySucceeded", "Failed", "Canceled"]
SubState = Literal[
    "Queued", "Building", "Customizing", "Optimizing", "Validating", "Distributing", "CleaningUp"
]
Topology = Literal["NoVNet", "SubnetOnly", "SubnetAndACI"]

# Condition types the controller sets; the schema accepts any type name (kstatus adds none of its own).
TEMPLATE_CONDITIONS = ("Ready", "Reconciling", "Stalled")
# The step conditions of an ImageBuild, in the order the build sets them.
STEP_CONDITIONS = (
    "PreflightPassed",
    "StagingReady",
    "NetworkReady",
    "BuildVMReady",
    "BuilderReady",
    "Customized",
    "Validated",
    "Optimized",
    "Distributed",
    "CleanedUp",
)
BUILD_CONDITIONS = (*TEMPLATE_CONDITIONS, *STEP_CONDITIONS)

ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """A standard Kubernetes condition (metav1.Condition)."""

    type: str
    status: ConditionStatus
    reason: str | None = None
    message: str | None = None
    lastTransitionTime: Time | None = None
    observedGeneration: int | None = None


class LastBuild(ApiModel):
    name: str | None = None
    phase: Phase | None = None
    startTime: Time | None = None
    endTime: Time | None = None


class ImageTemplateStatus(ApiModel):
    observedGeneration: int | None = None
    message: str | None = None
    conditions: list[Condition] | None = None
    exactStagingResourceGroup: str | None = Field(None, description="Resource id of the staging group in use")
    stagingResourceGroupOwnership: Literal["Created", "Adopted"] | None = None
    storageAccount: str | None = None
    topology: Topology | None = None
    sourceSummary: str | None = Field(None, description="e.g. Canonical/ubuntu-24_04-lts/server/latest")
    lastBuild: LastBuild | None = None


class TemplateSnapshot(ApiModel):
    """The template as the build saw it when it started; later edits never change a running build."""

    name: str | None = None
    generation: int | None = None
    hash: str | None = None
    spec: ImageTemplateSpec | None = None


class RunOutput(ApiModel):
    """One distribution result. Leave artifactId out (not "") for a VHD: the Artifact column falls
    back to artifactUri only when artifactId is absent."""

    runOutputName: str | None = None
    artifactId: str | None = None
    artifactUri: str | None = None
    provisioningState: str | None = None


class Logs(ApiModel):
    """Where the build's logs are, and a command that prints them."""

    storageAccount: str | None = None
    container: str | None = None
    customizationLog: str | None = Field(None, description="Blob URL of customization.log")
    validationLog: str | None = Field(None, description="Blob URL of validation.log")
    command: str | None = None


class ResourceRecord(ApiModel):
    """One Azure resource the build created (the inventory cleanup works from)."""

    id: str | None = None
    type: str | None = None
    step: str | None = None
    state: Literal["Creating", "Created", "Deleting", "Deleted", "Kept"] | None = None


class SavedOperation(ApiModel):
    """An Azure long-running operation in flight, saved so that a restarted operator resumes it."""

    resourceId: str | None = None
    method: Literal["PUT", "DELETE", "POST"] | None = None
    action: str | None = Field(None, description="POST action, e.g. deallocate; '' otherwise")
    token: str | None = Field(None, description="The poller's continuation token")
    startedAt: Time | None = None
    retryAfter: Time | None = Field(None, description="Not before this time (from Retry-After)")


class StepRecord(ApiModel):
    name: str | None = None
    state: Literal["Pending", "Running", "Done", "Failed", "Skipped"] | None = None
    startTime: Time | None = None
    endTime: Time | None = None


class ImageBuildStatus(ApiModel):
    phase: Phase | None = None
    subState: SubState | None = None
    message: str | None = Field(None, description="What happened; on failure what failed, why, what to do")
    startTime: Time | None = None
    endTime: Time | None = None
    observedGeneration: int | None = None
    buildId: str | None = Field(
        None, description="Short id derived from the build's uid, used in Azure names"
    )
    conditions: list[Condition] | None = None
    template: TemplateSnapshot | None = None
    stagingResourceGroup: str | None = Field(None, description="Resource id of the staging resource group")
    exactSourceVersion: str | None = None
    runOutputs: list[RunOutput] | None = None
    logs: Logs | None = None
    resources: list[ResourceRecord] | None = None
    operations: list[SavedOperation] | None = None
    steps: list[StepRecord] | None = None
