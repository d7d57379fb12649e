"""Metrics scraped from `kaib run` (started as the chart starts it, on KAIB_METRICS_PORT) while a build
runs: the counters move, and the probes the chart points at answer."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.controlplane import Kube
from tests.fixtures.sandbox import SandboxHandle
from tests.integration import test_chart_rbac
from tests.integration.test_chart_rbac_build import (
    Mode,
    build,
    images_group,
    running_chart_operator,
    template,
    wait_final,
)

helm = test_chart_rbac.helm  # the fixture
MODE = Mode("bmet", "kaib-rbac-bmet", "rbac-bmet-team", ("peering.name=rbac-bmet",))


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include ``labels`` (0 when absent)."""
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and labels.items() <= s.labels.items()
    )


def test_counters_move_during_a_build(kube: Kube, sandbox: SandboxHandle, helm: Path, tmp_path: Path) -> None:
    team = MODE.team
    with running_chart_operator(kube, sandbox, helm, tmp_path, MODE) as operator:
        first: list[str] = []

        def scrape_once() -> None:
            if not first and (scraped := operator.scrape()) is not None and scraped[0] == 200:
                first.append(scraped[1])

        # Fresh names: a retried test must not find its first attempt's finished build.
        name = f"metrics-{uuid.uuid4().hex[:6]}"
        docs = (
            template(sandbox, images_group(sandbox), team, name=name),
            build(team, name=f"{name}-1", template_name=name),
        )
        for doc in docs:
            kube.kubectl("apply", "-f", "-", input=json.dumps(doc))
        final = wait_final(kube, operator, team, f"{name}-1", during=scrape_once)
        assert final["phase"] == "Succeeded", json.dumps(final, indent=1)[-3000:]
        end = operator.wait_for("/metrics to answer", lambda: operator.scrape(), 30)
        assert end is not None, f"nothing serves /metrics on KAIB_METRICS_PORT\n{operator.log()[-4000:]}"
        code, text = end
        assert code == 200
        before = first[0] if first else ""

        def moved(name: str, **labels: str) -> bool:
            return sample(text, name, **labels) > sample(before, name, **labels)

        assert moved("controller_runtime_reconcile_total", controller="imagebuild")
        assert moved("kaib_builds_total", outcome="Succeeded")
        assert moved("kaib_build_duration_seconds_count")
        assert moved("kaib_step_duration_seconds_count")
        assert moved("kaib_azure_requests_total", method="PUT")
        assert sample(text, "kaib_build_info") == 1
        assert operator.scrape("/healthz") == (200, "ok\n")
        assert operator.scrape("/readyz") == (200, "ok\n")
