"""kstatus (kaib.health.compute) over the status sequences of a successful build, a failed build, a
canceled build, deletions and a template fixed after a validation error: what Flux and
`kubectl wait` see at each moment."""

from __future__ import annotations

from typing import Any

import pytest

from kaib.health import Result, Status, compute, statuses

IN_PROGRESS, FAILED, CURRENT, TERMINATING = (
    Status.IN_PROGRESS,
    Status.FAILED,
    Status.CURRENT,
    Status.TERMINATING,
)
WORKING = {"Ready": "False", "Reconciling": "True", "Stalled": "False"}
SUCCEEDED = {"Ready": "True", "Reconciling": "False", "Stalled": "False"}
STALLED = {"Ready": "False", "Reconciling": "False", "Stalled": "True"}


def obj(
    kind: str,
    summary: dict[str, str] | None,
    *,
    phase: str | None = None,
    sub_state: str | None = None,
    steps: dict[str, str] | None = None,
    generation: int = 1,
    observed: int | None = 1,
    deleting: bool = False,
    message: str = "",
) -> dict[str, Any]:
    """An object as the API server returns it; conditions in the order the engine writes them."""
    metadata: dict[str, Any] = {"name": "x", "namespace": "team-a", "generation": generation}
    if deleting:
        metadata["deletionTimestamp"] = "2026-11-25T12:00:00Z"
        metadata["finalizers"] = ["kaib.dev/cleanup"]
    result: dict[str, Any] = {"apiVersion": "kaib.dev/v1alpha1", "kind": kind, "metadata": metadata}
    if summary is None:
        return result
    conditions = [
        {"type": t, "status": s, "reason": phase or "Reconciled", "message": message or f"{t} is {s}"}
        for t, s in {**summary, **(steps or {})}.items()
    ]
    status: dict[str, Any] = {"conditions": conditions}
    if observed is not None:
        status["observedGeneration"] = observed
    if phase:
        status["phase"] = phase
    if sub_state:
        status["subState"] = sub_state
    result["status"] = status
    return result


def build(summary: dict[str, str] | None, **kwargs: Any) -> dict[str, Any]:
    return obj("ImageBuild", summary, **kwargs)


def template(summary: dict[str, str] | None, **kwargs: Any) -> dict[str, Any]:
    return obj("ImageTemplate", summary, **kwargs)


SUCCESSFUL_BUILD = [
    build(WORKING, phase="Queued", sub_state="Queued"),
    build(WORKING, phase="Running", sub_state="Building", steps={"StagingReady": "True"}),
    build(
        WORKING, phase="Running", sub_state="Building", steps={"StagingReady": "True", "NetworkReady": "True"}
    ),
    build(WORKING, phase="Running", sub_state="Customizing", steps={"BuilderReady": "True"}),
    build(WORKING, phase="Running", sub_state="Validating", steps={"Customized": "True"}),
    build(WORKING, phase="Running", sub_state="Distributing", steps={"Validated": "True"}),
    build(WORKING, phase="Running", sub_state="CleaningUp", steps={"Distributed": "True"}),
    build(SUCCEEDED, phase="Succeeded", steps={"CleanedUp": "True"}),
]

FAILED_BUILD = [
    build(WORKING, phase="Queued", sub_state="Queued"),
    build(WORKING, phase="Running", sub_state="Customizing", steps={"BuilderReady": "True"}),
    # The customizer failed: cleanup still runs, so the build is still in progress, not Failed yet.
    build(WORKING, phase="Running", sub_state="CleaningUp", steps={"Customized": "False"}),
    build(STALLED, phase="Failed", steps={"Customized": "False", "CleanedUp": "True"}),
]

CANCELED_BUILD = [
    build(WORKING, phase="Running", sub_state="Customizing"),
    # spec.cancel=true bumps the generation before the operator sees it.
    build(WORKING, phase="Running", sub_state="Customizing", generation=2, observed=1),
    build(WORKING, phase="Canceling", sub_state="CleaningUp", generation=2, observed=2),
    build(STALLED, phase="Canceled", generation=2, observed=2),
]

