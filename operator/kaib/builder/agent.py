"""The builder container's entry point (`kaib builder-agent`, or `python -m kaib.builder.agent`).

It renders nothing: it runs the plan the operator rendered (`kaib.packer.render_build(...).to_plan()`)
phase by phase (customize, validate, deprovision) with `packer build` against the build VM's
private address, streams Packer's output to append blobs `<container>/<prefix>/customization.log`
and `validation.log` (every line `[<build id>] PACKER OUT ...` / `PACKER ERR ...`, secrets redacted,
flushed at least every 2 s), and keeps `<container>/<prefix>/result.json` up to date (see
`kaib.builder.result`). Exit status: 0 all phases succeeded, 1 a phase failed (or was terminated),
2 bad configuration, 3 storage unreachable.

Environment (secrets travel as the container group's *secure* environment values):

  KAIB_BUILD_ID                   required; prefixes every log line, default blob folder
  KAIB_PLAN                       the plan as JSON, or
  KAIB_PLAN_BLOB                  the plan's blob name inside KAIB_LOG_CONTAINER (exactly one of the two)
  KAIB_SSH_PRIVATE_KEY            secret; Linux builds: the build VM's private key (OpenSSH/PEM text)
  KAIB_WINRM_PASSWORD             secret; Windows builds: the WinRM password (reaches Packer as
                                  PKR_VAR_winrm_password, never on a command line)
  KAIB_STORAGE_CONNECTION_STRING  secret; storage by connection string (Azurite in the sandbox), or
  KAIB_STORAGE_ACCOUNT_URL        https://<account>.blob.core.windows.net, with
  KAIB_STORAGE_SAS_TOKEN          secret; optional: without it, DefaultAzureCredential (the container
                                  group's managed identity; AZURE_CLIENT_ID picks a user-assigned one)
  KAIB_LOG_CONTAINER              default "packerlogs"
  KAIB_LOG_PREFIX                 blob folder for logs and result.json; default KAIB_BUILD_ID
  KAIB_BUILD_VM_HOST, KAIB_BUILD_VM_PORT, KAIB_BUILD_VM_USERNAME
                                  optional; override the plan's connection facts (Packer -var)
  KAIB_WORKDIR                    default: a fresh temporary directory
  KAIB_PACKER                     Packer binary; default "packer" on PATH
  KAIB_PACKER_LOG                 "1": Packer's debug log too (as PACKER ERR lines, like AIB)
  KAIB_LOG_FLUSH_SECONDS          default 1, at most 2
  KAIB_DOWNLOAD_ATTEMPTS          default 5 (scriptUri/sourceUri, exponential backoff from 0.5 s)
  KAIB_DOWNLOAD_TIMEOUT_SECONDS   default 60 per attempt
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType

from kaib.builder.config import AgentConfig, ConfigError
from kaib.builder.logstream import LogStream
from kaib.builder.redact import Redactor
from kaib.builder.result import BuildResult, PhaseResult, now
from kaib.builder.runner import PackerProcess, PhaseContext, run_phase
from kaib.builder.storage import BlobStore, Store
from kaib.packer.model import RenderedBuild

EXIT_FAILED, EXIT_CONFIG, EXIT_STORAGE = 1, 2, 3
RESULT_BLOB = "result.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "Configured by environment variables: see `python -m pydoc kaib.builder.agent`."


def main(args: argparse.Namespace | None = None) -> int:
    try:
        config = AgentConfig.from_env(os.environ)
    except ConfigError as e:
        print(f"kaib builder-agent: {e}", file=sys.stderr)
        return EXIT_CONFIG
    redact = Redactor(config.secrets())
    try:
        store: Store = BlobStore.connect(config.storage, config.container)
        plan = json.loads(config.plan_json) if config.plan_json else json.loads(store.get(config.plan_blob))
    except (OSError, ValueError) as e:
        print(f"kaib builder-agent: reading the plan: {redact(str(e))}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception as e:  # azure-core errors: unreachable or unauthorized storage
        print(f"kaib builder-agent: storage: {redact(str(e))}", file=sys.stderr)
        return EXIT_STORAGE
    try:
        build = RenderedBuild.from_plan(plan)
    except (KeyError, TypeError, ValueError) as e:
        print(f"kaib builder-agent: bad plan: {e}", file=sys.stderr)
        return EXIT_CONFIG
    return Agent(config, store, build, redact).run()


class Agent:
    def __init__(self, config: AgentConfig, store: Store, build: RenderedBuild, redact: Redactor) -> None:
        self.config, self.store, self.build, self.redact = config, store, build, redact
        self.result = BuildResult(build_id=config.build_id, status="Running")
        self.result.phases = [PhaseResult(name=p.name, log=p.log) for p in build.phases]
        self.terminated = False
        self._process: PackerProcess | None = None

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_sigterm)
        workdir = Path(self.config.workdir or tempfile.mkdtemp(prefix="kaib-build-"))
        workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            ctx = self._context(workdir)
        except ConfigError as e:
            for p in self.result.phases:
                p.status = "Skipped"
            self._finish("Failed", str(e))
            return EXIT_CONFIG
        self._save()
        go_on = True
        for phase, phase_result in zip(self.build.phases, self.result.phases, strict=True):
            if not go_on or self.terminated:
                phase_result.status = "Skipped"
                continue
            with LogStream(
                self.store,
                self.config.blob(phase.log),
                self.config.build_id,
                self.redact,
                self.config.flush_seconds,
            ) as log:
                phase_result.status, phase_result.start_time = "Running", now()
                self._save()
                run_phase(phase, ctx, log, phase_result)
                if self.terminated and phase_result.status == "Failed":
                    phase_result.message += " (the builder agent was terminated: canceled or timed out)"
            self._save()
            if phase_result.status == "Failed":
                # A failed validation still lets the image be deprovisioned for distribution when
                # the template says continueDistributeOnFailure; anything else stops here.
                go_on = phase.name == "validate" and self.build.continue_distribute_on_failure
            elif phase.name == "deprovision":
                self.result.image_ready = True
        failed = [p for p in self.result.phases if p.status == "Failed"]
        if failed:
            self._finish("Failed", failed[0].message)
            return EXIT_FAILED
        self._finish("Succeeded", "customization, validation and deprovisioning succeeded")
        return 0

    def _context(self, workdir: Path) -> PhaseContext:
        config = self.config
        argv = [config.packer, "build", "-color=false"]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KAIB_", "AZURE_", "PKR_VAR_"))}
        env["CHECKPOINT_DISABLE"] = "1"
        if config.packer_debug_log:
            env["PACKER_LOG"] = "1"
        if self.build.os_type == "Linux":
            if not config.ssh_private_key:
                raise ConfigError("KAIB_SSH_PRIVATE_KEY is required for a Linux build")
            key = workdir / ".ssh" / "build_vm_key"
            key.parent.mkdir(mode=0o700, exist_ok=True)
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(config.ssh_private_key.rstrip("\n") + "\n")
            argv += ["-var", f"ssh_private_key_file={key}"]
        else:
            if not config.winrm_password:
                raise ConfigError("KAIB_WINRM_PASSWORD is required for a Windows build")
            env["PKR_VAR_winrm_password"] = config.winrm_password
        for name, value in (("host", config.host), ("port", config.port), ("username", config.username)):
            if value:
                argv += ["-var", f"{name}={value}"]
        return PhaseContext(
            workdir=workdir,
            packer_argv=argv,
            packer_env=env,
            download_attempts=config.download_attempts,
            download_timeout=config.download_timeout,
            redact=self.redact,
            on_process=self._set_process,
        )

    def _set_process(self, process: PackerProcess | None) -> None:
        self._process = process
        if process is not None and self.terminated:
            process.terminate()

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        # ACI stops the container (cancel, timeout): stop Packer, record why, exit through run().
        self.terminated = True
        if self._process is not None:
            self._process.terminate()

    def _finish(self, status: str, message: str) -> None:
        self.result.status, self.result.message, self.result.end_time = status, message, now()
        self._save()

    def _save(self) -> None:
        try:
            self.store.put(self.config.blob(RESULT_BLOB), self.result.dumps(), "application/json")
        except Exception as e:  # the log still has everything; the operator also sees the exit code
            print(f"kaib builder-agent: writing {RESULT_BLOB} failed: {self.redact(str(e))}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
