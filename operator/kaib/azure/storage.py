"""The staging storage account and its `packerlogs` container (customization and validation logs)."""

from __future__ import annotations

from collections.abc import Mapping

from kaib.azure import spec as t
from kaib.azure.spec import ResourceSpec

LOGS_CONTAINER = "packerlogs"


def storage_account(
    subscription_id: str, group: str, name: str, location: str, tags: Mapping[str, str]
) -> ResourceSpec:
    body = {
        "location": location,
        "tags": dict(tags),
        "sku": {"name": "Standard_LRS"},
        "kind": "StorageV2",
        "properties": {
            "minimumTlsVersion": "TLS1_2",
            "supportsHttpsTrafficOnly": True,
            "allowBlobPublicAccess": False,
        },
    }
    return ResourceSpec(t.STORAGE_ACCOUNT, subscription_id, group, name, body, step="staging")


def logs_container(subscription_id: str, group: str, account: str) -> ResourceSpec:
    return ResourceSpec(
        t.BLOB_CONTAINER,
        subscription_id,
        group,
        LOGS_CONTAINER,
        {"properties": {"publicAccess": "None"}},
        parents=(account, "default"),
        step="staging",
    )
