"""Helpers the per-provider type modules share: ids, sub-resource ids, private IP assignment."""

from __future__ import annotations

import hashlib
import uuid
from typing import TYPE_CHECKING, Any

from .. import addresses
from ..errors import ArmError
from ..hooks import ResourceView

if TYPE_CHECKING:
    from ..engine import Engine
    from ..store import Resource


def stable_uuid(*parts: str) -> str:
    """A GUID that stays the same for the same resource (vmId, principalId...)."""
    return str(uuid.UUID(hashlib.sha256("/".join(parts).lower().encode()).hexdigest()[:32]))


def name_sub_ids(resource: Resource, prop: str, segment: str | None = None) -> None:
    """Give each item of properties[prop] its ARM id (<resource id>/<prop>/<name>) and a state."""
    for item in resource.props.get(prop) or []:
        if isinstance(item, dict) and item.get("name"):
            item["id"] = f"{resource.id}/{segment or prop}/{item['name']}"
            item.setdefault("properties", {})["provisioningState"] = "Succeeded"


def taken_ips(engine: Engine, subnet_id: str, exclude_key: str) -> set[str]:
    taken: set[str] = set()
    for user in engine.store.referrers(subnet_id):
        if user.key == exclude_key:
            continue
        taken.update(_ips_in(user.body, subnet_id))
        ip = user.state.get("private_ip")
        if ip and user.state.get("private_ip_subnet", "").lower() == subnet_id.lower():
            taken.add(ip)
    return taken


def _ips_in(node: Any, subnet_id: str) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        subnet = node.get("subnet")
        same = isinstance(subnet, dict) and str(subnet.get("id", "")).lower() == subnet_id.lower()
        if same and node.get("privateIPAddress"):
            found.append(str(node["privateIPAddress"]))
        for value in node.values():
            found.extend(_ips_in(value, subnet_id))
    elif isinstance(node, list):
        for value in node:
            found.extend(_ips_in(value, subnet_id))
    return found


def subnet_of(engine: Engine, subnet_id: str) -> Resource:
    subnet = engine.store.get(subnet_id)
    if subnet is None:
        raise ArmError(400, "InvalidResourceReference", f"Subnet {subnet_id} was not found.")
    return subnet


def assign_ips(
    engine: Engine, resource: Resource, existing: Resource | None, prop: str, segment: str
) -> None:
    """Allocate private IPs for ipConfigurations-like items that name a subnet, keeping earlier ones."""
    before: dict[str, str] = {}
    if existing is not None:
        for item in existing.props.get(prop) or []:
            p = item.get("properties") or {}
            if p.get("privateIPAddress"):
                before[str(item.get("name", "")).lower()] = p["privateIPAddress"]
    claimed: set[str] = set()
    for item in resource.props.get(prop) or []:
        if not isinstance(item, dict) or not item.get("name"):
            raise ArmError(400, "InvalidRequestFormat", f"Each item of '{prop}' needs a name.")
        item["id"] = f"{resource.id}/{segment}/{item['name']}"
        p = item.setdefault("properties", {})
        p["provisioningState"] = "Succeeded"
        subnet_id = (p.get("subnet") or {}).get("id")
        if not subnet_id:
            continue
        subnet = subnet_of(engine, subnet_id)
        prefixes = addresses.subnet_prefixes(subnet.props)
        if not prefixes:
            continue
        taken = taken_ips(engine, subnet.id, resource.key) | claimed
        method = p.get("privateIPAllocationMethod") or "Dynamic"
        p["privateIPAllocationMethod"] = method
        p.setdefault("privateIPAddressVersion", "IPv4")
        if method.lower() == "static" and p.get("privateIPAddress"):
            addresses.check_static(prefixes[0], p["privateIPAddress"], taken, subnet.id)
        else:
            kept = before.get(str(item["name"]).lower())
            p["privateIPAddress"] = (
                kept if kept and kept not in taken else addresses.allocate(prefixes[0], taken, subnet.id)
            )
        claimed.add(p["privateIPAddress"])


def view(engine: Engine, resource: Resource) -> ResourceView:
    return engine.view(resource)
