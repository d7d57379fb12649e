"""`kaib convert` reads strings as ARM reads a template's: '[' ... ']' is an expression, "[[" escapes
it, and anything else (a shell test followed by more command) is plain text."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kaib.api import aib_to_manifest, manifest_to_aib
from kaib.api.aib import from_arm_strings, to_arm_strings
from kaib.api.manifest import InvalidManifest
from tests.unit.test_api_convert import LINUX, SUB


def with_inline(command: str) -> dict[str, Any]:
    resource = copy.deepcopy(LINUX)
    resource["properties"]["customize"][1]["inline"] = [command]
    return resource


def converted_inline(command: str) -> str:
    manifest = aib_to_manifest(with_inline(command), subscription_id=SUB)
    return str(manifest["spec"]["customize"][1]["inline"][0])


def problems(command: str) -> list[tuple[str, str]]:
    with pytest.raises(InvalidManifest) as refused:
        aib_to_manifest(with_inline(command), subscription_id=SUB)
    return refused.value.problems


def test_a_shell_test_followed_by_more_command_is_plain_text() -> None:
    assert converted_inline("[ -f x ] && echo yes") == "[ -f x ] && echo yes"
    assert converted_inline("echo [x]") == "echo [x]"
    assert converted_inline("[[ -f x") == "[[ -f x"  # no closing ']': ARM leaves it alone, escape and all


def test_the_escape_is_read_as_arm_reads_it() -> None:
    assert converted_inline("[[ -f x ]") == "[ -f x ]"
    assert converted_inline("[[parameters('x')]") == "[parameters('x')]"


def test_a_bracketed_shell_test_is_refused_saying_how_to_escape_it() -> None:
    ((path, message),) = problems("[ -f x ]")
    assert path == "properties.customize[1].inline[0]"
    assert "ARM reads it as an ARM template expression, which it is not" in message
    assert "'[[ -f x ]'" in message


def test_a_real_expression_is_refused_as_one() -> None:
    ((path, message),) = problems("[concat('echo ', parameters('x'))]")
    assert path == "properties.customize[1].inline[0]"
    assert message.startswith("ARM template expression \"[concat('echo ', parameters('x'))]\": replace it")


def test_going_back_to_aib_escapes_what_arm_would_evaluate() -> None:
    manifest = aib_to_manifest(with_inline("[[ -f x ]"), subscription_id=SUB)
    resource = manifest_to_aib(manifest)
    assert resource["properties"]["customize"][1]["inline"] == ["[[ -f x ]"]
    assert aib_to_manifest(resource, subscription_id=SUB)["spec"] == manifest["spec"]


def test_escaping_and_reading_back_are_inverse_on_any_strings() -> None:
    values = ["[x]", "[[x]", "[", "]", "[]", "[[]", "x]", "[x", "", "[ -f x ] && y", {"k": ["[a]"]}]
    escaped = to_arm_strings(values)
    assert escaped[:6] == ["[[x]", "[[[x]", "[", "]", "[[]", "[[[]"] and escaped[-1] == {"k": ["[[a]"]}
    assert from_arm_strings(escaped, "") == (values, [])
