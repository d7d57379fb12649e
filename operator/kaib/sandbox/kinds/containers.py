"""Microsoft.ContainerInstance/containerGroups: provisioning, then a run through the hooks (modelled by
default), instance view with per-container state and exit code, logs; start, stop, restart."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from typing import TYPE_CHECKING, Any

from .. import addresses
from ..errors import ArmError
from ..hooks import ContainerRun, ContainerSpec, ModelledHooks, Outcome, RunSummary
from ..registry import ActionResult, Ref, TypeSpec
from .common import subnet_of, taken_ips
from .network import is_delegated_to_aci

if TYPE_CHECKING:
    from ..engine import Engine
    from ..store import Resource

CG = "Microsoft.ContainerInstance/containerGroups"
RUNS = "container_runs"  # engine.extensions key: group key -> (ContainerRun, task)


def _validate(engine: Engine, group: Resource, existing: Resource | None) -> None:
    p = group.props
    containers = p.get("containers") or []
    if not containers:
        raise ArmError(
            400, "ContainerGroupContainersEmpty", "The container group must have at least one container."
        )
    for c in containers:
        cp = c.get("properties") or {}
        if not c.get("name") or not cp.get("image"):
            raise ArmError(400, "InvalidContainerDefinition", "Each container needs a name and an image.")
        requests = (cp.get("resources") or {}).get("requests") or {}
        if not requests.get("cpu") or not requests.get("memoryInGB"):
            raise ArmError(
                400,
                "InvalidContainerResourceRequests",
                f"Container '{c['name']}' needs resources.requests.cpu and memoryInGB.",
            )
    if not p.get("osType"):
        raise ArmError(400, "InvalidOsType", "The container group's osType is required.")
    for subnet_ref in p.get("subnetIds") or []:
        subnet = engine.store.get(subnet_ref.get("id", ""))
        if subnet is not None and not is_delegated_to_aci(subnet):
            raise ArmError(
                400,
                "SubnetNotDelegated",
                f"The subnet '{subnet.id}' is not delegated to 'Microsoft.ContainerInstance/"
                "containerGroups'. Delegate the subnet to deploy a container group into it.",
            )
    ip = p.get("ipAddress") or {}
    if str(ip.get("type", "")).lower() == "private" and not p.get("subnetIds"):
        raise ArmError(400, "PrivateIPAddressNotSupported", "A private IP address needs subnetIds.")
    if existing is not None and engine.extensions.get(RUNS, {}).get(existing.key):
        _run, task = engine.extensions[RUNS][existing.key]
        if not task.done() and _spec_changed(existing, group):
            raise ArmError(
                409,
                "ContainerGroupUpdateNotAllowed",
                "Container group properties other than tags cannot be updated while it runs.",
            )


def _spec_changed(old: Resource, new: Resource) -> bool:
    return bool(_strip(old.props.get("containers")) != _strip(new.props.get("containers")))


def _strip(containers: Any) -> Any:
    out = []
    for c in containers or []:
        cp = dict(c.get("properties") or {})
        cp.pop("instanceView", None)
        cp["environmentVariables"] = [e.get("name") for e in cp.get("environmentVariables") or []]
        out.append((c.get("name"), cp.get("image"), str(cp.get("command")), str(cp["environmentVariables"])))
    return out


def _synthesize(engine: Engine, group: Resource, existing: Resource | None) -> None:
    secure: dict[str, dict[str, str]] = dict(existing.state.get("secure_env", {})) if existing else {}
    for c in group.props.get("containers") or []:
        cp = c.setdefault("properties", {})
        cp.pop("instanceView", None)
        env = cp.get("environmentVariables") or []
        mine = {}
        for e in env:
            if e.get("secureValue") is not None:
                mine[e["name"]] = str(e.pop("secureValue"))  # kept privately, never returned
        # An update that does not repeat a secure value (it cannot: GET never shows it) keeps it.
        secure[c["name"]] = {**secure.get(c["name"], {}), **mine}
    group.state["secure_env"] = secure
    group.props.setdefault("restartPolicy", "Always")
    group.props.setdefault("sku", "Standard")
    ip = group.props.get("ipAddress")
    subnets = group.props.get("subnetIds") or []
    if ip is not None and str(ip.get("type", "")).lower() == "private" and subnets:
        kept = existing.state.get("private_ip") if existing else None
        subnet = subnet_of(engine, subnets[0]["id"])
        prefixes = addresses.subnet_prefixes(subnet.props)
        if prefixes:
            taken = taken_ips(engine, subnet.id, group.key)
            address = (
                kept if kept and kept not in taken else addresses.allocate(prefixes[0], taken, subnet.id)
            )
            ip["ip"] = address
            group.state["private_ip"] = address
            group.state["private_ip_subnet"] = subnet.id


def _render(engine: Engine, group: Resource, body: dict[str, Any], listing: bool, expand: str) -> None:
    run = _run_of(engine, group)
    stopped = group.state.get("stopped", False)
    containers = []
    states = []
    for c in group.props.get("containers") or []:
        c = {**c, "properties": dict(c.get("properties") or {})}
        name = c["name"]
        if run is not None and name in run.exit_codes:
            code = run.exit_codes[name]
            current = {
                "state": "Terminated",
                "exitCode": code,
                "startTime": _iso(run.started.get(name)),
                "finishTime": _iso(run.finished_at.get(name)),
                "detailStatus": "Completed" if code == 0 else "Error",
            }
        elif run is not None and name in run.started and not stopped:
            current = {"state": "Running", "startTime": _iso(run.started[name]), "detailStatus": ""}
        elif stopped:
            current = {
                "state": "Terminated",
                "exitCode": run.exit_codes.get(name, 137) if run else 137,
                "detailStatus": "Killed",
            }
        else:
            current = {"state": "Waiting", "detailStatus": "ContainerCreating"}
        states.append(current)
        if not listing:
            c["properties"]["instanceView"] = {"restartCount": 0, "currentState": current, "events": []}
        containers.append(c)
    body["properties"]["containers"] = containers
    if listing:
        return
    if stopped:
        group_state = "Stopped"
    elif states and all(s["state"] == "Terminated" for s in states):
        group_state = "Succeeded" if all(s.get("exitCode") == 0 for s in states) else "Failed"
    elif any(s["state"] == "Running" for s in states):
        group_state = "Running"
    else:
        group_state = "Pending"
    body["properties"]["instanceView"] = {"state": group_state, "events": []}


def _run_of(engine: Engine, group: Resource) -> ContainerRun | RunSummary | None:
    """The live run, else the last finished one (kept in state, so it survives a restart)."""
    entry = engine.extensions.get(RUNS, {}).get(group.key)
    if entry is not None:
        run: ContainerRun = entry[0]
        return run
    saved = group.state.get("run")
    return RunSummary.from_json(saved) if saved else None


def _restore(engine: Engine, group: Resource) -> None:
    """After a restart of a persisted sandbox. A modelled run goes on as if the sandbox had never
    stopped: same outcome, same start, same end time (ACI's containers do not stop when ARM's front
    does). A group whose create was in flight runs now, as its create counts as done. A real run died
    with its sandbox: it ends as a failure, as on a lost host."""
    if group.state.get("run") or group.provisioning_state != "Succeeded" or group.state.get("stopped"):
        return
    if isinstance(engine.hooks, ModelledHooks):
        running = group.state.get("running")
        if running is None:
            _start_run(engine, group)
        else:
            outcome = Outcome(**running["outcome"])
            _launch(engine, group, outcome, float(running["endsAt"]) - time.time(), running["started"])
        return
    names = [str(c.get("name")) for c in group.props.get("containers") or []]
    now = time.time()
    message = "sandbox: the sandbox restarted while this container ran\n"
    summary = RunSummary({n: message for n in names}, {n: now for n in names}, {n: 1 for n in names},
                         {n: now for n in names})  # fmt: skip
    group.state.pop("running", None)
    group.state["run"] = summary.to_json()


def _start_run(engine: Engine, group: Resource) -> None:
    outcome = engine.control.outcome_for(group.name)
    seconds = outcome.seconds * engine.latency.scale if outcome.seconds is not None else None
    _launch(engine, group, outcome, seconds if seconds is not None else engine.latency.seconds(CG, "run"))


def _launch(
    engine: Engine, group: Resource, outcome: Outcome, seconds: float, started: float | None = None
) -> None:
    """Run the group's containers for `seconds` more; `started`: when the run began (a resumed run).
    The run's outcome, start and end are saved in the group's state until it ends, so a persisted
    sandbox that restarts meanwhile resumes it (`_restore`)."""
    runs: dict[str, Any] = engine.extensions.setdefault(RUNS, {})
    old = runs.pop(group.key, None)
    if old is not None:
        old[1].cancel()
    secure = group.state.get("secure_env", {})
    specs = []
    for c in group.props.get("containers") or []:
        cp = c.get("properties") or {}
        env = {
            e["name"]: str(e.get("value", "")) for e in cp.get("environmentVariables") or [] if "name" in e
        }
        env.update(secure.get(c["name"], {}))
        specs.append(ContainerSpec(c["name"], cp.get("image", ""), list(cp.get("command") or []), env))
    seconds = max(0.0, seconds)
    run = ContainerRun(
        group=engine.view(group),
        containers=specs,
        private_ip=group.state.get("private_ip"),
        subnet_ids=[s.get("id", "") for s in group.props.get("subnetIds") or []],
        outcome=outcome,
        run_seconds=seconds,
    )
    now = time.time()
    if started is not None:
        run.started.update({c.name: started for c in specs})  # the hook keeps them (setdefault)
    group.state["stopped"] = False
    group.state.pop("run", None)
    group.state["running"] = {
        "outcome": dataclasses.asdict(outcome),
        "started": started if started is not None else now,
        "endsAt": now + seconds,
    }

    async def execute() -> None:
        try:
            await engine.hooks.run_container_group(run)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            for c in run.containers:
                if c.name not in run.exit_codes:
                    run.log(c.name, f"sandbox: the container could not run: {exc}\n")
                    run.finished(c.name, 1)
        current = engine.store.get(group.id)
        if current is not None:
            current.state.pop("running", None)
            current.state["run"] = run.summary().to_json()

    runs[group.key] = (run, engine.ops.spawn(execute()))


async def _ready(engine: Engine, group: Resource) -> None:
    # A new group runs; an update (tags, say) of one that ran does not run it again unless its
    # images changed, as in ACI.
    entry = engine.extensions.get(RUNS, {}).get(group.key)
    never_ran = entry is None and not group.state.get("run")
    if never_ran or (entry is not None and _spec_changed_since(entry[0], group)):
        _start_run(engine, group)


def _spec_changed_since(run: ContainerRun, group: Resource) -> bool:
    return [c.image for c in run.containers] != [
        (c.get("properties") or {}).get("image") for c in group.props.get("containers") or []
    ]


async def _deleted(engine: Engine, group: Resource) -> None:
    entry = engine.extensions.get(RUNS, {}).pop(group.key, None)
    if entry is not None:
        entry[1].cancel()
    await engine.hooks.container_group_deleted(engine.view(group))


def _quota(engine: Engine, group: Resource) -> list[tuple[str, str, int]]:
    cpu = sum(
        float((((c.get("properties") or {}).get("resources") or {}).get("requests") or {}).get("cpu", 1))
        for c in group.props.get("containers") or []
    )
    return [("aci", "ContainerGroups", 1), ("aci", "StandardCores", math.ceil(cpu))]


def _logs(engine: Engine, group: Resource, body: dict[str, Any], query: dict[str, str]) -> ActionResult:
    container = query.get("_rest", "").split("/")[1] if "/" in query.get("_rest", "") else ""
    names = [c.get("name") for c in group.props.get("containers") or []]
    if container not in names:
        raise ArmError(
            404, "ContainerNotFound", f"The container '{container}' was not found in group '{group.name}'."
        )
    run = _run_of(engine, group)
    text = run.log_text(container) if run else ""
    tail = query.get("tail")
    if tail and tail.isdigit():
        lines = text.splitlines(keepends=True)
        text = "".join(lines[-int(tail) :]) if int(tail) else ""
    return ActionResult(200, {"content": text})


def _stop(engine: Engine, group: Resource, body: dict[str, Any], query: dict[str, str]) -> ActionResult:
    entry = engine.extensions.get(RUNS, {}).get(group.key)
    if entry is not None:
        entry[1].cancel()
    group.state.pop("running", None)
    group.state["stopped"] = True
    return ActionResult(204, None)


def _start(engine: Engine, group: Resource, body: dict[str, Any], query: dict[str, str]) -> ActionResult:
    async def work() -> Any:
        _start_run(engine, group)
        return None

    return ActionResult(work=work, latency_op="put")


SPECS = [
    TypeSpec(
        CG,
        initial_state="Pending",
        validate=_validate,
        synthesize=_synthesize,
        render=_render,
        on_ready=_ready,
        on_delete=_deleted,
        on_restore=_restore,
        quota=_quota,
        refs=(Ref("properties.subnetIds[].id"),),
        actions={
            "containers/*/logs": ("GET", _logs),
            "stop": ("POST", _stop),
            "start": ("POST", _start),
            "restart": ("POST", _start),
        },
    ),
]


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + "Z"
