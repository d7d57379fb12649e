"""The operator's Prometheus metrics, liveness and readiness, on a port of their own.

Names follow controller-runtime where they fit, so dashboards made for Go operators work; the rest
are ``kaib_*``. No label ever names an object (no names, no uids): cardinality stays bounded.

What the engine calls:

- ``serve(port_from_env(), host="0.0.0.0") -> MetricsServer`` once at start: serves ``/metrics``,
  ``/healthz`` (liveness) and ``/readyz`` (readiness) from a daemon thread; ``server.close()`` stops
  it. ``port_from_env()`` reads KAIB_METRICS_PORT (the Helm chart sets it), default 8080; 0 picks a
  free port (``server.port`` tells which).
- ``set_readiness(check)`` / ``set_liveness(check)``: zero-argument callables returning bool.
  Readiness is False until the operator sets a check (e.g. once kopf has started watching);
  liveness is True unless the operator sets a check.
- ``start_heartbeat(max_age=60)`` from inside the event loop (e.g. a kopf startup handler): a task
  that beats twice a second, and a liveness check that fails when the loop stops beating (a
  wedged loop, which the HTTP thread alone would never notice); each beat records the loop's lag.
- ``observe_reconcile(controller, result, seconds)``: one handler invocation; ``controller`` is
  ``"imagetemplate"`` or ``"imagebuild"``; ``result`` one of RESULTS (``"error"`` also counts in
  ``controller_runtime_reconcile_errors_total``).
- ``with reconcile_timer(controller):`` around a handler body does the same: "success" when it
  returns, "requeue_after" when it raises ``kopf.TemporaryError``, "error" for any other exception
  (re-raised); a cancelled handler (operator shutdown) is not counted.
- ``build_finished(outcome, seconds)``: a build reached a final phase (``outcome`` is the phase:
  Succeeded, PartiallySucceeded, Failed, Canceled); seconds from startTime to endTime.
- ``step_finished(step, seconds)``: one DESIGN.md step of a build ended (the status ``steps[].name``).
- ``set_active(phase_counts)``: the number of builds per non-final phase right now, e.g.
  ``{"Queued": 2, "Running": 1}``; phases missing from the mapping are set to 0.
- ``set_lro_in_flight(type_counts)``: saved long-running operations per ARM resource type right now
  (``resource_type_of(resource_id)`` gives the type of a saved operation's resourceId).
  Both are called every second by ``kaib.controller.gauges`` from a kopf index of the builds.
- ``orphan_removed(resource_type)``: a resource found by its ownership tag but in no inventory was
  deleted.
- ``AzureRequestMetricsPolicy()``: an azure-core pipeline policy recording every ARM request
  (resource type from the URL's provider segment, method, status code, latency). Pass it to each
  SDK client as ``per_call_policies=[AzureRequestMetricsPolicy()]`` (one record per SDK call,
  retries included in the latency) or ``per_retry_policies=[...]`` (one record per HTTP attempt).

Everything lives in ``REGISTRY``, not prometheus-client's global one, so tests and other libraries
cannot collide with it.
"""

from __future__ import annotations

import asyncio
import os
import platform
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import SansIOHTTPPolicy
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from kaib import __version__

REGISTRY = CollectorRegistry(auto_describe=True)

CONTROLLERS = ("imagetemplate", "imagebuild")
# controller-runtime's result label values.
RESULTS = ("success", "error", "requeue", "requeue_after")
ACTIVE_PHASES = ("Queued", "Running", "Canceling")
OUTCOMES = ("Succeeded", "PartiallySucceeded", "Failed", "Canceled")

# Builds take minutes to hours: 1 min .. 8 h.
BUILD_BUCKETS = (
    60.0,
    120.0,
    300.0,
    600.0,
    900.0,
    1200.0,
    1800.0,
    2700.0,
    3600.0,
    5400.0,
    7200.0,
    10800.0,
    14400.0,
    21600.0,
    28800.0,
)
# Steps range from a resource group PUT (seconds) to customization (hours).
STEP_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0)
# One ARM request: tens of milliseconds to a minute.
REQUEST_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# controller-runtime's default buckets for reconcile time (a kopf handler never blocks on Azure).
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

