"""A real Kubernetes control plane (etcd + kube-apiserver) on loopback, started the way envtest does.

There are no controllers and no kubelet: namespaces never finish terminating, ownerReferences are
not garbage-collected and no pod runs. What it does give is exactly the API semantics kaib depends
on: CRD schemas and pruning, CEL rules, the status subresource, finalizers and RBAC.

Authentication is a static admin token (group system:masters) plus service-account tokens signed
with a key made at start, so tests can act as the chart's ServiceAccount. The serving certificate
comes from a CA made at start (trustme), written into the kubeconfig.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import trustme
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kaib.devenv import assets as assets_mod

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_until(what: str, check: object, timeout: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"{what} exited with status {proc.returncode}; its log ends:\n{tail}")
        if callable(check) and check():
            return
        time.sleep(0.2)
    raise TimeoutError(f"{what} was not ready after {timeout:.0f}s; see {log}")


@dataclass
class ControlPlane:
    """etcd + kube-apiserver in `workdir`. `start()`, then use `kubeconfig`; `stop()` ends both."""

    workdir: Path
    binaries: assets_mod.Assets | None = None
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    port: int = 0
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _api_argv: list[str] = field(default_factory=list)

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "pki" / "ca.crt"

    def start(self, timeout: float = 90.0) -> None:
        self.binaries = self.binaries or assets_mod.ensure()
        self.workdir.mkdir(parents=True, exist_ok=True)
        pki = self._write_pki()
        etcd_port, peer_port = free_port(), free_port()
        self.port = free_port()

        etcd_log = self.workdir / "etcd.log"
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        etcd = self._spawn(
            [
                str(self.binaries.etcd),
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
            etcd_log,
        )
        _wait_until("etcd", lambda: _http_ok(f"{etcd_url}/health"), timeout, etcd, etcd_log)

        api_log = self.workdir / "kube-apiserver.log"
        self._api_argv = [
            str(self.binaries.kube_apiserver),
            f"--etcd-servers={etcd_url}",
            f"--cert-dir={pki}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--secure-port={self.port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--authorization-mode=RBAC",
            "--disable-admission-plugins=ServiceAccount",
            f"--token-auth-file={pki / 'tokens.csv'}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--allow-privileged=true",
            "--v=0",
        ]
        api = self._spawn(self._api_argv, api_log)
        _wait_until("kube-apiserver", self._ready, timeout, api, api_log)
        self._write_kubeconfig()

    def restart_apiserver(self, down_seconds: float = 0.0, timeout: float = 90.0) -> None:
        """Stop only the kube-apiserver (SIGTERM), stay down `down_seconds`, start it again on the same
        port with the same certificates and etcd: what clients see when a control plane is upgraded."""
        assert self._api_argv, "start() first"
        api = next(p for p in self._procs if p.args == self._api_argv)
        api.send_signal(signal.SIGTERM)
        try:
            api.wait(timeout=15)
        except subprocess.TimeoutExpired:
            api.kill()
            api.wait()
        self._procs.remove(api)
        time.sleep(down_seconds)
        log = self.workdir / "kube-apiserver.log"
        _wait_until("kube-apiserver", self._ready, timeout, self._spawn(self._api_argv, log), log)

    def stop(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self._procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs.clear()

    def alive(self) -> bool:
        return bool(self._procs) and all(p.poll() is None for p in self._procs)

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        assert self.binaries is not None, "start() first"
        result = subprocess.run(
            [str(self.binaries.kubectl), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            text=True,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def install_crds(self, crd_dir: Path) -> None:
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd_dir))
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(crd_dir))

    # -- internals -------------------------------------------------------------------------------

    def _spawn(self, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._procs.append(proc)
        return proc

    def _ready(self) -> bool:
        request = urllib.request.Request(
            f"{self.url}/readyz", headers={"Authorization": f"Bearer {self.token}"}
        )
        try:
            import ssl

            context = ssl.create_default_context(cafile=str(self.ca_file))
            with urllib.request.urlopen(request, context=context, timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def _write_pki(self) -> Path:
        pki = self.workdir / "pki"
        if pki.exists():
            shutil.rmtree(pki)
        pki.mkdir(parents=True)
        ca = trustme.CA()
        ca.cert_pem.write_to_path(str(pki / "ca.crt"))
        serving = ca.issue_cert("127.0.0.1", "localhost", "kubernetes", "kubernetes.default.svc")
        serving.private_key_pem.write_to_path(str(pki / "apiserver.key"))
        with (pki / "apiserver.crt").open("wb") as f:
            for blob in serving.cert_chain_pems:
                f.write(blob.bytes())
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (pki / "sa.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        (pki / "sa.pub").write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        (pki / "tokens.csv").write_text(f'{self.token},admin,admin,"system:masters"\n')
        os.chmod(pki / "tokens.csv", 0o600)
        return pki

    def _write_kubeconfig(self) -> None:
        ca_data = base64.b64encode(self.ca_file.read_bytes()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "kaib", "cluster": {"server": self.url, "certificate-authority-data": ca_data}}
            ],
            "users": [{"name": "admin", "user": {"token": self.token}}],
            "contexts": [
                {"name": "kaib", "context": {"cluster": "kaib", "user": "admin", "namespace": "default"}}
            ],
            "current-context": "kaib",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))
        os.chmod(self.kubeconfig, 0o600)

    def kubeconfig_for_token(self, token: str, path: Path) -> Path:
        """A kubeconfig that acts with `token` (a ServiceAccount's, say) instead of the admin's."""
        config = yaml.safe_load(self.kubeconfig.read_text())
        config["users"] = [{"name": "sa", "user": {"token": token}}]
        config["contexts"][0]["context"]["user"] = "sa"
        path.write_text(yaml.safe_dump(config))
        os.chmod(path, 0o600)
        return path


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False
