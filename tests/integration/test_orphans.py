"""The orphan sweeper against the sandbox and the real control plane, `kaib run` as a process."""

from __future__ import annotations

from typing import Any

from tests.fixtures.sandbox import SandboxHandle

MANAGED_BY = "kaib.dev/managed-by"


def test_sandbox_lists_resource_groups_by_tag(sandbox: SandboxHandle) -> None:
    """The sweeper finds kaib's staging groups with ARM's tag filter; the sandbox must honour it."""
    from azure.mgmt.resource.resources import ResourceManagementClient

    client: Any = sandbox.client(ResourceManagementClient)
    client.resource_groups.create_or_update(
        "orph-tagged", {"location": "westus", "tags": {MANAGED_BY: "kaib"}}
    )
    client.resource_groups.create_or_update("orph-other", {"location": "westus", "tags": {"team": "x"}})
    try:
        tagged = {g.name for g in client.resource_groups.list(filter=f"tagName eq '{MANAGED_BY}'")}
        valued = {
            g.name
            for g in client.resource_groups.list(filter=f"tagName eq '{MANAGED_BY}' and tagValue eq 'kaib'")
        }
        everything = {g.name for g in client.resource_groups.list()}
        assert "orph-tagged" in tagged and "orph-other" not in tagged
        assert "orph-tagged" in valued and "orph-other" not in valued
        assert {"orph-tagged", "orph-other"} <= everything
    finally:
        client.resource_groups.begin_delete("orph-tagged").result()
        client.resource_groups.begin_delete("orph-other").result()
