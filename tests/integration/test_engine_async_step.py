"""The async step against the sandbox with the real SDK: tokens saved, resumed by new clients, bad tokens."""

from __future__ import annotations

import asyncio
import time

from kaib.azure import async_step
from kaib.azure import spec as t
from kaib.azure.arm import Arm
from kaib.azure.async_step import SavedOperation, StepSettings
from kaib.azure.clients import AzureClients
from kaib.azure.spec import ResourceSpec
from tests.fixtures.sandbox import FAST_SCALE, SandboxHandle

NO_WAIT = StepSettings(wait=0.0, requeue=0.1, error_requeue=0.1)


def vnet(sandbox: SandboxHandle, group: str, name: str) -> ResourceSpec:
    body = {"location": "westus", "properties": {"addressSpace": {"addressPrefixes": ["10.9.0.0/16"]}}}
    return ResourceSpec(t.VNET, sandbox.subscription_id, group, name, body)


def test_put_and_delete_resume_from_saved_tokens_with_new_clients(sandbox: SandboxHandle) -> None:
    from azure.mgmt.resource.resources import ResourceManagementClient

    sandbox.client(ResourceManagementClient).resource_groups.create_or_update(
        "async-step", {"location": "westus"}
    )
    sandbox.set_latency(scale=FAST_SCALE * 50)  # a VNet PUT takes 0.4 s: not done when we stop waiting
    spec = vnet(sandbox, "async-step", "resumed")

    async def first_operator() -> SavedOperation:
        clients = AzureClients.from_env(sandbox.env)
        try:
            outcome = await async_step.reconcile(Arm(clients.for_subscription()), spec, None, NO_WAIT)
        finally:
            await clients.close()
        assert outcome.state == "waiting" and outcome.operation is not None
        assert outcome.requeue_after is not None
        time.sleep(outcome.requeue_after)  # come back when Azure said to (as the controller does)
        return outcome.operation

    async def second_operator(saved: SavedOperation | None, delete: bool = False) -> async_step.Outcome:
        clients = AzureClients.from_env(sandbox.env)
        settings = StepSettings(wait=10.0, requeue=0.1)
        try:
            arm = Arm(clients.for_subscription())
            if delete:
                return await async_step.delete(arm, spec, saved, settings)
            return await async_step.reconcile(arm, spec, saved, settings)
        finally:
            await clients.close()

    try:
        saved = asyncio.run(first_operator())
        before = len(sandbox.requests(limit=20000))
        done = asyncio.run(second_operator(saved))
        assert done.state == "done" and done.resource is not None
        assert done.resource["properties"]["provisioningState"] == "Succeeded"
        after = sandbox.requests(limit=20000)[before:]
        assert not [r for r in after if r["method"] == "PUT"], "resuming must not PUT again"

        # a token that no longer decodes is dropped; Azure (GET) is asked instead
        garbage = SavedOperation(spec.id, "PUT", "not-a-token", saved.started_at)
        again = asyncio.run(second_operator(garbage))
        assert again.state == "done"

        async def start_delete() -> SavedOperation:
            clients = AzureClients.from_env(sandbox.env)
            try:
                outcome = await async_step.delete(Arm(clients.for_subscription()), spec, None, NO_WAIT)
            finally:
                await clients.close()
            assert outcome.state == "waiting" and outcome.operation is not None
            assert outcome.requeue_after is not None
            time.sleep(outcome.requeue_after)
            return outcome.operation

        deleting = asyncio.run(start_delete())
        assert deleting.method == "DELETE"
        gone = asyncio.run(second_operator(deleting, delete=True))
        assert gone.state == "done"
        ids = {r["id"].lower() for r in sandbox.inventory()}
        assert spec.id.lower() not in ids
    finally:
        sandbox.set_latency(scale=FAST_SCALE)


def test_tokens_saved_by_the_typed_network_client_resume_by_id(sandbox: SandboxHandle) -> None:
    """An operator upgraded mid-operation: kaib saved network tokens from NetworkManagementClient before
    it went through the generic resources client by id; those tokens still finish the PUT and DELETE."""
    from azure.mgmt.network import NetworkManagementClient
    from azure.mgmt.resource.resources import ResourceManagementClient

    sandbox.client(ResourceManagementClient).resource_groups.create_or_update(
        "upgrade", {"location": "westus"}
    )
    sandbox.set_latency(scale=FAST_SCALE * 50)  # a VNet PUT takes 0.4 s: still running when resumed
    spec = vnet(sandbox, "upgrade", "typed")
    network = sandbox.client(NetworkManagementClient)

    def resume(saved: SavedOperation) -> async_step.Outcome:
        async def scenario() -> async_step.Outcome:
            clients = AzureClients.from_env(sandbox.env)
            try:
                arm = Arm(clients.for_subscription())
                settings = StepSettings(wait=10.0, requeue=0.1)
                if saved.method == "DELETE":
                    return await async_step.delete(arm, spec, saved, settings)
                return await async_step.reconcile(arm, spec, saved, settings)
            finally:
                await clients.close()

        before = len(sandbox.requests(limit=20000))
        outcome = asyncio.run(scenario())
        after = sandbox.requests(limit=20000)[before:]
        assert not [r for r in after if r["method"] in ("PUT", "DELETE")], "resuming must not send again"
        assert [r for r in after if "/operations/" in r["path"]], "the saved operation is polled"
        return outcome

    try:
        put = network.virtual_networks.begin_create_or_update("upgrade", "typed", dict(spec.body))
        assert not put.done()
        done = resume(SavedOperation(spec.id, "PUT", put.continuation_token(), "2026-01-01T00:00:00Z"))
        assert done.state == "done" and done.resource is not None
        assert done.resource["properties"]["provisioningState"] == "Succeeded"

        delete = network.virtual_networks.begin_delete("upgrade", "typed")
        assert not delete.done()
        gone = resume(SavedOperation(spec.id, "DELETE", delete.continuation_token(), "2026-01-01T00:00:00Z"))
        assert gone.state == "done"
        assert spec.id.lower() not in {r["id"].lower() for r in sandbox.inventory()}
    finally:
        sandbox.set_latency(scale=FAST_SCALE)
