"""Fetching scriptUri / sourceUri artifacts before Packer runs: retried, size-checked, sha256-checked.

Plain HTTP(S) GET covers public URLs and blobs with a SAS. A blob URL of Azure Storage without a
SAS is read with the agent's identity (DefaultAzureCredential), as AIB reads scripts with the
template's identity (Storage Blob Data Reader).
"""

from __future__ import annotations

import hashlib
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

# Status codes worth another try; anything else 4xx will not change on retry.
RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}
CHUNK = 1024 * 1024


class DownloadError(RuntimeError):
    pass


class ChecksumMismatch(DownloadError):
    pass


def fetch(
    url: str,
    dest: Path,
    sha256: str,
    *,
    attempts: int = 5,
    timeout: float = 60.0,
    log: Callable[[str], None] = lambda _: None,
    backoff: float = 0.5,
) -> str:
    """Download `url` to `dest`; return the content's sha256. Raise DownloadError when it cannot."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            digest = _get(url, dest, timeout)
            break
        except _Permanent as e:
            raise DownloadError(str(e)) from None
        except (OSError, DownloadError) as e:  # URLError, timeouts, resets, short reads, 5xx
            last = e
            if attempt < attempts:
                delay = backoff * 2 ** (attempt - 1)
                log(f"download attempt {attempt}/{attempts} failed ({e}); retrying in {delay:g}s")
                time.sleep(delay)
    else:
        raise DownloadError(f"gave up after {attempts} attempts: {last}")
    if sha256 and digest != sha256.lower():
        dest.unlink(missing_ok=True)
        raise ChecksumMismatch(f"sha256 mismatch: expected {sha256.lower()}, got {digest}")
    return digest


class _Permanent(Exception):
    pass


def _get(url: str, dest: Path, timeout: float) -> str:
    if _is_azure_blob_without_sas(url):
        return _get_blob_with_identity(url, dest)
    if urlsplit(url).scheme not in ("http", "https"):
        raise _Permanent(f"unsupported URL scheme in {url!r}")
    request = urllib.request.Request(url, headers={"User-Agent": "kaib-builder"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            expected = response.headers.get("Content-Length")
            digest, size = _save(response.read, dest)
    except urllib.error.HTTPError as e:
        if e.code in RETRYABLE_STATUS:
            raise DownloadError(f"HTTP {e.code} {e.reason}") from None
        raise _Permanent(f"HTTP {e.code} {e.reason}") from None
    if expected is not None and int(expected) != size:
        raise DownloadError(f"short read: {size} of {expected} bytes")
    return digest


def _save(read: Callable[[int], bytes], dest: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with dest.open("wb") as f:
        while chunk := read(CHUNK):
            h.update(chunk)
            f.write(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _is_azure_blob_without_sas(url: str) -> bool:
    parts = urlsplit(url)
    return (parts.hostname or "").endswith(".blob.core.windows.net") and "sig=" not in parts.query


def _get_blob_with_identity(url: str, dest: Path) -> str:
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
    from azure.identity import DefaultAzureCredential
    from azure.storage.blob import BlobClient

    try:
        stream = BlobClient.from_blob_url(url, credential=DefaultAzureCredential()).download_blob()
        chunks = stream.chunks()
        digest, _ = _save(lambda _n: next(chunks, b""), dest)
    except ResourceNotFoundError:
        raise _Permanent("blob not found") from None
    except HttpResponseError as e:
        if e.status_code in RETRYABLE_STATUS:
            raise DownloadError(str(e)) from None
        raise _Permanent(f"HTTP {e.status_code}: {e.reason}") from None
    return digest
