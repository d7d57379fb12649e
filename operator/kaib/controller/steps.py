"""The build VM, network and builder steps, following the builder, and cleanup (DESIGN.md 3-6, 8).

A step takes the Run (build, status, template snapshot, Azure and Kubernetes clients), edits the
status, and returns a StepResult: done, waiting (come back after `requeue` seconds) or failed (with
an actionable message). None blocks on Azure. Preflight, staging and distribution have modules of
their own.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from kaib.azure import compute, storage
from kaib.azure import spec as t
from kaib.azure.arm import NETWORK_API_VERSION, Arm, to_rest
from kaib.azure.compute import Access
from kaib.azure.containerinstance import EnvVar, container_state
from kaib.azure.network import private_ip
from kaib.azure.planner import Plan, PlanFacts, os_type, plan
from kaib.controller import blobs, vhd, waves
from kaib.controller.credentials import new_credentials, secret_name
from kaib.controller.run_context import Run
from kaib.controller.stepresult import StepResult, azure_problem
from kaib.packer.model import ConnectionFacts, OsType, RenderError, RenderOptions
from kaib.packer.render import render_build

log = logging.getLogger(__name__)


# -- network, build VM, builder ---------------------------------------------------------------------


async def access_secret(run: Run) -> dict[str, str]:
    """The build's login Secret: created on first use, read once per operator process after that
    (Engine.access_secrets); a restarted operator reads it back, so the VM and the builder agree."""
    uid = str(run.build["metadata"]["uid"])
    cached = run.engine.access_secrets.get(uid)
    if cached is not None:
        return cached
    kube = run.engine.kube
    name = secret_name(run.name)
    data = await kube.read_secret(run.namespace, name)
    if data is None:
        await kube.create_secret(run.namespace, name, new_credentials(), owner=run.build)
        data = await kube.read_secret(run.namespace, name)
    assert data is not None
    run.engine.access_secrets[uid] = data
    return data


async def access(run: Run) -> Access:
    """The build VM's login, from the build's Secret."""
    data = await access_secret(run)
    return Access(
        os_type(run.spec),
        ssh_public_key=data.get("ssh-publickey", ""),
        admin_password=data.get("password", ""),
    )


async def current_plan(run: Run, env: tuple[EnvVar, ...] = (), names_only: bool = False) -> Plan:
    """The plan for this build; `names_only` when only names matter (cleanup): no Secret is made."""
    source = run.spec.get("source") or {}
    exact = str(run.status.data.get("exactSourceVersion") or "") or None
    facts = PlanFacts(
        ctx=run.ctx,
        access=Access(os_type(run.spec)) if names_only else await access(run),
        image=compute.image_reference(source, exact),
        builder_image=run.engine.settings.builder_image,
        builder_env=env,
        builder_command=run.engine.settings.builder_command,
    )
    return plan(run.spec, facts)


async def ensure_step(run: Run, name: str) -> StepResult:
    step = (await current_plan(run)).step(name)
    result = await waves.ensure(run.status, step.waves, run.ops_for, run.settings)
    return StepResult(
        result.state, result.requeue, result.message, "Failed" if result.state == "failed" else ""
    )


async def network(run: Run) -> StepResult:
    return await ensure_step(run, "network")


async def buildvm(run: Run) -> StepResult:
    return await ensure_step(run, "buildvm")


def timeout_minutes(spec: Mapping[str, Any]) -> int:
    return int(spec.get("buildTimeoutInMinutes") or 0) or 240


async def builder(run: Run) -> StepResult:
    """The container group, with where to connect and where to log as (secure) environment values."""
    try:
        return await _builder(run)
    except Exception as exc:  # a throttled or failed read: classified, with Azure's Retry-After
        return azure_problem(run, exc, "starting the builder")


async def _builder(run: Run) -> StepResult:
    p = await current_plan(run)
    ctx = run.ctx
    arm = Arm(run.clients)
    if p.via_proxy:
        target = await arm.get(ctx.spec(t.PRIVATE_ENDPOINT, ctx.names.private_endpoint, {}, "network"))
        host = await _endpoint_ip(run, target)
    else:
        host = private_ip(await arm.get(ctx.spec(t.NIC, ctx.names.build_nic, {}, "buildvm")))
    if not host:
        return StepResult.wait(run.settings.requeue, "waiting for the build VM's private address")
    logs = run.status.data.get("logs") or {}
    store = await run.log_store(str(logs.get("storageAccount")))
    secret = await access_secret(run)
    acc = await access(run)
    # The operator renders the Packer plan; the agent only runs it (DESIGN.md step 6).
    os_kind = cast(OsType, acc.os_type)
    facts = ConnectionFacts(os_kind, host, acc.admin_user, run.build_id, p.communicator_port)
    options = RenderOptions(tolerate_missing_waagent=not run.engine.azure.settings.is_azure)
    try:
        rendered = render_build(run.spec, facts, options)
    except RenderError as exc:
        return StepResult.fail(f"cannot render the Packer templates: {exc}", reason="RenderFailed")
    plan_blob = f"{run.build_id}/plan.json"
    try:
        await store.write_text(plan_blob, json.dumps(rendered.to_plan()))
    except Exception as exc:
        return azure_problem(run, exc, "writing the build plan to the staging storage account")
    hours = timeout_minutes(run.spec) // 60 + 2
    sas = store.sas_token(hours)
    # Names of the builder agent (kaib.builder.agent); KAIB_LOG_CONTAINER_URL is the sandbox's modelled run.
    env = (
        EnvVar("KAIB_BUILD_ID", run.build_id),
        EnvVar("KAIB_PLAN_BLOB", plan_blob),
        EnvVar("KAIB_LOG_CONTAINER", storage.LOGS_CONTAINER),
        EnvVar("KAIB_LOG_PREFIX", run.build_id),
        EnvVar("KAIB_STORAGE_ACCOUNT_URL", store.endpoint.rstrip("/")),
        EnvVar("KAIB_STORAGE_SAS_TOKEN", sas, secure=True),
        EnvVar("KAIB_LOG_CONTAINER_URL", f"{store.container_url()}?{sas}", secure=True),
        EnvVar("KAIB_BUILD_VM_HOST", host),
        EnvVar("KAIB_BUILD_VM_PORT", str(p.communicator_port)),
        EnvVar("KAIB_BUILD_VM_USERNAME", acc.admin_user),
        EnvVar(
            "KAIB_SSH_PRIVATE_KEY" if acc.os_type == "Linux" else "KAIB_WINRM_PASSWORD",
            _login(acc, secret),
            secure=True,
        ),
    )
    p = await current_plan(run, env)
    result = await waves.ensure(run.status, p.step("builder").waves, run.ops_for, run.settings)
    return StepResult(
        result.state, result.requeue, result.message, "Failed" if result.state == "failed" else ""
    )


def _login(acc: Access, secret: Mapping[str, str]) -> str:
    return secret.get("ssh-privatekey", "") if acc.os_type == "Linux" else secret.get("password", "")


async def _endpoint_ip(run: Run, endpoint: dict[str, Any] | None) -> str | None:
    props = (endpoint or {}).get("properties") or {}
    for config in props.get("customDnsConfigs") or []:
        for ip in config.get("ipAddresses") or []:
            return str(ip)
    for nic in props.get("networkInterfaces") or []:
        body = to_rest(
            await run.clients.resource.resources.get_by_id(
                str(nic.get("id", "")), api_version=NETWORK_API_VERSION
            )
        )
        ip = private_ip(body)
        if ip:
            return ip
    return None


# -- customize and validate: follow the container group --------------------------------------------


@dataclass(frozen=True)
class Progress:
    finished: bool
    result: blobs.BuildResult


async def follow(run: Run) -> Progress | StepResult:
    """Read the container's state and result.json; never waits for them."""
    ctx = run.ctx
    spec = ctx.spec(t.CONTAINER_GROUP, ctx.names.builder, {}, "builder")
    try:
        group = await Arm(run.clients).get(spec)
    except Exception as exc:
        return azure_problem(run, exc, "reading the builder container group")
    result_json = None
    logs = run.status.data.get("logs") or {}
    try:
        store = await run.log_store(str(logs.get("storageAccount")))
        result_json = await store.read_json(run.build_id, "result.json")
    except Exception as exc:  # logs are best effort: the exit code still decides
        log.info("cannot read result.json of %s: %s", run.build_id, exc)
        run.engine.log_stores.clear()  # perhaps a rotated key: read it again next time
    if group is None:
        # Gone already (e.g. cleanup began in a round whose status write was lost): the builder's
        # result.json still says how the run ended.
        final = blobs.parse_result(result_json, None)
        if final.status in ("Succeeded", "Failed"):
            return Progress(True, final)
        return StepResult.fail(
            "the builder container group disappeared during the build", reason="BuilderLost"
        )
    state = container_state(group)
    terminated = state.terminated and state.exit_code is not None
    return Progress(terminated, blobs.parse_result(result_json, state.exit_code if terminated else None))


