"""A reconcile never blocks on Azure (after CAPZ azure/services/async).

`reconcile` and `delete` each do at most one short round of work on one resource and say what
happened: done, waiting (come back after `requeue_after`, with the long-running operation's
continuation token to save in status), or failed (with an AzureFailure).

- A saved operation is resumed first. A token that no longer decodes, or whose operation Azure has
  forgotten, is dropped and the resource looked up again: Azure GET is the source of truth.
- Otherwise GET; `spec.parameters(existing)` says what to PUT (None: nothing to change); begin_*;
  wait at most `settings.wait`; if not done, return the token and Azure's Retry-After.
- Delete the same way; 404 means done.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.polling.base_polling import BadStatus

from kaib.azure.arm import Operation, ResourceOps, to_rest
from kaib.azure.errors import AzureFailure, classify
from kaib.azure.spec import RETRY_STATES, ResourceSpec, provisioning_state

log = logging.getLogger(__name__)

# provisioningState values that mean "someone's operation is still running on this resource".
BUSY_STATES = frozenset(
    {"Creating", "Updating", "Deleting", "Accepted", "Pending", "Provisioning", "Running"}
)


@dataclass(frozen=True)
class StepSettings:
    wait: float = 2.0  # longest in-process wait for one operation
    requeue: float = 5.0  # come back after this when Azure sends no Retry-After
    error_requeue: float = 10.0  # after a retryable error without Retry-After


@dataclass(frozen=True)
class SavedOperation:
    """One entry of status.operations: a long-running operation to resume."""

    resource_id: str
    method: str  # PUT | DELETE | POST
    token: str
    started_at: str
    action: str = ""
    retry_after: str | None = None  # RFC3339: not before this time (from Azure's Retry-After)

    def to_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "resourceId": self.resource_id,
            "method": self.method,
            "action": self.action,
            "token": self.token,
            "startedAt": self.started_at,
        }
        if self.retry_after is not None:
            out["retryAfter"] = self.retry_after
        return out

    @classmethod
    def from_status(cls, entry: Mapping[str, Any]) -> SavedOperation:
        return cls(
            resource_id=str(entry.get("resourceId", "")),
            method=str(entry.get("method", "")),
            token=str(entry.get("token", "")),
            started_at=str(entry.get("startedAt", "")),
            action=str(entry.get("action", "") or ""),
            retry_after=str(entry["retryAfter"]) if entry.get("retryAfter") else None,
        )


@dataclass(frozen=True)
class Outcome:
    state: Literal["done", "waiting", "failed"]
    resource: dict[str, Any] | None = None  # the resource when a PUT is done
    operation: SavedOperation | None = None  # to save when waiting on an LRO (None: drop any saved one)
    requeue_after: float | None = None
    failure: AzureFailure | None = None  # why it failed, or why it is retrying

    @property
    def done(self) -> bool:
        return self.state == "done"


def now_rfc3339(after: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=after)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _not_before(after: float) -> str:
    """RFC3339 with milliseconds: sub-second Retry-After values survive the status round trip."""
    return (datetime.now(UTC) + timedelta(seconds=after)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _too_early(saved: SavedOperation | None) -> float | None:
    """Seconds until a saved operation may be polled again (its Retry-After), or None when it may."""
    if saved is None or not saved.retry_after:
        return None
    try:
        when = datetime.fromisoformat(saved.retry_after.replace("Z", "+00:00"))
    except ValueError:
        return None
    left = (when - datetime.now(UTC)).total_seconds()
    return left if left > 0 else None


async def _not_yet(saved: SavedOperation, settings: StepSettings) -> Outcome | None:
    """Waiting when a saved operation's Retry-After has not passed (the wave woke for another
    resource, or the requeue came a moment early); a wait shorter than `settings.wait` is slept
    here, as a requeue would cost a round. None: it may be polled now."""
    wait = _too_early(saved)
    if wait is None:
        return None
    if wait > settings.wait:
        return Outcome("waiting", operation=saved, requeue_after=wait)
    await asyncio.sleep(wait)
    return None


async def reconcile(
    ops: ResourceOps, spec: ResourceSpec, saved: SavedOperation | None, settings: StepSettings
) -> Outcome:
    """Bring one resource to its spec without blocking: resume, or GET + PUT."""
    if saved is not None and saved.method == "PUT" and saved.token:
        if (early := await _not_yet(saved, settings)) is not None:
            return early
        resumed = await _resume(ops.begin_put(spec, None, saved.token), spec, "PUT", saved, settings)
        if resumed is not None:
            return resumed
    try:
        existing = await ops.get(spec)
    except Exception as exc:  # every Azure failure is classified, none escapes the step
        return _failed_or_retry(exc, settings)
    params = spec.parameters(existing)
    if params is None:
        assert existing is not None  # parameters() only returns None for an existing resource
        state = provisioning_state(existing)
        if state in RETRY_STATES:
            failure = AzureFailure(None, f"Provisioning{state}", f"{spec.type} {spec.name} is {state}", False)
            return Outcome("failed", resource=existing, failure=failure)
        if state in BUSY_STATES:
            # An operation whose token we lost (a crash between begin_* and the status write).
            return Outcome("waiting", resource=existing, requeue_after=settings.requeue)
        return Outcome("done", resource=existing)
    try:
        operation = await ops.begin_put(spec, params, None)
    except Exception as exc:
        return _failed_or_retry(exc, settings)
    return await _follow(operation, spec, "PUT", now_rfc3339(), settings)


async def delete(
    ops: ResourceOps, spec: ResourceSpec, saved: SavedOperation | None, settings: StepSettings
) -> Outcome:
    """Delete one resource without blocking; a missing resource is deleted."""
    if saved is not None and saved.method == "DELETE" and saved.token:
        if (early := await _not_yet(saved, settings)) is not None:
            return early
        resumed = await _resume(ops.begin_delete(spec, saved.token), spec, "DELETE", saved, settings)
        if resumed is not None:
            return resumed
    try:
        if await ops.get(spec) is None:
            return Outcome("done")
        operation = await ops.begin_delete(spec, None)
    except ResourceNotFoundError:
        return Outcome("done")
    except Exception as exc:
        return _failed_or_retry(exc, settings)
    return await _follow(operation, spec, "DELETE", now_rfc3339(), settings)


async def _resume(
    starting: Any, spec: ResourceSpec, method: str, saved: SavedOperation, settings: StepSettings
) -> Outcome | None:
    """Follow a saved operation; None when its token is useless and the caller must look again."""
    try:
        operation = await starting
    except Exception as exc:  # a token that no longer decodes: ValueError, KeyError, binascii...
        log.info("dropping the saved %s operation of %s: %s", method, spec.id, exc)
        return None
    outcome = await _follow(operation, spec, method, saved.started_at, settings, poll_first=True)
    if outcome.state == "failed" and outcome.failure is not None and outcome.failure.status == 404:
        if method == "DELETE":
            return Outcome("done")
        log.info("Azure forgot the %s operation of %s; looking the resource up again", method, spec.id)
        return None
    return outcome


async def _follow(
    operation: Operation,
    spec: ResourceSpec,
    method: str,
    started_at: str,
    settings: StepSettings,
    action_name: str = "",
    poll_first: bool = False,
) -> Outcome:
    """Poll `operation` as Azure asks (Retry-After), for at most `settings.wait` seconds.

    The polls are paced here rather than by the SDK's poller, so that none comes before Azure's
    Retry-After and the requeue is exactly the time left: a new operation waits before its first
    poll; a resumed one (`poll_first`) polls at once, since the requeue already waited.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.wait
    last_answer = loop.time()
    try:
        if poll_first and not operation.done():
            polled = await _poll(operation, spec, method, started_at, action_name, settings, poll_first)
            if polled is not None:
                return polled
            last_answer = loop.time()
        while not operation.done():
            delay = operation.retry_after() or settings.requeue
            due = last_answer + delay
            if due > deadline:
                return _waiting(operation, spec, method, started_at, action_name, max(due - loop.time(), 0.0))
            await asyncio.sleep(max(due - loop.time(), 0.0))
            polled = await _poll(operation, spec, method, started_at, action_name, settings, poll_first)
            if polled is not None:
                return polled
            last_answer = loop.time()
        result = await operation.result()
    except ResourceNotFoundError as exc:
        if method == "DELETE":
            return Outcome("done")
        return _failed_or_retry(exc, settings)
    except Exception as exc:
        if isinstance(exc.__cause__, BadStatus):  # the final GET was refused (429, 5xx), not the operation
            return _poll_failed(exc, operation, spec, method, started_at, action_name, settings)
        return _failed_or_retry(exc, settings)
    if method != "PUT":
        return Outcome("done")
    return Outcome("done", resource=to_rest(result))


