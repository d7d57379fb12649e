"""`kaib run` as a child process against a control plane and a sandbox: what the tests, the benchmarks
and `kaib demo` start, with its log in a file, its metrics port, and stop / kill / restart.

    op = OperatorProcess(log_path, sandbox_env, kubeconfig=kubeconfig, args=["-n", "team-a"])
    op.start()
    op.wait_for("the build to end", lambda: phase() in FINAL)
    op.kill(); op.start()          # a crash and a restart: the log keeps growing, one file
    op.stop()

The environment is os.environ, then `sandbox_env` (the sandbox's exports: ARM endpoint, CA, token),
then `env` (KAIB_* settings), then KUBECONFIG and KAIB_METRICS_PORT. It is computed at each start,
so a caller may swap `sandbox_env` for a restarted sandbox's before starting again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kaib.devenv.controlplane import free_port

READY_LINE = "Initial authentication has finished"  # kopf logs it once it can reach the apiserver


class OperatorFailed(RuntimeError):
    """The operator exited, or what was waited for never came; the message ends with the log's tail."""


class OperatorProcess:
    def __init__(
        self,
        log_path: Path,
        sandbox_env: Mapping[str, str],
        *,
        kubeconfig: str | None = None,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        metrics_port: int | None = None,
    ) -> None:
        """`args` follow `kaib run`; `kubeconfig` None: the one the environment names. `metrics_port`
        None picks a free port (8080 may be another operator's); 0 lets kaib pick one (not scrapable)."""
        self.log_path = log_path
        self.sandbox_env: Mapping[str, str] = sandbox_env
        self.kubeconfig = kubeconfig
        self.args = list(args)
        self.env: dict[str, str] = dict(env or {})
        self.metrics_port = free_port() if metrics_port is None else metrics_port
        self.process: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "kaib.cli", "run", *self.args]

    def environment(self) -> dict[str, str]:
        env = {**os.environ, **self.sandbox_env, **self.env, "KAIB_METRICS_PORT": str(self.metrics_port)}
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = self.kubeconfig
        return env

    # -- the process ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start `kaib run`, appending to the log (a restarted operator's lines follow the old ones)."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.argv(),
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: a crash, no cleanup."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM (kopf stops its handlers), SIGKILL when it takes longer than `timeout`."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self, kill: bool = False) -> None:
        """Stop (or kill) and start again, with the environment as it is now."""
        if kill:
            self.kill()
        else:
            self.stop()
        self.start()

    # -- watching it ------------------------------------------------------------------------------

    def log(self, tail: int | None = None) -> str:
        """The log so far, or its last `tail` characters."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text if tail is None else text[-tail:]

    def wait_for(
        self, what: str, check: Callable[[], Any], timeout: float = 60, interval: float = 0.2
    ) -> Any:
        """Poll `check` until it returns something truthy (returned); fail as soon as the operator dies."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise OperatorFailed(f"the operator died while waiting for {what}\n{self.log(6000)}")
            value = check()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise OperatorFailed(f"timed out waiting for {what}\n--- operator log ---\n{self.log(6000)}")
            time.sleep(interval)

    def wait_ready(self, timeout: float = 120) -> None:
        """Until kopf has logged in (its watches start then)."""
        self.wait_for("the operator to start", lambda: READY_LINE in self.log(), timeout)

    def scrape(self, path: str = "/metrics") -> tuple[int, str] | None:
        """(status, body) of the operator's HTTP endpoint `path`, or None when nothing listens."""
        try:
            url = f"http://127.0.0.1:{self.metrics_port}{path}"
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except OSError:
            return None

    def metrics(self) -> str | None:
        """The /metrics text, or None when the operator serves none."""
        scraped = self.scrape()
        return scraped[1] if scraped is not None and scraped[0] == 200 else None

    # -- what /proc says about it (the benchmarks' figures) ---------------------------------------

    def _status_kib(self, field: str) -> float:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return float(line.split()[1])
        return 0.0

    def rss_mib(self) -> float:
        return self._status_kib("VmRSS") / 1024

    def peak_rss_mib(self) -> float:
        """VmHWM: the process's resident-set high-water mark."""
        return self._status_kib("VmHWM") / 1024

    def cpu_seconds(self) -> float:
        """User + system CPU of the operator process (and children it waited for)."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        return ticks / os.sysconf("SC_CLK_TCK")
