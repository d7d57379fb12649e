"""kaib.controller.kubeauth: what is read of a kubeconfig and of a service account, and when a token
is fetched again."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from kaib.controller import kubeauth
from kaib.controller.kubeauth import KubeConfigError


def write_config(path: Path, user: dict[str, Any], cluster: dict[str, Any] | None = None) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster or {"server": "https://127.0.0.1:6443/"}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u", "namespace": "team-a"}}],
        "current-context": "ctx",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_token_and_ca_data(tmp_path: Path) -> None:
    ca = base64.b64encode(b"-----CA-----").decode()
    creds = kubeauth.from_kubeconfig(
        str(
            write_config(
                tmp_path / "config",
                {"token": "t0k"},
                {"server": "https://10.0.0.1:443/", "certificate-authority-data": ca},
            )
        )
    )
    assert creds.server == "https://10.0.0.1:443"  # no trailing slash: paths are appended
    assert creds.ca_pem == b"-----CA-----"
    assert creds.default_namespace == "team-a"
    assert asyncio.run(creds.authorization()) == "Bearer t0k"


def test_relative_paths_are_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "ca.crt").write_bytes(b"ca")
    (tmp_path / "pki" / "client.crt").write_bytes(b"cert")
    (tmp_path / "pki" / "client.key").write_bytes(b"key")
    path = write_config(
        tmp_path / "config",
        {"client-certificate": "pki/client.crt", "client-key": "pki/client.key"},
        {"server": "https://h", "certificate-authority": "pki/ca.crt"},
    )
    cwd = os.getcwd()
    os.chdir("/")
    try:
        creds = kubeauth.from_kubeconfig(str(path))
    finally:
        os.chdir(cwd)
    assert (creds.ca_pem, creds.client_cert_pem, creds.client_key_pem) == (b"ca", b"cert", b"key")
    assert asyncio.run(creds.authorization()) is None  # client certificates only


def test_first_file_wins_when_merging(tmp_path: Path) -> None:
    first = write_config(tmp_path / "a", {"token": "first"})
    second = write_config(tmp_path / "b", {"token": "second"}, {"server": "https://other"})
    creds = kubeauth.from_kubeconfig(f"{first}{os.pathsep}{second}")
    assert creds.server == "https://127.0.0.1:6443"
    assert asyncio.run(creds.authorization()) == "Bearer first"


def test_basic_auth(tmp_path: Path) -> None:
    creds = kubeauth.from_kubeconfig(str(write_config(tmp_path / "c", {"username": "u", "password": "p"})))
    assert asyncio.run(creds.authorization()) == "Basic " + base64.b64encode(b"u:p").decode()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"current-context": "nope"}, "current-context 'nope' is not one of its contexts"),
        ({"clusters": [{"name": "c", "cluster": {}}]}, "cluster 'c' has no server"),
        (
            {"users": [{"name": "u", "user": {"auth-provider": {"name": "azure"}}}]},
            "uses an auth-provider, which kubectl no longer supports",
        ),
        (
            {"contexts": [{"name": "ctx", "context": {"cluster": "x", "user": "u"}}]},
            "names cluster 'x', not defined",
        ),
    ],
)
def test_unusable_kubeconfigs_say_why(tmp_path: Path, config: dict[str, Any], message: str) -> None:
    path = write_config(tmp_path / "config", {"token": "t"})
    merged = {**yaml.safe_load(path.read_text()), **config}
    path.write_text(yaml.safe_dump(merged))
    with pytest.raises(KubeConfigError, match=message):
        kubeauth.from_kubeconfig(str(path))


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError, match=r"kubeconfig .*missing"):
        kubeauth.from_kubeconfig(str(tmp_path / "missing"))
    path = write_config(tmp_path / "config", {"client-certificate": "gone.crt", "client-key": "k"})
    with pytest.raises(KubeConfigError, match=r"client-certificate gone\.crt"):
        kubeauth.from_kubeconfig(str(path))


def plugin(tmp_path: Path, token: str, expires_in: float | None, exit_code: int = 0) -> Path:
    """An exec credential plugin that counts its runs in `runs` and prints `token`."""
    status: dict[str, Any] = {"token": token}
    if expires_in is not None:
        when = time.gmtime(time.time() + expires_in)
        status["expirationTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", when)
    credential = json.dumps(
        {"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential", "status": status}
    )
    script = tmp_path / "plugin.sh"
    script.write_text(
        "#!/bin/sh\n"
        f'echo run >> "{tmp_path}/runs"\n'
        'test -n "$KUBERNETES_EXEC_INFO" || exit 3\n'
        f'test "$PLUGIN_ENV" = set || exit 4\n'
        f"echo '{credential}'\n"
        f"exit {exit_code}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def exec_config(tmp_path: Path, script: Path) -> kubeauth.KubeCredentials:
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": f"./{script.name}",  # relative: to the kubeconfig's directory
            "env": [{"name": "PLUGIN_ENV", "value": "set"}],
        }
    }
    return kubeauth.from_kubeconfig(str(write_config(tmp_path / "config", user)))


def runs(tmp_path: Path) -> int:
    return len((tmp_path / "runs").read_text().splitlines())


def test_exec_plugin_runs_once_until_its_credential_expires(tmp_path: Path) -> None:
    creds = exec_config(tmp_path, plugin(tmp_path, "from-exec", expires_in=3600))

    async def twice() -> list[str | None]:
        return [await creds.authorization(), await creds.authorization()]

    assert asyncio.run(twice()) == ["Bearer from-exec", "Bearer from-exec"]
    assert runs(tmp_path) == 1
    info = asyncio.run(creds.connection_info())  # kopf's login: a fresh credential, with its expiry
    assert info.token == "from-exec" and info.expiration is not None
    assert runs(tmp_path) == 2


def test_exec_plugin_expiring_soon_runs_again(tmp_path: Path) -> None:
    creds = exec_config(tmp_path, plugin(tmp_path, "short", expires_in=30))  # inside EXEC_EARLY
    asyncio.run(creds.authorization())
    asyncio.run(creds.authorization())
    assert runs(tmp_path) == 2


def test_a_401_makes_the_next_call_fetch_again(tmp_path: Path) -> None:
    creds = exec_config(tmp_path, plugin(tmp_path, "t", expires_in=None))
    asyncio.run(creds.authorization())
    asyncio.run(creds.authorization())
    assert runs(tmp_path) == 1  # no expiry: good until refused
    creds.expire()
    asyncio.run(creds.authorization())
    assert runs(tmp_path) == 2


def test_failing_exec_plugin_says_why(tmp_path: Path) -> None:
    creds = exec_config(tmp_path, plugin(tmp_path, "t", expires_in=None, exit_code=7))
    with pytest.raises(KubeConfigError, match="exited 7"):
        asyncio.run(creds.authorization())


def test_service_account_token_is_reread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kubeauth, "SERVICE_ACCOUNT", tmp_path)
    (tmp_path / "token").write_text("first\n")
    (tmp_path / "ca.crt").write_bytes(b"ca")
    (tmp_path / "namespace").write_text("kaib-system")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    creds = kubeauth.load(None)
    assert creds.server == "https://[fd00::1]:443"
    assert (creds.ca_pem, creds.default_namespace) == (b"ca", "kaib-system")
    assert asyncio.run(creds.authorization()) == "Bearer first"
    (tmp_path / "token").write_text("rotated\n")  # the kubelet rotates it
    assert asyncio.run(creds.authorization()) == "Bearer first"  # re-read after TOKEN_REREAD
    creds.expire()  # or at once after a 401
    assert asyncio.run(creds.authorization()) == "Bearer rotated"


def test_no_credentials_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kubeauth, "SERVICE_ACCOUNT", tmp_path)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(KubeConfigError, match="no Kubernetes credentials"):
        kubeauth.load(None)
