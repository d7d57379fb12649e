"""Microsoft.Network: virtual networks, subnets, NSGs and rules, NICs, public IPs, load balancers,
private endpoints and private link services."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from .. import addresses
from ..errors import ArmError
from ..registry import Ref, TypeSpec
from .common import assign_ips, name_sub_ids, stable_uuid

if TYPE_CHECKING:
    from ..engine import Engine
    from ..store import Resource

NS = "Microsoft.Network"
VNET = f"{NS}/virtualNetworks"
SUBNET = f"{VNET}/subnets"
NSG = f"{NS}/networkSecurityGroups"
RULE = f"{NSG}/securityRules"
NIC = f"{NS}/networkInterfaces"
PIP = f"{NS}/publicIPAddresses"
LB = f"{NS}/loadBalancers"
PE = f"{NS}/privateEndpoints"
PLS = f"{NS}/privateLinkServices"
ACI_DELEGATION = "Microsoft.ContainerInstance/containerGroups"


async def _changed(engine: Engine, resource: Resource) -> None:
    await engine.hooks.network_changed(engine.view(resource))


async def _deleted(engine: Engine, resource: Resource) -> None:
    await engine.hooks.network_deleted(engine.view(resource))


# Virtual networks and subnets -----------------------------------------------------------------
def _validate_vnet(engine: Engine, vnet: Resource, existing: Resource | None) -> None:
    prefixes = (vnet.props.get("addressSpace") or {}).get("addressPrefixes") or []
    if not prefixes or not all(addresses.valid_prefix(p) for p in prefixes):
        raise ArmError(
            400,
            "InvalidAddressSpace" if prefixes else "AddressSpaceMissing",
            f"Virtual network {vnet.name} needs valid addressSpace.addressPrefixes, got {prefixes}.",
        )


def _validate_subnet(engine: Engine, subnet: Resource, existing: Resource | None) -> None:
    prefixes = addresses.subnet_prefixes(subnet.props)
    if not prefixes or not all(addresses.valid_prefix(p) for p in prefixes):
        raise ArmError(
            400,
            "InvalidAddressPrefix" if prefixes else "NoAddressPrefixOrPoolProvided",
            f"Subnet {subnet.name} needs a valid addressPrefix, got {prefixes}.",
        )
    vnet_id = subnet.id.rsplit("/", 2)[0]
    vnet = engine.current(vnet_id)
    space = ((vnet.props.get("addressSpace") or {}).get("addressPrefixes") if vnet else []) or []
    for prefix in prefixes:
        if space and not addresses.within(prefix, space):
            raise ArmError(
                400,
                "NetcfgSubnetRangeOutsideVnet",
                f"Subnet '{subnet.name}' is not valid because its IP address range {prefix} is outside "
                f"the IP address range of virtual network ({', '.join(space)}).",
            )
    if vnet is not None:
        for sibling in engine.store.children(vnet.id, SUBNET):
            if sibling.key == subnet.key:
                continue
            for a in prefixes:
                for b in addresses.subnet_prefixes(sibling.props):
                    if addresses.overlaps(a, b):
                        raise ArmError(
                            400,
                            "NetcfgSubnetRangesOverlap",
                            f"Subnet '{subnet.name}' ({a}) overlaps subnet '{sibling.name}' ({b}).",
                        )
    if existing is not None:
        users = engine.store.referrers(existing.id)
        had = _delegated_to_aci(existing)
        if (
            had
            and not _delegated_to_aci(subnet)
            and any(u.type.lower() == ACI_DELEGATION.lower() for u in users)
        ):
            raise ArmError(
                400,
                "SubnetDelegationsCannotChangeWhenSubnetUsedByContainerGroup",
                f"Delegations of subnet {subnet.id} cannot be changed while a container group uses it.",
            )


def _prepare_vnet_prefixes(engine: Engine, vnet: Resource, existing: Resource | None) -> None:
    _ = existing
    vnet.props.setdefault("enableDdosProtection", False)
    vnet.props["resourceGuid"] = stable_uuid(vnet.id)


def _synthesize_subnet(engine: Engine, subnet: Resource, existing: Resource | None) -> None:
    subnet.props.setdefault("privateEndpointNetworkPolicies", "Disabled")
    subnet.props.setdefault("privateLinkServiceNetworkPolicies", "Enabled")
    for d in subnet.props.get("delegations") or []:
        if not isinstance(d, dict) or not d.get("name"):
            raise ArmError(400, "InvalidRequestFormat", "Each subnet delegation needs a name.")
        d["id"] = f"{subnet.id}/delegations/{d['name']}"
        d["type"] = f"{SUBNET}/delegations"
        dp = d.setdefault("properties", {})
        dp["provisioningState"] = "Succeeded"
        dp.setdefault("actions", ["Microsoft.Network/virtualNetworks/subnets/action"])


def _delegated_to_aci(subnet: Resource) -> bool:
    return any(
        str((d.get("properties") or {}).get("serviceName", "")).lower() == ACI_DELEGATION.lower()
        for d in subnet.props.get("delegations") or []
    )


def _render_subnet(
    engine: Engine, subnet: Resource, body: dict[str, Any], listing: bool, expand: str
) -> None:
    configs, endpoints, groups = [], [], []
    for user in engine.store.referrers(subnet.id):
        t = user.type.lower()
        if t == NIC.lower():
            for ip in user.props.get("ipConfigurations") or []:
                if (
                    str(((ip.get("properties") or {}).get("subnet") or {}).get("id", "")).lower()
                    == subnet.key
                ):
                    configs.append({"id": ip["id"]})
        elif t == PE.lower():
            endpoints.append({"id": user.id})
        elif t == ACI_DELEGATION.lower():
            groups.append({"id": user.id})
    if configs:
        body["properties"]["ipConfigurations"] = configs
    if endpoints:
        body["properties"]["privateEndpoints"] = endpoints
    body["type"] = SUBNET


def is_delegated_to_aci(subnet: Resource) -> bool:
    return _delegated_to_aci(subnet)


# Network security groups ---------------------------------------------------------------------
_DEFAULT_RULES = [
    ("AllowVnetInBound", 65000, "Inbound", "Allow", "VirtualNetwork", "VirtualNetwork"),
    ("AllowAzureLoadBalancerInBound", 65001, "Inbound", "Allow", "AzureLoadBalancer", "*"),
    ("DenyAllInBound", 65500, "Inbound", "Deny", "*", "*"),
    ("AllowVnetOutBound", 65000, "Outbound", "Allow", "VirtualNetwork", "VirtualNetwork"),
    ("AllowInternetOutBound", 65001, "Outbound", "Allow", "*", "Internet"),
    ("DenyAllOutBound", 65500, "Outbound", "Deny", "*", "*"),
]


def _synthesize_nsg(engine: Engine, nsg: Resource, existing: Resource | None) -> None:
    nsg.props["resourceGuid"] = stable_uuid(nsg.id)
    nsg.props["defaultSecurityRules"] = [
        {
            "id": f"{nsg.id}/defaultSecurityRules/{name}",
            "name": name,
            "type": f"{NSG}/defaultSecurityRules",
            "properties": {
                "priority": prio,
                "direction": direction,
                "access": access,
                "protocol": "*",
                "sourceAddressPrefix": src,
                "destinationAddressPrefix": dst,
                "sourcePortRange": "*",
                "destinationPortRange": "*",
                "provisioningState": "Succeeded",
                "description": "Default rule",
            },
        }
        for name, prio, direction, access, src, dst in _DEFAULT_RULES
    ]


def _validate_rule(engine: Engine, rule: Resource, existing: Resource | None) -> None:
    p = rule.props
    priority = p.get("priority")
    if not isinstance(priority, int) or not 100 <= priority <= 4096:
        raise ArmError(
            400,
            "SecurityRuleInvalidPriority",
            f"Security rule {rule.name} has invalid priority {priority}. Value provided: {priority} "
            "Allowed range 100-4096.",
        )
    for field_name, allowed in (
        ("direction", {"inbound", "outbound"}),
        ("access", {"allow", "deny"}),
        ("protocol", {"tcp", "udp", "icmp", "esp", "ah", "*"}),
    ):
        if str(p.get(field_name, "")).lower() not in allowed:
            raise ArmError(
                400,
                "SecurityRuleParameterInvalid",
                f"Security rule {rule.name} has invalid {field_name} '{p.get(field_name)}'.",
            )
    nsg_id = rule.id.rsplit("/", 2)[0]
    for sibling in engine.store.children(nsg_id, RULE):
        sp = sibling.props
        if (
            sibling.key != rule.key
            and sp.get("priority") == priority
            and sp.get("direction") == p.get("direction")
        ):
            raise ArmError(
                400,
                "SecurityRuleConflict",
                f"Security rule {rule.name} conflicts with rule {sibling.name}: rules cannot have the "
                f"same Priority and Direction.",
            )


def _render_nsg(engine: Engine, nsg: Resource, body: dict[str, Any], listing: bool, expand: str) -> None:
    subnets, nics = [], []
    for user in engine.store.referrers(nsg.id):
        if user.type.lower() == SUBNET.lower():
            subnets.append({"id": user.id})
        elif user.type.lower() == NIC.lower():
            nics.append({"id": user.id})
    if subnets:
        body["properties"]["subnets"] = subnets
    if nics:
        body["properties"]["networkInterfaces"] = nics


# NICs, public IPs, load balancers ------------------------------------------------------------
def _synthesize_nic(engine: Engine, nic: Resource, existing: Resource | None) -> None:
    if not nic.props.get("ipConfigurations"):
        raise ArmError(
            400,
            "NetworkInterfaceMustHaveAtLeastOneIpConfiguration",
            f"Network interface {nic.name} must have at least one IP configuration.",
        )
    assign_ips(engine, nic, existing, "ipConfigurations", "ipConfigurations")
    configs = nic.props["ipConfigurations"]
    if not any((c.get("properties") or {}).get("primary") for c in configs):
        configs[0]["properties"]["primary"] = True
    nic.props["resourceGuid"] = stable_uuid(nic.id)
    digest = stable_uuid(nic.id).replace("-", "").upper()
    nic.props.setdefault("macAddress", "00-0D-3A-" + "-".join(digest[i : i + 2] for i in range(0, 6, 2)))
    nic.props.setdefault("enableAcceleratedNetworking", False)
    nic.props.setdefault("nicType", "Standard")


def _render_nic(engine: Engine, nic: Resource, body: dict[str, Any], listing: bool, expand: str) -> None:
    for user in engine.store.referrers(nic.id):
        if user.type.lower() == "microsoft.compute/virtualmachines":
            body["properties"]["virtualMachine"] = {"id": user.id}
        elif user.type.lower() == PE.lower():
            body["properties"]["privateEndpoint"] = {"id": user.id}


def _synthesize_pip(engine: Engine, pip: Resource, existing: Resource | None) -> None:
    # Documentation range (TEST-NET-3): never routable, only ever shown.
    digest = int(stable_uuid(pip.id).replace("-", ""), 16)
    pip.props.setdefault("ipAddress", f"203.0.113.{digest % 250 + 1}")
    pip.props.setdefault("publicIPAllocationMethod", "Static")
    pip.props.setdefault("publicIPAddressVersion", "IPv4")
    pip.body.setdefault("sku", {"name": "Standard", "tier": "Regional"})


def _synthesize_lb(engine: Engine, lb: Resource, existing: Resource | None) -> None:
    assign_ips(engine, lb, existing, "frontendIPConfigurations", "frontendIPConfigurations")
    for prop in ("backendAddressPools", "loadBalancingRules", "probes", "inboundNatRules"):
        name_sub_ids(lb, prop)
    lb.body.setdefault("sku", {"name": "Standard", "tier": "Regional"})


# Private endpoints and private link services -------------------------------------------------
def _validate_pls(engine: Engine, pls: Resource, existing: Resource | None) -> None:
    if not pls.props.get("loadBalancerFrontendIpConfigurations"):
        raise ArmError(
            400,
            "PrivateLinkServiceMustHaveLoadBalancerFrontendIpConfigurations",
            f"Private link service {pls.name} needs loadBalancerFrontendIpConfigurations.",
        )
    for config in pls.props.get("ipConfigurations") or []:
        subnet_id = ((config.get("properties") or {}).get("subnet") or {}).get("id")
        subnet = engine.store.get(subnet_id) if subnet_id else None
        if (
            subnet is not None
            and str(subnet.props.get("privateLinkServiceNetworkPolicies", "")).lower() != "disabled"
        ):
            raise ArmError(
                400,
                "PrivateLinkServiceCannotBeCreatedInSubnetThatHasNetworkPoliciesEnabled",
                f"Private link service {pls.id} cannot be created in subnet {subnet.id} since it has "
                "private link service network policies enabled.",
            )


def _synthesize_pls(engine: Engine, pls: Resource, existing: Resource | None) -> None:
    assign_ips(engine, pls, existing, "ipConfigurations", "ipConfigurations")
    guid = stable_uuid(pls.id)
    pls.props["alias"] = f"{pls.name}.{guid}.{(pls.location or '').lower()}.azure.privatelinkservice"
    pls.props.setdefault("visibility", {"subscriptions": []})
    pls.props.setdefault("autoApproval", {"subscriptions": []})


def _render_pls(engine: Engine, pls: Resource, body: dict[str, Any], listing: bool, expand: str) -> None:
    connections = []
    for user in engine.store.referrers(pls.id):
        if user.type.lower() == PE.lower():
            connections.append(
                {
                    "id": f"{pls.id}/privateEndpointConnections/{user.name}.{stable_uuid(user.id)[:8]}",
                    "name": f"{user.name}.{stable_uuid(user.id)[:8]}",
                    "type": f"{PLS}/privateEndpointConnections",
                    "properties": {
                        "privateEndpoint": {"id": user.id},
                        "provisioningState": "Succeeded",
                        "privateLinkServiceConnectionState": {
                            "status": "Approved",
                            "description": "Auto-Approved",
                            "actionsRequired": "None",
                        },
                    },
                }
            )
    body["properties"]["privateEndpointConnections"] = connections


def _synthesize_pe(engine: Engine, pe: Resource, existing: Resource | None) -> None:
    from ..store import Resource as StoredResource

    subnet_id = (pe.props.get("subnet") or {}).get("id")
    if not subnet_id:
        raise ArmError(400, "PrivateEndpointSubnetMissing", f"Private endpoint {pe.name} needs a subnet.")
    connections = pe.props.get("privateLinkServiceConnections") or []
    for c in connections + (pe.props.get("manualPrivateLinkServiceConnections") or []):
        c["id"] = f"{pe.id}/privateLinkServiceConnections/{c.get('name', 'connection')}"
        cp = c.setdefault("properties", {})
        cp["provisioningState"] = "Succeeded"
        cp["privateLinkServiceConnectionState"] = {
            "status": "Approved",
            "description": "Auto-Approved",
            "actionsRequired": "None",
        }
    nic_id = existing.state.get("nic_id") if existing else None
    if nic_id is None or engine.store.get(nic_id) is None:
        group_prefix = pe.id.split("/providers/")[0]
        suffix = f"{secrets.token_hex(4)}-{stable_uuid(pe.id)[:8]}"
        nic_id = f"{group_prefix}/providers/{NIC}/{pe.name}.nic.{suffix}"
        nic = StoredResource(
            nic_id,
            NIC,
            {
                "id": nic_id,
                "name": nic_id.rsplit("/", 1)[-1],
                "type": NIC,
                "location": pe.location,
                "properties": {
                    "ipConfigurations": [
                        {"name": "privateEndpointIpConfig", "properties": {"subnet": {"id": subnet_id}}}
                    ]
                },
            },
        )
        _synthesize_nic(engine, nic, None)
        nic.props["provisioningState"] = "Succeeded"
        engine.add_managed(nic)
    pe.state["nic_id"] = nic_id
    pe.props["networkInterfaces"] = [{"id": nic_id}]
    nic_body = engine.store.get(nic_id)
    ip = ""
    if nic_body is not None:
        ip = nic_body.props["ipConfigurations"][0]["properties"].get("privateIPAddress", "")
    pe.props["customDnsConfigs"] = []
    pe.props["ipConfigurations"] = []
    pe.state["private_ip"] = ip


def _cascade_pe(engine: Engine, pe: Resource) -> list[str]:
    nic_id = pe.state.get("nic_id")
    return [nic_id] if nic_id else []


SPECS = [
    TypeSpec(
        VNET,
        embedded={"subnets": SUBNET},
        validate=_validate_vnet,
        synthesize=_prepare_vnet_prefixes,
        on_ready=_changed,
        on_delete=_deleted,
    ),
    TypeSpec(
        SUBNET,
        located=False,
        validate=_validate_subnet,
        synthesize=_synthesize_subnet,
        refs=(Ref("properties.networkSecurityGroup.id"), Ref("properties.routeTable.id")),
        in_use=(400, "InUseSubnetCannotBeDeleted"),
        render=_render_subnet,
        on_ready=_changed,
        on_delete=_deleted,
    ),
    TypeSpec(
        NSG,
        embedded={"securityRules": RULE},
        synthesize=_synthesize_nsg,
        render=_render_nsg,
        in_use=(400, "InUseNetworkSecurityGroupCannotBeDeleted"),
        on_ready=_changed,
        on_delete=_deleted,
    ),
    TypeSpec(RULE, located=False, validate=_validate_rule, on_ready=_changed, on_delete=_deleted),
    TypeSpec(
        NIC,
        synthesize=_synthesize_nic,
        render=_render_nic,
        in_use=(400, "NicInUse"),
        in_use_by={PE.lower(): "NicInUseWithPrivateEndpoint"},
        refs=(
            Ref("properties.ipConfigurations[].properties.subnet.id"),
            Ref("properties.ipConfigurations[].properties.publicIPAddress.id"),
            Ref("properties.ipConfigurations[].properties.loadBalancerBackendAddressPools[].id"),
            Ref("properties.networkSecurityGroup.id"),
        ),
        on_ready=_changed,
        on_delete=_deleted,
    ),
    TypeSpec(PIP, synthesize=_synthesize_pip, in_use=(400, "PublicIPAddressInUse")),
    TypeSpec(
        LB,
        synthesize=_synthesize_lb,
        in_use=(400, "InUseLoadBalancerCannotBeDeleted"),
        in_use_by={PLS.lower(): "LoadBalancerInUseByPrivateLinkService"},
        refs=(
            Ref("properties.frontendIPConfigurations[].properties.subnet.id"),
            Ref("properties.frontendIPConfigurations[].properties.publicIPAddress.id"),
        ),
        on_ready=_changed,
        on_delete=_deleted,
    ),
    TypeSpec(
        PLS,
        validate=_validate_pls,
        synthesize=_synthesize_pls,
        render=_render_pls,
        in_use=(400, "PrivateLinkServiceInUseByPrivateEndpoint"),
        refs=(
            Ref("properties.loadBalancerFrontendIpConfigurations[].id"),
            Ref("properties.ipConfigurations[].properties.subnet.id"),
        ),
        on_ready=_changed,
        on_delete=_deleted,
    ),
    TypeSpec(
        PE,
        synthesize=_synthesize_pe,
        cascade=_cascade_pe,
        refs=(
            Ref("properties.subnet.id"),
            Ref(
                "properties.privateLinkServiceConnections[].properties.privateLinkServiceId",
                same_location=False,
            ),
            Ref("properties.networkInterfaces[].id"),
        ),
        on_ready=_changed,
        on_delete=_deleted,
    ),
]
