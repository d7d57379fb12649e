"""The staging resource group: created with a generated name, or an existing empty one adopted.

AIB tags a group it creates with createdBy/imageTemplateName/imageTemplateResourceGroupName, and a
group it adopts with usedBy instead; a group tagged for another template is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kaib.azure import spec as t
from kaib.azure.naming import Owner
from kaib.azure.spec import ResourceSpec

CREATED_BY = "createdBy"
USED_BY = "usedBy"
TEMPLATE_NAME = "imageTemplateName"
TEMPLATE_GROUP = "imageTemplateResourceGroupName"


def aib_tags(owner: Owner, adopted: bool) -> dict[str, str]:
    """The tags AIB writes on a staging group (the namespace stands in for the template's group)."""
    return {
        USED_BY if adopted else CREATED_BY: "kaib",
        TEMPLATE_NAME: owner.template,
        TEMPLATE_GROUP: owner.namespace,
    }


class StagingGroupSpec(ResourceSpec):
    """A group is PUT again only to add missing tags (adoption), keeping the tags already there."""

    def parameters(self, existing: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if existing is None:
            return dict(self.body)
        want: Mapping[str, str] = self.body.get("tags") or {}
        have: Mapping[str, str] = existing.get("tags") or {}
        if all(have.get(k) == v for k, v in want.items()):
            return None
        return {
            **self.body,
            "location": existing.get("location", self.body.get("location")),
            "tags": {**have, **want},
        }


def staging_group(
    subscription_id: str,
    name: str,
    location: str,
    owner: Owner,
    managed_tags: Mapping[str, str],
    adopted: bool,
) -> ResourceSpec:
    tags = owner.tags({**managed_tags, **aib_tags(owner, adopted)})
    return StagingGroupSpec(
        type=t.RESOURCE_GROUP,
        subscription_id=subscription_id,
        resource_group=name,
        name=name,
        body={"location": location, "tags": tags},
        step="staging",
    )


def adoption_problem(existing_tags: Mapping[str, str] | None, owner: Owner) -> str | None:
    """Why an existing group cannot be used by this template, or None when it can.

    AIB fails the build when the group carries the template tags of another template.
    """
    tags = existing_tags or {}
    name, group = tags.get(TEMPLATE_NAME), tags.get(TEMPLATE_GROUP)
    if name is None and group is None:
        return None
    if name == owner.template and group == owner.namespace:
        return None
    return (
        f"the staging resource group is tagged for template {group}/{name}; "
        "use an empty group of your own, or remove those tags if that template is gone"
    )
