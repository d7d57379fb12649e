"""Where the Kubernetes API is and how to authenticate to it: the in-cluster service account, else a
kubeconfig (KUBECONFIG or ~/.kube/config).

kaib talks to the apiserver over aiohttp (kaib.controller.kube) and hands the same credentials to
kopf (`connection_info`), so it needs no Kubernetes client package: the official one costs ~36 MB
resident and a thread per call. What a kubeconfig may hold, and what is read of it:
- server, certificate-authority(-data), insecure-skip-tls-verify, tls-server-name;
- client-certificate(-data) and client-key(-data), token, tokenFile, username and password;
- exec credential plugins (client.authentication.k8s.io, e.g. kubelogin for AKS), run again when
  the credential expires;
- relative paths are relative to the kubeconfig file, as kubectl reads them.
Legacy auth-provider entries (removed from kubectl in 1.26) are refused with a message saying so.
Tokens are re-read (service account: rotated by the kubelet) or re-run (exec) before they expire.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import kopf
import yaml

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REREAD = 60.0  # seconds: the kubelet rotates projected tokens well before they expire
EXEC_EARLY = 60.0  # seconds before an exec credential's expiry that it is run again


class KubeConfigError(Exception):
    """The kubeconfig (or service account) cannot be used; the message says what and where."""


@dataclass
class ExecPlugin:
    """A kubeconfig `exec` entry: a command that prints an ExecCredential."""

    command: str
    args: list[str]
    env: dict[str, str]
    api_version: str
    workdir: Path

    async def run(self) -> tuple[str | None, bytes | None, bytes | None, float | None]:
        """(token, client certificate PEM, client key PEM, expiry as a UNIX time or None)."""
        request = {"apiVersion": self.api_version, "kind": "ExecCredential", "spec": {"interactive": False}}
        env = {**os.environ, **self.env, "KUBERNETES_EXEC_INFO": json.dumps(request)}
        try:
            proc = await asyncio.create_subprocess_exec(
                self.command,
                *self.args,
                env=env,
                cwd=self.workdir,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise KubeConfigError(f"kubeconfig exec plugin {self.command!r} could not run: {exc}") from exc
        out, err = await proc.communicate()
        if proc.returncode != 0:
            tail = err.decode(errors="replace").strip()[-500:]
            raise KubeConfigError(f"kubeconfig exec plugin {self.command!r} exited {proc.returncode}: {tail}")
        try:
            status = json.loads(out)["status"]
        except (ValueError, KeyError, TypeError) as exc:
            raise KubeConfigError(
                f"kubeconfig exec plugin {self.command!r} did not print an ExecCredential with a status"
            ) from exc
        expiry = status.get("expirationTimestamp")
        expires = datetime.fromisoformat(expiry.replace("Z", "+00:00")).timestamp() if expiry else None
        cert, key = status.get("clientCertificateData"), status.get("clientKeyData")
        return status.get("token"), cert.encode() if cert else None, key.encode() if key else None, expires


@dataclass
class KubeCredentials:
    """An apiserver endpoint and what proves who we are to it."""

    server: str
    ca_pem: bytes | None = None
    insecure: bool = False
    server_name: str | None = None
    client_cert_pem: bytes | None = None
    client_key_pem: bytes | None = None
    token: str | None = None
    token_file: Path | None = None
    username: str | None = None
    password: str | None = None
    exec_plugin: ExecPlugin | None = None
    default_namespace: str | None = None
    _expires: float | None = field(default=None, repr=False)  # when `token` must be fetched again
    _lock: asyncio.Lock | None = field(default=None, repr=False)

    async def authorization(self) -> str | None:
        """The Authorization header's value now (refreshing an expiring token), or None (certs only)."""
        if self._stale():
            self._lock = self._lock or asyncio.Lock()
            async with self._lock:
                if self._stale():  # another call may have refreshed it meanwhile
                    await self.refresh()
        if self.token:
            return f"Bearer {self.token}"
        if self.username is not None and self.password is not None:
            basic = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            return f"Basic {basic}"
        return None

    def _stale(self) -> bool:
        refreshable = self.token_file is not None or self.exec_plugin is not None
        return refreshable and (self._expires is None or time.time() >= self._expires)

    async def refresh(self) -> None:
        """Read the token file again, or run the exec plugin again."""
        if self.token_file is not None:
            try:
                self.token = self.token_file.read_text().strip()
            except OSError as exc:
                raise KubeConfigError(f"token file {self.token_file}: {exc}") from exc
            self._expires = time.time() + TOKEN_REREAD
        elif self.exec_plugin is not None:
            token, cert, key, expires = await self.exec_plugin.run()
            self.token = token
            if cert and key:
                self.client_cert_pem, self.client_key_pem = cert, key
            # No expiry: the credential is good until the apiserver says 401 (`expire` is called then).
            self._expires = (expires - EXEC_EARLY) if expires else float("inf")

    def expire(self) -> None:
        """The apiserver refused the token (401): fetch a new one before the next call."""
        if self.token_file is not None or self.exec_plugin is not None:
            self._expires = None

    def ssl_context(self) -> ssl.SSLContext:
        if self.insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif self.ca_pem:
            context = ssl.create_default_context(cadata=self.ca_pem.decode())
        else:
            context = ssl.create_default_context()
        if self.client_cert_pem and self.client_key_pem:
            _load_client_cert(context, self.client_cert_pem, self.client_key_pem)
        return context

    async def connection_info(self) -> kopf.ConnectionInfo:
        """The same endpoint and identity, in kopf's terms (for its login handler)."""
        # kopf logs in at start and after a 401: fetch the token afresh (a cheap file read or one exec).
        self.expire()
        await self.authorization()
        # Only an exec credential's expiry is real; a token file is re-read on kopf's next 401.
        expires = self._expires if self.exec_plugin is not None and self._expires != float("inf") else None
        return kopf.ConnectionInfo(
            server=self.server,
            ca_data=self.ca_pem,
            insecure=self.insecure or None,
            certificate_data=self.client_cert_pem,
            private_key_data=self.client_key_pem,
            token=self.token,
            username=self.username,
            password=self.password,
            default_namespace=self.default_namespace,
            expiration=datetime.fromtimestamp(expires).astimezone() if expires else None,
        )