async def _poll(
    operation: Operation,
    spec: ResourceSpec,
    method: str,
    started_at: str,
    action_name: str,
    settings: StepSettings,
    resumed: bool,
) -> Outcome | None:
    """One status poll. A poll that fails (throttled, 5xx, connection) is not the operation's failure:
    keep the token and come back after Retry-After. A 404 means Azure forgot the operation."""
    try:
        await operation.update()
    except Exception as exc:
        status = _poll_status(exc)
        if status == 404:
            if resumed:
                return Outcome("failed", failure=AzureFailure(404, "NotFound", str(exc), False))
            return Outcome("waiting", requeue_after=settings.requeue)  # look the resource up again
        return _poll_failed(exc, operation, spec, method, started_at, action_name, settings, status)
    return None


def _poll_failed(
    exc: BaseException,
    operation: Operation,
    spec: ResourceSpec,
    method: str,
    started_at: str,
    action_name: str,
    settings: StepSettings,
    status: int | None = None,
) -> Outcome:
    """Keep the token and come back after the refused answer's Retry-After (else error_requeue)."""
    failure = classify(exc)
    # azure-core's BadStatus carries no response, but the poller kept it: its Retry-After (a 429's).
    retry_after = failure.retry_after or operation.retry_after()
    code = failure.code
    if code == "BadStatus":
        code = "TooManyRequests" if status == 429 else f"HTTP{status}"
    failure = AzureFailure(failure.status or status, code, failure.message, True, retry_after)
    outcome = _waiting(
        operation, spec, method, started_at, action_name, retry_after or settings.error_requeue
    )
    return Outcome(
        "waiting", operation=outcome.operation, requeue_after=outcome.requeue_after, failure=failure
    )


