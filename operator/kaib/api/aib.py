"""Conversion between AIB image template JSON and ImageTemplate manifests (pure; no I/O).

AIB side: a whole ARM resource (`{type, apiVersion, name, location, identity, tags, properties}`, as
an ARM template or `az resource show` gives it) or a bare `properties` object, API versions
2022-02-14 through 2024-02-01. Every field of those versions is a field of 2024-02-01 under the same
name (deprecated `replicationRegions` and SharedImage `storageAccountType` included), so conversion
is a mapping of the envelope:

    properties.*        <-> spec.*               (same names)
    identity            <-> spec.identity
    location            <-> spec.azure.location  (normalized: "East US" -> eastus)
    subscription of id  <-> spec.azure.subscriptionId (or given by the caller)
    name                <-> metadata.name        (made a Kubernetes name; the original kept in an
                                                  annotation when it differs)
    tags                <-> annotation kaib.dev/aib-tags (JSON)

Strings are read as ARM reads a template: one that starts with '[' and ends with ']' is an ARM
template expression (refused: it has no value yet), "[[...]" is ARM's escape for the literal "[...]";
converting back escapes such strings again, so `[ -f x ]` in an inline command survives both ways.

Read-only fields AIB reports (provisioningState, lastRunStatus, exactVersion, ...) are dropped.
Anything else unknown is an error naming its path, as AIB 2024-02-01 rejects unknown fields. Older
API versions know fewer fields (`since` below, from the published REST specs), so a field newer than
the template's apiVersion is an error too, both ways.
"""

from __future__ import annotations

import json
import re
from typing import Any

from kaib.api.build import API_VERSION
from kaib.api.manifest import InvalidManifest, Problem, validate_manifest

RESOURCE_TYPE = "Microsoft.VirtualMachineImages/imageTemplates"
API_VERSIONS = ("2022-02-14", "2022-07-01", "2023-07-01", "2024-02-01")
LATEST_API_VERSION = API_VERSIONS[-1]
NAME_ANNOTATION = "kaib.dev/aib-name"
TAGS_ANNOTATION = "kaib.dev/aib-tags"

_ENVELOPE = {"type", "apiVersion", "name", "location", "tags", "identity", "properties", "id", "dependsOn"}
_READ_ONLY_ENVELOPE = {"id", "dependsOn", "systemData", "etag"}
_READ_ONLY_PROPERTIES = {
    "provisioningState",
    "provisioningError",
    "lastRunStatus",
    "exactStagingResourceGroup",
}
_SUBSCRIPTION = re.compile(r"(?i)^/subscriptions/([^/]+)")


def is_resource(doc: dict[str, Any]) -> bool:
    """True for a whole ARM resource, False for a bare `properties` object."""
    return isinstance(doc.get("properties"), dict) and "source" not in doc and "distribute" not in doc


def aib_to_manifest(
    doc: Any,
    *,
    name: str | None = None,
    namespace: str | None = None,
    subscription_id: str | None = None,
    location: str | None = None,
) -> dict[str, Any]:
    """An ImageTemplate manifest from AIB JSON; InvalidManifest (AIB paths) when it does not convert.

    Keyword arguments fill what a bare `properties` object cannot say, and win over the resource's.
    """
    if not isinstance(doc, dict):
        raise InvalidManifest([("", "an AIB template must be a JSON object")])
    doc, problems = from_arm_strings(doc, "")
    if is_resource(doc):
        problems += _envelope_problems(doc)
        resource = doc
        props_path = "properties"
    else:
        resource = {"properties": doc}
        props_path = ""
    if problems:
        raise InvalidManifest(problems)

    properties = _strip_read_only(resource["properties"])
    problems = version_problems(properties, resource.get("apiVersion") or LATEST_API_VERSION, props_path)
    if problems:
        raise InvalidManifest(problems)
    aib_name = name or resource.get("name")
    sub = subscription_id or _subscription_of(resource.get("id", ""))
    loc = location or resource.get("location")
    missing = []
    if not aib_name:
        missing.append(("name", "no template name: pass --name"))
    if not sub:
        missing.append(("id", "no subscription: pass --subscription-id (or convert a resource with an id)"))
    if not loc:
        missing.append(("location", "no location: pass --location"))
    if missing:
        raise InvalidManifest(missing)

    assert isinstance(aib_name, str) and isinstance(loc, str)
    k8s_name = kubernetes_name(aib_name)
    metadata: dict[str, Any] = {"name": k8s_name}
    if namespace:
        metadata["namespace"] = namespace
    annotations = {}
    if k8s_name != aib_name:
        annotations[NAME_ANNOTATION] = aib_name
    if resource.get("tags"):
        annotations[TAGS_ANNOTATION] = json.dumps(resource["tags"], sort_keys=True)
    if annotations:
        metadata["annotations"] = annotations

    spec: dict[str, Any] = {"azure": {"subscriptionId": sub, "location": normalize_location(loc)}}
    identity = resource.get("identity")
    if identity is not None:
        spec["identity"] = _strip_identity(identity)
    spec.update(properties)
    manifest = {"apiVersion": API_VERSION, "kind": "ImageTemplate", "metadata": metadata, "spec": spec}
    problems = [(_aib_path(path, props_path), message) for path, message in validate_manifest(manifest)]
    if problems:
        raise InvalidManifest(problems)
    return manifest


