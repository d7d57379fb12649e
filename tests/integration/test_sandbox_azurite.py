"""Azurite as the sandbox starts it: the dev account, and an account added while it runs."""

from __future__ import annotations

import base64
import os

from azure.storage.blob import BlobServiceClient

from kaib.sandbox.azurite import Azurite


def test_append_blob_on_dev_account(azurite: Azurite) -> None:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = service.get_container_client("fixture-check")
    if not container.exists():
        container.create_container()
    blob = container.get_blob_client("log.txt")
    blob.create_append_blob()
    blob.append_block(b"one\n")
    blob.append_block(b"two\n")
    assert blob.download_blob().readall() == b"one\ntwo\n"


def test_account_added_at_run_time(azurite: Azurite) -> None:
    key = base64.b64encode(os.urandom(64)).decode()
    azurite.add_account("kaibruntimeacct", key)
    service = BlobServiceClient.from_connection_string(azurite.account_connection_string("kaibruntimeacct"))
    service.create_container("logs")
    assert [c.name for c in service.list_containers()] == ["logs"]
    # The dev account does not see the other account's containers.
    dev = BlobServiceClient.from_connection_string(azurite.connection_string)
    assert "logs" not in [c.name for c in dev.list_containers()]
