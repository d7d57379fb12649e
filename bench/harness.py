"""What the build benchmarks share: the sandbox, the real control plane and `kaib run` as processes,
template and build manifests, waiting for builds, the machine and load average, writing a result.

Same shape as tests/integration/test_engine.py (an `Operator` process, template/build manifests),
kept here so benchmarks never import test code. Everything binds to 127.0.0.1.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kaib.devenv.assets import cache_root
from kaib.devenv.controlplane import ControlPlane

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
GROUP, VERSION = "kaib.dev", "v1alpha1"
LOCATION = "westus"
IMAGES_RG = "images"
FINAL = {"Succeeded", "PartiallySucceeded", "Failed", "Canceled"}
TOPOLOGIES = ("NoVNet", "SubnetOnly", "SubnetAndACI")


# -- the operator's Python ------------------------------------------------------------------------

RUNTIME_ENV = "runtime (uv sync --frozen --no-dev --compile-bytecode, like the image; kaib editable)"
PROBE = (
    "import importlib.util, json, platform, kaib; print(json.dumps({"
    "'python_version': platform.python_version(), 'kaib': kaib.__file__, "
    "'kubernetes_installed': importlib.util.find_spec('kubernetes') is not None}))"
)


def runtime_venv() -> Path:
    """Beside kaib's other caches (KAIB_CACHE, else $XDG_CACHE_HOME/kaib or ~/.cache/kaib)."""
    return cache_root() / "runtime-venv"


@functools.cache
def operator_python() -> str:
    """The Python that runs `kaib run` in the benchmarks: a runtime-only venv like the image's, synced.

    Not sys.executable: the dev venv also holds the dev group, and kopf imports the `kubernetes`
    client whenever it is installed (~36 MB resident), so an operator started from it is not what
    the image runs (Dockerfile: `uv sync --frozen --no-dev`, bytecode compiled). This venv is cached
    outside the work tree with kaib installed editable, so it runs the checked-out sources (and
    code_version still says whether they were modified). `uv sync` at every benchmark start: it
    follows uv.lock when that changed and takes ~0.5 s when nothing did (checking the bytecode).
    Only the operator runs from it: the sandbox, the control plane and the bench's own code stay in
    the dev venv (they may need dev packages).
    """
    venv = runtime_venv()
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}  # `uv run`'s venv, not this one
    env["UV_PROJECT_ENVIRONMENT"] = str(venv)
    cmd = [os.environ.get("UV") or "uv", "sync", "--frozen", "--no-dev", "--compile-bytecode", "--quiet"]
    t0 = time.monotonic()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} into {venv} failed:\n{done.stdout}{done.stderr}")
    python = venv / "bin" / "python"
    print(f"bench: the operator runs from {python} ({time.monotonic() - t0:.1f} s to sync)", file=sys.stderr)
    return str(python)


def operator_environ(env: dict[str, str]) -> dict[str, str]:
    """`env` for the operator process, with the runtime venv activated (the image's PATH has it first)."""
    venv = runtime_venv()
    return {**env, "VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"}


@functools.cache
def operator_env() -> dict[str, Any]:
    """Which Python ran the operator, for the results. Fails when the runtime venv's kaib is not this
    work tree's (results would be credited to a commit whose code did not run)."""
    probe = subprocess.run([operator_python(), "-c", PROBE], capture_output=True, text=True, check=True)
    found: dict[str, Any] = json.loads(probe.stdout)
    if Path(found.pop("kaib")).resolve() != REPO / "operator" / "kaib" / "__init__.py":
        raise RuntimeError(f"{runtime_venv()} runs another tree's kaib: delete it and run again")
    return {"kind": RUNTIME_ENV, "python": operator_python(), **found}


# -- the sandbox ----------------------------------------------------------------------------------


