"""The seam between the ARM engine and whatever makes sandbox resources real (issue 5's runtime).

The engine calls these hooks after a resource's modelled latency has elapsed, inside the long-running
operation: a hook that raises `ArmError` fails the operation (provisioningState Failed, the operation
answers `status: Failed` with that error). Hooks get `ResourceView`s: a copy of the resource as GET
shows it plus `lookup(id)` for the resources it references (a VM's NICs, a NIC's subnet...).

- `network_changed(view)` / `network_deleted(view)`: a VNet, subnet, NSG, security rule, NIC,
  load balancer, private endpoint or private link service was created, updated or deleted.
- `vm_started(view)` after a VM's create or `start`/`restart`; `vm_stopped(view, deallocated)` after
  `powerOff`/`deallocate`; `vm_deleted(view)`; `vm_generalized(view)`.
- `disk_contents(disk, vm)`: the bytes of a managed disk being exported (grant access), or None when
  nothing real is behind it (the sandbox then exports a description of the disk); `vm` is the
  deallocated VM it is attached to, if any.
- `image_created(image, source)`: a managed image (from a VM: `sourceVirtualMachine`, or a capture)
  or a gallery image version (from a VM or an image) now exists; `source` is what it was made from.
  `image_deleted(view)`.
- `run_container_group(run)`: the container group is provisioned; run its containers and return when
  all have terminated, reporting through `run.log()`, `run.container_started()` and `run.finished()`
  (each container must be finished; an exception marks the containers still running as exit 1).
  Cancelled (asyncio) when the group is stopped or deleted. `container_group_deleted(view)` follows.
- `close()`: the sandbox stops or resets; remove everything made.

`ModelledHooks` is the default: nothing is real. Its container groups run the *modelled outcome*
(`/_sandbox/outcomes`, see control.py): they wait the modelled run time, print the configured logs,
exit with the configured code and, when the environment says where (KAIB_LOG_CONTAINER_URL: a blob
container URL with a SAS; KAIB_BUILD_ID; KAIB_LOG_PREFIX, default the build id), write
`<prefix>/customization.log` and `<prefix>/result.json` there in the builder agent's schema (`result`
of the outcome is merged over it), as the builder agent would.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResourceView:
    id: str
    type: str
    name: str
    location: str | None
    body: dict[str, Any]
    lookup: Callable[[str], dict[str, Any] | None] = field(repr=False, compare=False)


@dataclass
class Outcome:
    """What a modelled container run does."""

    exit_code: int = 0
    logs: str = "modelled run: no runtime attached, nothing was executed\n"
    seconds: float | None = None  # None: the latency model's containergroups "run" time
    result: dict[str, Any] | None = None  # merged into the result.json the sandbox writes


@dataclass
class ContainerSpec:
    name: str
    image: str
    command: list[str]
    env: dict[str, str]  # secure values included


@dataclass
class ContainerRun:
    """One run of a container group, handed to `run_container_group`."""

    group: ResourceView
    containers: list[ContainerSpec]
    private_ip: str | None
    subnet_ids: list[str]
    outcome: Outcome
    run_seconds: float
    logs: dict[str, list[str]] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)
    exit_codes: dict[str, int] = field(default_factory=dict)
    finished_at: dict[str, float] = field(default_factory=dict)

    def log(self, container: str, text: str) -> None:
        self.logs.setdefault(container, []).append(text)

    def container_started(self, container: str) -> None:
        self.started.setdefault(container, time.time())

    def finished(self, container: str, exit_code: int) -> None:
        self.container_started(container)
        self.exit_codes[container] = exit_code
        self.finished_at[container] = time.time()

    def log_text(self, container: str) -> str:
        return "".join(self.logs.get(container, []))

    def summary(self) -> RunSummary:
        return RunSummary(
            {c: self.log_text(c) for c in self.logs}, dict(self.started), dict(self.exit_codes),
            dict(self.finished_at),
        )  # fmt: skip


@dataclass
class RunSummary:
    """A finished run as the sandbox keeps (and persists) it: what the instance view and logs show."""

    logs: dict[str, str]
    started: dict[str, float]
    exit_codes: dict[str, int]
    finished_at: dict[str, float]

    def log_text(self, container: str) -> str:
        return self.logs.get(container, "")

    def to_json(self) -> dict[str, Any]:
        return {"logs": self.logs, "started": self.started, "exitCodes": self.exit_codes,
                "finishedAt": self.finished_at}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSummary:
        return cls(data.get("logs", {}), data.get("started", {}), data.get("exitCodes", {}),
                   data.get("finishedAt", {}))  # fmt: skip


class SandboxHooks(Protocol):
    async def network_changed(self, view: ResourceView) -> None: ...
    async def network_deleted(self, view: ResourceView) -> None: ...
    async def vm_started(self, view: ResourceView) -> None: ...
    async def vm_stopped(self, view: ResourceView, deallocated: bool) -> None: ...
    async def vm_deleted(self, view: ResourceView) -> None: ...
    async def vm_generalized(self, view: ResourceView) -> None: ...
    async def image_created(self, image: ResourceView, source: ResourceView | None) -> None: ...
    async def disk_contents(self, disk: ResourceView, vm: ResourceView | None) -> bytes | None: ...
    async def image_deleted(self, view: ResourceView) -> None: ...
    async def run_container_group(self, run: ContainerRun) -> None: ...
    async def container_group_deleted(self, view: ResourceView) -> None: ...
    async def close(self) -> None: ...


class ModelledHooks:
    """Nothing real: latency is modelled by the engine, container runs by their `Outcome`."""

    async def network_changed(self, view: ResourceView) -> None:
        return None

    async def network_deleted(self, view: ResourceView) -> None:
        return None

    async def vm_started(self, view: ResourceView) -> None:
        return None

    async def vm_stopped(self, view: ResourceView, deallocated: bool) -> None:
        return None

    async def vm_deleted(self, view: ResourceView) -> None:
        return None

    async def vm_generalized(self, view: ResourceView) -> None:
        return None

    async def image_created(self, image: ResourceView, source: ResourceView | None) -> None:
        return None

    async def image_deleted(self, view: ResourceView) -> None:
        return None

    async def disk_contents(self, disk: ResourceView, vm: ResourceView | None) -> bytes | None:
        return None

    async def run_container_group(self, run: ContainerRun) -> None:
        for c in run.containers:
            run.container_started(c.name)
        await asyncio.sleep(run.run_seconds)
        for c in run.containers:
            run.log(c.name, run.outcome.logs)
        where = next((c.env for c in run.containers if c.env.get("KAIB_LOG_CONTAINER_URL")), None)
        if where is not None:
            try:
                await asyncio.to_thread(write_modelled_result, where, run)
            except Exception as exc:  # a wrong SAS must show in the logs, as in a real run
                for c in run.containers:
                    run.log(c.name, f"modelled run: could not write result.json: {exc}\n")
        for c in run.containers:
            run.finished(c.name, run.outcome.exit_code)

    async def container_group_deleted(self, view: ResourceView) -> None:
        return None

    async def close(self) -> None:
        return None


def write_modelled_result(env: dict[str, str], run: ContainerRun) -> None:
    """Write `<prefix>/customization.log` (append blob) and `<prefix>/result.json` in the builder
    agent's schema (kaib/builder/result.py); prefix: KAIB_LOG_PREFIX, else KAIB_BUILD_ID."""
    from azure.storage.blob import ContainerClient

    container = ContainerClient.from_container_url(env["KAIB_LOG_CONTAINER_URL"])
    build = env.get("KAIB_BUILD_ID", run.group.name)
    prefix = (env.get("KAIB_LOG_PREFIX", "").strip("/") or build) + "/"
    log_blob = container.get_blob_client(prefix + "customization.log")
    if not log_blob.exists():
        log_blob.create_append_blob()
    lines = "".join(f"[{build}] PACKER OUT {line}\n" for line in run.outcome.logs.splitlines())
    if lines:
        log_blob.append_block(lines.encode())
    code = run.outcome.exit_code
    status = "Succeeded" if code == 0 else "Failed"
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(min(run.started.values(), default=time.time())))
    ended = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    message = "" if code == 0 else f"modelled failure: the customization exited with code {code}"
    result: dict[str, Any] = {
        "buildId": build,
        "status": status,
        "startTime": started,
        "endTime": ended,
        "message": message,
        "imageReady": code == 0,
        "phases": [
            {
                "name": "customize",
                "log": "customization.log",
                "status": status,
                "startTime": started,
                "endTime": ended,
                "exitCode": code,
                "failedStep": None,
                "message": message,
            }
        ],
        "modelled": True,
    }
    result.update(run.outcome.result or {})
    container.get_blob_client(prefix + "result.json").upload_blob(json.dumps(result).encode(), overwrite=True)
