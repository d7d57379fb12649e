"""`kaib validate` checks metadata as the apiserver does (the messages are the apiserver's: see
tests/integration/test_crd_messages.py), refuses whole-number floats in integer fields, and reports
a YAML alias inside its own anchor instead of crashing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kaib.api import validate_manifest
from kaib.api.common import INTEGER_MESSAGE
from kaib.api.metadata import ANNOTATIONS_MAX_BYTES, metadata_problems
from kaib.api.validate_cli import check_file
from kaib.devenv.manifests import image_template
from tests.strategies import SUB


class Sub:
    subscription_id = SUB


def manifest(**metadata: Any) -> dict[str, Any]:
    doc = image_template("t", Sub(), f"/subscriptions/{SUB}/resourceGroups/images")
    doc["metadata"] = metadata
    return doc


def paths(doc: dict[str, Any]) -> list[str]:
    return [path for path, _ in validate_manifest(doc)]


def test_well_formed_metadata_passes() -> None:
    doc = manifest(
        name="t",
        namespace="team-a",
        labels={"app.kubernetes.io/name": "golden", "tier": ""},
        annotations={"Example.com/Owner": "Platform Team!", "note": "anything at all"},
        finalizers=["example.com/keep"],
    )
    assert validate_manifest(doc) == []
    assert validate_manifest(manifest(generateName="golden-")) == []


@pytest.mark.parametrize(
    ("metadata", "path", "words"),
    [
        ({"name": "t", "labels": {"Bad Key": "v"}}, "metadata.labels", 'Invalid value: "Bad Key": name part'),
        ({"name": "t", "labels": {"a": "x" * 64}}, "metadata.labels", "must be no more than 63 bytes"),
        (
            {"name": "t", "labels": {"a": 1}},
            "metadata.labels",
            "must be a map of string keys to string values",
        ),
        ({"name": "t", "annotations": {"a/b/c": "v"}}, "metadata.annotations", "a valid label key must"),
        ({"name": "t", "namespace": "Team_A"}, "metadata.namespace", "a lowercase RFC 1123 label must"),
        ({"name": "t", "finalizers": ["bad finalizer"]}, "metadata.finalizers", "name part must consist"),
        ({"generateName": "Bad_"}, "metadata.generateName", "a lowercase RFC 1123 subdomain must"),
        ({}, "metadata.name", "Required value: name or generateName is required"),
    ],
)
def test_metadata_problems_name_the_field(metadata: dict[str, Any], path: str, words: str) -> None:
    problems = validate_manifest(manifest(**metadata))
    assert any(p == path and words in m for p, m in problems), problems


def test_annotations_are_limited_to_256_kib_in_all() -> None:
    fits = {"a": "x" * (ANNOTATIONS_MAX_BYTES - 1)}
    assert metadata_problems({"name": "t", "annotations": fits}) == []
    over = {"a": "x" * ANNOTATIONS_MAX_BYTES}
    assert metadata_problems({"name": "t", "annotations": over}) == [
        ("metadata.annotations", f"Too long: may not be more than {ANNOTATIONS_MAX_BYTES} bytes")
    ]


def test_whole_number_floats_are_refused_in_integer_fields_only() -> None:
    doc = manifest(name="t")
    doc["spec"]["vmProfile"]["osDiskSizeGB"] = 30.0
    assert validate_manifest(doc) == [("spec.vmProfile.osDiskSizeGB", INTEGER_MESSAGE)]
    doc["spec"]["vmProfile"]["osDiskSizeGB"] = 30.5
    assert validate_manifest(doc) == [("spec.vmProfile.osDiskSizeGB", "Input should be a valid integer")]


def test_a_yaml_alias_inside_its_own_anchor_is_reported(tmp_path: Path) -> None:
    file = tmp_path / "m.yaml"
    file.write_text(
        "apiVersion: kaib.dev/v1alpha1\nkind: ImageTemplate\nmetadata: {name: t}\nspec: &s\n  x: [*s]\n"
    )
    assert check_file(str(file)) == [
        f"{file}: spec.x[0]: a YAML alias refers to a node that contains it (no end)"
    ]
