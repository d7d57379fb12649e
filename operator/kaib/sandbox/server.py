"""The HTTPS front: the fake Entra ID token endpoint, ARM's routes onto the engine, and the admin API
under /_sandbox/. Every ARM answer carries x-ms-request-id and the rate-limit headers callers read."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from . import config as cfg
from . import ids
from .answer import Answer
from .control import KNOWN_PROVIDERS, Control, RequestRecord
from .engine import GROUP_TYPE, Engine
from .errors import ArmError
from .kinds import catalog, storage

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
TOKEN_PREFIX = "kaib-sandbox."
# Where the sandbox's providers say their types are offered: a fair slice of Azure's regions. Any
# location works in requests; these are what region listings show.
REGIONS = {
    "westeurope": "West Europe", "northeurope": "North Europe", "swedencentral": "Sweden Central",
    "germanywestcentral": "Germany West Central", "francecentral": "France Central", "uksouth": "UK South",
    "eastus": "East US", "eastus2": "East US 2", "centralus": "Central US", "westus2": "West US 2",
    "westus3": "West US 3", "southeastasia": "Southeast Asia", "japaneast": "Japan East",
    "australiaeast": "Australia East",
}  # fmt: skip


class Tokens:
    """Bearer tokens signed with the sandbox's secret: valid across restarts of a persisted sandbox."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def issue(self, client_id: str, lifetime: int = 3599) -> str:
        payload = base64.urlsafe_b64encode(
            json.dumps({"c": client_id, "e": int(time.time()) + lifetime}).encode()
        )
        signature = hmac.new(self.secret, payload, hashlib.sha256).hexdigest()
        return f"{TOKEN_PREFIX}{payload.decode()}.{signature}"

    def valid(self, token: str) -> bool:
        if not token.startswith(TOKEN_PREFIX):
            return False
        payload, _, signature = token[len(TOKEN_PREFIX) :].rpartition(".")
        expected = hmac.new(self.secret, payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature, expected):
            return False
        try:
            return int(json.loads(base64.urlsafe_b64decode(payload))["e"]) > time.time()
        except (ValueError, KeyError):
            return False


