"""`kaib run` as a process watching one namespace only, with its /metrics, for the engine tests that
must not see (or drive) the builds other test modules left in the shared control plane.

    with NamespacedOperator(kube, sandbox, ns, tmp_path / "op.log") as op:
        apply(kube, ns, template("t", sandbox), build("b", "t"))
        final = op.wait_phase("b", FINAL)
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.fixtures.controlplane import Kube
from tests.fixtures.sandbox import SandboxHandle

GROUP, VERSION = "kaib.dev", "v1alpha1"
LOCATION = "westus"
FINAL = frozenset({"Succeeded", "PartiallySucceeded", "Failed", "Canceled"})


class NamespacedOperator:
    def __init__(self, kube: Kube, sandbox: SandboxHandle, namespace: str, log_path: Path) -> None:
        self.kube, self.sandbox, self.namespace, self.log_path = kube, sandbox, namespace, log_path
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> NamespacedOperator:
        env = {
            **os.environ,
            **self.sandbox.env,
            "KUBECONFIG": self.kube.kubeconfig,
            "KAIB_POLLING_INTERVAL": "0.05",
            "KAIB_METRICS_PORT": "0",  # a free port: other operators may run beside this one
        }
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "kaib.cli", "run", "--watch-timeout", "60", "-n", self.namespace],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float, interval: float = 0.2) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, (
                f"the operator died\n{self.log()}"
            )
            value = check()
            if value:
                return value
            time.sleep(interval)
        raise AssertionError(f"timed out waiting for {what}\n--- operator log ---\n{self.log()}")

    def get(self, kind: str, name: str) -> dict[str, Any]:
        out = self.kube.kubectl("get", "-n", self.namespace, kind, name, "-o", "json").stdout
        result: dict[str, Any] = json.loads(out)
        return result

    def wait_phase(self, name: str, phases: frozenset[str] = FINAL, timeout: float = 120) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            obj = self.get("imagebuild", name)
            return obj if (obj.get("status") or {}).get("phase") in phases else None

        try:
            result: dict[str, Any] = self.wait_for(f"{name} in {sorted(phases)}", check, timeout, 0.5)
        except AssertionError as exc:
            status = self.get("imagebuild", name).get("status")
            raise AssertionError(f"{exc}\nstatus: {json.dumps(status, indent=1)[-4000:]}") from None
        return result

    def metrics_port(self) -> int:
        def port() -> int | None:
            found = re.search(r"metrics on port (\d+)", self.log_path.read_text(errors="replace"))
            return int(found.group(1)) if found else None

        result: int = self.wait_for("the metrics server", port, 60)
        return result

    def scrape(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port()}/metrics", timeout=10) as r:
            text: str = r.read().decode()
        return text

    def events(self, name: str) -> list[dict[str, Any]]:
        out = self.kube.kubectl("get", "events", "-n", self.namespace, "-o", "json").stdout
        items = json.loads(out)["items"]
        return [e for e in items if e["involvedObject"]["name"] == name]


class SubStates:
    """Every subState a build showed through the API, from one watch (short-lived states included)."""

    def __init__(self, kube: Kube, namespace: str, name: str) -> None:
        from kubernetes import watch

        self.kube, self.namespace, self.name = kube, namespace, name
        self.seen: list[str] = []
        self._stopped = False
        self._watch = watch.Watch()
        self._thread = threading.Thread(target=self._follow, daemon=True)

    def __enter__(self) -> SubStates:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped = True
        self._watch.stop()  # seen at the next event; the thread is a daemon either way
        self._thread.join(timeout=2)

    def _follow(self) -> None:
        from kubernetes import client

        api = client.CustomObjectsApi(self.kube.api_client())
        stream = self._watch.stream(
            api.list_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            "imagebuilds",
            field_selector=f"metadata.name={self.name}",
            timeout_seconds=1800,
        )
        try:
            for event in stream:
                sub = (event["object"].get("status") or {}).get("subState")
                if sub and (not self.seen or self.seen[-1] != sub):
                    self.seen.append(sub)
        except Exception as exc:  # a stream ending early shows in `seen`; once stopped it does not matter
            if not self._stopped:
                self.seen.append(f"(watch ended: {type(exc).__name__})")


def apply(kube: Kube, namespace: str, *docs: dict[str, Any]) -> None:
    for doc in docs:
        kube.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(doc))


def images_group(sandbox: SandboxHandle, name: str = "images") -> str:
    """A resource group for distributed images (created if missing); its resource id."""
    from azure.mgmt.resource.resources import ResourceManagementClient

    sandbox.client(ResourceManagementClient).resource_groups.create_or_update(name, {"location": LOCATION})
    return f"/subscriptions/{sandbox.subscription_id}/resourceGroups/{name}"


def template(name: str, sandbox: SandboxHandle, **extra: Any) -> dict[str, Any]:
    """A Linux template distributing one managed image, on a size the sandbox's quota model knows."""
    image = f"{name}-{uuid.uuid4().hex[:6]}"  # a retried test must not distribute onto the first try's
    spec: dict[str, Any] = {
        "source": {
            "type": "PlatformImage",
            "publisher": "Canonical",
            "offer": "ubuntu-24_04-lts",
            "sku": "server",
            "version": "latest",
        },
        "customize": [{"type": "Shell", "name": "hello", "inline": ["echo hello"]}],
        "distribute": [
            {
                "type": "ManagedImage",
                "runOutputName": "golden",
                "imageId": f"{images_group(sandbox)}/providers/Microsoft.Compute/images/{image}",
                "location": LOCATION,
            }
        ],
        "vmProfile": {"vmSize": "Standard_B2s"},
        "azure": {"subscriptionId": sandbox.subscription_id, "location": LOCATION},
    }
    spec.update(extra)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ImageTemplate",
        "metadata": {"name": name},
        "spec": spec,
    }


def build(name: str, template_name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ImageBuild",
        "metadata": {"name": name},
        "spec": {"templateRef": {"name": template_name}},
    }


def owned(sandbox: SandboxHandle, build_id: str) -> list[str]:
    """Ids of the sandbox's resources tagged as this build's."""
    return [
        str(r["id"])
        for r in sandbox.inventory()
        if (r.get("tags") or {}).get("kaib.dev/build-id") == build_id
    ]


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return dict(c)
    raise AssertionError(f"no condition {type_}: {obj.get('status')}")
