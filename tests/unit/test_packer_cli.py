"""`kaib render FILE [--out DIR]` through the real CLI dispatch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from kaib.cli import main
from tests.unit.packer_cases import LINUX_ALL, WINDOWS_CORE


def _manifest(tmp_path: Path, *specs: dict[str, object]) -> Path:
    docs = [
        {
            "apiVersion": "kaib.dev/v1alpha1",
            "kind": "ImageTemplate",
            "metadata": {"name": f"t{i}"},
            "spec": spec,
        }
        for i, spec in enumerate(specs)
    ]
    path = tmp_path / "template.yaml"
    path.write_text(yaml.safe_dump_all([{"kind": "ConfigMap"}, *docs], allow_unicode=True), encoding="utf-8")
    return path


def test_render_writes_templates_scripts_and_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["render", str(_manifest(tmp_path, LINUX_ALL)), "--out", str(out)]) == 0
    written = {str(Path(line).relative_to(out)) for line in capsys.readouterr().out.split()}
    assert written == {
        "customize.pkr.hcl",
        "validate.pkr.hcl",
        "deprovision.pkr.hcl",
        "scripts/customize-06.sh",
        "plan.json",
    }
    customize = (out / "customize.pkr.hcl").read_text()
    # Build-time facts are placeholders: variables without defaults.
    assert (
        'variable "host" {\n  type        = string\n  description = "Private IP address of the build VM"\n}'
        in customize
    )
    assert "# Placeholders: pass -var host=..." in customize
    assert json.loads((out / "plan.json").read_text())["osType"] == "Linux"


def test_render_prints_and_picks_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = _manifest(tmp_path, LINUX_ALL, WINDOWS_CORE)
    assert main(["render", str(manifest)]) == 1
    assert "expected exactly one ImageTemplate" in capsys.readouterr().err
    assert main(["render", str(manifest), "--name", "t1"]) == 0
    printed = capsys.readouterr().out
    assert "# ==> customize.pkr.hcl <==" in printed and 'communicator   = "winrm"' in printed


def test_render_reports_spec_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = _manifest(tmp_path, {"customize": [{"type": "Shell", "name": "broken"}]})
    assert main(["render", str(manifest)]) == 1
    assert "customize step 1 (Shell) 'broken': exactly one of scriptUri or inline" in capsys.readouterr().err


def test_render_sandbox_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = _manifest(tmp_path, {"customize": [{"type": "Shell", "inline": ["true"]}]})
    assert main(["render", str(manifest), "--tolerate-missing-waagent"]) == 0
    assert "tolerate_missing_waagent, a sandbox setting" in capsys.readouterr().out
