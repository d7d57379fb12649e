#!/usr/bin/env python3
"""Write the JSON schemas kubeconform needs to validate kaib's manifests offline.

Two folders under OUT:
- ``OUT/kubernetes/<kind>-<group>-<version>.json``: standalone Kubernetes schemas (strict: unknown
  fields rejected) made from the kubernetes-validate package. Its files point into a shared
  ``/api/_definitions.json``; kubeconform cannot follow that path, so each file gets the definitions
  it reaches inlined under ``$defs``.
- ``OUT/crds/<group>/<kind>_<version>.json``: one schema per version of each CRD in the given files,
  from its openAPIV3Schema (nullable, int-or-string and preserve-unknown-fields translated; objects
  closed as in strict mode; metadata checked as a real ObjectMeta).

kubeconform flags: ``-schema-location 'OUT/kubernetes/{{ .ResourceKind }}{{ .KindSuffix }}.json'
-schema-location 'OUT/crds/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json'``
(``locations(OUT)`` returns them).

Usage: ``uv run --frozen python scripts/kubeconform_schemas.py OUT [CRD.yaml ...]``
(default CRDs: charts/kaib/crds/*.yaml).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[1]
KUBERNETES_VERSION = "1.36.0"
DEFS_PREFIX = "/api/_definitions.json#/$defs/"
LOCAL_PREFIX = "#/$defs/"  # how _definitions.json refers to itself
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
DRAFT = "https://json-schema.org/draft/2020-12/schema"

# The kinds kaib's chart and examples use; a kind missing here makes kubeconform fail loudly.
KUBERNETES_KINDS = (
    "configmap-v1",
    "service-v1",
    "serviceaccount-v1",
    "secret-v1",
    "namespace-v1",
    "deployment-apps-v1",
    "clusterrole-rbac-v1",
    "clusterrolebinding-rbac-v1",
    "role-rbac-v1",
    "rolebinding-rbac-v1",
    "poddisruptionbudget-policy-v1",
    "networkpolicy-networking-v1",
    "customresourcedefinition-apiextensions-v1",
)


def kubernetes_schema_dir(version: str = KUBERNETES_VERSION) -> Path:
    return Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{version}-local-strict"


def locations(out: Path) -> list[str]:
    return [
        str(out / "kubernetes" / "{{ .ResourceKind }}{{ .KindSuffix }}.json"),
        str(out / "crds" / "{{ .Group }}" / "{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"),
    ]


def _refs(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        for prefix in (DEFS_PREFIX, LOCAL_PREFIX):
            if isinstance(ref, str) and ref.startswith(prefix):
                yield ref[len(prefix) :]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _rewrite_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: (LOCAL_PREFIX + value[len(DEFS_PREFIX) :])
            if key == "$ref" and isinstance(value, str) and value.startswith(DEFS_PREFIX)
            else _rewrite_refs(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(value) for value in node]
    return node


def standalone(schema: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with every definition it reaches (transitively) inlined under ``$defs``."""
    needed: set[str] = set()
    pending = list(_refs(schema))
    while pending:
        name = pending.pop()
        if name not in needed:
            needed.add(name)
            pending.extend(_refs(definitions[name]))
    result = _rewrite_refs(schema)
    result["$schema"] = DRAFT
    result["$defs"] = {name: _rewrite_refs(definitions[name]) for name in sorted(needed)}
    return result


def _json_schema(node: Any) -> Any:
    """An OpenAPI v3 (structural CRD) schema as JSON schema, closed like kubeconform's strict mode."""
    if isinstance(node, list):
        return [_json_schema(value) for value in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties"):
            out[key] = {name: _json_schema(sub) for name, sub in value.items()}
        elif key == "nullable" or key.startswith("x-kubernetes-"):
            continue
        else:
            out[key] = _json_schema(value)
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if (
        out.get("type") == "object"
        and "properties" in out
        and "additionalProperties" not in out
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def crd_schemas(crd: dict[str, Any], definitions: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"<group>/<kind>_<version>.json": schema}`` for each served version of ``crd``."""
    group = crd["spec"]["group"]
    kind = crd["spec"]["names"]["kind"]
    result = {}
    for version in crd["spec"]["versions"]:
        schema = _json_schema(version["schema"]["openAPIV3Schema"])
        properties = schema.setdefault("properties", {})
        properties["apiVersion"] = {"type": "string", "enum": [f"{group}/{version['name']}"]}
        properties["kind"] = {"type": "string", "enum": [kind]}
        properties["metadata"] = {"$ref": DEFS_PREFIX + OBJECT_META}
        schema.setdefault("type", "object")
        schema["additionalProperties"] = False
        result[f"{group}/{kind.lower()}_{version['name']}.json"] = standalone(schema, definitions)
    return result


def write(out: Path, crd_files: Iterable[Path]) -> None:
    source = kubernetes_schema_dir()
    definitions = json.loads((source / "_definitions.json").read_text())["$defs"]
    for name in KUBERNETES_KINDS:
        schema = json.loads((source / f"{name}.json").read_text())
        _dump(out / "kubernetes" / f"{name}.json", standalone(schema, definitions))
    for path in crd_files:
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") == "CustomResourceDefinition":
                for relative, schema in crd_schemas(document, definitions).items():
                    _dump(out / "crds" / relative, schema)


def _dump(path: Path, schema: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(schema))


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    crds = [Path(a) for a in argv[1:]] or sorted((ROOT / "charts" / "kaib" / "crds").glob("*.yaml"))
    write(Path(argv[0]), crds)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
