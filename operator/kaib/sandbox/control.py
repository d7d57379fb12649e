"""The sandbox's knobs: fault rules, policy denials, quotas, provider registration, throttling, the
request log and counters, and container-group outcomes. Pure state and decisions; the admin routes
that change it are in server.py, the config file's shape in config.py."""

from __future__ import annotations

import fnmatch
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from .errors import ArmError
from .hooks import Outcome

KNOWN_PROVIDERS = (
    "Microsoft.Resources",
    "Microsoft.Network",
    "Microsoft.Compute",
    "Microsoft.ContainerInstance",
    "Microsoft.Storage",
    "Microsoft.ManagedIdentity",
)


@dataclass
class FaultRule:
    """Answer matching requests with an ARM error instead of handling them.

    `in_operation`: the request is accepted but its long-running operation ends Failed with the error.
    """

    status: int
    code: str
    message: str = "Injected by the sandbox."
    method: str | None = None  # GET, PUT, DELETE, POST, PATCH
    type: str | None = None  # resource type, glob, case-insensitive (Microsoft.Network/*)
    name: str | None = None  # resource name glob
    probability: float = 1.0
    count: int | None = None  # remaining matches; None = forever
    retry_after: float | None = None
    in_operation: bool = False
    id: int = 0
    hits: int = 0

    def matches(self, method: str, type_name: str, name: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        if self.type and not fnmatch.fnmatch(type_name.lower(), self.type.lower()):
            return False
        if self.name and not fnmatch.fnmatch(name.lower(), self.name.lower()):
            return False
        return self.count is None or self.count > 0

    def error(self) -> ArmError:
        return ArmError(self.status, self.code, self.message, retry_after=self.retry_after)


@dataclass
class PolicyRule:
    type: str  # glob
    location: str | None = None
    message: str = "Resource was disallowed by policy."
    name: str = "sandbox-deny"


@dataclass
class Bucket:
    capacity: float
    refill: float  # tokens per second
    tokens: float = -1.0
    at: float = field(default_factory=time.monotonic)

    def take(self) -> tuple[bool, float]:
        """(allowed, seconds until one token) after refilling."""
        now = time.monotonic()
        if self.tokens < 0:
            self.tokens = self.capacity
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.refill)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True, 0.0
        return False, (1 - self.tokens) / self.refill


# Defaults as a fresh pay-as-you-go subscription shows them (per location).
DEFAULT_QUOTAS: dict[str, dict[str, int]] = {
    "compute": {
        "cores": 100,
        "virtualMachines": 25000,
        "standardDSv3Family": 100,
        "standardDSv5Family": 100,
        "standardDv5Family": 100,
        "standardBSFamily": 100,
        "standardDSv2Family": 100,
        "standardDDSv4Family": 100,
        "standardDv2Family": 100,
        "standardAv2Family": 100,
    },
    "aci": {"ContainerGroups": 100, "StandardCores": 100},
}


@dataclass
class RequestRecord:
    at: float
    method: str
    path: str
    type: str
    name: str
    status: int
    code: str | None
    ms: float
    owners: tuple[str, ...]


