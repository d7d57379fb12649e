"""NSG rules enforced for real on the sandbox network: SSH from the container group's namespace to
the build VM passes or not depending on the rules, as in Azure."""

from __future__ import annotations

import pytest

from kaib.sandbox.runtime import SecurityGroup, SecurityRule
from kaib.sandbox.runtime.netns import read_banner
from kaib.sandbox.runtime.nsg import render
from tests.fixtures.runtime import RuntimeKit

ACI_SUBNET, BUILD_SUBNET = "10.60.2.0/24", "10.60.1.0/24"
ALLOW_SSH = SecurityRule(
    "AllowAciToBuildVm", 100, "Inbound", "Allow", "Tcp", (ACI_SUBNET,), ("*",), ("22", "5986")
)
DENY_ALL_IN = SecurityRule("DenyAllInbound", 4096, "Inbound", "Deny")


def test_render_orders_by_priority_and_keeps_azure_defaults() -> None:
    group = SecurityGroup("build", (DENY_ALL_IN, ALLOW_SSH))
    script = render({BUILD_SUBNET: group}, ["10.60.0.0/16"])
    inbound = script.split("chain nsg_inbound_0 {")[1].split("\n  }")[0]
    order = [line.split('comment "')[1].split()[0] for line in inbound.splitlines() if "comment" in line]
    assert order == ["100", "4096", "65000", "65001", "65500"]
    assert "th dport { 22, 5986 }" in inbound
    assert "ip saddr { 10.60.2.0/24 }" in inbound
    assert "ct state established,related accept" in script
    with pytest.raises(ValueError, match="service tag"):
        render(
            {
                BUILD_SUBNET: SecurityGroup(
                    "x", (SecurityRule("r", 100, "Inbound", "Allow", "*", ("Storage",)),)
                )
            },
            [],
        )
    assert "kaib_nsg {\n" not in render({}, [])  # no bindings: the table is just removed


def test_missing_allow_rule_blocks_ssh_and_allowing_restores_it(sandbox_runtime: RuntimeKit) -> None:
    kit = sandbox_runtime
    net = kit.network()
    key = kit.ssh_key()
    vm = kit.vm(net, "build-vm", "10.60.1.4", key)
    aci = kit.client(net, "aci", "10.60.2.4")
    other = kit.client(net, "other", "10.60.3.4")

    def ssh_ok(client: str) -> bool:
        """sshd's banner arrives (a dropped SYN means no banner within 0.3 s: well above LAN latency)."""
        try:
            return read_banner(client, vm.ip, 22, timeout=0.3).startswith(b"SSH-")
        except OSError:
            return False

    assert ssh_ok(aci)  # no NSG: Azure allows traffic within a VNet

    net.apply_security_groups({BUILD_SUBNET: SecurityGroup("build", (DENY_ALL_IN,))})
    result = kit.ssh(aci, vm.ip, key, "true", connect_timeout=1)
    assert result.returncode == 255 and "timed out" in result.stderr

    net.apply_security_groups({BUILD_SUBNET: SecurityGroup("build", (ALLOW_SSH, DENY_ALL_IN))})
    assert kit.ssh(aci, vm.ip, key, "true").returncode == 0
    assert not ssh_ok(other)  # only the ACI subnet is allowed in

    # An outbound deny on the ACI subnet's own NSG blocks too, even with the inbound allow.
    deny_out = SecurityRule("DenySsh", 200, "Outbound", "Deny", "Tcp", ("*",), ("*",), ("22",))
    net.apply_security_groups(
        {
            BUILD_SUBNET: SecurityGroup("build", (ALLOW_SSH, DENY_ALL_IN)),
            ACI_SUBNET: SecurityGroup("aci", (deny_out,)),
        }
    )
    assert not ssh_ok(aci)

    # A higher-priority (lower number) deny on the VM's NIC beats the subnet's allow.
    nic_deny = SecurityRule("DenyAll", 100, "Inbound", "Deny")
    net.apply_security_groups(
        {BUILD_SUBNET: SecurityGroup("build", (ALLOW_SSH,)), f"{vm.ip}/32": SecurityGroup("nic", (nic_deny,))}
    )
    assert not ssh_ok(aci)
    net.apply_security_groups({})
    assert ssh_ok(aci) and ssh_ok(other)
