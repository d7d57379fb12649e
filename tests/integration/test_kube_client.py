"""kaib.controller.kube against the real kube-apiserver: reads, writes, the status subresource, the
apiserver's own error messages, and a token fetched again after a 401."""

from __future__ import annotations

import asyncio
import json
import stat
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from kaib.controller.kube import BUILDS, GROUP, VERSION, Kube, KubeApiError
from tests.fixtures.controlplane import Kube as Cluster


def run(cluster: Cluster, body: Callable[[Kube], Awaitable[Any]], kubeconfig: str | None = None) -> Any:
    async def main() -> Any:
        kube = Kube.from_kubeconfig(kubeconfig or cluster.kubeconfig)
        try:
            return await body(kube)
        finally:
            await kube.close()

    return asyncio.run(main())


def build(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ImageBuild",
        "metadata": {"name": name},
        "spec": {"templateRef": {"name": "t"}},
    }


def test_custom_objects_and_status(kube: Cluster) -> None:
    ns = kube.namespace(f"kc-{uuid.uuid4().hex[:6]}")

    async def body(api: Kube) -> None:
        created = await api.create(BUILDS, ns, build("b1"))
        assert created is not None and created["metadata"]["uid"]
        assert await api.create(BUILDS, ns, build("b1")) is None  # exists
        assert await api.get(BUILDS, ns, "missing") is None
        written = await api.patch_status(BUILDS, ns, "b1", {"phase": "Queued", "message": "m"})
        assert written["status"]["phase"] == "Queued"
        # A merge patch: keys not named stay; the answer is the object as stored.
        written = await api.patch_status(BUILDS, ns, "b1", {"message": "again"})
        assert written["status"] == {"phase": "Queued", "message": "again"}
        assert written["spec"] == {"templateRef": {"name": "t"}}
        await api.patch(BUILDS, ns, "b1", {"spec": {"cancel": True}})
        got = await api.get(BUILDS, ns, "b1")
        assert got is not None and got["spec"]["cancel"] is True and got["status"]["message"] == "again"
        assert [b["metadata"]["name"] for b in await api.list(BUILDS, ns)] == ["b1"]
        assert "b1" in [b["metadata"]["name"] for b in await api.list(BUILDS)]  # every namespace
        with pytest.raises(KubeApiError) as missing:
            await api.patch_status(BUILDS, ns, "missing", {"phase": "Queued"})
        assert missing.value.status == 404

    run(kube, body)


def test_the_apiservers_message_comes_through(kube: Cluster) -> None:
    ns = kube.namespace(f"kc-{uuid.uuid4().hex[:6]}")

    async def body(api: Kube) -> KubeApiError:
        await api.create(BUILDS, ns, build("b2"))
        with pytest.raises(KubeApiError) as invalid:
            await api.patch(BUILDS, ns, "b2", {"spec": {"cancel": "yes please"}})
        return invalid.value

    error = run(kube, body)
    assert error.status == 422 and error.reason == "Invalid"
    assert "spec.cancel" in error.message and "boolean" in error.message


def test_secrets_and_events(kube: Cluster) -> None:
    ns = kube.namespace(f"kc-{uuid.uuid4().hex[:6]}")

    async def body(api: Kube) -> None:
        await api.create_secret(ns, "s1", {"password": "p@ss word"})
        await api.create_secret(ns, "s1", {"password": "other"})  # exists: kept as it was
        assert await api.read_secret(ns, "s1") == {"password": "p@ss word"}
        await api.delete_secret(ns, "s1")
        await api.delete_secret(ns, "s1")  # already gone: no error
        assert await api.read_secret(ns, "s1") is None
        involved = {"apiVersion": "v1", "kind": "Namespace", "name": ns, "namespace": ns}
        await api.create_event(
            ns,
            {
                "metadata": {"generateName": "kc-", "namespace": ns},
                "involvedObject": involved,
                "reason": "Tested",
                "message": "hello",
                "type": "Normal",
            },
        )

    run(kube, body)
    events = json.loads(kube.kubectl("get", "events", "-n", ns, "-o", "json").stdout)["items"]
    assert [(e["reason"], e["message"]) for e in events] == [("Tested", "hello")]


def test_a_refused_token_is_fetched_again(kube: Cluster, tmp_path: Path) -> None:
    """An exec plugin's first token is refused (401): the client runs it again and the call succeeds."""
    good = kube.plane.token
    (tmp_path / "token").write_text("not-a-valid-token")
    script = tmp_path / "plugin.sh"
    script.write_text(
        "#!/bin/sh\n"
        f'token=$(cat "{tmp_path}/token")\n'
        f'echo "{good}" > "{tmp_path}/token"\n'  # the next run gets the good one
        'printf \'{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",'
        '"status":{"token":"%s"}}\' "$token"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    config = yaml.safe_load(Path(kube.kubeconfig).read_text())
    config["users"][0]["user"] = {
        "exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": str(script)}
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))

    async def body(api: Kube) -> Any:
        return await api.list(BUILDS)

    assert isinstance(run(kube, body, kubeconfig=str(path)), list)