def manifest_to_aib(manifest: dict[str, Any], *, api_version: str = LATEST_API_VERSION) -> dict[str, Any]:
    """The ARM resource of an ImageTemplate manifest (validated first; InvalidManifest if not valid)."""
    problems = validate_manifest(manifest)
    if problems:
        raise InvalidManifest(problems)
    metadata = manifest.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    spec = dict(manifest["spec"])
    azure = spec.pop("azure")
    identity = spec.pop("identity", None)
    resource: dict[str, Any] = {
        "type": RESOURCE_TYPE,
        "apiVersion": api_version,
        "name": annotations.get(NAME_ANNOTATION, metadata.get("name")),
        "location": azure["location"],
    }
    if TAGS_ANNOTATION in annotations:
        resource["tags"] = json.loads(annotations[TAGS_ANNOTATION])
    if identity is not None:
        resource["identity"] = identity
    resource["properties"] = spec
    problems = version_problems(spec, api_version, "spec")
    if problems:
        raise InvalidManifest(problems)
    escaped: dict[str, Any] = to_arm_strings(resource)
    return escaped


def kubernetes_name(aib_name: str) -> str:
    """An AIB template name (^[A-Za-z0-9-_.]{1,64}$) as a Kubernetes object name."""
    name = re.sub(r"[^a-z0-9.-]", "-", aib_name.lower()).strip("-.")
    return name or "template"


def normalize_location(location: str) -> str:
    """ARM accepts display names ("East US"); Azure APIs return the short form (eastus)."""
    return location.replace(" ", "").lower()


def version_problems(
    properties: dict[str, Any], api_version: str, prefix: str = "properties"
) -> list[Problem]:
    """Fields of `properties` that `api_version` does not have yet (and 2022-02-14's required one)."""
    if api_version not in API_VERSIONS:
        return []
    found: list[tuple[str, str]] = []  # (path, version that introduced it)
    for key, since in (("optimize", "2022-07-01"), ("errorHandling", "2023-07-01"), ("autoRun", "2024-02-01"),
                       ("managedResourceTags", "2024-02-01")):  # fmt: skip
        if key in properties:
            found.append((key, since))
    # Wrong types are reported by validation afterwards; here they only must not crash.
    vnet = _object(_object(properties.get("vmProfile")).get("vnetConfig"))
    if "containerInstanceSubnetId" in vnet:
        found.append(("vmProfile.vnetConfig.containerInstanceSubnetId", "2024-02-01"))
    for i, step in enumerate(_list(_object(properties.get("validate")).get("inVMValidations"))):
        if isinstance(step, dict) and step.get("type") == "File":
            found.append((f"validate.inVMValidations[{i}]", "2022-07-01"))
    problems: list[Problem] = []
    for i, dist in enumerate(_list(properties.get("distribute"))):
        if not isinstance(dist, dict):
            continue
        found += [
            (f"distribute[{i}].{key}", "2022-07-01")
            for key in ("targetRegions", "versioning", "uri")
            if key in dist
        ]
        if (
            api_version == "2022-02-14"
            and dist.get("type") == "SharedImage"
            and "replicationRegions" not in dist
        ):
            problems.append(
                (
                    _join(prefix, f"distribute[{i}].replicationRegions"),
                    "Required value in API version 2022-02-14",
                )
            )
    problems += [
        (_join(prefix, path), f"needs API version {since} or later, not {api_version}")
        for path, since in found
        if api_version < since
    ]
    return sorted(problems)


