"""The `--config FILE` (YAML or JSON) and the admin API's bodies: how they set the sandbox's knobs.

```yaml
subscriptionId: 00000000-...      # defaults: fixed sandbox GUIDs
tenantId: ...
clientId: ...
latency: {scale: 1.0, seconds: {"Microsoft.Compute/virtualMachines:put": 30}}
quotas: {compute: {cores: 10}, aci: {ContainerGroups: 5}}
providers: {Microsoft.ContainerInstance: NotRegistered}
policies: [{type: "Microsoft.Network/publicIPAddresses", message: "No public IPs"}]
faults: [{status: 429, code: TooManyRequests, method: PUT, type: "Microsoft.Network/*", count: 1,
          retryAfter: 1}]
throttling: false
ownerTagPrefix: kaib
outcomes: [{name: "*", exitCode: 0, logs: "...", seconds: 5, result: {...}}]
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .control import Control, FaultRule, PolicyRule
from .errors import ArmError
from .hooks import Outcome
from .latency import LatencyModel


def load_file(path: Path) -> dict[str, Any]:
    import yaml

    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the sandbox config must be a mapping")
    return data


def fault_from(body: dict[str, Any]) -> FaultRule:
    try:
        return FaultRule(
            status=int(body["status"]),
            code=str(body["code"]),
            message=str(body.get("message", "Injected by the sandbox.")),
            method=body.get("method"),
            type=body.get("type"),
            name=body.get("name"),
            probability=float(body.get("probability", 1.0)),
            count=int(body["count"]) if body.get("count") is not None else None,
            retry_after=float(body["retryAfter"]) if body.get("retryAfter") is not None else None,
            in_operation=bool(body.get("inOperation", False)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ArmError(400, "InvalidFaultRule", f"A fault rule needs status and code: {exc}") from None


def policy_from(body: dict[str, Any]) -> PolicyRule:
    if not body.get("type"):
        raise ArmError(400, "InvalidPolicyRule", "A policy rule needs a resource type (glob).")
    return PolicyRule(
        str(body["type"]),
        body.get("location"),
        str(body.get("message", "Resource was disallowed by policy.")),
        str(body.get("name", "sandbox-deny")),
    )


def outcome_from(body: dict[str, Any]) -> tuple[str, Outcome]:
    outcome = Outcome(
        exit_code=int(body.get("exitCode", 0)),
        logs=str(body.get("logs", Outcome.logs)),
        seconds=float(body["seconds"]) if body.get("seconds") is not None else None,
        result=body.get("result"),
    )
    return str(body.get("name", "*")), outcome


def apply_latency(latency: LatencyModel, body: dict[str, Any]) -> None:
    if body.get("scale") is not None:
        latency.scale = float(body["scale"])
    for key, seconds in (body.get("seconds") or {}).items():
        type_name, _, op = str(key).rpartition(":")
        latency.set(type_name, op, float(seconds))


def apply(control: Control, latency: LatencyModel, config: dict[str, Any]) -> None:
    """Apply a config document (the --config file, or /_sandbox/config PUT) on top of the current state."""
    if "latency" in config:
        apply_latency(latency, config["latency"] or {})
    for provider, limits in (config.get("quotas") or {}).items():
        control.quotas.setdefault(provider, {}).update({k: int(v) for k, v in limits.items()})
    for namespace, state in (config.get("providers") or {}).items():
        set_registration(control, namespace, str(state))
    for rule in config.get("policies") or []:
        control.policies.append(policy_from(rule))
    for rule in config.get("faults") or []:
        control.add_fault(fault_from(rule))
    if "throttling" in config:
        control.throttling = bool(config["throttling"])
    if config.get("ownerTagPrefix"):
        control.owner_tag_prefix = str(config["ownerTagPrefix"])
    for item in config.get("outcomes") or []:
        control.outcomes.append(outcome_from(item))


def set_registration(control: Control, namespace: str, state: str) -> None:
    if state.lower() in ("notregistered", "unregistered"):
        control.unregistered.add(namespace.lower())
    else:
        control.unregistered.discard(namespace.lower())
