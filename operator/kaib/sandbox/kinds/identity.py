"""Microsoft.ManagedIdentity/userAssignedIdentities: synchronous, with stable principal and client ids."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..registry import TypeSpec
from .common import stable_uuid

if TYPE_CHECKING:
    from ..engine import Engine
    from ..store import Resource

UAI = "Microsoft.ManagedIdentity/userAssignedIdentities"


def _synthesize(engine: Engine, identity: Resource, existing: Resource | None) -> None:
    identity.props["tenantId"] = engine.tenant_id
    identity.props["principalId"] = stable_uuid(identity.id, "principal")
    identity.props["clientId"] = stable_uuid(identity.id, "client")
    identity.props.pop("provisioningState", None)


SPECS = [TypeSpec(UAI, lro=False, synthesize=_synthesize)]
