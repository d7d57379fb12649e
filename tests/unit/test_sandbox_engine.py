"""The sandbox's ARM engine and its parts, in memory: no HTTP, no Azurite."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kaib.sandbox import addresses, ids
from kaib.sandbox.control import Bucket, Control, FaultRule
from kaib.sandbox.engine import Engine
from kaib.sandbox.errors import ArmError
from kaib.sandbox.kinds import catalog, registry
from kaib.sandbox.latency import LatencyModel
from kaib.sandbox.registry import values_at

SUB = "5a4d1e2c-0b6f-4c7a-9d3e-8f1a2b3c4d5e"
RG = f"/subscriptions/{SUB}/resourceGroups/rg"
VNET = f"{RG}/providers/Microsoft.Network/virtualNetworks/vnet"


def make_engine(scale: float = 0.0) -> Engine:
    engine = Engine(registry(), LatencyModel(scale=scale), Control(), tenant_id="t")
    engine.put_group(SUB, "rg", {"location": "westeurope"})
    return engine


async def put(engine: Engine, resource_id: str, body: dict[str, Any]) -> Any:
    path = ids.parse(resource_id)
    assert path is not None
    located = engine.locate(path)
    assert located is not None
    spec, rid, _ = located
    return await engine.put(rid, spec, body, "2024-01-01")


async def delete(engine: Engine, resource_id: str) -> Any:
    path = ids.parse(resource_id)
    assert path is not None
    located = engine.locate(path)
    assert located is not None
    return await engine.delete(located[1], located[0], "2024-01-01")


def vnet(*subnets: tuple[str, str]) -> dict[str, Any]:
    return {
        "location": "westeurope",
        "properties": {
            "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
            "subnets": [{"name": n, "properties": {"addressPrefix": p}} for n, p in subnets],
        },
    }


def test_parse_is_case_insensitive_and_splits_children() -> None:
    path = ids.parse(
        f"/subscriptions/{SUB}/resourcegroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/s"
    )
    assert path is not None and path.group == "rg" and path.types == ("virtualNetworks", "subnets")
    assert path.names == ("v", "s") and path.full_type == "Microsoft.Network/virtualNetworks/subnets"
    assert ids.parent_key(f"{VNET}/subnets/s") == VNET.lower()
    assert ids.parent_key(VNET) is None
    assert ids.key(VNET.upper()) == ids.key(VNET)


def test_values_at_walks_lists() -> None:
    body = {"properties": {"ipConfigurations": [{"properties": {"subnet": {"id": "a"}}}, {"properties": {}}]}}
    assert values_at(body, "properties.ipConfigurations[].properties.subnet.id") == ["a"]
    assert values_at(body, "properties.missing[].id") == []


def test_addresses_skip_azure_reserved_and_detect_overlap() -> None:
    assert addresses.allocate("10.0.1.0/24", [], "s") == "10.0.1.4"
    assert addresses.allocate("10.0.1.0/24", ["10.0.1.4"], "s") == "10.0.1.5"
    with pytest.raises(ArmError) as full:
        addresses.allocate("10.0.1.0/29", ["10.0.1.4", "10.0.1.5", "10.0.1.6"], "s")
    assert full.value.code == "SubnetIsFull"
    assert addresses.within("10.0.1.0/24", ["10.0.0.0/16"]) and not addresses.within(
        "10.1.0.0/24", ["10.0.0.0/16"]
    )
    assert addresses.overlaps("10.0.0.0/23", "10.0.1.0/24")


def test_catalog_resolves_latest() -> None:
    assert catalog.resolve("canonical", "ubuntu-24_04-lts", "server", "latest") == (
        "24.04.202411030",
        "Linux",
        "V2",
    )
    assert (
        catalog.resolve("Canonical", "0001-com-ubuntu-server-jammy", "22_04-lts-gen2", "latest") is not None
    )
    found = catalog.resolve(
        "MicrosoftWindowsServer", "WindowsServer", "2022-datacenter-azure-edition", "latest"
    )
    assert found is not None and found[1] == "Windows"
    assert catalog.resolve("Canonical", "ubuntu-24_04-lts", "server", "1.2.3") is None


def test_latency_model_scales_and_overrides() -> None:
    model = LatencyModel(scale=0.5)
    assert model.seconds("Microsoft.Compute/virtualMachines", "put") == 30
    model.set("microsoft.compute/virtualmachines", "PUT", 10)
    assert model.seconds("Microsoft.Compute/virtualMachines", "put") == 5
    assert LatencyModel(scale=0).seconds("anything/else", "delete") == 0


def test_fault_rules_count_down_and_match_globs() -> None:
    control = Control()
    control.add_fault(FaultRule(429, "TooManyRequests", method="PUT", type="Microsoft.Network/*", count=2))
    assert control.fault_for("GET", "Microsoft.Network/virtualNetworks", "v") is None
    assert control.fault_for("PUT", "Microsoft.Compute/virtualMachines", "v") is None
    for _ in range(2):
        error = control.fault_for("PUT", "Microsoft.Network/virtualNetworks", "v")
        assert error is not None and error.status == 429
    assert control.fault_for("PUT", "Microsoft.Network/virtualNetworks", "v") is None


def test_throttling_bucket_empties_then_asks_to_wait() -> None:
    bucket = Bucket(capacity=3, refill=1)
    assert [bucket.take()[0] for _ in range(3)] == [True, True, True]
    allowed, wait = bucket.take()
    assert not allowed and 0 < wait <= 1


def test_vnet_put_without_subnets_drops_unused_and_refuses_used() -> None:
    async def scenario() -> None:
        engine = make_engine()
        await put(engine, VNET, vnet(("a", "10.0.1.0/24"), ("b", "10.0.2.0/24")))
        assert [c.name for c in engine.store.children(VNET)] == ["a", "b"]
        await put(engine, VNET, vnet(("a", "10.0.1.0/24")))
        assert [c.name for c in engine.store.children(VNET)] == ["a"]
        nic = f"{RG}/providers/Microsoft.Network/networkInterfaces/nic"
        await put(
            engine,
            nic,
            {
                "location": "westeurope",
                "properties": {
                    "ipConfigurations": [
                        {"name": "ip", "properties": {"subnet": {"id": f"{VNET}/subnets/a"}}}
                    ]
                },
            },
        )
        with pytest.raises(ArmError) as used:
            await put(engine, VNET, vnet())
        assert used.value.code == "InUseSubnetCannotBeDeleted"
        with pytest.raises(ArmError) as deleting:
            await delete(engine, f"{VNET}/subnets/a")
        assert deleting.value.code == "InUseSubnetCannotBeDeleted"
        await delete(engine, nic)
        await put(engine, VNET, vnet())
        assert engine.store.children(VNET) == []

    asyncio.run(scenario())


def test_long_running_put_moves_from_creating_to_succeeded() -> None:
    async def scenario() -> None:
        engine = make_engine(scale=0.01)  # a VNet PUT takes 40 ms
        answer = await put(engine, VNET, vnet())
        assert answer.status == 201 and answer.body["properties"]["provisioningState"] == "Creating"
        op_id = answer.headers["Azure-AsyncOperation"].split("/operations/")[1].split("?")[0]
        assert engine.ops.status(op_id).body["status"] == "InProgress"
        assert int(answer.headers["retry-after-ms"]) <= 60
        await asyncio.sleep(0.1)
        assert engine.ops.status(op_id).body["status"] == "Succeeded"
        assert engine.store.get(VNET) is not None
        assert engine.store.get(VNET).provisioning_state == "Succeeded"  # type: ignore[union-attr]

    asyncio.run(scenario())


def test_group_delete_cascades() -> None:
    async def scenario() -> None:
        engine = make_engine()
        await put(engine, VNET, vnet(("a", "10.0.1.0/24")))
        answer = await engine.delete_group(SUB, "rg", "2021-04-01")
        assert answer.status == 202 and "Location" in answer.headers
        await asyncio.sleep(0.01)
        assert len(engine.store) == 0

    asyncio.run(scenario())


def test_references_must_exist_and_share_the_location() -> None:
    async def scenario() -> None:
        engine = make_engine()
        nsg = f"{RG}/providers/Microsoft.Network/networkSecurityGroups/far"
        await put(engine, nsg, {"location": "eastus"})
        body = vnet(("a", "10.0.1.0/24"))
        body["properties"]["subnets"][0]["properties"]["networkSecurityGroup"] = {"id": nsg}
        with pytest.raises(ArmError) as far:
            await put(engine, VNET, body)
        assert far.value.code == "InvalidResourceReference" and "eastus" in far.value.message
        body["properties"]["subnets"][0]["properties"]["networkSecurityGroup"] = {"id": nsg + "x"}
        with pytest.raises(ArmError) as missing:
            await put(engine, VNET, body)
        assert "was not found" in missing.value.message

    asyncio.run(scenario())


def test_restore_finishes_what_was_in_flight() -> None:
    async def scenario() -> None:
        engine = make_engine(scale=1.0)  # nothing finishes during the test
        created = await put(engine, VNET, vnet(("a", "10.0.1.0/24")))
        op_id = created.headers["Azure-AsyncOperation"].split("/operations/")[1].split("?")[0]
        nsg = f"{RG}/providers/Microsoft.Network/networkSecurityGroups/nsg"
        engine.latency.scale = 0
        await put(engine, nsg, {"location": "westeurope"})
        engine.latency.scale = 1.0
        assert (await delete(engine, nsg)).status == 202
        saved, operations = engine.store.dump(), engine.ops.dump()
        await engine.reset()

        restored = Engine(registry(), LatencyModel(), Control())
        restored.restore(saved, operations)
        assert restored.store.get(VNET).provisioning_state == "Succeeded"  # type: ignore[union-attr]
        assert restored.store.get(nsg) is None  # the delete counts as done
        assert restored.ops.status(op_id).body["status"] == "Succeeded"  # old tokens resolve

    asyncio.run(scenario())
