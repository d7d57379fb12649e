"""kaib: Azure VM Image Builder's isolated image builds as a Kubernetes operator."""

__version__ = "0.1.0"
