"""Network security groups as nftables: the pure translation, from NSG rules to an nft script.

Semantics, as in Azure:
- Rules are evaluated by priority (lowest number first); the first match decides, Allow or Deny.
- Every NSG carries Azure's default rules: inbound AllowVnetInBound (65000),
  AllowAzureLoadBalancerInBound (65001), DenyAllInBound (65500); outbound AllowVnetOutBound (65000),
  AllowInternetOutBound (65001), DenyAllOutBound (65500). So traffic within a VNet flows unless a
  rule denies it: "a missing allow rule blocks" only when a Deny rule (e.g. deny-all at 4096) is
  there, which is how kaib's own NSGs are built.
- Stateful: replies of an allowed connection always pass (conntrack).
- Traffic must pass the source's outbound rules and the destination's inbound rules. An NSG is bound
  to a prefix: a subnet's prefix (subnet NSG) or an address /32 (NIC NSG); all bindings matching a
  packet's source (outbound) or destination (inbound) apply.

How: a table `inet kaib_nsg` in the network's namespace, on the forward hook. Bridged IPv4 goes
through it because the namespace has bridge-nf-call-iptables on; we use the inet family rather
than a `bridge` table because this kernel has no bridge conntrack (nf_conntrack_bridge), and NSGs
are stateful. One chain per binding and direction: Allow returns (the next check goes on), Deny
drops. Not modelled: source port ranges, application security groups, service tags other than
VirtualNetwork, Internet, AzureLoadBalancer and `*`, and the runtime's service address (host
services are reached without passing NSGs, like Azure's platform endpoints).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

TABLE = "kaib_nsg"
AZURE_LOAD_BALANCER = "168.63.129.16"

Direction = Literal["Inbound", "Outbound"]
Access = Literal["Allow", "Deny"]


@dataclass(frozen=True)
class SecurityRule:
    name: str
    priority: int
    direction: Direction
    access: Access
    protocol: str = "*"  # Tcp, Udp, Icmp or *
    source_prefixes: tuple[str, ...] = ("*",)  # CIDRs, addresses, or *, VirtualNetwork, Internet, ...
    destination_prefixes: tuple[str, ...] = ("*",)
    destination_ports: tuple[str, ...] = ("*",)  # "22", "60000-60001" or "*"


@dataclass(frozen=True)
class SecurityGroup:
    name: str
    rules: tuple[SecurityRule, ...] = ()


def default_rules() -> tuple[SecurityRule, ...]:
    """Azure's default security rules, present in every NSG."""
    vnet = ("VirtualNetwork",)
    return (
        SecurityRule("AllowVnetInBound", 65000, "Inbound", "Allow", "*", vnet, vnet),
        SecurityRule("AllowAzureLoadBalancerInBound", 65001, "Inbound", "Allow", "*", ("AzureLoadBalancer",)),
        SecurityRule("DenyAllInBound", 65500, "Inbound", "Deny"),
        SecurityRule("AllowVnetOutBound", 65000, "Outbound", "Allow", "*", vnet, vnet),
        SecurityRule("AllowInternetOutBound", 65001, "Outbound", "Allow", "*", ("*",), ("Internet",)),
        SecurityRule("DenyAllOutBound", 65500, "Outbound", "Deny"),
    )


def _addresses(field: str, prefixes: Sequence[str], vnet: Sequence[str]) -> str | None:
    """An nft match for `ip saddr`/`ip daddr` against NSG prefixes, or None for 'any'."""
    items: list[str] = []
    negate = False
    for prefix in prefixes:
        tag = prefix.lower()
        if tag in ("*", "any", "0.0.0.0/0"):
            return None
        if tag == "virtualnetwork":
            items += vnet
        elif tag == "azureloadbalancer":
            items.append(AZURE_LOAD_BALANCER)
        elif tag == "internet":
            if len(prefixes) > 1:
                raise ValueError("the Internet tag cannot be combined with other prefixes here")
            items, negate = list(vnet), True
        else:
            try:
                items.append(str(ipaddress.ip_network(prefix, strict=False)))
            except ValueError:
                raise ValueError(f"unsupported NSG address prefix or service tag {prefix!r}") from None
    if not items:
        return f"{field} 255.255.255.255 {field} != 255.255.255.255"  # matches nothing
    return f"{field} {'!= ' if negate else ''}{{ {', '.join(dict.fromkeys(items))} }}"


def _ports(ports: Sequence[str]) -> str | None:
    if any(p.strip() == "*" for p in ports):
        return None
    return f"th dport {{ {', '.join(p.strip() for p in ports)} }}"


def rule_to_nft(rule: SecurityRule, vnet: Sequence[str]) -> str:
    """One NSG rule as one nft rule inside a binding's chain (Allow: return, Deny: drop)."""
    parts: list[str] = []
    protocol = rule.protocol.lower()
    ports = _ports(rule.destination_ports)
    if protocol in ("tcp", "udp", "icmp"):
        parts.append(f"meta l4proto {protocol}")
    elif protocol not in ("*", "any"):
        raise ValueError(f"unsupported NSG protocol {rule.protocol!r}")
    elif ports:
        parts.append("meta l4proto { tcp, udp }")
    for match in (
        _addresses("ip saddr", rule.source_prefixes, vnet),
        _addresses("ip daddr", rule.destination_prefixes, vnet),
        ports if protocol != "icmp" else None,
    ):
        if match:
            parts.append(match)
    verdict = "return" if rule.access == "Allow" else "drop"
    return " ".join([*parts, "counter", verdict, f'comment "{rule.priority} {rule.name}"'])


def render(bindings: Mapping[str, SecurityGroup], vnet: Sequence[str]) -> str:
    """The whole nft script for one network: replaces the table atomically (empty bindings: no filter).

    `bindings` maps a prefix (subnet, or a NIC's address) to the NSG bound to it.
    """
    lines = [f"table inet {TABLE} {{}}", f"delete table inet {TABLE}"]
    if not bindings:
        return "\n".join(lines) + "\n"
    # Broader bindings (subnets) before narrower ones (NICs) inbound, the reverse outbound, as Azure does.
    ordered = sorted(bindings.items(), key=lambda kv: ipaddress.ip_network(kv[0], strict=False).prefixlen)
    chains: list[str] = []
    jumps: list[str] = []
    for direction, field, seq in (
        ("Outbound", "ip saddr", list(reversed(ordered))),
        ("Inbound", "ip daddr", ordered),
    ):
        for prefix, group in seq:
            index = ordered.index((prefix, group))
            chain = f"nsg_{direction.lower()}_{index}"
            jumps.append(f"    {field} {ipaddress.ip_network(prefix, strict=False)} jump {chain}")
            rules = sorted(
                (r for r in (*group.rules, *default_rules()) if r.direction == direction),
                key=lambda r: r.priority,
            )
            body = [f"    {rule_to_nft(r, vnet)}" for r in rules]
            chains.append(f"  chain {chain} {{\n    # {direction} rules of NSG {group.name} on {prefix}\n"
                          + "\n".join(body) + "\n  }")  # fmt: skip
    lines.append(f"table inet {TABLE} {{")
    lines.append("  chain forward {")
    lines.append("    type filter hook forward priority 0; policy accept;")
    lines.append("    ct state established,related accept")
    lines += jumps
    lines.append("  }")
    lines += chains
    lines.append("}")
    return "\n".join(lines) + "\n"
