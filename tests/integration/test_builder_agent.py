"""The builder agent, for real: real Packer (Debian's) run by the agent inside a container-group
namespace of the sandbox runtime, against a real sshd VM (its own namespaces, overlay root: never the
test machine's root filesystem), logs and result.json in Azurite, scriptUri/sourceUri served by a
local HTTP server. Both host services reach the sandbox network through `Network.expose()`.

One VNet and one VM serve every test of the module (each test uses its own build id and files).
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient

from kaib.packer import ConnectionFacts, RenderOptions, render_build
from kaib.sandbox.azurite import DEV_ACCOUNT, DEV_KEY, Azurite
from kaib.sandbox.runtime import Runtime, VirtualMachine, missing
from tests.fixtures.runtime import RuntimeKit, SshKey

VM_IP, ACI_IP = "10.61.1.4", "10.61.2.4"
ADMIN = "azureuser"
SIG = "s3cretSIGvalue"


@dataclass
class Bed:
    kit: RuntimeKit
    vm: VirtualMachine
    key: SshKey
    aci: str  # the container group's namespace
    files: Path  # served over HTTP
    base_url: str  # as seen from the sandbox network
    storage_in_sandbox: str  # connection string for the agent
    logs: ContainerClient  # host-side view of packerlogs
    tmp: Path

    def serve(self, name: str, content: bytes) -> tuple[str, str]:
        (self.files / name).write_bytes(content)
        return f"{self.base_url}/{name}?sv=2024&sig={SIG}", hashlib.sha256(content).hexdigest()

    def on_vm(self, command: str) -> subprocess.CompletedProcess[str]:
        return self.kit.ssh(self.aci, self.vm.ip, self.key, command, user=ADMIN)

    def read_on_vm(self, path: str) -> bytes | None:
        result = self.on_vm(f"base64 {shlex.quote(path)}")
        return base64.b64decode(result.stdout) if result.returncode == 0 else None

    def blob(self, build_id: str, name: str) -> bytes | None:
        client = self.logs.get_blob_client(f"{build_id}/{name}")
        return client.download_blob().readall() if client.exists() else None


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str
    result: dict[str, Any]
    customization_log: str
    validation_log: str
    log_sizes_while_running: list[int]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def bed(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    problems = missing()
    if problems:
        pytest.skip("sandbox runtime unavailable: missing " + "; ".join(problems))
    tmp = tmp_path_factory.mktemp("builder")
    files = tmp / "files"
    files.mkdir()
    handler = lambda *a: _Quiet(*a, directory=str(files))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    runtime = Runtime()
    try:
        kit = RuntimeKit(runtime, tmp)
        net = kit.network("vnet", ["10.61.0.0/16"])
        key = kit.ssh_key()
        vm = kit.vm(net, "buildvm", VM_IP, key, admin_user=ADMIN)
        aci = kit.client(net, "aci", ACI_IP)
        http_ip, http_port = net.expose(server.server_address[1])
        blob_ip, blob_port = net.expose(azurite.port)
        storage = (
            f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
            f"BlobEndpoint=http://{blob_ip}:{blob_port}/{DEV_ACCOUNT};"
        )
        logs = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(
            "packerlogs"
        )
        yield Bed(kit, vm, key, aci, files, f"http://{http_ip}:{http_port}", storage, logs, tmp)
    finally:
        runtime.close()
        server.shutdown()


def run_agent(
    bed: Bed, build_id: str, spec: Mapping[str, Any], *, plan_in_blob: bool = False, timeout: float = 120
) -> Run:
    facts = ConnectionFacts(os_type="Linux", host=VM_IP, username=ADMIN, build_id=build_id)
    # The sandbox's VMs have no waagent: the explicit option the sandbox sets.
    build = render_build(
        spec, facts, RenderOptions(tolerate_missing_waagent=True, communicator_timeout="30s")
    )
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(bed.tmp),
        "PYTHONPATH": os.pathsep.join(sys.path),
        "KAIB_BUILD_ID": build_id,
        "KAIB_SSH_PRIVATE_KEY": bed.key.private.read_text(),
        "KAIB_STORAGE_CONNECTION_STRING": bed.storage_in_sandbox,
        "KAIB_WORKDIR": str(bed.tmp / build_id),
        "KAIB_LOG_FLUSH_SECONDS": "0.3",
        "KAIB_DOWNLOAD_ATTEMPTS": "2",
    }
    plan = json.dumps(build.to_plan())
    if plan_in_blob:  # the operator may put the plan next to the logs instead of in the environment
        bed.logs.get_blob_client(f"{build_id}/plan.json").upload_blob(plan, overwrite=True)
        env["KAIB_PLAN_BLOB"] = f"{build_id}/plan.json"
    else:
        env["KAIB_PLAN"] = plan
    proc = bed.kit.runtime.run_in(
        bed.aci,
        [sys.executable, "-m", "kaib.builder.agent"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    sizes: list[int] = []
    log = bed.logs.get_blob_client(f"{build_id}/customization.log")
    out: list[bytes] = []
    err: list[bytes] = []
    readers = [
        threading.Thread(target=lambda: out.append(proc.stdout.read() if proc.stdout else b"")),
        threading.Thread(target=lambda: err.append(proc.stderr.read() if proc.stderr else b"")),
    ]
    for t in readers:
        t.start()
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if log.exists():
                size = log.get_blob_properties().size
                if proc.poll() is None and (not sizes or size != sizes[-1]):
                    sizes.append(size)
            time.sleep(0.1)
        exit_code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        bed.kit.runtime.reap(proc, f"run-in:{bed.aci}")
    for t in readers:
        t.join()
    result = bed.blob(build_id, "result.json")
    return Run(
        exit_code=exit_code,
        stdout=b"".join(out).decode(),
        stderr=b"".join(err).decode(),
        result=json.loads(result) if result else {},
        customization_log=(bed.blob(build_id, "customization.log") or b"").decode(),
        validation_log=(bed.blob(build_id, "validation.log") or b"").decode(),
        log_sizes_while_running=sizes,
    )


def phase(run: Run, name: str) -> dict[str, Any]:
    return next(p for p in run.result["phases"] if p["name"] == name)


# What the hostile inline commands are: each is one item of `inline`, as a user writes it in YAML.
HOSTILE_TEXT = [
    "single 'quotes' and \"double\" and `backticks`",
    "dollar-brace ${HOME} and $${HOME} and %{ if x } %%{y}",
    "back\\slash \\n \\\\ trailing\\",
    "non-ASCII é 漢字 🙂\ttab",
]


def test_success_path_streams_logs_and_runs_hostile_commands_exactly(bed: Bed) -> None:
    script, script_sha = bed.serve("setup.sh", b"#!/bin/sh\necho from-script-uri > /tmp/ok-script\n")
    payload = "file payload \u00e9\n".encode()
    file_url, file_sha = bed.serve("payload.txt", payload)
    check, check_sha = bed.serve(
        "check.sh", b"#!/bin/sh\ntest -f /tmp/ok-script && echo validator-script-ok\n"
    )
    key_line = next(line for line in bed.key.private.read_text().splitlines() if "-----" not in line)
    spec = {
        "customize": [
            {
                "type": "Shell",
                "name": "hostile",
                "inline": [
                    # The exact text the target received, via a quoted heredoc (no expansion)...
                    "cat > /tmp/hostile-text <<'KAIB_EOF'",
                    *HOSTILE_TEXT,
                    "KAIB_EOF",
                    # ...and commands whose result depends on every quote and escape arriving intact.
                    "printf '%s|' \"$HOME\" '${HOME}' 'a\\b' \"c\\\"d\" 'e'\"'\"'f' > /tmp/hostile-run",
                    "echo 'multi\nline' >> /tmp/hostile-run",
                ],
            },
            {"type": "Shell", "name": "go braces", "inline": ["echo '{{ .Path }} {{x}}' > /tmp/braces"]},
            {"type": "Shell", "name": "from uri", "scriptUri": script, "sha256Checksum": script_sha},
            {"type": "File", "name": "payload", "sourceUri": file_url, "destination": "/tmp/payload.txt",
             "sha256Checksum": file_sha},
            {"type": "Shell", "name": "slow", "inline": [
                f"echo 'secret key line: {key_line}'",
                f"echo 'a SAS url: {script}'",
                "for i in 1 2 3 4 5 6; do echo tick $i; sleep 0.4; done",
            ]},
        ],
        "validate": {
            "inVMValidations": [
                {"type": "Shell", "name": "there", "inline": ["test -f /tmp/payload.txt", "cat /tmp/ok-*"]},
                {"type": "Shell", "name": "check script", "scriptUri": check, "sha256Checksum": check_sha},
            ]
        },
    }  # fmt: skip
    run = run_agent(bed, "b-success", spec)
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.result["status"] == "Succeeded" and run.result["imageReady"] is True
    assert [(p["name"], p["status"], p["exitCode"]) for p in run.result["phases"]] == [
        ("customize", "Succeeded", 0),
        ("validate", "Succeeded", 0),
        ("deprovision", "Succeeded", 0),
    ]

    # What ran on the target, byte for byte.
    assert bed.read_on_vm("/tmp/hostile-text") == ("\n".join(HOSTILE_TEXT) + "\n").encode()
    assert (
        bed.read_on_vm("/tmp/hostile-run") == f"/home/{ADMIN}|${{HOME}}|a\\b|c\"d|e'f|multi\nline\n".encode()
    )
    assert bed.read_on_vm("/tmp/braces") == b"{{ .Path }} {{x}}\n"
    assert bed.read_on_vm("/tmp/ok-script") == b"from-script-uri\n"
    assert bed.read_on_vm("/tmp/payload.txt") == payload

    # The logs: AIB-style prefixes, streamed while Packer ran, secrets redacted.
    log = run.customization_log
    assert all(line.startswith("[b-success] ") for line in log.splitlines()), log
    assert "[b-success] PACKER OUT " in log and "tick 6" in log
    assert "sha256 verified" in log
    assert key_line not in log and SIG not in log and "[REDACTED]" in log
    assert "skipping waagent deprovisioning" in log  # deprovisioning is the tail of customization.log
    growth = [
        b for a, b in zip(run.log_sizes_while_running, run.log_sizes_while_running[1:], strict=False) if b > a
    ]
    assert len(run.log_sizes_while_running) >= 3 and len(growth) >= 2, run.log_sizes_while_running
    assert "validator-script-ok" in run.validation_log
    assert all(line.startswith("[b-success] ") for line in run.validation_log.splitlines())


def test_failing_customizer_is_named_and_stops_the_build(bed: Bed) -> None:
    spec = {
        "customize": [
            {"type": "Shell", "name": "fine", "inline": ["echo first"]},
            {"type": "Shell", "name": "will fail", "inline": ["echo about to fail", "exit 7"]},
            {"type": "Shell", "name": "never", "inline": ["touch /tmp/never-ran"]},
        ],
        "validate": {"inVMValidations": [{"type": "Shell", "inline": ["true"]}]},
    }
    run = run_agent(bed, "b-custfail", spec, plan_in_blob=True)
    assert run.exit_code == 1
    customize = phase(run, "customize")
    assert customize["status"] == "Failed" and customize["exitCode"] != 0
    assert customize["failedStep"] == {"index": 2, "type": "Shell", "name": "will fail"}
    assert "exit status: 7" in customize["message"]
    assert phase(run, "validate")["status"] == "Skipped" and phase(run, "deprovision")["status"] == "Skipped"
    assert run.result["status"] == "Failed" and run.result["message"] == customize["message"]
    assert "[b-custfail] KAIB FAILED: customize step 2 (Shell) 'will fail' failed" in run.customization_log
    assert bed.read_on_vm("/tmp/never-ran") is None
    assert run.validation_log == ""


def test_file_checksums_good_and_bad(bed: Bed) -> None:
    good_url, good_sha = bed.serve("good.bin", b"good bytes\x00\x01")
    bad_url, _ = bed.serve("bad.bin", b"not what the checksum says")
    spec = {
        "customize": [
            {"type": "File", "name": "good", "sourceUri": good_url, "destination": "/tmp/good.bin",
             "sha256Checksum": good_sha},
            {"type": "File", "name": "bad", "sourceUri": bad_url, "destination": "/tmp/bad.bin",
             "sha256Checksum": "0" * 64},
        ]
    }  # fmt: skip
    run = run_agent(bed, "b-badsha", spec)
    assert run.exit_code == 1
    customize = phase(run, "customize")
    assert customize["failedStep"] == {"index": 2, "type": "File", "name": "bad"}
    assert "sha256 mismatch" in customize["message"]
    assert customize["exitCode"] is None  # Packer never ran
    assert "step 1 (File) 'good': downloaded" in run.customization_log
    assert SIG not in run.customization_log and SIG not in json.dumps(run.result)
    assert bed.read_on_vm("/tmp/bad.bin") is None


def test_validators_pass_and_fail(bed: Bed) -> None:
    spec = {
        "customize": [{"type": "Shell", "inline": ["echo customized > /tmp/validate-me"]}],
        "validate": {
            "continueDistributeOnFailure": True,
            "inVMValidations": [
                {"type": "Shell", "name": "passes", "inline": ["grep -q customized /tmp/validate-me"]},
                {"type": "Shell", "name": "fails", "inline": ["test -f /nonexistent/file"]},
            ],
        },
    }
    run = run_agent(bed, "b-valfail", spec)
    assert run.exit_code == 1
    assert phase(run, "customize")["status"] == "Succeeded"
    validate = phase(run, "validate")
    assert validate["status"] == "Failed"
    assert validate["failedStep"] == {"index": 2, "type": "Shell", "name": "fails"}
    assert "KAIB FAILED: validate step 2 (Shell) 'fails'" in run.validation_log
    assert 'note "kaib-step 1"' in run.validation_log  # the passing validator ran first
    # continueDistributeOnFailure: the image is still deprovisioned for distribution; the run fails.
    assert phase(run, "deprovision")["status"] == "Succeeded" and run.result["imageReady"] is True
    assert run.result["status"] == "Failed"
