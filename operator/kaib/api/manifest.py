"""Validate ImageTemplate / ImageBuild manifests offline, with the same rules as the CRDs.

Two passes: pydantic checks the structure (types, enums, patterns, bounds, required and unknown
fields), then every `Rule` of every model in the object runs (the Python half of the CEL rules).
Problems are `(path, message)` pairs; paths look like the apiserver's: `spec.customize[0].inline`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from kaib.api.build import API_VERSION, KINDS, ImageBuild, ImageTemplate
from kaib.api.common import INTEGER_MESSAGE, ApiModel, only_valid_message, required_message
from kaib.api.metadata import metadata_problems
from kaib.api.schema import resource_schema
from kaib.api.template import UNIONS, ImageTemplateSpec

Problem = tuple[str, str]
M = TypeVar("M", bound=BaseModel)


class InvalidManifest(ValueError):
    """Raised by the parse_* helpers; `problems` holds every (path, message) found."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{path}: {message}" for path, message in problems))
        self.problems = problems


def validate_manifest(doc: Any) -> list[Problem]:
    """Every problem of one manifest (an ImageTemplate or ImageBuild as a dict); [] when valid."""
    try:
        parse_manifest(doc)
    except InvalidManifest as e:
        return e.problems
    return []


def parse_manifest(doc: Any) -> ImageTemplate | ImageBuild:
    """The typed object of a manifest dict, or InvalidManifest listing every problem."""
    if not isinstance(doc, Mapping):
        raise InvalidManifest([("", "a manifest must be a mapping (apiVersion, kind, metadata, spec)")])
    kind = doc.get("kind")
    if doc.get("apiVersion") != API_VERSION:
        raise InvalidManifest([("apiVersion", f"must be {API_VERSION}, not {doc.get('apiVersion')!r}")])
    if kind not in KINDS:
        raise InvalidManifest([("kind", f"must be ImageTemplate or ImageBuild, not {kind!r}")])
    return _parse(KINDS[kind], doc, "")


def parse_template_spec(spec: Any) -> ImageTemplateSpec:
    """The typed ImageTemplate spec of a dict in AIB names, or InvalidManifest (paths under `spec`)."""
    return _parse(ImageTemplateSpec, spec, "spec")


def update_problems(old: Any, new: Any) -> list[Problem]:
    """The transition rules (what may not change on update) between two valid manifests of one kind."""
    before, after = parse_manifest(old), parse_manifest(new)
    if type(before) is not type(after):
        return [("kind", "cannot change")]
    return list(_transition_problems(before, after, ""))


def plain(value: Any, path: str = "", _holders: frozenset[int] = frozenset()) -> Any:
    """Plain dicts and lists all the way down (kopf hands out read-only Mapping views). A YAML alias
    inside the node it names (`a: &x [*x]`) has no end: InvalidManifest, as no JSON can hold it."""
    if isinstance(value, Mapping | list | tuple):
        if id(value) in _holders:
            raise InvalidManifest([(path, "a YAML alias refers to a node that contains it (no end)")])
        holders = _holders | {id(value)}
        if isinstance(value, Mapping):
            return {key: plain(item, _join(path, str(key)), holders) for key, item in value.items()}
        return [plain(item, f"{path}[{i}]", holders) for i, item in enumerate(value)]
    return value


