"""The steps of one build (DESIGN.md): each does one short round of work and says where it stands.

A step takes the Run (build, status, template snapshot, Azure and Kubernetes clients), edits the
status, and returns a StepResult: done, waiting (come back after `requeue` seconds) or failed (with
an actionable message). None blocks on Azure.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from azure.core.exceptions import ResourceNotFoundError

from kaib.azure import compute, resourcegroups, storage
from kaib.azure import spec as t
from kaib.azure.arm import Arm, VirtualMachines, to_rest
from kaib.azure.async_step import action
from kaib.azure.compute import Access
from kaib.azure.containerinstance import EnvVar, container_state
from kaib.azure.errors import classify
from kaib.azure.naming import owned_by, staging_group_name, storage_account_name
from kaib.azure.network import private_ip
from kaib.azure.planner import Plan, PlanFacts, os_type, plan
from kaib.azure.spec import ResourceSpec, parse_resource_id, resource_id
from kaib.controller import blobs, waves
from kaib.controller.credentials import new_credentials, secret_name
from kaib.controller.kube import TEMPLATES
from kaib.controller.run_context import Run
from kaib.packer.model import ConnectionFacts, OsType, RenderError, RenderOptions
from kaib.packer.render import render_build

log = logging.getLogger(__name__)

PROVIDERS = ("Microsoft.Compute", "Microsoft.Network", "Microsoft.Storage", "Microsoft.ContainerInstance")
IDENTITY_API = "2023-01-31"


@dataclass(frozen=True)
class StepResult:
    state: str  # done | waiting | failed
    requeue: float = 0.0
    message: str = ""
    reason: str = ""

    @classmethod
    def done(cls) -> StepResult:
        return cls("done")

    @classmethod
    def wait(cls, seconds: float, message: str = "") -> StepResult:
        return cls("waiting", seconds, message)

    @classmethod
    def fail(cls, message: str, reason: str = "Failed") -> StepResult:
        return cls("failed", 0.0, message, reason)


def azure_problem(run: Run, exc: Exception, what: str) -> StepResult:
    failure = classify(exc)
    if failure.retryable:
        return StepResult.wait(failure.retry_after or run.settings.error_requeue, failure.describe(what))
    return StepResult.fail(failure.describe(what), reason=failure.code)


# -- preflight ------------------------------------------------------------------------------------


async def preflight(run: Run) -> StepResult:
    """Fail fast, before creating anything: providers, source, subnets, identities, targets."""
    clients = run.clients
    spec = run.spec
    try:
        for namespace in PROVIDERS:
            provider = to_rest(await clients.resource.providers.get(namespace)) or {}
            state = provider.get("registrationState") or (provider.get("properties") or {}).get(
                "registrationState"
            )
            if state != "Registered":
                return StepResult.fail(
                    f"resource provider {namespace} is not registered in subscription "
                    f"{clients.subscription_id} "
                    f"(MissingSubscriptionRegistration); register it: az provider register -n {namespace}",
                    reason="MissingSubscriptionRegistration",
                )
        problem = await _check_subnets(run)
        if problem:
            return StepResult.fail(problem, reason="InvalidSubnet")
        exact = await _resolve_source(run)
        if exact is None:
            return StepResult.fail(
                f"source image not found: {json.dumps(spec.get('source'))}", "SourceNotFound"
            )
        run.status.data["exactSourceVersion"] = exact
        for identity in _identities(spec):
            try:
                await clients.resource.resources.get_by_id(identity, api_version=IDENTITY_API)
            except ResourceNotFoundError:
                return StepResult.fail(
                    f"user-assigned identity {identity} does not exist; create it or fix the template",
                    reason="IdentityNotFound",
                )
        problem = await _check_targets(run)
        if problem:
            return StepResult.fail(problem, reason="DistributionTargetNotFound")
    except Exception as exc:
        return azure_problem(run, exc, "preflight")
    return StepResult.done()


def _identities(spec: Mapping[str, Any]) -> list[str]:
    ids = list(((spec.get("identity") or {}).get("userAssignedIdentities") or {}).keys())
    return ids + list((spec.get("vmProfile") or {}).get("userAssignedIdentities") or [])


def _vnet_of(subnet_id: str) -> str:
    return subnet_id.lower().rsplit("/subnets/", 1)[0]


async def _check_subnets(run: Run) -> str | None:
    vnet_config = (run.spec.get("vmProfile") or {}).get("vnetConfig") or {}
    build_subnet = vnet_config.get("subnetId")
    if not build_subnet:
        return None
    aci_subnet = vnet_config.get("containerInstanceSubnetId")
    if aci_subnet and _vnet_of(build_subnet) != _vnet_of(aci_subnet):
        return "vmProfile.vnetConfig: subnetId and containerInstanceSubnetId must be in one virtual network"
    subnets: dict[str, dict[str, Any]] = {}
    for sid in filter(None, (build_subnet, aci_subnet)):
        parts = parse_resource_id(sid)
        vnet = parts.get("parents", "")
        ops = run.engine.azure.for_subscription(parts.get("subscription")).network.subnets
        try:
            subnets[sid] = to_rest(await ops.get(parts["resourceGroup"], vnet, parts["name"])) or {}
        except ResourceNotFoundError:
            return f"subnet {sid} does not exist"
    if aci_subnet:
        delegations = (subnets[aci_subnet].get("properties") or {}).get("delegations") or []
        services = {(d.get("properties") or {}).get("serviceName") for d in delegations}
        if "Microsoft.ContainerInstance/containerGroups" not in services:
            return (
                f"subnet {aci_subnet} is not delegated to Microsoft.ContainerInstance/containerGroups; "
                "add the delegation (az network vnet subnet update "
                "--delegations Microsoft.ContainerInstance/containerGroups)"
            )
    else:
        props = subnets[build_subnet].get("properties") or {}
        if props.get("privateLinkServiceNetworkPolicies", "Disabled") != "Disabled":
            return (
                f"subnet {build_subnet} needs privateLinkServiceNetworkPolicies Disabled for the proxy "
                "(az network vnet subnet update --disable-private-link-service-network-policies true)"
            )
    return None


def _version_key(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in v.split("."))
    except ValueError:
        return (-1,)


async def _names(result: Any) -> list[str]:
    if hasattr(result, "__aiter__"):
        return [str((to_rest(item) or {}).get("name")) async for item in result]
    items = await result if hasattr(result, "__await__") else result
    return [str((to_rest(item) or {}).get("name")) for item in items or []]


async def _resolve_source(run: Run) -> str | None:
    source = run.spec.get("source") or {}
    compute_ops = run.clients.compute
    if source.get("type") == "PlatformImage":
        version = str(source.get("version", "latest"))
        if version.lower() != "latest":
            return version
        versions = await _names(
            compute_ops.virtual_machine_images.list(
                run.location, source["publisher"], source["offer"], source["sku"]
            )
        )
        return max(versions, key=_version_key) if versions else None
    if source.get("type") == "ManagedImage":
        parts = parse_resource_id(source["imageId"])
        try:
            await compute_ops.images.get(parts["resourceGroup"], parts["name"])
        except ResourceNotFoundError:
            return None
        return str(source["imageId"])
    version_id = str(source.get("imageVersionId", ""))
    parts = parse_resource_id(version_id)
    gallery, image = [*parts.get("parents", "").split("/"), "", ""][:2]
    if parts.get("name", "").lower() == "latest":
        names = await _names(
            compute_ops.gallery_image_versions.list_by_gallery_image(parts["resourceGroup"], gallery, image)
        )
        if not names:
            return None
        return f"{version_id.rsplit('/', 1)[0]}/{max(names, key=_version_key)}"
    try:
        await compute_ops.gallery_image_versions.get(parts["resourceGroup"], gallery, image, parts["name"])
    except ResourceNotFoundError:
        return None
    return version_id


async def _check_targets(run: Run) -> str | None:
    for target in run.spec.get("distribute") or []:
        kind = target.get("type")
        if kind == "ManagedImage":
            parts = parse_resource_id(target["imageId"])
            clients = run.engine.azure.for_subscription(parts.get("subscription"))
            try:
                await clients.resource.resource_groups.get(parts["resourceGroup"])
            except ResourceNotFoundError:
                group = parts["resourceGroup"]
                return f"distribute {target['runOutputName']}: resource group {group} does not exist"
        elif kind == "SharedImage":
            parts = parse_resource_id(target["galleryImageId"])
            gallery, image = parts.get("parents", ""), parts.get("name", "")
            clients = run.engine.azure.for_subscription(parts.get("subscription"))
            try:
                await clients.compute.gallery_images.get(parts["resourceGroup"], gallery, image)
            except ResourceNotFoundError:
                return (
                    f"distribute {target['runOutputName']}: gallery image definition {gallery}/{image} "
                    "does not exist; create it first (az sig image-definition create)"
                )
    return None


# -- staging --------------------------------------------------------------------------------------


async def staging(run: Run) -> StepResult:
    """The template's staging group (created or adopted) and its storage account for logs."""
    kube = run.engine.kube
    template = await kube.get(TEMPLATES, run.namespace, run.template_name)
    tstatus = (template or {}).get("status") or {}
    if template is None and not run.status.data.get("stagingResourceGroup"):
        return StepResult.fail(
            f"ImageTemplate {run.template_name} no longer exists", reason="TemplateNotFound"
        )
    sub = run.subscription_id
    given = str(run.spec.get("stagingResourceGroup") or "")
    if tstatus.get("exactStagingResourceGroup"):
        group = parse_resource_id(str(tstatus["exactStagingResourceGroup"]))["resourceGroup"]
        ownership = str(tstatus.get("stagingResourceGroupOwnership") or "Created")
    elif given:
        group = parse_resource_id(given)["resourceGroup"]
        ownership = ""  # decided below: Adopted if it exists, Created if not
    else:
        assert template is not None
        group = staging_group_name(run.namespace, run.template_name, template["metadata"]["uid"])
        ownership = "Created"
    template_owner = type(run.owner)(run.namespace, run.template_name)
    managed = dict(run.spec.get("managedResourceTags") or {})
    arm = Arm(run.clients)
    try:
        if not ownership:
            existing = to_rest(await _get_group(run, group))
            if existing is None:
                ownership = "Created"
            else:
                problem = resourcegroups.adoption_problem(existing.get("tags"), template_owner)
                problem = problem or await _not_empty(run, group, template_owner)
                if problem:
                    return StepResult.fail(
                        f"staging resource group {group}: {problem}", reason="StagingGroupInvalid"
                    )
                ownership = "Adopted"
        rg = resourcegroups.staging_group(
            sub, group, run.location, template_owner, managed, ownership == "Adopted"
        )
        account = str(tstatus.get("storageAccount") or "") or storage_account_name(
            (template or {}).get("metadata", {}).get("uid", group)
        )
        specs = [
            [rg],
            [storage.storage_account(sub, group, account, run.location, template_owner.tags(managed))],
        ]
        result = await waves.ensure(run.status, specs, lambda _: arm, run.settings, record=False)
    except Exception as exc:
        return azure_problem(run, exc, f"staging resource group {group}")
    if result.state != "done":
        return StepResult(result.state, result.requeue, result.message, "Failed")
    rg_id = resource_id(sub, group, t.RESOURCE_GROUP, ())
    run.status.data["stagingResourceGroup"] = rg_id
    if template is not None and not tstatus.get("exactStagingResourceGroup"):
        await kube.patch_status(
            TEMPLATES,
            run.namespace,
            run.template_name,
            {
                "exactStagingResourceGroup": rg_id,
                "stagingResourceGroupOwnership": ownership,
                "storageAccount": account,
            },
        )
    try:
        store = await blobs.log_store(run.clients, group, account)
        await store.ensure_container()
    except Exception as exc:
        return azure_problem(run, exc, f"creating the {storage.LOGS_CONTAINER} container in {account}")
    run.status.data["logs"] = {
        "storageAccount": account,
        "container": storage.LOGS_CONTAINER,
        "customizationLog": store.blob_url(run.build_id, "customization.log"),
        "validationLog": store.blob_url(run.build_id, "validation.log"),
        "command": f"kaib logs {run.name} -n {run.namespace}",
    }
    return StepResult.done()


