"""What a build step returns: done, waiting (come back after `requeue` seconds), or failed."""

from __future__ import annotations

from dataclasses import dataclass

from kaib.azure.errors import classify
from kaib.controller.run_context import Run


@dataclass(frozen=True)
class StepResult:
    state: str  # done | waiting | failed
    requeue: float = 0.0
    message: str = ""
    reason: str = ""

    @classmethod
    def done(cls) -> StepResult:
        return cls("done")

    @classmethod
    def wait(cls, seconds: float, message: str = "") -> StepResult:
        return cls("waiting", seconds, message)

    @classmethod
    def fail(cls, message: str, reason: str = "Failed") -> StepResult:
        return cls("failed", 0.0, message, reason)


def azure_problem(run: Run, exc: Exception, what: str) -> StepResult:
    failure = classify(exc)
    if failure.retryable:
        return StepResult.wait(failure.retry_after or run.settings.error_requeue, failure.describe(what))
    return StepResult.fail(failure.describe(what), reason=failure.code)
