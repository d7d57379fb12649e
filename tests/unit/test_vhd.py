"""VHD distribution, the pure parts: where the blob goes, its metadata, the disk access request, the
sandbox's fixed-VHD format, and how distribution combines images and VHDs."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest

from kaib.azure import compute, storage
from kaib.azure.arm import CompletedOperation
from kaib.controller import distribution, vhd
from kaib.controller.stepresult import StepResult
from kaib.sandbox import diskexport

AZURE = "https://acct.blob.core.windows.net/vhds/win.vhd"
AZURITE = "http://127.0.0.1:10000/acct/images/golden/ubuntu.vhd"


def test_an_azure_blob_url_splits_into_account_container_and_blob() -> None:
    where = storage.parse_blob_url(AZURE + "?sv=2024&sig=abc")
    assert (where.account, where.container, where.blob) == ("acct", "vhds", "win.vhd")
    assert where.account_url == "https://acct.blob.core.windows.net/"
    assert where.sas == "sv=2024&sig=abc"
    assert where.url == AZURE  # the artifactUri never carries the SAS


def test_a_path_style_url_names_the_account_in_its_path() -> None:
    where = storage.parse_blob_url(AZURITE)
    assert (where.account, where.container, where.blob) == ("acct", "images", "golden/ubuntu.vhd")
    assert where.account_url == "http://127.0.0.1:10000/acct/"
    assert where.url == AZURITE and where.sas == ""
    assert storage.parse_blob_url("http://localhost:10000/acct/c/b.vhd").account == "acct"


def test_a_container_url_gets_a_default_blob_name() -> None:
    where = storage.vhd_destination("https://acct.blob.core.windows.net/images", "", "", "abc123", "out")
    assert where.url == "https://acct.blob.core.windows.net/images/out-abc123.vhd"


@pytest.mark.parametrize(
    "uri", ["ftp://acct/vhds/x.vhd", "https://acct.blob.core.windows.net/", "http://127.0.0.1:10000/", "x"]
)
def test_a_uri_that_names_no_blob_is_refused(uri: str) -> None:
    with pytest.raises(ValueError):
        storage.parse_blob_url(uri)


def test_no_uri_means_the_staging_account_with_a_deterministic_name() -> None:
    where = storage.vhd_destination("", "kaibstaging", "http://127.0.0.1:1/kaibstaging", "abc123", "vhd")
    assert where.url == "http://127.0.0.1:1/kaibstaging/vhds/abc123/vhd.vhd"
    again = storage.vhd_destination("", "kaibstaging", "http://127.0.0.1:1/kaibstaging/", "abc123", "vhd")
    assert again == where  # the same blob every time: a restart finds its copy


def test_metadata_names_the_build_and_keeps_artifact_tags_as_identifiers() -> None:
    meta = storage.vhd_metadata("abc123", "vhd", {"team": "img", "build-kind": "x", "1st": "y"})
    assert meta == {
        "team": "img",
        "build_kind": "x",
        "_1st": "y",
        storage.META_BUILD_ID: "abc123",
        storage.META_RUN_OUTPUT: "vhd",
    }
    # ownership cannot be overridden by a tag
    assert storage.vhd_metadata("b", "o", {storage.META_BUILD_ID: "other"})[storage.META_BUILD_ID] == "b"


def test_disk_access_is_read_only_for_the_given_time() -> None:
    request = compute.disk_access_request(3600)
    assert request.as_dict() == {"access": "Read", "durationInSeconds": 3600}
    assert compute.access_sas({"accessSAS": "https://x/y?sig=1"}) == "https://x/y?sig=1"
    assert compute.access_sas(None) == ""


def test_the_grant_keeps_its_result_for_the_caller() -> None:
    kept: list[Any] = []
    op = compute.KeepingOperation(CompletedOperation({"accessSAS": "sas"}), kept)
    assert op.done() and op.continuation_token() is None
    assert asyncio.run(op.result()) == {"accessSAS": "sas"}
    assert kept == [{"accessSAS": "sas"}]


def test_only_a_template_with_a_vhd_target_exports_disks() -> None:
    assert vhd.wanted({"distribute": [{"type": "ManagedImage"}, {"type": "VHD"}]})
    assert not vhd.wanted({"distribute": [{"type": "ManagedImage"}]})
    assert not vhd.wanted({})


def test_distribution_waits_for_both_kinds_and_fails_on_either() -> None:
    done, soon, later = StepResult.done(), StepResult.wait(0.5, "a"), StepResult.wait(2.0, "b")
    bad = StepResult.fail("no", "X")
    assert distribution._both(done, done).state == "done"
    assert distribution._both(later, soon) is soon
    assert distribution._both(soon, bad) is bad
    assert distribution._both(done, later) is later


# -- the sandbox's exported disk: a fixed VHD ---------------------------------------------------


def test_a_fixed_vhd_is_whole_mib_of_data_then_a_valid_footer() -> None:
    unique = bytes(range(16))
    data = b'{"disk": "x"}'
    image = diskexport.fixed_vhd(data, unique, timestamp=diskexport.VHD_EPOCH + 7)
    assert len(image) == diskexport.MIB + 512 and image.startswith(data)
    footer = diskexport.read_footer(image)
    assert footer.cookie == b"conectix" and footer.disk_type == 2 and footer.checksum_ok
    assert footer.current_size == diskexport.MIB and footer.unique_id == unique
    raw = image[-512:]
    assert struct.unpack(">I", raw[24:28])[0] == 7  # seconds since 2000-01-01
    assert struct.unpack(">Q", raw[16:24])[0] == 0xFFFFFFFFFFFFFFFF  # fixed: no dynamic header
    corrupted = image[:-500] + b"x" + image[-499:]
    assert not diskexport.read_footer(corrupted).checksum_ok


def test_larger_data_rounds_up_to_the_next_mib() -> None:
    image = diskexport.fixed_vhd(b"x" * (diskexport.MIB + 1), b"\1" * 16)
    assert diskexport.read_footer(image).current_size == 2 * diskexport.MIB


@pytest.mark.parametrize(
    ("size", "geometry"),
    [
        (diskexport.MIB, (30, 4, 17)),  # 2048 sectors: the specification's small-disk branch
        (30 * 1024**3, (62415, 16, 63)),  # 62914560 sectors / 63 / 16
        (200 * 1024**3, (65535, 16, 255)),  # capped
    ],
)
def test_vhd_geometry_follows_the_specification(size: int, geometry: tuple[int, int, int]) -> None:
    assert diskexport._geometry(size) == geometry
