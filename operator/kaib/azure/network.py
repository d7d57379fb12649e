"""Network resources of the three topologies (aib-inventory.md section 3).

NoVNet: a VNet with an ACI subnet (delegated) and a build subnet, NSGs that let only the ACI subnet
reach the build subnet on 22 (SSH) and 5986 (WinRM); no public IP.
SubnetOnly: a temporary VNet with an ACI subnet and a private-endpoint subnet, NSGs, and the path
ACI -> private endpoint -> private link service -> internal load balancer -> proxy VM (in the user's
subnet) on 60001 (Linux) / 60000 (Windows).
Subnets are declared inside the VNet body: a VNet PUT without them would drop them.
"""

from __future__ import annotations

from typing import Any

from kaib.azure import spec as t
from kaib.azure.context import BuildContext
from kaib.azure.spec import ResourceSpec

ACI_DELEGATION = "Microsoft.ContainerInstance/containerGroups"
VNET_PREFIX = "10.0.0.0/16"
BUILD_PREFIX = "10.0.0.0/24"
ACI_PREFIX = "10.0.1.0/24"
PE_PREFIX = "10.0.2.0/24"
SSH_PORT, WINRM_PORT = 22, 5986
PROXY_PORT_LINUX, PROXY_PORT_WINDOWS = 60001, 60000
LB_FRONTEND, LB_POOL, LB_PROBE = "frontend", "proxy-pool", "proxy-probe"


def _rule(name: str, priority: int, direction: str, access: str, **props: Any) -> dict[str, Any]:
    properties = {
        "priority": priority,
        "direction": direction,
        "access": access,
        "protocol": "Tcp",
        "sourcePortRange": "*",
        **props,
    }
    return {"name": name, "properties": properties}


def nsg(ctx: BuildContext, name: str, rules: list[dict[str, Any]]) -> ResourceSpec:
    body = {"location": ctx.location, "tags": ctx.tags(), "properties": {"securityRules": rules}}
    return ctx.spec(t.NSG, name, body, step="network")


def nsg_build(ctx: BuildContext) -> ResourceSpec:
    """The build subnet: SSH and WinRM from the ACI subnet only; nothing else from the VNet."""
    return nsg(
        ctx,
        ctx.names.nsg_build,
        [
            _rule(
                "allow-builder",
                100,
                "Inbound",
                "Allow",
                sourceAddressPrefix=ACI_PREFIX,
                destinationAddressPrefix=BUILD_PREFIX,
                destinationPortRanges=[str(SSH_PORT), str(WINRM_PORT)],
            ),
            _rule(
                "deny-vnet",
                4000,
                "Inbound",
                "Deny",
                protocol="*",
                sourceAddressPrefix="VirtualNetwork",
                destinationAddressPrefix="*",
                destinationPortRange="*",
            ),
        ],
    )


def nsg_aci(ctx: BuildContext, targets: str, ports: list[int]) -> ResourceSpec:
    """The ACI subnet: out to the build VM (or the private endpoint) on the communicator ports."""
    return nsg(
        ctx,
        ctx.names.nsg_aci,
        [
            _rule(
                "allow-to-build",
                100,
                "Outbound",
                "Allow",
                sourceAddressPrefix=ACI_PREFIX,
                destinationAddressPrefix=targets,
                destinationPortRanges=[str(p) for p in ports],
            )
        ],
    )


def nsg_pe(ctx: BuildContext) -> ResourceSpec:
    """The private-endpoint subnet: proxy ports from the ACI subnet only."""
    return nsg(
        ctx,
        ctx.names.nsg_pe,
        [
            _rule(
                "allow-builder",
                100,
                "Inbound",
                "Allow",
                sourceAddressPrefix=ACI_PREFIX,
                destinationAddressPrefix=PE_PREFIX,
                destinationPortRanges=[str(PROXY_PORT_WINDOWS), str(PROXY_PORT_LINUX)],
            )
        ],
    )


def _subnet(ctx: BuildContext, name: str, prefix: str, nsg_name: str, **props: Any) -> dict[str, Any]:
    return {
        "name": name,
        "properties": {
            "addressPrefix": prefix,
            "networkSecurityGroup": {"id": ctx.id(t.NSG, nsg_name)},
            **props,
        },
    }


def _aci_subnet(ctx: BuildContext) -> dict[str, Any]:
    delegation = {"name": "aci", "properties": {"serviceName": ACI_DELEGATION}}
    return _subnet(ctx, ctx.names.aci_subnet, ACI_PREFIX, ctx.names.nsg_aci, delegations=[delegation])


def _vnet(ctx: BuildContext, subnets: list[dict[str, Any]]) -> ResourceSpec:
    body = {
        "location": ctx.location,
        "tags": ctx.tags(),
        "properties": {"addressSpace": {"addressPrefixes": [VNET_PREFIX]}, "subnets": subnets},
    }
    return ctx.spec(t.VNET, ctx.names.vnet, body, step="network")


