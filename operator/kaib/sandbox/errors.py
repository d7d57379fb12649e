"""ARM's error answer: `{"error": {code, message, target?, details[], additionalInfo[]}}` with a status."""

from __future__ import annotations

from typing import Any


class ArmError(Exception):
    """Raised anywhere in the sandbox; the server turns it into ARM's error response."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        target: str | None = None,
        additional_info: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.target = target
        self.additional_info = additional_info or []
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        return {"error": self.error()}

    def error(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "details": []}
        if self.target:
            error["target"] = self.target
        if self.additional_info:
            error["additionalInfo"] = self.additional_info
        return error


def not_found(type_name: str, name: str, group: str) -> ArmError:
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource '{type_name}/{name}' under resource group '{group}' was not found. "
        "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


def group_not_found(group: str) -> ArmError:
    return ArmError(404, "ResourceGroupNotFound", f"Resource group '{group}' could not be found.")


def bad_request(code: str, message: str) -> ArmError:
    return ArmError(400, code, message)
