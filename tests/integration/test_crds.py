"""The CRDs in a real kube-apiserver: examples, rejected manifests, status round trip, update rules."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kaib.api import aib_to_manifest, crd, validate_manifest
from tests.unit.api_cases import (
    ACI_SUBNET,
    CASES,
    GALLERY_IMAGE,
    IDENTITY,
    IMAGE,
    SUB,
    SUBNET,
    Case,
    build,
    patched,
    template,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
NS = "crd-tests"


@pytest.fixture(scope="module")
def ns(kube: Any) -> str:
    name: str = kube.namespace(NS)
    return name


def _apply(kube: Any, doc: dict[str, Any], ns: str, *extra: str) -> Any:
    return kube.kubectl("apply", "-n", ns, *extra, "-f", "-", input=yaml.safe_dump(doc), check=False)


def test_crds_are_established(kube: Any) -> None:
    out = kube.kubectl("get", "crd", "imagetemplates.kaib.dev", "imagebuilds.kaib.dev", "-o", "json").stdout
    for item in json.loads(out)["items"]:
        conditions = {c["type"]: c["status"] for c in item["status"]["conditions"]}
        assert conditions["Established"] == "True", item["metadata"]["name"]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_passes_server_dry_run(kube: Any, ns: str, path: Path) -> None:
    result = kube.kubectl("apply", "--dry-run=server", "-n", ns, "-f", str(path), check=False)
    assert result.returncode == 0, result.stderr
    assert "created (server dry run)" in result.stdout


AIB_FILES = sorted((REPO / "tests" / "unit" / "data").glob("aib-*.json"))


@pytest.mark.parametrize("path", AIB_FILES, ids=[p.name for p in AIB_FILES])
def test_converted_aib_template_passes_server_dry_run(kube: Any, ns: str, path: Path) -> None:
    manifest = aib_to_manifest(
        json.loads(path.read_text()), name="converted", subscription_id=SUB, location="eastus"
    )
    result = _apply(kube, manifest, ns, "--dry-run=server")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_invalid_manifest_is_rejected_by_apiserver_and_validate(kube: Any, ns: str, case: Case) -> None:
    doc = case.manifest(f"inv-{CASES.index(case)}")
    result = _apply(kube, doc, ns, "--dry-run=server")
    assert result.returncode != 0, f"apiserver accepted {case.id}"
    # `spec.x: Invalid value: ...` (schema, CEL) or `unknown field "spec.x"` (strict field validation)
    assert f"{case.path}:" in result.stderr or f'"{case.path}"' in result.stderr, result.stderr
    assert case.path in [path for path, _ in validate_manifest(doc)]


# -- status: every declared field survives the status subresource ------------------------------------

# Values for the fields that carry a pattern (the snapshot of the spec keeps the spec's patterns).
PATTERNED = {
    "imageId": IMAGE,
    "imageVersionId": GALLERY_IMAGE + "/versions/1.0.0",
    "galleryImageId": GALLERY_IMAGE,
    "subnetId": SUBNET,
    "containerInstanceSubnetId": ACI_SUBNET,
    "stagingResourceGroup": f"/subscriptions/{SUB}/resourceGroups/staging",
    "userAssignedIdentities": IDENTITY,
    "runOutputName": "out",
    "restartTimeout": "5m",
    "sha256Checksum": "a" * 64,
    "subscriptionId": SUB,
    "location": "eastus",
}


def sample(schema: dict[str, Any], name: str, leaves: list[str], path: str) -> Any:
    """A value for every property of `schema` (recording each leaf path), valid for that schema."""
    kind = schema["type"]
    if kind == "object" and "properties" in schema:
        return {key: sample(sub, key, leaves, f"{path}.{key}") for key, sub in schema["properties"].items()}
    if kind == "object":
        return {"key-1": sample(schema["additionalProperties"], name, leaves, f"{path}[key-1]")}
    if kind == "array":
        return [sample(schema["items"], name, leaves, f"{path}[0]")]
    leaves.append(path)
    if "enum" in schema:
        return schema["enum"][-1]
    if kind == "boolean":
        return True
    if kind == "integer":
        return max(schema.get("minimum", 1), 1)
    if schema.get("format") == "date-time":
        return "2026-01-02T03:04:05Z"
    if "pattern" in schema:
        return PATTERNED[name]
    return f"{name}-value"


def _status_schema(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return copy.deepcopy(schema["properties"]["status"])


@pytest.mark.parametrize("kind", ["ImageTemplate", "ImageBuild"])
def test_every_status_field_survives_the_status_subresource(kube: Any, ns: str, kind: str) -> None:
    from kubernetes import client

    leaves: list[str] = []
    status = sample(_status_schema(kind), "status", leaves, "status")
    assert len(leaves) > (100 if kind == "ImageBuild" else 10)
    name = f"status-{kind.lower()}"
    doc = template(name) if kind == "ImageTemplate" else build(name, "status-imagetemplate")
    result = _apply(kube, doc, ns)
    assert result.returncode == 0, result.stderr
    api = client.CustomObjectsApi(kube.api_client())
    plural = f"{kind.lower()}s"
    api.patch_namespaced_custom_object_status("kaib.dev", "v1alpha1", ns, plural, name, {"status": status})
    stored = api.get_namespaced_custom_object("kaib.dev", "v1alpha1", ns, plural, name)
    assert stored["status"] == status


def test_printer_columns(kube: Any, ns: str) -> None:
    from kubernetes import client

    api = client.CustomObjectsApi(kube.api_client())
    assert _apply(kube, template("columns"), ns).returncode == 0
    assert _apply(kube, build("columns-1", "columns"), ns).returncode == 0
    api.patch_namespaced_custom_object_status(
        "kaib.dev", "v1alpha1", ns, "imagetemplates", "columns",
        {"status": {
            "sourceSummary": "Canonical/ubuntu-24_04-lts/server/latest",
            "topology": "NoVNet",
            "lastBuild": {"name": "columns-1", "phase": "Succeeded"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "Built"}],
        }},
    )  # fmt: skip
    api.patch_namespaced_custom_object_status(
        "kaib.dev", "v1alpha1", ns, "imagebuilds", "columns-1",
        {"status": {"phase": "Running", "subState": "Customizing", "runOutputs": [{"artifactId": IMAGE}]}},
    )  # fmt: skip
    out = kube.kubectl("get", "imgt,imgb", "-n", ns).stdout
    lines = out.splitlines()
    header_t = next(line for line in lines if line.startswith("NAME") and "SOURCE" in line)
    assert header_t.split()[1:] == ["SOURCE", "TOPOLOGY", "LAST", "BUILD", "READY", "AGE"]
    row_t = next(line for line in lines if line.startswith("imagetemplate.kaib.dev/columns "))
    assert row_t.split()[1:5] == ["Canonical/ubuntu-24_04-lts/server/latest", "NoVNet", "columns-1", "True"]
    header_b = next(line for line in lines if line.startswith("NAME") and "TEMPLATE" in line)
    assert header_b.split()[1:] == ["TEMPLATE", "PHASE", "SUBSTATE", "ARTIFACT", "AGE"]
    row_b = next(line for line in lines if line.startswith("imagebuild.kaib.dev/columns-1 "))
    assert row_b.split()[1:5] == ["columns", "Running", "Customizing", IMAGE]
    # A VHD output has no artifactId: the column shows its artifactUri.
    vhd = "https://acct.blob.core.windows.net/vhds/x.vhd"
    api.patch_namespaced_custom_object_status(
        "kaib.dev",
        "v1alpha1",
        ns,
        "imagebuilds",
        "columns-1",
        {"status": {"runOutputs": [{"artifactUri": vhd}]}},
    )
    row_b = kube.kubectl("get", "imgb", "columns-1", "-n", ns, "--no-headers").stdout
    assert row_b.split()[1:5] == ["columns", "Running", "Customizing", vhd]
    # The category and the short names reach the same objects.
    assert "columns-1" in kube.kubectl("get", "kaib", "-n", ns).stdout


# -- update rules ------------------------------------------------------------------------------------


def _patch(kube: Any, ns: str, what: str, patch: dict[str, Any]) -> Any:
    return kube.kubectl("patch", what, "-n", ns, "--type=merge", "-p", json.dumps(patch), check=False)


def test_build_spec_is_immutable_except_cancel(kube: Any, ns: str) -> None:
    assert _apply(kube, build("immutable-1", "columns"), ns).returncode == 0
    refused = _patch(kube, ns, "imgb/immutable-1", {"spec": {"templateRef": {"name": "other"}}})
    assert refused.returncode != 0
    assert "spec.templateRef" in refused.stderr and "immutable" in refused.stderr
    assert _patch(kube, ns, "imgb/immutable-1", {"spec": {"cancel": True}}).returncode == 0
    undo = _patch(kube, ns, "imgb/immutable-1", {"spec": {"cancel": False}})
    assert undo.returncode != 0 and "spec.cancel" in undo.stderr


def test_template_edits_allowed_except_azure_home(kube: Any, ns: str) -> None:
    assert _apply(kube, template("editable"), ns).returncode == 0
    edit = {"spec": {"buildTimeoutInMinutes": 60, "customize": [{"type": "Shell", "inline": ["echo new"]}]}}
    assert _patch(kube, ns, "imgt/editable", edit).returncode == 0
    moved = _patch(kube, ns, "imgt/editable", {"spec": {"azure": {"location": "westus"}}})
    assert moved.returncode != 0 and "spec.azure" in moved.stderr
    group = f"/subscriptions/{SUB}/resourceGroups/staging"
    staged = _patch(kube, ns, "imgt/editable", {"spec": {"stagingResourceGroup": group}})
    assert staged.returncode != 0 and "spec.stagingResourceGroup" in staged.stderr


# -- agreement: every combination of the cross-field rules, apiserver vs `kaib validate` --------------


def _combinations() -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    absent = object()
    for sub in (absent, SUBNET):
        for aci in (absent, ACI_SUBNET, SUBNET):
            for proxy in (absent, "", "Standard_A2_v2"):
                vnet = {k: v for k, v in (("subnetId", sub), ("containerInstanceSubnetId", aci),
                                          ("proxyVmSize", proxy)) if v is not absent}  # fmt: skip
                out.append((f"vnet-{len(out)}", {"spec.vmProfile": {"vnetConfig": vnet}}))
    for kind in ("Shell", "PowerShell", "File"):
        for fields in (
            {},
            {"scriptUri": "https://x/s"},
            {"inline": []},
            {"scriptUri": "https://x/s", "inline": ["a"]},
        ):
            step = {"type": kind, **fields}
            out.append((f"script-{kind}-{len(out)}", {"spec.customize": [step]}))
            out.append((f"validator-{kind}-{len(out)}", {"spec.validate": {"inVMValidations": [step]}}))
    for elevated in (absent, False, True):
        for system in (absent, False, True):
            step = {"type": "PowerShell", "inline": ["x"]}
            step |= {k: v for k, v in (("runElevated", elevated), ("runAsSystem", system)) if v is not absent}
            out.append((f"elevation-{len(out)}", {"spec.customize": [step]}))
    plan_fields = ("planName", "planProduct", "planPublisher")
    for mask in range(8):
        plan = {f: "p" for i, f in enumerate(plan_fields) if mask & (1 << i)}
        out.append((f"plan-{mask}", {"spec.source.planInfo": plan}))
    for mask in range(8):
        shared: dict[str, Any] = {
            "type": "SharedImage",
            "runOutputName": "s",
            "galleryImageId": GALLERY_IMAGE,
        }
        if mask & 1:
            shared["targetRegions"] = [{"name": "eastus"}]
        if mask & 2:
            shared["replicationRegions"] = ["westus"]
        if mask & 4:
            shared["storageAccountType"] = "Standard_ZRS"
        out.append((f"regions-{mask}", {"spec.distribute": [shared]}))
    for minutes in (-1, 0, 1, 5, 6, 240, 960, 961):
        out.append((f"timeout-{minutes}", {"spec.buildTimeoutInMinutes": minutes}))
    for names in (["a", "b"], ["a", "a"], ["a", "b", "a"]):
        dists = [{"type": "VHD", "runOutputName": n} for n in names]
        out.append((f"outputs-{'-'.join(names)}", {"spec.distribute": dists}))
    return out


def test_apiserver_and_validate_agree_on_every_rule_combination(kube: Any, ns: str) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api = client.CustomObjectsApi(kube.api_client())
    disagreements = []
    rejected = 0
    combos = _combinations()
    assert len(combos) > 70
    for i, (label, patch) in enumerate(combos):
        doc = patched(template(f"combo-{i}"), patch)
        offline = validate_manifest(doc)
        try:
            api.create_namespaced_custom_object(
                "kaib.dev", "v1alpha1", ns, "imagetemplates", doc, dry_run="All", field_validation="Strict"
            )
            server = ""
        except ApiException as e:
            assert e.status in (400, 422), e.body
            server = str(e.body)
        if bool(offline) != bool(server):
            disagreements.append((label, offline, server[:300]))
        rejected += bool(server)
    assert disagreements == []
    assert 20 < rejected < len(combos) - 20  # both outcomes well represented
