"""The one place that maps a ResourceSpec to SDK calls: get, begin PUT, begin DELETE, resume.

Every ARM type the engine manages is a row of KINDS: which client, which operations group, which
methods. Methods without `begin_` answer synchronously; they are wrapped so that the async step sees
one shape (`Operation`) for both. Network types go through the generic resources client by id
(`NETWORK_BY_ID`): the same HTTP requests as the typed network client, without importing its SDK (42 MB of
resident memory, against the scale benchmark's 300 MB).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from azure.core.exceptions import ResourceNotFoundError

from kaib.azure import spec as t
from kaib.azure.clients import ServiceClients
from kaib.azure.errors import retry_after_seconds
from kaib.azure.spec import ResourceSpec

# Pinned, not the SDK's default: by-id calls must name one. The version azure-mgmt-network 33.1
# sent for every network type we use (so the requests did not change when kaib stopped importing it),
# and one Azure serves for all of them.
NETWORK_API_VERSION = "2026-03-01"


@dataclass(frozen=True)
class Kind:
    client: str  # attribute of ServiceClients
    group: str  # operations group on that client
    put: str = "begin_create_or_update"
    get: str = "get"
    delete: str = "begin_delete"
    # Set for by-id kinds: the methods take the resource id and this api_version.
    api_version: str | None = None


NETWORK_BY_ID = Kind(
    "resource",
    "resources",
    put="begin_create_or_update_by_id",
    get="get_by_id",
    delete="begin_delete_by_id",
    api_version=NETWORK_API_VERSION,
)

KINDS: dict[str, Kind] = {
    t.RESOURCE_GROUP: Kind("resource", "resource_groups", put="create_or_update"),
    t.STORAGE_ACCOUNT: Kind(
        "storage", "storage_accounts", put="begin_create", get="get_properties", delete="delete"
    ),
    t.BLOB_CONTAINER: Kind("storage", "blob_containers", put="create", delete="delete"),
    t.VNET: NETWORK_BY_ID,
    t.SUBNET: NETWORK_BY_ID,
    t.NSG: NETWORK_BY_ID,
    t.PRIVATE_ENDPOINT: NETWORK_BY_ID,
    t.PRIVATE_LINK_SERVICE: NETWORK_BY_ID,
    t.LOAD_BALANCER: NETWORK_BY_ID,
    t.NIC: NETWORK_BY_ID,
    t.VM: Kind("compute", "virtual_machines"),
    t.DISK: Kind("compute", "disks"),
    t.IMAGE: Kind("compute", "images"),
    t.GALLERY_IMAGE_VERSION: Kind("compute", "gallery_image_versions"),
    t.CONTAINER_GROUP: Kind("containers", "container_groups"),
}


class Operation(Protocol):
    """A started (or resumed) ARM operation."""

    def done(self) -> bool: ...

    async def update(self) -> None: ...

    async def result(self) -> Any: ...

    def continuation_token(self) -> str | None: ...

    def retry_after(self) -> float | None: ...


class LroOperation:
    """An SDK AsyncLROPoller."""

    def __init__(self, poller: Any) -> None:
        self.poller = poller

    def done(self) -> bool:
        # The polling method's view: the poller's own done() only turns True inside result().
        return bool(self.poller.polling_method().finished())

    async def update(self) -> None:
        """One poll of the operation's status (the async step paces polls itself, by Retry-After)."""
        await self.poller.polling_method().update_status()

    async def result(self) -> Any:
        return await self.poller.result()

    def continuation_token(self) -> str | None:
        token: str = self.poller.continuation_token()
        return token

    def retry_after(self) -> float | None:
        # The last response the poller saw (initial or latest poll) carries Azure's Retry-After.
        response = getattr(self.poller.polling_method(), "_pipeline_response", None)
        headers = getattr(getattr(response, "http_response", None), "headers", None)
        return retry_after_seconds(headers)


