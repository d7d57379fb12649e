"""Async Azure SDK clients built from the environment, one per service and subscription.

The same code runs against Azure and against the sandbox: only the environment differs.
- Credential: DefaultAzureCredential (workload identity in AKS; the sandbox sets
  AZURE_TOKEN_CREDENTIALS=WorkloadIdentityCredential and AZURE_AUTHORITY_HOST so no metadata probe).
- Endpoint: KAIB_ARM_ENDPOINT (default https://management.azure.com).
- CA: SSL_CERT_FILE, loaded once into the SSL context of the one aiohttp session all clients share.
- KAIB_POLLING_INTERVAL (seconds): the SDK's wait between polls when Azure sends no Retry-After.
  Defaults to 1 s against a non-Azure endpoint (the sandbox), 15 s against Azure.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from azure.core.pipeline.transport import AioHttpTransport
from azure.identity.aio import DefaultAzureCredential
from azure.mgmt.compute.aio import ComputeManagementClient
from azure.mgmt.containerinstance.aio import ContainerInstanceManagementClient
from azure.mgmt.resource.resources.aio import ResourceManagementClient
from azure.mgmt.storage.aio import StorageManagementClient

from kaib.azure.budget import Budget
from kaib.metrics import AzureRequestMetricsPolicy

AZURE_ARM_ENDPOINT = "https://management.azure.com"


PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def proxy_from_environment() -> bool:
    """Whether the environment names an HTTP(S) proxy (aiohttp's trust_env reads the same variables)."""
    return any(os.environ.get(v) for v in PROXY_VARIABLES)


@dataclass(frozen=True)
class AzureSettings:
    arm_endpoint: str
    polling_interval: float
    default_subscription_id: str | None
    ca_file: str | None = (
        None  # SSL_CERT_FILE, read explicitly (aiohttp builds its default context at import)
    )

    @property
    def is_azure(self) -> bool:
        return self.arm_endpoint.rstrip("/") == AZURE_ARM_ENDPOINT

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AzureSettings:
        env = os.environ if env is None else env
        endpoint = env.get("KAIB_ARM_ENDPOINT", "").strip() or AZURE_ARM_ENDPOINT
        default_interval = 15.0 if endpoint.rstrip("/") == AZURE_ARM_ENDPOINT else 1.0
        interval = float(env.get("KAIB_POLLING_INTERVAL", "").strip() or default_interval)
        return cls(
            arm_endpoint=endpoint.rstrip("/"),
            polling_interval=interval,
            default_subscription_id=env.get("AZURE_SUBSCRIPTION_ID") or None,
            ca_file=env.get("SSL_CERT_FILE") or None,
        )


@dataclass
class ServiceClients:
    """The clients of one subscription."""

    subscription_id: str
    resource: ResourceManagementClient
    compute: ComputeManagementClient
    containers: ContainerInstanceManagementClient
    storage: StorageManagementClient

    async def close(self) -> None:
        for client in (self.resource, self.compute, self.containers, self.storage):
            await client.close()


@dataclass
class AzureClients:
    """Owns the credential, one HTTP session, and one ServiceClients per subscription, created on first use.

    Every client sends through the one aiohttp session (one connection pool, one SSL context). Given
    `connection_verify=<CA file>`, azure-core builds a new SSLContext for every request, and aiohttp
    pools connections per context: each request then paid a TLS handshake and a CA load, and the
    pools of five sessions filled with single-use connections (memory and CPU of the scale benchmark).
    """

    settings: AzureSettings
    credential: Any = None
    _by_subscription: dict[str, ServiceClients] = field(default_factory=dict)
    _session: aiohttp.ClientSession | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AzureClients:
        return cls(settings=AzureSettings.from_env(env))

    def _credential(self) -> Any:
        if self.credential is None:
            self.credential = DefaultAzureCredential(**self._transport_kwargs())
        return self.credential

    def for_subscription(self, subscription_id: str | None = None) -> ServiceClients:
        sub = subscription_id or self.settings.default_subscription_id
        if not sub:
            raise ValueError("no subscription: set spec.azure.subscriptionId or AZURE_SUBSCRIPTION_ID")
        clients = self._by_subscription.get(sub)
        if clients is None:
            clients = self._create(sub)
            self._by_subscription[sub] = clients
        return clients

    def _create(self, subscription_id: str) -> ServiceClients:
        credential = self._credential()
        budget = Budget()  # ARM throttles per subscription: its clients share one budget

        def kwargs() -> dict[str, Any]:
            return {
                "base_url": self.settings.arm_endpoint,
                "polling_interval": self.settings.polling_interval,
                # Pacing by ARM's throttling answers; then one record per HTTP attempt: Azure requests
                # by type, method and status, and their latency.
                "per_retry_policies": [budget.policy(), AzureRequestMetricsPolicy()],
            }

        return ServiceClients(
            subscription_id=subscription_id,
            resource=ResourceManagementClient(
                credential, subscription_id, transport=self._transport(), **kwargs()
            ),
            compute=ComputeManagementClient(
                credential, subscription_id, transport=self._transport(), **kwargs()
            ),
            containers=ContainerInstanceManagementClient(
                credential, subscription_id, transport=self._transport(), **kwargs()
            ),
            storage=StorageManagementClient(
                credential, subscription_id, transport=self._transport(), **kwargs()
            ),
        )

    def ssl_context(self) -> ssl.SSLContext:
        """Verifying, with SSL_CERT_FILE's CA when set (the sandbox's), else the system's."""
        return ssl.create_default_context(cafile=self.settings.ca_file)

    def _transport(self) -> AioHttpTransport:
        """A transport over the shared session (created in the running event loop, on first use)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self.ssl_context()),
                # No cookies and raw bodies, as azure-core's own sessions. Proxies from the environment
                # only when one is set: trust_env makes aiohttp read ~/.netrc and the proxy variables in
                # a worker thread on every request (two thread hops per ARM call, queued behind the
                # default executor's few threads when 200 builds call at once), and netrc's basic auth
                # has no business beside ARM's bearer token anyway.
                trust_env=proxy_from_environment(),
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
            )
        return AioHttpTransport(session=self._session, session_owner=False)

    def _transport_kwargs(self) -> dict[str, Any]:
        """For the credential's own (rare) token requests."""
        return {"connection_verify": self.settings.ca_file} if self.settings.ca_file else {}

    async def close(self) -> None:
        for clients in self._by_subscription.values():
            await clients.close()
        self._by_subscription.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self.credential is not None:
            await self.credential.close()
            self.credential = None