def _join(prefix: str, path: str) -> str:
    return f"{prefix}.{path}" if prefix else path


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _envelope_problems(doc: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = [
        (key, "unknown field") for key in doc if key not in _ENVELOPE | _READ_ONLY_ENVELOPE
    ]
    kind = doc.get("type")
    if kind is not None and str(kind).lower() != RESOURCE_TYPE.lower():
        problems.append(("type", f"must be {RESOURCE_TYPE}, not {kind!r}"))
    for key in ("name", "location", "id"):
        if doc.get(key) is not None and not isinstance(doc[key], str):
            problems.append((key, f"must be a string, not {doc[key]!r}"))
    tags = doc.get("tags")
    if tags is not None and not (isinstance(tags, dict) and all(isinstance(v, str) for v in tags.values())):
        problems.append(("tags", "must be an object of string values"))
    version = doc.get("apiVersion")
    if version is not None and version not in API_VERSIONS:
        problems.append(("apiVersion", f"{version!r} is not supported: use one of {', '.join(API_VERSIONS)}"))
    return problems


# ARM reads a string as a template expression when it starts with '[' and ends with ']' (nothing else
# does: "[ -f x ] && y" is plain text); "[[" starts an escaped literal, whose first '[' ARM drops.
# (Azure.Deployments.Expression's ExpressionParser.IsLanguageExpression and ParseLanguageExpression.)
_CALL_OR_VALUE = re.compile(r"^\s*(?:[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)?\s*\(|'|-?\d+\s*$)")


def is_arm_expression(value: str) -> bool:
    return value.startswith("[") and value.endswith("]")


def from_arm_strings(value: Any, path: str) -> tuple[Any, list[Problem]]:
    """`value` with every string read as ARM reads a template's: "[[...]" is the literal "[...]"; an
    expression has no value until ARM evaluates it, so it is a problem (with what to write instead)."""
    if isinstance(value, str):
        if not is_arm_expression(value):
            return value, []
        if value.startswith("[["):
            return value[1:], []
        return value, [(path, _expression_problem(value))]
    problems: list[Problem] = []
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out[key], found = from_arm_strings(item, f"{path}.{key}" if path else str(key))
            problems += found
        return out, problems
    if isinstance(value, list):
        items = []
        for i, item in enumerate(value):
            converted, found = from_arm_strings(item, f"{path}[{i}]")
            items.append(converted)
            problems += found
        return items, problems
    return value, []


def to_arm_strings(value: Any) -> Any:
    """`value` with every string ARM would read as an expression escaped ("[x]" -> "[[x]")."""
    if isinstance(value, str):
        return "[" + value if is_arm_expression(value) else value
    if isinstance(value, dict):
        return {key: to_arm_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_arm_strings(item) for item in value]
    return value


def _expression_problem(value: str) -> str:
    escaped = "[" + value
    if _CALL_OR_VALUE.match(value[1:-1]):
        return (
            f"ARM template expression {value!r}: replace it with its value before converting "
            f"(for this text itself, write {escaped!r}: ARM's escape)"
        )
    return (
        f"{value!r} starts with '[' and ends with ']', so ARM reads it as an ARM template expression, "
        f"which it is not: for this text itself, write {escaped!r} (ARM's escape)"
    )


def _strip_read_only(properties: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in properties.items() if k not in _READ_ONLY_PROPERTIES}
    if isinstance(out.get("source"), dict):
        out["source"] = {k: v for k, v in out["source"].items() if k != "exactVersion"}
    return out


def _strip_identity(identity: Any) -> Any:
    if not isinstance(identity, dict):
        return identity
    out = {k: v for k, v in identity.items() if k not in ("principalId", "tenantId")}
    if isinstance(out.get("userAssignedIdentities"), dict):
        out["userAssignedIdentities"] = {key: {} for key in out["userAssignedIdentities"]}
    return out


def _subscription_of(resource_id: str) -> str | None:
    match = _SUBSCRIPTION.match(resource_id or "")
    return match.group(1) if match else None


def _aib_path(path: str, props_path: str) -> str:
    """spec.x -> properties.x (or x for a bare properties object); the envelope keeps its names."""
    for ours, theirs in (
        ("spec.azure.location", "location"),
        ("spec.azure", "id"),
        ("spec.identity", "identity"),
    ):
        if path == ours or path.startswith(ours + ".") or path.startswith(ours + "["):
            return theirs + path[len(ours) :]
    if path == "spec":
        return props_path
    if path.startswith("spec."):
        rest = path[len("spec.") :]
        return f"{props_path}.{rest}" if props_path else rest
    return path