async def find_staging_group(run: Run) -> str | None:
    """The staging group id a started build uses, from the template (or its spec); None if unknown."""
    template = await run.engine.kube.get(TEMPLATES, run.namespace, run.template_name)
    tstatus = (template or {}).get("status") or {}
    if tstatus.get("exactStagingResourceGroup"):
        return str(tstatus["exactStagingResourceGroup"])
    given = str(run.spec.get("stagingResourceGroup") or "")
    if given:
        return given
    if template is None:
        return None
    group = staging_group_name(run.namespace, run.template_name, template["metadata"]["uid"])
    return resource_id(run.subscription_id, group, t.RESOURCE_GROUP, ())


async def _get_group(run: Run, group: str) -> Any:
    try:
        return await run.clients.resource.resource_groups.get(group)
    except ResourceNotFoundError:
        return None


async def _not_empty(run: Run, group: str, owner: Any) -> str | None:
    others = []
    async for item in run.clients.resource.resources.list_by_resource_group(group):
        body = to_rest(item) or {}
        if not owned_by(body.get("tags"), owner):
            others.append(str(body.get("name")))
    if others:
        return f"must be empty to be adopted, but holds {', '.join(sorted(others)[:5])}"
    return None


# -- network, build VM, builder ---------------------------------------------------------------------