def has_validators(spec: Mapping[str, Any]) -> bool:
    return bool(((spec.get("validate") or {}).get("inVMValidations")) or [])


def log_hint(run: Run, name: str) -> str:
    logs = run.status.data.get("logs") or {}
    url = logs.get("customizationLog" if name == "customization" else "validationLog", "")
    return f"see {name}.log: {url} (or: kaib logs {run.name} -n {run.namespace})"


# -- cleanup --------------------------------------------------------------------------------------


async def cleanup(run: Run) -> StepResult:
    """Delete the build's resources in dependency order; the staging group and storage stay."""
    if not run.build_id or not run.staging_group:
        return StepResult.done()  # nothing was created
    exported = await vhd.before_cleanup(run)  # an exported OS disk cannot be deleted
    if exported.state != "done":
        return exported
    p = await current_plan(run, names_only=True)
    result = await waves.delete(run.status, p.delete_waves, run.ops_for, run.settings)
    if result.state != "done":
        return StepResult.wait(result.requeue, result.message)
    await run.engine.kube.delete_secret(run.namespace, secret_name(run.name))
    run.engine.access_secrets.pop(str(run.build["metadata"]["uid"]), None)
    return StepResult.done()


def kept_resources(run: Run) -> list[str]:
    return [
        str(r["id"])
        for r in run.status.data.get("resources") or []
        if r.get("state") in ("Created", "Creating")
    ]
