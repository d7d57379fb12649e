"""How long each operation takes: realistic defaults (seconds, as seen in Azure), per type and
operation, all multiplied by one scale factor (0 turns the model off; tests use ~0.002)."""

from __future__ import annotations

from dataclasses import dataclass, field

# (type lower, operation) -> seconds. Operation is "put", "delete" or an action name.
DEFAULTS: dict[tuple[str, str], float] = {
    ("microsoft.resources/resourcegroups", "delete"): 20,
    ("microsoft.storage/storageaccounts", "put"): 20,
    ("microsoft.network/virtualnetworks", "put"): 4,
    ("microsoft.network/virtualnetworks", "delete"): 10,
    ("microsoft.network/virtualnetworks/subnets", "put"): 3,
    ("microsoft.network/virtualnetworks/subnets", "delete"): 5,
    ("microsoft.network/networksecuritygroups", "put"): 3,
    ("microsoft.network/networksecuritygroups/securityrules", "put"): 3,
    ("microsoft.network/privateendpoints", "put"): 35,
    ("microsoft.network/privateendpoints", "delete"): 25,
    ("microsoft.network/privatelinkservices", "put"): 20,
    ("microsoft.network/privatelinkservices", "delete"): 15,
    ("microsoft.network/loadbalancers", "put"): 5,
    ("microsoft.network/networkinterfaces", "put"): 2,
    ("microsoft.network/publicipaddresses", "put"): 3,
    ("microsoft.compute/virtualmachines", "put"): 60,
    ("microsoft.compute/virtualmachines", "delete"): 45,
    ("microsoft.compute/virtualmachines", "start"): 30,
    ("microsoft.compute/virtualmachines", "deallocate"): 60,
    ("microsoft.compute/virtualmachines", "poweroff"): 20,
    ("microsoft.compute/virtualmachines", "restart"): 30,
    ("microsoft.compute/virtualmachines", "capture"): 60,
    ("microsoft.compute/disks", "put"): 5,
    ("microsoft.compute/disks", "begingetaccess"): 5,
    ("microsoft.compute/disks", "endgetaccess"): 5,
    ("microsoft.compute/images", "put"): 30,
    ("microsoft.compute/galleries", "put"): 10,
    ("microsoft.compute/galleries/images", "put"): 10,
    ("microsoft.compute/galleries/images/versions", "put"): 600,
    ("microsoft.compute/galleries/images/versions", "delete"): 60,
    ("microsoft.containerinstance/containergroups", "put"): 40,
    ("microsoft.containerinstance/containergroups", "delete"): 15,
    ("microsoft.containerinstance/containergroups", "run"): 120,  # modelled container run time
}
DEFAULT_PUT = 5.0
DEFAULT_DELETE = 5.0
DEFAULT_ACTION = 10.0


@dataclass
class LatencyModel:
    scale: float = 1.0
    overrides: dict[tuple[str, str], float] = field(default_factory=dict)  # unscaled seconds

    def seconds(self, type_name: str, operation: str) -> float:
        k = (type_name.lower(), operation.lower())
        base = self.overrides.get(k, DEFAULTS.get(k))
        if base is None:
            base = {"put": DEFAULT_PUT, "delete": DEFAULT_DELETE}.get(k[1], DEFAULT_ACTION)
        return max(0.0, base * self.scale)

    def set(self, type_name: str, operation: str, seconds: float) -> None:
        self.overrides[(type_name.lower(), operation.lower())] = seconds

    def describe(self) -> dict[str, object]:
        table = {**DEFAULTS, **self.overrides}
        return {"scale": self.scale, "seconds": {f"{t}:{o}": s for (t, o), s in sorted(table.items())}}
