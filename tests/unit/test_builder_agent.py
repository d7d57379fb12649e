"""The builder agent's parts without a VM: configuration from the environment, redaction, the log
stream's flushing, downloads (retries, checksums) against a local HTTP server, and whole runs with a
stand-in `packer` script that prints what Packer prints (markers, failures) into an in-memory store."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import signal
import stat
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kaib.builder.agent import Agent
from kaib.builder.config import AgentConfig, ConfigError, StorageConfig
from kaib.builder.downloads import ChecksumMismatch, DownloadError, fetch
from kaib.builder.logstream import LogStream
from kaib.builder.redact import MASK, Redactor
from kaib.packer import ConnectionFacts, RenderedBuild, RenderOptions, render_build

BASE_ENV = {
    "KAIB_BUILD_ID": "b1",
    "KAIB_PLAN": "{}",
    "KAIB_STORAGE_CONNECTION_STRING": "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=k3y==;",
}


class MemoryStore:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.appends: dict[str, int] = {}
        self.fail_appends = 0
        self.lock = threading.Lock()

    def ensure_append_blob(self, name: str) -> None:
        with self.lock:
            self.blobs.setdefault(name, b"")

    def append(self, name: str, data: bytes) -> None:
        with self.lock:
            if self.fail_appends:
                self.fail_appends -= 1
                raise OSError("storage hiccup")
            self.blobs[name] += data
            self.appends[name] = self.appends.get(name, 0) + 1

    def put(self, name: str, data: bytes, content_type: str) -> None:
        with self.lock:
            self.blobs[name] = data

    def get(self, name: str) -> bytes:
        return self.blobs[name]

    def text(self, name: str) -> str:
        return self.blobs.get(name, b"").decode()


# -- configuration ---------------------------------------------------------------------------


def test_config_from_env() -> None:
    env = {
        **BASE_ENV,
        "KAIB_SSH_PRIVATE_KEY": "-----BEGIN KEY-----\nAAAAB3NzaC1yc2EAAAADAQABAAABAQ\n-----END KEY-----\n",
        "KAIB_WINRM_PASSWORD": " pass word ",
        "KAIB_LOG_FLUSH_SECONDS": "0.5",
        "KAIB_BUILD_VM_HOST": "10.0.0.9",
    }
    config = AgentConfig.from_env(env)
    assert config.build_id == "b1" and config.container == "packerlogs" and config.blob("x.log") == "b1/x.log"
    assert config.flush_seconds == 0.5 and config.host == "10.0.0.9"
    assert config.winrm_password == " pass word "  # secrets are taken verbatim
    secrets = config.secrets()
    assert "AAAAB3NzaC1yc2EAAAADAQABAAABAQ" in secrets and " pass word " in secrets
    assert not any("-----" in s for s in secrets)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"KAIB_BUILD_ID": ""}, "KAIB_BUILD_ID"),
        ({"KAIB_STORAGE_CONNECTION_STRING": ""}, "KAIB_STORAGE_"),
        ({"KAIB_PLAN": ""}, "exactly one of KAIB_PLAN"),
        ({"KAIB_PLAN_BLOB": "b1/plan.json"}, "exactly one of KAIB_PLAN"),
        ({"KAIB_LOG_FLUSH_SECONDS": "5"}, "at most|must be in"),
        ({"KAIB_DOWNLOAD_ATTEMPTS": "many"}, "must be a number"),
    ],
)
def test_config_errors(change: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AgentConfig.from_env({**BASE_ENV, **change})


def test_redactor() -> None:
    redact = Redactor(["hunter2", "hunter2-longer"])
    assert redact("pw hunter2-longer and hunter2") == f"pw {MASK} and {MASK}"
    assert redact("GET https://a.blob.core.windows.net/c/s.sh?sv=1&sig=abc%2Bdef&se=2") == (
        f"GET https://a.blob.core.windows.net/c/s.sh?sv=1&sig={MASK}&se=2"
    )
    assert redact("AccountKey=xyz==;EndpointSuffix") == f"AccountKey={MASK};EndpointSuffix"


# -- the log stream --------------------------------------------------------------------------


def test_log_stream_prefixes_redacts_and_flushes_periodically() -> None:
    store = MemoryStore()
    log = LogStream(store, "b1/customization.log", "b1", Redactor(["s3cret"]), 0.05, echo=None)
    log.line("PACKER OUT", "hello s3cret\n")
    deadline = time.monotonic() + 2
    while not store.text("b1/customization.log") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.text("b1/customization.log") == f"[b1] PACKER OUT hello {MASK}\n"  # before close
    log.line("PACKER ERR", "err")
    log.kaib("two\nlines")
    log.close()
    assert store.text("b1/customization.log").splitlines()[1:] == [
        "[b1] PACKER ERR err",
        "[b1] KAIB two",
        "[b1] KAIB lines",
    ]


def test_log_stream_keeps_lines_when_storage_fails() -> None:
    store = MemoryStore()
    store.fail_appends = 2
    log = LogStream(store, "l", "b1", Redactor([]), 10, echo=None)
    log.line("KAIB", "one")
    log.flush()
    log.line("KAIB", "two")
    log.flush()
    log.close()
    assert store.text("l") == "[b1] KAIB one\n[b1] KAIB two\n" and log.failures == 2


# -- downloads -------------------------------------------------------------------------------


class _Flaky(http.server.BaseHTTPRequestHandler):
    failures: dict[str, int] = {}
    content = b"#!/bin/sh\necho hi\n"

    def do_GET(self) -> None:
        left = self.failures.get(self.path, 0)
        if self.path == "/missing":
            self.send_error(404)
            return
        if left:
            self.failures[self.path] = left - 1
            self.send_error(503)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.content)))
        self.end_headers()
        self.wfile.write(self.content)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_download_retries_then_verifies(server: str, tmp_path: Path) -> None:
    _Flaky.failures["/flaky"] = 2
    logged: list[str] = []
    sha = hashlib.sha256(_Flaky.content).hexdigest()
    digest = fetch(
        f"{server}/flaky", tmp_path / "a/s.sh", sha.upper(), attempts=3, backoff=0.01, log=logged.append
    )
    assert digest == sha and (tmp_path / "a/s.sh").read_bytes() == _Flaky.content
    assert len(logged) == 2 and "HTTP 503" in logged[0]


def test_download_gives_up_and_does_not_retry_permanent_errors(server: str, tmp_path: Path) -> None:
    _Flaky.failures["/down"] = 10
    with pytest.raises(DownloadError, match="gave up after 2 attempts"):
        fetch(f"{server}/down", tmp_path / "x", "", attempts=2, backoff=0.01)
    logged: list[str] = []
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(f"{server}/missing", tmp_path / "x", "", attempts=5, backoff=0.01, log=logged.append)
    assert logged == []


def test_download_checksum_mismatch_removes_the_file(server: str, tmp_path: Path) -> None:
    with pytest.raises(ChecksumMismatch, match="sha256 mismatch"):
        fetch(f"{server}/ok", tmp_path / "x", "0" * 64, attempts=1)
    assert not (tmp_path / "x").exists()


# -- whole runs with a stand-in packer ---------------------------------------------------------

# Prints what Packer prints: the step markers, then fails at the step named in FAIL_AT (per phase
# template) or succeeds. Also records its arguments and the password variable it was given.
FAKE_PACKER = r"""#!/usr/bin/env python3
import json, os, re, sys, time
template = sys.argv[-1]
text = open(template).read()
with open("calls.jsonl", "a") as f:
    f.write(json.dumps({"argv": sys.argv[1:], "pw": os.environ.get("PKR_VAR_winrm_password")}) + "\n")