class CompletedOperation:
    """A synchronous answer dressed as a finished operation."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def done(self) -> bool:
        return True

    async def update(self) -> None:
        return None

    async def result(self) -> Any:
        return self.value

    def continuation_token(self) -> str | None:
        return None

    def retry_after(self) -> float | None:
        return None


def to_rest(obj: Any) -> dict[str, Any] | None:
    """An SDK model (old msrest style or new MutableMapping style) as its REST JSON dict."""
    if obj is None:
        return None
    if isinstance(obj, Mapping) and not hasattr(obj, "as_dict"):
        return dict(obj)
    serialize = getattr(obj, "serialize", None)
    if callable(serialize):  # msrest models: serialize() gives REST names
        result: dict[str, Any] = serialize(keep_readonly=True)
        return result
    as_dict = getattr(obj, "as_dict", None)
    if callable(as_dict):  # new models: as_dict() gives REST names
        result = as_dict()
        return result
    return dict(obj)


class ResourceOps(Protocol):
    """What the async step needs from Azure; `Arm` implements it, tests use fakes."""

    async def get(self, spec: ResourceSpec) -> dict[str, Any] | None: ...

    async def begin_put(
        self, spec: ResourceSpec, body: dict[str, Any] | None, token: str | None
    ) -> Operation: ...

    async def begin_delete(self, spec: ResourceSpec, token: str | None) -> Operation: ...


class Arm:
    """ResourceOps over the SDK clients of one subscription."""

    def __init__(self, clients: ServiceClients) -> None:
        self.clients = clients

    def _ops(self, spec: ResourceSpec) -> tuple[Kind, Any, tuple[str, ...], dict[str, Any]]:
        """The kind, its operations group, and the positional and keyword arguments naming `spec`."""
        kind = KINDS[spec.type]
        group = getattr(getattr(self.clients, kind.client), kind.group)
        if kind.api_version is not None:
            return kind, group, (spec.id,), {"api_version": kind.api_version}
        if spec.type == t.RESOURCE_GROUP:
            return kind, group, (spec.name,), {}
        parents = spec.parents
        if spec.type == t.BLOB_CONTAINER:
            parents = parents[:1]  # the id says blobServices/default; the SDK takes the account only
        return kind, group, (spec.resource_group, *parents, spec.name), {}

    async def get(self, spec: ResourceSpec) -> dict[str, Any] | None:
        kind, group, args, kw = self._ops(spec)
        try:
            return to_rest(await getattr(group, kind.get)(*args, **kw))
        except ResourceNotFoundError:
            return None

    async def begin_put(
        self, spec: ResourceSpec, body: dict[str, Any] | None, token: str | None
    ) -> Operation:
        kind, group, args, kw = self._ops(spec)
        method = getattr(group, kind.put)
        if not kind.put.startswith("begin_"):
            return CompletedOperation(await method(*args, body, **kw))
        if token is not None:
            return LroOperation(await method(*args, {}, continuation_token=token, **kw))
        return LroOperation(await method(*args, body, **kw))

    async def begin_delete(self, spec: ResourceSpec, token: str | None) -> Operation:
        kind, group, args, kw = self._ops(spec)
        method = getattr(group, kind.delete)
        if not kind.delete.startswith("begin_"):
            return CompletedOperation(await method(*args, **kw))
        if token is not None:
            return LroOperation(await method(*args, continuation_token=token, **kw))
        return LroOperation(await method(*args, **kw))


def vm_args(spec: ResourceSpec) -> tuple[str, str]:
    return spec.resource_group, spec.name


class VirtualMachines:
    """The VM calls beyond PUT/DELETE: instance view and the actions distribution needs."""

    def __init__(self, clients: ServiceClients) -> None:
        self.ops = clients.compute.virtual_machines

    async def status_codes(self, spec: ResourceSpec) -> set[str]:
        """`PowerState/deallocated`, `OSState/generalized`, ... from the instance view."""
        view = to_rest(await self.ops.instance_view(*vm_args(spec))) or {}
        statuses = view.get("statuses") or (view.get("properties") or {}).get("statuses") or []
        return {str(s.get("code")) for s in statuses if s.get("code")}

    def deallocate(self, spec: ResourceSpec) -> Callable[[str | None], Awaitable[Operation]]:
        async def begin(token: str | None) -> Operation:
            if token is not None:
                return LroOperation(await self.ops.begin_deallocate(*vm_args(spec), continuation_token=token))
            return LroOperation(await self.ops.begin_deallocate(*vm_args(spec)))

        return begin

    def generalize(self, spec: ResourceSpec) -> Callable[[str | None], Awaitable[Operation]]:
        async def begin(token: str | None) -> Operation:
            await self.ops.generalize(*vm_args(spec))  # synchronous: 200 when done
            return CompletedOperation(None)

        return begin


async def list_names(result: Any) -> list[str]:
    """The `name`s of an SDK list result: an async pager, or a coroutine of a list."""
    if hasattr(result, "__aiter__"):
        return [str((to_rest(item) or {}).get("name")) async for item in result]
    items = await result if hasattr(result, "__await__") else result
    return [str((to_rest(item) or {}).get("name")) for item in items or []]
