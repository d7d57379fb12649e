"""The agent's settings, read from its environment (pure: a mapping in, a frozen config out).

The variable names are listed in `kaib.builder.agent`'s docstring, the operator's reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_CONTAINER = "packerlogs"
MAX_FLUSH_SECONDS = 2.0  # the logs promise: appended at least every 2 seconds


class ConfigError(ValueError):
    """The environment does not say enough (or says something contradictory) to run the build."""


@dataclass(frozen=True)
class StorageConfig:
    connection_string: str = ""  # Azurite, or an account key / SAS connection string
    account_url: str = ""  # https://<account>.blob.core.windows.net
    sas_token: str = ""  # with account_url; neither means DefaultAzureCredential

    def secrets(self) -> list[str]:
        return [s for s in (self.connection_string, self.sas_token) if s]


@dataclass(frozen=True)
class AgentConfig:
    build_id: str
    storage: StorageConfig
    container: str = DEFAULT_CONTAINER
    log_prefix: str = ""  # blob folder for the logs and result.json; default: the build id
    plan_json: str = ""
    plan_blob: str = ""  # blob name inside `container`, when the plan is not in the environment
    ssh_private_key: str = ""
    winrm_password: str = ""
    host: str = ""  # overrides of the plan's connection facts (Packer variables)
    port: str = ""
    username: str = ""
    workdir: str = ""
    packer: str = "packer"
    packer_debug_log: bool = False
    flush_seconds: float = 1.0
    download_attempts: int = 5
    download_timeout: float = 60.0

    @property
    def prefix(self) -> str:
        return self.log_prefix or self.build_id

    def blob(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def secrets(self) -> list[str]:
        """Strings never to appear in a log line."""
        out = [*self.storage.secrets(), self.winrm_password]
        # Each line of a private key is secret; the BEGIN/END armour lines are not, and are short.
        out += [line.strip() for line in self.ssh_private_key.splitlines() if len(line.strip()) >= 16]
        return [s for s in out if s and "-----" not in s]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AgentConfig:
        def get(name: str, default: str = "") -> str:
            return env.get(name, default).strip() if name not in _VERBATIM else env.get(name, default)

        build_id = get("KAIB_BUILD_ID")
        if not build_id:
            raise ConfigError("KAIB_BUILD_ID is required")
        storage = StorageConfig(
            connection_string=get("KAIB_STORAGE_CONNECTION_STRING"),
            account_url=get("KAIB_STORAGE_ACCOUNT_URL"),
            sas_token=get("KAIB_STORAGE_SAS_TOKEN").lstrip("?"),
        )
        if not storage.connection_string and not storage.account_url:
            raise ConfigError("set KAIB_STORAGE_CONNECTION_STRING or KAIB_STORAGE_ACCOUNT_URL")
        plan_json, plan_blob = get("KAIB_PLAN"), get("KAIB_PLAN_BLOB")
        if bool(plan_json) == bool(plan_blob):
            raise ConfigError("set exactly one of KAIB_PLAN (the plan's JSON) or KAIB_PLAN_BLOB")
        flush = _number(env, "KAIB_LOG_FLUSH_SECONDS", 1.0)
        if not 0 < flush <= MAX_FLUSH_SECONDS:
            raise ConfigError(f"KAIB_LOG_FLUSH_SECONDS must be in (0, {MAX_FLUSH_SECONDS}]")
        return cls(
            build_id=build_id,
            storage=storage,
            container=get("KAIB_LOG_CONTAINER", DEFAULT_CONTAINER) or DEFAULT_CONTAINER,
            log_prefix=get("KAIB_LOG_PREFIX").strip("/"),
            plan_json=plan_json,
            plan_blob=plan_blob,
            ssh_private_key=get("KAIB_SSH_PRIVATE_KEY"),
            winrm_password=get("KAIB_WINRM_PASSWORD"),
            host=get("KAIB_BUILD_VM_HOST"),
            port=get("KAIB_BUILD_VM_PORT"),
            username=get("KAIB_BUILD_VM_USERNAME"),
            workdir=get("KAIB_WORKDIR"),
            packer=get("KAIB_PACKER", "packer") or "packer",
            packer_debug_log=get("KAIB_PACKER_LOG") in ("1", "true"),
            flush_seconds=flush,
            download_attempts=max(1, int(_number(env, "KAIB_DOWNLOAD_ATTEMPTS", 5))),
            download_timeout=_number(env, "KAIB_DOWNLOAD_TIMEOUT_SECONDS", 60.0),
        )


# Secrets are taken byte for byte: a password may begin or end with a space.
_VERBATIM = {"KAIB_WINRM_PASSWORD", "KAIB_SSH_PRIVATE_KEY"}


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None
