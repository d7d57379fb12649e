"""The sandbox: a local Azure Resource Manager for the unmodified SDKs."""
