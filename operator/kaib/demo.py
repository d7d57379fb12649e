"""`kaib demo`: one whole build on this machine, the way a user would run it.

It starts the local environment (a real control plane and the sandbox Azure, exactly what
`kaib dev up` starts), runs the operator (`kaib run`, the production entry point) against it,
applies an example ImageTemplate and ImageBuild with kubectl, and shows the build's progress until
it ends. Nothing here is demo-only: the operator, the CRDs and the Azure SDK calls are the ones
that run against a real subscription.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from kaib import metrics
from kaib.devenv import assets
from kaib.devenv.layout import REPO, DevLayout
from kaib.devenv.operator import OperatorProcess
from kaib.devenv.supervisor import RUNTIMES, supervisor_argv

TERMINAL = {"Succeeded", "PartiallySucceeded", "Failed", "Canceled"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--example",
        type=Path,
        default=REPO / "examples" / "quickstart.yaml",
        help="a manifest with one ImageTemplate and one ImageBuild (default: examples/quickstart.yaml)",
    )
    parser.add_argument("--namespace", default="default")
    parser.add_argument(
        "--exit",
        action="store_true",
        help="exit when the build ends (status 0 only if it Succeeded) instead of waiting for Ctrl-C",
    )
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the build")
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default="real",
        help="real (default): the build VM and Packer run for real, needs root; modelled: ARM only",
    )
    parser.add_argument(
        "--latency-scale",
        type=float,
        default=0.05,
        help="multiply the sandbox's realistic Azure latencies (default 0.05, 20 times faster; 1: real time)",
    )


def say(text: str) -> None:
    print(f"\033[1mkaib demo:\033[0m {text}", flush=True)


@contextmanager
def environment(root: Path, runtime: str, latency_scale: float) -> Iterator[dict[str, str]]:
    """The control plane and the sandbox, through the same supervisor as `kaib dev up`."""
    layout = DevLayout(root)
    root.mkdir(parents=True, exist_ok=True)
    with layout.log.open("ab") as log:
        supervisor = subprocess.Popen(
            supervisor_argv(root, runtime, latency_scale),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 300
        while not layout.env_file.exists():
            if supervisor.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the local environment did not start:\n{layout.log.read_text()[-2000:]}")
            time.sleep(0.2)
        env = dict(os.environ)
        for line in layout.env_file.read_text().splitlines():
            if line.startswith("export ") and "=" in line:
                key, _, value = line.removeprefix("export ").partition("=")
                env[key] = value.strip("'\"")
        yield env
    finally:
        supervisor.send_signal(signal.SIGTERM)
        try:
            supervisor.wait(timeout=60)
        except subprocess.TimeoutExpired:
            supervisor.kill()


@contextmanager
def operator(env: dict[str, str], log_path: Path) -> Iterator[OperatorProcess]:
    """`kaib run` with the environment's settings (its metrics port too: 8080 unless set)."""
    proc = OperatorProcess(log_path, env, metrics_port=metrics.port_from_env(env))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop(timeout=30)


