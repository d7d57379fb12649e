"""Private addresses: allocation from a subnet's prefix, as Azure does (first four and last reserved)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from .errors import ArmError


def subnet_prefixes(subnet_props: dict[str, object]) -> list[str]:
    prefixes = subnet_props.get("addressPrefixes") or []
    single = subnet_props.get("addressPrefix")
    out = [str(p) for p in prefixes] if isinstance(prefixes, list) else []
    if single:
        out.insert(0, str(single))
    return out


def allocate(prefix: str, taken: Iterable[str], subnet_id: str) -> str:
    network = ipaddress.ip_network(prefix, strict=False)
    used = set(taken)
    hosts = network.num_addresses
    for offset in range(4, hosts - 1):
        candidate = str(network.network_address + offset)
        if candidate not in used:
            return candidate
    raise ArmError(
        400, "SubnetIsFull", f"Subnet {subnet_id} with address prefix {prefix} has no free addresses."
    )


def check_static(prefix: str, address: str, taken: Iterable[str], subnet_id: str) -> None:
    network = ipaddress.ip_network(prefix, strict=False)
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ArmError(400, "InvalidPrivateIPAddress", f"'{address}' is not a valid IP address.") from None
    if ip not in network:
        raise ArmError(
            400,
            "PrivateIPAddressNotInSubnet",
            f"IP address {address} does not belong to subnet {subnet_id} ({prefix}).",
        )
    if address in set(taken):
        raise ArmError(
            400, "PrivateIPAddressInUse", f"IP address {address} is already in use in subnet {subnet_id}."
        )


def within(inner: str, outers: list[str]) -> bool:
    try:
        net = ipaddress.ip_network(inner, strict=False)
        return any(net.subnet_of(ipaddress.ip_network(o, strict=False)) for o in outers)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return False


def overlaps(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_network(a, strict=False).overlaps(ipaddress.ip_network(b, strict=False))
    except (ValueError, TypeError):
        return False


def valid_prefix(prefix: str) -> bool:
    try:
        ipaddress.ip_network(prefix, strict=False)
        return True
    except ValueError:
        return False
