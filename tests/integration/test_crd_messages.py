"""Bad input the apiserver refuses with a clear error naming the field, and `kaib validate` refusing it
the same way: metadata (labels, annotations, finalizers, generateName, a missing name). Server-side
dry runs on the real apiserver."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from kaib.api import validate_manifest
from kaib.devenv.manifests import image_template
from tests import strategies as gen
from tests.integration import test_fuzz_crds
from tests.integration.test_fuzz_crds import Server

server = test_fuzz_crds.server  # the fixture


class Sub:
    subscription_id = gen.SUB


GALLERY_IMAGE = f"/subscriptions/{gen.SUB}/resourceGroups/g/providers/Microsoft.Compute/galleries/x/images/y"
Spec = dict[str, Any]


def template(change: Callable[[Spec], object]) -> dict[str, Any]:
    doc = image_template("t", Sub(), f"/subscriptions/{gen.SUB}/resourceGroups/images")
    change(doc["spec"])
    return doc


METADATA = list(gen.metadata_mutations())


@pytest.mark.parametrize("index", range(len(METADATA)), ids=[f"{m[0]}-{i}" for i, m in enumerate(METADATA)])
def test_metadata_is_refused_in_the_apiservers_words(server: Server, index: int) -> None:
    name, keys, mutate = METADATA[index]
    doc = copy.deepcopy(template(lambda s: None))
    doc["metadata"], suffix = mutate(copy.deepcopy(doc["metadata"]))
    path = ".".join(str(k) for k in keys) + suffix
    verdict = server.verdict(doc)
    problems = validate_manifest(doc)
    assert not verdict.accepted and path in verdict.fields, (name, verdict.message)
    assert path in [p for p, _ in problems], (name, problems)
    if name != "metadata-name-not-dns":  # the name's pattern message is pydantic's (an older check)
        for problem_path, message in problems:
            assert f"{problem_path}: {message}" in verdict.message, (name, message, verdict.message)
