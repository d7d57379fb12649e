"""The staging storage account, as the agent uses it: append blobs for logs, block blobs for the
result and (optionally) the plan. Credentials: a connection string (Azurite, account key or SAS), an
account URL with a SAS token, or an account URL alone with DefaultAzureCredential (the container
group's managed identity in Azure)."""

from __future__ import annotations

import contextlib
from typing import Protocol

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient

from kaib.builder.config import StorageConfig

MAX_APPEND_BLOCK = 4 * 1024 * 1024  # Azure's limit for one append block


class Store(Protocol):
    def ensure_append_blob(self, name: str) -> None: ...
    def append(self, name: str, data: bytes) -> None: ...
    def put(self, name: str, data: bytes, content_type: str) -> None: ...
    def get(self, name: str) -> bytes: ...


class BlobStore:
    def __init__(self, container: ContainerClient) -> None:
        self._container = container

    @classmethod
    def connect(cls, config: StorageConfig, container: str) -> BlobStore:
        if config.connection_string:
            service = BlobServiceClient.from_connection_string(config.connection_string)
        elif config.sas_token:
            service = BlobServiceClient(config.account_url, credential=config.sas_token)
        else:
            from azure.identity import DefaultAzureCredential

            service = BlobServiceClient(config.account_url, credential=DefaultAzureCredential())
        client = service.get_container_client(container)
        try:
            client.create_container()
        except ResourceExistsError:
            pass
        except HttpResponseError as e:
            # The operator creates the container with the staging account; a SAS or role scoped to
            # blobs may not allow creating it, which is fine when it exists.
            if e.status_code != 403:
                raise
        return cls(client)

    def ensure_append_blob(self, name: str) -> None:
        blob = self._container.get_blob_client(name)
        # Never truncate: deprovisioning (and a restarted agent) append to an existing log.
        with contextlib.suppress(ResourceExistsError):
            blob.create_append_blob(match_condition=MatchConditions.IfMissing)

    def append(self, name: str, data: bytes) -> None:
        blob = self._container.get_blob_client(name)
        for start in range(0, len(data), MAX_APPEND_BLOCK):
            blob.append_block(data[start : start + MAX_APPEND_BLOCK])

    def put(self, name: str, data: bytes, content_type: str) -> None:
        from azure.storage.blob import ContentSettings

        self._container.get_blob_client(name).upload_blob(
            data, overwrite=True, content_settings=ContentSettings(content_type=content_type)
        )

    def get(self, name: str) -> bytes:
        try:
            return self._container.get_blob_client(name).download_blob().readall()
        except ResourceNotFoundError:
            raise FileNotFoundError(f"blob {self._container.container_name}/{name} not found") from None
