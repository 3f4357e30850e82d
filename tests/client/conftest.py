"""Clients of the real server that `tests/conftest.py` starts (SQLite, and PostgreSQL when
configured), and helpers to drive the blocking client from these async tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

import pytest
from assistants_grpc_client import AsyncClient, Client

from tests.client.proxy import TcpProxy
from tests.conftest import RunningServer

T = TypeVar("T")


async def in_thread(fn: Callable[[], T]) -> T:
    """Run blocking client code off the event loop, which serves the server itself."""
    return await asyncio.to_thread(fn)


@pytest.fixture
def client(running: RunningServer) -> Iterator[Client]:
    with Client(running.target) as client:
        yield client


@pytest.fixture
async def aclient(running: RunningServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(running.target) as client:
        yield client


@pytest.fixture
async def proxy(running: RunningServer) -> AsyncIterator[TcpProxy]:
    async with TcpProxy(running.server.port) as proxy:
        yield proxy
