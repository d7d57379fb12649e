"""Deterministic, collision-free names for everything the runtime creates.

Every namespace is `kaib-<runtime id>-<kind>-<slug>-<hash>`, so a sweep finds all of one runtime by
prefix even without its registry. Interface names (15 characters at most in Linux) only ever live
inside our own namespaces: `br0` and `v<hash>` in a network's namespace, `eth0` in an endpoint's.
"""

from __future__ import annotations

import hashlib
import re

PREFIX = "kaib-"
IFNAMSIZ = 15  # the kernel's limit on interface names, without the trailing NUL


def digest(*parts: str, length: int = 8) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:length]


def slug(text: str, length: int = 16) -> str:
    """A readable, namespace-safe fragment of a user-given name."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:length] or "x"


def runtime_prefix(runtime_id: str) -> str:
    return f"{PREFIX}{runtime_id}-"


def namespace(runtime_id: str, kind: str, key: str) -> str:
    """Namespace name for a network ('n'), an endpoint ('e') and so on, unique per (runtime, kind, key)."""
    return f"{runtime_prefix(runtime_id)}{kind}-{slug(key)}-{digest(runtime_id, kind, key)}"


def bridge_port(attachment: str) -> str:
    """The veth end inside a network's namespace for one attachment (unique within that network)."""
    name = f"v{digest(attachment, length=10)}"
    assert len(name) <= IFNAMSIZ
    return name
