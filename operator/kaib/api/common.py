"""What every API model shares: the base class, cross-field rules, and the name pattern.

A `Rule` is written once and used twice: its CEL expression goes into the CRD (scripts/gen_crds.py)
and its Python `check` runs in `kaib validate` (`kaib.api.manifest`). Keeping both halves side by
side, on the model they constrain, is what keeps the apiserver and the offline validator agreeing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

# AIB's pattern for template, runOutput and trigger names, with '-' moved last so that every regex
# engine reads it as a literal (Go's RE2 and Python agree on this spelling).
NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
NAME_RULE = "must match ^[A-Za-z0-9-_.]{1,64}$"

# A whole-number float (30.0) passes the apiserver's `type: integer` check, then breaks every CEL rule
# that reads it ("invalid data, expected int, got float64"). Each integer field of a spec therefore
# carries this rule of its own, so such a value is refused on that field, saying why; `kaib validate`
# says the same.
INTEGER_RULE = "type(self) == int"
INTEGER_MESSAGE = "must be an integer, written without a decimal point (30, not 30.0)"

# Bounds that keep the apiserver's CEL cost estimate under budget (and requests sane).
MAX_ID = 1024  # an ARM resource id or URI
MAX_TEXT = 4096  # a command line, search criteria
MAX_SHORT = 256  # sizes, regions, versions, names of things


@dataclass(frozen=True)
class Rule:
    """One cross-field rule: a CEL expression on `self` and the same check in Python.

    `field` is where the error points, relative to the object (CEL `fieldPath`), "" for the object
    itself. A transition rule (`transition=True`) sees the old object as `oldSelf` in CEL and gets
    `(old, new)` in Python; it only runs on updates.
    """

    cel: str
    message: str
    check: Callable[..., bool]
    field: str = ""
    transition: bool = False


class ApiModel(BaseModel):
    """Base of all spec and status models: unknown fields are errors, as in AIB 2024-02-01.

    Strict, like the apiserver: "5" is not an integer and "yes" is not a boolean.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    # Cross-field rules of this object; see Rule.
    rules: ClassVar[tuple[Rule, ...]] = ()
    # Variant models of a discriminated union set the discriminator value here.
    variant: ClassVar[str] = ""


def present(model: Any, name: str) -> bool:
    """True when the field was given (CEL's has()): not None. Empty lists and strings count as given."""
    return getattr(model, name, None) is not None


def only_valid_message(field: str, tag: str, variants: list[str]) -> str:
    """The error for a field given in a variant of a union it does not belong to."""
    return f"{field} is only valid when {tag} is {' or '.join(variants)}"


def required_message(field: str, tag: str, variants: list[str]) -> str:
    """The error for a field a variant of a union requires."""
    return f"{field} is required when {tag} is {' or '.join(variants)}"
