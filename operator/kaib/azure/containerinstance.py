"""The builder: an ACI container group in the ACI subnet running Packer and the kaib builder agent.

restartPolicy Never: the group runs once; its container's exit code and the agent's result.json
say how the customization went. Secrets travel only as secure environment values (never returned
by a GET). The template's user-assigned identity is attached, as AIB does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kaib.azure import spec as t
from kaib.azure.context import BuildContext
from kaib.azure.spec import ResourceSpec

CONTAINER = "builder"
# ACI gives a VNet group its private address through `ipAddress`, which needs one port that a container
# exposes. Nothing listens there and the NSGs admit nothing to it: the builder only connects out.
STATUS_PORT = 8080


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str
    secure: bool = False

    def to_rest(self) -> dict[str, str]:
        return {"name": self.name, "secureValue" if self.secure else "value": self.value}


class BuilderSpec(ResourceSpec):
    """Never PUT again once it exists: a second PUT would restart the build on the same VM."""

    def parameters(self, existing: Mapping[str, Any] | None) -> dict[str, Any] | None:
        return dict(self.body) if existing is None else None


def builder_group(
    ctx: BuildContext,
    subnet_id: str,
    image: str,
    env: Sequence[EnvVar],
    *,
    identity: str | None = None,
    command: Sequence[str] = (),
    cpu: float = 1.0,
    memory_gb: float = 1.5,
) -> ResourceSpec:
    container: dict[str, Any] = {
        "image": image,
        "environmentVariables": [e.to_rest() for e in env],
        "resources": {"requests": {"cpu": cpu, "memoryInGB": memory_gb}},
        "ports": [{"protocol": "TCP", "port": STATUS_PORT}],
    }
    if command:
        container["command"] = list(command)
    body: dict[str, Any] = {
        "location": ctx.location,
        "tags": ctx.tags(),
        "properties": {
            "osType": "Linux",
            "sku": "Standard",
            "restartPolicy": "Never",
            "subnetIds": [{"id": subnet_id}],
            "ipAddress": {"type": "Private", "ports": [{"protocol": "TCP", "port": STATUS_PORT}]},
            "containers": [{"name": CONTAINER, "properties": container}],
        },
    }
    if identity:
        body["identity"] = {"type": "UserAssigned", "userAssignedIdentities": {identity: {}}}
    return BuilderSpec(
        t.CONTAINER_GROUP, ctx.subscription_id, ctx.staging_group, ctx.names.builder, body, step="builder"
    )


@dataclass(frozen=True)
class ContainerState:
    """What the engine reads from a container group GET."""

    group_state: str  # instanceView.state: Pending, Running, Succeeded, Failed, Stopped
    state: str  # the container's currentState.state: Waiting, Running, Terminated
    exit_code: int | None
    detail: str

    @property
    def terminated(self) -> bool:
        return self.state == "Terminated" or self.group_state in ("Succeeded", "Failed", "Stopped")


def container_state(group: Mapping[str, Any] | None) -> ContainerState:
    props = (group or {}).get("properties") or {}
    group_state = str((props.get("instanceView") or {}).get("state") or "")
    for container in props.get("containers") or []:
        if container.get("name") != CONTAINER:
            continue
        view = (container.get("properties") or {}).get("instanceView") or {}
        current = view.get("currentState") or {}
        code = current.get("exitCode")
        return ContainerState(
            group_state,
            str(current.get("state") or ""),
            int(code) if code is not None else None,
            str(current.get("detailStatus") or ""),
        )
    return ContainerState(group_state, "", None, "")
