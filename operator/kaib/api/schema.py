"""Structural OpenAPI v3 schemas and the two CRDs, generated from the pydantic models.

Kubernetes wants *structural* schemas: every property declared with a type, no `oneOf` carrying
types. AIB's discriminated unions (source, customize[], distribute[], versioning) are therefore
flattened into one object per union: `type` is an enum, every variant's properties are declared, and
CEL rules say which properties belong to which variant and which ones each variant requires.

Defaults are deliberately not emitted (see kaib.api.template): stored objects keep what the user
wrote. Cross-field rules (`Rule`) become `x-kubernetes-validations`. The ImageBuild status snapshot of
the template spec carries the schema without rules: it is written by the operator, and rules there
would only spend the apiserver's CEL cost budget.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, Union

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from kaib.api.build import GROUP, VERSION, ImageBuild, ImageBuildSpec, ImageTemplate
from kaib.api.common import (
    INTEGER_MESSAGE,
    INTEGER_RULE,
    ApiModel,
    Rule,
    only_valid_message,
    required_message,
)
from kaib.api.status import Format, ImageBuildStatus, ImageTemplateStatus
from kaib.api.template import ImageTemplateSpec

Schema = dict[str, Any]


def model_schema(model: type[BaseModel], *, rules: bool = True) -> Schema:
    """The structural schema of one model (an object)."""
    schema: Schema = {"type": "object"}
    doc = _doc(model)
    if doc:
        schema["description"] = doc
    properties: dict[str, Schema] = {}
    required: list[str] = []
    for name, info in model.model_fields.items():
        key = info.alias or name
        prop = type_schema(info.annotation, list(info.metadata), rules=rules)
        if info.description:
            prop = {**prop, "description": info.description}
        properties[key] = prop
        if info.is_required():
            required.append(key)
    schema["properties"] = properties
    if required:
        schema["required"] = required
    if rules and issubclass(model, ApiModel) and model.rules:
        schema["x-kubernetes-validations"] = [_cel(rule) for rule in model.rules]
    return schema


def type_schema(annotation: Any, metadata: list[Any], *, rules: bool) -> Schema:
    """The schema of one annotated type; `metadata` holds constraints (Field(...), MaxLen, ...)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_schema(args[0], [*metadata, *args[1:]], rules=rules)
    if origin in (Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        if len(members) == 1:
            return type_schema(members[0], metadata, rules=rules)
        return _flatten_union(members, rules=rules)
    if origin is Literal:
        return _constrain({"type": "string", "enum": list(args)}, metadata)
    if origin is list:
        return _constrain({"type": "array", "items": type_schema(args[0], [], rules=rules)}, metadata)
    if origin is dict:
        return _constrain(
            {"type": "object", "additionalProperties": type_schema(args[1], [], rules=rules)}, metadata
        )
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return model_schema(annotation, rules=rules)
    scalar = {str: "string", int: "integer", bool: "boolean"}.get(annotation)
    if scalar is None:
        raise TypeError(f"no schema for {annotation!r}")
    schema = _constrain({"type": scalar}, metadata)
    if scalar == "integer" and rules:
        schema["x-kubernetes-validations"] = [{"rule": INTEGER_RULE, "message": INTEGER_MESSAGE}]
    return schema


def _constrain(schema: Schema, metadata: list[Any]) -> Schema:
    kind = schema["type"]
    length_key = {"string": "Length", "array": "Items", "object": "Properties"}.get(kind, "")
    for item in metadata:
        if isinstance(item, FieldInfo):
            schema = _constrain(schema, list(item.metadata))
        elif isinstance(item, annotated_types.MaxLen):
            schema[f"max{length_key}"] = item.max_length
        elif isinstance(item, annotated_types.MinLen):
            schema[f"min{length_key}"] = item.min_length
        elif isinstance(item, annotated_types.Ge):
            schema["minimum"] = item.ge
        elif isinstance(item, annotated_types.Le):
            schema["maximum"] = item.le
        elif isinstance(item, Format):
            schema["format"] = item.name
        elif getattr(item, "pattern", None):
            schema["pattern"] = item.pattern
    return schema


def _flatten_union(variants: list[type[BaseModel]], *, rules: bool) -> Schema:
    """One object declaring every variant's properties, with CEL rules that keep each variant apart."""
    schemas = {_variant(v): model_schema(v, rules=rules) for v in variants}
    tag = _discriminator(variants[0])
    names = list(schemas)
    properties: dict[str, Schema] = {}
    owners: dict[str, list[str]] = {}
    for value, schema in schemas.items():
        for key, prop in schema["properties"].items():
            if key == tag:
                continue
            if key in properties and _bare(properties[key]) != _bare(prop):
                raise ValueError(f"property {key!r} differs between variants of {names}")
            properties.setdefault(key, prop)
            owners.setdefault(key, []).append(value)
    required_by: dict[str, list[str]] = {}
    for value, schema in schemas.items():
        for key in schema.get("required", []):
            if key != tag:
                required_by.setdefault(key, []).append(value)
    common = [key for key, by in required_by.items() if len(by) == len(names)]
    out: Schema = {
        "type": "object",
        "description": f"One of: {', '.join(names)} (by {tag}).",
        "properties": {tag: {"type": "string", "enum": names}, **properties},
        "required": [tag, *common],
    }
    if not rules:
        return out
    checks: list[Schema] = []
    for key, by in owners.items():
        if len(by) < len(names):
            checks.append(
                {
                    "rule": f"!has(self.{key}) || {_in(tag, by)}",
                    "message": only_valid_message(key, tag, by),
                    "fieldPath": f".{key}",
                }
            )
    for key, by in required_by.items():
        if len(by) < len(names):
            checks.append(
                {
                    "rule": f"!({_in(tag, by)}) || has(self.{key})",
                    "message": required_message(key, tag, by),
                    "fieldPath": f".{key}",
                }
            )
    # A variant's own cross-field rules apply only to that variant; identical ones are merged.
    grouped: dict[Rule, list[str]] = {}
    for variant in variants:
        for rule in getattr(variant, "rules", ()):
            grouped.setdefault(rule, []).append(_variant(variant))
    for rule, by in grouped.items():
        cel = _cel(rule)
        cel["rule"] = f"!({_in(tag, by)}) || ({rule.cel})"
        checks.append(cel)
    if checks:
        out["x-kubernetes-validations"] = checks
    return out


def _bare(schema: Schema) -> Schema:
    return {k: v for k, v in schema.items() if k != "description"}


def _in(tag: str, values: list[str]) -> str:
    if len(values) == 1:
        return f"self.{tag} == '{values[0]}'"
    return f"self.{tag} in [{', '.join(repr(v) for v in values)}]"


def _variant(model: type[BaseModel]) -> str:
    value: str = getattr(model, "variant", "")
    if not value:
        raise ValueError(f"{model.__name__} is in a union but has no `variant`")
    return value


def _discriminator(model: type[BaseModel]) -> str:
    for name, info in model.model_fields.items():
        if typing.get_origin(info.annotation) is Literal:
            return info.alias or name
    raise ValueError(f"{model.__name__} has no Literal discriminator field")


def _cel(rule: Rule) -> Schema:
    out: Schema = {"rule": rule.cel, "message": rule.message}
    if rule.field:
        out["fieldPath"] = "." + rule.field
    return out


def _doc(model: type[BaseModel]) -> str:
    doc = model.__doc__ or ""
    if not doc or doc == BaseModel.__doc__ or "__doc__" not in model.__dict__:
        return ""
    return " ".join(doc.split())


# -- CRDs ---------------------------------------------------------------------------------------------

KINDS = {
    "ImageTemplate": {"plural": "imagetemplates", "short": "imgt"},
    "ImageBuild": {"plural": "imagebuilds", "short": "imgb"},
}

PRINTER_COLUMNS: dict[str, list[Schema]] = {
    "ImageTemplate": [
        {"name": "Source", "type": "string", "jsonPath": ".status.sourceSummary"},
        {"name": "Topology", "type": "string", "jsonPath": ".status.topology"},
        {"name": "Last Build", "type": "string", "jsonPath": ".status.lastBuild.name"},
        {"name": "Last Phase", "type": "string", "jsonPath": ".status.lastBuild.phase", "priority": 1},
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
    "ImageBuild": [
        {"name": "Template", "type": "string", "jsonPath": ".spec.templateRef.name"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "SubState", "type": "string", "jsonPath": ".status.subState"},
        # The first output's artifactId, or its artifactUri (VHD) when artifactId is left out.
        {
            "name": "Artifact",
            "type": "string",
            "jsonPath": ".status.runOutputs[0]['artifactId','artifactUri']",
        },
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
    ],
}


def resource_schema(kind: str) -> Schema:
    """The whole object's schema: apiVersion, kind, metadata, spec (with rules), status (without)."""
    model: type[ImageTemplate] | type[ImageBuild] = ImageTemplate if kind == "ImageTemplate" else ImageBuild
    spec_model: type[BaseModel] = ImageTemplateSpec if kind == "ImageTemplate" else ImageBuildSpec
    status_model: type[BaseModel] = ImageTemplateStatus if kind == "ImageTemplate" else ImageBuildStatus
    schema: Schema = {
        "type": "object",
        "description": _doc(model),
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            # Declared so that the name rule's fieldPath resolves; metadata allows nothing more.
            "metadata": {"type": "object", "properties": {"name": {"type": "string"}}},
            "spec": model_schema(spec_model),
            "status": model_schema(status_model, rules=False),
        },
        "required": ["spec"],
    }
    if model.rules:
        schema["x-kubernetes-validations"] = [_cel(rule) for rule in model.rules]
    return schema


def crd(kind: str) -> Schema:
    """The CustomResourceDefinition of `kind` (ImageTemplate or ImageBuild)."""
    names = KINDS[kind]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{names['plural']}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": names["plural"],
                "singular": kind.lower(),
                "shortNames": [names["short"]],
                "categories": ["kaib"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS[kind],
                    "schema": {"openAPIV3Schema": resource_schema(kind)},
                }
            ],
        },
    }


def crd_files() -> dict[str, str]:
    """File name -> YAML text of every CRD, as scripts/gen_crds.py writes them into crds/."""
    import yaml

    header = "# Generated by scripts/gen_crds.py from kaib.api models. Do not edit by hand.\n"
    return {
        f"{GROUP}_{KINDS[kind]['plural']}.yaml": header
        + yaml.safe_dump(crd(kind), sort_keys=False, width=100, allow_unicode=True)
        for kind in KINDS
    }
