"""The resource-type registry: what the generic ARM engine needs to know about each type.

Every type is one `TypeSpec`: how it is created (synchronous or long-running, which status), what it
references (so existence, location and in-use rules are checked once, generically), which children
its body embeds (subnets in a VNet), and per-type hooks for the rules and synthesized fields that
differ. The engine (`engine.py`) does the rest the same way for all types.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import Engine
    from .store import Resource


@dataclass(frozen=True)
class Ref:
    """A reference to another resource inside a body: a dotted path, `[]` walks a list."""

    path: str
    same_location: bool = True
    must_exist: bool = True


@dataclass
class ActionResult:
    """What an action answers: at once (`status`, `body`) or as a long-running operation (`work`)."""

    status: int = 200
    body: Any = None
    work: Callable[[], Awaitable[Any]] | None = None  # runs after the modelled latency; returns the result
    latency_op: str | None = None


Validate = Callable[["Engine", "Resource", "Resource | None"], None]
Synthesize = Callable[["Engine", "Resource", "Resource | None"], None]
Render = Callable[
    ["Engine", "Resource", dict[str, Any], bool, str], None
]  # (..., body copy, listing, $expand)
Lifecycle = Callable[["Engine", "Resource"], Awaitable[None]]
Action = Callable[["Engine", "Resource", dict[str, Any], dict[str, str]], ActionResult]
Quota = Callable[["Engine", "Resource"], list[tuple[str, str, int]]]


@dataclass
class TypeSpec:
    type: str  # canonical, e.g. Microsoft.Network/virtualNetworks
    located: bool = True  # has its own `location`; children without one take their parent's
    lro: bool = True  # PUT (and DELETE, unless lro_delete says otherwise) are long-running operations
    lro_delete: bool | None = None
    create_status: int = 201  # what an LRO PUT answers on create (disks and storage: 202)
    initial_state: str = "Creating"
    refs: tuple[Ref, ...] = ()
    embedded: dict[str, str] = field(default_factory=dict)  # property name -> child type
    in_use: tuple[int, str] | None = None  # error when still referenced on delete
    in_use_by: dict[str, str] = field(default_factory=dict)  # referrer type (lower) -> a more precise code
    check_delete: Callable[[Engine, Resource], None] | None = None  # raises ArmError when it cannot go
    validate: Validate | None = None
    synthesize: Synthesize | None = None
    render: Render | None = None  # fills derived fields into a copy of the body
    actions: dict[str, tuple[str, Action]] = field(default_factory=dict)  # lower path -> (method, fn)
    on_ready: Lifecycle | None = None  # after a PUT's latency: the runtime seam (hooks.py)
    on_delete: Lifecycle | None = None
    on_restore: Callable[[Engine, Resource], None] | None = None  # loaded from a state file
    cascade: Callable[[Engine, Resource], list[str]] | None = None  # ids deleted along with it
    quota: Quota | None = None  # (provider, usage name, amount) it consumes
    sync_delete_status: int = 200  # what a synchronous DELETE answers

    @property
    def key(self) -> str:
        return self.type.lower()

    @property
    def namespace(self) -> str:
        return self.type.split("/", 1)[0]


class Registry:
    def __init__(self, specs: list[TypeSpec]) -> None:
        self._specs = {s.key: s for s in specs}

    def get(self, type_name: str) -> TypeSpec | None:
        return self._specs.get(type_name.lower())

    def all(self) -> list[TypeSpec]:
        return list(self._specs.values())

    def namespaces(self) -> set[str]:
        return {s.namespace for s in self._specs.values()}


def values_at(body: Any, path: str) -> list[Any]:
    """All values at a dotted path; `name[]` walks every item of a list. Missing parts yield nothing."""
    current = [body]
    for part in path.split("."):
        walk = part.endswith("[]")
        name = part[:-2] if walk else part
        nxt: list[Any] = []
        for item in current:
            if not isinstance(item, dict):
                continue
            value = item.get(name)
            if value is None:
                continue
            if walk:
                nxt.extend(value if isinstance(value, list) else [])
            else:
                nxt.append(value)
        current = nxt
    return current


def referenced_ids(spec: TypeSpec, body: dict[str, Any]) -> list[tuple[Ref, str]]:
    out: list[tuple[Ref, str]] = []
    for ref in spec.refs:
        out.extend((ref, v) for v in values_at(body, ref.path) if isinstance(v, str) and v)
    return out
