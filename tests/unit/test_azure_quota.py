"""The preflight quota arithmetic: vCPUs per family and in total, and the builder container group,
against the region's usages; what the build needs is read from its plan."""

from __future__ import annotations

import logging

import pytest

from kaib.azure import quota
from kaib.azure.compute import Access
from kaib.azure.context import BuildContext
from kaib.azure.naming import BuildNames, Owner
from kaib.azure.planner import PlanFacts, plan
from kaib.azure.quota import Need, Usage
from kaib.azure.spec import ResourceSpec
from kaib.sandbox.kinds import catalog

SUBNET = "/subscriptions/s/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/v/subnets/build"


def usages(**items: tuple[int, int]) -> dict[str, Usage]:
    return {name.lower(): Usage(name, current, limit) for name, (current, limit) in items.items()}


def test_needs_sum_vcpus_per_family_and_in_total() -> None:
    wanted = quota.needs([("build VM", "Standard_B2s"), ("proxy VM", "Standard_A1_v2")])
    assert {n.name: n.amount for n in wanted} == {"standardBSFamily": 2, "standardAv2Family": 1, "cores": 3}
    total = next(n for n in wanted if n.name == "cores")
    assert total.why == "build VM Standard_B2s (2) + proxy VM Standard_A1_v2 (1)"


def test_two_vms_of_one_family_add_up() -> None:
    wanted = quota.needs([("build VM", "Standard_D4s_v3"), ("proxy VM", "standard_d2s_v3")])
    assert {n.name: n.amount for n in wanted} == {"standardDSv3Family": 6, "cores": 6}


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
    # exactly at the limit: 8 + 2 = 10, 98 + 2 = 100; a usage Azure does not list is not checked
    assert quota.shortfalls(wanted, usages(standardBSFamily=(8, 10), cores=(98, 100)), "westus") == []


def test_the_table_agrees_with_the_sandbox_catalog() -> None:
    for size, (family, vcpus) in catalog.VM_SIZES.items():
        assert quota.VM_SIZES[size.lower()] == (family, vcpus), size


def planned(**spec: object) -> list[ResourceSpec]:
    ctx = BuildContext(
        "s", "westus", "IT_stage", BuildNames("abcdef1234"), Owner("ns", "t", "b", "abcdef1234"), {}
    )
    facts = PlanFacts(ctx=ctx, access=Access("Linux"), image={}, builder_image="kaib-builder:latest")
    return list(plan({"source": {"type": "PlatformImage"}, **spec}, facts).created)


def test_the_plan_says_which_vms_and_container_groups_a_build_needs() -> None:
    assert quota.vm_sizes(planned(vmProfile={"vmSize": "Standard_B2s"})) == [("build VM", "Standard_B2s")]
    proxy = planned(vmProfile={"vmSize": "Standard_B2s", "vnetConfig": {"subnetId": SUBNET}})
    assert sorted(quota.vm_sizes(proxy)) == [("build VM", "Standard_B2s"), ("proxy VM", "Standard_A1_v2")]
    groups = quota.aci_needs(planned())
    assert [(n.name, n.amount) for n in groups] == [("ContainerGroups", 1), ("StandardCores", 1)]


def test_a_container_quota_shortfall_is_named_as_such() -> None:
    (problem,) = quota.shortfalls(quota.aci_needs(planned()), usages(ContainerGroups=(5, 5)), "westus")
    assert problem.startswith("not enough container instance ContainerGroups quota in westus")
    assert "az container list-usage -l westus" in quota.advice("westus", vms=False, containers=True)
    assert "vmSize" in quota.advice("westus", vms=True, containers=False)
