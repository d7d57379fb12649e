"""`kaib logs BUILD [-n NAMESPACE] [-f]`: a build's customization and validation logs, live.

The builder agent appends Packer's output to append blobs in the staging storage account
(`packerlogs/<buildId>/customization.log`, `validation.log`). This command finds them through the
ImageBuild's status and reads them with the same Azure access as the operator (the account's keys
through ARM), so it works against Azure and the sandbox alike. With `-f` it polls for appended
bytes (reading only from the last offset) until the build has ended and nothing new arrives.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob.aio import ContainerClient

from kaib.azure.clients import AzureClients
from kaib.controller.blobs import LogStore, log_store
from kaib.controller.kube import BUILDS, Kube
from kaib.controller.kubeauth import KubeConfigError

LOGS = ("customization.log", "validation.log")
TERMINAL = {"Succeeded", "PartiallySucceeded", "Failed", "Canceled"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("build", help="the ImageBuild's name")
    parser.add_argument("-n", "--namespace", default="default")
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing until the build ends")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between polls with -f")
    parser.add_argument("--kubeconfig", default=None)


class LogsError(Exception):
    """Something the user can act on: printed as one line, exit status 1."""


@dataclass
class Cursor:
    """How far each log has been printed, so a poll reads only what was appended since."""

    offsets: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LOGS, 0))

    async def read_new(self, container: ContainerClient, build_id: str, out: TextIO) -> int:
        printed = 0
        for name in LOGS:
            blob = container.get_blob_client(f"{build_id}/{name}")
            try:
                size = (await blob.get_blob_properties()).size
            except ResourceNotFoundError:
                continue  # not written yet (validation.log only exists with validators)
            if size <= self.offsets[name]:
                continue
            stream = await blob.download_blob(offset=self.offsets[name], length=size - self.offsets[name])
            data = await stream.readall()
            self.offsets[name] += len(data)
            out.write(data.decode("utf-8", errors="replace"))
            out.flush()
            printed += len(data)
        return printed


def locate(build: dict[str, Any]) -> tuple[str, str, str, str]:
    """(subscription, staging group, storage account, build id) from an ImageBuild, or why not."""
    status = build.get("status") or {}
    name = build["metadata"]["name"]
    logs = status.get("logs") or {}
    account, build_id = logs.get("storageAccount"), status.get("buildId")
    group_id = str(status.get("stagingResourceGroup") or "")
    if not (account and build_id and group_id):
        phase = status.get("phase") or "not started"
        raise LogsError(f"build {name} has no logs yet (phase: {phase}); try again with -f")
    parts = group_id.strip("/").split("/")
    if len(parts) < 4 or parts[0].lower() != "subscriptions" or parts[2].lower() != "resourcegroups":
        raise LogsError(f"build {name}: status.stagingResourceGroup {group_id!r} is not a resource group id")
    return parts[1], parts[3], str(account), str(build_id)


async def _logs(args: argparse.Namespace, out: TextIO) -> int:
    kube = Kube.from_kubeconfig(args.kubeconfig)
    try:
        return await _print_logs(kube, args, out)
    finally:
        await kube.close()


async def _print_logs(kube: Kube, args: argparse.Namespace, out: TextIO) -> int:
    build = await kube.get(BUILDS, args.namespace, args.build)
    if build is None:
        raise LogsError(f"imagebuild {args.namespace}/{args.build} not found")
    while args.follow and not (build.get("status") or {}).get("logs"):
        if (build.get("status") or {}).get("phase") in TERMINAL:
            break
        await asyncio.sleep(args.interval)
        build = await kube.get(BUILDS, args.namespace, args.build) or build
    subscription, group, account, build_id = locate(build)

    clients = AzureClients.from_env()
    try:
        store: LogStore = await log_store(clients.for_subscription(subscription), group, account)
        cursor = Cursor()
        async with ContainerClient.from_container_url(
            store.container_url(), credential={"account_name": store.account, "account_key": store.key}
        ) as container:
            await cursor.read_new(container, build_id, out)
            while args.follow:
                ended = ((build.get("status") or {}).get("phase")) in TERMINAL
                await asyncio.sleep(args.interval)
                if not await cursor.read_new(container, build_id, out) and ended:
                    break  # one more read after the end: the agent's last flush is in
                build = await kube.get(BUILDS, args.namespace, args.build) or build
    finally:
        await clients.close()
    return 0


def main(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_logs(args, sys.stdout))
    except (LogsError, KubeConfigError) as exc:
        print(f"kaib logs: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
