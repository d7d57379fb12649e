"""result.json: what the builder agent writes beside the logs and the operator reads to move the build
along. One model for both sides (the agent writes `BuildResult.dumps()`, the engine reads
`BuildResult.read()`), so the two can never disagree on a key.

{
  "buildId": "...", "status": "Running" | "Succeeded" | "Failed",
  "startTime": "...Z", "endTime": "...Z" | null, "message": "...",
  "imageReady": true,   # deprovisioning ran to the end: the VM can be captured
  "phases": [{"name": "customize", "log": "customization.log",
              "status": "Pending" | "Running" | "Succeeded" | "Failed" | "Skipped",
              "startTime": ..., "endTime": ..., "exitCode": 1,
              "failedStep": {"index": 2, "type": "Shell", "name": "..."} | null,
              "message": "..."}]
}

Reading is lenient where writing is exact: every field has a default and unknown keys (the sandbox
adds "modelled") are ignored, because a result written by an older agent, or half of one, must still
say what it can.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from kaib.packer.model import Step


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ResultModel(BaseModel):
    """Python names in code, camelCase in the JSON."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class FailedStep(ResultModel):
    index: int
    type: str
    name: str = ""

    @classmethod
    def of(cls, step: Step | None) -> FailedStep | None:
        return None if step is None else cls(index=step.index, type=step.type, name=step.name)


class PhaseResult(ResultModel):
    name: str
    log: str = ""
    status: str = "Pending"  # Pending | Running | Succeeded | Failed | Skipped
    start_time: str | None = None
    end_time: str | None = None
    exit_code: int | None = None
    failed_step: FailedStep | None = None
    message: str = ""

    @property
    def is_validation(self) -> bool:
        return self.name.lower().startswith("valid")

    @property
    def exit_failed(self) -> bool:
        """Packer exited non-zero (a phase failed before Packer ran has no exit code)."""
        return self.exit_code not in (0, None)


class BuildResult(ResultModel):
    build_id: str = ""
    status: str = ""  # Running | Succeeded | Failed; "" only in a result that does not say
    start_time: str = Field(default_factory=now)
    end_time: str | None = None
    message: str = ""
    image_ready: bool = False
    phases: list[PhaseResult] = Field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(p.status == "Failed" for p in self.phases)

    def dumps(self) -> bytes:
        return (self.model_dump_json(by_alias=True, indent=2) + "\n").encode()

    @classmethod
    def read(cls, data: object) -> BuildResult | None:
        """The result in `data` (result.json, parsed), or None when it is not a result at all."""
        try:
            return cls.model_validate(data)
        except ValidationError:
            return None
