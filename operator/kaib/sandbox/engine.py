"""ARM semantics, the same for every registered type: idempotent PUT, GET, list, DELETE (with
cascades and in-use checks), actions, and long-running operations whose length comes from the
latency model. Returns `Answer`s; knows nothing about HTTP beyond status codes and header names."""

from __future__ import annotations

import copy
import fnmatch
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from . import ids
from .answer import Answer
from .control import Control
from .errors import ArmError, group_not_found, not_found
from .hooks import ModelledHooks, ResourceView, SandboxHooks
from .ids import ArmPath
from .latency import LatencyModel
from .operations import Operation, Operations
from .registry import ActionResult, Ref, Registry, TypeSpec, referenced_ids
from .store import Resource, Store

log = logging.getLogger(__name__)
GROUP_TYPE = "Microsoft.Resources/resourceGroups"
TRANSITIONAL = {"Creating", "Updating", "Deleting", "Pending", "Accepted"}


class Engine:
    def __init__(
        self,
        registry: Registry,
        latency: LatencyModel,
        control: Control,
        hooks: SandboxHooks | None = None,
        tenant_id: str = "",
    ) -> None:
        self.registry = registry
        self.latency = latency
        self.control = control
        self.hooks: SandboxHooks = hooks or ModelledHooks()
        self.tenant_id = tenant_id
        self.store = Store()
        self.ops = Operations()
        self.extensions: dict[str, Any] = {}  # per-type helpers (azurite, container runs)
        self._pending: dict[str, Resource] = {}  # parents being prepared, seen by their children

    def current(self, resource_id: str) -> Resource | None:
        """The resource as the PUT being prepared will leave it (a VNet's new address space), else stored."""
        return self._pending.get(ids.key(resource_id)) or self.store.get(resource_id)

    # Lookups and views --------------------------------------------------------------------------
    def spec_of(self, resource: Resource) -> TypeSpec:
        spec = self.registry.get(resource.type)
        assert spec is not None, resource.type
        return spec

    def render(self, resource: Resource, listing: bool = False, expand: str = "") -> dict[str, Any]:
        body = dict(resource.body)
        body["properties"] = dict(resource.body.get("properties") or {})
        spec = self.registry.get(resource.type)
        if spec is not None:
            for prop, child_type in spec.embedded.items():
                body["properties"][prop] = [
                    self.render(c) for c in self.store.children(resource.id, child_type)
                ]
            if spec.render is not None:
                spec.render(self, resource, body, listing, expand)
        return body

    def view(self, resource: Resource) -> ResourceView:
        def lookup(resource_id: str) -> dict[str, Any] | None:
            found = self.store.get(resource_id)
            return copy.deepcopy(self.render(found)) if found else None

        return ResourceView(
            resource.id,
            resource.type,
            resource.name,
            resource.location,
            copy.deepcopy(self.render(resource)),
            lookup,
        )

    def resolve(self, resource_id: str) -> Resource | None:
        """The stored resource an id names, or the stored ancestor holding it as a sub-resource
        (a load balancer's frontendIPConfigurations/x), if that body really has an item with that id."""
        found = self.store.get(resource_id)
        if found is not None:
            return found
        parts = resource_id.rstrip("/").split("/")
        if len(parts) < 3:
            return None
        owner = self.store.get("/".join(parts[:-2]))
        if owner is None:
            return None
        items = (owner.body.get("properties") or {}).get(_prop_name(owner, parts[-2])) or []
        for item in items:
            if isinstance(item, dict) and ids.key(str(item.get("id", ""))) == ids.key(resource_id):
                return owner
        return None

    # Requests ---------------------------------------------------------------------------------
    def locate(self, path: ArmPath) -> tuple[TypeSpec, str, str] | None:
        """(spec, resource id, rest) for the longest registered type prefix; rest is what follows."""
        for depth in range(min(len(path.types), len(path.names)), 0, -1):
            spec = self.registry.get("/".join([path.namespace or "", *path.types[:depth]]))
            if spec is None:
                continue
            rest: list[str] = []
            for i in range(depth, len(path.types)):
                rest.append(path.types[i])
                if i < len(path.names):
                    rest.append(path.names[i])
            return spec, path.resource_id(depth), "/".join(rest)
        return None

    def require_group(self, subscription: str, group: str) -> Resource:
        found = self.store.get(ids.group_id(subscription, group))
        if found is None:
            raise group_not_found(group)
        return found

    def get(self, resource_id: str, spec: TypeSpec, expand: str = "") -> Answer:
        resource = self.store.get(resource_id)
        if resource is None:
            self.require_group(_sub_of(resource_id), ids.group_of(resource_id) or "")
            raise not_found(spec.type, ids.name_of(resource_id), ids.group_of(resource_id) or "")
        return Answer(200, self.render(resource, expand=expand))

    def list_of(self, subscription: str, group: str | None, type_name: str, parent_id: str | None) -> Answer:
        if parent_id is not None:
            if self.store.get(parent_id) is None:
                raise not_found(
                    type_name.rsplit("/", 1)[0], ids.name_of(parent_id), ids.group_of(parent_id) or ""
                )
            found = self.store.children(parent_id, type_name)
        elif group is not None:
            self.require_group(subscription, group)
            found = [
                r for r in self.store.in_group(subscription, group) if r.type.lower() == type_name.lower()
            ]
        else:
            prefix = f"/subscriptions/{subscription}/".lower()
            found = [
                r
                for r in self.store.all()
                if r.type.lower() == type_name.lower() and r.key.startswith(prefix)
            ]
        return Answer(200, {"value": [self.render(r, listing=True) for r in found]})

    # PUT ----------------------------------------------------------------------------------------
    async def put(self, resource_id: str, spec: TypeSpec, body: dict[str, Any], api_version: str) -> Answer:
        subscription, group = _sub_of(resource_id), ids.group_of(resource_id) or ""
        group_res = self.require_group(subscription, group)
        parent = self._parent(resource_id, spec)
        self.control.check_registered(spec.namespace)
        existing = self.store.get(resource_id)
        if existing is not None and existing.provisioning_state == "Deleting":
            raise ArmError(
                409, "AnotherOperationInProgress", f"Operation on '{existing.name}' is in progress: delete."
            )
        self._admit(spec, resource_id, body, parent, existing)
        resource, children = self._prepare(spec, resource_id, body, existing, parent, group_res)
        dropped = self._dropped_children(spec, resource, children)
        seconds = self.latency.seconds(spec.type, "put") if spec.lro else 0.0
        fault = self.control.fault_for("PUT", spec.type, resource.name, in_operation=True)
        state = (
            "Succeeded"
            if seconds <= 0 and fault is None
            else (spec.initial_state if existing is None else "Updating")
        )
        for r in [resource] + [c for _, c, _ in children]:
            r.props["provisioningState"] = state
        self._store(spec, resource)
        for child_spec, child, _ in children:
            self._store(child_spec, child)
        await self._delete_now(dropped)  # their delete hooks run too
        created = existing is None
        touched = [resource] + [c for _, c, _ in children]

        async def finish() -> Any:
            if fault is not None:
                raise fault
            if spec.on_ready is not None:
                await spec.on_ready(self, resource)
            for r in touched:
                if self.store.get(r.id) is r:
                    r.props["provisioningState"] = "Succeeded"
            return None

        def failed(error: ArmError) -> None:
            for r in touched:
                if self.store.get(r.id) is r:
                    r.props["provisioningState"] = "Failed"

        if state == "Succeeded":
            if spec.on_ready is not None:
                on_ready = spec.on_ready
                self.ops.background(lambda: on_ready(self, resource))
            return Answer(201 if created and spec.create_status != 202 else 200, self.render(resource))
        op = self.start_operation(resource, seconds, finish, failed)
        status = spec.create_status if created else 200
        headers = self.ops.headers(op, api_version, location=status == 202)
        return Answer(status, self.render(resource) if status != 202 else None, headers)

    def _admit(
        self, spec: TypeSpec, resource_id: str, body: Any, parent: Resource | None, existing: Resource | None
    ) -> None:
        """Policy and quota, checked before preparing: preparing has effects (a VM's OS disk, a
        private endpoint's NIC) that a refused request must not leave behind."""
        location = body.get("location") if isinstance(body, dict) else None
        location = location or (self._location_of(parent) if parent else None)
        self.control.check_policy(spec.type, location, resource_id)
        for prop, child_type in spec.embedded.items():
            items = (body.get("properties") or {}).get(prop) if isinstance(body, dict) else None
            for item in items or []:
                child_id = f"{resource_id}/{child_type.rsplit('/', 1)[-1]}/{item.get('name', '')}"
                self.control.check_policy(child_type, location, child_id)
        if isinstance(body, dict) and spec.quota is not None:
            provisional = Resource(resource_id, spec.type, {**body, "location": location})
            self._check_quota(spec, provisional, existing)

    def _parent(self, resource_id: str, spec: TypeSpec) -> Resource | None:
        parent_key = ids.parent_key(resource_id)
        if parent_key is None:
            return None
        parent = self.store.get(parent_key)
        if parent is None:
            parent_id = resource_id.rsplit("/", 2)[0]
            raise ArmError(
                404,
                "ParentResourceNotFound",
                f"Can not perform requested operation on nested resource. Parent resource "
                f"'{ids.name_of(parent_id)}' not found.",
            )
        return parent

    def _prepare(
        self,
        spec: TypeSpec,
        resource_id: str,
        body: dict[str, Any],
        existing: Resource | None,
        parent: Resource | None,
        group: Resource,
    ) -> tuple[Resource, list[tuple[TypeSpec, Resource, Resource | None]]]:
        """Validate a PUT body and make the resource (and embedded children) to store."""
        if not isinstance(body, dict):
            raise ArmError(
                400, "InvalidRequestContent", "The request content was invalid and could not be deserialized."
            )
        new_body = copy.deepcopy(body)
        props = new_body.get("properties")
        new_body["properties"] = dict(props) if isinstance(props, dict) else {}
        rid = existing.id if existing is not None else resource_id
        new_body.update({"id": rid, "name": ids.name_of(rid), "type": spec.type})
        if spec.located:
            if not new_body.get("location"):
                if parent is not None and parent.location:
                    new_body["location"] = parent.location
                else:
                    raise ArmError(
                        400, "LocationRequired", "The location property is required for this definition."
                    )
            if parent is not None and parent.location and _loc(new_body["location"]) != _loc(parent.location):
                raise ArmError(
                    400,
                    "InvalidResourceLocation",
                    f"The resource '{new_body['name']}' must be in the location of its parent "
                    f"'{parent.name}' ('{parent.location}'), not '{new_body['location']}'.",
                )
            if (
                existing is not None
                and existing.location
                and _loc(existing.location) != _loc(new_body["location"])
            ):
                raise ArmError(
                    400,
                    "InvalidResourceLocation",
                    f"The resource '{existing.name}' already exists in location '{existing.location}'; "
                    f"a resource with the same name cannot be created in '{new_body['location']}'.",
                )
        else:
            new_body.pop("location", None)
        embedded_bodies = {p: new_body["properties"].pop(p, None) for p in spec.embedded}
        resource = Resource(rid, spec.type, new_body, dict(existing.state) if existing else {})
        if existing is not None:
            resource.created_at = existing.created_at
        if spec.validate is not None:
            spec.validate(self, resource, existing)
        self._check_refs(spec, resource, parent)
        if spec.synthesize is not None:
            spec.synthesize(self, resource, existing)
        children: list[tuple[TypeSpec, Resource, Resource | None]] = []
        self._pending[resource.key] = resource
        try:
            self._prepare_children(spec, resource, embedded_bodies, group, children)
        finally:
            self._pending.pop(resource.key, None)
        return resource, children

    def _prepare_children(
        self,
        spec: TypeSpec,
        resource: Resource,
        embedded_bodies: dict[str, Any],
        group: Resource,
        children: list[tuple[TypeSpec, Resource, Resource | None]],
    ) -> None:
        rid = resource.id
        for prop, child_type in spec.embedded.items():
            items = embedded_bodies[prop]
            if items is None:
                continue
            child_spec = self.registry.get(child_type)
            assert child_spec is not None
            for item in items:
                name = item.get("name") if isinstance(item, dict) else None
                if not name:
                    raise ArmError(400, "InvalidRequestFormat", f"Each item of '{prop}' needs a name.")
                child_id = f"{rid}/{child_type.rsplit('/', 1)[-1]}/{name}"
                child_existing = self.store.get(child_id)
                child, _ = self._prepare(
                    child_spec,
                    child_id,
                    {k: v for k, v in item.items() if k != "id"},
                    child_existing,
                    resource,
                    group,
                )
                children.append((child_spec, child, child_existing))

    def _check_refs(self, spec: TypeSpec, resource: Resource, parent: Resource | None) -> None:
        location = resource.location or (self._location_of(parent) if parent else None)
        for ref, target_id in referenced_ids(spec, resource.body):
            self.check_reference(resource, ref, target_id, location)

    def check_reference(
        self, resource: Resource, ref: Ref, target_id: str, location: str | None
    ) -> Resource | None:
        target = self.resolve(target_id)
        if target is None:
            if not ref.must_exist:
                return None
            raise ArmError(
                400,
                "InvalidResourceReference",
                f"Resource {target_id} referenced by resource {resource.id} was not found. "
                "Please make sure that the referenced resource exists, and that both resources "
                "are in the same region.",
            )
        target_location = self._location_of(target)
        if ref.same_location and location and target_location and _loc(location) != _loc(target_location):
            raise ArmError(
                400,
                "InvalidResourceReference",
                f"Resource {target_id} referenced by resource {resource.id} is in location "
                f"'{target_location}', not '{location}'. Referenced resources must be in the same "
                "region.",
            )
        return target

    def _location_of(self, resource: Resource | None) -> str | None:
        while resource is not None:
            if resource.location:
                return resource.location
            parent_key = ids.parent_key(resource.id)
            resource = self.store.get(parent_key) if parent_key else None
        return None

    def _check_quota(self, spec: TypeSpec, resource: Resource, existing: Resource | None) -> None:
        if spec.quota is None:
            return
        location = _loc(resource.location or "")
        old = {(p, n): a for p, n, a in spec.quota(self, existing)} if existing else {}
        for provider, name, amount in spec.quota(self, resource):
            limit = self.control.quota_limit(provider, name)
            extra = amount - old.get((provider, name), 0)
            if limit is None or extra <= 0:
                continue
            used = self.usage(provider, name, location, _sub_of(resource.id))
            if used + extra > limit:
                raise quota_error(provider, name, resource.location or "", limit, used, extra)

    def usage(self, provider: str, name: str, location: str, subscription: str) -> int:
        total = 0
        prefix = f"/subscriptions/{subscription}/".lower()
        for r in self.store.all():
            spec = self.registry.get(r.type)
            if spec is None or spec.quota is None or not r.key.startswith(prefix):
                continue
            if _loc(r.location or "") != location or r.provisioning_state == "Deleting":
                continue
            total += sum(a for p, n, a in spec.quota(self, r) if p == provider and n == name)
        return total

    def _dropped_children(
        self, spec: TypeSpec, resource: Resource, children: list[tuple[TypeSpec, Resource, Resource | None]]
    ) -> list[Resource]:
        """A PUT replaces the embedded list: children it leaves out are deleted, unless in use (then it
        fails), as a VNet PUT without `subnets` does in Azure."""
        keep = {c.key for _, c, _ in children}
        dropped: list[Resource] = []
        for child_type in spec.embedded.values():
            for child in self.store.children(resource.id, child_type):
                if child.key not in keep:
                    dropped.append(child)
        self.check_deletable(dropped)
        return dropped

    def _store(self, spec: TypeSpec, resource: Resource) -> None:
        refs = [self.resolve(t) for _, t in referenced_ids(spec, resource.body)]
        self.store.put(resource, [r.id for r in refs if r is not None and r.key != resource.key])

    def add_managed(self, resource: Resource) -> None:
        """Store a resource the sandbox made on a caller's behalf (a private endpoint's NIC, a VM's disk)."""
        self._store(self.spec_of(resource), resource)

    # DELETE --------------------------------------------------------------------------------------
    async def delete(self, resource_id: str, spec: TypeSpec, api_version: str) -> Answer:
        resource = self.store.get(resource_id)
        if resource is None:
            self.require_group(_sub_of(resource_id), ids.group_of(resource_id) or "")
            return Answer(204)
        if resource.provisioning_state == "Deleting":
            op = resource.state.get("_delete_op")
            running = self.ops.get(op) if op else None
            if running is not None:
                return Answer(202, None, self.ops.headers(running, api_version, location=True))
        victims = self.victims(resource)
        self.check_deletable(victims)
        fault = self.control.fault_for("DELETE", spec.type, resource.name, in_operation=True)
        lro = spec.lro if spec.lro_delete is None else spec.lro_delete
        seconds = self.latency.seconds(spec.type, "delete") if lro else 0.0
        if seconds <= 0 and fault is None:
            await self._delete_now(victims)
            return Answer(spec.sync_delete_status)
        for v in victims:
            v.props["provisioningState"] = "Deleting"

        async def finish() -> Any:
            if fault is not None:
                raise fault
            await self._delete_now(victims)
            return None

        def failed(error: ArmError) -> None:
            for v in victims:
                v.props["provisioningState"] = "Failed"

        op = self.start_operation(resource, seconds, finish, failed)
        resource.state["_delete_op"] = op.id
        return Answer(202, None, self.ops.headers(op, api_version, location=True))

    def victims(self, resource: Resource) -> list[Resource]:
        """Everything that goes with `resource`: descendants first, then cascades, then itself."""
        out: list[Resource] = []
        seen: set[str] = set()

        def add(r: Resource) -> None:
            if r.key in seen:
                return
            seen.add(r.key)
            for d in self.store.descendants(r.id):
                add(d)
            spec = self.registry.get(r.type)
            out.append(r)
            if spec is not None and spec.cascade is not None:
                for extra_id in spec.cascade(self, r):
                    extra = self.store.get(extra_id)
                    if extra is not None:
                        add(extra)

        add(resource)
        return out

    def check_deletable(self, victims: list[Resource]) -> None:
        going = {v.key for v in victims}
        for victim in victims:
            spec = self.registry.get(victim.type)
            if spec is not None and spec.check_delete is not None:
                spec.check_delete(self, victim)
            if spec is None or spec.in_use is None:
                continue
            users = [u for u in self.store.referrers(victim.id) if u.key not in going]
            if users:
                status, code = spec.in_use
                code = next(
                    (spec.in_use_by[u.type.lower()] for u in users if u.type.lower() in spec.in_use_by), code
                )
                names = ", ".join(u.id for u in users[:5])
                raise ArmError(
                    status,
                    code,
                    f"{victim.type.rsplit('/', 1)[-1]} {victim.id} is in use by {names} and cannot "
                    "be deleted. In order to delete it, remove all resources that use it.",
                )

    async def _delete_now(self, victims: list[Resource]) -> None:
        for victim in victims:
            if self.store.get(victim.id) is not victim:
                continue
            spec = self.registry.get(victim.type)
            view = self.view(victim)
            self._remove(victim)
            if spec is not None and spec.on_delete is not None:
                await spec.on_delete(self, victim)
            del view

    def _remove(self, resource: Resource) -> None:
        for child in self.store.descendants(resource.id):
            self.store.remove(child.id)
        self.store.remove(resource.id)

    # Actions -------------------------------------------------------------------------------------
    async def action(
        self, resource_id: str, spec: TypeSpec, rest: str, method: str, body: Any, query: dict[str, str]
    ) -> Answer:
        resource = self.store.get(resource_id)
        handler = None
        for pattern, (verb, fn) in spec.actions.items():
            if verb == method and fnmatch.fnmatch(rest.lower(), pattern):
                handler = fn
                break
        if handler is None:
            raise ArmError(
                404 if method == "GET" else 400,
                "InvalidResourceType" if method == "GET" else "InvalidAction",
                f"The resource type or action '{rest}' of '{spec.type}' is not supported by the sandbox.",
            )
        if resource is None:
            self.require_group(_sub_of(resource_id), ids.group_of(resource_id) or "")
            raise not_found(spec.type, ids.name_of(resource_id), ids.group_of(resource_id) or "")
        if method != "GET":
            self.control.check_registered(spec.namespace)
        query = {**query, "_rest": rest}
        result: ActionResult = handler(self, resource, body if isinstance(body, dict) else {}, query)
        if result.work is None:
            return Answer(result.status, result.body)
        op_name = result.latency_op or rest.split("/")[-1]
        seconds = self.latency.seconds(spec.type, op_name)
        fault = self.control.fault_for("POST", spec.type, resource.name, in_operation=True)
        work = result.work

        async def finish() -> Any:
            if fault is not None:
                raise fault
            return await work()

        op = self.start_operation(resource, seconds, finish, None)
        return Answer(202, None, self.ops.headers(op, query.get("api-version", ""), location=True))

    # Long-running operations --------------------------------------------------------------------
    def start_operation(
        self,
        resource: Resource,
        seconds: float,
        finish: Callable[[], Awaitable[Any]],
        failed: Callable[[ArmError], None] | None,
    ) -> Operation:
        spec = self.registry.get(resource.type)
        namespace = spec.namespace if spec else "Microsoft.Resources"
        location = _loc(self._location_of(resource) or "global")
        return self.ops.start(resource.id, namespace, location, seconds, finish, failed)

    # Resource groups -----------------------------------------------------------------------------
    def put_group(self, subscription: str, name: str, body: dict[str, Any]) -> Answer:
        gid = ids.group_id(subscription, name)
        existing = self.store.get(gid)
        location = body.get("location")
        if not location:
            raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
        if existing is not None and _loc(existing.location or "") != _loc(location):
            raise ArmError(
                409,
                "InvalidResourceGroupLocation",
                f"Invalid resource group location '{location}'. The Resource group already exists in "
                f"location '{existing.location}'.",
            )
        if existing is not None and existing.provisioning_state == "Deleting":
            raise ArmError(
                409,
                "ResourceGroupBeingDeleted",
                f"The resource group '{name}' is in deprovisioning state and cannot perform this operation.",
            )
        self.control.check_policy(GROUP_TYPE, location, gid)
        group = Resource(
            existing.id if existing else gid,
            GROUP_TYPE,
            {
                "id": existing.id if existing else gid,
                "name": existing.name if existing else name,
                "type": GROUP_TYPE,
                "location": location,
                "tags": body.get("tags") or {},
                "properties": {"provisioningState": "Succeeded"},
            },
        )
        if body.get("managedBy"):
            group.body["managedBy"] = body["managedBy"]
        self.store.put(group)
        return Answer(200 if existing else 201, group.body)

    def patch_group(self, subscription: str, name: str, body: dict[str, Any]) -> Answer:
        group = self.require_group(subscription, name)
        if "tags" in body:
            group.body["tags"] = body["tags"] or {}
        return Answer(200, group.body)

    async def delete_group(self, subscription: str, name: str, api_version: str) -> Answer:
        group = self.require_group(subscription, name)
        if group.provisioning_state == "Deleting":
            op = self.ops.get(group.state.get("_delete_op", ""))
            if op is not None:
                return Answer(202, None, self.ops.location_headers(op, api_version))
        members = self.store.in_group(subscription, name)
        fault = self.control.fault_for("DELETE", GROUP_TYPE, name, in_operation=True)
        group.props["provisioningState"] = "Deleting"
        seconds = self.latency.seconds(GROUP_TYPE, "delete")

        async def finish() -> Any:
            if fault is not None:
                raise fault
            # Children before parents; in-use rules do not apply inside a group delete.
            ordered: list[Resource] = []
            for m in sorted(members, key=lambda r: -r.id.count("/")):
                ordered.extend(v for v in self.victims(m) if v not in ordered)
            await self._delete_now([m for m in ordered if self.store.get(m.id) is m])
            self.store.remove(group.id)
            return None

        def failed(error: ArmError) -> None:
            group.props["provisioningState"] = "Succeeded"

        op = self.start_operation(group, seconds, finish, failed)
        group.state["_delete_op"] = op.id
        return Answer(202, None, self.ops.location_headers(op, api_version))

    def list_groups(self, subscription: str, query: dict[str, str] | None = None) -> Answer:
        prefix = f"/subscriptions/{subscription}/resourcegroups/".lower()
        text = (query or {}).get("$filter", "")
        groups = [
            r.body
            for r in self.store.all()
            if r.type == GROUP_TYPE and r.key.startswith(prefix) and _matches_filter(r, text)
        ]
        return Answer(200, {"value": groups})

    def list_generic(self, subscription: str, group: str | None, query: dict[str, str]) -> Answer:
        if group is not None:
            self.require_group(subscription, group)
            found = self.store.in_group(subscription, group)
        else:
            prefix = f"/subscriptions/{subscription}/".lower()
            found = [r for r in self.store.all() if r.key.startswith(prefix) and r.type != GROUP_TYPE]
        found = [
            r for r in found if ids.parent_key(r.id) is None and _matches_filter(r, query.get("$filter", ""))
        ]
        items = []
        for r in found:
            item: dict[str, Any] = {
                k: r.body[k]
                for k in ("id", "name", "type", "location", "tags", "kind", "sku", "managedBy", "identity")
                if k in r.body
            }
            item["provisioningState"] = r.provisioning_state
            items.append(item)
        return Answer(200, {"value": items})

    # Reset and persistence -----------------------------------------------------------------------
    async def reset(self) -> None:
        await self.ops.cancel_all()
        self.ops.by_id.clear()
        self.store.clear()
        await self.hooks.close()

    def restore(self, items: list[dict[str, Any]], operations: list[dict[str, Any]] | None = None) -> None:
        """Load persisted resources and operations. Nothing runs across a restart: what was in flight
        is taken as finished (deletes as done), so saved continuation tokens still resolve."""
        loaded = Store.load(items)
        for r in loaded:
            self.store.put(r)
        for r in loaded:
            if r.provisioning_state == "Deleting":
                self._remove(r)
        for r in loaded:
            if self.store.get(r.id) is not r:
                continue
            if r.provisioning_state in TRANSITIONAL:
                r.props["provisioningState"] = "Succeeded"
            spec = self.registry.get(r.type)
            if spec is not None:
                self._store(spec, r)
                if spec.on_restore is not None:
                    spec.on_restore(self, r)
        self.ops.load(operations or [])


