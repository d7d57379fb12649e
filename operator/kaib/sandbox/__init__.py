"""The sandbox: a local, HTTPS Azure Resource Manager for the unmodified Azure SDKs.

Run it with `kaib sandbox [--config FILE] [--state FILE] [--port N] [--env-file PATH]
[--latency-scale X] [--runtime modelled|real] [--no-azurite]`. Once ready it prints (and writes to
--env-file) the client environment as `export` lines:

    KAIB_ARM_ENDPOINT=https://127.0.0.1:PORT     base_url for every management client
    KAIB_SANDBOX_ADMIN=https://127.0.0.1:PORT/_sandbox
    AZURE_SUBSCRIPTION_ID, AZURE_TENANT_ID, AZURE_CLIENT_ID
    AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST=https://127.0.0.1:PORT
    AZURE_TOKEN_CREDENTIALS=WorkloadIdentityCredential   (DefaultAzureCredential, no IMDS probe)
    SSL_CERT_FILE, REQUESTS_CA_BUNDLE                   (the sandbox's CA, made with trustme)
    NO_PROXY=127.0.0.1,localhost

Any GUID subscription works. SIGTERM/SIGINT stop everything it started, Azurite included; the
env file is removed then. --state FILE keeps across restarts everything the sandbox answers from:
resources, long-running operations, running modelled containers (resumed to their outcome and end
time), the knobs (faults, policies, outcomes, quotas, latency; they replace --config's and
--latency-scale's on a restart), both ports (ARM's unless --port says otherwise, and Azurite's, so URLs
handed out stay valid) and, in FILE.d/, the CA, the token secret and Azurite's blobs. Not kept: the
request log, counters and throttling buckets. An action in flight at the stop counts as done.

Modules, in the order a request meets them:
- `app.py`: one running sandbox (TLS files, Azurite, engine, server, env, persistence); `cli.py`.
- `server.py`: the token endpoint (`POST /{tenant}/oauth2/v2.0/token`), ARM's routes, and the
  admin API under /_sandbox/ (loopback only, no auth):
    GET  health | env | inventory[?type=&tag=k=v] | requests[?limit=] | counters | stats | config
    POST faults {status, code, message, method, type, name, probability, count, retryAfter,
                 inOperation}; GET faults; DELETE faults[/ID]
    POST policies {type, location?, message}; DELETE policies     -> 403 RequestDisallowedByPolicy
    PUT  quotas {compute: {cores: N, ...}, aci: {ContainerGroups: N, StandardCores: N}}
    PUT  providers/NAMESPACE {registrationState: NotRegistered|Registered}
    PUT  throttling {enabled}    ARM's buckets: reads 250 + 25/s, writes 200 + 10/s per subscription
    PUT  latency {scale, seconds: {"Type:operation": s}}; GET latency
    POST outcomes {name (glob), exitCode, logs, seconds, result}; DELETE outcomes
    PUT  config (the --config document, applied on top); POST reset (resources, knobs, log)
- `engine.py`: ARM semantics for every type alike (PUT/GET/list/DELETE/actions, references,
  in-use rules, cascades, resource groups); it answers `answer.Answer`s.
- `operations.py`: long-running operations (Azure-AsyncOperation, Location, retry-after-ms).
- `registry.py`: what a type declares (`TypeSpec`); `kinds/`: the types, one module per provider.
- `control.py` (faults, policy, quotas, throttling, request log), `latency.py`, `config.py`.
- `store.py`, `ids.py`, `addresses.py`, `errors.py`, `tls.py`.
- `azurite.py`: Azurite as a child process; each storage account is an Azurite account.
- `hooks.py`: the seam to `runtime/` (issue 5), which makes VMs, networks and containers real.
"""
