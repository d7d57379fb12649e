"""VHD distribution: the generalized build VM's OS disk, exported into a blob, as AIB does.

For each `distribute[]` target of type VHD, one short round at a time:
1. The destination blob (`uri`, else `vhds/<buildId>/<runOutputName>.vhd` in the staging storage
   account) carries metadata naming the build that copied into it. Ours with the copy done: the
   runOutput is Succeeded. Ours with the copy pending: come back later (Azure Storage copies).
2. Otherwise: grant read access to the OS disk (a long-running POST whose token is saved in status),
   and start a server-side copy from the SAS URL into the destination, with our metadata.
When every VHD is copied, revoke the access: the disk can then be deleted by cleanup (cleanup
revokes too, for a build that ends another way).

Resumable: the blob name is deterministic and its metadata says whose copy it is, so a restart never
starts a second copy. The SAS URL is a secret and is never written to status: a restart before the
copy started asks for access again (a second grant of an exported disk answers a SAS of the same
export). The VHD blob is the artifact: cleanup keeps it, except a copy that did not finish.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.storage.blob import BlobProperties
from azure.storage.blob.aio import BlobClient, ContainerClient

from kaib.azure import compute, storage
from kaib.azure import spec as t
from kaib.azure.arm import Arm, to_rest
from kaib.azure.async_step import action
from kaib.azure.spec import ResourceSpec, parse_resource_id
from kaib.azure.storage import BlobLocation
from kaib.controller.blobs import log_store
from kaib.controller.run_context import Run
from kaib.controller.stepresult import StepResult, azure_problem

log = logging.getLogger(__name__)
GRANT, REVOKE = "beginGetAccess", "endGetAccess"


def wanted(spec: Mapping[str, Any]) -> bool:
    return any(d.get("type") == "VHD" for d in spec.get("distribute") or [])


def os_disk(run: Run) -> ResourceSpec:
    ctx = run.ctx
    return ctx.spec(t.DISK, ctx.names.build_os_disk, {}, "buildvm")


@dataclass(frozen=True)
class Destination:
    where: BlobLocation
    credential: dict[str, str] | None  # shared key; None when the uri carries a SAS
    ours: bool  # the staging account: kaib creates the `vhds` container

    def blob(self) -> BlobClient:
        url = f"{self.where.url}?{self.where.sas}" if self.where.sas else self.where.url
        return BlobClient.from_blob_url(url, credential=self.credential)


async def distribute(run: Run, targets: Sequence[Mapping[str, Any]], outputs: dict[str, Any]) -> StepResult:
    """Copy each VHD target (recording its runOutput in `outputs`), then revoke the disk's access."""
    grant = _Grant(run)
    results = []
    for target in targets:
        name = str(target["runOutputName"])
        if (outputs.get(name) or {}).get("provisioningState") == "Succeeded":
            continue
        results.append(await _copy(run, target, outputs, grant))
    failed = [r for r in results if r.state == "failed"]
    if failed:
        return failed[0]
    waiting = [r for r in results if r.state == "waiting"]
    if waiting:
        return min(waiting, key=lambda r: r.requeue)
    return await revoke(run)


