"""Making sockets inside a named network namespace from this (host) process.

A socket stays in the namespace it was created in, so the calling thread enters the namespace just
long enough to create it. setns(2) applies to the calling thread only; we switch straight back.
"""

from __future__ import annotations

import ctypes
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextmanager
def entered(namespace: str | None) -> Iterator[None]:
    """Run the body with this thread in `namespace` (None: stay where we are)."""
    if namespace is None:
        yield
        return
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"{NETNS_DIR}/{namespace}", os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(own)


def tcp_socket(namespace: str | None) -> socket.socket:
    """A TCP socket living in `namespace` (None: this process's own network namespace)."""
    with entered(namespace):
        return socket.socket(socket.AF_INET, socket.SOCK_STREAM)


def read_banner(namespace: str | None, ip: str, port: int, timeout: float = 0.5) -> bytes:
    """Connect from `namespace` to ip:port and return the first bytes the server says."""
    sock = tcp_socket(namespace)
    try:
        sock.settimeout(timeout)
        sock.connect((ip, port))
        return sock.recv(64)
    finally:
        sock.close()
