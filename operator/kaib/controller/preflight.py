"""Preflight: fail fast, before creating anything, with a message that says what to fix.

Providers registered, quota for the build's VMs and builder, the user's subnets (existence, one VNet, ACI
delegation, private link policies), the source image (resolving `latest`), what optimize.vmBoot
cannot apply to, identities, distribution targets (a VHD `uri`: its storage account and container).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import partial
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from kaib.azure import quota
from kaib.azure.arm import Arm, list_names, to_rest
from kaib.azure.clients import ServiceClients
from kaib.azure.compute import version_key
from kaib.azure.spec import SUBNET, ResourceSpec, parse_resource_id
from kaib.controller import optimize, steps, vhd
from kaib.controller.run_context import Run
from kaib.controller.stepresult import StepResult, azure_problem

PROVIDERS = ("Microsoft.Compute", "Microsoft.Network", "Microsoft.Storage", "Microsoft.ContainerInstance")
IDENTITY_API = "2023-01-31"


async def preflight(run: Run) -> StepResult:
    """Fail fast, before creating anything: providers, source, subnets, identities, targets."""
    clients = run.clients
    spec = run.spec
    try:
        for namespace in PROVIDERS:
            provider = await run.engine.shared_reads.get(
                ("provider", clients.subscription_id, namespace), partial(_provider, clients, namespace)
            )
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
        problem = await _check_quota(run)
        if problem:
            return StepResult.fail(problem, reason="QuotaExceeded")
        problem = await _check_subnets(run)
        if problem:
            return StepResult.fail(problem, reason="InvalidSubnet")
        exact = await _resolve_source(run)
        if exact is None:
            return StepResult.fail(
                f"source image not found: {json.dumps(spec.get('source'))}", "SourceNotFound"
            )
        run.status.data["exactSourceVersion"] = exact
        if optimize.enabled(spec):
            problem = optimize.unsupported(spec, await optimize.source_architecture(run))
            if problem:
                return StepResult.fail(problem, reason="OptimizationNotSupported")
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
        for index, target in enumerate(spec.get("distribute") or []):
            if target.get("type") == "VHD":
                checked = await vhd.check_destination(run, index, target)
                if checked is not None:
                    return checked
    except Exception as exc:
        return azure_problem(run, exc, "preflight")
    return StepResult.done()


async def _provider(clients: ServiceClients, namespace: str) -> dict[str, Any]:
    return to_rest(await clients.resource.providers.get(namespace)) or {}


async def _check_quota(run: Run) -> str | None:
    """The VMs (build, and the subnetId-only proxy) and the builder group against the region's quotas."""
    planned = (await steps.current_plan(run, names_only=True)).created
    vms: list[str] = []
    containers: list[str] = []
    wanted = quota.needs(quota.vm_sizes(planned))
    shared = run.engine.shared_reads
    subscription = run.clients.subscription_id
    if wanted:
        usages = await shared.get(
            ("compute-usages", subscription, run.location),
            lambda: quota.compute_usages(run.clients, run.location),
        )
        vms = quota.shortfalls(wanted, usages, run.location)
    wanted = quota.aci_needs(planned)
    if wanted:
        usages = await shared.get(
            ("aci-usages", subscription, run.location), lambda: quota.aci_usages(run.clients, run.location)
        )
        containers = quota.shortfalls(wanted, usages, run.location)
    if not vms and not containers:
        return None
    advice = quota.advice(run.location, bool(vms), bool(containers))
    return f"{'; '.join(vms + containers)} (QuotaExceeded); {advice}"


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
        clients = run.engine.azure.for_subscription(parts.get("subscription"))
        # A spec from the id's parts: the user's spelling never goes into the URL as is.
        subnet = ResourceSpec(
            SUBNET,
            clients.subscription_id,
            parts["resourceGroup"],
            parts["name"],
            parents=(parts.get("parents", ""),),
        )
        got = await Arm(clients).get(subnet)
        if got is None:
            return f"subnet {sid} does not exist"
        subnets[sid] = got
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


async def _resolve_source(run: Run) -> str | None:
    source = run.spec.get("source") or {}
    compute_ops = run.clients.compute
    if source.get("type") == "PlatformImage":
        version = str(source.get("version", "latest"))
        if version.lower() != "latest":
            return version
        versions = await list_names(
            compute_ops.virtual_machine_images.list(
                run.location, source["publisher"], source["offer"], source["sku"]
            )
        )
        return max(versions, key=version_key) if versions else None
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
        names = await list_names(
            compute_ops.gallery_image_versions.list_by_gallery_image(parts["resourceGroup"], gallery, image)
        )
        if not names:
            return None
        return f"{version_id.rsplit('/', 1)[0]}/{max(names, key=version_key)}"
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
            image_id = str(target["galleryImageId"])
            if "/versions/" in image_id.lower():  # an explicit version: its image definition must exist
                image_id = image_id[: image_id.lower().index("/versions/")]
            parts = parse_resource_id(image_id)
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
