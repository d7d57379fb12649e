"""Bad input the apiserver refuses with a clear error naming the field, and `kaib validate` refusing it
the same way: whole-number floats in integer fields (30.0), metadata (labels, annotations,
finalizers, generateName, a missing name). Server-side dry runs on the real apiserver."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from kaib.api import validate_manifest
from kaib.api.common import INTEGER_MESSAGE
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


# Every integer field of the ImageTemplate spec, set to a whole-number float, and where it is.
WHOLE_FLOATS = {
    "spec.buildTimeoutInMinutes": lambda s: s.update(buildTimeoutInMinutes=60.0),
    "spec.vmProfile.osDiskSizeGB": lambda s: s["vmProfile"].update(osDiskSizeGB=30.0),
    "spec.customize[0].validExitCodes[0]": lambda s: s.update(
        customize=[{"type": "PowerShell", "name": "p", "inline": ["x"], "validExitCodes": [1.0]}]
    ),
    "spec.validate.inVMValidations[0].validExitCodes[0]": lambda s: s.update(
        validate={
            "inVMValidations": [{"type": "PowerShell", "name": "p", "inline": ["x"], "validExitCodes": [0.0]}]
        }
    ),
    "spec.customize[0].updateLimit": lambda s: s.update(
        customize=[{"type": "WindowsUpdate", "updateLimit": 5.0}]
    ),
    "spec.distribute[0].targetRegions[0].replicaCount": lambda s: s.update(
        distribute=[
            {
                "type": "SharedImage",
                "runOutputName": "o",
                "galleryImageId": GALLERY_IMAGE,
                "targetRegions": [{"name": "westus", "replicaCount": 2.0}],
            }
        ]
    ),
    "spec.distribute[0].versioning.major": lambda s: s.update(
        distribute=[
            {
                "type": "SharedImage",
                "runOutputName": "o",
                "galleryImageId": GALLERY_IMAGE,
                "versioning": {"scheme": "Latest", "major": 1.0},
            }
        ]
    ),
}


@pytest.mark.parametrize("path", list(WHOLE_FLOATS))
def test_a_whole_number_float_is_refused_on_its_field_saying_why(server: Server, path: str) -> None:
    doc = template(WHOLE_FLOATS[path])
    verdict = server.verdict(doc)
    assert not verdict.accepted and path in verdict.fields, verdict.message
    assert f'{path}: Invalid value: "integer": invalid data, expected int, got float64 evaluating rule: ' in (
        verdict.message
    )
    assert INTEGER_MESSAGE in verdict.message
    assert (path, INTEGER_MESSAGE) in validate_manifest(doc)
    # The same manifest with integers is valid for both (the case is about the float only).
    fixed = _ints(doc)
    assert validate_manifest(fixed) == [] and server.verdict(fixed).accepted


def _ints(value: Any) -> Any:
    if isinstance(value, float):
        return int(value)
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return value


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
