"""Long-running operations as ARM runs them: each has an id, answers its Azure-AsyncOperation URL
(`.../locations/{loc}/operations/{id}`: InProgress, then Succeeded, Failed or Canceled with ARM's
error) and its Location URL (`.../operationresults/{id}`: 202 while running, then 200 with the
result, or the error). `retry-after-ms` tells the SDK when to poll again: sub-second in tests."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .answer import Answer
from .errors import ArmError

log = logging.getLogger(__name__)
MAX_OPERATIONS = 50000  # finished ones beyond this are forgotten, oldest first


@dataclass
class Operation:
    id: str
    namespace: str
    location: str
    resource_id: str
    started: float
    ends: float  # expected end while running, real end after
    status: str = "InProgress"
    error: ArmError | None = None
    result: Any = None


class Operations:
    def __init__(self) -> None:
        self.by_id: dict[str, Operation] = {}
        self.base_url = ""  # https://127.0.0.1:PORT, as the caller reached us
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(
        self,
        resource_id: str,
        namespace: str,
        location: str,
        seconds: float,
        finish: Callable[[], Awaitable[Any]],
        failed: Callable[[ArmError], None] | None,
    ) -> Operation:
        """Wait `seconds`, then `finish()` (its return value is the result); an ArmError fails it."""
        now = time.time()
        op_id = f"{resource_tag(resource_id)}{str(uuid.uuid4())[8:]}"
        op = Operation(op_id, namespace, location, resource_id, now, now + seconds)

        async def run() -> None:
            try:
                if seconds > 0:
                    await asyncio.sleep(seconds)
                op.result = await finish()
                op.status = "Succeeded"
            except ArmError as error:
                op.status, op.error = "Failed", error
                if failed is not None:
                    failed(error)
            except asyncio.CancelledError:
                op.status = "Canceled"
                raise
            except Exception as exc:  # a bug must show as a failed operation, not hang the caller
                log.exception("operation %s on %s failed", op.id, op.resource_id)
                op.status, op.error = "Failed", ArmError(500, "InternalServerError", f"sandbox: {exc}")
                if failed is not None:
                    failed(op.error)
            finally:
                op.ends = time.time()

        self._trim()
        self.by_id[op.id] = op
        self.spawn(run())
        return op

    def get(self, op_id: str) -> Operation | None:
        return self.by_id.get(op_id)

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def background(self, start: Callable[[], Awaitable[None]]) -> None:
        """Run a hook call nobody waits for; its failure is logged."""
        self.spawn(_quietly(start))

    async def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _trim(self) -> None:
        if len(self.by_id) < MAX_OPERATIONS:
            return
        done = [k for k, o in self.by_id.items() if o.status != "InProgress"]
        for k in done[: len(done) // 2]:
            del self.by_id[k]

    # What callers see ---------------------------------------------------------------------------
    def headers(self, op: Operation, api_version: str, location: bool) -> dict[str, str]:
        sub = op.resource_id.strip("/").split("/")[1]
        base = f"{self.base_url}/subscriptions/{sub}/providers/{op.namespace}/locations/{op.location}"
        query = f"?api-version={api_version or '2024-01-01'}"
        headers = {"Azure-AsyncOperation": f"{base}/operations/{op.id}{query}", **self.retry_hint(op)}
        if location:
            headers["Location"] = f"{base}/operationresults/{op.id}{query}"
        return headers

    def location_headers(self, op: Operation, api_version: str) -> dict[str, str]:
        """Location only, as resource-group deletes answer."""
        return {"Location": self.headers(op, api_version, True)["Location"], **self.retry_hint(op)}

    @staticmethod
    def retry_hint(op: Operation) -> dict[str, str]:
        # Sub-second polling in tests; never more than 10 s between polls in real-time mode.
        remaining = int(max(0.02, min(10.0, op.ends - time.time() + 0.01)) * 1000)
        return {"retry-after-ms": str(remaining), "x-ms-retry-after-ms": str(remaining)}

    def status(self, op_id: str) -> Answer:
        op = self._require(op_id)
        body: dict[str, Any] = {"id": op.id, "name": op.id, "status": op.status}
        body["startTime"] = _iso(op.started)
        if op.status != "InProgress":
            body["endTime"] = _iso(op.ends)
        if op.error is not None:
            body["error"] = op.error.error()
        return Answer(200, body, self.retry_hint(op) if op.status == "InProgress" else {})

    def result(self, op_id: str, api_version: str) -> Answer:
        op = self._require(op_id)
        if op.status == "InProgress":
            return Answer(202, None, self.location_headers(op, api_version))
        if op.error is not None:
            raise op.error
        return Answer(200, op.result)

    def _require(self, op_id: str) -> Operation:
        op = self.by_id.get(op_id)
        if op is None:
            raise ArmError(404, "OperationNotFound", f"The operation '{op_id}' was not found.")
        return op

    # Persistence: nothing runs across a restart, so what was running is taken as done.
    def dump(self) -> list[dict[str, Any]]:
        out = []
        for op in self.by_id.values():
            error = {"status": op.error.status, **op.error.error()} if op.error else None
            out.append({"id": op.id, "namespace": op.namespace, "location": op.location,
                        "resource_id": op.resource_id, "started": op.started, "ends": op.ends,
                        "status": op.status, "result": op.result, "error": error})  # fmt: skip
        return out

    def load(self, items: list[dict[str, Any]]) -> None:
        for o in items:
            op = Operation(o["id"], o["namespace"], o["location"], o["resource_id"], o["started"], o["ends"])
            op.status = "Succeeded" if o["status"] == "InProgress" else o["status"]
            op.result = o.get("result")
            if o.get("error"):
                e = o["error"]
                op.error = ArmError(int(e.get("status", 500)), str(e.get("code")), str(e.get("message")))
            self.by_id[op.id] = op


def resource_tag(resource_id: str) -> str:
    """An operation id's first group: 8 hex digits of its resource id (case-insensitive, as ARM ids)."""
    return f"{zlib.crc32(resource_id.rstrip('/').lower().encode()):08x}"


async def _quietly(start: Callable[[], Awaitable[None]]) -> None:
    # Takes a factory, not a coroutine: a task cancelled before it runs leaves nothing un-awaited.
    try:
        await start()
    except Exception:
        log.exception("hook failed")


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e6):06d}Z"
