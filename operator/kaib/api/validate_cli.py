"""`kaib validate FILE...`: check ImageTemplate and ImageBuild manifests offline, as the CRDs would.

One line per problem, `<file>: <field path>: <what is wrong>`, and exit status 1 if there was any.
Files may hold several YAML documents; in that case each line ends with the object it is about.
Objects of other API groups (a Namespace, a Secret) are skipped: they are not ours to check.
Size is checked too: etcd stores at most 1.5 MiB an object, and the apiserver refuses a larger
request without naming a field (413 over 3 MiB).
"""

from __future__ import annotations

import argparse
import json
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
        size = manifest_bytes(doc)
        if size > MAX_MANIFEST_BYTES:
            lines.append(
                f"{file}: {_name(doc)}: the manifest is {size} bytes; Kubernetes stores at most 1.5 MiB, "
                f"the metadata the apiserver adds included (at most {MAX_MANIFEST_BYTES} bytes as written)"
            )
        lines += [_line(file, problem, suffix) for problem in validate_manifest(doc)]
    return lines


# etcd's default request limit (--max-request-bytes), the largest object Kubernetes can store. The
# apiserver adds uid, timestamps, managedFields and the key to what was sent (a few hundred bytes).
MAX_OBJECT_BYTES = 1536 * 1024
SERVER_ADDED_BYTES = 1024
MAX_MANIFEST_BYTES = MAX_OBJECT_BYTES - SERVER_ADDED_BYTES


def manifest_bytes(doc: Any) -> int:
    """The size of `doc` as compact JSON, the way the apiserver sends and stores it (0 for a document
    with no end, a YAML alias inside its own anchor: validate_manifest reports that)."""
    try:
        text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), default=str)
    except ValueError:
        return 0
    return len(text.encode("utf-8", "surrogatepass"))


def _foreign(doc: Any) -> bool:
    api_version = doc.get("apiVersion") if isinstance(doc, dict) else None
    return isinstance(api_version, str) and not api_version.startswith(f"{GROUP}/")


def _line(file: str, problem: Problem, suffix: str) -> str:
    path, message = problem
    return f"{file}: {path}: {message}{suffix}"


def _describe(doc: Any) -> str:
    if not isinstance(doc, dict):
        return "not an object"
    return f"{doc.get('kind', '?')} {_name(doc)}"


def _name(doc: Any) -> str:
    metadata = doc.get("metadata") if isinstance(doc, dict) else None
    return str(metadata.get("name", "?")) if isinstance(metadata, dict) else "?"
