"""Every resource type the sandbox serves, one module per provider; `registry()` gathers them."""

from __future__ import annotations

from ..registry import Registry
from . import compute, containers, identity, network, storage


def registry() -> Registry:
    return Registry([*network.SPECS, *compute.SPECS, *containers.SPECS, *storage.SPECS, *identity.SPECS])
