"""Pure controller pieces: conditions, the build status machine, template status, result parsing."""

from __future__ import annotations

from typing import Any

from kaib.controller import conditions as c
from kaib.controller.blobs import parse_result
from kaib.controller.buildstatus import STEP_NAMES, BuildStatus
from kaib.controller.templates import autorun_build, validation_status

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"
SUB = "00000000-0000-0000-0000-000000000001"


def test_condition_keeps_transition_time_while_status_is_unchanged() -> None:
    first = c.set_condition(None, "Ready", "False", "Building", "a", 1, T0)
    again = c.set_condition(first, "Ready", "False", "Customizing", "b", 2, T1)
    assert again[0]["lastTransitionTime"] == T0
    assert (
        again[0]["reason"] == "Customizing"
        and again[0]["message"] == "b"
        and again[0]["observedGeneration"] == 2
    )
    flipped = c.set_condition(again, "Ready", "True", "Succeeded", "c", 2, T1)
    assert flipped[0]["lastTransitionTime"] == T1
    assert first[0]["reason"] == "Building", "the input list is not changed"


def test_condition_order_is_stable() -> None:
    conds = c.set_condition(None, "A", "True", "r", "", None, T0)
    conds = c.set_condition(conds, "B", "True", "r", "", None, T0)
    conds = c.set_condition(conds, "A", "False", "r", "", None, T1)
    assert [x["type"] for x in conds] == ["A", "B"]
    assert "observedGeneration" not in conds[0]


def kstatus(conds: list[dict[str, Any]]) -> dict[str, str]:
    return {x["type"]: x["status"] for x in conds if x["type"] in ("Ready", "Reconciling", "Stalled")}


def test_kstatus_summary() -> None:
    assert kstatus(c.summarize(None, state="working", reason="r", message="m", generation=1, now=T0)) == {
        "Ready": "False",
        "Reconciling": "True",
        "Stalled": "False",
    }
    assert kstatus(c.summarize(None, state="succeeded", reason="r", message="m", generation=1, now=T0)) == {
        "Ready": "True",
        "Reconciling": "False",
        "Stalled": "False",
    }
    assert kstatus(c.summarize(None, state="stalled", reason="r", message="m", generation=1, now=T0)) == {
        "Ready": "False",
        "Reconciling": "False",
        "Stalled": "True",
    }


def build(status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "b", "namespace": "ns", "generation": 3, "uid": "u"}, "status": status or {}}


def test_new_build_is_queued_with_all_steps_pending() -> None:
    st = BuildStatus.of(build(), T0)
    st.init("abc")
    assert st.phase == "Queued" and st.data["subState"] == "Queued" and st.data["buildId"] == "abc"
    assert [s["name"] for s in st.data["steps"]] == list(STEP_NAMES)
    assert st.current_step() == "preflight"
    assert kstatus(st.data["conditions"])["Reconciling"] == "True"
    assert st.data["observedGeneration"] == 3


def test_steps_drive_substate_and_step_conditions() -> None:
    st = BuildStatus.of(build(), T0)
    st.init("abc")
    st.data["phase"] = "Running"
    st.set_step("preflight", "Running", "Creating", "checking")
    st.set_step("preflight", "Done", "Succeeded", "ok")
    st.set_step("customize", "Running", "Waiting", "customizing")
    assert st.data["subState"] == "Customizing"
    st.set_step("staging", "Failed", "Failed", "boom")
    cond = c.get_condition(st.data["conditions"], "StagingReady")
    assert cond is not None and cond["status"] == "False" and cond["message"] == "boom"
    assert st.failed_steps() == ["staging"]
    assert st.failure_message() == "boom"
    steps = {s["name"]: s for s in st.data["steps"]}
    assert steps["preflight"]["startTime"] == T0 and steps["preflight"]["endTime"] == T0


def test_finish_sets_terminal_kstatus_and_drops_operations() -> None:
    st = BuildStatus.of(build({"phase": "Running", "operations": [{"resourceId": "/x", "token": "t"}]}), T1)
    st.finish("Failed", "it broke")
    assert st.terminal and st.data["endTime"] == T1 and st.data["operations"] == []
    assert kstatus(st.data["conditions"]) == {"Ready": "False", "Reconciling": "False", "Stalled": "True"}
    ok = BuildStatus.of(build({"phase": "Running"}), T1)
    ok.finish("Succeeded", "done")
    assert kstatus(ok.data["conditions"])["Ready"] == "True"


def test_inventory_and_saved_operations_are_case_insensitive_and_replaced() -> None:
    from kaib.azure.async_step import SavedOperation

    st = BuildStatus.of(build(), T0)
    st.record_resource("/Sub/RG/vnet", "vnet", "network", "Creating")
    st.record_resource("/sub/rg/VNET", "vnet", "network", "Created")
    assert st.data["resources"] == [
        {"id": "/Sub/RG/vnet", "type": "vnet", "step": "network", "state": "Created"}
    ]
    st.save_operation("/x", SavedOperation("/x", "PUT", "tok", T0))
    st.save_operation("/x", SavedOperation("/x", "PUT", "tok2", T0))
    assert [o["token"] for o in st.data["operations"]] == ["tok2"]
    saved = st.saved_operation("/X")
    assert saved is not None and saved.token == "tok2"
    st.save_operation("/x", None)
    assert st.data["operations"] == []


def template(spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "t", "namespace": "ns", "generation": 2, "uid": "tu"}, "spec": spec}


VALID = {
    "source": {
        "type": "PlatformImage",
        "publisher": "Canonical",
        "offer": "o",
        "sku": "s",
        "version": "latest",
    },
    "distribute": [
        {
            "type": "ManagedImage",
            "runOutputName": "img",
            "imageId": f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/images/i",
            "location": "westus",
        }
    ],
    "azure": {"subscriptionId": SUB, "location": "westus"},
}


def test_valid_template_is_ready_with_topology_and_source() -> None:
    status = validation_status(template(VALID), T0)
    assert kstatus(status["conditions"]) == {"Ready": "True", "Reconciling": "False", "Stalled": "False"}
    assert status["topology"] == "NoVNet"
    assert status["sourceSummary"] == "Canonical/o/s/latest"
    assert status["observedGeneration"] == 2


def test_invalid_template_is_stalled_with_the_field_path() -> None:
    bad = {**VALID, "buildTimeoutInMinutes": 3}
    status = validation_status(template(bad), T0)
    assert kstatus(status["conditions"])["Stalled"] == "True"
    assert "buildTimeoutInMinutes" in status["message"]


def test_autorun_creates_one_build_only_when_enabled() -> None:
    assert autorun_build(template(VALID)) is None
    made = autorun_build(template({**VALID, "autoRun": {"state": "Enabled"}}))
    assert made is not None
    assert made["metadata"]["name"] == "t-autorun" and made["spec"] == {"templateRef": {"name": "t"}}


def test_result_parsing() -> None:
    assert parse_result(None, 0).status == "Succeeded"
    failed = parse_result(None, 3)
    assert failed.status == "Failed" and failed.failed_phase == "customize" and "3" in failed.message
    assert parse_result(None, None).status == ""
    validation = parse_result(
        {
            "status": "Failed",
            "message": "v",
            "phases": [
                {"name": "customize", "endTime": T0, "exitCode": 0},
                {"name": "validation", "endTime": T1, "exitCode": 1},
            ],
        },
        1,
    )
    assert (
        validation.failed_phase == "validate"
        and validation.validation_failed
        and validation.customization_done
    )
    running = parse_result({"phases": [{"name": "customize", "endTime": T0, "exitCode": 0}]}, None)
    assert running.customization_done and running.status == ""
