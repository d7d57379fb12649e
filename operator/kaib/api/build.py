"""ImageBuild spec (one run of a template, like a Job) and the two resource kinds as whole objects."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from kaib.api.common import ApiModel, Rule
from kaib.api.status import ImageBuildStatus, ImageTemplateStatus
from kaib.api.template import ImageTemplateSpec

GROUP = "kaib.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# A Kubernetes object name (DNS-1123 subdomain) no longer than AIB's 64 characters for template names.
K8S_NAME = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
MAX_TEMPLATE_NAME = 64
# What the apiserver checks of every object name (RFC 1123 subdomain), before any schema.
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


class TemplateRef(ApiModel):
    name: Annotated[str, Field(pattern=K8S_NAME, max_length=MAX_TEMPLATE_NAME)] = Field(
        description="An ImageTemplate in the same namespace"
    )


class ImageBuildSpec(ApiModel):
    """One run of an ImageTemplate. Immutable except `cancel`, which cannot be undone."""

    templateRef: TemplateRef = Field(description="The ImageTemplate to build")
    cancel: bool | None = Field(None, description="Stop the build and clean up [Default: false]")

    rules = (
        Rule(
            cel="self.templateRef == oldSelf.templateRef",
            message="spec is immutable except cancel: create a new ImageBuild to build another template",
            check=lambda old, new: old.templateRef == new.templateRef,
            field="templateRef",
            transition=True,
        ),
        Rule(
            cel="!has(oldSelf.cancel) || !oldSelf.cancel || (has(self.cancel) && self.cancel)",
            message="cancel cannot be undone once set to true",
            check=lambda old, new: not old.cancel or bool(new.cancel),
            field="cancel",
            transition=True,
        ),
    )


class ObjectMeta(ApiModel):
    """The metadata fields `kaib validate` looks at; the rest pass through untouched."""

    model_config = {**ApiModel.model_config, "extra": "allow"}

    name: Annotated[str, Field(pattern=DNS_SUBDOMAIN, max_length=253)] | None = None
    generateName: str | None = None
    namespace: str | None = None


class ImageTemplate(ApiModel):
    """A golden VM image to build in Azure, as AIB's image template describes it."""

    apiVersion: Literal["kaib.dev/v1alpha1"]
    kind: Literal["ImageTemplate"]
    metadata: ObjectMeta
    spec: ImageTemplateSpec
    status: ImageTemplateStatus | None = None

    rules = (
        Rule(
            cel=f"!has(self.metadata.name) || size(self.metadata.name) <= {MAX_TEMPLATE_NAME}",
            message=f"ImageTemplate names are at most {MAX_TEMPLATE_NAME} characters long (as in AIB)",
            check=lambda m: len(m.metadata.name or "") <= MAX_TEMPLATE_NAME,
            field="metadata.name",
        ),
    )


class ImageBuild(ApiModel):
    """One run of an ImageTemplate, like a Job: status follows AIB's run model and kstatus."""

    apiVersion: Literal["kaib.dev/v1alpha1"]
    kind: Literal["ImageBuild"]
    metadata: ObjectMeta
    spec: ImageBuildSpec
    status: ImageBuildStatus | None = None


Resource = ImageTemplate | ImageBuild
KINDS: dict[str, type[ImageTemplate] | type[ImageBuild]] = {
    "ImageTemplate": ImageTemplate,
    "ImageBuild": ImageBuild,
}


def dump_spec(spec: ImageTemplateSpec | ImageBuildSpec) -> dict[str, Any]:
    """The spec as the engine and the Packer renderer consume it: a plain dict in AIB names."""
    return spec.model_dump(by_alias=True, exclude_none=True)
