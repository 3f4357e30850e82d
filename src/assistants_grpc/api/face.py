"""The gRPC face: the servicers, health and reflection on one grpc.aio server.

It serves what it is handed (the services and the Guard a runtime built) and nothing else, so
another face can serve the same runtime beside it. The runtime drives it: `start` binds and
starts taking calls, `set_serving` reports the runtime's one health state, `stop(grace)` stops
taking calls and lets those in flight finish.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from assistants_grpc.api.files import FileServicer
from assistants_grpc.api.registration import add_servicer
from assistants_grpc.api.runs import RunServicer
from assistants_grpc.api.servicers import AssistantServicer, MessageServicer, ThreadServicer
from assistants_grpc.api.vector_stores import VectorStoreServicer
from assistants_grpc.auth.guard import Guard
from assistants_grpc.contract.pb import (
    assistant_pb2,
    assistant_pb2_grpc,
    file_pb2,
    file_pb2_grpc,
    message_pb2,
    message_pb2_grpc,
    run_pb2,
    run_pb2_grpc,
    thread_pb2,
    thread_pb2_grpc,
    vector_store_pb2,
    vector_store_pb2_grpc,
)
from assistants_grpc.services.bundle import Services

SERVICE_NAMES = tuple(
    module.DESCRIPTOR.services_by_name[name].full_name
    for module, name in (
        (assistant_pb2, "AssistantService"),
        (thread_pb2, "ThreadService"),
        (message_pb2, "MessageService"),
        (run_pb2, "RunService"),
        (file_pb2, "FileService"),
        (vector_store_pb2, "VectorStoreService"),
    )
)


class GrpcFace:
    def __init__(
        self,
        services: Services,
        guard: Guard,
        *,
        host: str,
        port: int,
        max_request_bytes: int,
        credentials: grpc.ServerCredentials | None = None,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    ) -> None:
        self._services = services
        self._guard = guard
        self._address = f"{host}:{port}"
        self._max_request_bytes = max_request_bytes
        self._credentials = credentials
        # observability.rpc's, when metrics or traces are on.
        self._interceptors = list(interceptors)
        self._health = HealthServicer()
        self._server: grpc.aio.Server | None = None
        # The bound port (the one asked for, or the one chosen for port 0), once started.
        self.port = 0

    async def start(self) -> None:
        server = grpc.aio.server(
            interceptors=self._interceptors or None,
            options=[
                ("grpc.so_reuseport", 0),
                # Larger requests are refused by gRPC itself, RESOURCE_EXHAUSTED, unread.
                ("grpc.max_receive_message_length", self._max_request_bytes),
            ],
        )
        services, guard = self._services, self._guard
        # add_servicer: a request that does not parse is INVALID_ARGUMENT, not UNKNOWN.
        add_servicer(
            server,
            assistant_pb2_grpc.add_AssistantServiceServicer_to_server,
            AssistantServicer(services.assistants, guard),
        )
        add_servicer(
            server,
            thread_pb2_grpc.add_ThreadServiceServicer_to_server,
            ThreadServicer(services.threads, guard),
        )
        add_servicer(
            server, run_pb2_grpc.add_RunServiceServicer_to_server, RunServicer(services.runs, guard)
        )
        add_servicer(
            server,
            message_pb2_grpc.add_MessageServiceServicer_to_server,
            MessageServicer(services.messages, guard),
        )
        add_servicer(
            server,
            file_pb2_grpc.add_FileServiceServicer_to_server,
            FileServicer(services.files, guard),
        )
        add_servicer(
            server,
            vector_store_pb2_grpc.add_VectorStoreServiceServicer_to_server,
            VectorStoreServicer(services.vector_stores, guard),
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (
                *SERVICE_NAMES,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            server,
        )
        self.port = (
            server.add_secure_port(self._address, self._credentials)
            if self._credentials is not None
            else server.add_insecure_port(self._address)
        )
        await server.start()
        self._server = server

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await self._health.set("", status)
        for name in SERVICE_NAMES:
            await self._health.set(name, status)

    async def stop(self, grace: float) -> None:
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None

    async def wait_for_termination(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()


class StartingHealth:
    """The gRPC port while the runtime starts (migrations may wait for another replica's): the
    health service alone, NOT_SERVING for every service, so a probe tells "starting" (the port
    answers, not ready) from "serving" and from "down" (refused). `stop` frees the port for the
    face, which binds the same one (the chosen one, for port 0)."""

    def __init__(
        self, *, host: str, port: int, credentials: grpc.ServerCredentials | None = None
    ) -> None:
        self._address = f"{host}:{port}"
        self._credentials = credentials
        self._server: grpc.aio.Server | None = None
        self.port = 0

    async def start(self) -> int:
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        for name in ("", *SERVICE_NAMES):
            await health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        self.port = (
            server.add_secure_port(self._address, self._credentials)
            if self._credentials is not None
            else server.add_insecure_port(self._address)
        )
        await server.start()
        self._server = server
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(0)
            self._server = None


__all__ = ["SERVICE_NAMES", "GrpcFace", "StartingHealth"]
