"""Kubernetes API access for the engine: custom objects, status patches, Secrets, Events.

Plain JSON over one aiohttp session on the event loop, with the credentials of kaib.controller.kubeauth.
No Kubernetes client package: the official one is synchronous (a worker thread per call in flight,
and 200 builds starting at once queued behind them), validates every call with pydantic and costs
~36 MB resident. Objects are the apiserver's JSON as dicts, as kopf gives them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import aiohttp

from kaib.controller import kubeauth

GROUP, VERSION = "kaib.dev", "v1alpha1"
TEMPLATES, BUILDS = "imagetemplates", "imagebuilds"
MERGE_PATCH = "application/merge-patch+json"
TIMEOUT = 30  # seconds per API call: a call must never hang a build forever
CONNECTIONS = 32  # calls in flight at once, and connections kept to the apiserver


class KubeApiError(Exception):
    """The apiserver answered with an error status; `reason` is its Status reason (NotFound...)."""

    def __init__(self, method: str, path: str, status: int, reason: str, message: str) -> None:
        super().__init__(f"{method} {path}: {status} {reason}: {message}")
        self.status, self.reason, self.message = status, reason, message


class Kube:
    def __init__(self, credentials: kubeauth.KubeCredentials) -> None:
        self.credentials = credentials
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str | None = None) -> Kube:
        """From a kubeconfig file (or KUBECONFIG), else the in-cluster service account."""
        return cls(kubeauth.load(kubeconfig))

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use: a session belongs to the running event loop.
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self.credentials.ssl_context(), limit=CONNECTIONS)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=TIMEOUT)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, content_type: str | None = None
    ) -> dict[str, Any] | None:
        """One API call: the answer's JSON; None for 404. Other errors raise KubeApiError."""
        for attempt in (1, 2):
            headers = {"Accept": "application/json"}
            authorization = await self.credentials.authorization()
            if authorization:
                headers["Authorization"] = authorization
            data = None
            if body is not None:
                headers["Content-Type"] = content_type or "application/json"
                data = json.dumps(body)
            async with self._client().request(
                method,
                self.credentials.server + path,
                data=data,
                headers=headers,
                server_hostname=self.credentials.server_name,
            ) as response:
                if response.status == 401 and attempt == 1:
                    self.credentials.expire()  # a rotated or expired token: fetch it again, once
                    continue
                if response.status == 404:
                    return None
                text = await response.text()
                if response.status >= 400:
                    raise _error(method, path, response.status, text)
                answer: dict[str, Any] = json.loads(text) if text else {}
                return answer
        raise AssertionError("unreachable")  # the loop returns or raises

    # -- kaib's custom objects ----------------------------------------------------------------------

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.request("GET", _custom(plural, namespace, name))

    async def list(self, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        answer = await self.request("GET", _custom(plural, namespace))
        items: list[dict[str, Any]] = (answer or {}).get("items") or []
        return items

    async def patch_status(
        self, plural: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch the status subresource; the object as the apiserver now holds it."""
        return await self._must(
            "PATCH", _custom(plural, namespace, name) + "/status", {"status": dict(status)}, MERGE_PATCH
        )

    async def patch(self, plural: str, namespace: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self._must("PATCH", _custom(plural, namespace, name), body, MERGE_PATCH)

    async def create(self, plural: str, namespace: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """Create; None when it already exists."""
        try:
            return await self._must("POST", _custom(plural, namespace), body)
        except KubeApiError as exc:
            if exc.status == 409:
                return None
            raise

    # -- core: Secrets, Events ----------------------------------------------------------------------

    async def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        secret = await self.request("GET", _core("secrets", namespace, name))
        if secret is None:
            return None
        return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}

    async def create_secret(
        self, namespace: str, name: str, data: Mapping[str, str], owner: Mapping[str, Any] | None = None
    ) -> None:
        """Create a Secret owned by `owner` (garbage-collected with it); existing ones are kept."""
        metadata: dict[str, Any] = {"name": name, "labels": {"app.kubernetes.io/managed-by": "kaib"}}
        if owner is not None:
            meta = owner["metadata"]
            metadata["ownerReferences"] = [
                {
                    "apiVersion": owner["apiVersion"],
                    "kind": owner["kind"],
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": False,
                }
            ]
        body = {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": "Opaque"}
        body["stringData"] = dict(data)
        try:
            await self._must("POST", _core("secrets", namespace), body)
        except KubeApiError as exc:
            if exc.status != 409:
                raise

    async def delete_secret(self, namespace: str, name: str) -> None:
        await self.request("DELETE", _core("secrets", namespace, name))  # None (404): already gone

    async def create_event(self, namespace: str, body: Mapping[str, Any]) -> None:
        await self._must("POST", _core("events", namespace), {"apiVersion": "v1", "kind": "Event", **body})

    async def _must(
        self, method: str, path: str, body: Mapping[str, Any], content_type: str | None = None
    ) -> dict[str, Any]:
        """A call whose 404 is an error too (a write to something that is gone)."""
        answer = await self.request(method, path, body, content_type)
        if answer is None:
            raise KubeApiError(method, path, 404, "NotFound", "the object (or its namespace) does not exist")
        return answer


def _custom(plural: str, namespace: str | None, name: str | None = None) -> str:
    path = f"/apis/{GROUP}/{VERSION}"
    if namespace:
        path += f"/namespaces/{quote(namespace, safe='')}"
    path += f"/{plural}"
    return path + (f"/{quote(name, safe='')}" if name else "")


def _core(plural: str, namespace: str, name: str | None = None) -> str:
    path = f"/api/v1/namespaces/{quote(namespace, safe='')}/{plural}"
    return path + (f"/{quote(name, safe='')}" if name else "")


def _error(method: str, path: str, status: int, text: str) -> KubeApiError:
    """The apiserver's Status object (reason, message), or the raw text when it sent none."""
    try:
        answer = json.loads(text)
        return KubeApiError(
            method, path, status, str(answer.get("reason") or ""), str(answer.get("message") or "")
        )
    except (ValueError, AttributeError):
        return KubeApiError(method, path, status, "", text[:500])
