"""Disk export (grant access): a managed disk's bytes behind a read-only SAS URL, as Azure serves them.

Azure answers `beginGetAccess` with a SAS URL of a page blob in a storage account of its own
(`https://md-impexp-....blob.storage.azure.net/<container>/abcd?...`). The sandbox does the same
with an Azurite account of its own (`sandboxdisks`, never an ARM resource): one container per grant
holding blob `abcd`, a fixed VHD. Because it lives in the same Azurite instance as the storage
accounts users create, a server-side Copy Blob from that SAS really copies the bytes (Azurite only
copies within one instance). Revoking access deletes the container: the SAS stops working.

What the VHD holds: the disk's content as the hooks know it (the runtime's captured layer, a tar of
the VM's disk changes), or, with nothing real behind the disk, a JSON description of the disk (its
id, the VM, the image it came from). That data, padded to whole MiB as Azure requires of a VHD, is
followed by a genuine 512-byte fixed-VHD footer (cookie `conectix`, disk type 2, checksum), so
tools that read VHD footers accept it.
"""

from __future__ import annotations

import base64
import contextlib
import os
import struct
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

    from .azurite import Azurite

ACCOUNT = "sandboxdisks"
BLOB = "abcd"  # Azure's disk export blob is named so too
MIB = 1024 * 1024
FOOTER = 512
VHD_EPOCH = 946684800  # 2000-01-01T00:00:00Z, where VHD timestamps count from
CREATOR = b"kaib"


def _geometry(size: int) -> tuple[int, int, int]:
    """(cylinders, heads, sectors per track) of a VHD of `size` bytes (the VHD specification's CHS)."""
    total = min(size // 512, 65535 * 16 * 255)
    if total >= 65535 * 16 * 63:
        spt, heads = 255, 16
        cth = total // spt
    else:
        spt = 17
        cth = total // spt
        heads = max((cth + 1023) // 1024, 4)
        if cth >= heads * 1024 or heads > 16:
            spt, heads = 31, 16
            cth = total // spt
        if cth >= heads * 1024:
            spt, heads = 63, 16
            cth = total // spt
    return cth // heads, heads, spt


def _checksum(footer: bytes) -> int:
    return ~sum(footer) & 0xFFFFFFFF


def vhd_footer(size: int, unique_id: bytes, timestamp: float | None = None) -> bytes:
    """The 512-byte footer of a fixed VHD whose data is `size` bytes."""
    when = int((time.time() if timestamp is None else timestamp) - VHD_EPOCH) & 0xFFFFFFFF
    cylinders, heads, spt = _geometry(size)
    head = struct.pack(
        ">8sIIQI4sI4sQQHBBI",
        b"conectix",
        0x00000002,  # features: reserved bit always set
        0x00010000,  # file format version 1.0
        0xFFFFFFFFFFFFFFFF,  # data offset: none (fixed disk)
        when,
        CREATOR,
        0x00010000,
        b"Wi2k",
        size,  # original size
        size,  # current size
        cylinders,
        heads,
        spt,
        2,  # disk type: fixed
    )
    body = head + b"\0\0\0\0" + unique_id[:16].ljust(16, b"\0") + b"\0"
    body = body.ljust(FOOTER, b"\0")
    checksum = struct.pack(">I", _checksum(body))
    return body[:64] + checksum + body[68:]


def fixed_vhd(data: bytes, unique_id: bytes, timestamp: float | None = None) -> bytes:
    """`data` padded to whole MiB (at least one), then the fixed-VHD footer."""
    size = max(MIB, -(-len(data) // MIB) * MIB)
    return data.ljust(size, b"\0") + vhd_footer(size, unique_id, timestamp)


@dataclass(frozen=True)
class Footer:
    cookie: bytes
    current_size: int
    disk_type: int
    unique_id: bytes
    checksum_ok: bool


def read_footer(vhd: bytes) -> Footer:
    """The footer of a VHD (for tests and for users checking what they got)."""
    footer = vhd[-FOOTER:]
    (checksum,) = struct.unpack(">I", footer[64:68])
    zeroed = footer[:64] + b"\0\0\0\0" + footer[68:]
    return Footer(
        cookie=footer[:8],
        current_size=struct.unpack(">Q", footer[48:56])[0],
        disk_type=struct.unpack(">I", footer[60:64])[0],
        unique_id=footer[68:84],
        checksum_ok=checksum == _checksum(zeroed),
    )


# -- Azurite ----------------------------------------------------------------------------------------


def account_key(azurite: Azurite) -> str:
    """The export account's key: made once, kept in Azurite's accounts (which a persisted sandbox keeps)."""
    key = azurite.accounts.get(ACCOUNT)
    if key is None:
        key = base64.b64encode(os.urandom(64)).decode()
        azurite.add_account(ACCOUNT, key)
    return key


def _service(azurite: Azurite) -> BlobServiceClient:
    from azure.storage.blob import BlobServiceClient

    credential = {"account_name": ACCOUNT, "account_key": account_key(azurite)}
    return BlobServiceClient(azurite.account_blob_endpoint(ACCOUNT), credential=credential)


def publish(azurite: Azurite, container: str, vhd: bytes) -> None:
    """Write the VHD as page blob `abcd` of a new container (blocking: run it in a thread)."""
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import BlobType

    client = _service(azurite).get_container_client(container)
    with contextlib.suppress(ResourceExistsError):
        client.create_container()
    client.get_blob_client(BLOB).upload_blob(vhd, blob_type=BlobType.PAGEBLOB, overwrite=True)


def sas_url(azurite: Azurite, container: str, seconds: int) -> str:
    """A read-only SAS URL of the exported blob, valid for `seconds`."""
    from azure.storage.blob import BlobSasPermissions, generate_blob_sas

    token = generate_blob_sas(
        ACCOUNT,
        container,
        BLOB,
        account_key=account_key(azurite),
        permission=BlobSasPermissions(read=True),
        expiry=datetime.now(UTC) + timedelta(seconds=seconds),
    )
    return f"{azurite.account_blob_endpoint(ACCOUNT)}{container}/{BLOB}?{token}"


def withdraw(azurite: Azurite, container: str) -> None:
    """Delete the export's container: its SAS URLs stop working (blocking)."""
    from azure.core.exceptions import ResourceNotFoundError

    with contextlib.suppress(ResourceNotFoundError):
        _service(azurite).get_container_client(container).delete_container()


def new_container() -> str:
    return uuid.uuid4().hex
