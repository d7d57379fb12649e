"""One running sandbox: TLS files, Azurite, the engine and the HTTPS server, its client environment,
and (with a state file) persistence across restarts. `kaib sandbox` and the test fixture run this."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from . import config as cfg
from .azurite import Azurite
from .control import Control, FaultRule, PolicyRule
from .engine import Engine
from .hooks import ModelledHooks, Outcome, SandboxHooks
from .kinds import registry
from .latency import LatencyModel
from .server import ArmServer, Tokens
from .store import save_json
from .tls import ensure_tls

log = logging.getLogger(__name__)
DEFAULT_SUBSCRIPTION = "5a4d1e2c-0b6f-4c7a-9d3e-8f1a2b3c4d5e"
DEFAULT_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
DEFAULT_CLIENT = "0e1d2c3b-4a59-4687-9a8b-7c6d5e4f3a2b"


@dataclass
class Options:
    port: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    state_file: Path | None = None
    latency_scale: float | None = None
    with_azurite: bool = True
    hooks: SandboxHooks | None = None


class Sandbox:
    def __init__(self, options: Options) -> None:
        self.options = options
        conf = options.config
        self.subscription_id = str(conf.get("subscriptionId", DEFAULT_SUBSCRIPTION))
        self.tenant_id = str(conf.get("tenantId", DEFAULT_TENANT))
        self.client_id = str(conf.get("clientId", DEFAULT_CLIENT))
        if options.state_file is not None:
            self.dir = Path(str(options.state_file) + ".d")
            self.dir.mkdir(parents=True, exist_ok=True)
            self._own_dir = False
        else:
            self.dir = Path(tempfile.mkdtemp(prefix="kaib-sandbox-"))
            self._own_dir = True
        self.control = Control()
        self.latency = LatencyModel()
        cfg.apply(self.control, self.latency, conf)
        if options.latency_scale is not None:
            self.latency.scale = options.latency_scale
        self.engine = Engine(
            registry(), self.latency, self.control, options.hooks or ModelledHooks(), self.tenant_id
        )
        self.azurite: Azurite | None = None
        self.runner: web.AppRunner | None = None
        self.port = 0
        self._saver: asyncio.Task[None] | None = None
        self._saved = _read_state(options.state_file)
        if self._saved:
            self._restore_knobs(self._saved.get("control", {}))

    async def start(self) -> None:
        tls = ensure_tls(self.dir / "tls")
        secret_file = self.dir / "token-secret"
        if not secret_file.exists():
            secret_file.write_bytes(secrets.token_bytes(32))
            secret_file.chmod(0o600)
        federated = self.dir / "federated-token"
        federated.write_text("kaib-sandbox-federated-assertion." + secrets.token_hex(16))
        # A restarted persisted sandbox keeps its ports: its operation URLs, storage endpoints and the
        # SAS URLs callers made from them (in container groups' environment, in callers' status) hold them.
        endpoints = self._saved.get("endpoints", {})
        if self.options.with_azurite:
            location = self.dir / "azurite" if self.options.state_file else None
            port = int(endpoints.get("azuritePort", 0))
            self.azurite = await asyncio.to_thread(Azurite.start, location, port)
            self.engine.extensions["azurite"] = self.azurite
        self.engine.restore(self._saved.get("resources", []), self._saved.get("operations", []))
        server = ArmServer(self.engine, Tokens(secret_file.read_bytes()), self.client_id, self.reset)
        self.runner = web.AppRunner(server.app(), access_log=None)
        await self.runner.setup()
        port = self.options.port or int(endpoints.get("port", 0))
        site = web.TCPSite(
            self.runner, "127.0.0.1", port, ssl_context=tls.server_context(), reuse_address=True
        )
        await site.start()
        self.port = _bound_port(site) or port
        self.engine.ops.base_url = f"https://127.0.0.1:{self.port}"
        self.env = self._client_env(tls.ca, federated)
        server.env = self.env
        if self.options.state_file is not None:
            self._saver = asyncio.ensure_future(self._save_loop())

    def _client_env(self, ca: Path, federated: Path) -> dict[str, str]:
        endpoint = f"https://127.0.0.1:{self.port}"
        return {
            "KAIB_ARM_ENDPOINT": endpoint,
            "KAIB_SANDBOX_ADMIN": f"{endpoint}/_sandbox",
            "AZURE_SUBSCRIPTION_ID": self.subscription_id,
            "AZURE_TENANT_ID": self.tenant_id,
            "AZURE_CLIENT_ID": self.client_id,
            "AZURE_FEDERATED_TOKEN_FILE": str(federated),
            "AZURE_AUTHORITY_HOST": endpoint,
            "AZURE_TOKEN_CREDENTIALS": "WorkloadIdentityCredential",
            "SSL_CERT_FILE": str(ca),
            "REQUESTS_CA_BUNDLE": str(ca),
            "NO_PROXY": "127.0.0.1,localhost",
        }

    async def reset(self) -> None:
        await self.engine.reset()
        self.control.reset()
        cfg.apply(self.control, self.latency, self.options.config)
        if self.options.latency_scale is not None:
            self.latency.scale = self.options.latency_scale

    async def stop(self) -> None:
        if self._saver is not None:
            self._saver.cancel()
            await asyncio.gather(self._saver, return_exceptions=True)
            self.save()
        if self.runner is not None:
            await self.runner.cleanup()
        await self.engine.ops.cancel_all()
        await self.engine.hooks.close()
        if self.azurite is not None:
            await asyncio.to_thread(self.azurite.stop)
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    # Persistence ----------------------------------------------------------------------------------
    def save(self) -> None:
        """Everything a restart needs to answer as before: resources, operations, knobs, ports."""
        if self.options.state_file is None:
            return
        control = self.control
        document = {
            "resources": self.engine.store.dump(),
            "operations": self.engine.ops.dump(),
            "control": {
                "quotas": control.quotas,
                "unregistered": sorted(control.unregistered),
                "throttling": control.throttling,
                "ownerTagPrefix": control.owner_tag_prefix,
                "faults": [vars(f) for f in control.faults],
                "policies": [vars(p) for p in control.policies],
                "outcomes": [{"name": n, **dataclasses.asdict(o)} for n, o in control.outcomes],
                "latency": {
                    "scale": self.latency.scale,
                    "seconds": {f"{t}:{o}": s for (t, o), s in self.latency.overrides.items()},
                },
            },
            "endpoints": {"port": self.port, "azuritePort": self.azurite.port if self.azurite else 0},
        }
        save_json(self.options.state_file, json.loads(json.dumps(document, default=str)))

    def _restore_knobs(self, saved: dict[str, Any]) -> None:
        """The knobs as they were when the state was saved: they replace what --config and
        --latency-scale set, which only set up a new sandbox."""
        control = self.control
        control.quotas.update(saved.get("quotas", {}))
        control.unregistered = set(saved.get("unregistered", []))
        control.throttling = bool(saved.get("throttling", False))
        control.owner_tag_prefix = str(saved.get("ownerTagPrefix", control.owner_tag_prefix))
        if "faults" in saved:  # a state file from before knobs were saved keeps the config's
            control.faults = [FaultRule(**f) for f in saved["faults"]]
            control._next_id = max((f.id for f in control.faults), default=0) + 1  # ids stay unique
            control.policies = [PolicyRule(**p) for p in saved.get("policies", [])]
            control.outcomes = [(o.pop("name"), Outcome(**o)) for o in saved.get("outcomes", [])]
        if "latency" in saved:
            self.latency.overrides.clear()
            cfg.apply_latency(self.latency, saved["latency"])
        elif "latencyScale" in saved:
            self.latency.scale = float(saved["latencyScale"])

    async def _save_loop(self) -> None:
        while True:
            await asyncio.sleep(2)
            try:
                self.save()
            except OSError as exc:
                log.warning("could not save the sandbox state: %s", exc)


def _read_state(path: Path | None) -> dict[str, Any]:
    if path is None or not path.exists():
        return {}
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def _bound_port(site: web.TCPSite) -> int:
    server: Any = site._server  # aiohttp keeps the asyncio server here; port 0 needs the real one
    sockets = getattr(server, "sockets", None) or []
    return int(sockets[0].getsockname()[1]) if sockets else 0


def export_lines(env: dict[str, str]) -> str:
    import shlex

    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())


def write_env_file(path: Path, env: dict[str, str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(export_lines(env))
    os.replace(tmp, path)
