"""The shared `kaib run` process runner and manifest builders, without starting an operator."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kaib.api.manifest import validate_manifest
from kaib.devenv.manifests import image_build, image_template
from kaib.devenv.operator import OperatorFailed, OperatorProcess


class Sub:
    subscription_id = "00000000-0000-0000-0000-000000000001"


def test_environment_layers_sandbox_then_settings_then_kubeconfig_and_port(tmp_path: Path) -> None:
    op = OperatorProcess(
        tmp_path / "op.log",
        {"KAIB_ARM_ENDPOINT": "https://127.0.0.1:1", "KAIB_X": "sandbox"},
        kubeconfig="/k",
        args=["-n", "team"],
        env={"KAIB_X": "setting", "KAIB_METRICS_PORT": "8080"},
        metrics_port=0,
    )
    env = op.environment()
    assert env["KAIB_ARM_ENDPOINT"] == "https://127.0.0.1:1"
    assert env["KAIB_X"] == "setting"
    assert env["KUBECONFIG"] == "/k"
    assert env["KAIB_METRICS_PORT"] == "0"  # the runner's port wins over a copied chart value
    assert op.argv() == [sys.executable, "-m", "kaib.cli", "run", "-n", "team"]
    assert OperatorProcess(tmp_path / "op.log", {}).metrics_port > 0  # a free port by default


def test_a_process_that_is_not_running_fails_the_wait_at_once_with_its_log(tmp_path: Path) -> None:
    op = OperatorProcess(tmp_path / "op.log", {})
    (tmp_path / "op.log").write_text("x" * 10 + "the last words")
    assert op.log(tail=14) == "the last words"
    with pytest.raises(OperatorFailed, match=r"(?s)died while waiting for the build.*the last words"):
        op.wait_for("the build", lambda: True)


def test_manifests_are_valid_and_take_spec_fields_and_a_namespace() -> None:
    images = "/subscriptions/s/resourceGroups/images"
    tmpl = image_template("t", Sub(), images, namespace="ns", errorHandling={"onCustomizerError": "abort"})
    assert validate_manifest(tmpl) == []
    assert tmpl["metadata"] == {"name": "t", "namespace": "ns"}
    assert tmpl["spec"]["errorHandling"] == {"onCustomizerError": "abort"}
    assert tmpl["spec"]["distribute"][0]["imageId"] == f"{images}/providers/Microsoft.Compute/images/t-img"
    named = image_template("t", Sub(), images, image_name="other")
    assert named["spec"]["distribute"][0]["imageId"].endswith("/images/other")
    build = image_build("b", "t")
    assert validate_manifest(build) == []
    assert build["metadata"] == {"name": "b"} and build["spec"] == {"templateRef": {"name": "t"}}
