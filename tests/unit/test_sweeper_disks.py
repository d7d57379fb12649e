"""The orphan sweeper and exported disks: a VHD build's OS disk still exported (its grant in force)
refuses every delete, and so does its VM; the sweeper revokes the access first, once, then deletes."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from kaib.azure import spec as t
from kaib.azure.async_step import StepSettings
from kaib.azure.naming import BuildNames, Owner
from kaib.azure.spec import resource_id
from kaib.controller import orphans, sweeper
from kaib.controller.orphans import Found, Orphan

SUB, GROUP, NS = "00000000-0000-0000-0000-000000000001", "kaib-staging", "team"
BID = "abc123def0"
NAMES = BuildNames(BID)


def orphan(type_: str, name: str, bid: str = BID, group: str = GROUP) -> Orphan:
    tags = Owner(NS, "ubuntu", "b1", bid).tags() if type_ != t.DISK else {}
    return Orphan(
        Found(resource_id(SUB, group, type_, (name,)), type_, tags), "build", NS, "b1", "ubuntu", bid
    )


VM = orphan(t.VM, NAMES.build_vm)
DISK = orphan(t.DISK, NAMES.build_os_disk)
NIC = orphan(t.NIC, NAMES.build_nic)


def test_a_vm_waits_for_its_builds_disks_a_disk_for_itself() -> None:
    other_build = orphan(t.DISK, "kaib-0123456789-osdisk", bid="0123456789")
    other_group = orphan(t.DISK, NAMES.build_os_disk, group="elsewhere")
    deletes = (VM, NIC, DISK, other_build, other_group)
    assert orphans.disks_to_revoke(VM, deletes) == (DISK,)
    assert orphans.disks_to_revoke(DISK, deletes) == (DISK,)
    assert orphans.disks_to_revoke(NIC, deletes) == ()


def conflict(message: str) -> HttpResponseError:
    exc = HttpResponseError(message=message)
    exc.status_code = 409
    exc.error = SimpleNamespace(code="Conflict", message=message)  # type: ignore[assignment]
    return exc


class Poller:
    """A finished long-running operation, as the SDK's AsyncLROPoller shows it to the async step."""

    def polling_method(self) -> Any:
        return SimpleNamespace(finished=lambda: True, _pipeline_response=None)

    async def result(self) -> None:
        return None

    def continuation_token(self) -> str:
        return "token"


class FakeCompute:
    """A VM and its OS disk (deleted with it), exported: both refuse deletes until access is revoked."""

    def __init__(self) -> None:
        self.exported, self.vm, self.disk = True, True, True
        self.calls: list[str] = []
        self.virtual_machines = SimpleNamespace(get=self._get_vm, begin_delete=self._delete_vm)
        self.disks = SimpleNamespace(
            get=self._get_disk, begin_delete=self._delete_disk, begin_revoke_access=self._revoke
        )

    async def _get_vm(self, group: str, name: str) -> dict[str, Any]:
        if not self.vm:
            raise ResourceNotFoundError("NotFound")
        return {"id": VM.resource.id}

    async def _get_disk(self, group: str, name: str) -> dict[str, Any]:
        self.calls.append("GET disk")
        if not self.disk:
            raise ResourceNotFoundError("NotFound")
        state = "ActiveSAS" if self.exported else "Reserved"
        return {"id": DISK.resource.id, "properties": {"diskState": state}}

    async def _delete_vm(self, group: str, name: str, **_: Any) -> Poller:
        self.calls.append("DELETE vm")
        if self.exported:
            raise conflict(f"Disk {NAMES.build_os_disk} has an active SAS and cannot be deleted")
        self.vm = self.disk = False
        return Poller()

    async def _delete_disk(self, group: str, name: str, **_: Any) -> Poller:
        self.calls.append("DELETE disk")
        if self.exported:
            raise conflict("active SAS")
        self.disk = False
        return Poller()

    async def _revoke(self, group: str, name: str, **_: Any) -> Poller:
        self.calls.append("POST endGetAccess")
        self.exported = False
        return Poller()


def delete(compute: FakeCompute) -> tuple[list[Orphan], list[tuple[Orphan, str]]]:
    azure = SimpleNamespace(for_subscription=lambda sub: SimpleNamespace(compute=compute))
    s = sweeper.Sweeper(
        azure,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        sweeper.SweeperSettings(grace=0, delete_budget=5),
        StepSettings(wait=0.1, requeue=0.05, error_requeue=0.05),
    )
    sweep = orphans.Sweep(waves=((VM,), (DISK,)), waiting=(), kept=())
    return asyncio.run(s._delete(sweep))


def test_an_exported_disk_is_revoked_before_its_vm_and_itself_are_deleted() -> None:
    compute = FakeCompute()
    removed, failed = delete(compute)
    assert failed == [] and removed == [VM, DISK]
    assert not compute.vm and not compute.disk
    assert compute.calls.count("POST endGetAccess") == 1  # once: then the disk shows it is not exported
    assert compute.calls.index("POST endGetAccess") < compute.calls.index("DELETE vm")


def test_a_disk_not_exported_is_only_read() -> None:
    compute = FakeCompute()
    compute.exported = False
    removed, failed = delete(compute)
    assert failed == [] and removed == [VM, DISK]
    assert "POST endGetAccess" not in compute.calls
