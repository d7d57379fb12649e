"""An ImageBuild's status as the engine edits it (pure): phase, subState, steps, conditions, inventory.

The engine works on a copy of `.status`, changes it through these methods, and writes the whole
result back (merge patches replace lists wholesale, so lists are always written complete).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kaib.azure.async_step import SavedOperation
from kaib.controller import conditions as c

# The steps of one build, in order, with the subState they show and the condition they drive.
STEPS: tuple[tuple[str, str, str | None], ...] = (
    ("preflight", "Building", "PreflightPassed"),
    ("staging", "Building", "StagingReady"),
    ("network", "Building", "NetworkReady"),
    ("buildvm", "Building", "BuildVMReady"),
    ("builder", "Building", "BuilderReady"),
    ("customize", "Customizing", "Customized"),
    ("validate", "Validating", "Validated"),
    ("optimize", "Optimizing", "Optimized"),  # optimize.vmBoot; Skipped unless Enabled
    ("distribute", "Distributing", "Distributed"),
    ("cleanup", "CleaningUp", "CleanedUp"),
)
STEP_NAMES = tuple(name for name, _, _ in STEPS)
SUBSTATE = {name: sub for name, sub, _ in STEPS}
CONDITION = {name: cond for name, _, cond in STEPS}

TERMINAL = frozenset({"Succeeded", "PartiallySucceeded", "Failed", "Canceled"})
DONE_STATES = frozenset({"Done", "Skipped"})


@dataclass
class BuildStatus:
    data: dict[str, Any]
    generation: int | None
    now: str

    @classmethod
    def of(cls, build: Mapping[str, Any], now: str) -> BuildStatus:
        status = copy.deepcopy(dict(build.get("status") or {}))
        generation = (build.get("metadata") or {}).get("generation")
        return cls(status, generation, now)

    # -- reading ---------------------------------------------------------------------------------

    @property
    def phase(self) -> str:
        return str(self.data.get("phase") or "")

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL

    def step_state(self, name: str) -> str:
        for step in self.data.get("steps") or []:
            if step.get("name") == name:
                return str(step.get("state") or "Pending")
        return "Pending"

    def current_step(self) -> str | None:
        """The first step neither done nor failed, cleanup excluded (it runs on its own terms)."""
        for name in STEP_NAMES[:-1]:
            if self.step_state(name) not in (*DONE_STATES, "Failed"):
                return name
        return None

    def failed_steps(self) -> list[str]:
        return [s["name"] for s in self.data.get("steps") or [] if s.get("state") == "Failed"]

    def failure_message(self) -> str:
        """What failed, from the failed steps' conditions (the status message moves on; these stay)."""
        messages = []
        for name in self.failed_steps():
            cond = CONDITION.get(name)
            found = c.get_condition(self.data.get("conditions"), cond) if cond else None
            messages.append(str((found or {}).get("message") or ""))
        return "; ".join(m for m in messages if m) or str(self.data.get("message") or "")

    def resource_state(self, rid: str) -> str | None:
        for r in self.data.get("resources") or []:
            if str(r.get("id", "")).lower() == rid.lower():
                return str(r.get("state"))
        return None

    def saved_operation(self, rid: str) -> SavedOperation | None:
        for op in self.data.get("operations") or []:
            if str(op.get("resourceId", "")).lower() == rid.lower():
                return SavedOperation.from_status(op)
        return None

    # -- writing ---------------------------------------------------------------------------------

    def init(self, build_id: str) -> None:
        self.data.update(phase="Queued", subState="Queued", buildId=build_id)
        self.data["steps"] = [{"name": name, "state": "Pending"} for name in STEP_NAMES]
        self.data["observedGeneration"] = self.generation
        self.working("Queued", "waiting to start")

    def set_step(self, name: str, state: str, reason: str = "", message: str = "") -> None:
        steps = [dict(s) for s in self.data.get("steps") or []]
        entry = next((s for s in steps if s.get("name") == name), None)
        if entry is None:
            entry = {"name": name}
            steps.append(entry)
        if state == "Running" and entry.get("state") != "Running":
            entry["startTime"] = self.now
        if state in ("Done", "Failed", "Skipped"):
            entry.setdefault("startTime", self.now)
            entry["endTime"] = self.now
        entry["state"] = state
        self.data["steps"] = steps
        cond = CONDITION.get(name)
        if cond is not None and reason:
            status = c.TRUE if state in ("Done",) else c.FALSE
            self.condition(cond, status, reason, message)
        if state == "Running" and self.phase == "Running":
            self.data["subState"] = SUBSTATE[name]

    def condition(self, type_: str, status: str, reason: str, message: str) -> None:
        self.data["conditions"] = c.set_condition(
            self.data.get("conditions"), type_, status, reason, message, self.generation, self.now
        )

    def working(self, reason: str, message: str) -> None:
        self.data["message"] = message
        self._summary("working", reason, message)

    def finish(self, phase: str, message: str) -> None:
        self.data["phase"] = phase
        self.data["endTime"] = self.now
        self.data["message"] = message
        self.data["operations"] = []
        state = "succeeded" if phase == "Succeeded" else "stalled"
        self._summary(state, phase, message)

    def _summary(self, state: str, reason: str, message: str) -> None:
        self.data["observedGeneration"] = self.generation
        self.data["conditions"] = c.summarize(
            self.data.get("conditions"),
            state=state,
            reason=reason,
            message=message,
            generation=self.generation,
            now=self.now,
        )

    def record_resource(self, rid: str, type_: str, step: str, state: str) -> None:
        resources = [dict(r) for r in self.data.get("resources") or []]
        for r in resources:
            if str(r.get("id", "")).lower() == rid.lower():
                r["state"] = state
                break
        else:
            resources.append({"id": rid, "type": type_, "step": step, "state": state})
        self.data["resources"] = resources

    def save_operation(self, rid: str, operation: SavedOperation | None) -> None:
        ops = [
            dict(o)
            for o in self.data.get("operations") or []
            if str(o.get("resourceId", "")).lower() != rid.lower()
        ]
        if operation is not None:
            ops.append(operation.to_status())
        self.data["operations"] = ops
