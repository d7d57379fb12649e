"""`kaib validate FILE...`: check ImageTemplate and ImageBuild manifests offline, as the CRDs would.

One line per problem, `<file>: <field path>: <what is wrong>`, and exit status 1 if there was any.
Files may hold several YAML documents; in that case each line ends with the object it is about.
Objects of other API groups (a Namespace, a Secret) are skipped: they are not ours to check.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from kaib.api.build import GROUP
from kaib.api.manifest import Problem, validate_manifest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="YAML or JSON manifests; '-' for stdin")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing for valid files")


def main(args: argparse.Namespace) -> int:
    failed = False
    for file in args.files:
        lines = check_file(file)
        failed = failed or bool(lines)
        for line in lines:
            print(line)
        if not lines and not args.quiet:
            print(f"{file}: ok", file=sys.stderr)
    return 1 if failed else 0


def check_file(file: str) -> list[str]:
    """The problem lines of one file ([] when every object in it is valid)."""
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except OSError as e:
        return [f"{file}: : cannot read: {e.strerror}"]
    except UnicodeDecodeError as e:
        return [f"{file}: : not UTF-8 text (byte {e.start}: {e.reason})"]
    except yaml.YAMLError as e:
        return [f"{file}: : not YAML: {' '.join(str(e).split())}"]
    docs = [d for d in docs if not _foreign(d)]
    if not docs:
        return [f"{file}: : no ImageTemplate or ImageBuild in this file"]
    lines = []
    for doc in docs:
        suffix = f" ({_describe(doc)})" if len(docs) > 1 else ""
        lines += [_line(file, problem, suffix) for problem in validate_manifest(doc)]
    return lines


def _foreign(doc: Any) -> bool:
    api_version = doc.get("apiVersion") if isinstance(doc, dict) else None
    return isinstance(api_version, str) and not api_version.startswith(f"{GROUP}/")


def _line(file: str, problem: Problem, suffix: str) -> str:
    path, message = problem
    return f"{file}: {path}: {message}{suffix}"


def _describe(doc: Any) -> str:
    if not isinstance(doc, dict):
        return "not an object"
    name = (doc.get("metadata") or {}).get("name", "?") if isinstance(doc.get("metadata"), dict) else "?"
    return f"{doc.get('kind', '?')} {name}"
