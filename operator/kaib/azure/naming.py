"""Deterministic Azure names and ownership tags.

Every name derives from a Kubernetes uid, so a restarted operator finds what it created by name
(GET), and a retried create can never make a second copy. Every resource carries ownership tags,
so cleanup and the orphan sweeper delete only what kaib owns.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

MANAGED_BY = "kaib"
TAG_MANAGED_BY = "kaib.dev/managed-by"
TAG_BUILD = "kaib.dev/build"
TAG_BUILD_ID = "kaib.dev/build-id"
TAG_TEMPLATE = "kaib.dev/template"
TAG_NAMESPACE = "kaib.dev/namespace"


def short_hash(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def build_id(build_uid: str) -> str:
    """status.buildId: 10 hex characters, short enough for every Azure name limit."""
    return short_hash(build_uid, 10)


def staging_group_name(namespace: str, template: str, template_uid: str) -> str:
    """AIB's `IT_<templateRG>_<templateName>_<guid>`, with the namespace standing in for the group."""
    suffix = short_hash(template_uid, 8)
    head = re.sub(r"[^A-Za-z0-9_.()-]", "-", f"IT_{namespace}_{template}")
    return f"{head[: 90 - len(suffix) - 1]}_{suffix}"


def storage_account_name(template_uid: str) -> str:
    """3-24 lowercase letters and digits, globally unique in Azure: derived from the template uid."""
    return "kaib" + short_hash(template_uid, 20)


@dataclass(frozen=True)
class BuildNames:
    """The name of every resource one build may create, all in its staging group."""

    id: str

    def _n(self, what: str) -> str:
        return f"kaib-{self.id}-{what}"

    @property
    def vnet(self) -> str:
        return self._n("vnet")

    aci_subnet = "aci"
    build_subnet = "build"
    pe_subnet = "pe"

    @property
    def nsg_aci(self) -> str:
        return self._n("nsg-aci")

    @property
    def nsg_build(self) -> str:
        return self._n("nsg-build")

    @property
    def nsg_pe(self) -> str:
        return self._n("nsg-pe")

    @property
    def private_endpoint(self) -> str:
        return self._n("pe")

    @property
    def private_link_service(self) -> str:
        return self._n("pls")

    @property
    def load_balancer(self) -> str:
        return self._n("lb")

    @property
    def proxy_nic(self) -> str:
        return self._n("proxy-nic")

    @property
    def proxy_vm(self) -> str:
        return self._n("proxy")

    @property
    def proxy_os_disk(self) -> str:
        return self._n("proxy-osdisk")

    @property
    def build_nic(self) -> str:
        return self._n("nic")

    @property
    def build_vm(self) -> str:
        return self._n("vm")

    @property
    def build_os_disk(self) -> str:
        return self._n("osdisk")

    @property
    def builder(self) -> str:
        return self._n("builder")

    @property
    def vhd_image(self) -> str:
        return self._n("image")


@dataclass(frozen=True)
class Owner:
    """Who owns a resource: written as tags, read back by cleanup and the orphan sweeper."""

    namespace: str
    template: str
    build: str = ""  # empty for template-owned resources (the staging group, the storage account)
    build_id: str = ""

    def tags(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        # The template's managedResourceTags first: ownership tags always win.
        tags = dict(extra or {})
        tags[TAG_MANAGED_BY] = MANAGED_BY
        tags[TAG_NAMESPACE] = self.namespace
        tags[TAG_TEMPLATE] = self.template
        if self.build:
            tags[TAG_BUILD] = self.build
            tags[TAG_BUILD_ID] = self.build_id
        return tags


def owned_by(tags: Mapping[str, str] | None, owner: Owner) -> bool:
    tags = tags or {}
    if tags.get(TAG_MANAGED_BY) != MANAGED_BY:
        return False
    if tags.get(TAG_NAMESPACE) != owner.namespace or tags.get(TAG_TEMPLATE) != owner.template:
        return False
    return not owner.build_id or tags.get(TAG_BUILD_ID) == owner.build_id
