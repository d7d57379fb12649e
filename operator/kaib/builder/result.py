"""result.json: what the operator reads to move the build along (beside the logs).

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
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kaib.packer.model import Step


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class PhaseResult:
    name: str
    log: str
    status: str = "Pending"
    start_time: str | None = None
    end_time: str | None = None
    exit_code: int | None = None
    failed_step: Step | None = None
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        step = self.failed_step
        return {
            "name": self.name,
            "log": self.log,
            "status": self.status,
            "startTime": self.start_time,
            "endTime": self.end_time,
            "exitCode": self.exit_code,
            "failedStep": None
            if step is None
            else {"index": step.index, "type": step.type, "name": step.name},
            "message": self.message,
        }


@dataclass
class BuildResult:
    build_id: str
    start_time: str = field(default_factory=now)
    status: str = "Running"
    end_time: str | None = None
    message: str = ""
    image_ready: bool = False
    phases: list[PhaseResult] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(p.status == "Failed" for p in self.phases)

    def to_json(self) -> dict[str, Any]:
        return {
            "buildId": self.build_id,
            "status": self.status,
            "startTime": self.start_time,
            "endTime": self.end_time,
            "message": self.message,
            "imageReady": self.image_ready,
            "phases": [p.to_json() for p in self.phases],
        }

    def dumps(self) -> bytes:
        return (json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n").encode()
