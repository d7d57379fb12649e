"""Spec and status models of ImageTemplate and ImageBuild, validation, conversion from AIB JSON.

The public helpers (import them from here):

    parse_manifest(doc) -> ImageTemplate | ImageBuild
        A manifest dict to the typed object; raises InvalidManifest, whose `.problems` is a list
        of (field path, message), e.g. ("spec.customize[0]", "Exactly one of 'scriptUri' or ...").
    validate_manifest(doc) -> list[(path, message)]     [] when valid; same rules as the CRDs.
    parse_template_spec(spec_dict) -> ImageTemplateSpec  the spec alone (paths under "spec").
    update_problems(old_doc, new_doc) -> list[(path, message)]
        The update-only rules: ImageBuild spec immutable except cancel (and cancel cannot be
        undone); ImageTemplate `azure` and `stagingResourceGroup` fixed after creation.
    dump_spec(model) -> dict
        The plain dict the engine and the Packer renderer consume: AIB names, only given fields
        (model_dump(by_alias=True, exclude_none=True)). A spec read from the apiserver is already
        in this form.
    spec_with_defaults(spec) -> dict     AIB's defaults applied as effective values (see defaults.py):
        buildTimeoutInMinutes 0 -> 240, vmSize "" -> Standard_D2ds_v4, proxyVmSize -> Standard_A1_v2
        (SubnetOnly), WindowsUpdate updateLimit 0 -> 1000, SharedImage versioning Latest/-1 and
        targetRegions (replicationRegions folded in), errorHandling cleanup, ...
    topology(spec) -> "NoVNet" | "SubnetOnly" | "SubnetAndACI"
    source_summary(spec) -> str          e.g. "Canonical/ubuntu-24_04-lts/server/latest"
    spec_hash(spec) -> str               16 hex chars, stable for equal specs (the build snapshot).
    aib_to_manifest(aib_json, name=, namespace=, subscription_id=, location=) -> manifest dict
    manifest_to_aib(manifest, api_version=) -> ARM resource dict
    crd(kind) -> dict, crd_files() -> {file name: YAML}   (scripts/gen_crds.py writes crds/)

`spec` arguments accept the dict form or the pydantic model. Status models (ImageTemplateStatus,
ImageBuildStatus) declare the shared status contract; the CRDs are generated from all of these.
"""

from kaib.api.aib import aib_to_manifest, manifest_to_aib
from kaib.api.build import API_VERSION, GROUP, VERSION, ImageBuild, ImageBuildSpec, ImageTemplate, dump_spec
from kaib.api.defaults import source_summary, spec_hash, spec_with_defaults, topology
from kaib.api.manifest import (
    InvalidManifest,
    Problem,
    parse_manifest,
    parse_template_spec,
    update_problems,
    validate_manifest,
)
from kaib.api.schema import crd, crd_files
from kaib.api.status import ImageBuildStatus, ImageTemplateStatus
from kaib.api.template import ImageTemplateSpec

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "ImageBuild",
    "ImageBuildSpec",
    "ImageBuildStatus",
    "ImageTemplate",
    "ImageTemplateSpec",
    "ImageTemplateStatus",
    "InvalidManifest",
    "Problem",
    "aib_to_manifest",
    "crd",
    "crd_files",
    "dump_spec",
    "manifest_to_aib",
    "parse_manifest",
    "parse_template_spec",
    "source_summary",
    "spec_hash",
    "spec_with_defaults",
    "topology",
    "update_problems",
    "validate_manifest",
]
