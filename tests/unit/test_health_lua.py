"""The Argo CD health checks in charts/kaib/health/, run by a real Lua interpreter (lua5.4, installed by
setup.sh) over the table of cases in health_cases.yaml.

Each object is embedded as a Lua table literal in a global `obj`, as Argo CD does; the script's
returned table gives the status and message.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HEALTH = ROOT / "charts" / "kaib" / "health"
CASES: list[dict[str, Any]] = yaml.safe_load((Path(__file__).parent / "health_cases.yaml").read_text())
ARGO_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


def lua_string(text: str) -> str:
    """A Lua string literal: printable ASCII kept, every other byte as a decimal escape."""
    out = []
    for byte in text.encode():
        char = chr(byte)
        out.append(char if 32 <= byte < 127 and char not in '\\"' else f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def lua_literal(value: Any) -> str:
    """A JSON-like value as a Lua expression (null becomes nil, as in Argo CD)."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return lua_string(value)
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{lua_string(str(k))}] = {lua_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no Lua literal for {type(value).__name__}")


@pytest.fixture(scope="module")
def lua() -> str:
    found = shutil.which("lua5.4")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("lua5.4 missing: scripts/setup.sh installs it")
        pytest.skip("lua5.4 missing: run scripts/setup.sh")
    return found


def run_health(lua: str, script: Path, obj: Any) -> tuple[str, str]:
    # The NUL byte separates status from message so a message may hold newlines.
    program = (
        f"obj = {lua_literal(obj)}\n"
        f"local hs = dofile({lua_string(str(script))})\n"
        'io.write(hs.status, "\\0", hs.message or "")\n'
    )
    result = subprocess.run([lua, "-"], input=program.encode(), capture_output=True, timeout=10)
    assert result.returncode == 0, result.stderr.decode()
    status, message = result.stdout.decode().split("\0")
    return status, message


def test_lua_literal_round_trips_through_lua(lua: str) -> None:
    value = {"a": [1, 2.5, True, False], "s": 'q"\\\n€', "nested": {"k": "v"}, "empty": {}}
    program = f"""
local v = {lua_literal(value)}
assert(v.a[1] == 1 and v.a[2] == 2.5 and v.a[3] == true and v.a[4] == false)
assert(v.s == "q\\"\\\\\\n\\226\\130\\172")
assert(v.nested.k == "v" and next(v.empty) == nil)
io.write("ok")
"""
    result = subprocess.run([lua, "-"], input=program.encode(), capture_output=True, timeout=10)
    assert result.stdout == b"ok", result.stderr.decode()


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_health_case(lua: str, case: dict[str, Any]) -> None:
    status, message = run_health(lua, HEALTH / case["script"], case["object"])
    assert status in ARGO_STATUSES
    assert (status, message) == (case["expected"]["status"], case["expected"]["message"])


def test_table_covers_every_status_and_both_scripts() -> None:
    assert {c["script"] for c in CASES} == {p.name for p in HEALTH.glob("*.lua")}
    build = {c["expected"]["status"] for c in CASES if c["script"] == "imagebuild.lua"}
    assert build == {"Healthy", "Progressing", "Degraded", "Suspended"}
    template = {c["expected"]["status"] for c in CASES if c["script"] == "imagetemplate.lua"}
    assert template == {"Healthy", "Progressing", "Degraded"}


def documented_snippet(kind: str) -> str:
    """The Lua under `resource.customizations.health.kaib.dev_<kind>: |` in docs/operations.md."""
    lines = (ROOT / "docs" / "operations.md").read_text().splitlines(keepends=True)
    start = lines.index(f"  resource.customizations.health.kaib.dev_{kind}: |\n") + 1
    body = []
    for line in lines[start:]:
        if line.strip() and not line.startswith("    "):
            break
        body.append(line[4:] if line.strip() else "\n")
    return "".join(body)


@pytest.mark.parametrize(
    ("kind", "script"), [("ImageBuild", "imagebuild.lua"), ("ImageTemplate", "imagetemplate.lua")]
)
def test_argocd_snippet_in_the_docs_is_the_shipped_script(kind: str, script: str) -> None:
    assert documented_snippet(kind) == (HEALTH / script).read_text()
