"""Property-based tests of the API offline: `kaib validate`, conversion to AIB JSON, the Packer renderer.

Cases come from tests/strategies.py (valid templates with hostile strings, and invalid ones by one
known mutation); tests/integration/test_fuzz_crds.py sends the same kinds of case to the apiserver.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import event, given
from hypothesis import strategies as st

from kaib.api import (
    InvalidManifest,
    aib_to_manifest,
    manifest_to_aib,
    parse_manifest,
    source_summary,
    spec_hash,
    spec_with_defaults,
    topology,
    update_problems,
    validate_manifest,
)
from kaib.api.validate_cli import check_file
from kaib.cli import main as kaib
from kaib.packer import RenderError, hcl, render_build
from tests import strategies as gen
from tests.strategies import CaseCounter, fuzz_settings
from tests.unit.api_cases import IDENTITY, IMAGE, build, patched, template

COUNTS = CaseCounter()


@pytest.fixture(scope="module", autouse=True)
def _print_counts(request: pytest.FixtureRequest) -> Iterator[None]:
    started = time.monotonic()
    yield
    COUNTS.print(request.config, f"unit fuzzing ({time.monotonic() - started:.1f}s)")


def _paths(problems: list[tuple[str, str]]) -> list[str]:
    return [path for path, _ in problems]


def _clear(problems: list[tuple[str, str]]) -> None:
    for path, message in problems:
        assert isinstance(path, str) and isinstance(message, str)
        assert message.strip(), f"empty message for {path}"
        assert "Traceback" not in message and "<class" not in message, message


@fuzz_settings(200)
@given(gen.templates())
def test_valid_templates_pass(manifest: dict[str, Any]) -> None:
    COUNTS["valid template"] += 1
    assert validate_manifest(manifest) == []


@fuzz_settings(50)
@given(gen.builds())
def test_valid_builds_pass(manifest: dict[str, Any]) -> None:
    COUNTS["valid build"] += 1
    assert validate_manifest(manifest) == []


@fuzz_settings(350)
@given(gen.invalid_templates())
def test_each_mutation_is_rejected_naming_its_field(case: gen.Invalid) -> None:
    COUNTS["invalid template"] += 1
    event(case.mutation)
    problems = validate_manifest(case.manifest)
    assert problems, f"{case.mutation} at {case.path} was accepted"
    _clear(problems)
    assert case.named_by(_paths(problems)), (case.mutation, case.path, problems)


@fuzz_settings(60)
@given(gen.invalid_builds())
def test_each_build_mutation_is_rejected_naming_its_field(case: gen.Invalid) -> None:
    COUNTS["invalid build"] += 1
    problems = validate_manifest(case.manifest)
    _clear(problems)
    assert case.named_by(_paths(problems)), (case.mutation, case.path, problems)


@fuzz_settings(150)
@given(gen.junk_templates())
def test_arbitrary_json_anywhere_never_crashes(junk: tuple[dict[str, Any], str]) -> None:
    COUNTS["junk template"] += 1
    manifest, _ = junk
    problems = validate_manifest(manifest)  # raises nothing
    _clear(problems)
    try:
        parse_manifest(manifest)
    except InvalidManifest as e:
        assert e.problems == problems
    else:
        assert problems == []


@fuzz_settings(100)
@given(st.one_of(gen.templates(), gen.invalid_templates().map(lambda c: c.manifest)))
def test_the_command_reads_exactly_what_was_written(manifest: dict[str, Any]) -> None:
    """`kaib validate FILE` on the YAML of a manifest: the same problems as on the dict itself."""
    COUNTS["kaib validate file"] += 1
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "m.yaml"
        text = yaml.safe_dump(manifest, allow_unicode=True)
        if yaml.safe_load(text) != manifest:
            # PyYAML's emitter writes U+0085 raw with allow_unicode, and YAML reads it as a line break.
            assert "\x85" in json.dumps(manifest, ensure_ascii=False)
            text = yaml.safe_dump(manifest)
        file.write_text(text, encoding="utf-8")
        assert yaml.safe_load(file.read_text(encoding="utf-8")) == manifest
        expected = [f"{file}: {path}: {message}" for path, message in validate_manifest(manifest)]
        assert check_file(str(file)) == expected


_YAML_SCALARS = ["2026-01-02", "1e3", "0x1f", "~", "yes", "!!binary aGk=", "&a [*a]", "{a: 1}: b", "- - -"]


@fuzz_settings(100)
@given(
    st.one_of(
        st.text(),
        st.lists(st.sampled_from(_YAML_SCALARS), max_size=4).map(
            lambda xs: "\n".join(f"k{i}: {x}" for i, x in enumerate(xs))
        ),
        gen.junk_templates().map(
            lambda j: yaml.safe_dump(j[0]).replace("spec:", "spec: &s", 1) + "---\n- *s\n"
        ),
    )
)
def test_the_command_never_crashes_on_any_text(text: str) -> None:
    COUNTS["kaib validate any text"] += 1
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "m.yaml"
        file.write_text(text, encoding="utf-8")
        for line in check_file(str(file)):
            assert line.startswith(f"{file}: ") and line.count(": ") >= 2, line


@fuzz_settings(80)
@given(st.binary(max_size=200))
def test_the_commands_never_crash_on_any_bytes(content: bytes) -> None:
    COUNTS["kaib validate/convert any bytes"] += 1
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "m.yaml"
        file.write_bytes(content)
        for line in check_file(str(file)):
            assert line.startswith(f"{file}: "), line
        for direction in ("kaib", "aib"):
            assert kaib(["convert", "--to", direction, "--subscription-id", gen.SUB, str(file)]) in (0, 1)


def _without_identity_details(spec: dict[str, Any]) -> dict[str, Any]:
    # principalId/clientId of a user-assigned identity are read-only in AIB: conversion drops them.
    identity = spec.get("identity")
    if identity and identity.get("userAssignedIdentities"):
        spec = {
            **spec,
            "identity": {
                **identity,
                "userAssignedIdentities": {key: {} for key in identity["userAssignedIdentities"]},
            },
        }
    return spec


@fuzz_settings(150)
@given(gen.templates())
def test_aib_json_round_trip_is_the_identity(manifest: dict[str, Any]) -> None:
    COUNTS["aib round trip"] += 1
    resource = manifest_to_aib(manifest)
    spec = manifest["spec"]
    # Strings ARM would read as expressions ("[x]") go out escaped ("[[x]") and come back as they were.
    back = aib_to_manifest(resource, subscription_id=spec["azure"]["subscriptionId"])
    assert back["metadata"]["name"] == manifest["metadata"]["name"]
    assert back["spec"] == _without_identity_details(spec)
    assert spec_with_defaults(back["spec"]) == spec_with_defaults(_without_identity_details(spec))


@fuzz_settings(80)
@given(gen.template_updates())
def test_update_rules_never_crash(pair: tuple[dict[str, Any], dict[str, Any]]) -> None:
    COUNTS["template update"] += 1
    old, new = pair
    problems = update_problems(old, new)
    _clear(problems)
    home_kept = new["spec"]["azure"] == old["spec"]["azure"]
    staging_kept = new["spec"].get("stagingResourceGroup") == old["spec"].get("stagingResourceGroup")
    assert (problems == []) == (home_kept and staging_kept), problems
    assert {path for path, _ in problems} <= {"spec.azure", "spec.stagingResourceGroup"}


_AIB_RESOURCES = gen.templates().map(lambda m: manifest_to_aib(m))


@fuzz_settings(200)
@given(gen.junk_in(_AIB_RESOURCES, ""))
def test_kaib_convert_of_any_aib_json_never_crashes(junk: tuple[dict[str, Any], str]) -> None:
    """Any JSON anywhere in an AIB template: a valid manifest, or InvalidManifest naming paths."""
    COUNTS["aib junk"] += 1
    resource, _ = junk
    try:
        manifest = aib_to_manifest(resource, subscription_id=gen.SUB)
    except InvalidManifest as e:
        _clear(e.problems)
        return
    assert validate_manifest(manifest) == []


_STEP = re.compile(r"^(customize|validate) step (\d+) \((\w+)\)")


@pytest.mark.parametrize("os_type", ["Linux", "Windows", None])
def test_renderer_never_crashes(os_type: str | None) -> None:
    @fuzz_settings(80)
    @given(gen.template_specs(os_type=os_type))
    def check(spec: dict[str, Any]) -> None:
        COUNTS[f"render {os_type or 'any OS'}"] += 1
        try:
            build = render_build(spec)
        except RenderError as e:
            # A valid spec for one OS renders: what Packer would refuse, the API refuses (`{{` where
            # Packer expands it, a bad checksum); only mixing Linux and Windows steps is left.
            assert os_type is None, f"valid {os_type} spec refused: {e}"
            match = _STEP.match(str(e))
            assert match, f"RenderError does not name the step: {e}"
            phase, index, kind = match.group(1), int(match.group(2)), match.group(3)
            steps = spec.get("customize") if phase == "customize" else spec["validate"]["inVMValidations"]
            assert steps[index - 1]["type"] == kind
            COUNTS[f"render {os_type or 'any OS'}: refused"] += 1
            return
        assert build.phases[-1].name == "deprovision"
        if os_type:
            assert build.os_type == os_type

    check()


def _carried(item: dict[str, Any], phase: Any) -> list[str]:
    """The strings of one step that the rendered phase does not carry exactly (should be none)."""
    template, downloads = phase.template, {d.url for d in phase.downloads}
    contents = [content for _, content in phase.files]
    missing = []
    if item.get("inline") is not None:
        lines = item["inline"]
        as_script = "\n".join(lines) + "\n"
        if not all(hcl.quote(line) in template for line in lines) and not any(
            as_script in c for c in contents
        ):
            missing.append("inline")
    for field in ("scriptUri", "sourceUri"):
        if field in item and item[field] not in downloads:
            missing.append(field)
    fields = ("destination", "restartCommand", "restartCheckCommand", "restartTimeout", "searchCriteria")
    missing += [f for f in fields if item.get(f) and hcl.quote(item[f]) not in template]
    missing += ["filters" for f in item.get("filters") or [] if hcl.quote(f) not in template]
    return missing


@pytest.mark.parametrize("os_type", ["Linux", "Windows"])
def test_rendered_templates_carry_every_string_exactly(os_type: str) -> None:
    """Hostile strings reach the template (HCL-quoted), a generated script, or a download, unchanged."""

    has_steps = lambda s: bool(s.get("customize") or (s.get("validate") or {}).get("inVMValidations"))  # noqa: E731

    @fuzz_settings(60)
    @given(gen.template_specs(os_type=os_type).filter(has_steps))
    def check(spec: dict[str, Any]) -> None:
        COUNTS[f"render exactly {os_type}"] += 1
        try:
            build = render_build(spec)
        except RenderError:
            return
        phases = {p.name: p for p in build.phases}
        validate = spec.get("validate") or {}
        steps = {"validate": validate.get("inVMValidations") or []}
        if not validate.get("sourceValidationOnly"):
            steps["customize"] = spec.get("customize") or []
        for name, items in steps.items():
            for index, item in enumerate(items, start=1):
                COUNTS[f"render exactly {os_type}: steps checked"] += 1
                assert not _carried(item, phases[name]), (name, index, _carried(item, phases[name]))

    check()


@pytest.mark.parametrize("shape", ["NoVNet", "SubnetOnly", "SubnetAndACI"])
def test_summaries_of_valid_specs(shape: str) -> None:
    @fuzz_settings(30)
    @given(gen.template_specs(topology=shape))
    def check(spec: dict[str, Any]) -> None:
        COUNTS["summaries"] += 1
        assert topology(spec) == shape
        assert topology(spec_with_defaults(spec)) == shape
        assert isinstance(source_summary(spec), str)
        assert spec_hash(spec) == spec_hash(yaml.safe_load(yaml.safe_dump(spec)))

    check()


# -- defects the fuzzing found, pinned ----------------------------------------------------------------


def test_subnets_differing_only_in_non_ascii_case_are_different_as_in_cel() -> None:
    # CEL's lowerAscii() leaves 'À' and the Kelvin sign alone; kaib validate used str.lower().
    base = "/subscriptions/s/resourceGroups/r/providers/Microsoft.Network/virtualNetworks/v/subnets/"
    for build_subnet, aci_subnet in ((base + "À", base + "à"), (base + "\u212a", base + "k")):
        doc = template()
        doc["spec"]["vmProfile"] = {
            "vnetConfig": {"subnetId": build_subnet, "containerInstanceSubnetId": aci_subnet}
        }
        assert validate_manifest(doc) == []
    doc["spec"]["vmProfile"] = {
        "vnetConfig": {"subnetId": base + "A", "containerInstanceSubnetId": base + "a"}
    }
    assert _paths(validate_manifest(doc)) == ["spec.vmProfile.vnetConfig.containerInstanceSubnetId"]


def test_null_fields_and_map_values_are_left_out_as_the_apiserver_prunes_them() -> None:
    doc = template()
    doc["spec"]["managedResourceTags"] = {"team": None, "keep": "v"}
    doc["spec"]["customize"][0]["name"] = None
    doc["spec"]["customize"][0]["scriptUri"] = None
    assert validate_manifest(doc) == []
    doc["spec"]["identity"] = {"type": "UserAssigned", "userAssignedIdentities": {IDENTITY: None}}
    assert validate_manifest(doc) == [
        (
            "spec.identity.userAssignedIdentities",
            "type UserAssigned needs exactly one entry in userAssignedIdentities",
        )
    ]
    # A null list item is not pruned: it is an error, as on the apiserver.
    doc = patched(template(), {"spec.customize[0].inline": ["echo", None]})
    assert _paths(validate_manifest(doc)) == ["spec.customize[0].inline[1]"]


def test_integers_beyond_int64_are_refused_as_by_the_apiserver() -> None:
    doc = patched(template(), {"spec.vmProfile": {"osDiskSizeGB": 2**63}})
    assert _paths(validate_manifest(doc)) == ["spec.vmProfile.osDiskSizeGB"]
    assert validate_manifest(patched(template(), {"spec.vmProfile": {"osDiskSizeGB": 2**63 - 1}})) == []


@pytest.mark.parametrize("name", ["Upper", "my_template", "a..b", "-a", "a-", "a" * 254])
def test_metadata_name_must_be_a_dns_subdomain_as_on_the_apiserver(name: str) -> None:
    assert "metadata.name" in _paths(validate_manifest(patched(template(), {"metadata.name": name})))
    assert "metadata.name" in _paths(validate_manifest(patched(build(), {"metadata.name": name})))


def test_update_to_another_source_type_does_not_crash() -> None:
    # update_problems raised AttributeError: it followed `source` into fields the old variant lacks.
    old = template()
    new = patched(old, {"spec.source": {"type": "ManagedImage", "imageId": IMAGE}})
    assert update_problems(old, new) == []
    vhd = {"type": "VHD", "runOutputName": "out"}
    assert update_problems(old, patched(new, {"spec.distribute": [vhd]})) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("properties.vmProfile", [1]),
        ("properties.validate", "x"),
        ("location", 5),
        ("name", 5),
        ("id", 5),
        ("tags", 5),
    ],
)
def test_kaib_convert_reports_wrong_types_instead_of_crashing(field: str, value: Any) -> None:
    # AttributeError, AssertionError and TypeError before.
    resource = patched(manifest_to_aib(template()), {field: value})
    with pytest.raises(InvalidManifest) as e:
        aib_to_manifest(resource, subscription_id=gen.SUB)
    assert field in _paths(e.value.problems)


def test_files_that_are_not_utf8_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # UnicodeDecodeError escaped `kaib validate` and `kaib convert` before.
    file = tmp_path / "bad.yaml"
    file.write_bytes(b"a: \xff\n")
    assert check_file(str(file)) == [f"{file}: : not UTF-8 text (byte 3: invalid start byte)"]
    assert kaib(["convert", str(file)]) == 1
    assert "not UTF-8 text" in capsys.readouterr().err


def test_status_values_are_ignored_as_on_create_but_not_unknown_status_fields() -> None:
    # The apiserver drops status on create; strict decoding still refuses unknown fields in it.
    assert validate_manifest(patched(build(), {"status": {"phase": "Bogus", "conditions": "x"}})) == []
    assert validate_manifest(patched(template(), {"status": 5})) == []
    assert validate_manifest(patched(template(), {"status": {"observedGeneration": 2**64}})) == []
    assert _paths(validate_manifest(patched(template(), {"status": {"foo": 1}}))) == ["status.foo"]
    # A null value does not make a field known (found by fuzzing against the apiserver).
    assert _paths(validate_manifest(patched(build(), {"status": {"phase": [None], "x": None}}))) == [
        "status.x"
    ]
    # Unknown as the apiserver's pruning sees them: under a wrong type, and in list items.
    assert _paths(validate_manifest(patched(build(), {"status": {"phase": {"a": 1}}}))) == ["status.phase.a"]
    assert _paths(validate_manifest(patched(build(), {"status": [{"phase": "x", "b": 1}]}))) == [
        "status[0].b"
    ]
    # parse_template_spec has no status: a prefix "spec" never matches.
    assert _paths(validate_manifest(patched(template(), {"spec.buildTimeoutInMinutes": 5, "status": 5}))) == [
        "spec.buildTimeoutInMinutes"
    ]
