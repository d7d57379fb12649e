"""ImageTemplate spec (AIB field names, a plain mapping) -> Packer HCL2 templates, one per phase.

Pure and deterministic: the same spec, facts and options give byte-identical output. The templates
run on Debian's packer 1.6.6 and on current Packer: a `null` source whose communicator is SSH
(Linux) or WinRM over HTTPS (Windows) at the build VM's private address, one provisioner per step,
each preceded by a disabled `breakpoint` whose note ("kaib-step N") tells the agent which step runs.

Connection facts are Packer variables. Given `ConnectionFacts`, host/port/username get defaults;
without them (`kaib render`) they stay placeholders to pass with `-var`. Secrets never enter a
template: the agent sets `ssh_private_key_file` (a file it writes from its secret) or
`winrm_password` (through PKR_VAR_winrm_password) at run time.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from kaib.packer import deprovision, hcl
from kaib.packer.hcl import Expression
from kaib.packer.model import (
    WINDOWS_UPDATE_PLUGIN,
    WINDOWS_UPDATE_PLUGIN_VERSION,
    ConnectionFacts,
    Download,
    OsType,
    Phase,
    PhaseName,
    RenderedBuild,
    RenderError,
    RenderOptions,
    Step,
    step_note,
)

SOURCE = "build_vm"
WINDOWS_STEP_TYPES = {"PowerShell", "WindowsRestart", "WindowsUpdate"}
LINUX_STEP_TYPES = {"Shell"}
CUSTOMIZER_TYPES = {"Shell", "PowerShell", "File", "WindowsRestart", "WindowsUpdate"}
VALIDATOR_TYPES = {"Shell", "PowerShell", "File"}
WINDOWS_PUBLISHERS = {"microsoftwindowsserver", "microsoftwindowsdesktop", "microsoftvisualstudio"}
# AIB: updateLimit 0 means 1000.
DEFAULT_UPDATE_LIMIT = 1000
# Shebang Packer's shell provisioner puts before inline commands; our generated scripts match it.
INLINE_SHEBANG = "#!/bin/sh -e"

# Longest local name of a download, in bytes: well under NAME_MAX (255) and Windows' path limits.
MAX_NAME = 100

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")

Provisioner = tuple[str, list[tuple[str, object]]]


def infer_os_type(spec: Mapping[str, Any]) -> OsType:
    """Windows when the source is a Windows platform image or a step only Windows runs; else Linux."""
    source = spec.get("source") or {}
    if str(source.get("publisher", "")).lower() in WINDOWS_PUBLISHERS:
        return "Windows"
    validators = (spec.get("validate") or {}).get("inVMValidations") or []
    steps = [*(spec.get("customize") or []), *validators]
    return "Windows" if any(s.get("type") in WINDOWS_STEP_TYPES for s in steps) else "Linux"


def render_build(
    spec: Mapping[str, Any],
    facts: ConnectionFacts | None = None,
    options: RenderOptions | None = None,
    *,
    os_type: OsType | None = None,
) -> RenderedBuild:
    """Render every phase of a build. `os_type` defaults to the facts', then to `infer_os_type`."""
    options = options or RenderOptions()
    os_type = os_type or (facts.os_type if facts else None) or infer_os_type(spec)
    if facts is not None and facts.os_type != os_type:
        raise RenderError(f"connection facts are for {facts.os_type}, the build is {os_type}")
    validate = spec.get("validate") or {}
    phases: list[Phase] = []
    if not validate.get("sourceValidationOnly"):
        customizers = list(spec.get("customize") or [])
        if customizers:
            phases.append(_render_phase("customize", customizers, CUSTOMIZER_TYPES, os_type, facts, options))
    validators = list(validate.get("inVMValidations") or [])
    if validators:
        phases.append(_render_phase("validate", validators, VALIDATOR_TYPES, os_type, facts, options))
    phases.append(_render_deprovision(os_type, facts, options))
    return RenderedBuild(
        os_type=os_type,
        phases=tuple(phases),
        continue_distribute_on_failure=bool(validate.get("continueDistributeOnFailure", False)),
        agent_variables=_agent_variables(os_type),
    )


# -- one phase ---------------------------------------------------------------------------------


