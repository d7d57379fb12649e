"""One phase of a build: write its files, fetch its artifacts, run `packer build`, judge the outcome.

Which step failed comes from the markers the renderer put before every step: the last
`Breakpoint provisioner with note "kaib-step N"` Packer printed before it failed names the step.
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from kaib.builder.downloads import DownloadError, fetch
from kaib.builder.logstream import LogStream
from kaib.builder.result import FailedStep, PhaseResult, now
from kaib.packer.model import STEP_MARKER, Phase

MARKER = re.compile(rf'note "{STEP_MARKER} (\d+)"')
# Packer's summary of a failed build (1.6.6: "errored: msg"; later: "errored after 1 second: msg").
ERRORED = re.compile(r"Build '[^']*' errored(?: after [^:]*)?: (.*)")


@dataclass
class PackerOutcome:
    exit_code: int
    last_step: int | None
    error: str


class PackerProcess:
    """`packer build` with both output streams read line by line into the phase's log."""

    def __init__(self, argv: Sequence[str], cwd: Path, env: Mapping[str, str], log: LogStream) -> None:
        self.log = log
        self.last_step: int | None = None
        self.error = ""
        self._last_line = ""
        self.process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, "PACKER OUT"), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, "PACKER ERR"), daemon=True),
        ]
        for t in self._readers:
            t.start()

    def _read(self, stream: IO[bytes], kind: str) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            self.log.line(kind, line)
            if kind == "PACKER OUT" and (m := MARKER.search(line)):
                self.last_step = int(m.group(1))
            if m := ERRORED.search(line):
                self.error = m.group(1).strip()
            if line.strip():
                self._last_line = line.strip()

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()

    def wait(self) -> PackerOutcome:
        code = self.process.wait()
        for t in self._readers:
            t.join()
        return PackerOutcome(code, self.last_step, self.error or self._last_line)


@dataclass
class PhaseContext:
    workdir: Path
    packer_argv: Sequence[str]  # e.g. ["packer", "build", "-color=false", "-var", ...], template appended
    packer_env: Mapping[str, str]
    download_attempts: int
    download_timeout: float
    redact: Callable[[str], str]
    on_process: Callable[[PackerProcess | None], None] = lambda _: None


def run_phase(phase: Phase, ctx: PhaseContext, log: LogStream, result: PhaseResult) -> None:
    """Run one phase, filling `result` (status, times, exit code, failed step, message)."""
    result.status, result.start_time = "Running", now()
    log.kaib(f"phase {phase.name}: {len(phase.steps)} step(s)")
    try:
        _prepare(phase, ctx, log, result)
        if result.status == "Failed":
            return
        process = PackerProcess([*ctx.packer_argv, phase.template_path], ctx.workdir, ctx.packer_env, log)
        ctx.on_process(process)
        try:
            outcome = process.wait()
        finally:
            ctx.on_process(None)
        result.exit_code = outcome.exit_code
        if outcome.exit_code == 0:
            result.status = "Succeeded"
            result.message = f"{phase.name}: all {len(phase.steps)} step(s) succeeded"
            return
        result.status = "Failed"
        step = phase.step(outcome.last_step) if outcome.last_step is not None else None
        result.failed_step = FailedStep.of(step)
        error = ctx.redact(outcome.error) or f"packer exited with status {outcome.exit_code}"
        if step is not None:
            result.message = f"{phase.name} {step.describe()} failed: {error}"
        else:
            result.message = (
                f"{phase.name} failed before its first step (connecting to the build VM?): {error}"
            )
    except Exception as e:  # the agent itself broke: still a clear, recorded failure
        result.status, result.message = (
            "Failed",
            f"{phase.name}: the builder agent failed: {ctx.redact(str(e))}",
        )
    finally:
        result.end_time = now()
        if result.status == "Failed":
            log.kaib(f"FAILED: {result.message}")
        else:
            log.kaib(f"phase {phase.name}: {result.status}")


def _prepare(phase: Phase, ctx: PhaseContext, log: LogStream, result: PhaseResult) -> None:
    for rel, content in [(phase.template_path, phase.template), *phase.files]:
        path = _inside(ctx.workdir, rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="") as f:
            f.write(content)
    for d in phase.downloads:
        step = phase.step(d.step)
        what = step.describe() if step else f"step {d.step}"
        log.kaib(f"{what}: downloading {ctx.redact(d.url)}")
        try:
            digest = fetch(
                d.url,
                _inside(ctx.workdir, d.path),
                d.sha256,
                attempts=ctx.download_attempts,
                timeout=ctx.download_timeout,
                log=lambda msg: log.kaib(ctx.redact(msg)),
            )
        except DownloadError as e:
            result.status, result.failed_step = "Failed", FailedStep.of(step)
            result.message = (
                f"{phase.name} {what}: downloading {ctx.redact(d.url)} failed: {ctx.redact(str(e))}"
            )
            return
        checked = "sha256 verified" if d.sha256 else "no sha256Checksum given, not verified"
        log.kaib(f"{what}: downloaded, sha256 {digest} ({checked})")


def _inside(root: Path, rel: str) -> Path:
    path = (root / rel).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ValueError(f"plan path {rel!r} leaves the work directory")
    return path