def vnet_no_vnet(ctx: BuildContext) -> ResourceSpec:
    return _vnet(
        ctx, [_aci_subnet(ctx), _subnet(ctx, ctx.names.build_subnet, BUILD_PREFIX, ctx.names.nsg_build)]
    )


def vnet_subnet_only(ctx: BuildContext) -> ResourceSpec:
    pe = _subnet(
        ctx, ctx.names.pe_subnet, PE_PREFIX, ctx.names.nsg_pe, privateEndpointNetworkPolicies="Disabled"
    )
    return _vnet(ctx, [_aci_subnet(ctx), pe])


def subnet_id(ctx: BuildContext, subnet: str) -> str:
    return ctx.id(t.SUBNET, ctx.names.vnet, subnet)


def load_balancer(ctx: BuildContext, user_subnet_id: str, proxy_port: int) -> ResourceSpec:
    """Internal load balancer in the user's subnet in front of the proxy VM."""
    lb_id = ctx.id(t.LOAD_BALANCER, ctx.names.load_balancer)
    body = {
        "location": ctx.location,
        "tags": ctx.tags(),
        "sku": {"name": "Standard"},
        "properties": {
            "frontendIPConfigurations": [
                {
                    "name": LB_FRONTEND,
                    "properties": {"privateIPAllocationMethod": "Dynamic", "subnet": {"id": user_subnet_id}},
                }
            ],
            "backendAddressPools": [{"name": LB_POOL}],
            "probes": [{"name": LB_PROBE, "properties": {"protocol": "Tcp", "port": proxy_port}}],
            "loadBalancingRules": [
                {
                    "name": "proxy",
                    "properties": {
                        "protocol": "Tcp",
                        "frontendPort": proxy_port,
                        "backendPort": proxy_port,
                        "frontendIPConfiguration": {"id": f"{lb_id}/frontendIPConfigurations/{LB_FRONTEND}"},
                        "backendAddressPool": {"id": f"{lb_id}/backendAddressPools/{LB_POOL}"},
                        "probe": {"id": f"{lb_id}/probes/{LB_PROBE}"},
                    },
                }
            ],
        },
    }
    return ctx.spec(t.LOAD_BALANCER, ctx.names.load_balancer, body, step="network")


def nic(
    ctx: BuildContext, name: str, subnet: str, step: str, backend_pool: str | None = None
) -> ResourceSpec:
    """A NIC without a public IP."""
    ip: dict[str, Any] = {"privateIPAllocationMethod": "Dynamic", "subnet": {"id": subnet}}
    if backend_pool:
        ip["loadBalancerBackendAddressPools"] = [{"id": backend_pool}]
    body = {
        "location": ctx.location,
        "tags": ctx.tags(),
        "properties": {"ipConfigurations": [{"name": "ipconfig", "properties": ip}]},
    }
    return ctx.spec(t.NIC, name, body, step=step)


def proxy_nic(ctx: BuildContext, user_subnet_id: str) -> ResourceSpec:
    pool = f"{ctx.id(t.LOAD_BALANCER, ctx.names.load_balancer)}/backendAddressPools/{LB_POOL}"
    return nic(ctx, ctx.names.proxy_nic, user_subnet_id, "network", backend_pool=pool)


def private_link_service(ctx: BuildContext, user_subnet_id: str) -> ResourceSpec:
    lb_id = ctx.id(t.LOAD_BALANCER, ctx.names.load_balancer)
    body = {
        "location": ctx.location,
        "tags": ctx.tags(),
        "properties": {
            "loadBalancerFrontendIpConfigurations": [
                {"id": f"{lb_id}/frontendIPConfigurations/{LB_FRONTEND}"}
            ],
            "ipConfigurations": [
                {
                    "name": "pls-ip",
                    "properties": {"privateIPAllocationMethod": "Dynamic", "subnet": {"id": user_subnet_id}},
                }
            ],
        },
    }
    return ctx.spec(t.PRIVATE_LINK_SERVICE, ctx.names.private_link_service, body, step="network")


def private_endpoint(ctx: BuildContext) -> ResourceSpec:
    body = {
        "location": ctx.location,
        "tags": ctx.tags(),
        "properties": {
            "subnet": {"id": subnet_id(ctx, ctx.names.pe_subnet)},
            "privateLinkServiceConnections": [
                {
                    "name": "proxy",
                    "properties": {
                        "privateLinkServiceId": ctx.id(t.PRIVATE_LINK_SERVICE, ctx.names.private_link_service)
                    },
                }
            ],
        },
    }
    return ctx.spec(t.PRIVATE_ENDPOINT, ctx.names.private_endpoint, body, step="network")


def private_ip(nic_or_endpoint: dict[str, Any] | None) -> str | None:
    """The first private IP of a NIC (GET body), or None."""
    if not nic_or_endpoint:
        return None
    for config in nic_or_endpoint.get("properties", {}).get("ipConfigurations", []) or []:
        ip = (config.get("properties") or {}).get("privateIPAddress")
        if ip:
            return str(ip)
    return None