def _render_phase(
    phase: PhaseName,
    items: Sequence[Mapping[str, Any]],
    allowed: set[str],
    os_type: OsType,
    facts: ConnectionFacts | None,
    options: RenderOptions,
) -> Phase:
    steps: list[Step] = []
    downloads: list[Download] = []
    files: list[tuple[str, str]] = []
    body: list[str] = []
    for index, item in enumerate(items, start=1):
        step = Step(index=index, type=str(item.get("type", "")), name=str(item.get("name") or ""))
        where = f"{phase} {step.describe()}"
        if step.type not in allowed:
            known = ", ".join(sorted(allowed))
            raise RenderError(f"{where}: type {step.type!r} is not one of {known}")
        if step.type in WINDOWS_STEP_TYPES and os_type != "Windows":
            raise RenderError(f"{where}: {step.type} runs only on Windows build VMs; this build is {os_type}")
        if step.type in LINUX_STEP_TYPES and os_type != "Linux":
            raise RenderError(f"{where}: {step.type} runs only on Linux build VMs; use PowerShell on Windows")
        ctx = _StepContext(phase, index, where)
        kind, attrs = _provisioner(step.type, item, ctx, os_type)
        steps.append(step)
        downloads.extend(ctx.downloads)
        files.extend(ctx.files)
        body.append(_step_blocks(step, kind, attrs))
    return Phase(
        name=phase,
        template=_template(phase, os_type, facts, options, body, steps),
        steps=tuple(steps),
        downloads=tuple(downloads),
        files=tuple(files),
    )


def _render_deprovision(os_type: OsType, facts: ConnectionFacts | None, options: RenderOptions) -> Phase:
    step = Step(index=1, type="Deprovision", name="deprovision")
    attrs: list[tuple[str, object]]
    if os_type == "Linux":
        kind = "shell"
        attrs = [
            ("execute_command", deprovision.LINUX_EXECUTE_COMMAND),
            ("inline", deprovision.linux_commands(options.tolerate_missing_waagent)),
        ]
    else:
        kind = "powershell"
        attrs = [
            ("elevated_user", Expression("var.username")),
            ("elevated_password", Expression("var.winrm_password")),
            ("inline", deprovision.windows_commands()),
        ]
    body = [_step_blocks(step, kind, attrs)]
    return Phase(
        name="deprovision",
        template=_template("deprovision", os_type, facts, options, body, [step]),
        steps=(step,),
    )


class _StepContext:
    """Where a step's downloaded and generated files go; collects them while rendering the step."""

    def __init__(self, phase: str, index: int, where: str) -> None:
        self.prefix = f"{phase}-{index:02d}"
        self.index = index
        self.where = where
        self.downloads: list[Download] = []
        self.files: list[tuple[str, str]] = []

    def download(self, url: str, sha256: str, path: str) -> str:
        if sha256 and not _SHA256.match(sha256):
            raise RenderError(f"{self.where}: sha256Checksum {sha256!r} is not 64 hexadecimal digits")
        self.downloads.append(Download(url=url, sha256=sha256.lower(), path=path, step=self.index))
        return path

    def generated(self, path: str, content: str) -> str:
        self.files.append((path, content))
        return path

    def templated(self, field: str, value: str) -> str:
        """A user string for a field Packer Go-templates: refused when it holds `{{` (see hcl.py)."""
        if not hcl.go_template_safe(value):
            raise RenderError(
                f"{self.where}: {field} contains '{{{{', which Packer would read as a template action; "
                "kaib cannot pass it through unchanged"
            )
        return value


