"""What an ImageTemplate spec means once AIB's defaults are applied, and short summaries of it.

AIB writes many defaults as sentinels ("" or 0 meaning "the platform's default"). The engine and
the Packer renderer should not each re-learn them, so `spec_with_defaults` returns the spec with
every default spelled out as its effective value. Two normalizations go beyond defaults, so that the
engine has one shape to handle:
- SharedImage `replicationRegions` (deprecated) become `targetRegions` with the deprecated top-level
  `storageAccountType`; with neither given, the image is replicated to the template's location.
- `vmSize` "" becomes Standard_D2ds_v4, AIB's default for Gen2 sources; the Gen1 default
  (Standard_D1_v2) can only be chosen once the source image is resolved, which is the engine's job.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from pydantic import BaseModel

from kaib.api.manifest import plain

DEFAULT_BUILD_TIMEOUT_MINUTES = 240
DEFAULT_VM_SIZE = "Standard_D2ds_v4"
DEFAULT_VM_SIZE_GEN1 = "Standard_D1_v2"
DEFAULT_PROXY_VM_SIZE = "Standard_A1_v2"
DEFAULT_RESTART_COMMAND = 'shutdown /r /f /t 0 /c "packer restart"'
DEFAULT_RESTART_TIMEOUT = "5m"
DEFAULT_UPDATE_LIMIT = 1000
DEFAULT_STORAGE_ACCOUNT_TYPE = "Standard_LRS"

_STEP_DEFAULTS: dict[str, dict[str, Any]] = {
    "Shell": {"sha256Checksum": ""},
    "PowerShell": {"sha256Checksum": "", "runElevated": False, "runAsSystem": False, "validExitCodes": [0]},
    "File": {"sha256Checksum": ""},
    "WindowsRestart": {
        "restartCommand": DEFAULT_RESTART_COMMAND,
        "restartCheckCommand": "",
        "restartTimeout": DEFAULT_RESTART_TIMEOUT,
    },
    "WindowsUpdate": {"searchCriteria": "", "filters": [], "updateLimit": DEFAULT_UPDATE_LIMIT},
}


def as_dict(spec: dict[str, Any] | BaseModel) -> dict[str, Any]:
    """A spec as the plain dict in AIB names (model_dump(by_alias=True, exclude_none=True))."""
    if isinstance(spec, BaseModel):
        return spec.model_dump(by_alias=True, exclude_none=True)
    out: dict[str, Any] = plain(spec)
    return out


def spec_with_defaults(spec: dict[str, Any] | BaseModel) -> dict[str, Any]:
    """The spec (AIB names) with every AIB default applied as its effective value. Input untouched."""
    out = as_dict(spec)
    out["customize"] = [_step(s) for s in out.get("customize") or []]
    validate = out.setdefault("validate", {})
    validate.setdefault("continueDistributeOnFailure", False)
    validate.setdefault("sourceValidationOnly", False)
    validate["inVMValidations"] = [_step(s) for s in validate.get("inVMValidations") or []]
    location = out.get("azure", {}).get("location", "")
    out["distribute"] = [_distributor(d, location) for d in out.get("distribute") or []]
    out.setdefault("optimize", {}).setdefault("vmBoot", {}).setdefault("state", "Disabled")
    errors = out.setdefault("errorHandling", {})
    errors.setdefault("onCustomizerError", "cleanup")
    errors.setdefault("onValidationError", "cleanup")
    out["buildTimeoutInMinutes"] = out.get("buildTimeoutInMinutes") or DEFAULT_BUILD_TIMEOUT_MINUTES
    profile = out.setdefault("vmProfile", {})
    profile["vmSize"] = profile.get("vmSize") or DEFAULT_VM_SIZE
    profile.setdefault("osDiskSizeGB", 0)
    profile.setdefault("userAssignedIdentities", [])
    vnet = profile.get("vnetConfig")
    if vnet is not None and topology(out) == "SubnetOnly":
        vnet["proxyVmSize"] = vnet.get("proxyVmSize") or DEFAULT_PROXY_VM_SIZE
    out.setdefault("stagingResourceGroup", "")
    out.setdefault("managedResourceTags", {})
    out.setdefault("autoRun", {}).setdefault("state", "Disabled")
    out.setdefault("identity", {"type": "None"})
    return out


def _step(step: dict[str, Any]) -> dict[str, Any]:
    out = dict(step)
    for key, value in _STEP_DEFAULTS.get(step.get("type", ""), {}).items():
        if out.get(key) in (None, "") or (key == "updateLimit" and out[key] == 0):
            out[key] = copy.deepcopy(value)
    return out


def _distributor(dist: dict[str, Any], location: str) -> dict[str, Any]:
    out = dict(dist)
    out.setdefault("artifactTags", {})
    kind = out.get("type")
    if kind == "VHD":
        out.setdefault("uri", "")
    elif kind == "SharedImage":
        out.setdefault("excludeFromLatest", False)
        versioning = out.setdefault("versioning", {"scheme": "Latest"})
        if versioning.get("scheme") == "Latest":
            versioning.setdefault("major", -1)
        legacy_type = out.pop("storageAccountType", None) or DEFAULT_STORAGE_ACCOUNT_TYPE
        legacy = out.pop("replicationRegions", None)
        if "targetRegions" not in out:
            names = legacy if legacy else [location]
            out["targetRegions"] = [{"name": name, "storageAccountType": legacy_type} for name in names]
        out["targetRegions"] = [
            {"replicaCount": 1, "storageAccountType": DEFAULT_STORAGE_ACCOUNT_TYPE, **region}
            for region in out["targetRegions"]
        ]
    return out


def topology(spec: dict[str, Any] | BaseModel) -> str:
    """NoVNet (no subnetId), SubnetOnly (subnetId: proxy VM), or SubnetAndACI (both subnets)."""
    vnet = (as_dict(spec).get("vmProfile") or {}).get("vnetConfig") or {}
    if not vnet.get("subnetId"):
        return "NoVNet"
    return "SubnetAndACI" if vnet.get("containerInstanceSubnetId") else "SubnetOnly"


def source_summary(spec: dict[str, Any] | BaseModel) -> str:
    """One short line naming the source, e.g. Canonical/ubuntu-24_04-lts/server/latest."""
    source = as_dict(spec).get("source") or {}
    kind = source.get("type")
    if kind == "PlatformImage":
        return "/".join(str(source.get(k, "")) for k in ("publisher", "offer", "sku", "version"))
    if kind == "ManagedImage":
        return "image/" + str(source.get("imageId", "")).rstrip("/").rsplit("/", 1)[-1]
    if kind == "SharedImageVersion":
        parts = str(source.get("imageVersionId", "")).rstrip("/").split("/")
        # .../galleries/G/images/I/versions/V -> G/I/V
        return "/".join(parts[-5::2]) if len(parts) >= 5 else "/".join(parts)
    return str(kind or "")


def spec_hash(spec: dict[str, Any] | BaseModel) -> str:
    """A short stable hash of a spec (AIB names), for the build's snapshot: same spec, same hash."""
    text = json.dumps(as_dict(spec), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
