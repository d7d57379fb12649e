"""What rendering produces, and the JSON "plan" the builder agent reads.

A build is up to three Packer runs, each its own template, in this order:
`customize` (the customizers), `validate` (the in-VM validators) and `deprovision` (AIB's hidden
last step). Each phase lists its steps (so the agent can name the one that failed), the artifacts
to download before Packer runs (scriptUri / sourceUri, with their sha256) and the small files the
renderer generated (scripts Packer must upload verbatim).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

OsType = Literal["Linux", "Windows"]
PhaseName = Literal["customize", "validate", "deprovision"]

PLAN_VERSION = 1
# The log each phase appends to, under packerlogs/<build>/ (AIB's names). Deprovisioning is the
# tail of customization, as in AIB's customization.log.
PHASE_LOGS: dict[str, str] = {
    "customize": "customization.log",
    "validate": "validation.log",
    "deprovision": "customization.log",
}
# The WindowsUpdate provisioner's plugin, as the builder image (Dockerfile) installs it.
WINDOWS_UPDATE_PLUGIN = "github.com/rgl/windows-update"
WINDOWS_UPDATE_PLUGIN_VERSION = "0.15.0"
# A disabled breakpoint provisioner before each step prints this note; the agent follows it.
STEP_MARKER = "kaib-step"


def step_note(index: int) -> str:
    return f"{STEP_MARKER} {index}"


class RenderError(ValueError):
    """The spec cannot be rendered as written; the message says which step and why."""


@dataclass(frozen=True)
class ConnectionFacts:
    """How Packer reaches the build VM. Secrets are not here: the agent supplies them at run time."""

    os_type: OsType
    host: str
    username: str
    build_id: str = ""
    port: int | None = None  # None: 22 (SSH) or 5986 (WinRM over HTTPS)

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 22 if self.os_type == "Linux" else 5986


@dataclass(frozen=True)
class RenderOptions:
    # The sandbox's VMs have no Azure agent. Only with this set does the default Linux deprovisioning
    # skip a missing waagent (and say so in the log); otherwise a missing waagent fails the build.
    tolerate_missing_waagent: bool = False
    communicator_timeout: str = "20m"


@dataclass(frozen=True)
class Step:
    index: int  # 1-based, within its phase
    type: str
    name: str = ""

    def describe(self) -> str:
        named = f" {self.name!r}" if self.name else ""
        return f"step {self.index} ({self.type}){named}"


@dataclass(frozen=True)
class Download:
    url: str
    sha256: str  # lower-case hex; "" means the spec gave none (AIB's default), so nothing to check
    path: str  # relative to the agent's work directory
    step: int


@dataclass(frozen=True)
class Phase:
    name: PhaseName
    template: str  # HCL2 text
    steps: tuple[Step, ...]
    downloads: tuple[Download, ...] = ()
    files: tuple[tuple[str, str], ...] = ()  # (relative path, content) written before Packer runs

    @property
    def log(self) -> str:
        return PHASE_LOGS[self.name]

    @property
    def template_path(self) -> str:
        return f"{self.name}.pkr.hcl"

    def step(self, index: int) -> Step | None:
        return next((s for s in self.steps if s.index == index), None)


@dataclass(frozen=True)
class RenderedBuild:
    os_type: OsType
    phases: tuple[Phase, ...]
    continue_distribute_on_failure: bool = False
    agent_variables: tuple[str, ...] = field(default=())  # Packer variables the agent must set

    def phase(self, name: str) -> Phase | None:
        return next((p for p in self.phases if p.name == name), None)

    def files(self) -> dict[str, str]:
        """Every file of the build, by relative path: the templates and the generated scripts."""
        out: dict[str, str] = {}
        for p in self.phases:
            out[p.template_path] = p.template
            out.update(dict(p.files))
        return out

    def to_plan(self) -> dict[str, Any]:
        return {
            "version": PLAN_VERSION,
            "osType": self.os_type,
            "continueDistributeOnFailure": self.continue_distribute_on_failure,
            "agentVariables": list(self.agent_variables),
            "phases": [
                {
                    "name": p.name,
                    "log": p.log,
                    "template": p.template,
                    "steps": [{"index": s.index, "type": s.type, "name": s.name} for s in p.steps],
                    "downloads": [
                        {"url": d.url, "sha256": d.sha256, "path": d.path, "step": d.step}
                        for d in p.downloads
                    ],
                    "files": [{"path": path, "content": content} for path, content in p.files],
                }
                for p in self.phases
            ],
        }

    @classmethod
    def from_plan(cls, plan: Mapping[str, Any]) -> RenderedBuild:
        if plan.get("version") != PLAN_VERSION:
            raise ValueError(
                f"unsupported plan version {plan.get('version')!r} (this agent reads {PLAN_VERSION})"
            )
        phases = []
        for p in plan["phases"]:
            if p["name"] not in PHASE_LOGS:
                raise ValueError(f"unknown phase {p['name']!r}")
            phases.append(
                Phase(
                    name=p["name"],
                    template=p["template"],
                    steps=tuple(Step(s["index"], s["type"], s.get("name", "")) for s in p["steps"]),
                    downloads=tuple(
                        Download(d["url"], d.get("sha256", ""), d["path"], d["step"])
                        for d in p.get("downloads", [])
                    ),
                    files=tuple((f["path"], f["content"]) for f in p.get("files", [])),
                )
            )
        return cls(
            os_type=plan["osType"],
            phases=tuple(phases),
            continue_distribute_on_failure=bool(plan.get("continueDistributeOnFailure", False)),
            agent_variables=tuple(plan.get("agentVariables", ())),
        )
