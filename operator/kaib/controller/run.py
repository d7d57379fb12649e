"""`kaib run`: the operator. Watches ImageTemplates and ImageBuilds and drives the builds.

Azure through DefaultAzureCredential and the ARM endpoint and CA of the environment (`kaib dev up`
prints them), so the same command serves the sandbox and Azure. Kubernetes through KUBECONFIG or
the in-cluster service account.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from typing import Any

import kopf

from kaib import metrics
from kaib.azure.clients import AzureClients
from kaib.controller import sweeper
from kaib.controller.handlers import Memo, register
from kaib.controller.kube import Kube
from kaib.controller.run_context import Engine, EngineSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="namespace to watch (repeatable; glob patterns allowed); default: all namespaces",
    )
    parser.add_argument(
        "--max-active-builds",
        type=int,
        default=int(os.environ.get("KAIB_MAX_ACTIVE_BUILDS", "10")),
        help="builds Running at once across all templates (default 10)",
    )
    parser.add_argument(
        "--peering", default="", help="kopf peering name (one active replica); default: standalone"
    )
    parser.add_argument("--priority", type=int, default=0, help="kopf peering priority of this replica")
    parser.add_argument(
        "--watch-timeout",
        type=float,
        default=300.0,
        help="restart a watch stream silent for this many seconds (stalled streams happen)",
    )
    parser.add_argument(
        "--liveness", default="", help="serve kopf's liveness probe, e.g. http://0.0.0.0:8080/healthz"
    )
    parser.add_argument(
        "--kubeconfig", default=os.environ.get("KUBECONFIG"), help="default: $KUBECONFIG or in-cluster"
    )
    sweeper.add_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true")


class TemplatesOnlyDiffBase(kopf.AnnotationsDiffBaseStorage):
    """kopf's last-handled-spec annotation, on ImageTemplates only (their update handler needs it).
    ImageBuilds have no create, update or resume handler: nothing reads it there, yet kopf would
    write it onto every new build, one more apiserver write per build when 200 arrive at once."""

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: Any) -> None:
        if body.get("kind") == "ImageBuild":
            return
        super().store(body=body, patch=patch, essence=essence)


def settings(args: argparse.Namespace) -> kopf.OperatorSettings:
    s = kopf.OperatorSettings()
    s.watching.inactivity_timeout = args.watch_timeout
    s.watching.server_timeout = int(min(args.watch_timeout, 600))  # the apiserver wants an integer
    s.persistence.finalizer = "kaib.dev/cleanup"
    s.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="kaib.dev")
    s.persistence.diffbase_storage = TemplatesOnlyDiffBase(prefix="kaib.dev", key="last-handled-spec")
    # kopf's own INFO lines ("Handler ... succeeded", "Creation is processed") are not Events: two
    # apiserver writes per change, 2,000 for 1,000 new templates. kaib's events go through kopf.event.
    s.posting.level = logging.WARNING
    s.peering.standalone = not args.peering
    if args.peering:
        s.peering.name = args.peering
        s.peering.priority = args.priority
    s.batching.error_delays = [1, 2, 5, 10, 30, 60]
    return s


async def serve(args: argparse.Namespace) -> None:
    azure = AzureClients.from_env()
    kube = Kube.from_kubeconfig(args.kubeconfig)
    engine_settings = EngineSettings.from_env(
        fast=not azure.settings.is_azure, max_active=args.max_active_builds, namespaces=tuple(args.namespace)
    )
    memo = kopf.Memo(kaib=Memo(Engine(azure, kube, engine_settings)))
    registry = kopf.OperatorRegistry()
    register(registry)
    namespaces: list[Any] = list(args.namespace)
    sweeping = sweeper.start(azure, kube, sweeper.settings_from_args(args), engine_settings.step)
    server = _metrics_server()
    try:
        await kopf.operator(
            registry=registry,
            settings=settings(args),
            memo=memo,
            clusterwide=not namespaces,
            namespaces=namespaces,
            standalone=not args.peering,
            peering_name=args.peering or None,
            priority=args.priority,
            liveness_endpoint=args.liveness or None,
        )
    finally:
        if sweeping is not None:
            sweeping.cancel()
        if server is not None:
            server.close()
        await azure.close()
        await kube.close()


def _metrics_server() -> metrics.MetricsServer | None:
    """/metrics, /healthz, /readyz on KAIB_METRICS_PORT (default 8080; 0: a free port)."""
    try:
        server = metrics.serve(metrics.port_from_env())
    except OSError as exc:  # a busy port must not stop the builds
        logging.getLogger(__name__).warning("metrics server not started: %s", exc)
        return None
    logging.getLogger(__name__).info("metrics on port %d", server.port)
    return server


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("azure", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    asyncio.run(serve(args))
    return 0