def quota_error(provider: str, name: str, location: str, limit: int, used: int, extra: int) -> ArmError:
    if provider == "aci":
        return ArmError(
            409,
            "ContainerGroupQuotaReached",
            f"Resource type 'Microsoft.ContainerInstance/containerGroups' container group quota "
            f"'{name}' exceeded in region '{location}'. Limit: '{limit}', Usage: '{used}', "
            f"Requested: '{extra}'.",
        )
    return ArmError(
        409,
        "OperationNotAllowed",
        f"Operation could not be completed as it results in exceeding approved {name} quota. "
        f"Additional details - Deployment Model: Resource Manager, Location: {location}, Current Limit: "
        f"{limit}, Current Usage: {used}, Additional Required: {extra}, (Minimum) New Limit Required: "
        f"{used + extra}. Submit a request for Quota increase at https://aka.ms/ProdportalCRP.",
    )


def _matches_filter(resource: Resource, text: str) -> bool:
    """The $filter forms callers use: resourceType eq 'x', tagName eq 'k' [and tagValue eq 'v']."""
    if not text:
        return True
    clauses: dict[str, str] = {}
    for clause in text.split(" and "):
        parts = clause.strip().split(" eq ", 1)
        if len(parts) == 2:
            clauses[parts[0].strip().lower()] = parts[1].strip().strip("'")
    if "resourcetype" in clauses and clauses["resourcetype"].lower() != resource.type.lower():
        return False
    if "tagname" in clauses:
        tags = {k.lower(): v for k, v in resource.tags.items()}
        if clauses["tagname"].lower() not in tags:
            return False
        if "tagvalue" in clauses and tags[clauses["tagname"].lower()] != clauses["tagvalue"]:
            return False
    return True


def _prop_name(owner: Resource, segment: str) -> str:
    props = owner.body.get("properties") or {}
    for name in props:
        if name.lower() == segment.lower():
            return str(name)
    return segment


def _sub_of(resource_id: str) -> str:
    return resource_id.strip("/").split("/")[1]


def _loc(location: str) -> str:
    return location.replace(" ", "").lower()