RECONCILE_TOTAL = Counter(
    "controller_runtime_reconcile_total",
    "Total number of reconciliations per controller.",
    ["controller", "result"],
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    "controller_runtime_reconcile_errors_total",
    "Total number of reconciliation errors per controller.",
    ["controller"],
    registry=REGISTRY,
)
RECONCILE_TIME = Histogram(
    "controller_runtime_reconcile_time_seconds",
    "Length of time per reconciliation per controller.",
    ["controller"],
    buckets=RECONCILE_BUCKETS,
    registry=REGISTRY,
)
BUILDS = Counter(
    "kaib_builds", "Builds that reached a final phase, by outcome.", ["outcome"], registry=REGISTRY
)
BUILD_DURATION = Histogram(
    "kaib_build_duration_seconds",
    "Build duration from start to a final phase.",
    buckets=BUILD_BUCKETS,
    registry=REGISTRY,
)
STEP_DURATION = Histogram(
    "kaib_step_duration_seconds",
    "Duration of one build step (preflight, staging, network, ... cleanup).",
    ["step"],
    buckets=STEP_BUCKETS,
    registry=REGISTRY,
)
ACTIVE_BUILDS = Gauge("kaib_active_builds", "Builds not yet final, by phase.", ["phase"], registry=REGISTRY)
AZURE_REQUESTS = Counter(
    "kaib_azure_requests",
    "Azure Resource Manager requests by resource type, method and status code.",
    ["resource_type", "method", "status_code"],
    registry=REGISTRY,
)
AZURE_REQUEST_DURATION = Histogram(
    "kaib_azure_request_duration_seconds",
    "Azure Resource Manager request latency.",
    ["resource_type", "method"],
    buckets=REQUEST_BUCKETS,
    registry=REGISTRY,
)
LRO_IN_FLIGHT = Gauge(
    "kaib_azure_lro_in_flight",
    "Long-running Azure operations saved in build statuses and not finished, by resource type.",
    ["resource_type"],
    registry=REGISTRY,
)
ORPHANS_REMOVED = Counter(
    "kaib_orphans_removed",
    "Resources carrying kaib's ownership tag but in no build's inventory, deleted.",
    ["resource_type"],
    registry=REGISTRY,
)
LOOP_LAG = Histogram(
    "kaib_event_loop_lag_seconds",
    "How late the operator's event loop ran a timer: the wait every reaction saw on top of its work.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
BUILD_INFO = Gauge("kaib_build_info", "kaib's version; always 1.", ["version", "python"], registry=REGISTRY)
BUILD_INFO.labels(version=__version__, python=platform.python_version()).set(1)

# Every metric family this module defines, as exposed (counters gain _total; histograms _bucket etc.).
METRIC_NAMES = frozenset(
    {
        "controller_runtime_reconcile_total",
        "controller_runtime_reconcile_errors_total",
        "controller_runtime_reconcile_time_seconds",
        "kaib_builds_total",
        "kaib_build_duration_seconds",
        "kaib_step_duration_seconds",
        "kaib_active_builds",
        "kaib_azure_requests_total",
        "kaib_azure_request_duration_seconds",
        "kaib_azure_lro_in_flight",
        "kaib_orphans_removed_total",
        "kaib_event_loop_lag_seconds",
        "kaib_build_info",
    }
)


def observe_reconcile(controller: str, result: str, seconds: float) -> None:
    """Record one handler run; ``result`` is one of RESULTS."""
    if result not in RESULTS:
        raise ValueError(f"result must be one of {RESULTS}, not {result!r}")
    RECONCILE_TOTAL.labels(controller=controller, result=result).inc()
    RECONCILE_TIME.labels(controller=controller).observe(seconds)
    if result == "error":
        RECONCILE_ERRORS.labels(controller=controller).inc()


@contextmanager
def reconcile_timer(controller: str) -> Iterator[None]:
    """Time the enclosed handler body and record its result (see the module docstring)."""
    import kopf  # here, so that importing the metrics never pulls in kopf

    started = time.monotonic()
    try:
        yield
    except asyncio.CancelledError:
        raise
    except kopf.TemporaryError:
        observe_reconcile(controller, "requeue_after", time.monotonic() - started)
        raise
    except Exception:
        observe_reconcile(controller, "error", time.monotonic() - started)
        raise
    observe_reconcile(controller, "success", time.monotonic() - started)


def build_finished(outcome: str, seconds: float) -> None:
    """Record a build that reached the final phase ``outcome`` after ``seconds``."""
    BUILDS.labels(outcome=outcome).inc()
    BUILD_DURATION.observe(seconds)


def step_finished(step: str, seconds: float) -> None:
    STEP_DURATION.labels(step=step).observe(seconds)


def set_active(phase_counts: Mapping[str, int]) -> None:
    """Set the gauge of active builds; known phases absent from ``phase_counts`` drop to 0."""
    for phase in {*ACTIVE_PHASES, *phase_counts}:
        ACTIVE_BUILDS.labels(phase=phase).set(phase_counts.get(phase, 0))


_lro_types: set[str] = set()


def set_lro_in_flight(type_counts: Mapping[str, int]) -> None:
    """Set the gauge of saved long-running operations; types seen before and absent drop to 0."""
    _lro_types.update(type_counts)
    for resource_type in _lro_types:
        LRO_IN_FLIGHT.labels(resource_type=resource_type).set(type_counts.get(resource_type, 0))


def orphan_removed(resource_type: str) -> None:
    ORPHANS_REMOVED.labels(resource_type=resource_type).inc()


# --- Azure requests -------------------------------------------------------------------------------

RESOURCE_GROUPS = "Microsoft.Resources/resourceGroups"
OTHER = "other"


def resource_type_of(url: str) -> str:
    """The ARM resource type a request URL addresses, e.g. ``Microsoft.Network/virtualNetworks/subnets``.

    The type comes from the last ``providers`` segment: the namespace, then every other segment
    (type, name, subtype, subname, ...). Paths without a provider are resource groups (or "other"),
    so the label never carries a name.
    """
    parts = [p for p in urlsplit(url).path.split("/") if p]
    lowered = [p.lower() for p in parts]
    if "providers" in lowered:
        at = len(lowered) - 1 - lowered[::-1].index("providers")
        rest = parts[at + 1 :]
        if not rest:
            return OTHER
        namespace, typed = rest[0], rest[1:]
        return "/".join([namespace, *typed[0::2]]) if typed else namespace
    if "resourcegroups" in lowered:
        return RESOURCE_GROUPS
    return OTHER


class AzureRequestMetricsPolicy(SansIOHTTPPolicy[Any, Any]):
    """Counts and times each request passing through an azure-core pipeline (sync or async)."""

    _START = "kaib_metrics_start"

    def on_request(self, request: PipelineRequest[Any]) -> None:
        request.context[self._START] = time.monotonic()

    def on_response(self, request: PipelineRequest[Any], response: PipelineResponse[Any, Any]) -> None:
        self._record(request, str(response.http_response.status_code))

    def on_exception(self, request: PipelineRequest[Any]) -> None:
        # No HTTP status: a connection error, a timeout, or a cancellation.
        self._record(request, "error")

    def _record(self, request: PipelineRequest[Any], status_code: str) -> None:
        started = request.context.get(self._START)
        resource_type = resource_type_of(request.http_request.url)
        method = request.http_request.method.upper()
        AZURE_REQUESTS.labels(resource_type=resource_type, method=method, status_code=status_code).inc()
        if started is not None:
            AZURE_REQUEST_DURATION.labels(resource_type=resource_type, method=method).observe(
                time.monotonic() - started
            )


# --- HTTP endpoints -------------------------------------------------------------------------------

Check = Callable[[], bool]
_checks: dict[str, Check] = {"/healthz": lambda: True, "/readyz": lambda: False}


def set_readiness(check: Check) -> None:
    """``/readyz`` answers 200 while ``check()`` is true (and 503 otherwise or when it raises)."""
    _checks["/readyz"] = check


def set_liveness(check: Check) -> None:
    """``/healthz`` answers 200 while ``check()`` is true; the kubelet restarts the pod otherwise."""
    _checks["/healthz"] = check


def start_heartbeat(max_age: float = 60.0, interval: float = 0.5) -> asyncio.Task[None]:
    """Beat from the running event loop; ``/healthz`` fails once no beat came for ``max_age`` s.
    Each beat also records how late its timer fired (``kaib_event_loop_lag_seconds``)."""
    last = [time.monotonic()]

    async def beat() -> None:
        while True:
            last[0] = time.monotonic()
            await asyncio.sleep(interval)
            LOOP_LAG.observe(max(0.0, time.monotonic() - last[0] - interval))

    set_liveness(lambda: time.monotonic() - last[0] < max_age)
    return asyncio.get_running_loop().create_task(beat(), name="kaib-heartbeat")


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/metrics":
            self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
        elif path in _checks:
            try:
                ok = bool(_checks[path]())
            except Exception:  # a failing check means "not ok", never a crashed endpoint
                ok = False
            self._send(200 if ok else 503, b"ok\n" if ok else b"not ok\n", "text/plain; charset=utf-8")
        else:
            self._send(404, b"not found\n", "text/plain; charset=utf-8")

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # probes every few seconds would drown the operator's log


class MetricsServer:
    """The HTTP server of ``serve``; ``port`` is the bound port (useful with port 0)."""

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="kaib-metrics", daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


DEFAULT_PORT = 8080


def port_from_env(env: Mapping[str, str] | None = None) -> int:
    value = (os.environ if env is None else env).get("KAIB_METRICS_PORT", "").strip()
    return int(value) if value else DEFAULT_PORT


def serve(port: int, host: str = "0.0.0.0") -> MetricsServer:
    """Start serving /metrics, /healthz and /readyz in a daemon thread, independent of the event loop."""
    server = ThreadingHTTPServer((host, port), _Handler)
    server.daemon_threads = True
    return MetricsServer(server)
