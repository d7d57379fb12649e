"""Per-build login material for the build VM, kept in a Secret owned by the ImageBuild.

Linux: an ed25519 SSH key pair. Windows: a random admin password for WinRM. Generated once; a
restarted operator reads the Secret back, so the VM and the builder always agree.
"""

from __future__ import annotations

import secrets
import string

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def secret_name(build: str) -> str:
    return f"{build}-kaib-access"


def new_credentials() -> dict[str, str]:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    return {"ssh-privatekey": private, "ssh-publickey": f"{public} kaib", "password": _password()}


def _password() -> str:
    # Azure requires three of: lower, upper, digit, special; 12..123 characters.
    alphabet = string.ascii_letters + string.digits
    body = "".join(secrets.choice(alphabet) for _ in range(20))
    return f"{body}aA1!"
