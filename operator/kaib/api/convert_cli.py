"""`kaib convert FILE`: AIB template JSON -> ImageTemplate YAML; `--to aib` goes back.

Problems go to stderr as `<file>: <field path>: <what is wrong>`, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from kaib.api.aib import API_VERSIONS, LATEST_API_VERSION, aib_to_manifest, manifest_to_aib
from kaib.api.manifest import InvalidManifest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="AIB template JSON (ARM resource or bare properties); '-' for stdin")
    parser.add_argument(
        "--to",
        choices=("kaib", "aib"),
        default="kaib",
        help="kaib: AIB JSON -> ImageTemplate YAML (default); aib: ImageTemplate YAML -> AIB JSON",
    )
    parser.add_argument("--name", help="template name (default: the resource's name)")
    parser.add_argument("--namespace", help="metadata.namespace of the ImageTemplate")
    parser.add_argument("--subscription-id", help="default: the subscription in the resource's id")
    parser.add_argument("--location", help="default: the resource's location")
    parser.add_argument(
        "--api-version", default=LATEST_API_VERSION, choices=API_VERSIONS, help="AIB API version to write"
    )


def main(args: argparse.Namespace) -> int:
    label = "<stdin>" if args.file == "-" else args.file
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    except OSError as e:
        print(f"{label}: : cannot read: {e.strerror}", file=sys.stderr)
        return 1
    except UnicodeDecodeError as e:
        print(f"{label}: : not UTF-8 text (byte {e.start}: {e.reason})", file=sys.stderr)
        return 1
    try:
        if args.to == "aib":
            out = _to_aib(text, args.api_version)
            print(json.dumps(out, indent=2))
        else:
            manifest = aib_to_manifest(
                _load_json(text),
                name=args.name,
                namespace=args.namespace,
                subscription_id=args.subscription_id,
                location=args.location,
            )
            print(yaml.safe_dump(manifest, sort_keys=False, width=120), end="")
    except InvalidManifest as e:
        for path, message in e.problems:
            print(f"{label}: {path}: {message}", file=sys.stderr)
        return 1
    return 0


def _load_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidManifest([("", f"not JSON: {e}")]) from None


def _to_aib(text: str, api_version: str) -> Any:
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise InvalidManifest([("", f"not YAML: {e}")]) from None
    templates = [d for d in docs if isinstance(d, dict) and d.get("kind") == "ImageTemplate"]
    if not templates:
        raise InvalidManifest([("kind", "no ImageTemplate in this file")])
    resources = [manifest_to_aib(t, api_version=api_version) for t in templates]
    return resources[0] if len(resources) == 1 else resources
