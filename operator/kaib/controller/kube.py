"""Kubernetes API access for the engine: custom objects, status patches, Secrets.

The official client is synchronous; every call runs in a worker thread so the event loop (and the
other builds) never wait on it.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

GROUP, VERSION = "kaib.dev", "v1alpha1"
TEMPLATES, BUILDS = "imagetemplates", "imagebuilds"
MERGE_PATCH = "application/merge-patch+json"
TIMEOUT = 30  # seconds per API call: a call must never hang a build forever


def load_api_client(kubeconfig: str | None = None) -> Any:
    """From a kubeconfig file (or KUBECONFIG), else the in-cluster service account."""
    try:
        return config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        return client.ApiClient()


class Kube:
    def __init__(self, api_client: Any) -> None:
        # Typed loosely: custom objects are plain dicts, and the generated stubs say `object`.
        self.custom: Any = client.CustomObjectsApi(api_client)
        self.core: Any = client.CoreV1Api(api_client)

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = await asyncio.to_thread(
                self.custom.get_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                _request_timeout=TIMEOUT,
            )
            return obj
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def list(self, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        if namespace:
            result = await asyncio.to_thread(
                self.custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                plural,
                _request_timeout=TIMEOUT,
            )
        else:
            result = await asyncio.to_thread(
                self.custom.list_cluster_custom_object, GROUP, VERSION, plural, _request_timeout=TIMEOUT
            )
        items: list[dict[str, Any]] = result.get("items", [])
        return items

    async def patch_status(self, plural: str, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        await asyncio.to_thread(
            self.custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            plural,
            name,
            {"status": dict(status)},
            _content_type=MERGE_PATCH,
            _request_timeout=TIMEOUT,
        )

    async def patch(self, plural: str, namespace: str, name: str, body: Mapping[str, Any]) -> None:
        await asyncio.to_thread(
            self.custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            plural,
            name,
            dict(body),
            _content_type=MERGE_PATCH,
            _request_timeout=TIMEOUT,
        )

    async def create(self, plural: str, namespace: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """Create; None when it already exists."""
        try:
            obj: dict[str, Any] = await asyncio.to_thread(
                self.custom.create_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                plural,
                dict(body),
                _request_timeout=TIMEOUT,
            )
            return obj
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise

    async def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            secret = await asyncio.to_thread(
                self.core.read_namespaced_secret, name, namespace, _request_timeout=TIMEOUT
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}

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
        body = {"metadata": metadata, "type": "Opaque", "stringData": dict(data)}
        try:
            await asyncio.to_thread(
                self.core.create_namespaced_secret, namespace, body, _request_timeout=TIMEOUT
            )
        except ApiException as exc:
            if exc.status != 409:
                raise

    async def delete_secret(self, namespace: str, name: str) -> None:
        try:
            await asyncio.to_thread(
                self.core.delete_namespaced_secret, name, namespace, _request_timeout=TIMEOUT
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
