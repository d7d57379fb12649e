"""The build gauges: what one build adds to kopf's index, and the recount over the index."""

from __future__ import annotations

from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from kaib import metrics
from kaib.controller import gauges

VM = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm-1"
NIC = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/networkInterfaces/nic-1"


def op(rid: str) -> dict[str, Any]:
    return {"resourceId": rid, "method": "PUT", "token": "t", "startedAt": "2026-01-01T00:00:00Z"}


def test_an_active_build_adds_its_phase_and_its_saved_operations_by_type() -> None:
    status = {"phase": "Running", "operations": [op(VM), op(NIC), op(VM.replace("vm-1", "vm-2"))]}
    assert gauges.index_entries(status) == {
        ("phase", "Running"): 1,
        ("lro", "Microsoft.Compute/virtualMachines"): 2,
        ("lro", "Microsoft.Network/networkInterfaces"): 1,
    }


def test_a_build_without_status_counts_as_queued_and_a_final_one_only_by_its_operations() -> None:
    assert gauges.index_entries(None) == {("phase", "Queued"): 1}
    assert gauges.index_entries({"phase": "Succeeded"}) == {}
    # a deleted build's cleanup runs after it ended: its operations still count
    assert gauges.index_entries({"phase": "Failed", "operations": [op(NIC)]}) == {
        ("lro", "Microsoft.Network/networkInterfaces"): 1
    }


def test_counts_sum_the_stores_of_the_index() -> None:
    index = {
        ("phase", "Running"): [1, 1],
        ("phase", "Queued"): [1],
        ("lro", "Microsoft.Compute/virtualMachines"): [2, 1],
    }
    phases, lros = gauges.counts(index)
    assert phases == {"Running": 2, "Queued": 1}
    assert lros == {"Microsoft.Compute/virtualMachines": 3}


def scrape(name: str) -> dict[str, float]:
    text = generate_latest(metrics.REGISTRY).decode()
    return {
        next(iter(s.labels.values())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def test_publish_sets_both_gauges_and_drops_what_is_gone_to_zero() -> None:
    gauges.publish({("phase", "Running"): [1], ("lro", "Microsoft.Compute/virtualMachines"): [1]})
    assert scrape("kaib_active_builds")["Running"] == 1
    assert scrape("kaib_azure_lro_in_flight")["Microsoft.Compute/virtualMachines"] == 1
    gauges.publish({})  # the build finished and was deleted
    assert scrape("kaib_active_builds") == {"Queued": 0, "Running": 0, "Canceling": 0}
    assert scrape("kaib_azure_lro_in_flight")["Microsoft.Compute/virtualMachines"] == 0
