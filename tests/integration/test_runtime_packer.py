"""Real Packer from a container group's namespace, over real SSH, into a sandbox VM: the builder's path."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.runtime import RuntimeKit

TEMPLATE = """
source "null" "vm" {
  communicator         = "ssh"
  ssh_host             = "%(ip)s"
  ssh_username         = "azureuser"
  ssh_private_key_file = "%(key)s"
  ssh_timeout          = "20s"
}

build {
  sources = ["source.null.vm"]
  provisioner "shell" {
    inline = ["echo packer-was-here | sudo tee /etc/kaib-packer", "echo home=$${HOME}"]
  }
}
"""


@pytest.mark.skipif(shutil.which("packer") is None, reason="packer is not installed (scripts/setup.sh)")
def test_packer_customizes_vm_from_container_namespace(sandbox_runtime: RuntimeKit, tmp_path: Path) -> None:
    kit = sandbox_runtime
    net = kit.network()
    key = kit.ssh_key()
    vm = kit.vm(net, "build-vm", "10.60.1.4", key)
    aci = kit.client(net, "aci", "10.60.2.4")
    template = tmp_path / "build.pkr.hcl"
    template.write_text(TEMPLATE % {"ip": vm.ip, "key": key.private})
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CHECKPOINT_DISABLE": "1", "PACKER_NO_COLOR": "1"}

    proc = kit.runtime.run_in(aci, ["packer", "build", str(template)], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    out = proc.communicate(timeout=120)[0].decode()

    assert proc.returncode == 0, out
    assert "home=/home/azureuser" in out
    assert (vm.upper_dir / "etc" / "kaib-packer").read_text() == "packer-was-here\n"
    assert not Path("/etc/kaib-packer").exists()
