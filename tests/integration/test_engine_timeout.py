"""buildTimeoutInMinutes: a customizer that never ends fails the build at the deadline (6 minutes, the
smallest the API accepts), everything the build made is deleted, and the status and events say why.
It costs ~6.5 minutes of CI: one build, nothing else."""

from __future__ import annotations

import uuid

from kaib.devenv.manifests import image_build
from tests.fixtures.builds import apply, condition, events, owned, unique_template, wait_phase
from tests.fixtures.controlplane import Kube
from tests.fixtures.operator import StartOperator
from tests.fixtures.sandbox import SandboxHandle

TIMEOUT_MINUTES = 6


def test_a_customizer_that_never_ends_times_out_and_nothing_is_left(
    kube: Kube, sandbox: SandboxHandle, start_operator: StartOperator
) -> None:
    ns = kube.namespace(f"timeout-{uuid.uuid4().hex[:6]}")
    scale = float(sandbox.call("GET", "latency")["scale"])
    sandbox.add_outcome("*", exitCode=0, seconds=3600 / scale)  # the modelled container runs an hour
    try:
        op = start_operator(namespace=ns)
        tmpl = unique_template("slow", sandbox, buildTimeoutInMinutes=TIMEOUT_MINUTES)
        apply(kube, ns, tmpl, image_build("slow-1", "slow"))
        running = wait_phase(kube, op, ns, "slow-1", {"Running"}, timeout=120)
        assert running["status"]["subState"] in ("Building", "Customizing")
        final = wait_phase(kube, op, ns, "slow-1", timeout=TIMEOUT_MINUTES * 60 + 180)
        slow_events = events(kube, ns, "slow-1")
        op.stop()
    finally:
        sandbox.clear_outcomes()
    status = final["status"]
    assert status["phase"] == "Failed", status
    assert f"buildTimeoutInMinutes ({TIMEOUT_MINUTES} min) during step customize" in status["message"]
    assert "the build's resources are deleted" in status["message"]
    customized = condition(final, "Customized")
    assert customized["status"] == "False" and customized["reason"] == "Timeout"
    assert condition(final, "Stalled")["status"] == "True"
    assert condition(final, "CleanedUp")["status"] == "True"
    assert owned(sandbox, status["buildId"]) == []
    assert status.get("operations") in (None, [])
    secrets = kube.kubectl("get", "secrets", "-n", ns, "-o", "name").stdout
    assert "slow-1" not in secrets, secrets
    warnings = {e["reason"]: e["message"] for e in slow_events if e["type"] == "Warning"}
    assert "buildTimeoutInMinutes" in warnings.get("CustomizeFailed", ""), warnings
    assert "buildTimeoutInMinutes" in warnings.get("Failed", ""), warnings
    reasons = {e["reason"] for e in slow_events}
    assert "CleaningUp" in reasons, reasons
