"""Whose is a distribution target found in Azure: the decision, and the spec that never writes over
a target someone else made."""

from __future__ import annotations

from typing import Any

import pytest

from kaib.azure import compute
from kaib.azure.compute import TAG_BUILT_BY, TAG_BUILT_BY_ID, target_decision

VM = "/subscriptions/s/resourceGroups/IT_x/providers/Microsoft.Compute/virtualMachines/kaib-abc-vm"
OTHER_VM = "/subscriptions/s/resourceGroups/IT_y/providers/Microsoft.Compute/virtualMachines/kaib-def-vm"
IMAGE = "/subscriptions/s/resourceGroups/images/providers/Microsoft.Compute/galleries/g/images/ubuntu"


def version(
    tags: dict[str, str] | None, source_vm: str = OTHER_VM, state: str = "Succeeded"
) -> dict[str, Any]:
    return {
        "tags": tags,
        "properties": {
            "provisioningState": state,
            "storageProfile": {"source": {"virtualMachineId": source_vm}},
        },
    }


def test_nothing_there_is_ours_to_create() -> None:
    assert target_decision(None, "abc", VM, latest=True) == "ours"
    assert target_decision(None, "abc", VM, latest=False) == "ours"


def test_a_target_carrying_our_build_id_is_ours() -> None:
    mine = version({TAG_BUILT_BY: "ns/b", TAG_BUILT_BY_ID: "abc"}, source_vm=VM)
    assert target_decision(mine, "abc", VM, latest=True) == "ours"
    assert target_decision(mine, "abc", VM, latest=False) == "ours"


@pytest.mark.parametrize(
    "tags",
    [
        {TAG_BUILT_BY: "ns/other", TAG_BUILT_BY_ID: "def"},  # another build
        {TAG_BUILT_BY: "ns/b", TAG_BUILT_BY_ID: "old"},  # the same build name, an earlier build
        {"owner": "alice"},  # made by hand
        None,
    ],
)
def test_someone_elses_target_is_a_conflict_or_a_new_version(tags: dict[str, str] | None) -> None:
    theirs = version(tags)
    assert target_decision(theirs, "abc", VM, latest=True) == "next-version"
    assert target_decision(theirs, "abc", VM, latest=False) == "conflict"


def test_another_builds_id_tag_wins_over_a_matching_source() -> None:
    theirs = version({TAG_BUILT_BY_ID: "def"}, source_vm=VM)
    assert target_decision(theirs, "abc", VM, latest=False) == "conflict"


def test_a_target_made_before_the_id_tag_is_ours_by_its_source_vm() -> None:
    managed_image = {
        "tags": {TAG_BUILT_BY: "ns/b"},
        "properties": {"sourceVirtualMachine": {"id": VM.upper()}},
    }
    assert target_decision(managed_image, "abc", VM, latest=False) == "ours"
    assert target_decision(version({}, source_vm=VM), "abc", VM, latest=True) == "ours"


def test_who_made_it_for_the_message() -> None:
    assert compute.made_by_text({"tags": {TAG_BUILT_BY: "ns/x", TAG_BUILT_BY_ID: "def"}}) == (
        "made by build ns/x (build id def)"
    )
    assert compute.made_by_text({"tags": {"owner": "alice"}}) == "not made by kaib"
    assert compute.made_by_text({}) == "not made by kaib"


def test_targets_carry_the_build_id_and_user_tags_cannot_forge_it() -> None:
    tags = {TAG_BUILT_BY: "ns/b", TAG_BUILT_BY_ID: "abc"}
    target = {
        "type": "SharedImage",
        "runOutputName": "g",
        "galleryImageId": IMAGE,
        "artifactTags": {TAG_BUILT_BY_ID: "forged", "release": "rc"},
    }
    spec = compute.gallery_image_version(target, "0.0.1", VM, "eastus", tags)
    assert spec.body["tags"][TAG_BUILT_BY_ID] == "abc"
    assert spec.body["tags"]["release"] == "rc"
    assert spec.owner_tag == (TAG_BUILT_BY_ID, "abc")


def test_a_target_spec_never_writes_over_someone_elses_resource() -> None:
    image = {"type": "ManagedImage", "runOutputName": "m", "location": "eastus"}
    image["imageId"] = "/subscriptions/s/resourceGroups/images/providers/Microsoft.Compute/images/golden"
    spec = compute.managed_image(image, VM, {TAG_BUILT_BY_ID: "abc"})
    assert spec.parameters(None) == dict(spec.body)
    failed_theirs = {"tags": {"owner": "alice"}, "properties": {"provisioningState": "Failed"}}
    assert spec.parameters(failed_theirs) is None  # left alone: the caller reports the conflict
    failed_ours = {"tags": {TAG_BUILT_BY_ID: "abc"}, "properties": {"provisioningState": "Failed"}}
    assert spec.parameters(failed_ours) == dict(spec.body)  # ours: sent again
    assert (
        spec.parameters({"tags": {TAG_BUILT_BY_ID: "abc"}, "properties": {"provisioningState": "Succeeded"}})
        is None
    )


def test_the_next_version_skips_the_taken_one_even_when_it_is_not_listed_yet() -> None:
    assert compute.next_version(["0.0.1", "0.0.1"]) == "0.0.2"
    assert compute.next_version([], 1) == "1.0.1"