class Control:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.faults: list[FaultRule] = []
        self.policies: list[PolicyRule] = []
        self.quotas: dict[str, dict[str, int]] = {k: dict(v) for k, v in DEFAULT_QUOTAS.items()}
        self.unregistered: set[str] = set()  # lower-case namespaces
        self.throttling = False
        self._buckets: dict[tuple[str, str], Bucket] = {}
        self.log: deque[RequestRecord] = deque(maxlen=20000)
        self.counters: Counter[tuple[str, str, int]] = Counter()
        self.owner_counters: Counter[str] = Counter()
        self.owner_tag_prefix = "kaib"
        self.outcomes: list[tuple[str, Outcome]] = []  # (container group name glob, outcome)
        self._next_id = 1

    # Faults ----------------------------------------------------------------------------------
    def add_fault(self, rule: FaultRule) -> FaultRule:
        rule.id = self._next_id
        self._next_id += 1
        self.faults.append(rule)
        return rule

    def fault_for(
        self, method: str, type_name: str, name: str, in_operation: bool = False
    ) -> ArmError | None:
        for rule in self.faults:
            if rule.in_operation != in_operation or not rule.matches(method, type_name, name):
                continue
            if rule.probability < 1.0 and random.random() >= rule.probability:
                continue
            rule.hits += 1
            if rule.count is not None:
                rule.count -= 1
            return rule.error()
        return None

    # Policy, providers, quotas ----------------------------------------------------------------
    def check_policy(self, type_name: str, location: str | None, resource_id: str) -> None:
        for rule in self.policies:
            if not fnmatch.fnmatch(type_name.lower(), rule.type.lower()):
                continue
            if rule.location and (location or "").lower() != rule.location.lower():
                continue
            raise ArmError(
                403,
                "RequestDisallowedByPolicy",
                f"Resource '{resource_id.rsplit('/', 1)[-1]}' was disallowed by policy. {rule.message}",
                target=resource_id.rsplit("/", 1)[-1],
                additional_info=[
                    {
                        "type": "PolicyViolation",
                        "info": {
                            "policyAssignmentName": rule.name,
                            "policyDefinitionDisplayName": rule.message,
                            "policyDefinitionEffect": "deny",
                        },
                    }
                ],
            )

    def check_registered(self, namespace: str) -> None:
        if namespace.lower() in self.unregistered:
            raise ArmError(
                409,
                "MissingSubscriptionRegistration",
                f"The subscription is not registered to use namespace '{namespace}'. See "
                "https://aka.ms/rps-not-found for how to register subscriptions.",
            )

    def registration_state(self, namespace: str) -> str:
        return "NotRegistered" if namespace.lower() in self.unregistered else "Registered"

    def quota_limit(self, provider: str, name: str) -> int | None:
        return self.quotas.get(provider, {}).get(name)

    # Throttling ------------------------------------------------------------------------------
    def throttle(self, subscription: str, write: bool) -> tuple[float | None, int]:
        """(seconds to wait if throttled, remaining) for one request, per ARM's token buckets."""
        kind = "writes" if write else "reads"
        if not self.throttling:
            return None, 11999 if not write else 1199
        bucket = self._buckets.get((subscription.lower(), kind))
        if bucket is None:
            bucket = Bucket(200, 10) if write else Bucket(250, 25)
            self._buckets[(subscription.lower(), kind)] = bucket
        ok, wait = bucket.take()
        return (None if ok else wait), int(bucket.tokens)

    # Request log ------------------------------------------------------------------------------
    def record(self, rec: RequestRecord) -> None:
        self.log.append(rec)
        self.counters[(rec.method, rec.type, rec.status)] += 1
        for owner in rec.owners:
            self.owner_counters[owner] += 1

    def owners_of(self, tags: dict[str, Any] | None) -> tuple[str, ...]:
        if not tags:
            return ()
        prefix = self.owner_tag_prefix.lower()
        return tuple(f"{k}={v}" for k, v in sorted(tags.items()) if k.lower().startswith(prefix))

    def outcome_for(self, group_name: str) -> Outcome:
        for pattern, outcome in reversed(self.outcomes):
            if fnmatch.fnmatch(group_name.lower(), pattern.lower()):
                return outcome
        return Outcome()

    def describe(self) -> dict[str, Any]:
        return {
            "faults": [vars(f) for f in self.faults],
            "policies": [vars(p) for p in self.policies],
            "quotas": self.quotas,
            "providers": {ns: self.registration_state(ns) for ns in KNOWN_PROVIDERS},
            "throttling": self.throttling,
            "ownerTagPrefix": self.owner_tag_prefix,
            "outcomes": [{"name": n, **vars(o)} for n, o in self.outcomes],
        }
