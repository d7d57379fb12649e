"""A small TCP forwarder between network namespaces, run as its own process.

It listens inside one namespace and connects out from another (or from the host), so it stands for
both "a host service exposed on the sandbox's service address" and "a private endpoint whose traffic
a load balancer hands to a proxy VM". Run as
`python -m kaib.sandbox.runtime forward '<json list of routes>'`; prints `ready` once listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from dataclasses import asdict, dataclass

from kaib.sandbox.runtime.netns import tcp_socket


@dataclass(frozen=True)
class Route:
    listen_namespace: str | None  # None: the host's own network namespace
    listen_ip: str
    listen_port: int
    connect_namespace: str | None
    connect_ip: str
    connect_port: int

    def to_json(self) -> dict[str, object]:
        return asdict(self)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


def _handler(route: Route):  # type: ignore[no-untyped-def]
    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream = tcp_socket(route.connect_namespace)
        upstream.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(upstream, (route.connect_ip, route.connect_port))
            up_reader, up_writer = await asyncio.open_connection(sock=upstream)
        except OSError:
            upstream.close()
            client_writer.close()  # like a refused connection behind a load balancer
            return
        await asyncio.gather(_pipe(client_reader, up_writer), _pipe(up_reader, client_writer))
        for w in (up_writer, client_writer):
            w.close()

    return handle


async def serve(routes: list[Route]) -> None:
    servers = []
    for route in routes:
        listener = tcp_socket(route.listen_namespace)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((route.listen_ip, route.listen_port))
        servers.append(await asyncio.start_server(_handler(route), sock=listener))
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


def main(argv: list[str]) -> int:
    routes = [Route(**r) for r in json.loads(argv[0])]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(routes))
    return 0
