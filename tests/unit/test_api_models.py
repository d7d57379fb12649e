"""The models, the dict form the engine consumes, AIB's defaults, and the summaries."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from kaib.api import (
    ImageBuild,
    ImageBuildStatus,
    ImageTemplate,
    ImageTemplateStatus,
    dump_spec,
    parse_manifest,
    parse_template_spec,
    source_summary,
    spec_hash,
    spec_with_defaults,
    topology,
)
from kaib.api.manifest import InvalidManifest
from tests.unit.api_cases import ACI_SUBNET, GALLERY_IMAGE, IMAGE, SUB, SUBNET, template

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))
DOCS = [(p.name, i, d) for p in EXAMPLES for i, d in enumerate(yaml.safe_load_all(p.read_text())) if d]


def spec(**changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {**template()["spec"], **changes}
    return out


@pytest.mark.parametrize("name,index,doc", DOCS, ids=[f"{n}#{i}" for n, i, _ in DOCS])
def test_example_parses_and_dumps_back_unchanged(name: str, index: int, doc: dict[str, Any]) -> None:
    parsed = parse_manifest(doc)
    assert dump_spec(parsed.spec) == doc["spec"]


def test_examples_cover_topologies_distributions_and_builds() -> None:
    templates = [d for _, _, d in DOCS if d["kind"] == "ImageTemplate"]
    assert {topology(t["spec"]) for t in templates} == {"NoVNet", "SubnetOnly", "SubnetAndACI"}
    distributions = {d["type"] for t in templates for d in t["spec"]["distribute"]}
    assert distributions == {"ManagedImage", "SharedImage", "VHD"}
    steps = {c["type"] for t in templates for c in t["spec"].get("customize", [])}
    assert steps == {"Shell", "PowerShell", "File", "WindowsRestart", "WindowsUpdate"}
    assert any("validate" in t["spec"] for t in templates)
    builds = {d["spec"]["templateRef"]["name"] for _, _, d in DOCS if d["kind"] == "ImageBuild"}
    assert builds == {t["metadata"]["name"] for t in templates}
    quickstart = [d for n, _, d in DOCS if n == "quickstart.yaml"]
    assert [d["kind"] for d in quickstart] == ["ImageTemplate", "ImageBuild"]
    qs = quickstart[0]["spec"]
    assert (
        topology(qs) == "NoVNet" and qs["customize"][0]["type"] == "Shell" and "inline" in qs["customize"][0]
    )
    assert [d["type"] for d in qs["distribute"]] == ["ManagedImage"]


def test_parse_returns_typed_objects() -> None:
    parsed = parse_manifest(template())
    assert isinstance(parsed, ImageTemplate)
    assert parsed.spec.azure.subscriptionId == SUB
    build = parse_manifest(
        {"apiVersion": "kaib.dev/v1alpha1", "kind": "ImageBuild", "metadata": {"name": "b"},
         "spec": {"templateRef": {"name": "t"}, "cancel": True}}
    )  # fmt: skip
    assert isinstance(build, ImageBuild) and build.spec.cancel is True


def test_validate_is_an_alias_in_both_directions() -> None:
    s = spec(validate={"sourceValidationOnly": True})
    parsed = parse_template_spec(s)
    assert parsed.validate_ is not None and parsed.validate_.sourceValidationOnly is True
    assert dump_spec(parsed)["validate"] == {"sourceValidationOnly": True}
    with pytest.raises(InvalidManifest) as e:
        parse_template_spec(spec(validate_={"sourceValidationOnly": True}))
    assert e.value.problems == [("spec.validate_", "unknown field")]


# -- defaults -----------------------------------------------------------------------------------------


def test_defaults_of_a_minimal_spec() -> None:
    s = spec()
    before = copy.deepcopy(s)
    d = spec_with_defaults(s)
    assert s == before, "input must not change"
    assert d["buildTimeoutInMinutes"] == 240
    assert d["vmProfile"] == {"vmSize": "Standard_D2ds_v4", "osDiskSizeGB": 0, "userAssignedIdentities": []}
    assert d["customize"] == [
        {"type": "Shell", "name": "hello", "inline": ["echo hello"], "sha256Checksum": ""}
    ]
    assert d["validate"] == {
        "continueDistributeOnFailure": False,
        "sourceValidationOnly": False,
        "inVMValidations": [],
    }
    assert d["optimize"] == {"vmBoot": {"state": "Disabled"}}
    assert d["errorHandling"] == {"onCustomizerError": "cleanup", "onValidationError": "cleanup"}
    assert d["stagingResourceGroup"] == "" and d["managedResourceTags"] == {}
    assert d["autoRun"] == {"state": "Disabled"}
    assert d["identity"] == {"type": "None"}
    assert d["distribute"] == [{**s["distribute"][0], "artifactTags": {}}]


def test_sentinels_become_effective_values() -> None:
    s = spec(
        buildTimeoutInMinutes=0,
        vmProfile={"vmSize": "", "vnetConfig": {"subnetId": SUBNET, "proxyVmSize": ""}},
    )
    d = spec_with_defaults(s)
    assert d["buildTimeoutInMinutes"] == 240
    assert d["vmProfile"]["vmSize"] == "Standard_D2ds_v4"
    assert d["vmProfile"]["vnetConfig"]["proxyVmSize"] == "Standard_A1_v2"
    d = spec_with_defaults(spec(buildTimeoutInMinutes=90, vmProfile={"vmSize": "Standard_D4s_v5"}))
    assert d["buildTimeoutInMinutes"] == 90 and d["vmProfile"]["vmSize"] == "Standard_D4s_v5"


def test_no_proxy_size_without_a_proxy() -> None:
    vnet = {"subnetId": SUBNET, "containerInstanceSubnetId": ACI_SUBNET}
    d = spec_with_defaults(spec(vmProfile={"vnetConfig": dict(vnet)}))
    assert d["vmProfile"]["vnetConfig"] == vnet


def test_step_defaults() -> None:
    steps = [
        {"type": "PowerShell", "inline": ["x"]},
        {"type": "WindowsRestart"},
        {"type": "WindowsUpdate", "updateLimit": 0},
        {"type": "File", "sourceUri": "https://x/f", "destination": "/tmp/f"},
    ]
    d = spec_with_defaults(
        spec(customize=steps, validate={"inVMValidations": [{"type": "Shell", "inline": ["y"]}]})
    )
    assert d["customize"] == [
        {"type": "PowerShell", "inline": ["x"], "sha256Checksum": "", "runElevated": False,
         "runAsSystem": False, "validExitCodes": [0]},
        {"type": "WindowsRestart", "restartCommand": 'shutdown /r /f /t 0 /c "packer restart"',
         "restartCheckCommand": "", "restartTimeout": "5m"},
        {"type": "WindowsUpdate", "updateLimit": 1000, "searchCriteria": "", "filters": []},
        {"type": "File", "sourceUri": "https://x/f", "destination": "/tmp/f", "sha256Checksum": ""},
    ]  # fmt: skip
    assert d["validate"]["inVMValidations"] == [{"type": "Shell", "inline": ["y"], "sha256Checksum": ""}]
    kept = spec_with_defaults(spec(customize=[{"type": "WindowsUpdate", "updateLimit": 5}]))
    assert kept["customize"][0]["updateLimit"] == 5


def test_shared_image_defaults_and_legacy_replication() -> None:
    base = {"type": "SharedImage", "runOutputName": "s", "galleryImageId": GALLERY_IMAGE}
    legacy = {
        **base,
        "runOutputName": "l",
        "replicationRegions": ["westus", "eastus2"],
        "storageAccountType": "Standard_ZRS",
    }
    explicit = {**base, "runOutputName": "e", "targetRegions": [{"name": "westus", "replicaCount": 3}],
                "versioning": {"scheme": "Source"}}  # fmt: skip
    d = spec_with_defaults(spec(distribute=[base, legacy, explicit]))["distribute"]
    assert d[0]["targetRegions"] == [
        {"name": "eastus", "replicaCount": 1, "storageAccountType": "Standard_LRS"}
    ]
    assert d[0]["versioning"] == {"scheme": "Latest", "major": -1}
    assert d[0]["excludeFromLatest"] is False and d[0]["artifactTags"] == {}
    assert "replicationRegions" not in d[1] and "storageAccountType" not in d[1]
    assert d[1]["targetRegions"] == [
        {"name": "westus", "replicaCount": 1, "storageAccountType": "Standard_ZRS"},
        {"name": "eastus2", "replicaCount": 1, "storageAccountType": "Standard_ZRS"},
    ]
    assert d[2]["targetRegions"] == [
        {"name": "westus", "replicaCount": 3, "storageAccountType": "Standard_LRS"}
    ]
    assert d[2]["versioning"] == {"scheme": "Source"}


def test_vhd_default_uri() -> None:
    d = spec_with_defaults(spec(distribute=[{"type": "VHD", "runOutputName": "v"}]))
    assert d["distribute"] == [{"type": "VHD", "runOutputName": "v", "artifactTags": {}, "uri": ""}]


def test_defaults_accept_the_model_too() -> None:
    assert spec_with_defaults(parse_template_spec(spec())) == spec_with_defaults(spec())


# -- summaries ----------------------------------------------------------------------------------------


def test_topology() -> None:
    assert topology(spec()) == "NoVNet"
    assert topology(spec(vmProfile={"vnetConfig": {}})) == "NoVNet"
    assert topology(spec(vmProfile={"vnetConfig": {"subnetId": SUBNET}})) == "SubnetOnly"
    both = {"subnetId": SUBNET, "containerInstanceSubnetId": ACI_SUBNET}
    assert topology(parse_template_spec(spec(vmProfile={"vnetConfig": both}))) == "SubnetAndACI"


def test_source_summary() -> None:
    assert source_summary(spec()) == "Canonical/ubuntu-24_04-lts/server/latest"
    assert source_summary(spec(source={"type": "ManagedImage", "imageId": IMAGE})) == "image/out"
    version = {"type": "SharedImageVersion", "imageVersionId": GALLERY_IMAGE + "/versions/latest"}
    assert source_summary(spec(source=version)) == "g/def/latest"


def test_spec_hash_is_stable_and_sensitive() -> None:
    assert spec_hash(spec()) == spec_hash(parse_template_spec(spec()))
    assert len(spec_hash(spec())) == 16
    assert spec_hash(spec()) != spec_hash(spec(buildTimeoutInMinutes=60))


# -- status models --------------------------------------------------------------------------------------


def test_status_models_accept_the_contract() -> None:
    build_status = {
        "phase": "Running", "subState": "Customizing", "message": "customizing", "buildId": "b1a2c3",
        "startTime": "2026-01-02T03:04:05Z", "observedGeneration": 1,
        "conditions": [{"type": "Ready", "status": "False", "reason": "Building", "message": "m",
                        "lastTransitionTime": "2026-01-02T03:04:05Z", "observedGeneration": 1}],
        "template": {"name": "t", "generation": 2, "hash": "abc", "spec": template()["spec"]},
        "stagingResourceGroup": f"/subscriptions/{SUB}/resourceGroups/s", "exactSourceVersion": "1.2.3",
        "runOutputs": [{"runOutputName": "out", "artifactId": IMAGE, "provisioningState": "Succeeded"}],
        "logs": {"storageAccount": "sa", "container": "packerlogs", "customizationLog": "https://x/c",
                 "validationLog": "https://x/v", "command": "kaib logs b"},
        "resources": [{"id": "/x", "type": "Microsoft.Network/virtualNetworks", "step": "network",
                       "state": "Created"}],
        "operations": [{"resourceId": "/x", "method": "DELETE", "action": "", "token": "t",
                        "startedAt": "2026-01-02T03:04:05Z", "retryAfter": "2026-01-02T03:04:15Z"}],
        "steps": [{"name": "network", "state": "Done", "startTime": "2026-01-02T03:04:05Z"}],
    }  # fmt: skip
    parsed = ImageBuildStatus.model_validate(build_status)
    assert parsed.model_dump(by_alias=True, exclude_none=True) == build_status
    template_status = {
        "observedGeneration": 2, "message": "ready", "exactStagingResourceGroup": "/s",
        "stagingResourceGroupOwnership": "Adopted", "storageAccount": "sa", "topology": "SubnetOnly",
        "sourceSummary": "a/b/c/d", "lastBuild": {"name": "b", "phase": "Failed"},
        "conditions": [{"type": "Stalled", "status": "True", "reason": "Failed"}],
    }  # fmt: skip
    assert (
        ImageTemplateStatus.model_validate(template_status).model_dump(exclude_none=True) == template_status
    )
    with pytest.raises(ValueError):
        ImageBuildStatus.model_validate({"phase": "Done"})


def test_read_only_mapping_views_are_accepted() -> None:
    from types import MappingProxyType

    view = MappingProxyType({**spec(), "azure": MappingProxyType(spec()["azure"])})
    assert dump_spec(parse_template_spec(view)) == spec()
    assert spec_with_defaults(view) == spec_with_defaults(spec())
    assert topology(view) == "NoVNet"
