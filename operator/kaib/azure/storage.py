"""The staging storage account and its `packerlogs` container (customization and validation logs),
and where a VHD distribution's blob goes."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from kaib.azure import spec as t
from kaib.azure.spec import ResourceSpec

LOGS_CONTAINER = "packerlogs"


def storage_account(
    subscription_id: str, group: str, name: str, location: str, tags: Mapping[str, str]
) -> ResourceSpec:
    body = {
        "location": location,
        "tags": dict(tags),
        "sku": {"name": "Standard_LRS"},
        "kind": "StorageV2",
        "properties": {
            "minimumTlsVersion": "TLS1_2",
            "supportsHttpsTrafficOnly": True,
            "allowBlobPublicAccess": False,
        },
    }
    return ResourceSpec(t.STORAGE_ACCOUNT, subscription_id, group, name, body, step="staging")


def logs_container(subscription_id: str, group: str, account: str) -> ResourceSpec:
    return ResourceSpec(
        t.BLOB_CONTAINER,
        subscription_id,
        group,
        LOGS_CONTAINER,
        {"properties": {"publicAccess": "None"}},
        parents=(account, "default"),
        step="staging",
    )


# -- VHD distribution: where the VHD blob goes ---------------------------------------------------

VHD_CONTAINER = "vhds"  # in the staging storage account, when distribute[].uri is empty
META_BUILD_ID = "kaibbuildid"  # blob metadata naming the build whose copy wrote the blob
META_RUN_OUTPUT = "kaibrunoutput"


@dataclass(frozen=True)
class BlobLocation:
    """A blob by URL parts. `account_url` ends with '/': `https://acct.blob.core.windows.net/`, or
    path-style `http://127.0.0.1:10000/acct/` (Azurite, Azure Stack)."""

    account: str
    account_url: str
    container: str
    blob: str
    sas: str = ""  # a SAS query string (without '?') that came with the URL, or ""

    @property
    def url(self) -> str:
        """The blob's URL without any SAS: what runOutputs[].artifactUri shows."""
        return f"{self.account_url}{self.container}/{quote(self.blob)}"

    @property
    def container_url(self) -> str:
        return f"{self.account_url}{self.container}"


def _path_style(host: str) -> bool:
    name = host.split(":", 1)[0].strip("[]")
    if name == "localhost":
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def parse_blob_url(uri: str, default_blob: str = "") -> BlobLocation:
    """The parts of a blob URL; a URL naming only a container gets `default_blob`. ValueError says
    what is wrong (not https/http, no container, no blob)."""
    parts = urlsplit(uri.strip())
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ValueError(f"{uri!r} is not an http(s) URL of a blob")
    path = [unquote(p) for p in parts.path.split("/") if p]
    if _path_style(parts.netloc):
        if not path:
            raise ValueError(f"{uri!r} names no storage account")
        account, path = path[0], path[1:]
        account_url = f"{parts.scheme}://{parts.netloc}/{account}/"
    else:
        account = parts.netloc.split(".", 1)[0]
        account_url = f"{parts.scheme}://{parts.netloc}/"
    if not path:
        raise ValueError(f"{uri!r} names no container")
    blob = "/".join(path[1:]) or default_blob
    if not blob:
        raise ValueError(f"{uri!r} names no blob")
    return BlobLocation(account, account_url, path[0], blob, parts.query)


def vhd_blob_name(build_id: str, run_output: str) -> str:
    """Deterministic: a restarted operator finds the copy it started, and never starts a second."""
    return f"{build_id}/{run_output}.vhd"


def vhd_destination(
    uri: str, staging_account: str, staging_endpoint: str, build_id: str, run_output: str
) -> BlobLocation:
    """distribute[].uri, or `vhds/<buildId>/<runOutputName>.vhd` in the staging storage account.
    A uri naming only a container gets `<runOutputName>-<buildId>.vhd` in it."""
    if uri:
        return parse_blob_url(uri, default_blob=f"{run_output}-{build_id}.vhd")
    endpoint = staging_endpoint if staging_endpoint.endswith("/") else staging_endpoint + "/"
    return BlobLocation(staging_account, endpoint, VHD_CONTAINER, vhd_blob_name(build_id, run_output))


def vhd_metadata(build_id: str, run_output: str, artifact_tags: Mapping[str, str]) -> dict[str, str]:
    """The VHD blob's metadata: who wrote it, and the artifactTags (metadata names must be C#
    identifiers: other characters become '_')."""
    meta = {_metadata_name(k): v for k, v in artifact_tags.items()}
    meta[META_BUILD_ID] = build_id
    meta[META_RUN_OUTPUT] = run_output
    return meta


def _metadata_name(key: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", key)
    return name if name[:1].isalpha() or name[:1] == "_" else f"_{name}"