def _provisioner(kind: str, item: Mapping[str, Any], ctx: _StepContext, os_type: OsType) -> Provisioner:
    if kind == "Shell":
        return "shell", _script_attrs(item, ctx, ".sh", shell=True)
    if kind == "PowerShell":
        attrs = _script_attrs(item, ctx, ".ps1", shell=False)
        if item.get("runElevated"):
            if item.get("runAsSystem"):
                # Packer runs the elevated task as Local System when the password is empty.
                attrs += [("elevated_user", "SYSTEM"), ("elevated_password", "")]
            else:
                attrs += [
                    ("elevated_user", Expression("var.username")),
                    ("elevated_password", Expression("var.winrm_password")),
                ]
        elif item.get("runAsSystem"):
            raise RenderError(f"{ctx.where}: runAsSystem can only be true when runElevated is true")
        codes = item.get("validExitCodes")
        if codes is not None and list(codes) != [0]:
            attrs.append(("valid_exit_codes", [int(c) for c in codes]))
        return "powershell", attrs
    if kind == "File":
        url = _required(item, "sourceUri", ctx)
        destination = ctx.templated("destination", _required(item, "destination", ctx))
        local = ctx.download(url, _sha256(item), f"downloads/{ctx.prefix}/{_basename(url)}")
        return "file", [("source", local), ("destination", destination)]
    if kind == "WindowsRestart":
        attrs = []
        for field, attr in (
            ("restartCommand", "restart_command"),
            ("restartCheckCommand", "restart_check_command"),
            ("restartTimeout", "restart_timeout"),
        ):
            if item.get(field):
                attrs.append((attr, ctx.templated(field, str(item[field]))))
        return "windows-restart", attrs
    if kind == "WindowsUpdate":
        attrs = []
        if item.get("searchCriteria"):
            attrs.append(("search_criteria", ctx.templated("searchCriteria", str(item["searchCriteria"]))))
        if item.get("filters"):
            attrs.append(("filters", [ctx.templated("filters", str(f)) for f in item["filters"]]))
        limit = int(item.get("updateLimit") or 0)
        attrs.append(("update_limit", limit or DEFAULT_UPDATE_LIMIT))
        return "windows-update", attrs
    raise RenderError(f"{ctx.where}: unknown step type {kind!r}")


def _script_attrs(
    item: Mapping[str, Any], ctx: _StepContext, suffix: str, *, shell: bool
) -> list[tuple[str, object]]:
    inline, uri = item.get("inline"), item.get("scriptUri")
    if (inline is None) == (uri is None):
        raise RenderError(f"{ctx.where}: exactly one of scriptUri or inline is required")
    if uri is not None:
        return [("script", ctx.download(str(uri), _sha256(item), f"downloads/{ctx.prefix}{suffix}"))]
    lines = [str(line) for line in inline or []]
    # `binary`: Packer would otherwise turn CRLF into LF in what the user wrote.
    head: list[tuple[str, object]] = [("binary", True)] if shell else []
    if all(hcl.go_template_safe(line) for line in lines):
        return [*head, ("inline", lines)]
    # Packer Go-templates inline commands; a script file is uploaded byte for byte instead. Same
    # content Packer would have built from `inline`.
    content = "\n".join(lines) + "\n"
    if shell:
        content = f"{INLINE_SHEBANG}\n{content}"
    return [*head, ("script", ctx.generated(f"scripts/{ctx.prefix}{suffix}", content))]


def _sha256(item: Mapping[str, Any]) -> str:
    return str(item.get("sha256Checksum") or "")


def _required(item: Mapping[str, Any], field: str, ctx: _StepContext) -> str:
    v = item.get(field)
    if not v:
        raise RenderError(f"{ctx.where}: {field} is required")
    return str(v)