async def access(run: Run) -> Access:
    """The build VM's login, from the build's Secret (created on first use)."""
    kube = run.engine.kube
    name = secret_name(run.name)
    data = await kube.read_secret(run.namespace, name)
    if data is None:
        await kube.create_secret(run.namespace, name, new_credentials(), owner=run.build)
        data = await kube.read_secret(run.namespace, name)
    assert data is not None
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
    secret = await run.engine.kube.read_secret(run.namespace, secret_name(run.name)) or {}
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
        parts = parse_resource_id(str(nic.get("id", "")))
        body = to_rest(
            await run.clients.network.network_interfaces.get(parts["resourceGroup"], parts["name"])
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
    if group is None:
        return StepResult.fail(
            "the builder container group disappeared during the build", reason="BuilderLost"
        )
    state = container_state(group)
    result_json = None
    logs = run.status.data.get("logs") or {}
    try:
        store = await run.log_store(str(logs.get("storageAccount")))
        result_json = await store.read_json(run.build_id, "result.json")
    except Exception as exc:  # logs are best effort: the exit code still decides
        log.info("cannot read result.json of %s: %s", run.build_id, exc)
        run.engine.log_stores.clear()  # perhaps a rotated key: read it again next time
    terminated = state.terminated and state.exit_code is not None
    return Progress(terminated, blobs.parse_result(result_json, state.exit_code if terminated else None))


def has_validators(spec: Mapping[str, Any]) -> bool:
    return bool(((spec.get("validate") or {}).get("inVMValidations")) or [])


def log_hint(run: Run, name: str) -> str:
    logs = run.status.data.get("logs") or {}
    url = logs.get("customizationLog" if name == "customization" else "validationLog", "")
    return f"see {name}.log: {url} (or: kaib logs {run.name} -n {run.namespace})"


# -- distribute -----------------------------------------------------------------------------------


async def generalize(run: Run) -> StepResult:
    """Deallocate then generalize the build VM, once."""
    ctx = run.ctx
    vm = ctx.spec(t.VM, ctx.names.build_vm, {}, "buildvm")
    vms = VirtualMachines(run.clients)
    try:
        codes = await vms.status_codes(vm)
    except Exception as exc:
        return azure_problem(run, exc, f"reading virtual machine {vm.name}")
    if "OSState/generalized" in codes:
        return StepResult.done()
    if "PowerState/deallocated" not in codes:
        saved = run.status.saved_operation(vm.id)
        outcome = await action(vms.deallocate(vm), vm, "deallocate", saved, run.settings)
        run.status.save_operation(vm.id, outcome.operation)
        if outcome.state == "failed":
            assert outcome.failure is not None
            return StepResult.fail(outcome.failure.describe(f"deallocating {vm.name}"), outcome.failure.code)
        if outcome.state == "waiting":
            return StepResult.wait(outcome.requeue_after or run.settings.requeue)
    outcome = await action(vms.generalize(vm), vm, "generalize", None, run.settings)
    if outcome.state == "failed":
        assert outcome.failure is not None
        return StepResult.fail(outcome.failure.describe(f"generalizing {vm.name}"), outcome.failure.code)
    if outcome.state == "waiting":
        return StepResult.wait(outcome.requeue_after or run.settings.requeue)
    return StepResult.done()


def artifact_tags(run: Run) -> dict[str, str]:
    # Not ownership tags: distributed images are the user's and must survive cleanup and the sweeper.
    return {"kaib.dev/built-by": f"{run.namespace}/{run.name}", "kaib.dev/template": run.template_name}


async def distribute(run: Run) -> StepResult:
    result = await generalize(run)
    if result.state != "done":
        return result
    ctx = run.ctx
    vm_id = ctx.id(t.VM, ctx.names.build_vm)
    outputs = {o.get("runOutputName"): dict(o) for o in run.status.data.get("runOutputs") or []}
    targets: list[tuple[dict[str, Any], ResourceSpec]] = []
    for target in run.spec.get("distribute") or []:
        name = str(target.get("runOutputName"))
        kind = target.get("type")
        if kind == "ManagedImage":
            targets.append((target, compute.managed_image(target, vm_id, artifact_tags(run))))
        elif kind == "SharedImage":
            version = await _gallery_version(run, target, outputs.get(name))
            if isinstance(version, StepResult):
                return version
            spec = compute.gallery_image_version(target, version, vm_id, run.location, artifact_tags(run))
            targets.append((target, spec))
        else:
            return StepResult.fail(
                f"distribute {name}: {kind} distribution is not supported by this kaib version yet; "
                "use ManagedImage or SharedImage",
                reason="UnsupportedDistribution",
            )
    pending = []
    for target, spec in targets:
        name = str(target["runOutputName"])
        if outputs.get(name, {}).get("provisioningState") == "Succeeded":
            continue
        outputs[name] = {"runOutputName": name, "artifactId": spec.id, "provisioningState": "Creating"}
        pending.append(spec)
    run.status.data["runOutputs"] = list(outputs.values())
    if not pending:
        return StepResult.done()
    result_waves = await waves.ensure(run.status, [pending], run.ops_for, run.settings, record=False)
    outcomes = result_waves.outcomes or {}
    for target, spec in targets:
        outcome = outcomes.get(spec.id)
        if outcome is not None and outcome.state == "done":
            outputs[str(target["runOutputName"])]["provisioningState"] = "Succeeded"
    run.status.data["runOutputs"] = list(outputs.values())
    if result_waves.state == "done":
        return StepResult.done()
    return StepResult(result_waves.state, result_waves.requeue, result_waves.message, "Failed")


async def _gallery_version(
    run: Run, target: Mapping[str, Any], recorded: Mapping[str, Any] | None
) -> str | StepResult:
    """The version to create: explicit, the source's (scheme Source), or the next one (Latest)."""
    if recorded and recorded.get("artifactId"):
        return str(recorded["artifactId"]).rsplit("/", 1)[-1]  # chosen once, kept across restarts
    image_id = str(target["galleryImageId"])
    if "/versions/" in image_id.lower():
        return image_id.rsplit("/", 1)[-1]
    versioning = target.get("versioning") or {"scheme": "Latest"}
    if versioning.get("scheme") == "Source":
        exact = str(run.status.data.get("exactSourceVersion") or "")
        version = exact.rsplit("/", 1)[-1]
        if len(version.split(".")) != 3:
            return StepResult.fail(
                f"versioning Source needs a source version x.y.z, got {version!r}", "InvalidVersion"
            )
        return version
    parts = parse_resource_id(image_id)
    gallery = parts.get("parents", "")
    clients = run.engine.azure.for_subscription(parts.get("subscription"))
    try:
        names = await _names(
            clients.compute.gallery_image_versions.list_by_gallery_image(
                parts["resourceGroup"], gallery, parts["name"]
            )
        )
    except Exception as exc:
        return azure_problem(run, exc, f"listing versions of {image_id}")
    return compute.next_version(names, int(versioning.get("major", -1)))


# -- cleanup --------------------------------------------------------------------------------------


async def cleanup(run: Run) -> StepResult:
    """Delete the build's resources in dependency order; the staging group and storage stay."""
    if not run.build_id or not run.staging_group:
        return StepResult.done()  # nothing was created
    p = await current_plan(run, names_only=True)
    result = await waves.delete(run.status, p.delete_waves, run.ops_for, run.settings)
    if result.state != "done":
        return StepResult.wait(result.requeue, result.message)
    await run.engine.kube.delete_secret(run.namespace, secret_name(run.name))
    return StepResult.done()


def kept_resources(run: Run) -> list[str]:
    return [
        str(r["id"])
        for r in run.status.data.get("resources") or []
        if r.get("state") in ("Created", "Creating")
    ]
