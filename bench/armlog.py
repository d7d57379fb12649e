"""Reading the sandbox's request log: which requests a build made (writes, reads, polls), its Azure
operations with their modelled durations, the polls of each, and the critical path.

An operation starts when its write is answered and lasts exactly what the sandbox's latency model
says (the sandbox sleeps that long), so its modelled end is start + seconds(type, op) * scale. The
container group's modelled run starts when its create ends.

The critical path follows the dependency order of the engine's planner (operator/kaib/azure/planner.py):
staging, the network waves, build NIC, build VM, builder container group, its run, distribution,
then the delete waves. Operations in the same stage do not depend on each other (a wave); each
stage waits for the previous one, so the critical path is the sum of the longest operation per stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kaib.sandbox.kinds import registry
from kaib.sandbox.operations import resource_tag

SANDBOX_TYPES = registry()

WRITE_METHODS = {"PUT", "PATCH", "DELETE", "POST"}
READ_ACTIONS = {"listkeys"}  # POSTs ARM answers at once; counted as writes by ARM, but no operation

# (type, operation, name suffix or "") -> stage; first match wins. Proxy resources are the network
# step's (planner: network waves), the plain ones the build VM step's.
STAGES: list[tuple[str, str, str, int]] = [
    ("microsoft.resources/resourcegroups", "put", "", 0),
    ("microsoft.storage/storageaccounts", "put", "", 1),
    ("microsoft.network/networksecuritygroups", "put", "", 2),
    ("microsoft.network/loadbalancers", "put", "", 2),
    ("microsoft.network/virtualnetworks", "put", "", 3),
    ("microsoft.network/networkinterfaces", "put", "-proxy-nic", 3),
    ("microsoft.network/privatelinkservices", "put", "", 3),
    ("microsoft.compute/virtualmachines", "put", "-proxy", 4),
    ("microsoft.network/privateendpoints", "put", "", 4),
    ("microsoft.network/networkinterfaces", "put", "", 5),
    ("microsoft.compute/virtualmachines", "put", "", 6),
    ("microsoft.containerinstance/containergroups", "put", "", 7),
    ("microsoft.containerinstance/containergroups", "run", "", 8),
    ("microsoft.compute/virtualmachines", "deallocate", "", 9),
    ("microsoft.compute/virtualmachines", "poweroff", "", 9),
    ("microsoft.compute/virtualmachines", "generalize", "", 10),
    ("microsoft.compute/virtualmachines", "capture", "", 11),
    ("microsoft.compute/images", "put", "", 11),
    ("microsoft.compute/galleries/images/versions", "put", "", 11),
    ("microsoft.containerinstance/containergroups", "delete", "", 12),
    ("microsoft.network/privateendpoints", "delete", "", 13),
    ("microsoft.network/privatelinkservices", "delete", "", 14),
    ("microsoft.compute/virtualmachines", "delete", "", 15),
    ("microsoft.network/networkinterfaces", "delete", "", 16),
    ("microsoft.compute/disks", "delete", "", 16),
    ("microsoft.network/loadbalancers", "delete", "", 17),
    ("microsoft.network/virtualnetworks", "delete", "", 18),
    ("microsoft.network/networksecuritygroups", "delete", "", 19),
]
EARLY_TOLERANCE_S = 0.005  # clock and rounding slack when comparing a poll with its Retry-After


def kind(rec: dict[str, Any]) -> str:
    """ "poll" (an operation's status URL), "read" (any other GET) or "write"."""
    path = str(rec["path"]).lower()
    if rec["method"] in ("GET", "HEAD"):
        return "poll" if "/operations/" in path or "/operationresults/" in path else "read"
    return "write"


def start_of(rec: dict[str, Any]) -> float:
    """When the request arrived (the log stamps the answer, `ms` after)."""
    return float(rec["at"]) - float(rec["ms"]) / 1000


def operation_name(rec: dict[str, Any]) -> str:
    if rec["method"] == "PUT" or rec["method"] == "PATCH":
        return "put"
    if rec["method"] == "DELETE":
        return "delete"
    return str(rec["path"]).rstrip("/").rsplit("/", 1)[-1].lower()


def resource_path(rec: dict[str, Any]) -> str:
    path = str(rec["path"]).split("?")[0].lower().rstrip("/")
    return path.rsplit("/", 1)[0] if rec["method"] == "POST" else path


@dataclass
class Operation:
    type: str  # lower-case ARM type
    op: str  # put, delete or an action
    name: str
    start: float
    seconds: float  # modelled duration
    polls: list[tuple[float, float]] = field(default_factory=list)  # (request start, answered at)
    url: str = ""
    tag: str = ""  # resource_tag of its resource: the first group of its operation ids

    @property
    def end(self) -> float:
        return self.start + self.seconds

    @property
    def label(self) -> str:
        return f"{self.type.rsplit('/', 1)[-1]} {self.op} {self.name}"

    def stage(self) -> int | None:
        for type_, op, suffix, stage in STAGES:
            if self.type == type_ and self.op == op and (not suffix or self.name.endswith(suffix)):
                return stage
        return None


class Latency:
    """The sandbox's latency model as /_sandbox/latency describes it."""

    def __init__(self, described: dict[str, Any]) -> None:
        self.scale = float(described["scale"])
        self.table = {k.lower(): float(v) for k, v in described["seconds"].items()}

    def seconds(self, type_: str, op: str) -> float:
        base = self.table.get(f"{type_.lower()}:{op.lower()}")
        if base is None:
            base = {"put": 5.0, "delete": 5.0}.get(op, 10.0)  # the sandbox's defaults (latency.py)
        return base * self.scale


def operations(records: list[dict[str, Any]], latency: Latency) -> list[Operation]:
    """Every Azure operation in `records`, with its polls; plus the modelled container run.

    A poll belongs to the operation its URL names: the sandbox's operation ids begin with a tag of
    the resource id (sandbox/operations.py `resource_tag`), and one resource has one operation
    running at a time, so it is the latest operation on that resource started before the poll."""
    ops: list[Operation] = []
    pending: list[Operation] = []  # operations whose status URL has not been polled yet
    by_url: dict[str, Operation] = {}
    for rec in sorted(records, key=lambda r: float(r["at"])):
        k = kind(rec)
        if k == "write" and int(rec["status"]) in (200, 201, 202) and operation_name(rec) not in READ_ACTIONS:
            type_ = str(rec["type"]).lower()
            op = Operation(type_, operation_name(rec), str(rec["name"]), float(rec["at"]), 0.0)
            op.tag = resource_tag(resource_path(rec))
            if long_running(type_, op.op, int(rec["status"])):
                op.seconds = latency.seconds(type_, op.op)
                pending.append(op)
            ops.append(op)
        elif k == "poll":
            url = str(rec["path"]).split("?")[0].lower()
            owner = by_url.get(url)
            if owner is None:
                tag = url.rstrip("/").rsplit("/", 1)[-1][:8]
                mine = [o for o in pending if o.tag == tag and o.start <= start_of(rec)]
                if not mine:
                    continue
                owner = mine[-1]
                pending.remove(owner)
                owner.url = url
                by_url[url] = owner
            owner.polls.append((start_of(rec), float(rec["at"])))
    for op in list(ops):
        if op.type == "microsoft.containerinstance/containergroups" and op.op == "put":
            ops.append(Operation(op.type, "run", op.name, op.end, latency.seconds(op.type, "run")))
    return sorted(ops, key=lambda o: o.start)


def long_running(type_: str, op: str, status: int) -> bool:
    """Whether the sandbox answered a write by starting an operation (which lasts its modelled time):
    every 202, and a PUT of a long-running type (201 created, 200 updated)."""
    if status == 202:
        return True
    spec = SANDBOX_TYPES.get(type_)
    return op == "put" and spec is not None and spec.lro and status in (200, 201)


def retry_after(op: Operation, answered_at: float) -> float:
    """What the sandbox's retry-after-ms said at that moment (operations.py retry_hint)."""
    return max(0.02, min(10.0, op.end - answered_at + 0.01))


def early_polls(op: Operation) -> list[dict[str, Any]]:
    """Polls sent before the previous answer's Retry-After had passed (the write's answer counts)."""
    early = []
    previous = op.start
    for i, (sent, answered) in enumerate(op.polls):
        wait = retry_after(op, previous)
        if sent + EARLY_TOLERANCE_S < previous + wait:
            early.append(
                {"poll": i + 1, "after_s": round(sent - previous, 4), "retry_after_s": round(wait, 4)}
            )
        previous = answered
    return early


def critical_path(ops: list[Operation]) -> tuple[float, list[Operation], list[Operation]]:
    """(seconds, the longest operation of each stage in order, operations of no known stage)."""
    longest: dict[int, Operation] = {}
    unknown = []
    for op in ops:
        stage = op.stage()
        if stage is None:
            unknown.append(op)
        elif stage not in longest or op.seconds > longest[stage].seconds:
            longest[stage] = op
    chain = [longest[s] for s in sorted(longest)]
    return sum(o.seconds for o in chain), chain, unknown


def summary(records: list[dict[str, Any]]) -> dict[str, int]:
    counts = {"writes": 0, "reads": 0, "polls": 0, "throttled_429": 0, "other_errors": 0}
    for rec in records:
        status = int(rec["status"])
        if status == 429:
            counts["throttled_429"] += 1
            continue
        if status >= 400 and status != 404:  # a 404 GET is how the engine learns a resource is absent
            counts["other_errors"] += 1
        counts[{"write": "writes", "read": "reads", "poll": "polls"}[kind(rec)]] += 1
    return counts


def write_accounting(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Successful writes against resources created + deleted + distinct actions; duplicates listed."""
    created, deleted, actions = set(), set(), set()
    seen: dict[tuple[str, str], int] = {}
    writes = 0
    for rec in records:
        if kind(rec) != "write" or int(rec["status"]) >= 300:
            continue
        writes += 1
        path = resource_path(rec)
        op = operation_name(rec)
        if op == "put":
            created.add(path)
        elif op == "delete":
            deleted.add(path)
        else:
            actions.add((path, op))
        seen[(path, op)] = seen.get((path, op), 0) + 1
    expected = len(created) + len(deleted) + len(actions)
    duplicates = {f"{op} {path.rsplit('/providers/', 1)[-1]}": n for (path, op), n in seen.items() if n > 1}
    return {"writes": writes, "created": len(created), "deleted": len(deleted), "actions": len(actions),
            "expected_writes": expected, "duplicates": duplicates}  # fmt: skip
