"""kaib.azure.budget: one subscription's requests paced by ARM's 429s and remaining-budget headers."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from azure.core.pipeline import PipelineContext, PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import AsyncHTTPPolicy
from azure.core.rest import HttpRequest

from kaib.azure.budget import Budget

READS = "x-ms-ratelimit-remaining-subscription-reads"


class Answer:
    def __init__(self, status: int, headers: dict[str, str]) -> None:
        self.status_code, self.headers = status, headers


class FakeArm(AsyncHTTPPolicy[Any, Any]):
    """Answers from a script; records when each request arrived and how many were in flight."""

    def __init__(self, answers: list[tuple[int, dict[str, str]]], latency: float = 0.01) -> None:
        super().__init__()
        self.answers, self.latency = answers, latency
        self.sent: list[float] = []
        self.in_flight = self.most_in_flight = 0

    async def send(self, request: PipelineRequest[Any]) -> PipelineResponse[Any, Any]:
        self.sent.append(time.monotonic())
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(self.latency)
        self.in_flight -= 1
        status, headers = self.answers.pop(0) if self.answers else (200, {READS: "1000"})
        return PipelineResponse(request.http_request, Answer(status, headers), request.context)  # type: ignore[arg-type]


def request(method: str = "GET") -> PipelineRequest[Any]:
    return PipelineRequest(HttpRequest(method, "https://127.0.0.1/x"), PipelineContext(None))


def policy(budget: Budget, arm: FakeArm) -> Any:
    p = budget.policy()
    p.next = arm
    return p


def test_a_429_holds_every_client_of_the_subscription_until_its_retry_after() -> None:
    async def scenario() -> tuple[FakeArm, FakeArm, float]:
        budget = Budget()
        first = FakeArm([(429, {"Retry-After": "0.3"})])
        other = FakeArm([])  # another client (another service) of the same subscription
        start = time.monotonic()
        await policy(budget, first).send(request())
        await asyncio.gather(*(policy(budget, other).send(request()) for _ in range(3)))
        return first, other, start

    first, other, start = asyncio.run(scenario())
    assert len(first.sent) == 1
    assert all(t - start >= 0.29 for t in other.sent), "nothing sent before the 429's Retry-After"
    assert other.most_in_flight == 1, "after a 429, one at a time until the budget has recovered"


def test_a_low_budget_sends_one_at_a_time_and_a_recovered_one_concurrently() -> None:
    async def scenario() -> tuple[int, int]:
        budget = Budget(low=50)
        low = FakeArm([(200, {READS: "10"})] * 5)
        await policy(budget, low).send(request())  # says the budget is low
        await asyncio.gather(*(policy(budget, low).send(request()) for _ in range(4)))
        high = FakeArm([(200, {READS: "900"})] * 6)
        await policy(budget, high).send(request())  # says it has recovered
        await asyncio.gather(*(policy(budget, high).send(request()) for _ in range(5)))
        return low.most_in_flight, high.most_in_flight

    low, high = asyncio.run(scenario())
    assert low == 1
    assert high == 5


def test_reads_and_writes_are_paced_apart() -> None:
    async def scenario() -> float:
        budget = Budget()
        arm = FakeArm([(429, {"Retry-After": "5"})])
        await policy(budget, arm).send(request("GET"))
        start = time.monotonic()
        await policy(budget, arm).send(request("PUT"))  # writes have their own budget
        return time.monotonic() - start

    assert asyncio.run(scenario()) < 1.0


def test_a_providers_own_429_holds_nothing_else() -> None:
    async def scenario() -> float:
        budget = Budget()
        arm = FakeArm([(429, {"Retry-After": "5", READS: "700"})])  # the subscription has budget left
        await policy(budget, arm).send(request())
        start = time.monotonic()
        await asyncio.gather(*(policy(budget, arm).send(request()) for _ in range(3)))
        return time.monotonic() - start

    assert asyncio.run(scenario()) < 1.0