fail_at = json.load(open("fail.json")).get(template.split(".")[0])
print("==> null.build_vm: Connected to SSH!", flush=True)
for n in re.findall(r'note += "kaib-step (\d+)"', text):
    print(f'==> null.build_vm: Breakpoint provisioner with note "kaib-step {n}" disabled', flush=True)
    print(f"    null.build_vm: running step {n}", flush=True)
    if os.environ.get("SLOW"):
        time.sleep(float(os.environ["SLOW"]))
    if fail_at is not None and int(n) == fail_at:
        print("secret leak: " + os.environ.get("PKR_VAR_winrm_password", ""), file=sys.stderr, flush=True)
        print("Build 'null.build_vm' errored after 1 second: Script exited with non-zero exit status: 9")
        sys.exit(1)
print("Build 'null.build_vm' finished.", flush=True)
"""

LINUX_SPEC = {
    "customize": [
        {"type": "Shell", "name": "one", "inline": ["true"]},
        {"type": "Shell", "name": "two", "inline": ["false"]},
    ],
    "validate": {"inVMValidations": [{"type": "Shell", "name": "v1", "inline": ["true"]}]},
}


def _agent(
    tmp_path: Path, spec: dict[str, Any], fail: dict[str, int], **config: Any
) -> tuple[Agent, MemoryStore]:
    packer = tmp_path / "packer"
    packer.write_text(FAKE_PACKER)
    packer.chmod(packer.stat().st_mode | stat.S_IEXEC)
    (tmp_path / "work").mkdir(exist_ok=True)
    (tmp_path / "work" / "fail.json").write_text(json.dumps(fail))
    os_type = "Windows" if spec is WINDOWS_SPEC else "Linux"
    facts = ConnectionFacts(os_type=os_type, host="10.0.0.4", username="u", build_id="b1")
    build = RenderedBuild.from_plan(render_build(spec, facts, RenderOptions()).to_plan())
    defaults: dict[str, Any] = {
        "build_id": "b1",
        "storage": StorageConfig(connection_string=BASE_ENV["KAIB_STORAGE_CONNECTION_STRING"]),
        "plan_json": "{}",
        "ssh_private_key": "-----BEGIN-----\nPRIVATEKEYMATERIAL0123456789\n-----END-----",
        "workdir": str(tmp_path / "work"),
        "packer": str(packer),
        "flush_seconds": 0.05,
    }
    cfg = AgentConfig(**{**defaults, **config})
    store = MemoryStore()
    return Agent(cfg, store, build, Redactor(cfg.secrets())), store


def _result(store: MemoryStore) -> dict[str, Any]:
    return json.loads(store.blobs["b1/result.json"])


def _calls(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp_path / "work" / "calls.jsonl").read_text().splitlines()]


def test_run_succeeds_through_all_phases(tmp_path: Path) -> None:
    agent, store = _agent(tmp_path, LINUX_SPEC, {})
    assert agent.run() == 0
    result = _result(store)
    assert result["status"] == "Succeeded" and result["imageReady"] is True
    assert [(p["name"], p["status"], p["exitCode"]) for p in result["phases"]] == [
        ("customize", "Succeeded", 0),
        ("validate", "Succeeded", 0),
        ("deprovision", "Succeeded", 0),
    ]
    calls = _calls(tmp_path)
    assert [c["argv"][-1] for c in calls] == ["customize.pkr.hcl", "validate.pkr.hcl", "deprovision.pkr.hcl"]
    key_arg = calls[0]["argv"][calls[0]["argv"].index("-var") + 1]
    key_file = Path(key_arg.split("=", 1)[1])
    assert key_arg.startswith("ssh_private_key_file=") and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    log = store.text("b1/customization.log")
    assert "[b1] PACKER OUT     null.build_vm: running step 2" in log
    assert log.index("phase customize") < log.index("phase deprovision")  # deprovisioning appends
    assert "[b1] PACKER OUT     null.build_vm: running step 1" in store.text("b1/validation.log")


def test_failing_customizer_names_the_step_and_skips_the_rest(tmp_path: Path) -> None:
    agent, store = _agent(tmp_path, LINUX_SPEC, {"customize": 2})
    assert agent.run() == 1
    result = _result(store)
    customize = result["phases"][0]
    assert customize["failedStep"] == {"index": 2, "type": "Shell", "name": "two"}
    assert customize["exitCode"] == 1
    assert (
        customize["message"]
        == "customize step 2 (Shell) 'two' failed: Script exited with non-zero exit status: 9"
    )
    assert [p["status"] for p in result["phases"][1:]] == ["Skipped", "Skipped"]
    assert result["status"] == "Failed" and result["imageReady"] is False
    assert "[b1] KAIB FAILED: customize step 2 (Shell) 'two' failed" in store.text("b1/customization.log")
    assert "b1/validation.log" not in store.blobs


def test_validation_failure_and_continue_distribute(tmp_path: Path) -> None:
    spec = {**LINUX_SPEC, "validate": {**LINUX_SPEC["validate"], "continueDistributeOnFailure": True}}
    agent, store = _agent(tmp_path, spec, {"validate": 1})
    assert agent.run() == 1
    result = _result(store)
    assert [p["status"] for p in result["phases"]] == ["Succeeded", "Failed", "Succeeded"]
    assert result["imageReady"] is True and result["status"] == "Failed"


def test_validation_failure_stops_before_deprovisioning(tmp_path: Path) -> None:
    agent, store = _agent(tmp_path, LINUX_SPEC, {"validate": 1})
    assert agent.run() == 1
    result = _result(store)
    assert [p["status"] for p in result["phases"]] == ["Succeeded", "Failed", "Skipped"]
    assert result["phases"][1]["failedStep"] == {"index": 1, "type": "Shell", "name": "v1"}
    assert result["imageReady"] is False


WINDOWS_SPEC = {
    "customize": [{"type": "PowerShell", "name": "ps", "inline": ["whoami"], "runElevated": True}]
}


def test_windows_password_goes_through_the_environment_and_is_redacted(tmp_path: Path) -> None:
    agent, store = _agent(tmp_path, WINDOWS_SPEC, {"customize": 1}, winrm_password="P@ss w0rd!")
    assert agent.run() == 1
    calls = _calls(tmp_path)
    assert calls[0]["pw"] == "P@ss w0rd!"
    assert not any("P@ss" in arg for c in calls for arg in c["argv"])
    log = store.text("b1/customization.log")
    assert "P@ss w0rd!" not in log and f"[b1] PACKER ERR secret leak: {MASK}" in log


def test_missing_secret_fails_clearly(tmp_path: Path) -> None:
    agent, store = _agent(tmp_path, LINUX_SPEC, {}, ssh_private_key="")
    assert agent.run() == 2
    assert "KAIB_SSH_PRIVATE_KEY is required" in _result(store)["message"]


def test_download_failure_fails_the_step_before_packer(tmp_path: Path) -> None:
    spec = {"customize": [{"type": "Shell", "name": "get", "scriptUri": "http://127.0.0.1:9/nothing.sh"}]}
    agent, store = _agent(tmp_path, spec, {}, download_attempts=1)
    assert agent.run() == 1
    customize = _result(store)["phases"][0]
    assert customize["failedStep"]["index"] == 1 and customize["exitCode"] is None
    assert "downloading http://127.0.0.1:9/nothing.sh failed" in customize["message"]
    assert not (tmp_path / "work" / "calls.jsonl").exists()


def test_sigterm_stops_packer_and_is_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOW", "5")
    agent, store = _agent(tmp_path, LINUX_SPEC, {})
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGTERM))
    previous = signal.getsignal(signal.SIGTERM)
    timer.start()
    started = time.monotonic()
    try:
        code = agent.run()
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, previous)
    assert code == 1 and time.monotonic() - started < 4
    result = _result(store)
    assert result["phases"][0]["status"] == "Failed"
    assert "terminated" in result["phases"][0]["message"]
    assert [p["status"] for p in result["phases"][1:]] == ["Skipped", "Skipped"]


def test_module_runs_as_a_program() -> None:
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("KAIB_")}
    proc = subprocess.run(
        [sys.executable, "-m", "kaib.builder.agent"], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 2 and "KAIB_BUILD_ID is required" in proc.stderr
