"""The staging storage account's data plane: a container SAS for the builder, result.json for us.

Logs live under `packerlogs/<buildId>/` (customization.log, validation.log, result.json), written by
the builder agent (or the sandbox's modelled run).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContainerSasPermissions, generate_container_sas
from azure.storage.blob.aio import ContainerClient

from kaib.azure.arm import to_rest
from kaib.azure.clients import ServiceClients
from kaib.azure.storage import LOGS_CONTAINER
from kaib.builder import result as builder_result


@dataclass(frozen=True)
class LogStore:
    account: str
    endpoint: str  # https://<account>.blob.core.windows.net/ (or Azurite's URL)
    key: str

    def container_url(self) -> str:
        return f"{self.endpoint.rstrip('/')}/{LOGS_CONTAINER}"

    def blob_url(self, build_id: str, name: str) -> str:
        return f"{self.container_url()}/{build_id}/{name}"

    def sas_url(self, hours: int) -> str:
        """A container URL with a SAS the builder writes its logs and result with."""
        return f"{self.container_url()}?{self.sas_token(hours)}"

    def sas_token(self, hours: int) -> str:
        return generate_container_sas(
            self.account,
            LOGS_CONTAINER,
            account_key=self.key,
            permission=ContainerSasPermissions(read=True, add=True, create=True, write=True, list=True),
            expiry=datetime.now(UTC) + timedelta(hours=hours),
        )

    async def ensure_container(self) -> None:
        """Create `packerlogs` through the data plane (the sandbox has no ARM blob containers)."""
        async with ContainerClient.from_container_url(
            self.container_url(), credential=self._credential()
        ) as c:
            with contextlib.suppress(ResourceExistsError):
                await c.create_container()

    async def write_text(self, name: str, text: str) -> None:
        async with ContainerClient.from_container_url(
            self.container_url(), credential=self._credential()
        ) as c:
            await c.get_blob_client(name).upload_blob(text.encode(), overwrite=True)

    async def read_json(self, build_id: str, name: str) -> dict[str, Any] | None:
        async with ContainerClient.from_container_url(
            self.container_url(), credential=self._credential()
        ) as c:
            try:
                stream = await c.get_blob_client(f"{build_id}/{name}").download_blob()
                data = await stream.readall()
            except ResourceNotFoundError:
                return None
        try:
            parsed = json.loads(data)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None

    def _credential(self) -> dict[str, str]:
        return {"account_name": self.account, "account_key": self.key}


async def log_store(clients: ServiceClients, group: str, account: str) -> LogStore:
    props = to_rest(await clients.storage.storage_accounts.get_properties(group, account)) or {}
    endpoints = (props.get("properties") or {}).get("primaryEndpoints") or {}
    endpoint = str(endpoints.get("blob") or f"https://{account}.blob.core.windows.net/")
    keys = to_rest(await clients.storage.storage_accounts.list_keys(group, account)) or {}
    key = str(((keys.get("keys") or [{}])[0]).get("value") or "")
    return LogStore(account, endpoint, key)


@dataclass(frozen=True)
class BuildResult:
    """result.json as the engine reads it: which phase failed, and why."""

    status: str  # Succeeded | Failed | "" (not finished)
    failed_phase: str  # customize | validate | ""
    message: str
    validation_failed: bool
    customization_done: bool


def parse_result(data: dict[str, Any] | None, exit_code: int | None) -> BuildResult:
    """What result.json (kaib.builder.result, as the agent writes it) and the builder's exit code say."""
    result = builder_result.BuildResult.read(data) if data else None
    if result is None:
        ok = exit_code == 0
        return BuildResult(
            "Succeeded" if ok else ("Failed" if exit_code is not None else ""),
            "" if ok or exit_code is None else "customize",
            "" if ok else f"the builder exited with code {exit_code}",
            False,
            ok,
        )
    failed_phase = ""
    customization_done = False
    validation_failed = False
    for phase in result.phases:
        kind = "validate" if phase.is_validation else "customize"
        if kind == "customize" and phase.end_time and not phase.exit_failed:
            customization_done = True
        if phase.exit_failed:
            failed_phase = failed_phase or kind
            validation_failed = validation_failed or kind == "validate"
    status = result.status
    if not status and exit_code is not None:
        status = "Succeeded" if exit_code == 0 else "Failed"
    if status == "Failed" and not failed_phase:
        failed_phase = "customize"
    return BuildResult(status, failed_phase, result.message, validation_failed, customization_done)
