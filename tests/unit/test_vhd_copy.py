"""The VHD copy's decisions against a fake blob: a copy is started only when the destination holds no
copy of this build, a pending copy is waited for (never restarted), access is revoked only when
every VHD is copied. Azurite copies at once, so the pending path is only reachable here."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError

from kaib.azure import storage
from kaib.azure.async_step import StepSettings
from kaib.controller import vhd
from kaib.controller.stepresult import StepResult

BUILD = "abc123def0"
TARGET = {"type": "VHD", "runOutputName": "vhd", "artifactTags": {"team": "img"}}
WHERE = storage.BlobLocation("acct", "https://acct.blob.core.windows.net/", "vhds", f"{BUILD}/vhd.vhd")


def props(status: str | None, build: str = BUILD, output: str = "vhd") -> SimpleNamespace:
    meta = {storage.META_BUILD_ID: build, storage.META_RUN_OUTPUT: output}
    return SimpleNamespace(metadata=meta, copy=SimpleNamespace(status=status, progress="5/10", id="c1"))


class FakeBlob:
    def __init__(self, existing: SimpleNamespace | None, after_copy: str = "pending") -> None:
        self.props, self.after_copy = existing, after_copy
        self.copies: list[tuple[str, dict[str, str]]] = []

    async def __aenter__(self) -> FakeBlob:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def get_blob_properties(self) -> SimpleNamespace:
        if self.props is None:
            raise ResourceNotFoundError("BlobNotFound")
        return self.props

    async def start_copy_from_url(self, url: str, metadata: dict[str, str]) -> None:
        self.copies.append((url, metadata))
        self.props = SimpleNamespace(
            metadata=metadata, copy=SimpleNamespace(status=self.after_copy, progress="0/10")
        )


class FakeGrant:
    def __init__(self, answer: str | StepResult = "https://md/abcd?sig=1") -> None:
        self.answer, self.asked = answer, 0

    async def sas(self) -> str | StepResult:
        self.asked += 1
        return self.answer


@pytest.fixture
def run() -> Any:
    return SimpleNamespace(build_id=BUILD, settings=StepSettings(wait=0.1, requeue=0.5, error_requeue=2.0))


def copy(
    monkeypatch: pytest.MonkeyPatch, run: Any, blob: FakeBlob, grant: FakeGrant
) -> tuple[StepResult, dict[str, Any]]:
    dest = SimpleNamespace(where=WHERE, ours=False, credential=None, blob=lambda: blob)

    async def destination(_run: Any, _target: Any) -> Any:
        return dest

    monkeypatch.setattr(vhd, "destination", destination)
    outputs: dict[str, Any] = {}
    result = asyncio.run(vhd._copy(run, TARGET, outputs, grant))
    return result, outputs


def test_no_blob_yet_asks_for_access_and_starts_one_copy(monkeypatch: pytest.MonkeyPatch, run: Any) -> None:
    blob, grant = FakeBlob(None), FakeGrant()
    result, outputs = copy(monkeypatch, run, blob, grant)
    assert result.state == "waiting" and grant.asked == 1
    ((url, metadata),) = blob.copies
    assert url == "https://md/abcd?sig=1"
    assert metadata == {"team": "img", storage.META_BUILD_ID: BUILD, storage.META_RUN_OUTPUT: "vhd"}
    assert outputs["vhd"] == {
        "runOutputName": "vhd",
        "artifactUri": WHERE.url,
        "provisioningState": "Creating",
    }


def test_a_copy_that_finishes_at_once_is_succeeded(monkeypatch: pytest.MonkeyPatch, run: Any) -> None:
    result, outputs = copy(monkeypatch, run, FakeBlob(None, after_copy="success"), FakeGrant())
    assert result.state == "done" and outputs["vhd"]["provisioningState"] == "Succeeded"


def test_our_pending_copy_is_waited_for_never_started_again(
    monkeypatch: pytest.MonkeyPatch, run: Any
) -> None:
    blob, grant = FakeBlob(props("pending")), FakeGrant()
    result, _ = copy(monkeypatch, run, blob, grant)
    assert result.state == "waiting" and "5/10" in result.message
    assert blob.copies == [] and grant.asked == 0  # a restart mid-copy changes nothing


def test_our_finished_copy_is_the_artifact(monkeypatch: pytest.MonkeyPatch, run: Any) -> None:
    blob, grant = FakeBlob(props("success")), FakeGrant()
    result, outputs = copy(monkeypatch, run, blob, grant)
    assert result.state == "done" and outputs["vhd"]["provisioningState"] == "Succeeded"
    assert blob.copies == [] and grant.asked == 0


@pytest.mark.parametrize(
    "existing",
    [
        props("success", build="otherbuild"),
        props("success", output="other"),
        props("failed"),
        props("aborted"),
    ],
)
def test_a_foreign_or_failed_blob_is_copied_over(
    monkeypatch: pytest.MonkeyPatch, run: Any, existing: SimpleNamespace
) -> None:
    blob = FakeBlob(existing)
    result, _ = copy(monkeypatch, run, blob, FakeGrant())
    assert result.state == "waiting" and len(blob.copies) == 1


def test_no_copy_while_access_is_being_granted(monkeypatch: pytest.MonkeyPatch, run: Any) -> None:
    blob = FakeBlob(None)
    result, _ = copy(monkeypatch, run, blob, FakeGrant(StepResult.wait(1.5, "granting")))
    assert result.state == "waiting" and result.requeue == 1.5 and blob.copies == []


def test_a_container_deleted_during_the_build_fails_the_copy_clearly(
    monkeypatch: pytest.MonkeyPatch, run: Any
) -> None:
    """Preflight saw the container; if it is gone by distribution, the copy says so (not retried)."""

    class GoneContainer(FakeBlob):
        async def start_copy_from_url(self, url: str, metadata: dict[str, str]) -> None:
            exc = ResourceNotFoundError("ContainerNotFound")
            exc.error_code = "ContainerNotFound"  # type: ignore[attr-defined]  # as azure-storage-blob sets it
            raise exc

    result, _ = copy(monkeypatch, run, GoneContainer(None), FakeGrant())
    assert result.state == "failed" and result.reason == "VhdDestinationNotFound"
    assert "ContainerNotFound" in result.message and "create it" in result.message


def test_access_is_revoked_only_when_every_vhd_is_copied(monkeypatch: pytest.MonkeyPatch, run: Any) -> None:
    revoked: list[bool] = []
    answers = {"a": StepResult.done(), "b": StepResult.wait(0.5, "copying")}

    async def fake_copy(_run: Any, target: Any, outputs: Any, _grant: Any) -> StepResult:
        return answers[target["runOutputName"]]

    async def fake_revoke(_run: Any) -> StepResult:
        revoked.append(True)
        return StepResult.done()

    monkeypatch.setattr(vhd, "_copy", fake_copy)
    monkeypatch.setattr(vhd, "revoke", fake_revoke)
    targets = [{"runOutputName": "a"}, {"runOutputName": "b"}]
    assert asyncio.run(vhd.distribute(run, targets, {})).state == "waiting" and revoked == []
    answers["b"] = StepResult.done()
    assert asyncio.run(vhd.distribute(run, targets, {})).state == "done" and revoked == [True]
    answers["b"] = StepResult.fail("no", "X")
    assert asyncio.run(vhd.distribute(run, targets, {})).state == "failed" and revoked == [True]