async def _copy(run: Run, target: Mapping[str, Any], outputs: dict[str, Any], grant: _Grant) -> StepResult:
    name = str(target["runOutputName"])
    found = await destination(run, target)
    if isinstance(found, StepResult):
        return found
    dest = found
    outputs[name] = {"runOutputName": name, "artifactUri": dest.where.url, "provisioningState": "Creating"}
    what = f"distribute {name}: copying the VHD to {dest.where.url}"
    try:
        async with dest.blob() as blob:
            props = await _properties(blob)
            if props is not None and _ours(props, run.build_id, name):
                copy = props.copy.status if props.copy else None
                if copy == "success":
                    outputs[name]["provisioningState"] = "Succeeded"
                    return StepResult.done()
                if copy == "pending":
                    return StepResult.wait(
                        run.settings.requeue, f"{what}: {props.copy.progress or 'started'}"
                    )
                log.info("build %s: %s ended %s; starting it again", run.build_id, what, copy)
            sas = await grant.sas()
            if isinstance(sas, StepResult):
                return sas
            if dest.ours:
                await _ensure_container(dest)
            metadata = storage.vhd_metadata(run.build_id, name, target.get("artifactTags") or {})
            await blob.start_copy_from_url(sas, metadata=metadata)
            props = await _properties(blob)
    except Exception as exc:
        return _storage_problem(run, exc, what)
    if props is not None and props.copy and props.copy.status == "success":
        outputs[name]["provisioningState"] = "Succeeded"
        return StepResult.done()
    return StepResult.wait(run.settings.requeue, f"{what}: started")


def _ours(props: BlobProperties, build_id: str, name: str) -> bool:
    meta = props.metadata or {}
    return meta.get(storage.META_BUILD_ID) == build_id and meta.get(storage.META_RUN_OUTPUT) == name


async def _properties(blob: BlobClient) -> BlobProperties | None:
    try:
        return await blob.get_blob_properties()
    except ResourceNotFoundError:
        return None


async def _ensure_container(dest: Destination) -> None:
    async with ContainerClient.from_container_url(
        dest.where.container_url, credential=dest.credential
    ) as container:
        try:
            await container.create_container()
        except HttpResponseError as exc:
            if exc.status_code != 409:  # 409: it exists
                raise


def _storage_problem(run: Run, exc: Exception, what: str) -> StepResult:
    """Blob errors answer XML with `error_code`, not ARM's JSON: say what to do about the usual ones."""
    code = str(getattr(exc, "error_code", "") or "")
    status = getattr(exc, "status_code", None)
    if code == "CannotVerifyCopySource":  # the disk's SAS no longer serves: ask for access again
        return StepResult.wait(run.settings.error_requeue, f"{what}: {code} (retrying with a new SAS)")
    if code == "ContainerNotFound":
        return StepResult.fail(
            f"{what} failed: {code}: the container does not exist; create it, or leave "
            "uri empty to use the staging storage account",
            reason="VhdDestinationNotFound",
        )
    if isinstance(exc, ClientAuthenticationError) or status == 403:
        return StepResult.fail(
            f"{what} failed: {code or 'AuthorizationFailed'}: not allowed to write the blob; give a "
            "SAS with create and write permissions in the uri, or let the operator list the account's keys",
            reason="VhdDestinationForbidden",
        )
    if isinstance(exc, HttpResponseError) and isinstance(status, int) and status < 500 and status != 429:
        return StepResult.fail(f"{what} failed: {code or status}: {exc.message}", reason=code or "Failed")
    return azure_problem(run, exc, what)


# -- where the VHD goes ---------------------------------------------------------------------------


async def destination(run: Run, target: Mapping[str, Any]) -> Destination | StepResult:
    name = str(target["runOutputName"])
    uri = str(target.get("uri") or "")
    try:
        if not uri:
            account = str((run.status.data.get("logs") or {}).get("storageAccount") or "")
            store = await run.log_store(account)
            where = storage.vhd_destination("", account, store.endpoint, run.build_id, name)
            return Destination(where, {"account_name": account, "account_key": store.key}, ours=True)
        where = storage.vhd_destination(uri, "", "", run.build_id, name)
    except ValueError as exc:
        return StepResult.fail(f"distribute {name}: uri {exc}; give a blob URL", reason="InvalidVhdUri")
    except Exception as exc:
        return azure_problem(run, exc, f"distribute {name}: reading the staging storage account")
    if where.sas:
        return Destination(where, None, ours=False)
    key = await _account_key(run, where.account)
    if isinstance(key, StepResult):
        return key
    return Destination(where, {"account_name": where.account, "account_key": key}, ours=False)


