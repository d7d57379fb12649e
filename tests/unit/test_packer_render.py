"""Golden tests of the Packer rendering (every customizer and validator type, Linux and Windows),
plus the rules rendering enforces. Regenerate goldens with KAIB_UPDATE_GOLDEN=1 and read the diff."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kaib.packer import RenderedBuild, RenderError, render_build, write_build
from kaib.packer.render import MAX_NAME, infer_os_type
from tests.unit.packer_cases import CASES, LINUX_ALL, LINUX_FACTS, WINDOWS_CORE

GOLDEN = Path(__file__).parents[1] / "golden" / "packer"
UPDATE = os.environ.get("KAIB_UPDATE_GOLDEN") == "1"


def _files(case: str) -> dict[str, str]:
    spec, facts, options = CASES[case]
    build = render_build(spec, facts, options)
    files = build.files()
    files["plan.json"] = json.dumps(build.to_plan(), indent=2, ensure_ascii=False) + "\n"
    return files


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendering_matches_golden(case: str) -> None:
    files = _files(case)
    root = GOLDEN / case
    if UPDATE:
        for rel, content in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(content, encoding="utf-8", newline="")
    on_disk = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    assert on_disk == set(files), f"golden files of {case} differ in name; run with KAIB_UPDATE_GOLDEN=1"
    for rel, content in files.items():
        expected = (root / rel).read_bytes().decode("utf-8")
        assert content == expected, f"{case}/{rel} differs from the golden file"


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendering_is_deterministic(case: str) -> None:
    assert _files(case) == _files(case)


def test_plan_round_trips() -> None:
    build = render_build(LINUX_ALL, LINUX_FACTS)
    again = RenderedBuild.from_plan(json.loads(json.dumps(build.to_plan())))
    assert again == build


def test_phases_and_steps() -> None:
    build = render_build(LINUX_ALL, LINUX_FACTS)
    assert [p.name for p in build.phases] == ["customize", "validate", "deprovision"]
    customize = build.phases[0]
    assert [s.type for s in customize.steps] == ["Shell", "Shell", "Shell", "File", "Shell", "Shell"]
    assert customize.step(4) is not None and customize.step(4).name == "a file"  # type: ignore[union-attr]
    # scriptUri and sourceUri become downloads with their (lower-cased) checksums.
    assert [(d.step, d.path, d.sha256[:4]) for d in customize.downloads] == [
        (2, "downloads/customize-02.sh", "aaaa"),
        (3, "downloads/customize-03.sh", ""),
        (4, "downloads/customize-04/my_file.tar.gz", "0123"),
    ]
    assert customize.downloads[2].sha256 == "0123456789abcdef" * 4
    # Inline commands with '{{' travel as a generated script, verbatim.
    script = "#!/bin/sh -e\necho '{{ .Path }}' {{x}}\necho done\n"
    assert customize.files == (("scripts/customize-06.sh", script),)
    assert "{{ .Path }}' {{x}}" not in customize.template
    assert [p.log for p in build.phases] == ["customization.log", "validation.log", "customization.log"]


def _download_path(source_uri: str) -> str:
    step = {"type": "File", "sourceUri": source_uri, "destination": "/tmp/"}
    return render_build({"customize": [step]}, LINUX_FACTS).phases[0].downloads[0].path


def test_download_names_are_bounded_deterministic_and_distinct() -> None:
    # The URL's last segment, up to MAX_NAME bytes: Packer uploads into a folder destination by name.
    assert _download_path("https://x/a/setup%20me.tar.gz?sig=1") == "downloads/customize-01/setup_me.tar.gz"
    assert _download_path("https://x/" + "a" * MAX_NAME) == "downloads/customize-01/" + "a" * MAX_NAME
    # Longer: its start, a hash of the whole segment, its extension (the agent's NAME_MAX is 255 bytes).
    long_a, long_b = "https://x/" + "é" * 300 + "a.tar.gz", "https://x/" + "é" * 300 + "b.tar.gz"
    name_a, name_b = Path(_download_path(long_a)).name, Path(_download_path(long_b)).name
    assert len(name_a.encode()) == len(name_b.encode()) == MAX_NAME
    assert name_a.startswith("_" * 50) and name_a.endswith(".gz")
    assert name_a != name_b
    assert _download_path(long_a) == _download_path(long_a)
    # Not a URL Python parses (an unclosed '[' in the host): a name all the same, no crash.
    assert _download_path("https://[x/dir/f.txt") == "downloads/customize-01/f.txt"


def test_every_step_has_a_marker_in_order() -> None:
    for case, (spec, facts, options) in CASES.items():
        for phase in render_build(spec, facts, options).phases:
            notes = [line.split('"')[1] for line in phase.template.splitlines() if "note " in line]
            assert notes == [f"kaib-step {s.index}" for s in phase.steps], case


def test_secrets_never_rendered_and_facts_become_defaults() -> None:
    build = render_build(WINDOWS_CORE, CASES["windows-core"][1])
    customize = build.phases[0].template
    assert 'default     = "10.60.1.5"' in customize and "default     = 5986" in customize
    assert 'variable "winrm_password"' in customize and "sensitive   = true" in customize
    assert build.agent_variables == ("winrm_password",)
    assert render_build(LINUX_ALL, LINUX_FACTS).agent_variables == ("ssh_private_key_file",)


def test_deprovision_defaults_follow_aib() -> None:
    linux = render_build(LINUX_ALL, LINUX_FACTS).phases[-1].template
    assert "/tmp/DeprovisioningScript.sh" in linux
    assert "/usr/sbin/waagent -force -deprovision+user && export HISTSIZE=0 && sync" in linux
    assert "tolerate_missing_waagent" not in linux  # only with the explicit option
    windows = render_build(WINDOWS_CORE, CASES["windows-core"][1]).phases[-1].template
    assert "c:\\\\DeprovisioningScript.ps1" in windows
    assert "Sysprep.exe /oobe /generalize /quiet /quit" in windows


def test_os_type_inference() -> None:
    assert infer_os_type(LINUX_ALL) == "Linux"
    assert infer_os_type(WINDOWS_CORE) == "Windows"
    assert infer_os_type({"customize": [{"type": "WindowsRestart"}]}) == "Windows"


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"type": "Shell"}, "exactly one of scriptUri or inline"),
        ({"type": "Shell", "inline": ["x"], "scriptUri": "https://x/y"}, "exactly one of scriptUri"),
        ({"type": "Shell", "scriptUri": "https://x/y", "sha256Checksum": "abc"}, "not 64 hexadecimal digits"),
        ({"type": "File", "sourceUri": "https://x/y"}, "destination is required"),
        ({"type": "File", "sourceUri": "https://x/y", "destination": "/tmp/{{x}}"}, "template action"),
        ({"type": "WindowsRestart"}, "runs only on Windows"),
        ({"type": "Nope"}, "is not one of"),
    ],
)
def test_linux_render_errors_name_the_step(step: dict[str, object], message: str) -> None:
    spec = {"customize": [{"type": "Shell", "inline": ["true"]}, {"name": "bad one", **step}]}
    with pytest.raises(RenderError, match=message) as info:
        render_build(spec, LINUX_FACTS)
    assert "customize step 2" in str(info.value)


def test_windows_render_errors() -> None:
    facts = CASES["windows-core"][1]
    with pytest.raises(RenderError, match="runs only on Linux"):
        render_build({"customize": [{"type": "Shell", "inline": ["x"]}]}, facts)
    with pytest.raises(RenderError, match="runAsSystem"):
        render_build({"customize": [{"type": "PowerShell", "inline": ["x"], "runAsSystem": True}]}, facts)
    with pytest.raises(RenderError, match="validate step 1"):
        render_build({"validate": {"inVMValidations": [{"type": "WindowsRestart"}]}}, facts)


def test_write_build(tmp_path: Path) -> None:
    build = render_build(LINUX_ALL, LINUX_FACTS)
    written = {str(p.relative_to(tmp_path)) for p in write_build(build, tmp_path)}
    assert written == {*build.files(), "plan.json"}
    script = (tmp_path / "scripts/customize-06.sh").read_bytes()
    assert script == b"#!/bin/sh -e\necho '{{ .Path }}' {{x}}\necho done\n"
