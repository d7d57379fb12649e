"""A build's login Secret: made once, read from the apiserver once per operator process, dropped at
cleanup (steps.access_secret and Engine.access_secrets)."""

from __future__ import annotations

import asyncio
from typing import Any

from kaib.azure.clients import AzureClients
from kaib.controller import steps
from kaib.controller.buildstatus import BuildStatus
from kaib.controller.run_context import Engine, EngineSettings, Run


class SecretKube:
    """Secrets only, counting the reads."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], dict[str, str]] = {}
        self.reads = 0

    async def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        self.reads += 1
        return self.secrets.get((namespace, name))

    async def create_secret(self, namespace: str, name: str, data: dict[str, str], owner: Any = None) -> None:
        self.secrets.setdefault((namespace, name), dict(data))


def run_of(engine: Engine, uid: str) -> Run:
    build = {
        "apiVersion": "kaib.dev/v1alpha1",
        "kind": "ImageBuild",
        "metadata": {"name": "b1", "namespace": "ns", "uid": uid, "generation": 1},
        "spec": {"templateRef": {"name": "t"}},
    }
    return Run(engine, build, BuildStatus.of(build, "2026-01-01T00:00:00Z"))


def test_the_secret_is_made_once_and_read_once() -> None:
    kube = SecretKube()
    engine = Engine(AzureClients.from_env({}), kube, EngineSettings())  # type: ignore[arg-type]

    async def rounds() -> list[dict[str, str]]:
        return [await steps.access_secret(run_of(engine, "uid-1")) for _ in range(5)]

    seen = asyncio.run(rounds())
    assert kube.reads == 2  # missing, then the one just made
    assert len(kube.secrets) == 1 and all(s == seen[0] for s in seen)
    assert seen[0]["ssh-publickey"].startswith("ssh-ed25519 ")
    # Another build of the same name (deleted and made again): read from the apiserver, not the cache.
    asyncio.run(steps.access_secret(run_of(engine, "uid-2")))
    assert kube.reads == 3
