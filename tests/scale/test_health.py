"""Health follows the database (README "Health"): NOT_SERVING while PostgreSQL does not answer,
SERVING again once it does, on the gRPC health service and the HTTP face's /health alike; and
while migrations run at start-up, the port answers NOT_SERVING (starting), not refused.

The shared PostgreSQL server is not stopped (other tests use it): this server reaches it through
a TCP proxy the test points at a closed port and back, which to the server is the database going
away and coming back."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

import grpc
import httpx2
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from assistants_grpc.clock import ManualClock
from assistants_grpc.config import Settings
from assistants_grpc.fake_model import FakeModelServer
from assistants_grpc.server import AssistantsServer, Overrides
from assistants_grpc.store.database import normalize_url
from assistants_grpc.store.migrate import _MIGRATION_LOCK
from tests.client.proxy import TcpProxy
from tests.conftest import POSTGRES_URL, reset_postgres, start_server

T = TypeVar("T")
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

pytestmark = pytest.mark.skipif(
    not POSTGRES_URL,
    reason="the database outage test needs PostgreSQL: set ASSISTANTS_TEST_DATABASE_URL",
)


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A port bound but not listening: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


class ThreadedProxy:
    """A TcpProxy on its own event loop thread: the server's start-up connects to the database
    synchronously (migrations), which would block a proxy sharing the server's loop."""

    def __init__(self, backend_port: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.proxy = self._call(TcpProxy(backend_port).start())

    def _call(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=30)

    @property
    def port(self) -> int:
        return int(self.proxy.target.rsplit(":", 1)[1])

    def cut(self, to_port: int) -> None:
        """New connections go to `to_port`; the open ones are reset."""

        async def cut() -> None:
            self.proxy.retarget(to_port)
            self.proxy.drop()

        self._call(cut())

    def restore(self, to_port: int) -> None:
        async def restore() -> None:
            self.proxy.retarget(to_port)

        self._call(restore())

    def close(self) -> None:
        self._call(self.proxy.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@contextlib.contextmanager
def proxied_database() -> Iterator[tuple[ThreadedProxy, str]]:
    assert POSTGRES_URL
    reset_postgres(POSTGRES_URL)
    url = make_url(POSTGRES_URL)
    proxy = ThreadedProxy(url.port or 5432)
    try:
        yield (
            proxy,
            url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False),
        )
    finally:
        proxy.close()


async def _statuses(watch: grpc.aio.UnaryStreamCall) -> AsyncIterator[int]:  # type: ignore[type-arg]
    async for reply in watch:
        yield int(reply.status)


async def _until(statuses: AsyncIterator[int], wanted: int) -> None:
    async with asyncio.timeout(30):
        async for status in statuses:
            if status == wanted:
                return
    raise AssertionError("the health watch ended")


async def test_health_follows_the_database(fake_model: FakeModelServer) -> None:
    with proxied_database() as (proxy, url):
        server = await start_server(
            url,
            ManualClock(),
            fake_model,
            overrides={"health_probe_interval": 0.05},
            http=True,
        )
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
        try:
            health = health_pb2_grpc.HealthStub(channel)
            watch = health.Watch(health_pb2.HealthCheckRequest(service="assistants.v1.RunService"))
            statuses = _statuses(watch)
            await _until(statuses, SERVING)
            base = f"http://127.0.0.1:{server.http_port}"
            async with httpx2.AsyncClient(base_url=base) as http:
                assert (await http.get("/health")).status_code == 200
                with closed_port() as dead:
                    # The open connections go too, as when the database server stops.
                    proxy.cut(dead)
                    await _until(statuses, NOT_SERVING)
                    assert server.runtime.state == "database unreachable"
                    answer = await http.get("/health")
                    assert (answer.status_code, answer.json()["status"]) == (503, "NOT_SERVING")
                    overall = await health.Check(health_pb2.HealthCheckRequest(service=""))
                    assert overall.status == NOT_SERVING
                proxy.restore(make_url(POSTGRES_URL).port or 5432)
                await _until(statuses, SERVING)
                assert server.runtime.state == "serving"
                assert (await http.get("/health")).status_code == 200
            watch.cancel()
        finally:
            await channel.close()
            await server.stop(0)


async def test_starting_is_not_serving_while_migrations_wait(fake_model: FakeModelServer) -> None:
    """Another replica migrating (it holds the migration lock): this one's ports answer health,
    NOT_SERVING (gRPC) and 503 starting (HTTP), until its own migrations ran; then SERVING on
    the same ports."""
    assert POSTGRES_URL
    reset_postgres(POSTGRES_URL)
    engine = create_engine(normalize_url(POSTGRES_URL))
    holder = engine.connect()
    holder.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK})
    server = AssistantsServer(
        Settings(
            host="127.0.0.1",
            port=0,
            http_port=0,
            database_url=POSTGRES_URL,
            code_interpreter="off",
        ),
        Overrides(model_env={"OPENAI_BASE_URL": fake_model.base_url}),
        http=True,
    )
    start = asyncio.create_task(server.start())
    channel: grpc.aio.Channel | None = None
    try:
        async with asyncio.timeout(30):
            while server.runtime.state != "migrating" or 0 in (server.port, server.http_port):
                await asyncio.sleep(0.01)
        port, http_port = server.port, server.http_port
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "assistants.v1.RunService"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == NOT_SERVING
        async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as http:
            starting = await http.get("/health")
            assert starting.status_code == 503
            assert starting.json() == {"status": "NOT_SERVING", "state": "starting"}
            refused = await http.post("/v1/assistants", json={"model": "gpt-4o"})
            assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
            assert refused.json()["error"]["code"] == "starting"
        assert not start.done()
        holder.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK})
        holder.commit()
        assert await asyncio.wait_for(start, 60) == port
        assert server.runtime.state == "serving"
        reply = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert reply.status == SERVING
        assert server.http_port == http_port
        async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as http:
            serving = await http.get("/health")
            assert (serving.status_code, serving.json()) == (200, {"status": "SERVING"})
    finally:
        holder.close()
        engine.dispose()
        if not start.done():
            start.cancel()
        with contextlib.suppress(BaseException):
            await start
        if channel is not None:
            await channel.close()
        await server.stop(0)
