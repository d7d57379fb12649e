"""`kaib render FILE [--out DIR]`: the Packer templates an ImageTemplate will run, for reading.

Build-time facts (the build VM's address, port and user) stay Packer variables without defaults;
secrets are never rendered. With --out the templates, generated scripts and plan.json (what the
builder agent receives) are written to DIR; without it the templates are printed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from kaib.packer.model import RenderError, RenderOptions
from kaib.packer.render import render_build
from kaib.packer.write import write_build


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="ImageTemplate manifest (YAML or JSON; '-' for stdin)")
    parser.add_argument("--out", type=Path, help="write the files to this directory instead of printing")
    parser.add_argument("--name", help="which ImageTemplate of the file (default: the only one)")
    parser.add_argument("--os", choices=["Linux", "Windows"], help="build VM OS (default: from the spec)")
    parser.add_argument(
        "--tolerate-missing-waagent",
        action="store_true",
        help="render the Linux deprovisioning as the sandbox does (skip a missing waagent)",
    )


def main(args: argparse.Namespace) -> int:
    try:
        text = sys.stdin.read() if str(args.file) == "-" else args.file.read_text(encoding="utf-8")
        spec = select_spec(list(yaml.safe_load_all(text)), args.name)
        build = render_build(
            spec,
            options=RenderOptions(tolerate_missing_waagent=args.tolerate_missing_waagent),
            os_type=args.os,
        )
    except (OSError, yaml.YAMLError, RenderError, ValueError) as e:
        print(f"kaib render: {e}", file=sys.stderr)
        return 1
    if args.out:
        for path in write_build(build, args.out):
            print(path)
        return 0
    for rel, content in build.files().items():
        print(f"# ==> {rel} <==")
        print(content)
    return 0


def select_spec(docs: list[Any], name: str | None) -> Mapping[str, Any]:
    """The spec of the ImageTemplate named `name` (or the only one) among the manifest's documents."""
    templates = [d for d in docs if isinstance(d, dict) and d.get("kind") == "ImageTemplate"]
    if name is not None:
        templates = [d for d in templates if (d.get("metadata") or {}).get("name") == name]
    if len(templates) != 1:
        which = f" named {name!r}" if name else ""
        raise ValueError(f"expected exactly one ImageTemplate{which} in the file, found {len(templates)}")
    spec = templates[0].get("spec")
    if not isinstance(spec, dict):
        raise ValueError("the ImageTemplate has no spec")
    return spec
