"""The test bed itself: a real apiserver that enforces RBAC and serves our CRDs."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.controlplane import Kube


def test_kubectl_talks_to_a_real_apiserver(kube: Kube) -> None:
    version = kube.kubectl("version", "-o", "json").stdout
    assert '"gitVersion": "v1.36' in version
    crds = kube.kubectl("get", "crd", "-o", "name").stdout.split()
    assert "customresourcedefinition.apiextensions.k8s.io/imagetemplates.kaib.dev" in crds
    assert "customresourcedefinition.apiextensions.k8s.io/imagebuilds.kaib.dev" in crds


def test_rbac_is_enforced_for_service_account_tokens(kube: Kube, tmp_path: Path) -> None:
    ns = kube.namespace("rbac-probe")
    kube.kubectl("-n", ns, "create", "serviceaccount", "nobody")
    token = kube.kubectl("-n", ns, "create", "token", "nobody").stdout.strip()
    as_nobody = kube.plane.kubeconfig_for_token(token, tmp_path / "nobody.kubeconfig")

    denied = kube.kubectl(f"--kubeconfig={as_nobody}", "-n", ns, "get", "imagetemplates", check=False)
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr

    kube.kubectl("-n", ns, "create", "role", "reader", "--verb=list", "--resource=imagetemplates.kaib.dev")
    binding = ("create", "rolebinding", "reader", "--role=reader", f"--serviceaccount={ns}:nobody")
    kube.kubectl("-n", ns, *binding)
    allowed = kube.kubectl(f"--kubeconfig={as_nobody}", "-n", ns, "get", "imagetemplates", check=False)
    assert allowed.returncode == 0, allowed.stderr
