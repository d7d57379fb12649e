"""Chaos: builds survive operator SIGKILLs, ARM faults, a sandbox restart and an apiserver restart.

Pass, for every build: the outcome it has without faults, no resource created twice (the sandbox's
request log: at most one PUT answered 201 per resource id) and nothing leaked (afterwards only the
staging groups, their storage accounts and the distribution outputs are new in the inventory).
"""

from __future__ import annotations

import time

from tests.fixtures.controlplane import Kube


def test_apiserver_restart_keeps_port_certificates_and_objects(kube: Kube) -> None:
    kube.kubectl("create", "configmap", "chaos-survivor", "-n", "default", "--from-literal=k=v")
    port = kube.plane.port
    before = {p.pid for p in kube.plane._procs}
    started = time.monotonic()
    kube.plane.restart_apiserver(down_seconds=0.5)
    assert time.monotonic() - started >= 0.5
    after = {p.pid for p in kube.plane._procs}
    assert len(before & after) == 1 and len(after) == 2, "etcd kept, a new kube-apiserver process"
    assert kube.plane.port == port and kube.plane.alive()
    # the same kubeconfig (address, CA, token) still works and etcd kept the object
    out = kube.kubectl("get", "configmap", "chaos-survivor", "-n", "default", "-o", "jsonpath={.data.k}")
    assert out.stdout == "v"
    kube.kubectl("delete", "configmap", "chaos-survivor", "-n", "default")
