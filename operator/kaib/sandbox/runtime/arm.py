"""Reading ARM resource bodies (as the sandbox's GET renders them) into runtime terms. Pure."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from kaib.sandbox.runtime.nsg import SecurityGroup, SecurityRule

VNET = "microsoft.network/virtualnetworks"
SUBNET = "microsoft.network/virtualnetworks/subnets"
NSG = "microsoft.network/networksecuritygroups"
NIC = "microsoft.network/networkinterfaces"


def props(body: dict[str, Any] | None) -> dict[str, Any]:
    return dict((body or {}).get("properties") or {})


def vnet_id_of(subnet_id: str) -> str:
    return subnet_id.rsplit("/subnets/", 1)[0]


def address_space(vnet: dict[str, Any]) -> list[str]:
    return list((props(vnet).get("addressSpace") or {}).get("addressPrefixes") or [])


def subnet_prefixes(subnet: dict[str, Any]) -> list[str]:
    p = props(subnet)
    return list(p.get("addressPrefixes") or ([p["addressPrefix"]] if p.get("addressPrefix") else []))


def prefixlen_for(ip: str, prefixes: list[str]) -> int:
    """The prefix length of the subnet prefix holding `ip` (32 when none does)."""
    address = ipaddress.ip_address(ip)
    for prefix in prefixes:
        net = ipaddress.ip_network(prefix, strict=False)
        if address in net:
            return net.prefixlen
    return 32


def nic_address(nic: dict[str, Any]) -> tuple[str, str]:
    """(private IP, subnet id) of a NIC's primary IP configuration."""
    configs = props(nic).get("ipConfigurations") or []
    primary = next((c for c in configs if props(c).get("primary")), configs[0] if configs else {})
    p = props(primary)
    return str(p.get("privateIPAddress") or ""), str((p.get("subnet") or {}).get("id") or "")


def vm_nic_ids(vm: dict[str, Any]) -> list[str]:
    nics = (props(vm).get("networkProfile") or {}).get("networkInterfaces") or []
    primary = [n for n in nics if props(n).get("primary")]
    return [str(n.get("id", "")) for n in (primary or nics) if n.get("id")]


def is_windows(vm: dict[str, Any]) -> bool:
    storage = props(vm).get("storageProfile") or {}
    os_type = str((storage.get("osDisk") or {}).get("osType") or "")
    publisher = str((storage.get("imageReference") or {}).get("publisher") or "")
    os_profile = props(vm).get("osProfile") or {}
    return (
        os_type.lower() == "windows" or "windows" in publisher.lower() or "windowsConfiguration" in os_profile
    )


def linux_access(vm: dict[str, Any]) -> tuple[str, str]:
    """(admin user, SSH public key) from the VM's osProfile."""
    os_profile = props(vm).get("osProfile") or {}
    keys = ((os_profile.get("linuxConfiguration") or {}).get("ssh") or {}).get("publicKeys") or []
    return str(os_profile.get("adminUsername") or "azureuser"), "\n".join(
        str(k.get("keyData", "")) for k in keys
    )


def source_image_id(vm: dict[str, Any]) -> str:
    """The managed image / gallery image (version) a VM was made from; '' for a platform image."""
    ref = (props(vm).get("storageProfile") or {}).get("imageReference") or {}
    return str(ref.get("id") or ref.get("sharedGalleryImageId") or ref.get("communityGalleryImageId") or "")


def _list(rule: dict[str, Any], one: str, many: str) -> tuple[str, ...]:
    values = list(rule.get(many) or [])
    if rule.get(one):
        values.append(rule[one])
    return tuple(str(v) for v in values) or ("*",)


def security_group(nsg: dict[str, Any]) -> SecurityGroup:
    """An NSG body (securityRules inline, as GET returns them) as the runtime's SecurityGroup."""
    rules = []
    for item in props(nsg).get("securityRules") or []:
        p = props(item)
        rules.append(
            SecurityRule(
                name=str(item.get("name", "")),
                priority=int(p.get("priority", 4096)),
                direction="Inbound"
                if str(p.get("direction", "Inbound")).lower() == "inbound"
                else "Outbound",
                access="Allow" if str(p.get("access", "Deny")).lower() == "allow" else "Deny",
                protocol=str(p.get("protocol", "*")),
                source_prefixes=_list(p, "sourceAddressPrefix", "sourceAddressPrefixes"),
                destination_prefixes=_list(p, "destinationAddressPrefix", "destinationAddressPrefixes"),
                destination_ports=_list(p, "destinationPortRange", "destinationPortRanges"),
            )
        )
    return SecurityGroup(str(nsg.get("name", "")), tuple(rules))


_LOOPBACK_URL = re.compile(r"(?P<scheme>https?://)(?:127\.0\.0\.1|localhost):(?P<port>\d+)")


def loopback_ports(value: str) -> list[int]:
    return [int(m.group("port")) for m in _LOOPBACK_URL.finditer(value)]


def to_service_address(value: str, service_ip: str) -> str:
    """Point http(s)://127.0.0.1:PORT URLs (host services such as Azurite) at the service address."""
    return _LOOPBACK_URL.sub(lambda m: f"{m.group('scheme')}{service_ip}:{m.group('port')}", value)


def image_repository(image: str) -> str:
    """'registry.example/team/kaib-builder:1.2@sha256:..' -> 'kaib-builder'."""
    name = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return name.split(":", 1)[0]


PRIVATE_ENDPOINT = "microsoft.network/privateendpoints"


def resource_group_prefix(resource_id: str) -> str:
    """'/subscriptions/s/resourceGroups/rg' of any resource id, lower-cased."""
    return resource_id.lower().split("/providers/", 1)[0]


def private_link_service_ids(pe: dict[str, Any]) -> list[str]:
    p = props(pe)
    connections = [
        *(p.get("privateLinkServiceConnections") or []),
        *(p.get("manualPrivateLinkServiceConnections") or []),
    ]
    return [
        str(props(c).get("privateLinkServiceId")) for c in connections if props(c).get("privateLinkServiceId")
    ]


def load_balancer_ids(pls: dict[str, Any]) -> list[str]:
    frontends = props(pls).get("loadBalancerFrontendIpConfigurations") or []
    return list(
        dict.fromkeys(
            str(f.get("id", "")).split("/frontendIPConfigurations/")[0] for f in frontends if f.get("id")
        )
    )


def balancing_rules(lb: dict[str, Any]) -> list[tuple[int, int, str]]:
    """(frontend port, backend port, backend pool id) of each TCP load-balancing rule."""
    out = []
    for rule in props(lb).get("loadBalancingRules") or []:
        p = props(rule)
        if str(p.get("protocol", "Tcp")).lower() in ("tcp", "all"):
            pool = str((p.get("backendAddressPool") or {}).get("id") or "")
            out.append((int(p.get("frontendPort", 0)), int(p.get("backendPort", 0)), pool))
    return out


def nic_backend_pools(nic: dict[str, Any]) -> set[str]:
    pools = set()
    for config in props(nic).get("ipConfigurations") or []:
        for pool in props(config).get("loadBalancerBackendAddressPools") or []:
            pools.add(str(pool.get("id", "")).lower())
    return pools