# The apiserver reads a JSON number beyond int64 as a float, which no integer field accepts.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def without_nulls(value: Any) -> Any:
    """`value` with null object fields and map values left out, as the apiserver prunes them before
    validating (our schemas are not nullable); list items stay, and a null one is an error there too."""
    if isinstance(value, dict):
        return {key: without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [without_nulls(item) for item in value]
    return value


def _int64_problems(value: Any, path: str) -> Iterator[Problem]:
    if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
        yield path, "must be a 64-bit integer (between -2^63 and 2^63-1)"
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _int64_problems(item, _join(path, str(key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _int64_problems(item, f"{path}[{i}]")


def _parse(model: type[M], data: Any, prefix: str) -> M:
    raw = plain(data)
    data = without_nulls(raw)
    problems: list[Problem] = []
    if isinstance(data, dict) and "status" in data and model.__name__ in KINDS:
        # The apiserver drops `status` on create (and keeps the stored one on update): only the
        # fields its strict decoding calls unknown are an error there, null-valued ones included.
        schema = _status_schema(model.__name__)
        problems += [(path, "unknown field") for path in unknown_fields(raw["status"], schema, "status")]
        data = {k: v for k, v in data.items() if k != "status"}
    if model.__name__ in KINDS and isinstance(data, dict):
        problems += metadata_problems(data.get("metadata"))
    problems += _int64_problems(data, prefix)
    try:
        parsed = model.model_validate(data)
    except ValidationError as e:
        raise InvalidManifest(problems + [_problem(err, prefix) for err in e.errors()]) from None
    if problems:
        raise InvalidManifest(problems)
    problems = list(rule_problems(parsed, prefix))
    if problems:
        raise InvalidManifest(problems)
    return parsed


@cache
def _status_schema(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = resource_schema(kind)["properties"]["status"]
    return schema


def unknown_fields(value: Any, schema: dict[str, Any], path: str) -> Iterator[str]:
    """The paths the apiserver's strict decoding reports as unknown fields (it prunes them).

    As its pruning does: object keys the schema does not declare are unknown, so are all keys of an
    object where the schema has no object, and list items are checked against the list's schema, or
    against the schema itself where that is not an array.
    """
    if isinstance(value, list):
        for i, item in enumerate(value):
            yield from unknown_fields(item, schema.get("items", schema), f"{path}[{i}]")
    elif isinstance(value, dict):
        properties, additional = schema.get("properties"), schema.get("additionalProperties")
        for key, item in value.items():
            if properties is not None and key in properties:
                yield from unknown_fields(item, properties[key], f"{path}.{key}")
            elif properties is None and isinstance(additional, dict):
                yield from unknown_fields(item, additional, f"{path}.{key}")
            else:
                yield f"{path}.{key}"


def rule_problems(model: BaseModel, path: str) -> Iterator[Problem]:
    """The cross-field rules broken anywhere in `model` (create-time rules only)."""
    if isinstance(model, ApiModel):
        for rule in model.rules:
            if not rule.transition and not rule.check(model):
                yield _join(path, rule.field), rule.message
    for name, info in type(model).model_fields.items():
        if name == "status":
            continue  # written by the operator; the CRD has no rules there either
        key = info.alias or name
        yield from _children(getattr(model, name), _join(path, key))


def _children(value: Any, path: str) -> Iterator[Problem]:
    if isinstance(value, BaseModel):
        yield from rule_problems(value, path)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _children(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for k, item in value.items():
            yield from _children(item, f"{path}[{k}]")


def _transition_problems(old: BaseModel, new: BaseModel, path: str) -> Iterator[Problem]:
    # As in CEL: a transition rule runs where both the old and the new object have the field; list
    # items are atomic (no oldSelf), so only nested objects are followed.
    if isinstance(new, ApiModel):
        for rule in new.rules:
            if rule.transition and not rule.check(old, new):
                yield _join(path, rule.field), rule.message
    for name, info in type(new).model_fields.items():
        # A union may hold another variant in the old object: a field the old one lacks is absent.
        a, b = getattr(old, name, None), getattr(new, name)
        if name != "status" and isinstance(a, BaseModel) and isinstance(b, BaseModel):
            yield from _transition_problems(a, b, _join(path, info.alias or name))


def _problem(error: Any, prefix: str) -> Problem:
    loc = list(error["loc"])
    parts: list[str] = []
    variant, union = "", ""  # the discriminator value pydantic put in the location, and its list
    for i, item in enumerate(loc):
        previous = loc[i - 1] if i else None
        owner = loc[i - 2] if isinstance(previous, int) and i >= 2 else previous
        if isinstance(item, str) and str(owner) in UNIONS and item in UNIONS[str(owner)][1]:
            variant, union = item, str(owner)
            continue
        parts.append(item if isinstance(item, str) else f"[{item}]")
    path = prefix
    for part in parts:
        path = f"{path}{part}" if part.startswith("[") else _join(path, part)
    kind, message = error["type"], error["msg"]
    field = parts[-1] if parts else ""
    if union and kind in ("missing", "extra_forbidden"):
        tag, variants = UNIONS[union]
        owners = [v for v, fields in variants.items() if field in fields]
        if kind == "extra_forbidden" and owners:
            return path, only_valid_message(field, tag, owners)
        if kind == "missing":
            return path, required_message(field, tag, [variant])
    if kind == "missing":
        return path, "Required value"
    if kind == "extra_forbidden":
        return path, "unknown field"
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        tag = UNIONS[field][0] if field in UNIONS else "type"
        if kind == "union_tag_not_found":
            return _join(path, tag), "Required value"
        expected = error.get("ctx", {}).get("expected_tags", "")
        return _join(path, tag), f"Unsupported value {error['ctx']['tag']!r}: supported values: {expected}"
    if kind == "int_type" and isinstance(error.get("input"), float) and error["input"].is_integer():
        return path, INTEGER_MESSAGE
    if kind == "string_pattern_mismatch":
        return path, f"{error['input']!r} should match '{error['ctx']['pattern']}'"
    return path, message


def _join(path: str, field: str) -> str:
    if not field:
        return path
    return f"{path}.{field}" if path else field
