"""Azure clients and credentials, one module per Azure service, and the async step helper."""