class ArmServer:
    def __init__(
        self, engine: Engine, tokens: Tokens, client_id: str, on_reset: Callable[[], Awaitable[None]]
    ) -> None:
        self.engine = engine
        self.control: Control = engine.control
        self.tokens = tokens
        self.client_id = client_id
        self.on_reset = on_reset
        self.env: dict[str, str] = {}
        self.latencies_ms: list[float] = []

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self.token)
        app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self.openid)
        app.router.add_route("*", "/_sandbox/{what:.*}", self.admin)
        app.router.add_route("*", "/{tail:.*}", self.arm)
        return app

    # Identity ------------------------------------------------------------------------------------
    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if not form.get("client_assertion") and not form.get("client_secret"):
            return web.json_response(
                {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000216: 'client_assertion' or 'client_secret' is required.",
                },
                status=401,
            )
        client = str(form.get("client_id", self.client_id))
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": 3599,
                "ext_expires_in": 3599,
                "access_token": self.tokens.issue(client),
            }
        )

    async def openid(self, request: web.Request) -> web.Response:
        base = f"https://{request.host}/{request.match_info['tenant']}"
        return web.json_response(
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "issuer": f"{base}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            }
        )

    # ARM -----------------------------------------------------------------------------------------
    async def arm(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        method = request.method
        path = request.path
        parsed = ids.parse(path)
        type_name, name = "", ""
        owners: tuple[str, ...] = ()
        body: Any = None
        remaining = 1000  # the subscription's budget left, as ARM reports it on every answer
        try:
            auth = request.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or not self.tokens.valid(auth[7:]):
                raise ArmError(
                    401,
                    "AuthenticationFailed" if not auth else "InvalidAuthenticationToken",
                    "Authentication failed. The 'Authorization' header is missing or invalid.",
                )
            if parsed is None:
                raise ArmError(404, "NotFound", f"No route for '{path}'.")
            if not GUID.match(parsed.subscription):
                raise ArmError(
                    400,
                    "InvalidSubscriptionId",
                    f"The provided subscription identifier '{parsed.subscription}' is malformed or invalid.",
                )
            if request.can_read_body:
                raw = await request.read()
                if raw:
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        raise ArmError(
                            400, "InvalidRequestContent", "The request content was not valid JSON."
                        ) from None
            type_name, name, rid = self._describe(parsed)
            stored = self.engine.store.get(rid) if rid else None
            tags = body.get("tags") if isinstance(body, dict) else (stored.tags if stored else None)
            owners = self.control.owners_of(tags)
            wait, remaining = self.control.throttle(parsed.subscription, method not in ("GET", "HEAD"))
            if wait is not None:
                raise ArmError(
                    429,
                    "TooManyRequests",
                    "The request is being throttled as the limit has been reached "
                    "for operation type. Retry after the time in the Retry-After header.",
                    retry_after=max(1, int(wait + 0.999)),
                )
            fault = self.control.fault_for(method, type_name, name)
            if fault is not None:
                raise fault
            answer = await self.dispatch(request, parsed, method, body)
            if not owners and answer.body and isinstance(answer.body, dict):
                owners = self.control.owners_of(answer.body.get("tags"))
            response = self._respond(answer, method, remaining)
            code = None
        except ArmError as error:
            headers = {}
            if error.retry_after is not None:
                headers["Retry-After"] = str(int(error.retry_after + 0.999))
            # A fault's 429 (a resource provider's limit) still reports the subscription's budget;
            # only ARM's own throttling answers with it spent (0).
            response = self._respond(Answer(error.status, error.body(), headers), method, remaining)
            code = error.code
        elapsed = (time.perf_counter() - started) * 1000
        self.latencies_ms.append(elapsed)
        if len(self.latencies_ms) > 200000:
            del self.latencies_ms[:100000]
        self.control.record(
            RequestRecord(
                time.time(), method, path, type_name, name, response.status, code, round(elapsed, 3), owners
            )
        )
        return response

    def _describe(self, p: ids.ArmPath) -> tuple[str, str, str | None]:
        """(resource type, name, id) a request is about, for faults and the request log."""
        if p.namespace is None:
            if p.group is not None and not p.types:
                return GROUP_TYPE, p.group, ids.group_id(p.subscription, p.group)
            return "Microsoft.Resources/" + ("/".join(p.types) or "subscriptions"), "", None
        located = self.engine.locate(p) if p.group else None
        if located is not None:
            spec, rid, _ = located
            return spec.type, ids.name_of(rid), rid
        return p.full_type, p.names[-1] if p.names and len(p.names) == len(p.types) else "", None

    def _respond(self, answer: Answer, method: str, remaining: int) -> web.Response:
        headers = {
            "x-ms-request-id": str(uuid.uuid4()),
            "x-ms-correlation-request-id": str(uuid.uuid4()),
            **answer.headers,
        }
        kind = "reads" if method in ("GET", "HEAD") else "writes"
        headers[f"x-ms-ratelimit-remaining-subscription-{kind}"] = str(remaining)
        if answer.body is None or method == "HEAD" or answer.status == 204:
            return web.Response(status=answer.status, headers=headers)
        return web.Response(
            status=answer.status,
            body=json.dumps(answer.body).encode(),
            headers=headers,
            content_type="application/json",
        )

    async def dispatch(self, request: web.Request, p: ids.ArmPath, method: str, body: Any) -> Answer:
        engine = self.engine
        query = dict(request.query)
        api_version = query.get("api-version", "")
        self.engine.ops.base_url = f"https://{request.host}"
        tail = [x for pair in zip(p.types, [*p.names, ""], strict=False) for x in pair if x]
        if p.namespace is None and p.group is None:
            if not p.types:
                return Answer(
                    200,
                    {
                        "id": f"/subscriptions/{p.subscription}",
                        "subscriptionId": p.subscription,
                        "tenantId": engine.tenant_id,
                        "displayName": "kaib sandbox",
                        "state": "Enabled",
                    },
                )
            first = p.types[0].lower()
            if first == "resourcegroups" and not p.names:
                return engine.list_groups(p.subscription, query)
            if first == "resources" and not p.names:
                return engine.list_generic(p.subscription, None, query)
            if first == "locations" and not p.names:
                return Answer(200, {"value": [_region(p.subscription, n, d) for n, d in REGIONS.items()]})
            if first == "providers" and not p.names:
                return Answer(200, {"value": [self._provider(p.subscription, ns) for ns in KNOWN_PROVIDERS]})
            raise ArmError(404, "NotFound", f"No route for '{request.path}'.")
        if p.namespace is None and p.group is not None:
            if not p.types:
                return await self._group(p, method, body, api_version)
            if [t.lower() for t in p.types] == ["resources"]:
                return engine.list_generic(p.subscription, p.group, query)
            raise ArmError(404, "NotFound", f"No route for '{request.path}'.")
        assert p.namespace is not None
        if p.group is None:
            return await self._subscription_provider(p, tail, method, body, api_version, query)
        located = engine.locate(p)
        if located is None:
            if len(p.types) == 1 and not p.names and method == "GET":
                spec = engine.registry.get(p.full_type)
                if spec is not None:
                    return engine.list_of(p.subscription, p.group, spec.type, None)
            raise ArmError(
                400,
                "InvalidResourceType",
                f"The resource type '{p.full_type}' could not be found in the namespace "
                f"'{p.namespace}' for api version '{api_version}'.",
            )
        spec, rid, rest = located
        if not rest:
            if method == "PUT":
                return await engine.put(rid, spec, body if isinstance(body, dict) else {}, api_version)
            if method == "GET":
                return engine.get(rid, spec, query.get("$expand", ""))
            if method == "HEAD":
                return Answer(204 if rid in engine.store else 404)
            if method == "DELETE":
                return await engine.delete(rid, spec, api_version)
            if method == "PATCH":
                return await self._patch(rid, spec, body if isinstance(body, dict) else {}, api_version)
            raise ArmError(405, "MethodNotAllowed", f"{method} is not supported on {spec.type}.")
        child = engine.registry.get(f"{spec.type}/{rest}")
        if child is not None and "/" not in rest and method == "GET":
            return engine.list_of(p.subscription, p.group, child.type, rid)
        return await engine.action(rid, spec, rest, method, body, query)

    async def _patch(self, rid: str, spec: Any, body: dict[str, Any], api_version: str) -> Answer:
        existing = self.engine.store.get(rid)
        if existing is None:
            self.engine.require_group(rid.strip("/").split("/")[1], ids.group_of(rid) or "")
            raise ArmError(
                404, "ResourceNotFound", f"The Resource '{spec.type}/{ids.name_of(rid)}' was not found."
            )
        merged = _merge(self.engine.render(existing), body)
        answer = await self.engine.put(rid, spec, merged, api_version)
        return Answer(200 if answer.status in (200, 201) else answer.status, answer.body, answer.headers)

    async def _group(self, p: ids.ArmPath, method: str, body: Any, api_version: str) -> Answer:
        engine = self.engine
        assert p.group is not None
        if method == "PUT":
            return engine.put_group(p.subscription, p.group, body if isinstance(body, dict) else {})
        if method == "GET":
            return Answer(200, engine.require_group(p.subscription, p.group).body)
        if method == "HEAD":
            return Answer(204 if ids.group_id(p.subscription, p.group) in engine.store else 404)
        if method == "PATCH":
            return engine.patch_group(p.subscription, p.group, body if isinstance(body, dict) else {})
        if method == "DELETE":
            return await engine.delete_group(p.subscription, p.group, api_version)
        raise ArmError(405, "MethodNotAllowed", f"{method} is not supported on resource groups.")

    def _provider(self, subscription: str, namespace: str) -> dict[str, Any]:
        canonical = next((n for n in KNOWN_PROVIDERS if n.lower() == namespace.lower()), namespace)
        types = [
            {"resourceType": s.type.split("/", 1)[1], "locations": list(REGIONS.values()),
             "apiVersions": ["2024-07-01", "2024-03-01", "2023-09-01"]}
            for s in self.engine.registry.all()
            if s.namespace.lower() == canonical.lower()
        ]  # fmt: skip
        return {
            "id": f"/subscriptions/{subscription}/providers/{canonical}",
            "namespace": canonical,
            "registrationState": self.control.registration_state(canonical),
            "registrationPolicy": "RegistrationRequired",
            "resourceTypes": types,
        }

    async def _subscription_provider(
        self, p: ids.ArmPath, tail: list[str], method: str, body: Any, api_version: str, query: dict[str, str]
    ) -> Answer:
        assert p.namespace is not None
        lowered = [t.lower() for t in tail]
        if not tail:
            return Answer(200, self._provider(p.subscription, p.namespace))
        if lowered == ["register"] and method == "POST":
            cfg.set_registration(self.control, p.namespace, "Registered")
            return Answer(200, self._provider(p.subscription, p.namespace))
        if lowered == ["unregister"] and method == "POST":
            cfg.set_registration(self.control, p.namespace, "NotRegistered")
            return Answer(200, self._provider(p.subscription, p.namespace))
        if len(tail) >= 3 and lowered[0] == "locations":
            location, what = tail[1], lowered[2]
            if what == "operations" and len(tail) == 4:
                return self.engine.ops.status(tail[3])
            if what == "operationresults" and len(tail) == 4:
                return self.engine.ops.result(tail[3], api_version)
            if what == "usages" and len(tail) == 3:
                return Answer(200, {"value": self._usages(p.namespace, location, p.subscription)})
            if what == "publishers" and p.namespace.lower() == "microsoft.compute":
                found = catalog.listing(location, tail[3:])
                if found is None:
                    raise ArmError(
                        404, "NotFound", f"Artifact '{'/'.join(tail[3:])}' not found in '{location}'."
                    )
                return Answer(200, found)
        if lowered == ["checknameavailability"] and method == "POST":
            return Answer(200, storage.check_name(self.engine, body if isinstance(body, dict) else {}))
        if len(tail) == 1 and method == "GET":
            spec = self.engine.registry.get(f"{p.namespace}/{tail[0]}")
            if spec is not None:
                return self.engine.list_of(p.subscription, None, spec.type, None)
        raise ArmError(
            400,
            "InvalidResourceType",
            f"The resource type '{p.namespace}/{'/'.join(tail)}' is not served by the sandbox.",
        )

    def _usages(self, namespace: str, location: str, subscription: str) -> list[dict[str, Any]]:
        provider = {"microsoft.compute": "compute", "microsoft.containerinstance": "aci"}.get(
            namespace.lower()
        )
        if provider is None:
            return []
        out = []
        loc = location.replace(" ", "").lower()
        for name, limit in sorted(self.control.quotas.get(provider, {}).items()):
            used = self.engine.usage(provider, name, loc, subscription)
            item: dict[str, Any] = {
                "name": {"value": name, "localizedValue": _localized(name)},
                "currentValue": used,
                "limit": limit,
                "unit": "Count",
            }
            if provider == "aci":
                item["id"] = (
                    f"/subscriptions/{subscription}/providers/{namespace}/locations/{location}/usages/{name}"
                )
            out.append(item)
        return out

    # Admin ---------------------------------------------------------------------------------------
    async def admin(self, request: web.Request) -> web.Response:
        what = request.match_info["what"].strip("/")
        method = request.method
        body: Any = {}
        if request.can_read_body:
            raw = await request.read()
            body = json.loads(raw) if raw else {}
        try:
            result = await self._admin(what, method, body, dict(request.query))
        except ArmError as error:
            return web.json_response(error.body(), status=error.status)
        except (ValueError, TypeError, KeyError) as exc:
            return web.json_response({"error": {"code": "BadRequest", "message": str(exc)}}, status=400)
        if result is None:
            return web.json_response(
                {"error": {"code": "NotFound", "message": f"{method} /_sandbox/{what}"}}, status=404
            )
        return web.json_response(result)

    async def _admin(self, what: str, method: str, body: Any, query: dict[str, str]) -> Any:
        control, engine = self.control, self.engine
        parts = what.split("/")
        head = parts[0]
        if head == "health":
            azurite = engine.extensions.get("azurite")
            return {
                "ok": True,
                "resources": len(engine.store),
                "pid": os.getpid(),
                "azurite": {"pid": azurite.process.pid, "port": azurite.port} if azurite else None,
            }
        if head == "env":
            return self.env
        if head == "inventory":
            return self._inventory(query)
        if head == "requests":
            limit = int(query.get("limit", 1000))
            return [vars(r) for r in list(control.log)[-limit:]]
        if head == "counters":
            return {
                "requests": [
                    {"method": m, "type": t, "status": s, "count": c}
                    for (m, t, s), c in sorted(control.counters.items())
                ],
                "byOwner": dict(control.owner_counters),
                "total": sum(control.counters.values()),
            }
        if head == "stats":
            return _stats(self.latencies_ms)
        if head == "faults":
            if method == "POST":
                return vars(control.add_fault(cfg.fault_from(body)))
            if method == "DELETE":
                gone = int(parts[1]) if len(parts) > 1 else None  # one rule, else all
                control.faults = [f for f in control.faults if gone is not None and f.id != gone]
                return {"faults": len(control.faults)}
            return [vars(f) for f in control.faults]
        if head == "policies":
            if method == "POST":
                control.policies.append(cfg.policy_from(body))
            elif method == "DELETE":
                control.policies.clear()
            return [vars(p) for p in control.policies]
        if head == "quotas":
            if method in ("PUT", "POST"):
                cfg.apply(control, engine.latency, {"quotas": body})
            return control.quotas
        if head == "providers":
            if method in ("PUT", "POST") and len(parts) > 1:
                cfg.set_registration(control, parts[1], str(body.get("registrationState", "Registered")))
            return {ns: control.registration_state(ns) for ns in KNOWN_PROVIDERS}
        if head == "throttling":
            if method in ("PUT", "POST"):
                control.throttling = bool(body.get("enabled", True))
            return {"enabled": control.throttling}
        if head == "latency":
            if method in ("PUT", "POST"):
                cfg.apply_latency(engine.latency, body)
            return engine.latency.describe()
        if head == "outcomes":
            if method == "POST":
                control.outcomes.append(cfg.outcome_from(body))
            elif method == "DELETE":
                control.outcomes.clear()
            return [{"name": n, **vars(o)} for n, o in control.outcomes]
        if head == "config":
            if method in ("PUT", "POST"):
                cfg.apply(control, engine.latency, body)
            return control.describe()
        if head == "reset" and method == "POST":
            await self.on_reset()
            self.latencies_ms.clear()
            return {"reset": True}
        return None

    def _inventory(self, query: dict[str, str]) -> list[dict[str, Any]]:
        type_filter = query.get("type", "").lower()
        tag = query.get("tag", "")
        tag_key, _, tag_value = tag.partition("=")
        out = []
        for r in self.engine.store.all():
            if type_filter and r.type.lower() != type_filter:
                continue
            if tag_key and (tag_key not in r.tags or (tag_value and r.tags[tag_key] != tag_value)):
                continue
            item: dict[str, Any] = {
                "id": r.id,
                "type": r.type,
                "name": r.name,
                "location": r.location,
                "tags": r.tags,
                "provisioningState": r.provisioning_state,
            }
            if "power" in r.state:
                item["powerState"] = r.state["power"]
            view = self.engine.render(r)["properties"].get("instanceView")
            if isinstance(view, dict) and view.get("state"):  # container groups
                item["instanceState"] = view["state"]
            out.append(item)
        return out


def _region(subscription: str, name: str, display: str) -> dict[str, Any]:
    return {"id": f"/subscriptions/{subscription}/locations/{name}", "name": name, "displayName": display,
            "regionalDisplayName": f"({display}) {display}", "type": "Region"}  # fmt: skip


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in patch.items():
        out[k] = (
            _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "tags" else v
        )
    return out


def _localized(name: str) -> str:
    return {"cores": "Total Regional vCPUs", "virtualMachines": "Virtual Machines"}.get(name, name)


def _stats(samples: list[float]) -> dict[str, Any]:
    if not samples:
        return {"count": 0}
    ordered = sorted(samples)

    def pct(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {
        "count": len(ordered),
        "p50_ms": pct(0.5),
        "p90_ms": pct(0.9),
        "p99_ms": pct(0.99),
        "max_ms": round(ordered[-1], 3),
    }