def _poll_status(exc: BaseException) -> int | None:
    """The HTTP status of a failed poll; azure-core's BadStatus only says it in its message."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status
    match = re.search(r"status (\d{3})", str(exc))
    return int(match.group(1)) if match else None


def _waiting(
    operation: Operation, spec: ResourceSpec, method: str, started_at: str, action_name: str, requeue: float
) -> Outcome:
    token = operation.continuation_token()
    if not token:
        return Outcome("waiting", requeue_after=requeue)
    saved = SavedOperation(spec.id, method, token, started_at, action_name, retry_after=_not_before(requeue))
    return Outcome("waiting", operation=saved, requeue_after=requeue)


def _failed_or_retry(exc: BaseException, settings: StepSettings) -> Outcome:
    failure = classify(exc)
    if failure.retryable:
        return Outcome(
            "waiting", requeue_after=failure.retry_after or settings.error_requeue, failure=failure
        )
    if not isinstance(exc, HttpResponseError):
        log.exception("unexpected error in an Azure step", exc_info=exc)
    return Outcome("failed", failure=failure)


async def action(
    begin: Callable[[str | None], Awaitable[Operation]],
    spec: ResourceSpec,
    name: str,
    saved: SavedOperation | None,
    settings: StepSettings,
) -> Outcome:
    """A POST action (deallocate, ...) without blocking. The caller checks first whether it is needed:
    an action has no GET of its own, so its effect is read from the resource (e.g. the instance view).
    """
    if saved is not None and saved.method == "POST" and saved.action == name and saved.token:
        if (early := await _not_yet(saved, settings)) is not None:
            return early
        try:
            operation = await begin(saved.token)
        except Exception as exc:
            log.info("dropping the saved %s operation of %s: %s", name, spec.id, exc)
        else:
            outcome = await _follow(
                operation, spec, "POST", saved.started_at, settings, name, poll_first=True
            )
            if not (
                outcome.state == "failed" and outcome.failure is not None and outcome.failure.status == 404
            ):
                return outcome
    try:
        operation = await begin(None)
    except Exception as exc:
        return _failed_or_retry(exc, settings)
    return await _follow(operation, spec, "POST", now_rfc3339(), settings, name)
