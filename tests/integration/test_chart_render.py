"""The chart checked with the real tools: `helm lint --strict`, and `helm template` for each values
combination that matters validated offline by kubeconform (strict) against Kubernetes 1.36 schemas
and schemas generated from our CRDs; then what each combination must contain.

helm and kubeconform come from scripts/build_tools.py (run by setup.sh). Without them the tests skip,
except under CI, where they fail.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kaib"
KUBE_VERSION = "1.36.0"
NAMESPACE = "kaib-system"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"


@functools.cache
def _script(name: str) -> Any:
    """A module of scripts/ (not a package), registered so its dataclasses work."""
    spec = importlib.util.spec_from_file_location(f"kaib_scripts_{name}", ROOT / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Tools:
    helm: Path
    kubeconform: Path
    schemas: Path

    def helm_template(self, *sets: str) -> list[dict[str, Any]]:
        args = [
            str(self.helm),
            "template",
            "kaib",
            str(CHART),
            "-n",
            NAMESPACE,
            "--kube-version",
            KUBE_VERSION,
        ]
        for item in sets:
            args += ["--set", item]
        out = _run(args)
        return [doc for doc in yaml.safe_load_all(out) if doc]

    def validate(self, manifests: str, *extra: str) -> str:
        args = [str(self.kubeconform), "-strict", "-summary", "-kubernetes-version", KUBE_VERSION]
        for location in _script("kubeconform_schemas").locations(self.schemas):
            args += ["-schema-location", location]
        return _run([*args, *extra, "-"], stdin=manifests)


def _run(args: Sequence[str], stdin: str | None = None) -> str:
    result = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result.stdout


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Tools:
    bin_dir = _script("build_tools").tools_bin()
    helm, kubeconform = bin_dir / "helm", bin_dir / "kubeconform"
    missing = [p.name for p in (helm, kubeconform) if not p.exists()]
    if missing:
        message = f"{', '.join(missing)} not built: run scripts/build_tools.py (setup.sh does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    schemas = tmp_path_factory.mktemp("schemas")
    _script("kubeconform_schemas").write(schemas, sorted((CHART / "crds").glob("*.yaml")))
    return Tools(helm, kubeconform, schemas)


def test_helm_lint_is_clean(tools: Tools) -> None:
    out = _run([str(tools.helm), "lint", "--strict", str(CHART)])
    assert "0 chart(s) failed" in out
    assert "[WARNING]" not in out and "[ERROR]" not in out


COMBINATIONS = {
    "defaults": (),
    "watch-namespaces": ("watchNamespaces={team-a,team-b}",),
    "service-monitor": ("serviceMonitor.enabled=true",),
    "network-policy": ("networkPolicy.enabled=true",),
    "workload-identity": (f"workloadIdentity.clientId={CLIENT_ID}",),
    "standalone-quiet": ("peering.enabled=false", "podDisruptionBudget.enabled=false"),
    "everything": (
        "watchNamespaces={team-a}",
        "serviceMonitor.enabled=true",
        "networkPolicy.enabled=true",
        "dashboards.enabled=true",
        f"workloadIdentity.clientId={CLIENT_ID}",
        "azure.subscriptionId=00000000-0000-0000-0000-000000000001",
        "azure.armEndpoint=https://127.0.0.1:8443",
        "azure.caConfigMap.name=sandbox-ca",
        "image.digest=sha256:" + "a" * 64,
    ),
}


@pytest.mark.parametrize("sets", COMBINATIONS.values(), ids=COMBINATIONS.keys())
def test_rendered_manifests_pass_kubeconform(tools: Tools, sets: tuple[str, ...]) -> None:
    docs = tools.helm_template(*sets)
    manifests = yaml.safe_dump_all(docs)
    # No ServiceMonitor schema offline: its fields are checked by test_service_monitor_scrapes_the_service.
    out = tools.validate(manifests, "-skip", "ServiceMonitor")
    expected = len([d for d in docs if d["kind"] != "ServiceMonitor"])
    assert f"Valid: {expected}, Invalid: 0, Errors: 0" in out


def test_kubeconform_rejects_what_the_api_server_would(tools: Tools) -> None:
    # The schemas are strict and really loaded: an unknown field and a wrong type both fail.
    deployment = next(d for d in tools.helm_template() if d["kind"] == "Deployment")
    deployment["spec"]["replicaz"] = 1
    with pytest.raises(AssertionError, match="replicaz"):
        tools.validate(yaml.safe_dump(deployment))
    build = {
        "apiVersion": "kaib.dev/v1alpha1",
        "kind": "ImageBuild",
        "metadata": {"name": "b", "namespace": "n"},
        "spec": {"templateRef": {"name": "t"}, "cancel": "yes"},
    }
    with pytest.raises(AssertionError, match="cancel"):
        tools.validate(yaml.safe_dump(build))


def test_examples_pass_kubeconform_against_the_crds(tools: Tools) -> None:
    texts = [p.read_text() for p in sorted((ROOT / "examples").glob("*.yaml"))]
    docs = [d for text in texts for d in yaml.safe_load_all(text) if d]
    out = tools.validate(yaml.safe_dump_all(docs))
    assert f"Valid: {len(docs)}, Invalid: 0, Errors: 0" in out


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def rules_for(role: dict[str, Any], group: str, resource: str) -> set[str]:
    return {
        verb
        for rule in role["rules"]
        if group in rule["apiGroups"] and resource in rule["resources"] and not rule.get("resourceNames")
        for verb in rule["verbs"]
    }


def test_defaults_watch_all_namespaces_with_one_cluster_role(tools: Tools) -> None:
    docs = tools.helm_template()
    assert not by_kind(docs, "Role")
    (cluster_role,) = by_kind(docs, "ClusterRole")
    assert rules_for(cluster_role, "", "secrets") == {"create", "get", "list", "delete"}
    assert rules_for(cluster_role, "kaib.dev", "imagebuilds") >= {"get", "list", "watch", "patch", "create"}
    assert "delete" not in rules_for(cluster_role, "kaib.dev", "imagebuilds")
    assert [p["metadata"]["name"] for p in by_kind(docs, "ClusterKopfPeering")] == ["kaib"]
    (deployment,) = by_kind(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["kaib", "run"]
    assert container["args"] == ["--peering=kaib", "--priority=100"]  # no --namespace: all namespaces


def test_watch_namespaces_confines_secrets_to_those_namespaces(tools: Tools) -> None:
    docs = tools.helm_template("watchNamespaces={team-a,team-b}")
    (cluster_role,) = by_kind(docs, "ClusterRole")
    assert not rules_for(cluster_role, "", "secrets")
    assert not rules_for(cluster_role, "kaib.dev", "imagebuilds")
    roles = by_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert all(rules_for(r, "", "secrets") == {"create", "get", "list", "delete"} for r in roles)
    bindings = by_kind(docs, "RoleBinding")
    assert all(b["subjects"][0]["namespace"] == NAMESPACE for b in bindings)
    assert sorted(p["metadata"]["namespace"] for p in by_kind(docs, "KopfPeering")) == ["team-a", "team-b"]
    assert not by_kind(docs, "ClusterKopfPeering")
    (deployment,) = by_kind(docs, "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [a for a in args if a.startswith("--namespace=")] == ["--namespace=team-a", "--namespace=team-b"]


def test_pod_is_restricted_and_single(tools: Tools) -> None:
    (deployment,) = by_kind(tools.helm_template(), "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["kaib", "run"]
    security = container["securityContext"]
    assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_workload_identity_annotation_and_label(tools: Tools) -> None:
    docs = tools.helm_template(f"workloadIdentity.clientId={CLIENT_ID}")
    (account,) = by_kind(docs, "ServiceAccount")
    assert account["metadata"]["annotations"]["azure.workload.identity/client-id"] == CLIENT_ID
    (deployment,) = by_kind(docs, "Deployment")
    assert deployment["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]
    off = tools.helm_template("workloadIdentity.enabled=false")
    (plain,) = by_kind(off, "Deployment")
    assert "azure.workload.identity/use" not in plain["spec"]["template"]["metadata"]["labels"]


def test_service_monitor_scrapes_the_service(tools: Tools) -> None:
    docs = tools.helm_template("serviceMonitor.enabled=true")
    (monitor,) = by_kind(docs, "ServiceMonitor")
    (service,) = by_kind(docs, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"] == "metrics"
    assert not by_kind(tools.helm_template(), "ServiceMonitor")


def test_without_peering_the_operator_runs_standalone(tools: Tools) -> None:
    docs = tools.helm_template("peering.enabled=false")
    assert not by_kind(docs, "ClusterKopfPeering") and not by_kind(docs, "KopfPeering")
    (cluster_role,) = by_kind(docs, "ClusterRole")
    assert not any("kopf.dev" in rule["apiGroups"] for rule in cluster_role["rules"])
    (deployment,) = by_kind(docs, "Deployment")
    assert not deployment["spec"]["template"]["spec"]["containers"][0].get("args")


def test_network_policy_opens_only_the_metrics_port(tools: Tools) -> None:
    docs = tools.helm_template("networkPolicy.enabled=true")
    (policy,) = by_kind(docs, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert [p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]] == ["metrics"]
    assert not by_kind(tools.helm_template(), "NetworkPolicy")


def test_dashboard_config_map_holds_the_dashboard(tools: Tools) -> None:
    docs = tools.helm_template("dashboards.enabled=true")
    (config_map,) = by_kind(docs, "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["data"]["kaib.json"].strip() == (CHART / "dashboards" / "kaib.json").read_text().strip()


def test_ca_config_map_is_mounted_and_named_for_both_http_stacks(tools: Tools) -> None:
    (deployment,) = by_kind(tools.helm_template("azure.caConfigMap.name=sandbox-ca"), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["SSL_CERT_FILE"] == env["REQUESTS_CA_BUNDLE"] == "/etc/kaib/ca/ca.crt"
    assert {"name": "ca", "mountPath": "/etc/kaib/ca", "readOnly": True} in container["volumeMounts"]
    assert {"name": "ca", "configMap": {"name": "sandbox-ca"}} in pod["volumes"]
    (plain,) = by_kind(tools.helm_template(), "Deployment")
    assert "SSL_CERT_FILE" not in {
        e["name"] for e in plain["spec"]["template"]["spec"]["containers"][0]["env"]
    }


def test_values_schema_is_enforced_by_helm(tools: Tools) -> None:
    with pytest.raises(AssertionError, match="clientId"):
        tools.helm_template("workloadIdentity.clientId=nope")


def test_packaged_chart_carries_the_crds(tools: Tools, tmp_path: Path) -> None:
    _run([str(tools.helm), "package", str(CHART), "-d", str(tmp_path)])
    (package,) = tmp_path.glob("kaib-*.tgz")
    crds = _run([str(tools.helm), "show", "crds", str(package)])
    # `helm show crds | kubectl apply -f -` is the upgrade path: one YAML document per CRD.
    kinds = [d["spec"]["names"]["kind"] for d in yaml.safe_load_all(crds) if d]
    assert sorted(kinds) == ["ClusterKopfPeering", "ImageBuild", "ImageTemplate", "KopfPeering"]