class Sandbox:
    """`kaib sandbox` (modelled runtime) as a process, and its admin API."""

    def __init__(self, workdir: Path, latency_scale: float) -> None:
        self.workdir = workdir
        env_file = workdir / "sandbox.env"
        # the dev venv's Python (it may need dev packages): only the operator runs from the runtime one
        cmd = [sys.executable, "-m", "kaib.cli", "sandbox", "--env-file", str(env_file)]
        cmd += ["--latency-scale", str(latency_scale), "--runtime", "modelled"]
        with open(workdir / "sandbox.log", "wb") as log:
            self.process = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + 60
        while not env_file.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise RuntimeError("kaib sandbox did not start:\n" + self.log()[-3000:])
            time.sleep(0.05)
        self.env: dict[str, str] = {}
        for line in env_file.read_text().splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            self.env[key] = value.strip("'")
        self.admin = self.env["KAIB_SANDBOX_ADMIN"]
        self.subscription_id = self.env["AZURE_SUBSCRIPTION_ID"]
        self._ssl = ssl.create_default_context(cafile=self.env["REQUESTS_CA_BUNDLE"])

    def log(self) -> str:
        return (self.workdir / "sandbox.log").read_text(errors="replace")

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.admin}/{path.lstrip('/')}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, context=self._ssl, timeout=60) as response:
            return json.loads(response.read() or b"null")

    def requests(self, limit: int = 20000) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.call("GET", f"requests?limit={limit}")
        return result

    def counters(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", "counters")
        return result

    def latency(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", "latency")
        return result

    def inventory(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.call("GET", "inventory")
        return result

    def pid(self) -> int:
        return self.process.pid

    def client(self, cls: Any) -> Any:
        """A synchronous SDK client against the sandbox (the bench's own setup calls)."""
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()  # workload identity, from the sandbox's env (in os.environ)
        env = self.env
        return cls(
            credential, self.subscription_id, base_url=env["KAIB_ARM_ENDPOINT"],
            credential_scopes=["https://management.azure.com/.default"], polling_interval=0.05,
            connection_verify=env["REQUESTS_CA_BUNDLE"],
        )  # fmt: skip

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- the operator ---------------------------------------------------------------------------------


class Operator:
    """`kaib run` as a process, with what /proc says about it (peak RSS, CPU seconds)."""

    def __init__(self, kubeconfig: str, sandbox: Sandbox, log_path: Path, max_active: int = 10) -> None:
        self.kubeconfig, self.sandbox, self.log_path, self.max_active = (
            kubeconfig,
            sandbox,
            log_path,
            max_active,
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.metrics_port = free_port()

    def start(self) -> None:
        env = operator_environ({**os.environ, **self.sandbox.env, "KUBECONFIG": self.kubeconfig})
        env["KAIB_METRICS_PORT"] = str(self.metrics_port)  # 8080 may be another operator's
        cmd = [operator_python(), "-m", "kaib.cli", "run", "--watch-timeout", "60"]
        cmd += ["--max-active-builds", str(self.max_active)]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def wait_ready(self, timeout: float = 120) -> None:
        """Until kopf has logged in (its watches start then): measurements begin after start-up."""
        deadline = time.monotonic() + timeout
        while "Initial authentication has finished" not in self.log_path.read_text(errors="replace"):
            if not self.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the operator did not start\n{self.log()}")
            time.sleep(0.2)
        time.sleep(1)

    def metrics(self) -> str | None:
        """The /metrics text, or None when the operator serves none."""
        try:
            url = f"http://127.0.0.1:{self.metrics_port}/metrics"
            with urllib.request.urlopen(url, timeout=10) as response:
                text: str = response.read().decode()
                return text
        except OSError:
            return None

    def rss_mib(self) -> float:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log(self, tail: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:]

    def peak_rss_mib(self) -> float:
        """VmHWM: the process's resident-set high-water mark."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def cpu_seconds(self) -> float:
        """User + system CPU of the operator process (and children it waited for)."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        return ticks / os.sysconf("SC_CLK_TCK")


# -- the control plane and manifests --------------------------------------------------------------


class Cluster:
    def __init__(self, workdir: Path) -> None:
        self.plane = ControlPlane(workdir / "controlplane")
        self.plane.start()
        try:
            self.plane.install_crds(committed_crds(workdir / "crds"))
        except BaseException:
            self.plane.stop()
            raise
        self.kubeconfig = str(self.plane.kubeconfig)

    def kubectl(self, *args: str, input: str | None = None) -> str:
        out: str = self.plane.kubectl(*args, input=input).stdout
        return out

    def namespace(self, name: str) -> str:
        self.plane.kubectl("create", "namespace", name, check=False)
        return name

    def apply(self, namespace: str, docs: Iterable[dict[str, Any]], chunk: int = 100) -> None:
        items = list(docs)
        for i in range(0, len(items), chunk):
            doc = {"apiVersion": "v1", "kind": "List", "items": items[i : i + chunk]}
            self.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(doc))

    def items(self, namespace: str, kind: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = json.loads(self.kubectl("get", "-n", namespace, kind, "-o", "json"))[
            "items"
        ]
        return result

    def get(self, namespace: str, kind: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.kubectl("get", "-n", namespace, kind, name, "-o", "json"))
        return result

    def stop(self) -> None:
        self.plane.stop()


def committed_crds(into: Path) -> Path:
    """The CRDs as last committed: the shared working tree may hold another engineer's half-done edit."""
    into.mkdir(parents=True, exist_ok=True)
    for path in sorted((REPO / "crds").glob("*.yaml")):
        shown = subprocess.run(
            ["git", "-C", str(REPO), "show", f"HEAD:crds/{path.name}"], capture_output=True
        )
        (into / path.name).write_bytes(shown.stdout if shown.returncode == 0 else path.read_bytes())
    return into


def template(
    name: str, sandbox: Sandbox, images_group: str, image_name: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A template distributing to the managed image `image_name` (default `<name>-img`): kaib never takes
    over an image another build made, so templates of one name in several namespaces need their own."""
    image_id = f"{images_group}/providers/Microsoft.Compute/images/{image_name or name + '-img'}"
    spec: dict[str, Any] = {
        "source": {"type": "PlatformImage", "publisher": "Canonical", "offer": "ubuntu-24_04-lts",
                   "sku": "server", "version": "latest"},
        "customize": [{"type": "Shell", "name": "hello", "inline": ["echo hello"]}],
        "distribute": [{"type": "ManagedImage", "runOutputName": "golden", "location": LOCATION,
                        "imageId": image_id}],
        "vmProfile": {"vmSize": "Standard_B2s"},
        "azure": {"subscriptionId": sandbox.subscription_id, "location": LOCATION},
    }  # fmt: skip
    spec.update(extra)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ImageTemplate",
        "metadata": {"name": name},
        "spec": spec,
    }


def build(name: str, template_name: str) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ImageBuild", "metadata": {"name": name},
            "spec": {"templateRef": {"name": template_name}}}  # fmt: skip


def images_group(sandbox: Sandbox) -> str:
    from azure.mgmt.resource.resources import ResourceManagementClient

    sandbox.client(ResourceManagementClient).resource_groups.create_or_update(
        IMAGES_RG, {"location": LOCATION}
    )
    return f"/subscriptions/{sandbox.subscription_id}/resourceGroups/{IMAGES_RG}"


def user_network(sandbox: Sandbox) -> dict[str, str]:
    """A user's VNet `corp`: a build subnet (private link policies off) and a delegated ACI subnet."""
    from azure.mgmt.network import NetworkManagementClient
    from azure.mgmt.resource.resources import ResourceManagementClient

    sandbox.client(ResourceManagementClient).resource_groups.create_or_update("net", {"location": LOCATION})
    aci_delegation = [
        {"name": "aci", "properties": {"serviceName": "Microsoft.ContainerInstance/containerGroups"}}
    ]
    body = {"location": LOCATION, "properties": {
        "addressSpace": {"addressPrefixes": ["10.50.0.0/16"]},
        "subnets": [
            {"name": "build", "properties": {"addressPrefix": "10.50.0.0/24",
                                             "privateLinkServiceNetworkPolicies": "Disabled"}},
            {"name": "aci", "properties": {"addressPrefix": "10.50.1.0/24", "delegations": aci_delegation}},
        ]}}  # fmt: skip
    sandbox.client(NetworkManagementClient).virtual_networks.begin_create_or_update(
        "net", "corp", body
    ).result()
    group = f"/subscriptions/{sandbox.subscription_id}/resourceGroups/net"
    vnet = f"{group}/providers/Microsoft.Network/virtualNetworks/corp"
    return {"build": f"{vnet}/subnets/build", "aci": f"{vnet}/subnets/aci"}


def vnet_config(kind: str, net: dict[str, str]) -> dict[str, Any]:
    """The template fields that pick a topology."""
    if kind == "NoVNet":
        return {}
    config: dict[str, Any] = {"subnetId": net["build"]}
    if kind == "SubnetAndACI":
        config["containerInstanceSubnetId"] = net["aci"]
    return {"vmProfile": {"vmSize": "Standard_B2s", "vnetConfig": config}}


# -- everything together --------------------------------------------------------------------------


@dataclass
class Env:
    workdir: Path
    sandbox: Sandbox
    cluster: Cluster
    operator: Operator
    images: str


@contextmanager
def environment(
    latency_scale: float, max_active: int = 10, quotas: dict[str, Any] | None = None
) -> Iterator[Env]:
    """Sandbox, control plane and operator up; all stopped afterwards (the work dir kept on failure)."""
    operator_env()  # the operator's venv synced and checked before anything starts
    workdir = Path(tempfile.mkdtemp(prefix="kaib-bench-"))
    sandbox = Sandbox(workdir, latency_scale)
    cluster: Cluster | None = None
    operator: Operator | None = None
    try:
        os.environ.update(sandbox.env)
        if quotas:
            sandbox.call("PUT", "quotas", quotas)
        cluster = Cluster(workdir)
        operator = Operator(cluster.kubeconfig, sandbox, workdir / "operator.log", max_active)
        operator.start()
        operator.wait_ready()
        yield Env(workdir, sandbox, cluster, operator, images_group(sandbox))
    finally:
        if operator is not None:
            operator.stop()
        if cluster is not None:
            cluster.stop()
        sandbox.stop()
        print(f"bench: logs in {workdir}", file=sys.stderr)


def wait_templates_ready(env: Env, namespace: str, count: int, timeout: float) -> float:
    """Seconds until `count` templates in `namespace` have a status (the operator saw them)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        items = env.cluster.items(namespace, "imagetemplates")
        if sum(1 for i in items if (i.get("status") or {}).get("topology")) >= count:
            return time.monotonic() - t0
        check_operator(env)
        time.sleep(1)
    raise TimeoutError(f"templates in {namespace} not ready after {timeout} s\n{env.operator.log()}")


def wait_builds(
    env: Env, namespace: str, names: set[str], timeout: float, every: float = 1.0, partial: bool = False
) -> dict[str, Any]:
    """Watch the builds until all are final: {name: object}, plus the first time each phase was seen.
    After `timeout`: raise, or with `partial` return the final ones so far."""
    seen: dict[str, dict[str, float]] = {n: {} for n in names}
    t0 = time.time()
    done: dict[str, Any] = {}
    while time.time() - t0 < timeout:
        done = {}
        for obj in env.cluster.items(namespace, "imagebuilds"):
            name = obj["metadata"]["name"]
            if name not in names:
                continue
            phase = (obj.get("status") or {}).get("phase")
            if phase:
                seen[name].setdefault(phase, time.time())
            if phase in FINAL:
                done[name] = obj
        if len(done) == len(names):
            return {"builds": done, "phases_seen": seen}
        check_operator(env)
        time.sleep(every)
    if partial:
        return {"builds": done, "phases_seen": seen}
    raise TimeoutError(f"builds in {namespace} not final after {timeout} s\n{env.operator.log()}")


def check_operator(env: Env) -> None:
    if not env.operator.alive():
        raise RuntimeError(f"the operator died\n{env.operator.log()}")


def build_seconds(obj: dict[str, Any]) -> float:
    """startTime to endTime of a final build, from its status."""
    status = obj["status"]
    return parse_time(status["endTime"]) - parse_time(status["startTime"])


def parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


# -- results --------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory_mib": mem_kib // 1024, "kernel": platform.release(),
            "python": platform.python_version()}  # fmt: skip


def code_version() -> dict[str, Any]:
    """The commit the run used, and whether the operator's sources or its dependencies (the runtime
    venv follows the tree's uv.lock) differed from it (a shared tree)."""
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)

    def modified(*paths: str) -> bool:
        cmd = ["git", "-C", str(REPO), "status", "--porcelain", "--", *paths]
        return bool(subprocess.run(cmd, capture_output=True, text=True).stdout.strip())

    return {
        "commit": head.stdout.strip(),
        "operator_sources_modified": modified("operator/"),
        "dependencies_modified": modified("pyproject.toml", "uv.lock"),
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def write_result(
    name: str,
    figures: dict[str, Any],
    targets: dict[str, Any],
    met: bool,
    notes: list[str],
    load: dict[str, Any],
) -> dict[str, Any]:
    result = {
        "name": name,
        "machine": {**machine(), "load_average": load, "operator_env": operator_env()},
        "code": code_version(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "figures": figures,
        "targets": targets,
        "met": met,
        "notes": notes,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


@dataclass
class SingleBuild:
    topology: str
    wall_s: float  # from applying the ImageBuild to seeing it final (watched every 0.2 s)
    status_s: float  # startTime to endTime of its status (whole seconds)
    phase: str
    records: list[dict[str, Any]]  # the sandbox's request log while it ran (nothing else ran)
    started: float


def single_builds(env: Env, topologies: Iterable[str], timeout: float = 300) -> list[SingleBuild]:
    """One build of each topology, one after the other, each alone on the sandbox (so every request
    in the log while it runs is its own). Templates are applied and seen by the operator first."""
    net = user_network(env.sandbox) if any(k != "NoVNet" for k in topologies) else {}
    out = []
    for kind in topologies:
        ns = env.cluster.namespace(kind.lower())
        tmpl = template("t", env.sandbox, env.images, image_name=f"{ns}-img", **vnet_config(kind, net))
        env.cluster.apply(ns, [tmpl])
        wait_templates_ready(env, ns, 1, 120)
        time.sleep(1)  # let the template's own requests settle
        t0 = time.time()
        env.cluster.apply(ns, [build("b", "t")])
        done = wait_builds(env, ns, {"b"}, timeout, every=0.2)["builds"]["b"]
        wall = time.time() - t0
        records = [r for r in env.sandbox.requests() if float(r["at"]) >= t0]
        out.append(SingleBuild(kind, wall, build_seconds(done), done["status"]["phase"], records, t0))
    return out


# -- many builds at once --------------------------------------------------------------------------


class Watcher:
    """A watch on ImageTemplates or ImageBuilds in all namespaces, in a thread: when each object was
    first seen, when its status first said something (a template's topology, a build's phase), and
    when each build phase was first seen. Same clock for all, no polling granularity."""

    def __init__(self, kubeconfig: str, plural: str) -> None:
        import threading

        from kubernetes import client, config, watch

        self.plural = plural
        self.added: dict[str, float] = {}
        self.first_status: dict[str, float] = {}
        self.phases: dict[str, dict[str, float]] = {}
        self.latest: dict[str, dict[str, Any]] = {}  # each object as last seen
        api_client = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        self._api = client.CustomObjectsApi(api_client)
        self._watch = watch.Watch()  # type: ignore[no-untyped-call]
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        version = ""
        while not self._stop:
            try:
                stream = self._watch.stream(  # type: ignore[no-untyped-call]
                    self._api.list_cluster_custom_object, GROUP, VERSION, self.plural,
                    resource_version=version, timeout_seconds=30,
                )  # fmt: skip
                for event in stream:
                    now = time.time()
                    obj = event["object"]
                    meta = obj["metadata"]
                    version = meta.get("resourceVersion", version)
                    key = f"{meta['namespace']}/{meta['name']}"
                    self.added.setdefault(key, now)
                    self.latest[key] = obj
                    status = obj.get("status") or {}
                    said = status.get("phase") if self.plural == "imagebuilds" else status.get("topology")
                    if said:
                        self.first_status.setdefault(key, now)
                    if status.get("phase"):
                        self.phases.setdefault(key, {}).setdefault(status["phase"], now)
                    if self._stop:
                        break
            except Exception:  # a dropped stream: resume from the last version (or relist)
                version = ""
                time.sleep(0.5)

    def wait(self, env: Env, done: Callable[[], bool], what: str, timeout: float) -> float:
        """Seconds until `done()` holds for what this watch has seen. The benchmark's own waits read
        the watch instead of listing (a list of 1,000 objects a second is load on the apiserver the
        operator under test shares)."""
        t0 = time.monotonic()
        while not done():
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(f"{what} after {timeout} s\n{env.operator.log()}")
            check_operator(env)
            time.sleep(0.2)
        return time.monotonic() - t0

    def final(self, namespace: str, names: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The builds among `names` whose last seen phase is final: {name: object}."""
        out = {}
        for name in names:
            obj = self.latest.get(f"{namespace}/{name}")
            if obj is not None and (obj.get("status") or {}).get("phase") in FINAL:
                out[name] = obj
        return out

    def latencies(self) -> list[float]:
        """Seconds from each object's creation being seen to its first status."""
        return sorted(self.first_status[k] - self.added[k] for k in self.first_status if k in self.added)

    def stop(self) -> None:
        self._stop = True
        self._watch.stop()  # type: ignore[no-untyped-call]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def many_templates(env: Env, namespace: str, count: int) -> list[str]:
    names = [f"t{i:04d}" for i in range(count)]
    env.cluster.apply(namespace, [template(n, env.sandbox, env.images) for n in names])
    return names


def start_builds(env: Env, namespace: str, templates: list[str]) -> set[str]:
    names = {f"b-{t}" for t in templates}
    env.cluster.apply(namespace, [build(f"b-{t}", t) for t in templates])
    return names


def quotas_for(builds: int) -> dict[str, dict[str, int]]:
    """Enough compute and ACI quota that `builds` Standard_B2s builds fit at once."""
    return {"compute": {"cores": 4 * builds + 100, "standardBSFamily": 4 * builds + 100},
            "aci": {"ContainerGroups": builds + 100, "StandardCores": 2 * builds + 100}}  # fmt: skip


def histogram_quantiles(text: str, metric: str, quantiles: Iterable[float]) -> dict[str, Any] | None:
    """Quantiles of a Prometheus histogram (all label sets summed) as the upper bound of the bucket
    they fall in, plus the count and mean; None when the metric has no samples."""
    buckets: dict[float, float] = {}
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith(f"{metric}_bucket{{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            bound = float("inf") if le == "+Inf" else float(le)
            buckets[bound] = buckets.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
        elif line.startswith(f"{metric}_sum"):
            total += float(line.rsplit(" ", 1)[1])
        elif line.startswith(f"{metric}_count"):
            count += float(line.rsplit(" ", 1)[1])
    if not count:
        return None
    out: dict[str, Any] = {"count": int(count), "mean_s": round(total / count, 4)}
    for q in quantiles:
        bound = next(b for b in sorted(buckets) if buckets[b] >= q * count)
        out[f"p{round(q * 100)}_s_at_most"] = (
            bound if bound != float("inf") else "+Inf"
        )  # JSON has no Infinity
    return out


def operator_errors(log: str) -> dict[str, int]:
    """Tracebacks in the operator's log, counted by their exception line and the innermost kaib frame."""
    counts: dict[str, int] = {}
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("Traceback"):
            continue
        frames, j = [], i + 1
        while j < len(lines) and (lines[j].startswith(" ") or lines[j].startswith("\t")):
            if "/kaib/" in lines[j] and lines[j].strip().startswith("File"):
                frames.append(
                    lines[j].strip().split("/kaib/", 1)[1].replace('", line ', ":").replace(", in ", " ")
                )
            j += 1
        error = lines[j].split(":", 1)[0] if j < len(lines) else "?"
        # the innermost kaib frame, and the innermost controller frame that led there (which step)
        step = next((f for f in reversed(frames) if f.startswith("controller/")), "")
        key = f"{error} at {frames[-1] if frames else '?'} from {step}"
        counts[key] = counts.get(key, 0) + 1
    return counts
