"""Staging: the template's staging resource group (created, or an empty one adopted after checking
its tags) and its storage account with the `packerlogs` container.
"""

from __future__ import annotations

from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from kaib.azure import resourcegroups, storage
from kaib.azure import spec as t
from kaib.azure.arm import Arm, to_rest
from kaib.azure.naming import owned_by, staging_group_name, storage_account_name
from kaib.azure.spec import parse_resource_id, resource_id
from kaib.controller import waves
from kaib.controller.kube import TEMPLATES
from kaib.controller.run_context import Run
from kaib.controller.stepresult import StepResult, azure_problem


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
        store = await run.log_store(account)  # cached: the builder step reuses the key
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
