"""Kubernetes API access for the engine: custom objects, status patches, Secrets.

The official client is synchronous; every call runs in a worker thread so the event loop (and the
other builds) never wait on it. The threads are Kube's own, as many as its connection pool holds:
asyncio's default executor has cpus + 4 threads (6 here), which 200 builds starting at once queue
behind (each call is mostly waiting for the apiserver, so more of them in flight is what helps).
"""

from __future__ import annotations

import asyncio
import base64
import functools
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

GROUP, VERSION = "kaib.dev", "v1alpha1"
TEMPLATES, BUILDS = "imagetemplates", "imagebuilds"
MERGE_PATCH = "application/merge-patch+json"
TIMEOUT = 30  # seconds per API call: a call must never hang a build forever
CONNECTIONS = 16  # calls in flight at once: worker threads, and connections kept to the apiserver

T = TypeVar("T")


def load_api_client(kubeconfig: str | None = None) -> Any:
    """From a kubeconfig file (or KUBECONFIG), else the in-cluster service account."""
    configuration = client.Configuration()
    configuration.connection_pool_maxsize = CONNECTIONS  # read when the client is made
    try:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration)


class Kube:
    def __init__(self, api_client: Any) -> None:
        # Typed loosely: custom objects are plain dicts, and the generated stubs say `object`.
        self.custom: Any = client.CustomObjectsApi(api_client)
        self.core: Any = client.CoreV1Api(api_client)
        self._threads = ThreadPoolExecutor(max_workers=CONNECTIONS, thread_name_prefix="kube")

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` in one of Kube's threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, functools.partial(fn, *args, **kwargs))

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = await self._call(
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
            result = await self._call(
                self.custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                plural,
                _request_timeout=TIMEOUT,
            )
        else:
            result = await self._call(
                self.custom.list_cluster_custom_object, GROUP, VERSION, plural, _request_timeout=TIMEOUT
            )
        items: list[dict[str, Any]] = result.get("items", [])
        return items

    async def patch_status(self, plural: str, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        await self._call(
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
        await self._call(
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
            obj: dict[str, Any] = await self._call(
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
            secret = await self._call(
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
            await self._call(self.core.create_namespaced_secret, namespace, body, _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status != 409:
                raise

    async def delete_secret(self, namespace: str, name: str) -> None:
        try:
            await self._call(self.core.delete_namespaced_secret, name, namespace, _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status != 404:
                raise
