"""Preflight of a VHD target's uri (vhd.check_destination): the account and the container are read,
nothing is written, and a missing one fails the build before anything is created."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from kaib.azure import storage
from kaib.azure.async_step import StepSettings
from kaib.controller import vhd
from kaib.controller.stepresult import StepResult

URI = "https://acct.blob.core.windows.net/images/golden.vhd"


def storage_error(cls: type[HttpResponseError], status: int, code: str) -> HttpResponseError:
    exc = cls(f"{code}")
    exc.status_code = status
    exc.error_code = code  # type: ignore[attr-defined]  # as azure-storage-blob sets it
    return exc


class FakeBlob:
    """Answers get_blob_properties with `error` (or a blob); any write would be an AttributeError."""

    def __init__(self, error: Exception | None) -> None:
        self.error, self.reads = error, 0

    async def __aenter__(self) -> FakeBlob:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def get_blob_properties(self) -> SimpleNamespace:
        self.reads += 1
        if self.error is not None:
            raise self.error
        return SimpleNamespace(metadata={}, copy=None)


@pytest.fixture
def run() -> Any:
    return SimpleNamespace(build_id="abc123def0", settings=StepSettings(error_requeue=2.0))


def check(
    monkeypatch: pytest.MonkeyPatch,
    run: Any,
    found: Any,
    target: dict[str, Any] | None = None,
    index: int = 1,
) -> StepResult | None:
    async def destination(_run: Any, _target: Any) -> Any:
        return found

    monkeypatch.setattr(vhd, "destination", destination)
    target = target if target is not None else {"type": "VHD", "runOutputName": "vhd", "uri": URI}
    return asyncio.run(vhd.check_destination(run, index, target))


def dest(blob: FakeBlob, sas: bool = False) -> SimpleNamespace:
    where = storage.parse_blob_url(URI + ("?sv=1&sig=secret" if sas else ""))
    credential = None if sas else {"account_name": "acct", "account_key": "k"}
    return SimpleNamespace(where=where, credential=credential, ours=False, blob=lambda: blob)


def test_no_uri_is_the_staging_account_and_is_not_checked(monkeypatch: pytest.MonkeyPatch, run: Any) -> None:
    assert check(monkeypatch, run, None, {"type": "VHD", "runOutputName": "vhd"}) is None


def test_an_existing_container_passes_whether_or_not_the_blob_exists(
    monkeypatch: pytest.MonkeyPatch, run: Any
) -> None:
    absent = FakeBlob(storage_error(ResourceNotFoundError, 404, "BlobNotFound"))
    assert check(monkeypatch, run, dest(absent)) is None and absent.reads == 1
    assert check(monkeypatch, run, dest(FakeBlob(None))) is None


def test_a_missing_container_fails_naming_the_field_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, run: Any
) -> None:
    result = check(
        monkeypatch, run, dest(FakeBlob(storage_error(ResourceNotFoundError, 404, "ContainerNotFound")))
    )
    assert result is not None and result.state == "failed"
    assert result.reason == "VhdDestinationNotFound"
    assert "distribute[1].uri" in result.message and "container images does not exist" in result.message
    assert "az storage container create -n images --account-name acct" in result.message


def test_a_missing_account_fails_naming_the_field(monkeypatch: pytest.MonkeyPatch, run: Any) -> None:
    missing = StepResult.fail(
        "VHD destination: no storage account acct in subscription s", "VhdDestinationNotFound"
    )
    result = check(monkeypatch, run, missing, index=0)
    assert result is not None and result.state == "failed" and result.reason == "VhdDestinationNotFound"
    assert result.message.startswith(f"distribute[0].uri ({URI}): VHD destination: no storage account acct")


def test_a_transient_lookup_error_waits(monkeypatch: pytest.MonkeyPatch, run: Any) -> None:
    waiting = StepResult.wait(2.0, "reading the keys of storage account acct failed: throttled")
    assert check(monkeypatch, run, waiting) == waiting


def test_the_sas_never_shows_in_the_message(monkeypatch: pytest.MonkeyPatch, run: Any) -> None:
    missing = StepResult.fail("uri is not a blob URL", "InvalidVhdUri")
    target = {"type": "VHD", "runOutputName": "vhd", "uri": URI + "?sv=1&sig=secret"}
    result = check(monkeypatch, run, missing, target)
    assert result is not None and "secret" not in result.message


def test_a_write_only_sas_that_cannot_read_is_left_to_the_copy(
    monkeypatch: pytest.MonkeyPatch, run: Any
) -> None:
    denied = FakeBlob(storage_error(HttpResponseError, 403, "AuthorizationPermissionMismatch"))
    assert check(monkeypatch, run, dest(denied, sas=True)) is None
    # With the account's key a 403 is a real refusal (a firewall): said before the build.
    result = check(monkeypatch, run, dest(denied))
    assert result is not None and result.reason == "VhdDestinationForbidden"
