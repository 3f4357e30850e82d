"""Looking at real sockets: the TCP options of this process's own loopback connections, wherever
the sockets are held (an asyncio server's accepted connections, a client's pool; each open
descriptor in ``/proc/self/fd`` is duplicated and looked at), and a model-client backend that
keeps the streams it opened."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpcore2
import pytest

from assistants_grpc.engine.model_http import QuickAckBackend

__all__ = ["RecordingBackend", "TcpEnd", "nodelay", "tcp_ends", "tcp_ends_or_skip"]


class RecordingBackend(QuickAckBackend):
    """The model clients' backend, keeping the streams it opened for the tests to look at."""

    def __init__(self) -> None:
        super().__init__()
        self.streams: list[httpcore2.AsyncNetworkStream] = []

    async def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore2.AsyncNetworkStream:
        stream = await super().connect_tcp(*args, **kwargs)
        self.streams.append(stream)
        return stream


@dataclass(frozen=True)
class TcpEnd:
    """One end of a TCP connection of this process."""

    local_port: int
    peer_port: int
    nodelay: bool


def nodelay(sock: socket.socket) -> bool:
    return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


def _own_sockets() -> Iterator[socket.socket]:
    for name in os.listdir("/proc/self/fd"):
        try:
            fd = os.dup(int(name))
        except OSError:  # closed meanwhile (the listing's own descriptor, for one)
            continue
        try:
            sock = socket.socket(fileno=fd)
        except OSError:  # not a socket
            os.close(fd)
            continue
        with sock:
            yield sock


def tcp_ends(port: int) -> list[TcpEnd]:
    """Both ends of every established IPv4 TCP connection of this process to or from ``port``."""
    ends = []
    for sock in _own_sockets():
        if sock.family != socket.AF_INET or sock.type != socket.SOCK_STREAM:
            continue
        with contextlib.suppress(OSError):  # not connected
            local, peer = sock.getsockname()[1], sock.getpeername()[1]
            if port in (local, peer):
                ends.append(TcpEnd(local, peer, nodelay(sock)))
    return ends


def tcp_ends_or_skip(port: int) -> list[TcpEnd]:
    if not sys.platform.startswith("linux"):
        pytest.skip("reads the process's sockets through /proc/self/fd (Linux)")
    return tcp_ends(port)
