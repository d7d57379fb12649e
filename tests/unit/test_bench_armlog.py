"""bench/armlog.py: which operation each poll of the request log belongs to, and the critical path.

The case that misled the overhead benchmark before: an operation never polled (the VM deallocate,
whose end the engine reads from the instance view) took the next poll of its namespace (the managed
image's), which took the VM delete's, which then counted 0 s.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parents[2] / "bench"))
import armlog
from kaib.sandbox.operations import Operations, resource_tag

SUB = "5a4d1e2c-0b6f-4c7a-9d3e-8f1a2b3c4d5e"
RG = f"/subscriptions/{SUB}/resourceGroups/rg"
VM = f"{RG}/providers/Microsoft.Compute/virtualMachines/vm"
IMAGE = f"{RG}/providers/Microsoft.Compute/images/img"
POLL = f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/westus/operations/"
LATENCY = armlog.Latency(
    {
        "scale": 0.1,
        "seconds": {
            "Microsoft.Compute/virtualMachines:deallocate": 30,
            "Microsoft.Compute/images:put": 10,
            "Microsoft.Compute/virtualMachines:delete": 20,
        },
    }
)


def rec(at: float, method: str, path: str, status: int, type_: str = "", name: str = "") -> dict[str, Any]:
    return {"at": at, "method": method, "path": path, "type": type_, "name": name, "status": status,
            "ms": 1.0}  # fmt: skip


def op_id(resource_id: str, n: int) -> str:
    return f"{resource_tag(resource_id)}-0000-4000-8000-{n:012d}"


VM_T, IMAGE_T = "Microsoft.Compute/virtualMachines", "Microsoft.Compute/images"
RECORDS = [
    rec(10.0, "POST", f"{VM}/deallocate", 202, VM_T, "vm"),  # never polled: 3 s
    rec(13.1, "GET", f"{VM}/instanceView", 200, VM_T, "vm"),
    rec(13.2, "PUT", IMAGE.lower(), 201, IMAGE_T, "img"),  # 1 s, the path in another case
    rec(14.25, "GET", POLL + op_id(IMAGE, 1), 200),
    rec(14.3, "DELETE", VM, 202, VM_T, "vm"),  # 2 s
    rec(16.35, "GET", POLL + op_id(VM, 2), 200),
]


def by_label(records: list[dict[str, Any]]) -> dict[str, armlog.Operation]:
    return {op.label: op for op in armlog.operations(records, LATENCY)}


def test_each_poll_belongs_to_the_operation_its_url_names() -> None:
    ops = by_label(RECORDS)
    assert ops["virtualmachines deallocate vm"].polls == []
    assert ops["virtualmachines deallocate vm"].seconds == 3.0  # the sandbox took it, polled or not
    assert [round(s, 3) for s, _ in ops["images put img"].polls] == [14.249]
    assert [round(s, 3) for s, _ in ops["virtualmachines delete vm"].polls] == [16.349]
    assert ops["virtualmachines delete vm"].seconds == 2.0


def test_critical_path_counts_the_unpolled_operation_and_the_delete() -> None:
    seconds, chain, unknown = armlog.critical_path(armlog.operations(RECORDS, LATENCY))
    assert unknown == []
    assert [o.label for o in chain] == [
        "virtualmachines deallocate vm",
        "images put img",
        "virtualmachines delete vm",
    ]
    assert seconds == 6.0


def test_a_poll_goes_to_the_latest_operation_on_its_resource() -> None:
    records = [
        rec(1.0, "PUT", VM, 201, VM_T, "vm"),
        rec(2.0, "GET", POLL + op_id(VM, 1), 200),
        rec(5.0, "DELETE", VM, 202, VM_T, "vm"),
        rec(6.0, "GET", POLL + op_id(VM, 2), 200),
    ]
    ops = by_label(records)
    assert len(ops["virtualmachines put vm"].polls) == 1
    assert len(ops["virtualmachines delete vm"].polls) == 1


def test_synchronous_writes_take_no_time() -> None:
    group = f"/subscriptions/{SUB}/resourcegroups/rg"
    ops = by_label([rec(1.0, "PUT", group, 201, "Microsoft.Resources/resourceGroups", "rg")])
    assert ops["resourcegroups put rg"].seconds == 0.0


def test_sandbox_operation_ids_carry_the_resource_tag() -> None:
    operations = Operations()
    operations.base_url = "https://127.0.0.1:1"

    async def nothing() -> None:
        return None

    async def start() -> str:
        op = operations.start(VM, "Microsoft.Compute", "westus", 0.0, nothing, None)
        await operations.cancel_all()
        return op.id

    started = asyncio.run(start())
    assert started.startswith(resource_tag(VM.upper()))
    assert len(started) == 36 and started.count("-") == 4  # still GUID-shaped


def test_throttling_counts_429s_in_a_row_per_request() -> None:
    import throttling

    url = f"{RG}/providers/Microsoft.Network/virtualNetworks/v"
    records = [
        rec(1.0, "GET", url, 429),
        rec(1.1, "GET", POLL + "x", 429),
        rec(2.0, "GET", url, 429),
        rec(3.0, "GET", url, 200),
        rec(3.1, "GET", POLL + "x", 200),
        rec(4.0, "GET", url, 429),
        rec(5.0, "GET", url, 200),
    ]
    found = throttling.retries(records)
    assert found["requests_retried"] == 3
    assert found["retries_in_a_row_max"] == 2
    assert found["retried_most"] == "Microsoft.Network/virtualNetworks/v"
    assert found["still_refused_at_the_end"] == 0