DELETED_SUCCEEDED_BUILD = [
    build(SUCCEEDED, phase="Succeeded"),
    build(SUCCEEDED, phase="Succeeded", deleting=True),
]

DELETED_RUNNING_BUILD = [
    build(WORKING, phase="Running", sub_state="Building"),
    build(WORKING, phase="Running", sub_state="CleaningUp", deleting=True),
]

TEMPLATE_FIXED_AFTER_INVALID_SPEC = [
    template(STALLED, message="spec.source.offer: required"),
    template(STALLED, generation=2, observed=1),
    template(WORKING, generation=2, observed=2),
    template(SUCCEEDED, generation=2, observed=2),
]

TEMPLATE_DELETED = [
    template(SUCCEEDED),
    template(SUCCEEDED, deleting=True),
]


@pytest.mark.parametrize(
    ("sequence", "expected"),
    [
        (SUCCESSFUL_BUILD, [IN_PROGRESS, CURRENT]),
        (FAILED_BUILD, [IN_PROGRESS, FAILED]),
        (CANCELED_BUILD, [IN_PROGRESS, FAILED]),
        (DELETED_SUCCEEDED_BUILD, [CURRENT, TERMINATING]),
        (DELETED_RUNNING_BUILD, [IN_PROGRESS, TERMINATING]),
        (TEMPLATE_FIXED_AFTER_INVALID_SPEC, [FAILED, IN_PROGRESS, CURRENT]),
        (TEMPLATE_DELETED, [CURRENT, TERMINATING]),
    ],
    ids=[
        "successful-build",
        "failed-build",
        "canceled-build",
        "deleted-succeeded-build",
        "deleted-running-build",
        "template-fixed",
        "template-deleted",
    ],
)
def test_sequence(sequence: list[dict[str, Any]], expected: list[Status]) -> None:
    assert statuses(sequence) == expected


def test_only_the_last_status_of_a_successful_build_is_current() -> None:
    assert [compute(o).status for o in SUCCESSFUL_BUILD] == [IN_PROGRESS] * 7 + [CURRENT]


def test_unobserved_generation_names_both_generations() -> None:
    result = compute(build(WORKING, generation=3, observed=2))
    assert result == Result(
        IN_PROGRESS,
        "ImageBuild generation is 3, but latest observed generation is 2",
        "LatestGenerationNotObserved",
    )


def test_stalled_carries_the_condition_message_and_reason() -> None:
    failed = build(STALLED, phase="Failed", message="customizer 'install' failed: exit 1")
    assert compute(failed) == Result(FAILED, "customizer 'install' failed: exit 1", "Failed")


def test_deletion_wins_over_everything() -> None:
    assert compute(build(STALLED, generation=2, observed=1, deleting=True)).status == TERMINATING


def test_ready_false_alone_is_in_progress_never_failed() -> None:
    assert compute(template({"Ready": "False"})).status == IN_PROGRESS
    assert compute(template({"Ready": "Unknown"})).status == IN_PROGRESS


def test_the_first_reconciling_or_stalled_condition_decides() -> None:
    # cli-utils walks the conditions in order; a contradictory pair is decided by the first.
    both = build({"Stalled": "True", "Reconciling": "True"})
    assert compute(both).status == FAILED


def test_no_status_yet_is_current_as_in_cli_utils() -> None:
    # kstatus's known gap: the operator must write Reconciling=True as its first status.
    assert compute(build(None)) == Result(CURRENT, "Resource is current")
    assert compute(build({}, observed=None)).status == CURRENT


def test_engine_condition_summaries_map_to_kstatus() -> None:
    conditions = pytest.importorskip("kaib.controller.conditions")
    now = "2026-11-25T12:00:00Z"
    expected = {"working": IN_PROGRESS, "succeeded": CURRENT, "stalled": FAILED}
    for state, status in expected.items():
        conds = conditions.summarize([], state=state, reason="R", message="m", generation=1, now=now)
        live = {
            "kind": "ImageBuild",
            "metadata": {"generation": 1},
            "status": {"observedGeneration": 1, "conditions": conds},
        }
        assert compute(live).status == status, state
