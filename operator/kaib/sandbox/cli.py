"""`kaib sandbox`: run the local Azure in the foreground until SIGTERM/SIGINT.

Prints the client environment as `export` lines once it is ready (and writes them to --env-file,
atomically, so a parent process can wait for the file). Everything it started stops with it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from . import config as cfg
from .app import Options, Sandbox, export_lines, write_env_file
from .hooks import SandboxHooks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML/JSON file: latency, quotas, faults, policies...")
    parser.add_argument(
        "--state",
        type=Path,
        help="persist everything in this file (and FILE.d/): resources, operations, running modelled "
        "containers, knobs, ports, Azurite's blobs; a restart with it answers as before (its knobs "
        "replace --config's and --latency-scale's)",
    )
    parser.add_argument("--port", type=int, default=0, help="HTTPS port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--env-file", type=Path, help="also write the export lines here once ready")
    parser.add_argument("--latency-scale", type=float, help="multiply every modelled latency (0: off)")
    parser.add_argument("--no-azurite", action="store_true", help="do not start Azurite (no blob data plane)")
    parser.add_argument(
        "--runtime",
        choices=("modelled", "real"),
        default=os.environ.get("KAIB_SANDBOX_RUNTIME", "modelled"),
        help="modelled: nothing runs (default); real: VMs, networks and builder containers run "
        "(kaib.sandbox.runtime, needs root and namespaces). Env: KAIB_SANDBOX_RUNTIME",
    )


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = cfg.load_file(args.config) if args.config else {}
    options = Options(
        port=args.port,
        config=config,
        state_file=args.state,
        latency_scale=args.latency_scale,
        with_azurite=not args.no_azurite,
    )
    if args.runtime == "real":
        from .runtime import RuntimeUnavailable

        try:
            options.hooks = _real_hooks()
        except RuntimeUnavailable as exc:
            print(f"kaib sandbox: the real runtime is unavailable here: {exc}", file=sys.stderr)
            return 2
    return asyncio.run(_run(options, args.env_file))


def _real_hooks() -> SandboxHooks:
    # The runtime keeps its own state directory (and sweeps those of dead owners): a restarted
    # sandbox remakes what its persisted resources need on first use.
    from .runtime.hooks import RuntimeHooks

    return RuntimeHooks()


async def _run(options: Options, env_file: Path | None) -> int:
    sandbox = Sandbox(options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await sandbox.start()
        sys.stdout.write(export_lines(sandbox.env))
        sys.stdout.flush()
        if env_file is not None:
            write_env_file(env_file, sandbox.env)
        await stop.wait()
    finally:
        await sandbox.stop()
        if env_file is not None:
            env_file.unlink(missing_ok=True)
    return 0
