"""The seam for the real runtime: which hook the engine calls, when, and with what."""

from __future__ import annotations

import asyncio
from typing import Any

from kaib.sandbox import ids
from kaib.sandbox.control import Control
from kaib.sandbox.engine import Engine
from kaib.sandbox.hooks import ContainerRun, ModelledHooks, ResourceView
from kaib.sandbox.kinds import registry
from kaib.sandbox.latency import LatencyModel

SUB = "5a4d1e2c-0b6f-4c7a-9d3e-8f1a2b3c4d5e"
RG = f"/subscriptions/{SUB}/resourceGroups/rg/providers"
VNET = f"{RG}/Microsoft.Network/virtualNetworks/vnet"
NIC = f"{RG}/Microsoft.Network/networkInterfaces/nic"
VM = f"{RG}/Microsoft.Compute/virtualMachines/vm"
CG = f"{RG}/Microsoft.ContainerInstance/containerGroups/cg"


class Recording(ModelledHooks):
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.runs: list[ContainerRun] = []

    async def network_changed(self, view: ResourceView) -> None:
        self.calls.append(("network_changed", view.name))

    async def network_deleted(self, view: ResourceView) -> None:
        self.calls.append(("network_deleted", view.name))

    async def vm_started(self, view: ResourceView) -> None:
        nic_id = view.body["properties"]["networkProfile"]["networkInterfaces"][0]["id"]
        nic = view.lookup(nic_id)
        assert nic is not None  # the runtime finds the VM's address through lookup()
        self.calls.append(
            ("vm_started", nic["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"])
        )

    async def vm_stopped(self, view: ResourceView, deallocated: bool) -> None:
        self.calls.append(("vm_stopped", str(deallocated)))

    async def vm_deleted(self, view: ResourceView) -> None:
        self.calls.append(("vm_deleted", view.name))

    async def run_container_group(self, run: ContainerRun) -> None:
        self.runs.append(run)
        run.log("c", "hello\n")
        run.finished("c", 0)


async def call(engine: Engine, method: str, resource_id: str, body: Any = None, rest: str = "") -> Any:
    path = ids.parse(resource_id)
    assert path is not None
    located = engine.locate(path)
    assert located is not None
    spec, rid, _ = located
    if rest:
        return await engine.action(rid, spec, rest, method, body or {}, {"api-version": "x"})
    if method == "PUT":
        return await engine.put(rid, spec, body, "x")
    return await engine.delete(rid, spec, "x")


def test_hooks_follow_the_resources() -> None:
    async def scenario() -> None:
        hooks = Recording()
        engine = Engine(registry(), LatencyModel(scale=0), Control(), hooks)
        engine.put_group(SUB, "rg", {"location": "westeurope"})
        await call(
            engine,
            "PUT",
            VNET,
            {
                "location": "westeurope",
                "properties": {
                    "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
                    "subnets": [
                        {
                            "name": "a",
                            "properties": {
                                "addressPrefix": "10.0.1.0/24",
                                "delegations": [
                                    {
                                        "name": "d",
                                        "properties": {
                                            "serviceName": "Microsoft.ContainerInstance/containerGroups"
                                        },
                                    }
                                ],
                            },
                        },
                        {"name": "b", "properties": {"addressPrefix": "10.0.2.0/24"}},
                    ],
                },
            },
        )
        await call(
            engine,
            "PUT",
            NIC,
            {
                "location": "westeurope",
                "properties": {
                    "ipConfigurations": [
                        {"name": "ip", "properties": {"subnet": {"id": f"{VNET}/subnets/b"}}}
                    ]
                },
            },
        )
        await call(
            engine,
            "PUT",
            VM,
            {
                "location": "westeurope",
                "properties": {
                    "hardwareProfile": {"vmSize": "Standard_B2s"},
                    "storageProfile": {
                        "imageReference": {
                            "publisher": "Canonical",
                            "offer": "ubuntu-24_04-lts",
                            "sku": "server",
                            "version": "latest",
                        }
                    },
                    "osProfile": {"adminUsername": "u", "adminPassword": "p"},
                    "networkProfile": {"networkInterfaces": [{"id": NIC}]},
                },
            },
        )
        await asyncio.sleep(0.01)  # zero-latency PUTs run their hooks in the background
        await call(engine, "POST", VM, rest="deallocate")
        await asyncio.sleep(0.01)
        await call(engine, "DELETE", VM)
        await call(
            engine,
            "PUT",
            CG,
            {
                "location": "westeurope",
                "properties": {
                    "osType": "Linux",
                    "subnetIds": [{"id": f"{VNET}/subnets/a"}],
                    "ipAddress": {"type": "Private"},
                    "containers": [
                        {
                            "name": "c",
                            "properties": {
                                "image": "kaib-builder",
                                "resources": {"requests": {"cpu": 1, "memoryInGB": 1}},
                                "environmentVariables": [{"name": "S", "secureValue": "s3cret"}],
                            },
                        }
                    ],
                },
            },
        )
        await asyncio.sleep(0.01)
        assert hooks.calls == [
            ("network_changed", "vnet"),
            ("network_changed", "nic"),
            ("vm_started", "10.0.2.4"),
            ("vm_stopped", "True"),
            ("vm_deleted", "vm"),
        ]
        [run] = hooks.runs
        assert run.containers[0].env == {"S": "s3cret"} and run.private_ip == "10.0.1.4"
        assert run.subnet_ids == [f"{VNET}/subnets/a"]
        shown = engine.render(engine.store.get(CG))  # type: ignore[arg-type]
        assert shown["properties"]["instanceView"]["state"] == "Succeeded"
        assert "secureValue" not in str(shown)

    asyncio.run(scenario())
