"""AzureClients: settings from the environment, one client set per subscription, closed on shutdown."""

from __future__ import annotations

import asyncio

import pytest

from kaib.azure.clients import AzureClients, AzureSettings

SUB = "00000000-0000-0000-0000-000000000001"


def test_settings_default_to_azure_with_slow_polling() -> None:
    settings = AzureSettings.from_env({})
    assert settings.arm_endpoint == "https://management.azure.com"
    assert settings.is_azure
    assert settings.polling_interval == 15.0


def test_settings_for_the_sandbox_poll_fast() -> None:
    settings = AzureSettings.from_env(
        {"KAIB_ARM_ENDPOINT": "https://127.0.0.1:8443/", "AZURE_SUBSCRIPTION_ID": SUB}
    )
    assert settings.arm_endpoint == "https://127.0.0.1:8443"
    assert not settings.is_azure
    assert settings.polling_interval == 1.0
    assert settings.default_subscription_id == SUB
    assert AzureSettings.from_env({"KAIB_POLLING_INTERVAL": "0.2"}).polling_interval == 0.2


def test_clients_are_created_once_per_subscription_and_closed() -> None:
    async def scenario() -> None:
        clients = AzureClients.from_env(
            {"KAIB_ARM_ENDPOINT": "https://127.0.0.1:1", "AZURE_SUBSCRIPTION_ID": SUB}
        )
        first = clients.for_subscription()
        assert clients.for_subscription(SUB) is first
        other = clients.for_subscription("00000000-0000-0000-0000-000000000002")
        assert other is not first
        assert first.resource._config.polling_interval == 1.0
        # one aiohttp session (one pool, one SSL context) under every client of every subscription
        sessions = {
            id(getattr(c._client._pipeline._transport, "session", None))
            for s in (first, other)
            for c in (s.resource, s.compute, s.containers, s.storage)
        }
        assert sessions == {id(clients._session)}
        session = clients._session
        assert session is not None
        await clients.close()
        assert clients.credential is None
        assert session.closed

    asyncio.run(scenario())


def test_missing_subscription_is_a_clear_error() -> None:
    clients = AzureClients.from_env({})
    with pytest.raises(ValueError, match="subscriptionId"):
        clients.for_subscription()


def test_the_ca_file_is_passed_to_clients_explicitly() -> None:
    settings = AzureSettings.from_env({"SSL_CERT_FILE": "/tmp/ca.pem"})
    assert settings.ca_file == "/tmp/ca.pem"
    assert AzureSettings.from_env({}).ca_file is None
    assert AzureClients(settings)._transport_kwargs() == {"connection_verify": "/tmp/ca.pem"}


@pytest.mark.parametrize(("proxy", "trusted"), [(None, False), ("http://proxy.corp:3128", True)])
def test_the_environment_is_trusted_only_for_a_proxy(
    monkeypatch: pytest.MonkeyPatch, proxy: str | None, trusted: bool
) -> None:
    """trust_env costs two worker-thread hops per request (netrc, proxy lookup): only with a proxy."""
    from kaib.azure.clients import PROXY_VARIABLES

    for variable in PROXY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    if proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy)

    async def scenario() -> bool:
        clients = AzureClients.from_env(
            {"KAIB_ARM_ENDPOINT": "https://127.0.0.1:1", "AZURE_SUBSCRIPTION_ID": SUB}
        )
        clients.for_subscription()
        assert clients._session is not None
        try:
            return clients._session.trust_env
        finally:
            await clients.close()

    assert asyncio.run(scenario()) is trusted