async def check_destination(run: Run, index: int, target: Mapping[str, Any]) -> StepResult | None:
    """Preflight of a VHD target's `uri`, reading only: its storage account is in the build's
    subscription with keys the operator may list (or the uri carries a SAS), and its container exists.
    None when it looks fine. An empty uri means the staging account, which does not exist yet."""
    uri = str(target.get("uri") or "")
    if not uri:
        return None
    field = f"distribute[{index}].uri"
    found = await destination(run, target)
    if isinstance(found, StepResult):
        if found.state != "failed":
            return found
        return StepResult.fail(f"{field} ({uri.split('?', 1)[0]}): {found.message}", found.reason)
    what = f"{field}: reading {found.where.url}"
    try:
        async with found.blob() as blob:
            await blob.get_blob_properties()
    except ResourceNotFoundError as exc:
        if str(getattr(exc, "error_code", "") or "") != "ContainerNotFound":
            return None  # BlobNotFound: the copy creates the blob
        return StepResult.fail(
            f"{field}: container {found.where.container} does not exist in storage account "
            f"{found.where.account}; create it (az storage container create -n {found.where.container} "
            f"--account-name {found.where.account}), or leave uri empty to use the staging storage account",
            reason="VhdDestinationNotFound",
        )
    except Exception as exc:
        if found.credential is None and getattr(exc, "status_code", None) == 403:
            return None  # a SAS may allow create and write but not read: the copy itself will tell
        return _storage_problem(run, exc, what)
    return None


async def _account_key(run: Run, account: str) -> str | StepResult:
    """The key of a user's storage account in the build's subscription (the operator may list keys)."""
    cache = f"{run.subscription_id}/*/{account}".lower()
    known = run.engine.log_stores.get(cache)
    if known is not None:
        return known.key
    clients = run.clients
    try:
        ids = await _account_ids(run)
        rid = next((i for i in ids if i.rsplit("/", 1)[-1].lower() == account.lower()), None)
        if rid is None:
            return StepResult.fail(
                f"VHD destination: no storage account {account} in subscription {run.subscription_id}; "
                "create it there, or put a SAS token (create and write) in the uri",
                reason="VhdDestinationNotFound",
            )
        store = await log_store(clients, parse_resource_id(rid)["resourceGroup"], account)
    except Exception as exc:
        return azure_problem(run, exc, f"reading the keys of storage account {account}")
    run.engine.log_stores[cache] = store
    return store.key


async def _account_ids(run: Run) -> list[str]:
    ids = []
    async for item in run.clients.storage.storage_accounts.list():
        body = to_rest(item) or {}
        ids.append(str(body.get("id") or ""))
    return ids


# -- disk access ----------------------------------------------------------------------------------


