"""Azurite (the Azure Storage emulator, blob service only) as a child process of the sandbox.

How storage accounts map to Azurite: every sandbox storage account is a real Azurite account of the
same name. Azurite reads its accounts from the AZURITE_ACCOUNTS environment variable at start (and
every minute after), which cannot be changed from outside the process. So we start it with a small
preload script (`node --require`) that makes Azurite look up an account it does not know in a file
we own (`accounts`, lines `name:key`) before refusing it. `add_account()` rewrites that file, and the
next request for the new account succeeds: no restart, no lost blobs, one namespace per account.

Blob endpoints are path-style, `http://127.0.0.1:PORT/<account>/`: azure-storage-blob signs with the
account name it reads from the path, exactly as Azurite checks it. Plain HTTP is fine for shared key
and SAS; only bearer tokens need TLS.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
HOST = "127.0.0.1"

# Runs inside Azurite's node process before Azurite itself. On a lookup miss it reloads the
# accounts file into AZURITE_ACCOUNTS and lets Azurite re-parse it.
_PRELOAD_JS = r"""
const fs = require("fs");
const path = require("path");
const dist = process.env.KAIB_AZURITE_DIST;
const file = process.env.KAIB_AZURITE_ACCOUNTS_FILE;
const Store = require(path.join(dist, "common", "AccountDataStore.js")).default;
function load() {
  try {
    const lines = fs.readFileSync(file, "utf8").split("\n").map((l) => l.trim()).filter((l) => l);
    process.env.AZURITE_ACCOUNTS = lines.join(";");
  } catch (e) { /* keep what we had */ }
}
load();
const original = Store.prototype.getAccount;
Store.prototype.getAccount = function (name) {
  let found = original.call(this, name);
  if (found === undefined) {
    load();
    this.refresh();
    found = original.call(this, name);
  }
  return found;
};
"""


def azurite_package_dir() -> Path:
    """Where scripts/setup.sh installs the azurite npm package."""
    xdg = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    cache = Path(os.environ.get("KAIB_CACHE") or xdg / "kaib")
    return cache / "npm" / "node_modules" / "azurite"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Azurite:
    """A running Azurite blob service. Use `Azurite.start()`; stop with `stop()` (or as a context)."""

    port: int
    process: subprocess.Popen[bytes]
    workdir: Path
    location: Path | None
    _owns_workdir: bool = True
    accounts: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(cls, location: Path | None = None, port: int = 0, timeout: float = 30.0) -> Azurite:
        """Start Azurite on loopback; `location` persists blobs there, otherwise they live in memory."""
        package = azurite_package_dir()
        main_js = package / "dist" / "src" / "blob" / "main.js"
        if not main_js.exists():
            raise RuntimeError(f"Azurite is not installed at {package}: run scripts/setup.sh")
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not on PATH: run scripts/setup.sh")
        workdir = Path(tempfile.mkdtemp(prefix="kaib-azurite-"))
        (workdir / "preload.js").write_text(_PRELOAD_JS)
        if port:
            _wait_until_free(port, timeout)  # a persisted sandbox's port, just closed by its last run
        port = port or free_port()
        storage = ["--location", str(location)] if location else ["--inMemoryPersistence"]
        if location:
            location.mkdir(parents=True, exist_ok=True)
        accounts = dict(_read_accounts(location / "kaib-accounts") if location else {})
        accounts.setdefault(DEV_ACCOUNT, DEV_KEY)
        env = {
            **os.environ,
            "KAIB_AZURITE_DIST": str(package / "dist" / "src"),
            "KAIB_AZURITE_ACCOUNTS_FILE": str(workdir / "accounts"),
        }
        _write_accounts(workdir, location, accounts)
        cmd = [
            node,
            "--require",
            str(workdir / "preload.js"),
            str(main_js),
            "--blobHost",
            HOST,
            "--blobPort",
            str(port),
            *storage,
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--silent",
            "--loose",
        ]
        with open(workdir / "azurite.log", "wb") as log:
            process = subprocess.Popen(
                cmd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self_ = cls(port=port, process=process, workdir=workdir, location=location, accounts=accounts)
        try:
            self_._wait_ready(timeout)
        except BaseException:
            self_.stop()
            raise
        return self_

    @property
    def blob_endpoint(self) -> str:
        """The well-known development account's blob endpoint."""
        return self.account_blob_endpoint(DEV_ACCOUNT)

    @property
    def connection_string(self) -> str:
        return self.account_connection_string(DEV_ACCOUNT)

    def account_blob_endpoint(self, name: str) -> str:
        return f"http://{HOST}:{self.port}/{name}/"

    def account_connection_string(self, name: str) -> str:
        key = self.accounts[name]
        return (
            f"DefaultEndpointsProtocol=http;AccountName={name};AccountKey={key};"
            f"BlobEndpoint={self.account_blob_endpoint(name).rstrip('/')};"
        )

    def add_account(self, name: str, key: str) -> None:
        """Make `name` a valid account (key: base64). Takes effect on Azurite's next lookup."""
        if self.accounts.get(name) != key:
            self.accounts[name] = key
            self._write_accounts()

    def remove_account(self, name: str) -> None:
        if self.accounts.pop(name, None) is not None:
            self._write_accounts()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop Azurite and wait for it; safe to call twice."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Azurite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _write_accounts(self) -> None:
        _write_accounts(self.workdir, self.location, self.accounts)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.workdir / "azurite.log").read_text(errors="replace")
                raise RuntimeError(f"Azurite exited with {self.process.returncode}:\n{log[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), timeout=0.5):
                return
            time.sleep(0.05)
        raise TimeoutError(f"Azurite did not listen on {HOST}:{self.port} within {timeout}s")


def _wait_until_free(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as node binds: TIME_WAIT is fine
            try:
                s.bind((HOST, port))
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Azurite's port {HOST}:{port} is taken by another process") from None
        time.sleep(0.1)


def _write_accounts(workdir: Path, location: Path | None, accounts: dict[str, str]) -> None:
    text = "".join(f"{name}:{key}\n" for name, key in sorted(accounts.items()))
    _atomic_write(workdir / "accounts", text)
    if location:
        _atomic_write(location / "kaib-accounts", text)


def _read_accounts(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    pairs = (line.split(":", 1) for line in path.read_text().splitlines() if ":" in line)
    return {name: key for name, key in pairs}


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _die_with_parent() -> None:
    # Linux: if the sandbox dies without cleaning up, the kernel sends Azurite SIGTERM.
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
