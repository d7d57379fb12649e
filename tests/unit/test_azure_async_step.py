"""The non-blocking async step: begin / resume / done / bad token / delete / error classification."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from azure.core.rest._http_response_impl import HttpResponseImpl

from kaib.azure import spec as t
from kaib.azure.async_step import Outcome, SavedOperation, StepSettings, delete, reconcile
from kaib.azure.errors import classify, retry_after_seconds
from kaib.azure.spec import ResourceSpec

SUB = "00000000-0000-0000-0000-000000000001"
FAST = StepSettings(wait=0.05, requeue=3.0, error_requeue=7.0)
VNET = ResourceSpec(
    type=t.VNET, subscription_id=SUB, resource_group="rg", name="vnet-1", body={"location": "westus"}
)


def http_error(
    status: int, code: str, message: str = "boom", headers: dict[str, str] | None = None
) -> HttpResponseError:
    request = HttpRequest("PUT", "https://127.0.0.1/x")
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    response = HttpResponseImpl(
        request=request,
        internal_response=None,
        status_code=status,
        reason="x",
        content_type="application/json",
        headers=headers or {},
        stream_download_generator=None,
    )
    response._content = body
    cls = ResourceNotFoundError if status == 404 else HttpResponseError
    return cls(response=response)


class FakeOperation:
    """An LRO that is done after its first poll (`finishes`), or never; `retry_after` paces the polls."""

    def __init__(
        self,
        result: Any = None,
        *,
        finishes: bool = True,
        error: BaseException | None = None,
        token: str = "tok-1",
        retry_after: float | None = 0.01,
    ) -> None:
        self._result, self._finishes, self._error = result, finishes, error
        self._token, self._retry_after = token, retry_after
        self._ready = False
        self.polls = 0

    def done(self) -> bool:
        return self._ready

    async def update(self) -> None:
        self.polls += 1
        self._ready = self._finishes or self._error is not None

    async def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._result

    def continuation_token(self) -> str | None:
        return self._token

    def retry_after(self) -> float | None:
        return self._retry_after


class FakeOps:
    """ResourceOps with one resource slot and scripted operations; records every call."""

    def __init__(self, existing: dict[str, Any] | None = None) -> None:
        self.existing = existing
        self.calls: list[tuple[str, str | None]] = []
        self.put_op: FakeOperation | None = None
        self.delete_op: FakeOperation | None = None
        self.resume_error: BaseException | None = None
        self.get_error: BaseException | None = None
        self.begin_error: BaseException | None = None

    async def get(self, spec: ResourceSpec) -> dict[str, Any] | None:
        self.calls.append(("get", None))
        if self.get_error is not None:
            raise self.get_error
        return self.existing

    async def begin_put(
        self, spec: ResourceSpec, body: dict[str, Any] | None, token: str | None
    ) -> FakeOperation:
        self.calls.append(("put", token))
        if token is not None and self.resume_error is not None:
            raise self.resume_error
        if token is None and self.begin_error is not None:
            raise self.begin_error
        assert self.put_op is not None
        return self.put_op

    async def begin_delete(self, spec: ResourceSpec, token: str | None) -> FakeOperation:
        self.calls.append(("delete", token))
        if token is not None and self.resume_error is not None:
            raise self.resume_error
        if token is None and self.begin_error is not None:
            raise self.begin_error
        assert self.delete_op is not None
        return self.delete_op


def run(coro: Any) -> Outcome:
    result: Outcome = asyncio.run(coro)
    return result


def created(state: str = "Succeeded") -> dict[str, Any]:
    return {"name": "vnet-1", "properties": {"provisioningState": state}}


def test_missing_resource_is_put_and_finishes_within_the_wait() -> None:
    ops = FakeOps()
    ops.put_op = FakeOperation(created())
    outcome = run(reconcile(ops, VNET, None, FAST))
    assert outcome.state == "done"
    assert outcome.resource == created()
    assert ops.calls == [("get", None), ("put", None)]


def test_slow_put_returns_the_token_and_azure_retry_after() -> None:
    ops = FakeOps()
    ops.put_op = FakeOperation(finishes=False, token="tok-9", retry_after=4.0)
    assert ops.put_op is not None
    outcome = run(reconcile(ops, VNET, None, FAST))
    assert outcome.state == "waiting"
    assert outcome.operation is not None
    assert outcome.operation.token == "tok-9"
    assert outcome.operation.method == "PUT"
    assert outcome.operation.resource_id == VNET.id
    # requeued for the time left of Azure's Retry-After, counted from its answer; no poll before it
    assert outcome.requeue_after is not None and 3.9 < outcome.requeue_after <= 4.0
    assert ops.put_op.polls == 0


def test_slow_put_without_retry_after_uses_the_default_requeue() -> None:
    ops = FakeOps()
    ops.put_op = FakeOperation(finishes=False, retry_after=None)
    requeue = run(reconcile(ops, VNET, None, FAST)).requeue_after
    assert requeue is not None and FAST.requeue - 0.1 < requeue <= FAST.requeue


def test_saved_operation_is_resumed_without_get_or_new_put() -> None:
    ops = FakeOps()
    ops.put_op = FakeOperation(created())
    saved = SavedOperation(VNET.id, "PUT", "tok-1", "2026-01-01T00:00:00Z")
    outcome = run(reconcile(ops, VNET, saved, FAST))
    assert outcome.state == "done"
    assert ops.calls == [("put", "tok-1")]


def test_resumed_operation_still_running_keeps_its_start_time() -> None:
    ops = FakeOps()
    ops.put_op = FakeOperation(finishes=False, token="tok-1", retry_after=5.0)
    saved = SavedOperation(VNET.id, "PUT", "tok-1", "2026-01-01T00:00:00Z")
    outcome = run(reconcile(ops, VNET, saved, FAST))
    assert outcome.state == "waiting"
    assert ops.put_op.polls == 1, "a resumed operation is polled at once: the requeue already waited"
    assert outcome.operation is not None
    assert outcome.operation.started_at == "2026-01-01T00:00:00Z"


def test_bad_token_is_dropped_and_azure_is_asked_again() -> None:
    ops = FakeOps(existing=created())
    ops.resume_error = ValueError("cannot decode")
    saved = SavedOperation(VNET.id, "PUT", "garbage", "2026-01-01T00:00:00Z")
    outcome = run(reconcile(ops, VNET, saved, FAST))
    assert outcome.state == "done"
    assert outcome.operation is None
    assert ops.calls == [("put", "garbage"), ("get", None)]


def test_forgotten_operation_404_falls_back_to_get() -> None:
    ops = FakeOps(existing=None)
    ops.put_op = FakeOperation(error=http_error(404, "NotFound"))
    saved = SavedOperation(VNET.id, "PUT", "tok-old", "2026-01-01T00:00:00Z")
    ops_after = run(reconcile(ops, VNET, saved, FAST))
    # The resume failed with 404, then GET (missing) and a fresh PUT, which fails the same way here.
    assert ("get", None) in ops.calls and ("put", None) in ops.calls
    assert ops_after.state == "failed"


def test_existing_resource_in_good_state_needs_no_put() -> None:
    ops = FakeOps(existing=created())
    outcome = run(reconcile(ops, VNET, None, FAST))
    assert outcome.state == "done"
    assert ops.calls == [("get", None)]


def test_existing_resource_still_creating_is_waited_for_not_put_twice() -> None:
    # The operator died between begin_* and the status write: the resource exists, mid-creation.
    ops = FakeOps(existing=created("Creating"))
    outcome = run(reconcile(ops, VNET, None, FAST))
    assert outcome.state == "waiting"
    assert ops.calls == [("get", None)]


def test_failed_resource_is_put_again() -> None:
    ops = FakeOps(existing=created("Failed"))
    ops.put_op = FakeOperation(created())
    assert run(reconcile(ops, VNET, None, FAST)).state == "done"
    assert ("put", None) in ops.calls


def test_throttled_get_is_retried_after_retry_after() -> None:
    ops = FakeOps()
    ops.get_error = http_error(429, "TooManyRequests", headers={"Retry-After": "12"})
    outcome = run(reconcile(ops, VNET, None, FAST))
    assert outcome.state == "waiting"
    assert outcome.requeue_after == 12.0
    assert outcome.failure is not None and outcome.failure.code == "TooManyRequests"


def test_policy_denial_is_fatal_with_an_actionable_message() -> None:
    ops = FakeOps()
    ops.begin_error = http_error(403, "RequestDisallowedByPolicy", "denied by policy 'no-vnets'")
    outcome = run(reconcile(ops, VNET, None, FAST))
    assert outcome.state == "failed"
    assert outcome.failure is not None
    message = outcome.failure.describe("creating virtual network vnet-1")
    assert "RequestDisallowedByPolicy" in message and "no-vnets" in message and "policy" in message


def test_failed_lro_with_quota_error_is_fatal() -> None:
    ops = FakeOps()
    ops.put_op = FakeOperation(error=http_error(200, "QuotaExceeded", "cores quota"))
    outcome = run(reconcile(ops, VNET, None, FAST))
    assert outcome.state == "failed"
    assert outcome.failure is not None and outcome.failure.code == "QuotaExceeded"


def test_delete_of_missing_resource_is_done_without_a_call() -> None:
    ops = FakeOps(existing=None)
    assert run(delete(ops, VNET, None, FAST)).state == "done"
    assert ops.calls == [("get", None)]


def test_delete_slow_then_resumed_to_done() -> None:
    ops = FakeOps(existing=created())
    ops.delete_op = FakeOperation(finishes=False, token="del-1", retry_after=5.0)
    first = run(delete(ops, VNET, None, FAST))
    assert first.state == "waiting"
    assert first.operation is not None and first.operation.method == "DELETE"
    ops.delete_op = FakeOperation(None)
    assert first.operation.retry_after is not None  # not before Azure's Retry-After...
    later = dataclasses.replace(first.operation, retry_after=None)  # ...which has passed
    second = run(delete(ops, VNET, later, FAST))
    assert second.state == "done"
    assert ops.calls[-1] == ("delete", "del-1")


def test_delete_404_while_polling_is_done() -> None:
    ops = FakeOps(existing=created())
    ops.delete_op = FakeOperation(error=http_error(404, "NotFound"))
    assert run(delete(ops, VNET, None, FAST)).state == "done"


def test_delete_in_use_is_retried_not_fatal() -> None:
    ops = FakeOps(existing=created())
    ops.begin_error = http_error(400, "InUseNetworkSecurityGroupCannotBeDeleted")
    outcome = run(delete(ops, VNET, None, FAST))
    assert outcome.state == "waiting"
    assert outcome.requeue_after == FAST.error_requeue


def test_saved_operation_round_trips_through_status() -> None:
    saved = SavedOperation("/x", "DELETE", "tok", "2026-01-01T00:00:00Z", retry_after="2026-01-01T00:00:03Z")
    assert SavedOperation.from_status(saved.to_status()) == saved


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (429, "TooManyRequests", True),
        (500, "InternalServerError", True),
        (503, "ServiceUnavailable", True),
        (409, "AnotherOperationInProgress", True),
        (400, "InUseSubnetCannotBeDeleted", True),
        (400, "NicInUseWithPrivateEndpoint", True),
        (403, "RequestDisallowedByPolicy", False),
        (403, "AuthorizationFailed", False),
        (409, "QuotaExceeded", False),
        (409, "OperationNotAllowed", False),
        (409, "MissingSubscriptionRegistration", False),
        (400, "InvalidTemplateDeployment", False),
        (400, "InvalidParameter", False),
        (400, "SomeValidationError", False),
    ],
)
def test_classification(status: int, code: str, retryable: bool) -> None:
    failure = classify(http_error(status, code))
    assert failure.code == code
    assert failure.retryable is retryable


def test_retry_after_headers() -> None:
    assert retry_after_seconds({"Retry-After": "5"}) == 5.0
    assert retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    assert retry_after_seconds({"Retry-After": "0"}) is None
    assert retry_after_seconds({}) is None


def test_a_saved_operation_is_not_polled_before_its_retry_after() -> None:
    from datetime import UTC, datetime, timedelta

    later = (datetime.now(UTC) + timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    ops = FakeOps()
    saved = SavedOperation(VNET.id, "PUT", "tok-1", "2026-01-01T00:00:00Z", retry_after=later)
    outcome = run(reconcile(ops, VNET, saved, FAST))
    assert outcome.state == "waiting" and outcome.operation == saved
    assert outcome.requeue_after is not None and 29 < outcome.requeue_after <= 30
    assert ops.calls == [], "woken early for another resource: no request at all"
    past = SavedOperation(
        VNET.id, "PUT", "tok-1", "2026-01-01T00:00:00Z", retry_after="2026-01-01T00:00:01.500Z"
    )
    ops.put_op = FakeOperation(created())
    assert run(reconcile(ops, VNET, past, FAST)).state == "done"
    assert ops.calls == [("put", "tok-1")]


def test_a_throttled_poll_keeps_the_operation_and_waits() -> None:
    from azure.core.polling.base_polling import BadStatus

    class ThrottledPoll(FakeOperation):
        async def update(self) -> None:
            raise BadStatus("Invalid return status 429 for 'GET' operation")

    ops = FakeOps()
    ops.put_op = ThrottledPoll(finishes=False, token="tok-7", retry_after=None)
    saved = SavedOperation(VNET.id, "PUT", "tok-7", "2026-01-01T00:00:00Z")
    outcome = run(reconcile(ops, VNET, saved, FAST))
    assert outcome.state == "waiting", outcome
    assert outcome.operation is not None and outcome.operation.token == "tok-7"
    assert outcome.requeue_after == FAST.error_requeue
    assert outcome.failure is not None and outcome.failure.retryable
    assert outcome.failure.code == "TooManyRequests" and outcome.failure.status == 429

    # The refused answer's Retry-After (kept by the poller: BadStatus has no response) paces the retry.
    ops.put_op = ThrottledPoll(finishes=False, token="tok-7", retry_after=1.5)
    outcome = run(reconcile(ops, VNET, saved, FAST))
    assert outcome.state == "waiting" and outcome.requeue_after is not None
    assert 1.4 < outcome.requeue_after <= 1.5
    assert outcome.operation is not None and outcome.operation.retry_after is not None

    class ForgottenPoll(FakeOperation):
        async def update(self) -> None:
            raise BadStatus("Invalid return status 404 for 'GET' operation")

    ops = FakeOps(existing=created())
    ops.put_op = ForgottenPoll(finishes=False)
    assert run(reconcile(ops, VNET, saved, FAST)).state == "done"  # dropped, then GET: it exists


def test_a_refused_final_get_keeps_the_operation() -> None:
    from azure.core.polling.base_polling import BadStatus

    refused = http_error(429, "TooManyRequests", headers={"Retry-After": "2"})
    refused.__cause__ = BadStatus("Invalid return status 429 for 'GET' operation")
    ops = FakeOps()
    ops.put_op = FakeOperation(error=refused, token="tok-3")
    saved = SavedOperation(VNET.id, "PUT", "tok-3", "2026-01-01T00:00:00Z")
    outcome = run(reconcile(ops, VNET, saved, FAST))
    assert outcome.state == "waiting", outcome
    assert outcome.operation is not None and outcome.operation.token == "tok-3"
    assert outcome.requeue_after is not None and 1.9 < outcome.requeue_after <= 2.0

    # An operation that itself failed with a retryable code is dropped: resuming it would fail again.
    ops.put_op = FakeOperation(error=http_error(500, "InternalServerError"), token="tok-3")
    outcome = run(reconcile(ops, VNET, saved, FAST))
    assert outcome.state == "waiting" and outcome.operation is None


def test_a_retry_after_shorter_than_the_wait_is_slept_then_polled_never_before() -> None:
    from datetime import UTC, datetime, timedelta

    when = datetime.now(UTC) + timedelta(seconds=0.03)
    saved = SavedOperation(
        VNET.id, "PUT", "tok-1", "2026-01-01T00:00:00Z",
        retry_after=when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
    )  # fmt: skip
    polled_at: list[datetime] = []

    class Stamped(FakeOperation):
        async def update(self) -> None:
            polled_at.append(datetime.now(UTC))
            await super().update()

    ops = FakeOps()
    ops.put_op = Stamped(created())
    outcome = run(reconcile(ops, VNET, saved, StepSettings(wait=1.0, requeue=3.0, error_requeue=7.0)))
    assert outcome.state == "done"
    assert len(polled_at) == 1 and polled_at[0] >= when.replace(microsecond=when.microsecond // 1000 * 1000)
