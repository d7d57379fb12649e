"""Every rule of the API, offline: each invalid case is rejected by `kaib validate`, naming its field.

The same cases run against the real apiserver in tests/integration/test_crds.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kaib.api import update_problems, validate_manifest
from kaib.api.template import GO_TEMPLATED_REASON
from kaib.api.validate_cli import MAX_MANIFEST_BYTES, MAX_OBJECT_BYTES, manifest_bytes
from kaib.cli import main as kaib
from kaib.packer import RenderError, render_build
from kaib.packer.model import OsType
from tests.unit.api_cases import CASES, IDENTITY, SUB, Case, build, patched, sized, template


def test_bases_are_valid() -> None:
    assert validate_manifest(template()) == []
    assert validate_manifest(build()) == []


def test_there_are_at_least_thirty_cases() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_invalid_manifest_is_rejected_naming_the_field(case: Case) -> None:
    problems = validate_manifest(case.manifest("case"))
    assert case.path in [path for path, _ in problems], problems


def test_messages_use_aib_words() -> None:
    doc = patched(template(), {"spec.customize[0].scriptUri": "https://x/s.sh"})
    assert validate_manifest(doc) == [
        ("spec.customize[0]", "Exactly one of 'scriptUri' or 'inline' can be specified")
    ]
    doc = patched(template(), {"spec.customize[0].runElevated": True})
    assert validate_manifest(doc) == [
        ("spec.customize[0].runElevated", "runElevated is only valid when type is PowerShell")
    ]


def test_every_problem_is_reported_not_just_the_first() -> None:
    doc = patched(template(), {"spec.source.sku": None, "spec.buildTimeoutInMinutes": 1000, "spec.foo": 1})
    paths = [path for path, _ in validate_manifest(doc)]
    assert {"spec.source.sku", "spec.buildTimeoutInMinutes", "spec.foo"} <= set(paths)


@pytest.mark.parametrize("minutes", [0, 6, 240, 960])
def test_build_timeout_bounds_accept(minutes: int) -> None:
    assert validate_manifest(patched(template(), {"spec.buildTimeoutInMinutes": minutes})) == []


def test_empty_proxy_vm_size_counts_as_not_given() -> None:
    vnet = {"subnetId": "x", "containerInstanceSubnetId": "y", "proxyVmSize": ""}
    base = "/subscriptions/s/resourceGroups/r/providers/Microsoft.Network/virtualNetworks/v/subnets/"
    vnet = {**vnet, "subnetId": base + "a", "containerInstanceSubnetId": base + "b"}
    assert validate_manifest(patched(template(), {"spec.vmProfile": {"vnetConfig": vnet}})) == []


def test_identity_none_and_user_assigned_are_valid() -> None:
    assert validate_manifest(patched(template(), {"spec.identity": {"type": "None"}})) == []
    one = {"type": "UserAssigned", "userAssignedIdentities": {IDENTITY: {}}}
    assert validate_manifest(patched(template(), {"spec.identity": one})) == []


def test_not_a_manifest() -> None:
    assert validate_manifest([]) == [("", "a manifest must be a mapping (apiVersion, kind, metadata, spec)")]
    assert validate_manifest({**template(), "apiVersion": "v1"})[0][0] == "apiVersion"
    assert validate_manifest({**template(), "kind": "Pod"})[0][0] == "kind"


# -- update rules (CEL transition rules on the apiserver) ---------------------------------------------


def test_build_spec_is_immutable_except_cancel() -> None:
    old = build()
    assert update_problems(old, patched(old, {"spec.cancel": True})) == []
    assert [p for p, _ in update_problems(old, patched(old, {"spec.templateRef.name": "other"}))] == [
        "spec.templateRef"
    ]
    canceled = patched(old, {"spec.cancel": True})
    assert [p for p, _ in update_problems(canceled, patched(old, {"spec.cancel": False}))] == ["spec.cancel"]
    assert [p for p, _ in update_problems(canceled, old)] == ["spec.cancel"]


def test_template_edits_are_allowed_except_its_azure_home() -> None:
    old = template()
    edited = patched(old, {"spec.customize[0].inline": ["echo changed"], "spec.buildTimeoutInMinutes": 60})
    assert update_problems(old, edited) == []
    moved = patched(old, {"spec.azure.location": "westus"})
    assert [p for p, _ in update_problems(old, moved)] == ["spec.azure"]
    other_sub = patched(old, {"spec.azure.subscriptionId": SUB.replace("1", "2")})
    assert [p for p, _ in update_problems(old, other_sub)] == ["spec.azure"]
    group = f"/subscriptions/{SUB}/resourceGroups/staging"
    staged = patched(old, {"spec.stagingResourceGroup": group})
    assert [p for p, _ in update_problems(old, staged)] == ["spec.stagingResourceGroup"]
    assert [p for p, _ in update_problems(staged, old)] == ["spec.stagingResourceGroup"]
    assert update_problems(staged, patched(staged, {"spec.autoRun": {"state": "Enabled"}})) == []


# -- the command --------------------------------------------------------------------------------------


def _write(tmp_path: Path, name: str, docs: list[Any]) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(docs))
    return str(path)


def test_validate_command_prints_one_line_per_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _write(tmp_path, "good.yaml", [template(), build()])
    bad = _write(
        tmp_path,
        "bad.yaml",
        [patched(template(), {"spec.customize[0].scriptUri": "https://x", "spec.buildTimeoutInMinutes": 3})],
    )
    assert kaib(["validate", good]) == 0
    assert capsys.readouterr().out == ""
    assert kaib(["validate", good, bad]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"{bad}: spec.buildTimeoutInMinutes: buildTimeoutInMinutes must be 0 (the default, 240 minutes) "
        "or between 6 and 960",
        f"{bad}: spec.customize[0]: Exactly one of 'scriptUri' or 'inline' can be specified",
    ]


def test_validate_command_names_the_object_in_multi_document_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "two.yaml", [template(), patched(build(), {"spec.cancel": "no"})])
    assert kaib(["validate", path]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{path}: spec.cancel: Input should be a valid boolean (ImageBuild case-1)"
    ]


def test_validate_command_reports_unreadable_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("spec: [unclosed\n")
    assert kaib(["validate", str(broken), str(tmp_path / "missing.yaml")]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{broken}: : not YAML")
    assert out[1].startswith(f"{tmp_path / 'missing.yaml'}: : cannot read")


def test_validate_command_skips_other_api_groups(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "images"}}
    mixed = _write(tmp_path, "mixed.yaml", [namespace, template()])
    assert kaib(["validate", mixed]) == 0
    only_foreign = _write(tmp_path, "ns.yaml", [namespace])
    assert kaib(["validate", only_foreign]) == 1
    assert capsys.readouterr().out == f"{only_foreign}: : no ImageTemplate or ImageBuild in this file\n"
    wrong_version = _write(tmp_path, "v1.yaml", [{**template(), "apiVersion": "kaib.dev/v1"}])
    assert kaib(["validate", wrong_version]) == 1
    assert "apiVersion: must be kaib.dev/v1alpha1" in capsys.readouterr().out


def test_validate_command_refuses_objects_kubernetes_cannot_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Valid field by field, but over etcd's 1.5 MiB an object (the apiserver's own 3 MiB is further).
    assert MAX_OBJECT_BYTES == 1_572_864 and 0 < MAX_OBJECT_BYTES - MAX_MANIFEST_BYTES <= 4096
    path = _write(tmp_path, "big.yaml", [sized("big", MAX_MANIFEST_BYTES + 1)])
    assert kaib(["validate", path]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{path}: big: the manifest is {MAX_MANIFEST_BYTES + 1} bytes; Kubernetes stores at most 1.5 MiB, "
        f"the metadata the apiserver adds included (at most {MAX_MANIFEST_BYTES} bytes as written)"
    ]
    assert kaib(["validate", _write(tmp_path, "edge.yaml", [sized("edge", MAX_MANIFEST_BYTES)])]) == 0
    # Compact JSON, as the apiserver stores it; UTF-8 bytes, not characters.
    assert manifest_bytes({"a": ["é", 1]}) == len('{"a":["é",1]}'.encode())


# Every string a step carries, with a valid step of its type and the OS that runs it. `{{` goes into
# one field at a time; restartTimeout and sha256Checksum are left out: their patterns have no '{'.
_STEPS: dict[str, tuple[dict[str, Any], OsType, tuple[str, ...]]] = {
    "Shell": ({"type": "Shell", "inline": ["x"]}, "Linux", ("name", "inline", "scriptUri")),
    "PowerShell": ({"type": "PowerShell", "inline": ["x"]}, "Windows", ("name", "inline", "scriptUri")),
    "File": (
        {"type": "File", "sourceUri": "https://x/f", "destination": "/tmp/f"},
        "Linux",
        ("name", "sourceUri", "destination"),
    ),
    "WindowsRestart": (
        {"type": "WindowsRestart"},
        "Windows",
        ("name", "restartCommand", "restartCheckCommand"),
    ),
    "WindowsUpdate": ({"type": "WindowsUpdate"}, "Windows", ("name", "searchCriteria", "filters")),
}


def _with_action(step: dict[str, Any], field: str) -> dict[str, Any]:
    out = {k: v for k, v in step.items() if not (field == "scriptUri" and k == "inline")}
    out[field] = ["ok", "a {{ .Path }}"] if field in ("inline", "filters") else "a{{b"
    return out


@pytest.mark.parametrize(
    ("kind", "field"), [(kind, field) for kind, (_, _, fields) in _STEPS.items() for field in fields]
)
def test_api_refuses_go_template_actions_exactly_where_the_renderer_does(kind: str, field: str) -> None:
    """`{{` where Packer would expand it: refused by the API (at admission), not first at build time."""
    base, os_type, _ = _STEPS[kind]
    step = _with_action(base, field)
    try:
        render_build({"customize": [step]}, os_type=os_type)
        renderer_refuses = False
    except RenderError as e:
        assert "template action" in str(e), e
        renderer_refuses = True
    problems = validate_manifest(patched(template(), {"spec.customize": [step]}))
    assert problems == (
        [(f"spec.customize[0].{field}", f"{field} must not contain '{{{{': {GO_TEMPLATED_REASON}")]
        if renderer_refuses
        else []
    )
    expected = {"destination", "restartCommand", "restartCheckCommand", "searchCriteria", "filters"}
    assert renderer_refuses == (field in expected)
