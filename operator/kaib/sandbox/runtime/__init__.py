"""Sandbox runtime: real, isolated Linux environments standing for Azure VMs, VNets and container groups.

Needs root, network/mount/PID namespaces, overlayfs and nftables (`scripts/setup.sh`); otherwise
`Runtime()` raises `RuntimeUnavailable` naming exactly what is missing (`missing()` lists it).

    from kaib.sandbox.runtime import Network, Runtime, VirtualMachine

    with Runtime() as rt:                                   # state dir /run/kaib-runtime/<id>; close() sweeps
        net = Network.create(rt, "vnet", ["10.60.0.0/16"])  # a namespace holding bridge br0
        vm_ns = net.attach("vm", "10.60.1.4", 24)           # a namespace on the bridge, eth0 10.60.1.4/24
        aci_ns = net.attach("aci", "10.60.2.4", 24)         # on-link routes for the whole VNet are added
        vm = VirtualMachine(rt, "vm", vm_ns, "10.60.1.4", "azureuser", public_key_text)
        vm.start()                                          # returns once sshd answers on 10.60.1.4:22
        host, port = net.expose(10000)                      # host 127.0.0.1:10000 (Azurite) is now
                                                            # reachable from the VNet at (SERVICE_IP, 10000)
        proc = rt.run_in(aci_ns, ["packer", "build", "."], env={...})   # a subprocess.Popen
        ...
        vm.stop(); layer = vm.capture(rt.image_path("img"))  # deallocate, keep the disk as an image layer
        vm2 = VirtualMachine(rt, "vm2", ns2, ip2, "azureuser", key, layers=[layer])  # chained image
        net.apply_security_groups({"10.60.1.0/24": SecurityGroup("nsg", (SecurityRule(...), ...))})
        link = PrivateLinkProxy.create(temp_net, ("pe", "10.70.2.5", 24),
                                       user_net, ("proxy", "10.80.1.5", 24), build_vm_ip)
        # 10.70.2.5:60001 -> build VM:22, :60000 -> :5986

What each piece is:
- Network: a namespace with a Linux bridge; subnets are prefixes. Endpoints get no default route:
  nothing leaves the sandbox. The runtime's SERVICE_IP (100.127.255.254) sits on every bridge;
  `expose()` runs a small TCP forwarder process listening there and connecting to the host's loopback.
- VirtualMachine: `nsenter --net` + `unshare --mount --pid --uts`, an overlay root (lower: captured
  layers, oldest first, over the host `/` read-only; upper/work on the runtime's tmpfs), its own
  /proc, /dev (private devpts), tmpfs /run and /tmp, the admin user with the key in authorized_keys
  and passwordless sudo, a host key of its own, and sshd on its private IP only, password auth off.
  `upper_dir` is the VM's disk; stop() keeps it, delete() removes it, capture(dest) copies it.
  A VM straight from the host root hides homes, /root, non-standard top-level dirs and the host's
  SSH host keys (whiteouts in its first layer). VMs start in ~0.1 s and take ~5 MiB (bench/vms.py).
- NSGs (nsg.py): Azure semantics (priorities, default rules incl. AllowVnetInBound, stateful), as
  an `inet` nft table on the forward hook of the network's namespace, seeing bridged traffic through
  br_netfilter (this kernel has no bridge conntrack). Bind an NSG to a subnet prefix or a NIC's /32.
- PrivateLinkProxy (proxy.py): the subnetId-only path, private endpoint -> ... -> proxy VM, as one
  forwarder hop across two networks; the build VM sees connections from the proxy VM's address.
- run_in(namespace, argv, env): a container group's process. Only the network is isolated (plain
  `nsenter --net`, like `ip netns exec`): it sees the host filesystem.
- sweep(state_dir) / Runtime.close(): kills recorded processes, deletes the runtime's namespaces
  (with their veths, bridges and nft tables) and unmounts its tmpfs; sweep_orphans(DEFAULT_ROOT)
  does the same for runtimes whose process died (every new Runtime() runs it first).

The ARM emulator uses all this through `kaib.sandbox.runtime.hooks.RuntimeHooks` (its SandboxHooks):
`Sandbox(Options(hooks=RuntimeHooks()))` makes VNets, NSGs, Linux VMs, captured images, private
endpoint paths and builder container groups real (see that module for what stays modelled).

Tests use the `sandbox_runtime` fixture (tests/fixtures/runtime.py): `.network()`, `.ssh_key()`,
`.vm(net, name, ip, key)`, `.client(net, name, ip)` -> namespace, `.ssh(ns, ip, key, command)`, and
`.runtime` for run_in/expose; everything is swept after the test, pass or fail.
"""

from kaib.sandbox.runtime.errors import CommandFailed, RuntimeUnavailable
from kaib.sandbox.runtime.forwarder import Route
from kaib.sandbox.runtime.network import Network
from kaib.sandbox.runtime.nsg import SecurityGroup, SecurityRule, default_rules
from kaib.sandbox.runtime.proxy import PROXY_PORTS, PrivateLinkProxy
from kaib.sandbox.runtime.runtime import DEFAULT_ROOT, SERVICE_IP, Runtime
from kaib.sandbox.runtime.support import check_support, missing
from kaib.sandbox.runtime.sweep import sweep, sweep_orphans
from kaib.sandbox.runtime.vm import VirtualMachine

__all__ = [
    "DEFAULT_ROOT",
    "PROXY_PORTS",
    "SERVICE_IP",
    "CommandFailed",
    "Network",
    "PrivateLinkProxy",
    "Route",
    "Runtime",
    "RuntimeUnavailable",
    "SecurityGroup",
    "SecurityRule",
    "VirtualMachine",
    "check_support",
    "default_rules",
    "missing",
    "sweep",
    "sweep_orphans",
]