def _basename(url: str) -> str:
    """The local name of a download: the URL's last path segment, made safe and at most MAX_NAME long.

    A longer name keeps its start and extension around a hash of the whole segment, so that it stays
    deterministic and different names stay different (the agent cannot create names over 255 bytes).
    """
    try:
        path = urlsplit(url).path
    except ValueError:  # e.g. an unclosed '[' in the host: not a URL Python parses, still a name
        path = url.split("?", 1)[0].split("#", 1)[0]
    segment = posixpath.basename(unquote(path)) or "file"
    # A local path Packer will template: keep it boring (ASCII only, so characters are bytes).
    name = _SAFE_NAME.sub("_", segment)
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(segment.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    stem, dot, extension = name.rpartition(".")
    suffix = f".{extension}" if dot and stem and len(extension) <= 10 else ""
    return f"{name[: MAX_NAME - len(digest) - 1 - len(suffix)]}-{digest}{suffix}"


# -- the template text -----------------------------------------------------------------------


def _agent_variables(os_type: OsType) -> tuple[str, ...]:
    return ("ssh_private_key_file",) if os_type == "Linux" else ("winrm_password",)


def _template(
    phase: PhaseName,
    os_type: OsType,
    facts: ConnectionFacts | None,
    options: RenderOptions,
    body: list[str],
    steps: Sequence[Step],
) -> str:
    header = [
        f"# kaib: Packer template for the {phase!r} phase ({len(steps)} step(s), {os_type} build VM).",
        "# Rendered from an ImageTemplate; see `kaib render`. Do not edit: re-render instead.",
    ]
    if facts and facts.build_id:
        header.append(f"# Build: {hcl.quote(facts.build_id, template=False)}")
    if facts is None:
        header.append("# Placeholders: pass -var host=... -var port=... -var username=... for the build VM.")
    header.append(f"# Set at run time by the builder agent: var.{', var.'.join(_agent_variables(os_type))}.")
    if any(s.type == "WindowsUpdate" for s in steps):
        plugin = f"{WINDOWS_UPDATE_PLUGIN} v{WINDOWS_UPDATE_PLUGIN_VERSION}"
        header.append(f"# Needs the plugin (the builder image has it): packer plugins install {plugin}")
    parts = ["\n".join(header), *_variables(os_type, facts, options), _source(os_type), _build(body)]
    return "\n\n".join(parts) + "\n"


def _variable(name: str, description: str, default: object = None, *, sensitive: bool = False) -> str:
    attrs: list[tuple[str, object]] = [
        ("type", Expression("number" if isinstance(default, int) else "string"))
    ]
    attrs.append(("description", description))
    if default is not None:
        attrs.append(("default", default))
    if sensitive:
        attrs.append(("sensitive", True))
    return hcl.block(f"variable {hcl.quote(name)}", attrs)


def _variables(os_type: OsType, facts: ConnectionFacts | None, options: RenderOptions) -> list[str]:
    linux = os_type == "Linux"
    port_default = facts.effective_port if facts else (22 if linux else 5986)
    out = [
        _variable("host", "Private IP address of the build VM", facts.host if facts else None),
        _variable("port", "SSH (Linux) or WinRM HTTPS (Windows) port of the build VM", port_default),
        _variable("username", "Administrator user of the build VM", facts.username if facts else None),
        _variable(
            "communicator_timeout",
            "How long to wait for the build VM to answer",
            options.communicator_timeout,
        ),
    ]
    if linux:
        out.append(_variable("ssh_private_key_file", "Private key file (written by the builder agent)"))
    else:
        out.append(_variable("winrm_password", "WinRM password (set by the builder agent)", sensitive=True))
    return out


def _source(os_type: OsType) -> str:
    attrs: list[tuple[str, object]]
    if os_type == "Linux":
        attrs = [
            ("communicator", "ssh"),
            ("ssh_host", Expression("var.host")),
            ("ssh_port", Expression("var.port")),
            ("ssh_username", Expression("var.username")),
            ("ssh_private_key_file", Expression("var.ssh_private_key_file")),
            ("ssh_timeout", Expression("var.communicator_timeout")),
        ]
    else:
        attrs = [
            ("communicator", "winrm"),
            ("winrm_host", Expression("var.host")),
            ("winrm_port", Expression("var.port")),
            ("winrm_username", Expression("var.username")),
            ("winrm_password", Expression("var.winrm_password")),
            ("winrm_use_ssl", True),
            # The build VM's WinRM certificate is self-signed, as with AIB; the network path is private.
            ("winrm_insecure", True),
            ("winrm_timeout", Expression("var.communicator_timeout")),
        ]
    return hcl.block(f'source "null" {hcl.quote(SOURCE)}', attrs)


def _build(body: list[str]) -> str:
    sources = f'  sources = ["source.null.{SOURCE}"]'
    return "build {\n" + sources + "\n\n" + "\n\n".join(body) + "\n}"


def _step_blocks(step: Step, kind: str, attrs: list[tuple[str, object]]) -> str:
    title = f"  # step {step.index}: {step.type}"
    if step.name:
        title += f" {hcl.quote(step.name, template=False)}"
    marker = hcl.block('provisioner "breakpoint"', [("disable", True), ("note", step_note(step.index))], "  ")
    return "\n".join([title, marker, hcl.block(f"provisioner {hcl.quote(kind)}", attrs, "  ")])
