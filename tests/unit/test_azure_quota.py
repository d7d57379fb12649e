"""The preflight quota arithmetic: vCPUs per family and in total, against the region's usages."""

from __future__ import annotations

import logging

import pytest

from kaib.azure import quota
from kaib.azure.quota import Need, Usage
from kaib.sandbox.kinds import catalog


def usages(**items: tuple[int, int]) -> dict[str, Usage]:
    return {name.lower(): Usage(name, current, limit) for name, (current, limit) in items.items()}


def test_needs_sum_vcpus_per_family_and_in_total() -> None:
    wanted = quota.needs([("build VM", "Standard_B2s"), ("proxy VM", "Standard_A1_v2")])
    assert {n.name: n.vcpus for n in wanted} == {"standardBSFamily": 2, "standardAv2Family": 1, "cores": 3}
    total = next(n for n in wanted if n.name == "cores")
    assert total.why == "build VM Standard_B2s (2) + proxy VM Standard_A1_v2 (1)"


def test_two_vms_of_one_family_add_up() -> None:
    wanted = quota.needs([("build VM", "Standard_D4s_v3"), ("proxy VM", "standard_d2s_v3")])
    assert {n.name: n.vcpus for n in wanted} == {"standardDSv3Family": 6, "cores": 6}


def test_an_unknown_size_is_not_counted_and_said_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="kaib.azure.quota"):
        assert quota.needs([("build VM", "Standard_M416ms_v2")]) == []
    assert "Standard_M416ms_v2" in caplog.text
    # a known proxy still counts: a lower bound never fails a build Azure would accept
    assert {n.name for n in quota.needs([("b", "Standard_X9"), ("p", "Standard_A1_v2")])} == {
        "standardAv2Family",
        "cores",
    }


def test_a_family_over_its_limit_is_named_with_need_limit_and_use() -> None:
    wanted = quota.needs([("build VM", "Standard_B2s")])
    (problem,) = quota.shortfalls(wanted, usages(standardBSFamily=(9, 10), cores=(0, 100)), "westus")
    assert problem == (
        "not enough standardBSFamily vCPUs quota in westus: the build needs 2 "
        "(build VM Standard_B2s (2)), the limit is 10 and 9 are in use"
    )


def test_the_regional_total_is_checked_too() -> None:
    wanted = quota.needs([("build VM", "Standard_B2s"), ("proxy VM", "Standard_A1_v2")])
    (problem,) = quota.shortfalls(
        wanted, usages(standardBSFamily=(0, 10), standardAv2Family=(0, 10), cores=(8, 10)), "westus"
    )
    assert "Total Regional vCPUs (cores)" in problem and "needs 3" in problem and "limit is 10" in problem


def test_exactly_at_the_limit_fits_and_unknown_usages_are_skipped() -> None:
    wanted = [Need("standardBSFamily", 2, "x"), Need("cores", 2, "x"), Need("standardNewFamily", 4, "y")]
    assert quota.shortfalls(wanted, usages(standardBSFamily=(8, 10), cores=(98, 100)), "westus") == []


def test_the_table_agrees_with_the_sandbox_catalog() -> None:
    for size, (family, vcpus) in catalog.VM_SIZES.items():
        assert quota.VM_SIZES[size.lower()] == (family, vcpus), size
