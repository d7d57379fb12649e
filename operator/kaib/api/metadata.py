"""Object metadata as the apiserver checks it before any schema (apimachinery's ValidateObjectMeta):
name or generateName, namespace, labels, annotations, finalizers. The messages are the apiserver's,
so `kaib validate` and `kubectl apply` say the same thing about the same manifest.

The name's own pattern is checked by the ObjectMeta model (kaib.api.build); everything else here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

Problem = tuple[str, str]

# apimachinery/pkg/util/validation
_QUALIFIED = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_QUALIFIED_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation "
    f"is '{_QUALIFIED_FMT}')"
)
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
    "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
    "regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
_DNS_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_LABEL = re.compile(_DNS_LABEL_FMT)
_DNS_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    f"start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    f"validation is '{_DNS_LABEL_FMT}')"
)
_DNS_SUBDOMAIN_FMT = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_DNS_SUBDOMAIN = re.compile(_DNS_SUBDOMAIN_FMT)
_DNS_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    f"validation is '{_DNS_SUBDOMAIN_FMT}')"
)
ANNOTATIONS_MAX_BYTES = 256 * 1024  # TotalAnnotationSizeLimitB


def metadata_problems(metadata: Any) -> list[Problem]:
    """What the apiserver refuses in `metadata` (a manifest's, as written); [] when nothing."""
    if not isinstance(metadata, dict):
        return []  # the model says "must be an object"
    problems: list[Problem] = []
    if not metadata.get("name") and not metadata.get("generateName"):
        problems.append(("metadata.name", "Required value: name or generateName is required"))
    generate = metadata.get("generateName")
    if isinstance(generate, str) and generate:
        # As the apiserver does: a trailing '-' is fine in a prefix (the random suffix follows it).
        masked = generate[:-1] + "a" if generate.endswith("-") else generate
        problems += _invalid("metadata.generateName", generate, _dns_subdomain(masked))
    namespace = metadata.get("namespace")
    if isinstance(namespace, str) and namespace:
        problems += _invalid("metadata.namespace", namespace, _dns_label(namespace))
    problems += _string_map("metadata.labels", metadata.get("labels"), label_values=True)
    problems += _string_map("metadata.annotations", metadata.get("annotations"), label_values=False)
    problems += list(_finalizers(metadata.get("finalizers")))
    return problems


def _string_map(path: str, value: Any, *, label_values: bool) -> list[Problem]:
    if value is None:
        return []
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        return [(path, "must be a map of string keys to string values")]
    problems: list[Problem] = []
    for key, item in value.items():
        # Annotation keys are checked lower-cased (upper-case letters are allowed in their name part).
        problems += _invalid(path, key, qualified_name_errors(key if label_values else key.lower()))
        if label_values:
            problems += _invalid(path, item, label_value_errors(item))
    if not label_values:
        size = sum(len(k.encode()) + len(v.encode()) for k, v in value.items())
        if size > ANNOTATIONS_MAX_BYTES:
            problems.append((path, f"Too long: may not be more than {ANNOTATIONS_MAX_BYTES} bytes"))
    return problems


def _finalizers(value: Any) -> Iterator[Problem]:
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        yield "metadata.finalizers", "must be a list of strings"
        return
    for name in value:
        yield from _invalid("metadata.finalizers", name, qualified_name_errors(name))


def _invalid(path: str, value: str, errors: list[str]) -> list[Problem]:
    return [(path, f"Invalid value: {_go_quote(value)}: {error}") for error in errors]


def _go_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def qualified_name_errors(value: str) -> list[str]:
    """IsQualifiedName: an optional DNS subdomain prefix and '/', then a name of at most 63."""
    parts = value.split("/")
    if len(parts) > 2:
        return [
            f"a valid label key {_QUALIFIED_MSG} with an optional DNS subdomain prefix and '/' "
            "(e.g. 'example.com/MyName')"
        ]
    errors = []
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            errors += [f"prefix part {e}" for e in _dns_subdomain(prefix)]
    name = parts[-1]
    if not name:
        errors.append("name part must be non-empty")
    elif len(name.encode()) > 63:
        errors.append("name part must be no more than 63 bytes")
    if not _QUALIFIED.fullmatch(name):
        errors.append(f"name part {_QUALIFIED_MSG}")
    return errors


def label_value_errors(value: str) -> list[str]:
    errors = []
    if len(value.encode()) > 63:
        errors.append("must be no more than 63 bytes")
    if not _LABEL_VALUE.fullmatch(value):
        errors.append(_LABEL_VALUE_MSG)
    return errors


def _dns_label(value: str) -> list[str]:
    errors = []
    if len(value.encode()) > 63:
        errors.append("must be no more than 63 bytes")
    if not _DNS_LABEL.fullmatch(value):
        errors.append(_DNS_LABEL_MSG)
    return errors


def _dns_subdomain(value: str) -> list[str]:
    errors = []
    if len(value.encode()) > 253:
        errors.append("must be no more than 253 bytes")
    if not _DNS_SUBDOMAIN.fullmatch(value):
        errors.append(_DNS_SUBDOMAIN_MSG)
    return errors
