"""ARM errors classified as retryable or fatal (after ASO's error_classifier).

Retryable errors come back later on their own (throttling, server trouble, a conflicting operation,
a resource still in use during cleanup). Fatal ones need a human: the message says what failed, the
ARM code, and what to do.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import HttpResponseError

RETRYABLE_CODES = frozenset(
    {
        "TooManyRequests",
        "AnotherOperationInProgress",
        "OperationPreempted",
        "RetryableError",
        "InternalServerError",
        "ServiceUnavailable",
        "GatewayTimeout",
        "InternalError",
        "NicInUseWithPrivateEndpoint",
        "ResourceGroupBeingDeleted",
        "Conflict",
    }
)

# What to do about the fatal errors users hit most (aib-inventory.md section 4).
HINTS: dict[str, str] = {
    "RequestDisallowedByPolicy": "an Azure Policy denies this resource; exempt the staging resource group "
    "or change the policy assignment",
    "AuthorizationFailed": "the operator's identity lacks a role assignment on this scope; grant "
    "Contributor on the staging resource group (see docs/operations.md)",
    "QuotaExceeded": "the subscription's quota is exhausted; request more quota or use a smaller size",
    "OperationNotAllowed": "the request exceeds a limit (often a core quota); request more quota or "
    "use a smaller vmSize",
    "MissingSubscriptionRegistration": "register the resource provider: az provider register -n <namespace>",
    "InvalidTemplateDeployment": "Azure refused the deployment (often a policy); see the details above",
    "SubnetMissingRequiredDelegation": "delegate the subnet to Microsoft.ContainerInstance/containerGroups",
    "InvalidParameter": "a parameter derived from the template is not accepted; fix the ImageTemplate",
    "InvalidRequestFormat": "a parameter derived from the template is not accepted; fix the ImageTemplate",
    "LinkedAuthorizationFailed": "the identity cannot use a referenced resource (subnet, identity, image); "
    "grant it access there",
}


@dataclass(frozen=True)
class AzureFailure:
    status: int | None
    code: str
    message: str
    retryable: bool
    retry_after: float | None = None

    def describe(self, what: str) -> str:
        """An actionable one-liner: what failed, the ARM code and message, what to do."""
        text = f"{what} failed: {self.code}: {self.message}"
        hint = HINTS.get(self.code)
        if hint:
            text += f" (what to do: {hint})"
        elif self.retryable:
            text += " (retrying)"
        return text


def is_retryable(status: int | None, code: str) -> bool:
    if code in RETRYABLE_CODES or code.startswith("InUse"):
        return True
    if code in HINTS:
        return False
    if status is None:
        return True  # connection errors: the network or the endpoint will come back
    return status == 429 or status >= 500 or status == 408


def classify(exc: BaseException) -> AzureFailure:
    """Turns any exception of an Azure call into an AzureFailure."""
    if isinstance(exc, HttpResponseError):
        status = exc.status_code
        code, message = _code_and_message(exc)
        headers = getattr(exc.response, "headers", None)
        retry_after = retry_after_seconds(headers)
        return AzureFailure(status, code, message, is_retryable(status, code), retry_after)
    if isinstance(exc, (OSError, TimeoutError)) or type(exc).__name__ in (
        "ServiceRequestError",
        "ClientError",
    ):
        return AzureFailure(None, type(exc).__name__, str(exc) or repr(exc), True)
    return AzureFailure(None, type(exc).__name__, str(exc) or repr(exc), False)


def _code_and_message(exc: HttpResponseError) -> tuple[str, str]:
    if exc.error is not None and exc.error.code:
        return str(exc.error.code), str(exc.error.message or exc.message)
    body = _json_body(exc)
    error = body.get("error") if isinstance(body.get("error"), Mapping) else body
    code = str(error.get("code") or "") if isinstance(error, Mapping) else ""
    message = str(error.get("message") or "") if isinstance(error, Mapping) else ""
    if not code:
        code = {429: "TooManyRequests", 404: "NotFound"}.get(exc.status_code or 0, f"HTTP{exc.status_code}")
    return code, message or str(exc.reason or exc.message)


def _json_body(exc: HttpResponseError) -> Mapping[str, Any]:
    if exc.response is None:
        return {}
    try:
        body = json.loads(exc.response.text())
    except (ValueError, TypeError, AttributeError):
        return {}
    return body if isinstance(body, Mapping) else {}


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Retry-After (seconds), else retry-after-ms / x-ms-retry-after-ms; None when absent or zero."""
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("x-ms-retry-after-ms", 0.001), ("Retry-After", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue  # an HTTP date: rare for ARM, treat as absent
        if seconds > 0:
            return seconds
    return None
