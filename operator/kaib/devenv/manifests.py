"""The smallest useful ImageTemplate and ImageBuild manifests (an Ubuntu image, one Shell step, one
managed image), as the tests and the benchmarks apply them; callers add or replace spec fields."""

from __future__ import annotations

from typing import Any, Protocol

API_VERSION = "kaib.dev/v1alpha1"
LOCATION = "westus"


class Subscription(Protocol):
    """Anything naming the subscription the builds run in (a sandbox handle)."""

    @property
    def subscription_id(self) -> str: ...


def image_template(
    name: str,
    sandbox: Subscription,
    images_group: str,
    *,
    namespace: str | None = None,
    image_name: str | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A template distributing to the managed image `image_name` (default `<name>-img`) in the resource
    group `images_group` (an ARM id); `spec` fields are set over the defaults."""
    image_id = f"{images_group}/providers/Microsoft.Compute/images/{image_name or f'{name}-img'}"
    defaults: dict[str, Any] = {
        "source": {
            "type": "PlatformImage",
            "publisher": "Canonical",
            "offer": "ubuntu-24_04-lts",
            "sku": "server",
            "version": "latest",
        },
        "customize": [{"type": "Shell", "name": "hello", "inline": ["echo hello"]}],
        "distribute": [
            {"type": "ManagedImage", "runOutputName": "golden", "imageId": image_id, "location": LOCATION}
        ],
        "vmProfile": {"vmSize": "Standard_B2s"},
        "azure": {"subscriptionId": sandbox.subscription_id, "location": LOCATION},
    }
    return {
        "apiVersion": API_VERSION,
        "kind": "ImageTemplate",
        "metadata": _metadata(name, namespace),
        "spec": {**defaults, **spec},
    }


def image_build(name: str, template_name: str, *, namespace: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "ImageBuild",
        "metadata": _metadata(name, namespace),
        "spec": {"templateRef": {"name": template_name}},
    }


def _metadata(name: str, namespace: str | None) -> dict[str, str]:
    return {"name": name} if namespace is None else {"name": name, "namespace": namespace}
