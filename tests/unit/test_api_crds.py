"""The CRDs in crds/ are exactly what the models generate, and have the shape the contract asks for."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from kaib.api import crd, crd_files
from kaib.api.build import ImageBuildSpec, ImageTemplate
from kaib.api.common import ApiModel, Rule
from kaib.api.template import ImageTemplateSpec

REPO = Path(__file__).resolve().parents[2]
KINDS = ["ImageTemplate", "ImageBuild"]


def _schema(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for key, sub in schema.get("properties", {}).items():
        yield from _nodes(sub, f"{path}.{key}")
    if "items" in schema:
        yield from _nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _nodes(schema["additionalProperties"], f"{path}{{}}")


def test_crd_files_match_the_models() -> None:
    on_disk = {p.name: p.read_text() for p in (REPO / "crds").glob("*.yaml")}
    assert on_disk == crd_files(), "crds/ is stale: run `uv run --frozen python scripts/gen_crds.py`"


def test_gen_crds_check_mode_agrees() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_crds.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("kind,short", [("ImageTemplate", "imgt"), ("ImageBuild", "imgb")])
def test_names_scope_and_subresources(kind: str, short: str) -> None:
    spec = crd(kind)["spec"]
    assert spec["group"] == "kaib.dev" and spec["scope"] == "Namespaced"
    assert spec["names"]["shortNames"] == [short] and spec["names"]["categories"] == ["kaib"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}


def test_printer_columns() -> None:
    def columns(kind: str) -> list[str]:
        cols = crd(kind)["spec"]["versions"][0]["additionalPrinterColumns"]
        return [c["name"] for c in cols if not c.get("priority")]

    assert columns("ImageTemplate") == ["Source", "Topology", "Last Build", "Ready", "Age"]
    assert columns("ImageBuild") == ["Template", "Phase", "SubState", "Artifact", "Age"]


def test_status_declares_the_contract_fields() -> None:
    build = _schema("ImageBuild")["properties"]["status"]["properties"]
    assert set(build) == {
        "phase", "subState", "message", "startTime", "endTime", "observedGeneration", "buildId",
        "conditions", "template", "stagingResourceGroup", "exactSourceVersion", "runOutputs", "logs",
        "resources", "operations", "steps",
    }  # fmt: skip
    assert set(build["template"]["properties"]) == {"name", "generation", "hash", "spec"}
    assert set(build["template"]["properties"]["spec"]["properties"]) == set(
        _schema("ImageTemplate")["properties"]["spec"]["properties"]
    )
    assert set(build["conditions"]["items"]["properties"]) == {
        "type", "status", "reason", "message", "lastTransitionTime", "observedGeneration",
    }  # fmt: skip
    assert set(build["operations"]["items"]["properties"]) == {
        "resourceId", "method", "action", "token", "startedAt", "retryAfter",
    }  # fmt: skip
    assert build["phase"]["enum"] == [
        "Queued", "Running", "Canceling", "Succeeded", "PartiallySucceeded", "Failed", "Canceled",
    ]  # fmt: skip
    template = _schema("ImageTemplate")["properties"]["status"]["properties"]
    assert set(template) == {
        "observedGeneration", "message", "conditions", "exactStagingResourceGroup",
        "stagingResourceGroupOwnership", "storageAccount", "topology", "sourceSummary", "lastBuild",
    }  # fmt: skip
    assert set(template["lastBuild"]["properties"]) == {"name", "phase", "startTime", "endTime"}


@pytest.mark.parametrize("kind", KINDS)
def test_schemas_are_structural_and_bounded(kind: str) -> None:
    for path, node in _nodes(_schema(kind)):
        assert "type" in node, f"{path} has no type"
        assert not {"oneOf", "anyOf", "allOf", "default", "$ref"} & set(node), path
        if not path.startswith(".spec"):
            continue
        # Bounds keep the apiserver's CEL cost estimate under budget.
        if node["type"] == "array":
            assert "maxItems" in node, f"{path} has no maxItems"
        if node["type"] == "string":
            assert "maxLength" in node or "enum" in node, f"{path} has no maxLength"
        if node["type"] == "object" and "additionalProperties" in node:
            assert "maxProperties" in node, f"{path} has no maxProperties"


@pytest.mark.parametrize("kind", KINDS)
def test_status_has_no_rules(kind: str) -> None:
    status = _schema(kind)["properties"]["status"]
    assert not [path for path, node in _nodes(status) if "x-kubernetes-validations" in node]


def _rules(model: type[BaseModel], seen: set[type[BaseModel]]) -> Iterator[Rule]:
    if model in seen:
        return
    seen.add(model)
    if issubclass(model, ApiModel):
        yield from model.rules
    for info in model.model_fields.values():
        for sub in _models_in(info.annotation):
            yield from _rules(sub, seen)


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        yield from _models_in(arg)


def test_every_model_rule_is_a_cel_rule_in_the_crd() -> None:
    cel = [
        (v["rule"], v["message"])
        for kind in KINDS
        for _, node in _nodes(_schema(kind))
        for v in node.get("x-kubernetes-validations", [])
    ]
    rules = list(_rules(ImageTemplate, set())) + list(_rules(ImageBuildSpec, set()))
    assert len(rules) >= 15
    for rule in rules:
        # Rules of a union variant are wrapped: `!(self.type == 'X') || (<rule>)`.
        assert any(rule.cel in text and rule.message == message for text, message in cel), rule.cel
    assert any(r.transition for r in _rules(ImageTemplateSpec, set()))
    assert any(r.transition for r in _rules(ImageBuildSpec, set()))
