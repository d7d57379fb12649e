"""The gauges of builds in flight, scraped from `kaib run` while one build runs: kaib_active_builds
shows it Running and kaib_azure_lro_in_flight its saved operations, and both fall back to 0 after.
The same build has optimize.vmBoot Enabled: its subStates include Optimizing, before Distributing."""

from __future__ import annotations

import uuid

from prometheus_client.parser import text_string_to_metric_families

from kaib.devenv.manifests import image_build
from tests.fixtures.builds import SubStates, apply, condition, events, get, unique_template
from tests.fixtures.controlplane import Kube
from tests.fixtures.operator import Operator, StartOperator
from tests.fixtures.sandbox import SandboxHandle

VM_PUT = "Microsoft.Compute/virtualMachines:put"
VM_PUT_DEFAULT = 60.0  # the sandbox's modelled seconds, restored afterwards


def gauge(text: str, name: str) -> dict[str, float]:
    return {
        next(iter(s.labels.values()), ""): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def scrape(op: Operator) -> str:
    """The operator's /metrics text, once it serves them."""
    text: str = op.wait_for("the metrics server", op.metrics, 60)
    return text


def test_gauges_follow_a_build_and_return_to_zero(
    kube: Kube, sandbox: SandboxHandle, start_operator: StartOperator
) -> None:
    ns = kube.namespace(f"gauges-{uuid.uuid4().hex[:6]}")
    # A VM create of ~4 real seconds: longer than the engine's in-process wait, so its operation is saved.
    scale = float(sandbox.call("GET", "latency")["scale"])
    sandbox.set_latency(**{VM_PUT: 4.0 / scale})
    try:
        op = start_operator(namespace=ns)
        with SubStates(kube, ns, "g-1") as sub_states:
            tmpl = unique_template("g", sandbox, optimize={"vmBoot": {"state": "Enabled"}})
            apply(kube, ns, tmpl, image_build("g-1", "g"))
            running: list[float] = []
            lros: list[float] = []

            def finished() -> bool:
                text = scrape(op)
                running.append(gauge(text, "kaib_active_builds").get("Running", 0))
                lros.append(sum(gauge(text, "kaib_azure_lro_in_flight").values()))
                phase = (get(kube, ns, "imagebuild", "g-1").get("status") or {}).get("phase")
                return phase in ("Succeeded", "Failed", "Canceled")

            op.wait_for("the build to finish", finished, 120)
            assert get(kube, ns, "imagebuild", "g-1")["status"]["phase"] == "Succeeded"
            assert max(running) == 1, running
            assert max(lros) >= 1, lros

            def back_to_zero() -> bool:
                text = scrape(op)
                return not any(gauge(text, "kaib_active_builds").values()) and not any(
                    gauge(text, "kaib_azure_lro_in_flight").values()
                )

            op.wait_for("the gauges back at 0", back_to_zero, 30)
            final = get(kube, ns, "imagebuild", "g-1")
            g_events = events(kube, ns, "g-1")
        op.stop()
        # Validation is skipped (no inVMValidations): Optimizing comes between Customizing and Distributing.
        assert sub_states.seen == [
            "Queued",
            "Building",
            "Customizing",
            "Optimizing",
            "Distributing",
            "CleaningUp",
        ]
        optimized = condition(final, "Optimized")
        assert optimized["reason"] == "NotAvailable", optimized
        assert "OptimizeUnavailable" in {e["reason"] for e in g_events}
    finally:
        sandbox.set_latency(**{VM_PUT: VM_PUT_DEFAULT})


def test_gauges_are_right_after_a_restart_and_after_a_deletion(
    kube: Kube, sandbox: SandboxHandle, start_operator: StartOperator
) -> None:
    """A build waiting for a template that does not exist stays Queued, and costs no Azure call."""
    ns = kube.namespace(f"gauges-{uuid.uuid4().hex[:6]}")

    def queued(op: Operator, expected: float) -> None:
        op.wait_for(
            f"kaib_active_builds{{phase=Queued}} == {expected}",
            lambda: gauge(scrape(op), "kaib_active_builds").get("Queued") == expected,
            60,
        )

    op = start_operator(namespace=ns)
    apply(kube, ns, image_build("waiting-1", "no-such-template"))
    queued(op, 1)
    op.restart()
    queued(op, 1)  # a fresh process counts the build it found, not only those it saw change
    kube.kubectl("delete", "-n", ns, "imagebuild", "waiting-1", "--timeout=60s")
    queued(op, 0)
