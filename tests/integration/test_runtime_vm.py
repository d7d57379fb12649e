"""Sandbox VMs for real: sshd in namespaces on an overlay root, reached over a bridge."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.runtime import RuntimeKit


def test_ssh_from_client_namespace_with_key_only(sandbox_runtime: RuntimeKit) -> None:
    net = sandbox_runtime.network()
    key = sandbox_runtime.ssh_key()
    vm = sandbox_runtime.vm(net, "vm", "10.60.1.4", key)
    client = sandbox_runtime.client(net, "aci", "10.60.2.4")

    result = sandbox_runtime.ssh(client, vm.ip, key, "id -un; hostname; sudo -n id -u; grep -w vm /etc/hosts")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:3] == ["azureuser", "vm", "0"]
    assert "10.60.1.4 vm" in result.stdout.splitlines()
    assert "unable to resolve host" not in result.stderr  # the VM knows its own name, as on Azure

    other = sandbox_runtime.ssh_key()  # not in authorized_keys, and passwords are off
    refused = sandbox_runtime.ssh(client, vm.ip, other, "true")
    assert refused.returncode == 255
    assert "Permission denied (publickey)" in refused.stderr


def test_platform_image_hides_the_hosts_private_parts(sandbox_runtime: RuntimeKit) -> None:
    net = sandbox_runtime.network()
    key = sandbox_runtime.ssh_key()
    vm = sandbox_runtime.vm(net, "vm", "10.60.1.4", key)
    client = sandbox_runtime.client(net, "aci", "10.60.2.4")
    look = "ls -A /home; sudo ls -A /root | wc -l; ls /etc/ssh | grep -c host_; test -e /work || echo no-work"
    result = sandbox_runtime.ssh(client, vm.ip, key, look)
    assert result.stdout.split() == ["azureuser", "0", "2", "no-work"], result.stderr  # our key pair only
    assert Path("/work").exists() and any(Path("/etc/ssh").glob("ssh_host_*"))  # the host still has them


def test_customizers_never_touch_the_host(sandbox_runtime: RuntimeKit) -> None:
    net = sandbox_runtime.network()
    key = sandbox_runtime.ssh_key()
    vm = sandbox_runtime.vm(net, "vm", "10.60.1.4", key)
    client = sandbox_runtime.client(net, "aci", "10.60.2.4")
    marker = Path("/etc/kaib-customizer-marker")
    assert not marker.exists()
    hosts_before = Path("/etc/hosts").read_bytes()

    result = sandbox_runtime.ssh(
        client, vm.ip, key,
        f"echo customized | sudo tee {marker} && echo '10.1.2.3 example' | sudo tee -a /etc/hosts"
        " && cat /etc/hosts",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "10.1.2.3 example" in result.stdout
    assert not marker.exists()
    assert Path("/etc/hosts").read_bytes() == hosts_before
    assert (vm.upper_dir / "etc" / marker.name).read_text() == "customized\n"


def test_stop_start_keeps_the_disk(sandbox_runtime: RuntimeKit) -> None:
    net = sandbox_runtime.network()
    key = sandbox_runtime.ssh_key()
    vm = sandbox_runtime.vm(net, "vm", "10.60.1.4", key)
    client = sandbox_runtime.client(net, "aci", "10.60.2.4")
    assert (
        sandbox_runtime.ssh(client, vm.ip, key, "echo kept > ~/state; sleep 300 >/dev/null 2>&1 &").returncode
        == 0
    )

    vm.stop()
    assert not vm.running
    assert sandbox_runtime.ssh(client, vm.ip, key, "true", connect_timeout=1).returncode == 255
    vm.start()
    result = sandbox_runtime.ssh(client, vm.ip, key, "cat ~/state; pgrep -c sleep || true")
    assert result.stdout.split() == ["kept", "0"]  # the disk stayed, the processes did not


def test_vm_from_captured_layer_sees_earlier_changes(sandbox_runtime: RuntimeKit) -> None:
    net = sandbox_runtime.network()
    key = sandbox_runtime.ssh_key()
    client = sandbox_runtime.client(net, "aci", "10.60.2.4")
    vm1 = sandbox_runtime.vm(net, "vm1", "10.60.1.4", key)
    setup = "echo build-1 | sudo tee /etc/kaib-build && sudo rm /etc/motd"
    assert sandbox_runtime.ssh(client, vm1.ip, key, setup).returncode == 0
    vm1.stop()
    image1 = vm1.capture(sandbox_runtime.runtime.image_path("image-1"))
    vm1.delete()

    # A chained build: a second VM from image 1 adds its own change, captured as image 2.
    vm2 = sandbox_runtime.vm(net, "vm2", "10.60.1.5", key, layers=[image1])
    check = "cat /etc/kaib-build; test -e /etc/motd && echo motd || echo no-motd"
    assert sandbox_runtime.ssh(client, vm2.ip, key, check).stdout.split() == ["build-1", "no-motd"]
    assert (
        sandbox_runtime.ssh(client, vm2.ip, key, "echo build-2 | sudo tee -a /etc/kaib-build").returncode == 0
    )
    vm2.stop()
    image2 = vm2.capture(sandbox_runtime.runtime.image_path("image-2"))

    other = sandbox_runtime.ssh_key()
    vm3 = sandbox_runtime.vm(net, "vm3", "10.60.1.6", other, admin_user="builder", layers=[image1, image2])
    result = sandbox_runtime.ssh(client, vm3.ip, other, "cat /etc/kaib-build", user="builder")
    assert result.stdout.split() == ["build-1", "build-2"], result.stderr
    assert not Path("/etc/kaib-build").exists()


@pytest.fixture
def host_http_server() -> Iterator[int]:
    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"hello from the host")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_host_service_on_the_service_address(sandbox_runtime: RuntimeKit, host_http_server: int) -> None:
    net = sandbox_runtime.network()
    client = sandbox_runtime.client(net, "aci", "10.60.2.4")
    ip, port = net.expose(host_http_server, port=8080)
    url = f"http://{ip}:{port}/"
    fetch = f"import urllib.request; print(urllib.request.urlopen('{url}', timeout=3).read().decode())"
    proc = sandbox_runtime.runtime.run_in(client, ["python3", "-c", fetch], stdout=-1, stderr=-1)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert out.decode().strip() == "hello from the host"

    # Only the service address leads out: nothing else of the host is routable from inside.
    probe = f"import socket; socket.create_connection(('127.0.0.1', {host_http_server}), timeout=1)"
    proc = sandbox_runtime.runtime.run_in(client, ["python3", "-c", probe], stdout=-1, stderr=-1)
    proc.communicate(timeout=10)
    assert proc.returncode != 0
    routes = sandbox_runtime.runtime.run_in(client, ["ip", "route"], stdout=-1)
    assert "default" not in routes.communicate(timeout=5)[0].decode()
