"""result.json has one model (kaib.builder.result): what the agent writes is what the engine reads."""

from __future__ import annotations

import json

from kaib.builder.result import BuildResult, FailedStep, PhaseResult
from kaib.controller.blobs import parse_result
from kaib.packer.model import Step

T0, T1, T2 = "2026-01-01T00:00:00.000000Z", "2026-01-01T00:01:00.000000Z", "2026-01-01T00:02:00.000000Z"


def written(result: BuildResult) -> dict[str, object]:
    """What the engine gets back from the blob: the agent's bytes, parsed as JSON."""
    data: dict[str, object] = json.loads(result.dumps())
    return data


def agent_result(validation_exit: int | None) -> BuildResult:
    customize = PhaseResult(name="customize", log="customization.log", status="Succeeded")
    customize.start_time, customize.end_time, customize.exit_code = T0, T1, 0
    validate = PhaseResult(name="validate", log="validation.log", status="Running", start_time=T1)
    if validation_exit is not None:
        validate.status = "Succeeded" if validation_exit == 0 else "Failed"
        validate.end_time, validate.exit_code = T2, validation_exit
        validate.failed_step = FailedStep.of(Step(index=1, type="Shell", name="check"))
        validate.message = "validate step 1 (Shell) 'check' failed: exit 1"
    result = BuildResult(build_id="b1", status="Running", start_time=T0, phases=[customize, validate])
    return result


def test_the_json_keys_are_the_documented_camel_case_ones() -> None:
    data = written(agent_result(1))
    assert list(data) == ["buildId", "status", "startTime", "endTime", "message", "imageReady", "phases"]
    phase = data["phases"][1]  # type: ignore[index]
    assert list(phase) == [
        "name", "log", "status", "startTime", "endTime", "exitCode", "failedStep", "message",
    ]  # fmt: skip
    assert phase["failedStep"] == {"index": 1, "type": "Shell", "name": "check"}


def test_round_trip_gives_the_same_model() -> None:
    result = agent_result(1)
    assert BuildResult.read(written(result)) == result


def test_the_engine_reads_customization_done_while_validation_runs() -> None:
    running = parse_result(written(agent_result(None)), None)
    assert running.customization_done and running.status == "Running" and not running.failed_phase


def test_the_engine_reads_a_failed_validation_with_its_message() -> None:
    result = agent_result(1)
    result.status, result.message, result.end_time = "Failed", result.phases[1].message, T2
    read = parse_result(written(result), 1)
    assert read.status == "Failed" and read.failed_phase == "validate" and read.validation_failed
    assert read.customization_done and read.message == "validate step 1 (Shell) 'check' failed: exit 1"


def test_what_is_not_a_result_leaves_the_exit_code_to_decide() -> None:
    assert BuildResult.read({"phases": "many"}) is None
    assert parse_result({"phases": "many"}, 2).failed_phase == "customize"
    assert BuildResult.read({"buildId": "b", "modelled": True}) is not None  # unknown keys are ignored
