"""kaib.metrics: the helpers move the right series, the endpoints answer, and the azure-core policy
records real SDK requests (a TLS server on 127.0.0.1 stands in for ARM)."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme
from azure.core.credentials import AccessToken
from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.network.aio import NetworkManagementClient

from kaib import metrics
from kaib.metrics import REGISTRY, AzureRequestMetricsPolicy, resource_type_of

SUB = "00000000-0000-0000-0000-000000000001"


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_reconcile_counts_results_errors_and_time() -> None:
    before_ok = value("controller_runtime_reconcile_total", controller="imagebuild", result="success")
    before_err = value("controller_runtime_reconcile_errors_total", controller="imagebuild")
    before_n = value("controller_runtime_reconcile_time_seconds_count", controller="imagebuild")
    metrics.observe_reconcile("imagebuild", "success", 0.02)
    metrics.observe_reconcile("imagebuild", "error", 0.5)
    assert (
        value("controller_runtime_reconcile_total", controller="imagebuild", result="success")
        == before_ok + 1
    )
    assert value("controller_runtime_reconcile_errors_total", controller="imagebuild") == before_err + 1
    assert value("controller_runtime_reconcile_time_seconds_count", controller="imagebuild") == before_n + 2
    with pytest.raises(ValueError, match="result"):
        metrics.observe_reconcile("imagebuild", "ok", 0.1)


def test_reconcile_timer_classifies_the_handler_outcome() -> None:
    import kopf

    def count(result: str) -> float:
        return value("controller_runtime_reconcile_total", controller="imagetemplate", result=result)

    before = {r: count(r) for r in ("success", "requeue_after", "error")}
    with metrics.reconcile_timer("imagetemplate"):
        pass
    with pytest.raises(kopf.TemporaryError), metrics.reconcile_timer("imagetemplate"):
        raise kopf.TemporaryError("Azure still creating", delay=5)
    with pytest.raises(RuntimeError), metrics.reconcile_timer("imagetemplate"):
        raise RuntimeError("bug")
    with pytest.raises(asyncio.CancelledError), metrics.reconcile_timer("imagetemplate"):
        raise asyncio.CancelledError
    assert {r: count(r) - before[r] for r in before} == {"success": 1, "requeue_after": 1, "error": 1}


def test_build_and_step_histograms_use_minute_to_hour_buckets() -> None:
    before = value("kaib_builds_total", outcome="Failed")
    metrics.build_finished("Failed", 1500.0)
    assert value("kaib_builds_total", outcome="Failed") == before + 1
    # 1500 s lands between the 20 min and 30 min buckets.
    assert value("kaib_build_duration_seconds_bucket", le="1200.0") < value(
        "kaib_build_duration_seconds_bucket", le="1800.0"
    )
    assert metrics.BUILD_BUCKETS[0] == 60.0 and metrics.BUILD_BUCKETS[-1] >= 8 * 3600
    metrics.step_finished("network", 12.0)
    assert value("kaib_step_duration_seconds_bucket", step="network", le="15.0") >= 1


def test_active_builds_gauge_resets_missing_phases() -> None:
    metrics.set_active({"Queued": 2, "Running": 1})
    assert value("kaib_active_builds", phase="Queued") == 2
    metrics.set_active({"Running": 3})
    assert value("kaib_active_builds", phase="Queued") == 0
    assert value("kaib_active_builds", phase="Running") == 3


def test_lro_gauge_drops_types_no_longer_in_flight() -> None:
    metrics.set_lro_in_flight({"Microsoft.Compute/virtualMachines": 2})
    metrics.set_lro_in_flight({"Microsoft.Network/virtualNetworks": 1})
    assert value("kaib_azure_lro_in_flight", resource_type="Microsoft.Compute/virtualMachines") == 0
    assert value("kaib_azure_lro_in_flight", resource_type="Microsoft.Network/virtualNetworks") == 1


def test_orphans_and_build_info() -> None:
    before = value("kaib_orphans_removed_total", resource_type="Microsoft.Network/networkInterfaces")
    metrics.orphan_removed("Microsoft.Network/networkInterfaces")
    assert (
        value("kaib_orphans_removed_total", resource_type="Microsoft.Network/networkInterfaces") == before + 1
    )
    families = {family.name for family in REGISTRY.collect()}
    assert "kaib_build_info" in families


def test_metric_names_list_every_exposed_family() -> None:
    exposed = set()
    for family in REGISTRY.collect():
        exposed.add(family.name + "_total" if family.type == "counter" else family.name)
    assert exposed == metrics.METRIC_NAMES


def test_resource_type_of_a_resource_id() -> None:
    rid = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-abc"
    assert resource_type_of(rid) == "Microsoft.Compute/virtualMachines"


def test_heartbeat_liveness_follows_the_event_loop() -> None:
    async def scenario() -> None:
        task = metrics.start_heartbeat(max_age=0.2, interval=0.01)
        await asyncio.sleep(0.05)
        assert metrics._checks["/healthz"]()
        lags = metrics.REGISTRY.get_sample_value("kaib_event_loop_lag_seconds_count") or 0
        time.sleep(0.05)  # a blocking call: the next beat is that late
        await asyncio.sleep(0.02)
        assert (metrics.REGISTRY.get_sample_value("kaib_event_loop_lag_seconds_count") or 0) > lags
        assert (metrics.REGISTRY.get_sample_value("kaib_event_loop_lag_seconds_sum") or 0) >= 0.03
        task.cancel()  # the loop stops beating, as a wedged loop would
        await asyncio.sleep(0.3)
        assert not metrics._checks["/healthz"]()

    try:
        asyncio.run(scenario())
    finally:
        metrics.set_liveness(lambda: True)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            f"https://m/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v"
            "?api-version=2024-05-01",
            "Microsoft.Network/virtualNetworks",
        ),
        (
            f"https://m/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v"
            "/subnets/s",
            "Microsoft.Network/virtualNetworks/subnets",
        ),
        (
            f"https://m/subscriptions/{SUB}/providers/Microsoft.Network/locations/westus/operations/abc",
            "Microsoft.Network/locations/operations",
        ),
        (
            f"https://m/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines",
            "Microsoft.Compute/virtualMachines",
        ),
        (f"https://m/subscriptions/{SUB}/resourcegroups/rg-kaib-abc?api-version=1", metrics.RESOURCE_GROUPS),
        (f"https://m/subscriptions/{SUB}/providers/Microsoft.Compute", "Microsoft.Compute"),
        ("https://m/", metrics.OTHER),
    ],
)
def test_resource_type_never_carries_a_name(url: str, expected: str) -> None:
    assert resource_type_of(url) == expected


# --- the policy with the real async network client ------------------------------------------------


class _Arm(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body: dict[str, Any]
        if "/virtualNetworks/present" in self.path:
            code, body = 200, {"id": self.path.split("?")[0], "name": "present", "location": "westus"}
        else:
            code, body = 404, {"error": {"code": "ResourceNotFound", "message": "not found"}}
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def fake_arm(tmp_path: Path) -> Iterator[tuple[str, str]]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Arm)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", str(ca_file)
    finally:
        server.shutdown()
        server.server_close()


class _Token:
    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("t", 2_000_000_000)

    async def close(self) -> None:
        pass

    async def __aenter__(self) -> _Token:
        return self

    async def __aexit__(self, *args: object) -> None:
        pass


def test_policy_records_sdk_requests_by_type_method_and_status(fake_arm: tuple[str, str]) -> None:
    endpoint, ca_file = fake_arm
    vnets = "Microsoft.Network/virtualNetworks"
    ok_before = value("kaib_azure_requests_total", resource_type=vnets, method="GET", status_code="200")
    missing_before = value("kaib_azure_requests_total", resource_type=vnets, method="GET", status_code="404")
    timed_before = value("kaib_azure_request_duration_seconds_count", resource_type=vnets, method="GET")

    async def scenario() -> None:
        client = NetworkManagementClient(
            _Token(),
            SUB,
            base_url=endpoint,
            per_call_policies=[AzureRequestMetricsPolicy()],
            connection_verify=ca_file,
            retry_total=0,
        )
        async with client:
            vnet = await client.virtual_networks.get("rg", "present")
            assert vnet.name == "present"
            with pytest.raises(ResourceNotFoundError):
                await client.virtual_networks.get("rg", "absent")

    asyncio.run(scenario())
    assert (
        value("kaib_azure_requests_total", resource_type=vnets, method="GET", status_code="200")
        == ok_before + 1
    )
    assert (
        value("kaib_azure_requests_total", resource_type=vnets, method="GET", status_code="404")
        == missing_before + 1
    )
    assert (
        value("kaib_azure_request_duration_seconds_count", resource_type=vnets, method="GET")
        == timed_before + 2
    )


def test_policy_records_connection_errors() -> None:
    from azure.core.exceptions import ServiceRequestError
    from azure.core.pipeline import Pipeline
    from azure.core.pipeline.transport import RequestsTransport
    from azure.core.rest import HttpRequest

    url = f"http://127.0.0.1:1/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/a"
    before = value(
        "kaib_azure_requests_total",
        resource_type="Microsoft.Storage/storageAccounts",
        method="PUT",
        status_code="error",
    )
    with (
        Pipeline(RequestsTransport(), policies=[AzureRequestMetricsPolicy()]) as pipeline,
        pytest.raises(ServiceRequestError),
    ):
        pipeline.run(HttpRequest("PUT", url))
    after = value(
        "kaib_azure_requests_total",
        resource_type="Microsoft.Storage/storageAccounts",
        method="PUT",
        status_code="error",
    )
    assert after == before + 1


# --- the HTTP endpoints ---------------------------------------------------------------------------


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_port_comes_from_the_environment() -> None:
    assert metrics.port_from_env({}) == 8080
    assert metrics.port_from_env({"KAIB_METRICS_PORT": "9100"}) == 9100


def test_endpoints_serve_metrics_liveness_and_readiness() -> None:
    server = metrics.serve(0, host="127.0.0.1")
    base = f"http://127.0.0.1:{server.port}"
    try:
        metrics.observe_reconcile("imagetemplate", "success", 0.01)
        code, text = _get(base + "/metrics")
        assert code == 200
        assert 'controller_runtime_reconcile_total{controller="imagetemplate",result="success"}' in text
        assert "kaib_build_info{" in text
        assert _get(base + "/readyz")[0] == 503  # not ready until the operator says so
        metrics.set_readiness(lambda: True)
        assert _get(base + "/readyz") == (200, "ok\n")
        assert _get(base + "/healthz")[0] == 200

        def broken() -> bool:
            raise RuntimeError("loop wedged")

        metrics.set_liveness(broken)
        assert _get(base + "/healthz")[0] == 503
        assert _get(base + "/nothing")[0] == 404
    finally:
        metrics.set_liveness(lambda: True)
        metrics.set_readiness(lambda: False)
        server.close()
