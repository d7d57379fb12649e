"""One subscription's ARM request budget, shared by every build (ARM throttles per subscription).

ARM answers 429 with Retry-After when a subscription's reads (or writes) are spent. azure-core honours
it for the one request it retries, but the other builds' requests keep coming and are refused too: with
100 builds at once most reads were refused. `ArmBudget`, one per subscription in every client's
pipeline (a `Budget` per subscription, a `Budget.policy()` per client: an azure-core policy belongs to
one pipeline), paces requests of a kind (reads: GET/HEAD, writes: the rest) by what ARM says:

- a 429 saying the subscription's budget is spent (remaining 0, or not said) closes the kind until
  its Retry-After has passed: nothing of that kind is sent meanwhile;
- while ARM's `x-ms-ratelimit-remaining-subscription-{reads,writes}` is below `low`, requests of the
  kind go one at a time, so the refill is shared out instead of raced for by every build at once;
- when an answer says the budget has recovered, requests go concurrently again.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import AsyncHTTPPolicy

from kaib.azure.errors import retry_after_seconds

LOW = 50  # remaining requests below which a kind goes one at a time
DEFAULT_RETRY_AFTER = 1.0  # a 429 without Retry-After


class Gate:
    """Pacing of one kind of request."""

    def __init__(self) -> None:
        self.serial = False  # one request at a time
        self.not_before = 0.0  # monotonic time before which nothing is sent (a 429's Retry-After)
        self.lock = asyncio.Lock()
        self.refused = 0  # 429s seen

    async def wait(self) -> None:
        delay = self.not_before - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def observe(self, status: int, headers: Any, remaining_header: str, low: int) -> None:
        remaining = _int(headers.get(remaining_header)) if headers is not None else None
        if status == 429:
            self.refused += 1
            if remaining is None or remaining < 1:
                # The subscription's budget is spent; a 429 that says some remains is one resource
                # provider's own limit, which azure-core's retry of that request honours alone.
                self.serial = True
                wait = retry_after_seconds(headers) or DEFAULT_RETRY_AFTER
                self.not_before = max(self.not_before, time.monotonic() + wait)
            return
        # No header (not ARM, or an old API): nothing says the budget is low.
        self.serial = remaining is not None and remaining < low


class Budget:
    """The pacing state of one subscription, shared by the policies of all its clients."""

    def __init__(self, low: int = LOW) -> None:
        self.low = low
        self.gates = {"reads": Gate(), "writes": Gate()}

    def policy(self) -> ArmBudget:
        return ArmBudget(self)


class ArmBudget(AsyncHTTPPolicy[Any, Any]):
    """An azure-core policy (per retry: every attempt passes) pacing requests by their `Budget`."""

    def __init__(self, budget: Budget) -> None:
        super().__init__()
        self.budget = budget

    async def send(self, request: PipelineRequest[Any]) -> PipelineResponse[Any, Any]:
        kind = "reads" if request.http_request.method.upper() in ("GET", "HEAD") else "writes"
        gate = self.budget.gates[kind]
        if not gate.serial and gate.not_before <= time.monotonic():
            return await self._send(request, gate, kind)
        async with gate.lock:
            await gate.wait()
            return await self._send(request, gate, kind)

    async def _send(self, request: PipelineRequest[Any], gate: Gate, kind: str) -> PipelineResponse[Any, Any]:
        response: PipelineResponse[Any, Any] = await self.next.send(request)
        http = response.http_response
        header = f"x-ms-ratelimit-remaining-subscription-{kind}"
        gate.observe(http.status_code, http.headers, header, self.budget.low)
        return response


def _int(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None
