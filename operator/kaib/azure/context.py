"""Where one build's resources live and who owns them: what every spec builder needs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kaib.azure.naming import BuildNames, Owner
from kaib.azure.spec import ResourceSpec, resource_id


@dataclass(frozen=True)
class BuildContext:
    subscription_id: str
    location: str
    staging_group: str
    names: BuildNames
    owner: Owner
    managed_tags: Mapping[str, str] = field(default_factory=dict)

    def tags(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        merged = {**self.managed_tags, **(extra or {})}
        return self.owner.tags(merged)

    def spec(
        self, type_: str, name: str, body: Mapping[str, Any], step: str, parents: tuple[str, ...] = ()
    ) -> ResourceSpec:
        return ResourceSpec(
            type=type_,
            subscription_id=self.subscription_id,
            resource_group=self.staging_group,
            name=name,
            body=body,
            parents=parents,
            step=step,
        )

    def id(self, type_: str, *names: str) -> str:
        """The id of a resource in the staging group."""
        return resource_id(self.subscription_id, self.staging_group, type_, names)
