"""The grpc.aio server: servicers, health, reflection, and an orderly shutdown.

Shutdown order (STYLE.md): health goes NOT_SERVING so balancers stop sending, `stop(grace)` lets
in-flight calls finish, the run workers hand back their runs, and the database is disposed last.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from assistants_grpc.api.files import FileServicer
from assistants_grpc.api.registration import add_servicer
from assistants_grpc.api.runs import RunServicer
from assistants_grpc.api.servicers import AssistantServicer, MessageServicer, ThreadServicer
from assistants_grpc.api.vector_stores import VectorStoreServicer
from assistants_grpc.auth.setup import build_guard
from assistants_grpc.auth.tls import server_credentials
from assistants_grpc.clock import Clock, SystemClock
from assistants_grpc.config import Settings
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
from assistants_grpc.engine.executor import RunExecutor
from assistants_grpc.engine.models import NO_API_KEY, ModelConfig, ModelRouter
from assistants_grpc.engine.prompt import check_shorten_fraction
from assistants_grpc.engine.scheduler import RunScheduler
from assistants_grpc.engine.tokens import TokenCounter
from assistants_grpc.events import log as event_log
from assistants_grpc.events.bus import EventBus
from assistants_grpc.events.signals import PostgresSignals
from assistants_grpc.files.embeddings import Embedder
from assistants_grpc.files.extraction import ExtractionLimits
from assistants_grpc.files.ingest import IngestionWorker
from assistants_grpc.files.retrieval import Retriever
from assistants_grpc.files.storage import FileStorage
from assistants_grpc.ids import IdGenerator, random_id
from assistants_grpc.services.assistants import AssistantService
from assistants_grpc.services.deps import Dependencies
from assistants_grpc.services.files import SWEEP_INTERVAL, FileService
from assistants_grpc.services.limits import Limits
from assistants_grpc.services.messages import MessageService
from assistants_grpc.services.runs import RunService
from assistants_grpc.services.threads import ThreadService
from assistants_grpc.services.vector_stores import VectorStoreService
from assistants_grpc.store import migrate
from assistants_grpc.store import vector_stores as vector_store_queries
from assistants_grpc.store.database import Database

log = logging.getLogger(__name__)

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

# A shared token counter: loading the encodings costs ~0.5 s, so it happens once per process.
_TOKENS = TokenCounter()


@dataclass
class Overrides:
    """What tests (and embedders) may inject instead of the real thing."""

    clock: Clock = field(default_factory=SystemClock)
    new_id: IdGenerator = random_id
    tokens: TokenCounter = _TOKENS
    # Environment for the model routes (OPENAI_BASE_URL, OPENAI_API_KEY); None is os.environ.
    model_env: dict[str, str] | None = None
    # How often expired files are deleted (they read as NOT_FOUND from their expiry on).
    file_sweep_interval: float = SWEEP_INTERVAL


class AssistantsServer:
    def __init__(self, settings: Settings, overrides: Overrides | None = None) -> None:
        self.settings = settings
        self._overrides = overrides or Overrides()
        self._server: grpc.aio.Server | None = None
        self._health = HealthServicer()
        self.database: Database | None = None
        self.scheduler: RunScheduler | None = None
        self._signals: PostgresSignals | None = None
        self._router: ModelRouter | None = None
        # The files' use cases and storage, for the wiring of other owners of File references
        # (`files.on_delete`) and for tests.
        self.files: FileService | None = None
        self.ingestion: IngestionWorker | None = None
        self.retriever: Retriever | None = None
        self._embedder: Embedder | None = None
        self.port = 0

    async def start(self) -> int:
        """Migrate, wire the services and start serving; returns the bound port."""
        settings = self.settings
        self.database = Database(settings.database_url)
        if settings.migrate_on_start:
            migrate.upgrade(self.database)
        try:
            # Security before anything starts: a refused configuration (SecurityConfigError,
            # ValueError) starts nothing and the CLI exits 2.
            credentials = server_credentials(
                settings.tls_cert, settings.tls_key, settings.tls_client_ca
            )
            guard = await build_guard(settings, self.database, self._overrides.clock)
            check_shorten_fraction(settings.truncation_shorten_fraction)
            limits = Limits(
                max_message_chars=settings.max_message_chars,
                max_content_parts=settings.max_content_parts,
                max_tool_output_bytes=settings.max_tool_output_bytes,
                max_tool_outputs_bytes=settings.max_tool_outputs_bytes,
            )
            storage = FileStorage.for_database(
                self.database,
                self._overrides.clock,
                self._overrides.new_id,
                data_dir=Path(settings.data_dir) if settings.data_dir else None,
                max_file_bytes=settings.max_file_bytes,
                max_project_file_bytes=settings.max_project_file_bytes or None,
            )
        except Exception:
            self.database.dispose()
            self.database = None
            raise
        self._overrides.tokens.preload()
        await storage.start()
        self._embedder = _embedder(settings, self._overrides.model_env)

        def wake_ingestion() -> None:
            if self.ingestion is not None:
                self.ingestion.wake()

        deps = Dependencies(
            database=self.database,
            clock=self._overrides.clock,
            new_id=self._overrides.new_id,
            tokens=self._overrides.tokens,
            limits=limits,
            embedding_model=self._embedder.model if self._embedder is not None else None,
            wake_ingestion=wake_ingestion,
        )
        # Files first: the tools that read and write them (file_search, code_interpreter) are
        # built from `self.files.storage`, and other owners of File references add their
        # cleanup to `self.files.on_delete`.
        self.files = FileService(deps, storage)
        # A deleted File leaves every vector store in the same transaction (CONTRACT.md §12).
        self.files.on_delete.append(
            lambda connection, _project, file_id: vector_store_queries.remove_file_everywhere(
                connection, file_id
            )
        )
        database = self.database
        bus = EventBus(
            load_after=lambda run_id, after: database.transaction(
                lambda c: event_log.read_after(c, run_id, after)
            ),
            load_one=lambda run_id, sequence: database.transaction(
                lambda c: event_log.read_one(c, run_id, sequence)
            ),
            # Replicas wake each other with NOTIFY; the poll only covers a lost notification.
            recheck_seconds=5.0 if database.is_postgresql else None,
        )
        self._router = ModelRouter(
            ModelConfig.load(settings.models_config, self._overrides.model_env),
            max_retries=settings.model_max_retries,
        )
        executor = RunExecutor(
            deps, self._router, bus, shorten_fraction=settings.truncation_shorten_fraction
        )
        self.scheduler = RunScheduler(
            deps,
            executor,
            bus,
            max_concurrent=settings.max_concurrent_runs,
            lease_seconds=settings.run_lease_seconds,
            poll_interval=settings.claim_poll_interval,
        )
        scheduler = self.scheduler

        def run_deleted_elsewhere(run_id: str) -> None:
            bus.forgotten_elsewhere(run_id)
            scheduler.on_deleted(run_id)

        if database.is_postgresql:
            # Replicas share one database: tell each other about new events, cancels, deletes.
            self._signals = PostgresSignals(
                database.engine.url.set(drivername="postgresql").render_as_string(
                    hide_password=False
                ),
                self.scheduler.owner,
                on_events=bus.wake,
                on_cancel=self.scheduler.on_cancel,
                on_deleted=run_deleted_elsewhere,
                on_reconnect=bus.wake_all,
            )
            bus.on_publish = self._signals.events_written
            self.scheduler.send_cancel = self._signals.send_cancel
            await self._signals.start()
        signals = self._signals

        def run_deleted_here(run_id: str) -> None:
            # DeleteThread took the run: its turn stops, and the other replicas hear of it.
            scheduler.on_deleted(run_id)
            if signals is not None:
                signals.run_deleted(run_id)

        bus.on_forget = run_deleted_here
        self.retriever = Retriever(database, deps.now, embedder=self._embedder)
        self.ingestion = IngestionWorker(
            database,
            deps.tokens,
            storage,
            owner=self.scheduler.owner,
            now=deps.now,
            embedder=self._embedder,
            concurrency=settings.ingestion_concurrency,
            limits=ExtractionLimits(
                wall_seconds=settings.extraction_timeout,
                cpu_seconds=max(1, math.ceil(settings.extraction_timeout)),
                memory_bytes=settings.extraction_memory_mb * 1024 * 1024,
            ),
            lease_seconds=settings.run_lease_seconds,
            poll_interval=settings.claim_poll_interval,
        )
        vector_stores = VectorStoreService(deps, self.retriever, self.ingestion.wake)
        threads = ThreadService(deps, bus)
        runs = RunService(
            deps, threads, self.scheduler, bus, expires_in=settings.run_expiry_seconds
        )
        server = grpc.aio.server(
            options=[
                ("grpc.so_reuseport", 0),
                # Larger requests are refused by gRPC itself, RESOURCE_EXHAUSTED, unread.
                ("grpc.max_receive_message_length", settings.max_request_bytes),
            ]
        )
        # add_servicer: a request that does not parse is INVALID_ARGUMENT, not UNKNOWN.
        add_servicer(
            server,
            assistant_pb2_grpc.add_AssistantServiceServicer_to_server,
            AssistantServicer(AssistantService(deps), guard),
        )
        add_servicer(
            server,
            thread_pb2_grpc.add_ThreadServiceServicer_to_server,
            ThreadServicer(threads, guard),
        )
        add_servicer(
            server, run_pb2_grpc.add_RunServiceServicer_to_server, RunServicer(runs, guard)
        )
        add_servicer(
            server,
            message_pb2_grpc.add_MessageServiceServicer_to_server,
            MessageServicer(MessageService(deps), guard),
        )
        add_servicer(
            server, file_pb2_grpc.add_FileServiceServicer_to_server, FileServicer(self.files, guard)
        )
        add_servicer(
            server,
            vector_store_pb2_grpc.add_VectorStoreServiceServicer_to_server,
            VectorStoreServicer(vector_stores, guard),
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
        address = f"{settings.host}:{settings.port}"
        self.port = (
            server.add_secure_port(address, credentials)
            if credentials is not None
            else server.add_insecure_port(address)
        )
        await self.scheduler.start()
        await self.ingestion.start()
        self.files.start_sweeping(self._overrides.file_sweep_interval)
        await server.start()
        self._server = server
        await self._set_serving(True)
        log.info(
            "serving on %s:%d (database %s)", settings.host, self.port, _safe_url(self.database)
        )
        return self.port

    async def _set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await self._health.set("", status)
        for name in SERVICE_NAMES:
            await self._health.set(name, status)

    async def stop(self, grace: float | None = None) -> None:
        grace = self.settings.shutdown_grace if grace is None else grace
        if self._server is not None:
            await self._set_serving(False)
            stopping = [self._server.stop(grace)]
            if self.scheduler is not None:
                stopping.append(self.scheduler.stop(grace))
            await asyncio.gather(*stopping)
            self._server = None
        if self.ingestion is not None:
            await self.ingestion.stop()
            self.ingestion = None
        if self._embedder is not None:
            await self._embedder.aclose()
            self._embedder = None
        if self.files is not None:
            await self.files.stop_sweeping()
            self.files.storage.close()
            self.files = None
        if self._signals is not None:
            await self._signals.stop()
            self._signals = None
        if self._router is not None:
            await self._router.aclose()
            self._router = None
        if self.database is not None:
            self.database.dispose()
            self.database = None
        log.info("stopped")

    async def wait_for_termination(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()


def _embedder(settings: Settings, model_env: dict[str, str] | None) -> Embedder | None:
    """The embedding client of `--embedding-model`, or None (vector stores stay lexical)."""
    if not settings.embedding_model:
        return None
    env = os.environ if model_env is None else model_env
    key_env = settings.embedding_api_key_env or "OPENAI_API_KEY"
    if settings.embedding_api_key_env and key_env not in env:
        raise ValueError(f"--embedding-api-key-env names an unset variable: {key_env}")
    return Embedder(
        settings.embedding_model,
        base_url=settings.embedding_base_url or env.get("OPENAI_BASE_URL"),
        api_key=env.get(key_env) or NO_API_KEY,
        max_retries=settings.model_max_retries,
    )


def _safe_url(database: Database) -> str:
    return database.engine.url.render_as_string(hide_password=True)


__all__ = ["SERVICE_NAMES", "AssistantsServer", "Overrides"]