def kubectl(env: dict[str, str], *args: str, input: str | None = None) -> str:
    binary = str(assets.ensure(log=False).kubectl)
    result = subprocess.run(
        [binary, *args], env=env, input=input, text=True, capture_output=True, check=False, timeout=60
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def load_docs(manifest: Path) -> list[dict[str, Any]]:
    import yaml

    return [doc for doc in yaml.safe_load_all(manifest.read_text()) if doc]


def build_name(docs: list[dict[str, Any]]) -> str:
    for doc in docs:
        if doc.get("kind") == "ImageBuild":
            return str(doc["metadata"]["name"])
    raise ValueError("the example has no ImageBuild")


def target_groups(docs: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(subscription, resource group, location) of each distribution target: they must exist, as in Azure."""
    groups = set()
    for doc in docs:
        if doc.get("kind") != "ImageTemplate":
            continue
        spec = doc.get("spec") or {}
        location = str((spec.get("azure") or {}).get("location") or "")
        for target in spec.get("distribute") or []:
            parts = str(target.get("imageId") or target.get("galleryImageId") or "").strip("/").split("/")
            if len(parts) >= 4 and parts[0].lower() == "subscriptions":
                groups.add((parts[1], parts[3], str(target.get("location") or location)))
    return groups


def prepare_targets(env: dict[str, str], docs: list[dict[str, Any]]) -> None:
    """What a user does once in Azure before the first build: create the destination groups."""
    from azure.identity import WorkloadIdentityCredential
    from azure.mgmt.resource.resources import ResourceManagementClient

    credential = WorkloadIdentityCredential(
        tenant_id=env["AZURE_TENANT_ID"],
        client_id=env["AZURE_CLIENT_ID"],
        token_file_path=env["AZURE_FEDERATED_TOKEN_FILE"],
        authority=env["AZURE_AUTHORITY_HOST"],
        connection_verify=env["REQUESTS_CA_BUNDLE"],
    )
    for subscription, group, location in sorted(target_groups(docs)):
        say(f"az group create -n {group} -l {location}   (the distribution target's group)")
        client = ResourceManagementClient(
            credential,
            subscription,
            base_url=env["KAIB_ARM_ENDPOINT"],
            connection_verify=env["REQUESTS_CA_BUNDLE"],
        )
        client.resource_groups.create_or_update(group, {"location": location})


def describe_progress(status: dict[str, Any], seen: set[str]) -> list[str]:
    """New lines to show for a status: phase and subState changes, conditions that became True/False."""
    lines = []
    key = f"phase={status.get('phase')}/{status.get('subState')}"
    if key not in seen and status.get("phase"):
        seen.add(key)
        lines.append(
            f"{status.get('phase')} ({status.get('subState') or '-'}) {status.get('message') or ''}".rstrip()
        )
    for cond in status.get("conditions") or []:
        ckey = f"{cond.get('type')}={cond.get('status')}/{cond.get('reason')}"
        if ckey not in seen and cond.get("type") not in ("Ready", "Reconciling", "Stalled"):
            seen.add(ckey)
            lines.append(f"  {cond.get('type')}: {cond.get('status')} {cond.get('reason') or ''}".rstrip())
    return lines


def stream_logs(env: dict[str, str], namespace: str, name: str) -> subprocess.Popen[str]:
    """`kaib logs -f` beside the progress lines: the same command a user runs."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "kaib.cli", "logs", name, "-n", namespace, "-f"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            print(f"    \033[2mlog |\033[0m {line.rstrip()}", flush=True)

    threading.Thread(target=pump, daemon=True).start()
    return proc


def follow(
    env: dict[str, str], namespace: str, name: str, timeout: float, op: OperatorProcess
) -> dict[str, Any]:
    """Print progress until the build ends; stream its logs as soon as it has some."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    logs: subprocess.Popen[str] | None = None
    try:
        while time.monotonic() < deadline:
            if op.process is not None and op.process.poll() is not None:
                raise RuntimeError(f"the operator exited with status {op.process.returncode}")
            obj = json.loads(kubectl(env, "-n", namespace, "get", "imagebuild", name, "-o", "json"))
            status: dict[str, Any] = obj.get("status") or {}
            for line in describe_progress(status, seen):
                say(line)
            if logs is None and status.get("logs"):
                logs = stream_logs(env, namespace, name)
            if status.get("phase") in TERMINAL:
                return status
            time.sleep(1)
        raise TimeoutError(f"the build did not end within {timeout:.0f}s")
    finally:
        if logs is not None:
            try:
                logs.wait(timeout=10)  # `kaib logs -f` ends by itself once the build has ended
            except subprocess.TimeoutExpired:
                logs.terminate()


def _stop_on_sigterm(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # run the same cleanup as Ctrl-C


def main(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    say("preparing the control-plane binaries (built once from Go modules)")
    assets.ensure(log=True)
    work = Path(tempfile.mkdtemp(prefix="kaib-demo-"))
    say(f"starting a control plane and the sandbox Azure (logs in {work})")
    with (
        environment(work / "env", args.runtime, args.latency_scale) as env,
        operator(env, work / "operator.log") as op,
    ):
        say(f"operator running (log: {work / 'operator.log'})")
        docs = load_docs(args.example)
        name = build_name(docs)
        prepare_targets(env, docs)
        if args.namespace != "default":
            kubectl(env, "create", "namespace", args.namespace)
        say(f"kubectl apply -f {args.example}")
        print(kubectl(env, "-n", args.namespace, "apply", "-f", str(args.example)), end="")
        status = follow(env, args.namespace, name, args.timeout, op)
        phase = status.get("phase")
        say(f"build {name} ended: {phase}")
        for output in status.get("runOutputs") or []:
            say(f"  {output.get('runOutputName')}: {output.get('artifactId') or output.get('artifactUri')}")
        if status.get("message"):
            say(f"  {status['message']}")
        say(
            f"next: `kubectl describe imagebuild {name}`, `kaib logs {name}`, "
            f"and the sandbox inventory at {env.get('KAIB_SANDBOX_ADMIN', '')}/inventory"
        )
        if not args.exit:
            say("the environment keeps running; Ctrl-C to stop and clean up")
            with suppress(KeyboardInterrupt):
                while op.alive():
                    time.sleep(1)
        return 0 if phase == "Succeeded" else 1
