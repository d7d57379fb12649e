"""`kaib convert`: AIB JSON -> ImageTemplate -> AIB JSON, for every source, customizer, validator and
distribution type, every supported API version, and the errors of what does not convert."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kaib.api import aib_to_manifest, manifest_to_aib, spec_with_defaults, validate_manifest
from kaib.api.aib import API_VERSIONS, NAME_ANNOTATION, TAGS_ANNOTATION
from kaib.api.manifest import InvalidManifest
from kaib.cli import main as kaib

DATA = Path(__file__).parent / "data"
SUB = "00000000-0000-0000-0000-000000000001"
LINUX = json.loads((DATA / "aib-linux-2022-02-14.json").read_text())
WINDOWS = json.loads((DATA / "aib-windows-2024-02-01.json").read_text())
BARE = json.loads((DATA / "aib-managed-source-properties.json").read_text())


def _problems(doc: Any, **kwargs: Any) -> list[tuple[str, str]]:
    with pytest.raises(InvalidManifest) as e:
        aib_to_manifest(doc, **kwargs)
    return e.value.problems


def _expected_back(resource: dict[str, Any], api_version: str) -> dict[str, Any]:
    out = copy.deepcopy(resource)
    out["apiVersion"] = api_version
    out["location"] = out["location"].replace(" ", "").lower()
    return out


def test_the_fixtures_cover_every_type() -> None:
    seen: dict[str, set[str]] = {"source": set(), "customize": set(), "validate": set(), "distribute": set()}
    for resource in (LINUX, WINDOWS, {"properties": BARE}):
        props = resource["properties"]
        seen["source"].add(props["source"]["type"])
        seen["customize"] |= {c["type"] for c in props.get("customize", [])}
        seen["validate"] |= {v["type"] for v in props.get("validate", {}).get("inVMValidations", [])}
        seen["distribute"] |= {d["type"] for d in props["distribute"]}
    assert seen == {
        "source": {"PlatformImage", "ManagedImage", "SharedImageVersion"},
        "customize": {"Shell", "PowerShell", "File", "WindowsRestart", "WindowsUpdate"},
        "validate": {"Shell", "PowerShell", "File"},
        "distribute": {"ManagedImage", "SharedImage", "VHD"},
    }


ROUND_TRIPS = [(LINUX, v) for v in API_VERSIONS] + [(WINDOWS, "2024-02-01")]


@pytest.mark.parametrize(
    "resource,api_version", ROUND_TRIPS, ids=[f"{r['name']}@{v}" for r, v in ROUND_TRIPS]
)
def test_resource_round_trips(resource: dict[str, Any], api_version: str) -> None:
    source = {**resource, "apiVersion": api_version, "id": f"/subscriptions/{SUB}/resourceGroups/rg/x"}
    manifest = aib_to_manifest(source)
    assert validate_manifest(manifest) == []
    assert manifest["spec"]["azure"]["subscriptionId"] == SUB
    back = manifest_to_aib(manifest, api_version=api_version)
    assert back == _expected_back(resource, api_version)
    # Equal modulo defaults, too (what the engine sees).
    spec_in = {**resource["properties"], "identity": resource["identity"], "azure": manifest["spec"]["azure"]}
    assert spec_with_defaults(manifest["spec"]) == spec_with_defaults(spec_in)


def test_manifest_round_trips_through_aib() -> None:
    manifest = aib_to_manifest(WINDOWS, subscription_id=SUB, namespace="images")
    again = aib_to_manifest(manifest_to_aib(manifest), subscription_id=SUB, namespace="images")
    assert again == manifest
    assert manifest["metadata"] == {"name": "windows-golden", "namespace": "images"}


def test_bare_properties_need_name_subscription_and_location() -> None:
    problems = _problems(BARE)
    assert [p for p, _ in problems] == ["name", "id", "location"]
    assert "--subscription-id" in problems[1][1]
    manifest = aib_to_manifest(BARE, name="base", subscription_id=SUB, location="East US 2")
    assert manifest["spec"] == {"azure": {"subscriptionId": SUB, "location": "eastus2"}, **BARE}
    back = manifest_to_aib(manifest)
    assert back["properties"] == BARE and back["name"] == "base" and "identity" not in back


def test_aib_names_and_tags_are_kept_in_annotations() -> None:
    manifest = aib_to_manifest(LINUX, subscription_id=SUB)
    assert manifest["metadata"]["name"] == "linux-golden.v1"
    annotations = manifest["metadata"]["annotations"]
    assert annotations[NAME_ANNOTATION] == "Linux_Golden.v1"
    assert json.loads(annotations[TAGS_ANNOTATION]) == LINUX["tags"]
    back = manifest_to_aib(manifest)
    assert back["name"] == "Linux_Golden.v1" and back["tags"] == LINUX["tags"]


def test_read_only_fields_are_dropped() -> None:
    resource = copy.deepcopy(WINDOWS)
    resource["id"] = f"/subscriptions/{SUB}/resourceGroups/rg/providers/x/imageTemplates/windows-golden"
    resource["systemData"] = {"createdBy": "someone"}
    props = resource["properties"]
    props["provisioningState"] = "Succeeded"
    props["lastRunStatus"] = {"runState": "Succeeded"}
    props["exactStagingResourceGroup"] = props["stagingResourceGroup"]
    props["source"]["exactVersion"] = "1.0.0"
    ids = resource["identity"]["userAssignedIdentities"]
    for key in ids:
        ids[key] = {"principalId": "p", "clientId": "c"}
    manifest = aib_to_manifest(resource)
    assert manifest_to_aib(manifest) == _expected_back(WINDOWS, "2024-02-01")


def test_unknown_fields_are_errors_naming_their_path() -> None:
    resource = copy.deepcopy(WINDOWS)
    resource["sku"] = "premium"
    assert _problems(resource, subscription_id=SUB) == [("sku", "unknown field")]
    resource = copy.deepcopy(WINDOWS)
    resource["properties"]["customize"][0]["runAs"] = "admin"
    resource["properties"]["vmProfile"]["vnetConfig"]["publicIp"] = True
    paths = [p for p, _ in _problems(resource, subscription_id=SUB)]
    assert paths == ["properties.customize[0].runAs", "properties.vmProfile.vnetConfig.publicIp"]
    bare = {**BARE, "triggers": []}
    assert _problems(bare, name="x", subscription_id=SUB, location="eastus") == [
        ("triggers", "unknown field")
    ]


def test_invalid_values_are_reported_in_aib_paths() -> None:
    resource = copy.deepcopy(WINDOWS)
    resource["location"] = "West Europe"
    resource["properties"]["buildTimeoutInMinutes"] = 3
    resource["identity"] = {"type": "UserAssigned"}
    paths = [p for p, _ in _problems(resource, subscription_id=SUB)]
    assert paths == ["properties.buildTimeoutInMinutes", "identity.userAssignedIdentities"]
    assert _problems(resource, subscription_id="not-a-guid")[0][0] == "id.subscriptionId"


def test_arm_expressions_type_and_api_version_are_checked() -> None:
    resource = copy.deepcopy(LINUX)
    resource["name"] = "[parameters('imageTemplateName')]"
    resource["properties"]["customize"][1]["inline"][0] = "[variables('cmd')]"
    resource["type"] = "Microsoft.Compute/images"
    resource["apiVersion"] = "2020-02-14"
    problems = _problems(resource, subscription_id=SUB)
    assert [p for p, _ in problems] == ["name", "properties.customize[1].inline[0]", "type", "apiVersion"]
    assert "ARM template expression" in problems[0][1]
    assert "2022-02-14" in problems[3][1]


# -- the command --------------------------------------------------------------------------------------


def test_convert_command_both_ways(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "linux.json"
    source.write_text(json.dumps(LINUX))
    assert kaib(["convert", str(source), "--subscription-id", SUB]) == 0
    manifest = yaml.safe_load(capsys.readouterr().out)
    assert manifest == aib_to_manifest(LINUX, subscription_id=SUB)
    target = tmp_path / "linux.yaml"
    target.write_text(yaml.safe_dump(manifest))
    assert kaib(["convert", "--to", "aib", "--api-version", "2022-02-14", str(target)]) == 0
    assert json.loads(capsys.readouterr().out) == _expected_back(LINUX, "2022-02-14")


def test_convert_command_prints_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    resource = copy.deepcopy(LINUX)
    resource["properties"]["distribute"][0]["replicas"] = 3
    source = tmp_path / "bad.json"
    source.write_text(json.dumps(resource))
    assert kaib(["convert", str(source), "--subscription-id", SUB]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [f"{source}: properties.distribute[0].replicas: unknown field"]
    source.write_text("{not json")
    assert kaib(["convert", str(source)]) == 1
    assert capsys.readouterr().err.startswith(f"{source}: : not JSON")


def test_fields_newer_than_the_api_version_are_errors_both_ways() -> None:
    older = {**WINDOWS, "apiVersion": "2022-07-01"}
    problems = _problems(older, subscription_id=SUB)
    assert problems == [
        ("properties.autoRun", "needs API version 2024-02-01 or later, not 2022-07-01"),
        ("properties.errorHandling", "needs API version 2023-07-01 or later, not 2022-07-01"),
        ("properties.managedResourceTags", "needs API version 2024-02-01 or later, not 2022-07-01"),
        (
            "properties.vmProfile.vnetConfig.containerInstanceSubnetId",
            "needs API version 2024-02-01 or later, not 2022-07-01",
        ),
    ]
    manifest = aib_to_manifest(WINDOWS, subscription_id=SUB)
    with pytest.raises(InvalidManifest) as e:
        manifest_to_aib(manifest, api_version="2022-02-14")
    paths = [p for p, _ in e.value.problems]
    assert "spec.distribute[0].targetRegions" in paths and "spec.distribute[3].uri" in paths
    assert "spec.validate.inVMValidations[2]" in paths and "spec.optimize" in paths
    assert "spec.distribute[0].replicationRegions" in paths  # required in 2022-02-14


def test_api_version_2022_02_14_requires_replication_regions() -> None:
    resource = copy.deepcopy(LINUX)
    del resource["properties"]["distribute"][0]["replicationRegions"]
    del resource["properties"]["distribute"][0]["storageAccountType"]
    assert _problems(resource, subscription_id=SUB) == [
        ("properties.distribute[0].replicationRegions", "Required value in API version 2022-02-14")
    ]
    assert aib_to_manifest({**resource, "apiVersion": "2022-07-01"}, subscription_id=SUB)