def _load_client_cert(context: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    # ssl loads a client certificate from files only: a private temporary directory, removed at once.
    with tempfile.TemporaryDirectory(prefix="kaib-kube-") as tmp:
        cert_path, key_path = Path(tmp) / "client.crt", Path(tmp) / "client.key"
        cert_path.write_bytes(cert)
        key_path.write_bytes(key)
        context.load_cert_chain(cert_path, key_path)


def load(kubeconfig: str | None = None) -> KubeCredentials:
    """From `kubeconfig` (a path, or several joined by os.pathsep), else KUBECONFIG, else the
    in-cluster service account, else ~/.kube/config."""
    paths = kubeconfig or os.environ.get("KUBECONFIG")
    if paths:
        return from_kubeconfig(paths)
    if (SERVICE_ACCOUNT / "token").exists() and os.environ.get("KUBERNETES_SERVICE_HOST"):
        return in_cluster()
    default = Path.home() / ".kube" / "config"
    if default.exists():
        return from_kubeconfig(str(default))
    raise KubeConfigError(
        "no Kubernetes credentials: set KUBECONFIG (or --kubeconfig), or run in a pod with a service account"
    )


def in_cluster() -> KubeCredentials:
    host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    ca = SERVICE_ACCOUNT / "ca.crt"
    namespace = SERVICE_ACCOUNT / "namespace"
    return KubeCredentials(
        server=f"https://{host}:{port}",
        ca_pem=ca.read_bytes() if ca.exists() else None,
        token_file=SERVICE_ACCOUNT / "token",
        default_namespace=namespace.read_text().strip() if namespace.exists() else None,
    )


def from_kubeconfig(paths: str) -> KubeCredentials:
    """The current context of the kubeconfig files in `paths` (the first file to set a value wins)."""
    merged: dict[str, dict[str, Any]] = {"clusters": {}, "users": {}, "contexts": {}}
    current: str | None = None
    origin: dict[tuple[str, str], Path] = {}  # (section, name) -> the file it came from
    for raw in (p for p in paths.split(os.pathsep) if p):
        path = Path(raw).expanduser()
        try:
            config = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise KubeConfigError(f"kubeconfig {path}: {exc}") from exc
        current = current or config.get("current-context")
        for section, key in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
            for item in config.get(section) or []:
                name = item.get("name")
                if name is not None and name not in merged[section]:
                    merged[section][name] = item.get(key) or {}
                    origin[(section, name)] = path.parent
    if not current or current not in merged["contexts"]:
        raise KubeConfigError(f"kubeconfig {paths}: current-context {current!r} is not one of its contexts")
    context = merged["contexts"][current]
    cluster_name, user_name = context.get("cluster"), context.get("user")
    if cluster_name not in merged["clusters"]:
        raise KubeConfigError(
            f"kubeconfig {paths}: context {current!r} names cluster {cluster_name!r}, not defined"
        )
    cluster = merged["clusters"][cluster_name]
    user = merged["users"].get(user_name) or {}
    cluster_dir = origin[("clusters", cluster_name)]
    user_dir = origin.get(("users", str(user_name)), cluster_dir)
    if not cluster.get("server"):
        raise KubeConfigError(f"kubeconfig {paths}: cluster {cluster_name!r} has no server")
    if user.get("auth-provider"):
        raise KubeConfigError(
            f"kubeconfig {paths}: user {user_name!r} uses an auth-provider, which kubectl no longer "
            "supports; use an exec plugin (for AKS: kubelogin convert-kubeconfig)"
        )
    exec_plugin = None
    if user.get("exec"):
        spec = user["exec"]
        exec_plugin = ExecPlugin(
            command=str(spec.get("command") or ""),
            args=[str(a) for a in spec.get("args") or []],
            env={str(e["name"]): str(e["value"]) for e in spec.get("env") or []},
            api_version=str(spec.get("apiVersion") or "client.authentication.k8s.io/v1"),
            workdir=user_dir,
        )
    token_file = user.get("tokenFile")
    return KubeCredentials(
        server=str(cluster["server"]).rstrip("/"),
        ca_pem=_data_or_file(cluster, "certificate-authority", cluster_dir),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        server_name=cluster.get("tls-server-name"),
        client_cert_pem=_data_or_file(user, "client-certificate", user_dir),
        client_key_pem=_data_or_file(user, "client-key", user_dir),
        token=user.get("token"),
        token_file=_resolve(token_file, user_dir) if token_file else None,
        username=user.get("username"),
        password=user.get("password"),
        exec_plugin=exec_plugin,
        default_namespace=context.get("namespace"),
    )


def _resolve(path: str, base: Path) -> Path:
    resolved = Path(path).expanduser()
    return resolved if resolved.is_absolute() else base / resolved


def _data_or_file(entry: Mapping[str, Any], key: str, base: Path) -> bytes | None:
    """`key-data` (base64) or the file `key` names (relative to the kubeconfig's directory)."""
    data = entry.get(f"{key}-data")
    if data:
        return base64.b64decode(data)
    path = entry.get(key)
    if not path:
        return None
    try:
        return _resolve(str(path), base).read_bytes()
    except OSError as exc:
        raise KubeConfigError(f"kubeconfig {key} {path}: {exc}") from exc
