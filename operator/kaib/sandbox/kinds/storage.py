"""Microsoft.Storage/storageAccounts: the account is an Azurite account of the same name (see
azurite.py), so its keys, account SAS and blob endpoint work with azure-storage-blob."""

from __future__ import annotations

import base64
import datetime
import os
import re
from typing import TYPE_CHECKING, Any

from ..errors import ArmError
from ..registry import ActionResult, TypeSpec

if TYPE_CHECKING:
    from ..azurite import Azurite
    from ..engine import Engine
    from ..store import Resource

SA = "Microsoft.Storage/storageAccounts"


def azurite_of(engine: Engine) -> Azurite | None:
    found: Azurite | None = engine.extensions.get("azurite")
    return found


def _validate(engine: Engine, account: Resource, existing: Resource | None) -> None:
    if not re.fullmatch(r"[a-z0-9]{3,24}", account.name):
        raise ArmError(
            400,
            "AccountNameInvalid",
            f"{account.name} is not a valid storage account name. Storage account name must be between "
            "3 and 24 characters in length and use numbers and lower-case letters only.",
        )
    if existing is None:
        for other in engine.store.all():
            if other.type == SA and other.name.lower() == account.name.lower():
                raise ArmError(
                    409,
                    "StorageAccountAlreadyTaken",
                    f"The storage account named {account.name} is already taken.",
                )
    if not account.body.get("sku") or not account.body.get("kind"):
        raise ArmError(400, "InvalidRequestContent", "A storage account needs sku.name and kind.")


def _synthesize(engine: Engine, account: Resource, existing: Resource | None) -> None:
    keys = account.state.setdefault("keys", [_new_key(), _new_key()])
    azurite = azurite_of(engine)
    if azurite is not None:
        azurite.add_account(account.name, keys[0])
        blob = azurite.account_blob_endpoint(account.name)
    else:
        blob = f"http://127.0.0.1:10000/{account.name}/"
    p = account.props
    p["primaryEndpoints"] = {"blob": blob}
    p["primaryLocation"] = account.location
    p["statusOfPrimary"] = "available"
    p["creationTime"] = existing.props.get("creationTime") if existing else _now()
    p.setdefault("minimumTlsVersion", "TLS1_2")
    p.setdefault("allowBlobPublicAccess", False)
    p.setdefault("supportsHttpsTrafficOnly", True)
    p["keyCreationTime"] = {"key1": p["creationTime"], "key2": p["creationTime"]}


def _render(engine: Engine, account: Resource, body: dict[str, Any], listing: bool, expand: str) -> None:
    # Azurite's port changes when a persisted sandbox restarts: the endpoint is always today's.
    azurite = azurite_of(engine)
    if azurite is not None:
        body["properties"]["primaryEndpoints"] = {"blob": azurite.account_blob_endpoint(account.name)}


def _new_key() -> str:
    return base64.b64encode(os.urandom(64)).decode()


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


def _list_keys(
    engine: Engine, account: Resource, body: dict[str, Any], query: dict[str, str]
) -> ActionResult:
    keys = account.state["keys"]
    return ActionResult(
        200,
        {
            "keys": [
                {
                    "keyName": f"key{i + 1}",
                    "value": k,
                    "permissions": "FULL",
                    "creationTime": account.props.get("creationTime"),
                }
                for i, k in enumerate(keys)
            ]
        },
    )


def _regenerate(
    engine: Engine, account: Resource, body: dict[str, Any], query: dict[str, str]
) -> ActionResult:
    index = 1 if str(body.get("keyName", "key1")).lower() == "key2" else 0
    account.state["keys"][index] = _new_key()
    azurite = azurite_of(engine)
    if azurite is not None and index == 0:
        azurite.add_account(account.name, account.state["keys"][0])
    return _list_keys(engine, account, body, query)


def _account_sas(
    engine: Engine, account: Resource, body: dict[str, Any], query: dict[str, str]
) -> ActionResult:
    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    expiry = body.get("signedExpiry")
    if not expiry:
        raise ArmError(400, "InvalidValuesForRequestParameters", "signedExpiry is required.")
    services = str(body.get("signedServices", "b"))
    if "b" not in services:
        raise ArmError(
            400, "InvalidValuesForRequestParameters", "The sandbox serves blob SAS only (signedServices b)."
        )
    token = generate_account_sas(
        account.name,
        account.state["keys"][0],
        resource_types=ResourceTypes.from_string(  # type: ignore[no-untyped-call]
            str(body.get("signedResourceTypes", "sco"))
        ),
        permission=AccountSasPermissions.from_string(  # type: ignore[no-untyped-call]
            str(body.get("signedPermission", "r"))
        ),
        expiry=str(expiry),
        start=body.get("signedStart"),
        protocol=body.get("signedProtocol"),
    )
    return ActionResult(200, {"accountSasToken": token})


def _restore(engine: Engine, account: Resource) -> None:
    """A persisted account is an Azurite account again (its blobs are in Azurite's own files)."""
    azurite = azurite_of(engine)
    if azurite is not None and account.state.get("keys"):
        azurite.add_account(account.name, account.state["keys"][0])


async def _deleted(engine: Engine, account: Resource) -> None:
    azurite = azurite_of(engine)
    if azurite is not None:
        azurite.remove_account(account.name)


def check_name(engine: Engine, body: dict[str, Any]) -> dict[str, Any]:
    name = str(body.get("name", ""))
    if not re.fullmatch(r"[a-z0-9]{3,24}", name):
        return {
            "nameAvailable": False,
            "reason": "AccountNameInvalid",
            "message": f"{name} is not a valid storage account name.",
        }
    taken = any(r.type == SA and r.name.lower() == name.lower() for r in engine.store.all())
    if taken:
        return {
            "nameAvailable": False,
            "reason": "AlreadyExists",
            "message": f"The storage account named {name} is already taken.",
        }
    return {"nameAvailable": True}


SPECS = [
    TypeSpec(
        SA,
        create_status=202,
        validate=_validate,
        synthesize=_synthesize,
        render=_render,
        on_delete=_deleted,
        on_restore=_restore,
        lro_delete=False,
        sync_delete_status=200,
        actions={
            "listkeys": ("POST", _list_keys),
            "regeneratekey": ("POST", _regenerate),
            "listaccountsas": ("POST", _account_sas),
        },
    ),
]
