"""The builder agent that runs inside the ACI container group (entry point: `kaib.builder.agent`,
whose docstring lists its environment variables).

- config: the agent's settings from its environment (pure)
- storage: append/block blobs in the staging storage account
- logstream: AIB-style prefixed, redacted log lines appended to a blob at least every 2 seconds
- redact: secrets and SAS signatures out of log lines
- downloads: scriptUri/sourceUri with retries and sha256 verification
- runner: one phase: files, downloads, `packer build`, which step failed
- result: result.json, what the operator reads
"""