class _Grant:
    """Read access to the OS disk, asked for at most once per round, and only when a copy needs it."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.url: str | StepResult | None = None

    async def sas(self) -> str | StepResult:
        if self.url is None:
            self.url = await _grant(self.run)
        return self.url


def _seconds(run: Run) -> int:
    # The copy must finish before the SAS expires: the build's whole timeout, at least an hour.
    minutes = int(run.spec.get("buildTimeoutInMinutes") or 0) or 240
    return max(minutes, 60) * 60


async def _grant(run: Run) -> str | StepResult:
    disk = os_disk(run)
    key = f"{disk.id}/{GRANT}"
    kept: list[Any] = []
    begin = compute.DiskAccess(run.clients).grant(disk, _seconds(run), kept)
    outcome = await action(begin, disk, GRANT, run.status.saved_operation(key), run.settings)
    _save(run, key, outcome.operation)
    if outcome.state == "failed":
        assert outcome.failure is not None
        message = outcome.failure.describe(f"granting read access to the OS disk {disk.name}")
        return StepResult.fail(message, outcome.failure.code)
    if outcome.state == "waiting":
        why = outcome.failure.describe("granting access") if outcome.failure else "waiting for Azure"
        return StepResult.wait(outcome.requeue_after or run.settings.requeue, f"OS disk {disk.name}: {why}")
    sas = compute.access_sas(kept[0]) if kept else ""
    if not sas:
        return StepResult.wait(0.0, "asking again for the OS disk's SAS URL")
    return sas


def exported(disk: Mapping[str, Any] | None) -> bool:
    """A disk with read access granted (diskState ActiveSAS or ActiveSASFrozen): Azure refuses to
    delete it, or the VM whose OS disk it is, until the access is revoked."""
    state = str(((disk or {}).get("properties") or {}).get("diskState") or "")
    return state.startswith("ActiveSAS")


async def revoke(run: Run) -> StepResult:
    """Revoke the OS disk's access if it is exported (GET first: most builds never exported it)."""
    disk = os_disk(run)
    key = f"{disk.id}/{REVOKE}"
    saved = run.status.saved_operation(key)
    if saved is None:
        try:
            body = await Arm(run.clients).get(disk)
        except Exception as exc:
            return azure_problem(run, exc, f"reading the OS disk {disk.name}")
        if not exported(body):
            _save(run, f"{disk.id}/{GRANT}", None)
            return StepResult.done()
    begin = compute.DiskAccess(run.clients).revoke(disk)
    outcome = await action(begin, disk, REVOKE, saved, run.settings)
    _save(run, key, outcome.operation)
    if outcome.state == "failed":
        assert outcome.failure is not None
        message = outcome.failure.describe(f"revoking access to the OS disk {disk.name}")
        return StepResult.fail(message, outcome.failure.code)
    if outcome.state == "waiting":
        why = outcome.failure.describe("revoking access") if outcome.failure else "revoking access"
        return StepResult.wait(outcome.requeue_after or run.settings.requeue, f"OS disk {disk.name}: {why}")
    _save(run, f"{disk.id}/{GRANT}", None)
    return StepResult.done()


def _save(run: Run, key: str, operation: Any) -> None:
    # Saved under the disk id plus the action: the disk's own DELETE (cleanup) has the plain id.
    run.status.save_operation(key, dataclasses.replace(operation, resource_id=key) if operation else None)


async def before_cleanup(run: Run) -> StepResult:
    """Cleanup of a VHD build: discard copies that did not finish, then revoke the disk's access
    (an exported disk cannot be deleted). Never fails: cleanup retries until nothing is left."""
    if not wanted(run.spec):
        return StepResult.done()
    if run.status.step_state("distribute") in ("Running", "Failed", "Done"):
        outputs = {o.get("runOutputName"): o for o in run.status.data.get("runOutputs") or []}
        for target in run.spec.get("distribute") or []:
            name = str(target.get("runOutputName"))
            done = (outputs.get(name) or {}).get("provisioningState") == "Succeeded"
            if target.get("type") == "VHD" and not done:
                await _discard(run, target)
    result = await revoke(run)
    if result.state == "failed":
        return StepResult.wait(run.settings.error_requeue, result.message)
    return result


async def _discard(run: Run, target: Mapping[str, Any]) -> None:
    """Delete our unfinished copy (aborting it if pending): a partial VHD is no artifact."""
    found = await destination(run, target)
    if isinstance(found, StepResult):
        return
    try:
        async with found.blob() as blob:
            props = await _properties(blob)
            if props is None or not _ours(props, run.build_id, str(target["runOutputName"])):
                return
            if props.copy and props.copy.status == "success":
                return
            if props.copy and props.copy.status == "pending" and props.copy.id:
                await blob.abort_copy(props.copy.id)
            await blob.delete_blob()
    except Exception as exc:  # best effort: cleanup goes on, the log says what stayed
        log.info("build %s: cannot discard the unfinished VHD %s: %s", run.build_id, found.where.url, exc)
