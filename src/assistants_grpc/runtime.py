"""Everything a face serves, built, started and stopped in one place.

    runtime = Runtime(settings)           # or Runtime(settings, Overrides(...)) in tests
    await runtime.start()                 # database, engine, services: no port is open yet
    await runtime.serve(GrpcFace(runtime.services, runtime.guard, ...), ...)
    ...
    await runtime.stop()                  # every face, then the engine, then the database

`start` builds, in order: the database and its migrations; the Guard (a security setting the server
refuses raises here, SecurityConfigError, and the database is closed again: nothing is left open)
and the other settings only a component can judge; the file storage; the token counter's encodings
(~0.5 s, once per process); the files' use cases (the tools that read and write files are built from
their storage); on PostgreSQL the sending side of the replica signals; the event bus and the
scheduler, each built with those signals; the model router and the executor; the services. Then the
signals start listening (what this replica does when another one signals is wired here, once the bus
and scheduler exist) and the scheduler starts, claiming what a previous process left active, and
expired files start being swept.

`state` says where the runtime is: `starting` (`migrating` while migrations run: on PostgreSQL on
a thread, so the loop answers health meanwhile), `serving`, `database unreachable` (a probe of
`serve` runs `SELECT 1` every `Overrides.health_probe_interval`; the faces report NOT_SERVING
until it answers again), `stopping`, `stopped`; each change is an INFO line.

A face is anything with `start`, `set_serving` and `stop(grace)` (the gRPC face is
`api.face.GrpcFace`; an HTTP face serves the same `services` and `guard`). `serve` starts the
faces and then marks them all serving: there is one health state, whichever face is asked.

`stop` is the shutdown order (STYLE.md): every face reports NOT_SERVING, so balancers stop sending;
the faces stop taking calls and let the calls in flight finish within the grace while the scheduler
lets executing turns finish and hands back the rest (their leases released, so another replica takes
them at once); then the code interpreter's kernels, the file sweep and storage stop, the signals
stop, the model clients close, and the database is disposed last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpcore2
from sqlalchemy import text

from assistants_grpc.auth.guard import Guard
from assistants_grpc.auth.setup import build_guard
from assistants_grpc.clock import Clock, SystemClock
from assistants_grpc.config import Settings
from assistants_grpc.engine.executor import RunExecutor, TurnHooks
from assistants_grpc.engine.models import (
    DEFAULT_OPENAI_BASE_URL,
    NO_API_KEY,
    ModelConfig,
    ModelRouter,
)
from assistants_grpc.engine.prompt import check_shorten_fraction
from assistants_grpc.engine.scheduler import RunScheduler, replica_name
from assistants_grpc.engine.server_tools import ToolRegistry
from assistants_grpc.engine.tokens import TokenCounter
from assistants_grpc.events import log as event_log
from assistants_grpc.events.bus import EventBus, LoadAfter, LoadOne
from assistants_grpc.events.log import RunEvent
from assistants_grpc.events.signals import Listener, PostgresSignals
from assistants_grpc.files.embeddings import Embedder
from assistants_grpc.files.extraction import ExtractionLimits
from assistants_grpc.files.ingest import IngestionWorker
from assistants_grpc.files.retrieval import Retriever
from assistants_grpc.files.storage import FileStorage
from assistants_grpc.ids import IdGenerator, random_id
from assistants_grpc.observability import logs, metrics, tracing
from assistants_grpc.services.assistants import AssistantService
from assistants_grpc.services.bundle import Services
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
from assistants_grpc.tools.code_interpreter.files import StorageFiles
from assistants_grpc.tools.code_interpreter.registry import DatabaseRegistry
from assistants_grpc.tools.code_interpreter.setup import CodeInterpreter, code_interpreter_config
from assistants_grpc.tools.file_search import WAIT_SECONDS as FILE_SEARCH_WAIT
from assistants_grpc.tools.file_search import FileSearchExecutor

log = logging.getLogger(__name__)

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
    # The model clients' socket layer; None is engine.model_http.QuickAckBackend.
    model_network_backend: httpcore2.AsyncNetworkBackend | None = None
    # How often expired files are deleted (they read as NOT_FOUND from their expiry on).
    file_sweep_interval: float = SWEEP_INTERVAL
    # The server-side tools; None: the real ones (file_search, code_interpreter).
    tool_registry: ToolRegistry | None = None
    # How long a file_search call waits for the thread's files still being ingested.
    file_search_wait: float = FILE_SEARCH_WAIT
    # The wall clock leases are compared with (shared by replicas; not the expiry clock).
    lease_clock: Clock = field(default_factory=SystemClock)
    # Test seams of the run loop (engine.run_loop.TurnHooks).
    turn_hooks: TurnHooks | None = None
    # How often a serving runtime checks that its database answers (health follows it).
    health_probe_interval: float = 2.0


class Face(Protocol):
    """A transport serving the runtime's services (gRPC, HTTP)."""

    async def start(self) -> None:
        """Bind and start taking calls."""
        ...

    async def set_serving(self, serving: bool) -> None:
        """Report the runtime's health (e.g. the gRPC health service)."""
        ...

    async def stop(self, grace: float) -> None:
        """Stop taking calls; those in flight have `grace` seconds to finish."""
        ...


@dataclass(frozen=True)
class _Started:
    """What a started runtime holds."""

    database: Database
    guard: Guard
    bus: EventBus
    router: ModelRouter
    scheduler: RunScheduler
    signals: PostgresSignals | None
    services: Services
    code_interpreter: CodeInterpreter
    ingestion: IngestionWorker
    retriever: Retriever
    embedder: Embedder | None
    # Stops reporting the scheduler's and the bus's live gauges (observability/metrics.py).
    unwatch: tuple[Callable[[], None], ...] = ()


class Runtime:
    def __init__(self, settings: Settings, overrides: Overrides | None = None) -> None:
        self.settings = settings
        self.overrides = overrides or Overrides()
        self._started: _Started | None = None
        self._faces: list[Face] = []
        # What the faces report: SERVING while serving and the database answers.
        self.serving = False
        self._lifecycle_serving = False
        self._database_up = True
        self._probe: asyncio.Task[None] | None = None
        # starting | migrating | serving | database unreachable | stopping | stopped
        self.state = "stopped"

    # --- what faces are handed --------------------------------------------------------------

    @property
    def services(self) -> Services:
        return self._parts().services

    @property
    def guard(self) -> Guard:
        return self._parts().guard

    @property
    def bus(self) -> EventBus:
        return self._parts().bus

    @property
    def database(self) -> Database | None:
        """The database while started, else None."""
        return self._started.database if self._started is not None else None

    @property
    def scheduler(self) -> RunScheduler | None:
        """The run scheduler while started, else None."""
        return self._started.scheduler if self._started is not None else None

    @property
    def ingestion(self) -> IngestionWorker | None:
        """The vector-store ingestion worker while started, else None."""
        return self._started.ingestion if self._started is not None else None

    @property
    def retriever(self) -> Retriever | None:
        """The vector-store search (the file_search tool's and SearchVectorStore's)."""
        return self._started.retriever if self._started is not None else None

    @property
    def code_interpreter(self) -> CodeInterpreter | None:
        """The python tool's sandbox, sessions and executor while started, else None."""
        return self._started.code_interpreter if self._started is not None else None

    @property
    def started(self) -> bool:
        return self._started is not None

    def _parts(self) -> _Started:
        if self._started is None:
            raise RuntimeError("the runtime is not started")
        return self._started

    # --- start ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Build and start everything but the faces (the module docstring has the order)."""
        if self._started is not None:
            return
        settings, overrides = self.settings, self.overrides
        self._set_state("starting")
        database = Database(settings.database_url)
        storage: FileStorage | None = None
        signals: PostgresSignals | None = None
        router: ModelRouter | None = None
        code: CodeInterpreter | None = None
        embedder: Embedder | None = None
        ingestion: IngestionWorker | None = None
        try:
            if settings.migrate_on_start:
                self._set_state("migrating")
                if database.is_postgresql:
                    # On a thread: the loop answers health meanwhile (NOT_SERVING), which may
                    # be long while another replica holds the migration lock.
                    await asyncio.to_thread(migrate.upgrade, database)
                else:
                    migrate.upgrade(database)  # one process, its own file (or memory)
                self._set_state("starting")
            # Security before anything starts: a refused configuration starts nothing.
            guard = await build_guard(settings, database, overrides.clock)
            check_shorten_fraction(settings.truncation_shorten_fraction)
            storage = FileStorage.for_database(
                database,
                overrides.clock,
                overrides.new_id,
                data_dir=Path(settings.data_dir) if settings.data_dir else None,
                max_file_bytes=settings.max_file_bytes,
                max_project_file_bytes=settings.max_project_file_bytes or None,
            )
            overrides.tokens.preload()
            await storage.start()
            embedder = _embedder(settings, overrides.model_env)
            # Set once the ingestion worker exists: services wake it when they add files.
            wake: list[Callable[[], None]] = []
            deps = Dependencies(
                database=database,
                clock=overrides.clock,
                new_id=overrides.new_id,
                tokens=overrides.tokens,
                limits=Limits(
                    max_message_chars=settings.max_message_chars,
                    max_content_parts=settings.max_content_parts,
                    max_tool_output_bytes=settings.max_tool_output_bytes,
                    max_tool_outputs_bytes=settings.max_tool_outputs_bytes,
                ),
                embedding_model=embedder.model if embedder is not None else None,
                wake_ingestion=lambda: _call_each(wake),
            )
            # Files first: the tools that read and write them (file_search, code_interpreter) are
            # built from `files.storage`, and other owners of File references add their cleanup
            # to `files.on_delete`.
            files = FileService(deps, storage)
            # A deleted File leaves every vector store in the same transaction (CONTRACT.md §12).
            files.on_delete.append(
                lambda connection, _project, file_id: vector_store_queries.remove_file_everywhere(
                    connection, file_id
                )
            )
            owner = replica_name()
            if database.is_postgresql:
                # Replicas share one database: they tell each other about new events, cancels
                # and deletes.
                signals = PostgresSignals(_conninfo(database), owner)
            bus = EventBus(
                _load_after(database),
                _load_one(database),
                # Replicas wake each other with NOTIFY; the poll only covers a lost one.
                recheck_seconds=5.0 if database.is_postgresql else None,
                signals=signals,
                # A run's start and end, logged once committed (observability.logs).
                observer=logs.log_run_events,
            )
            model_config = ModelConfig.load(settings.models_config, overrides.model_env)
            log_model_endpoints(model_config)
            router = ModelRouter(
                model_config,
                max_retries=settings.model_max_retries,
                network_backend=overrides.model_network_backend,
            )
            retriever = Retriever(database, deps.now, embedder=embedder)
            code = CodeInterpreter(
                code_interpreter_config(settings),
                StorageFiles(storage, database),
                overrides.clock,
                replica=owner,
                registry=DatabaseRegistry(database, overrides.clock),
            )
            # The built-in tools the server executes itself (DESIGN.md "Server-side tools").
            tools = overrides.tool_registry or ToolRegistry(
                [
                    FileSearchExecutor(
                        retriever, database, wait_seconds=overrides.file_search_wait
                    ),
                    code.executor,
                ]
            )
            executor = RunExecutor(
                deps,
                router,
                bus,
                tools=tools,
                lease_clock=overrides.lease_clock,
                hooks=overrides.turn_hooks,
                max_tool_rounds=settings.max_tool_rounds,
                shorten_fraction=settings.truncation_shorten_fraction,
            )
            scheduler = RunScheduler(
                deps,
                executor,
                bus,
                max_concurrent=settings.max_concurrent_runs,
                lease_seconds=settings.run_lease_seconds,
                poll_interval=settings.claim_poll_interval,
                owner=owner,
                send_cancel=signals.send_cancel if signals is not None else None,
                lease_clock=overrides.lease_clock,
            )
            ingestion = IngestionWorker(
                database,
                deps.tokens,
                storage,
                owner=owner,
                now=deps.now,
                embedder=embedder,
                concurrency=settings.ingestion_concurrency,
                limits=ExtractionLimits(
                    wall_seconds=settings.extraction_timeout,
                    cpu_seconds=max(1, math.ceil(settings.extraction_timeout)),
                    memory_bytes=settings.extraction_memory_mb * 1024 * 1024,
                ),
                lease_seconds=settings.run_lease_seconds,
                poll_interval=settings.claim_poll_interval,
            )
            wake.append(ingestion.wake)
            threads = ThreadService(deps, bus, scheduler)
            # DeleteThread ends the thread's kernel session.
            threads.on_deleted.append(code.end_thread)
            services = Services(
                assistants=AssistantService(deps),
                threads=threads,
                messages=MessageService(deps),
                runs=RunService(
                    deps, threads, scheduler, bus, expires_in=settings.run_expiry_seconds
                ),
                files=files,
                vector_stores=VectorStoreService(deps, retriever, ingestion.wake),
            )
            # `--code-interpreter required` without a working sandbox: ValueError, exit 2.
            await code.start()
            if signals is not None:
                await signals.start(_listener(bus, scheduler))
            await scheduler.start()
            await ingestion.start()
            files.start_sweeping(overrides.file_sweep_interval)
        except BaseException:
            if ingestion is not None:
                await ingestion.stop()
            if embedder is not None:
                await embedder.aclose()
            if code is not None:
                await code.stop()
            if storage is not None:
                storage.close()
            if signals is not None:
                await signals.stop()
            if router is not None:
                await router.aclose()
            database.dispose()
            self._set_state("stopped")
            raise
        self._started = _Started(
            database,
            guard,
            bus,
            router,
            scheduler,
            signals,
            services,
            code,
            ingestion,
            retriever,
            embedder,
            (metrics.watch(scheduler.metric_values), metrics.watch(bus.metric_values)),
        )

    # --- faces ------------------------------------------------------------------------------

    async def serve(self, *faces: Face) -> None:
        """Start `faces` (each binds its port here), then report every face serving."""
        self._parts()
        for face in faces:
            await face.start()
            self._faces.append(face)
        await self.set_serving(True)
        if self._probe is None:
            self._probe = asyncio.create_task(self._probe_database(), name="database-probe")

    async def set_serving(self, serving: bool) -> None:
        """The one health state, reported by every face: `serving`, while the database answers
        (the probe of `serve` reports NOT_SERVING while it does not)."""
        self._lifecycle_serving = serving
        await self._report()

    async def _report(self) -> None:
        serving = self._lifecycle_serving and self._database_up
        if self._started is not None and self.state not in ("stopping", "stopped"):
            if serving:
                self._set_state("serving")
            elif self._lifecycle_serving:
                self._set_state("database unreachable")
        self.serving = serving
        for face in self._faces:
            await face.set_serving(serving)

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            log.info("state: %s", state)

    async def _probe_database(self) -> None:
        """Every `health_probe_interval`, a `SELECT 1`: health goes NOT_SERVING when it fails
        (balancers then send elsewhere) and SERVING again when it answers."""
        interval = self.overrides.health_probe_interval
        while True:
            await asyncio.sleep(interval)
            database = self.database
            if database is None:
                return
            up = await _answers(database, timeout=max(5.0, interval))
            if up != self._database_up:
                self._database_up = up
                if up:
                    log.info("the database answers again: serving")
                else:
                    log.warning("the database does not answer: reporting NOT_SERVING")
                await self._report()

    # --- stop -------------------------------------------------------------------------------

    async def stop(self, grace: float | None = None) -> None:
        """The shutdown order of the module docstring; `grace` defaults to the setting."""
        started = self._started
        if started is None:
            return
        grace = self.settings.shutdown_grace if grace is None else grace
        self._set_state("stopping")
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
            self._probe = None
        await self.set_serving(False)
        await asyncio.gather(
            *(face.stop(grace) for face in self._faces), started.scheduler.stop(grace)
        )
        self._faces.clear()
        await started.ingestion.stop()
        if started.embedder is not None:
            await started.embedder.aclose()
        await started.code_interpreter.stop()
        await started.services.files.stop_sweeping()
        started.services.files.storage.close()
        if started.signals is not None:
            await started.signals.stop()
        await started.router.aclose()
        started.database.dispose()
        for unwatch in started.unwatch:
            unwatch()
        if tracing.tracer() is not None:
            # Spans still buffered go out before the process ends.
            await asyncio.to_thread(tracing.flush)
        self._started = None
        self._database_up = True
        self.state = "stopped"
        log.info("stopped")


async def _answers(database: Database, *, timeout: float) -> bool:
    """Whether the database answers a `SELECT 1` within `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            await database.transaction(lambda c: c.execute(text("SELECT 1")))
    except Exception:
        return False
    return True


def log_model_endpoints(config: ModelConfig) -> None:
    """Name the endpoints runs will call (base URLs, never keys), and warn when none is usable:
    a run would then fail with "model endpoint unreachable"."""
    usable = False
    for endpoint in config.endpoints:
        usable = True
        log.info("model endpoint %s for %s", endpoint.base_url, ", ".join(endpoint.models) or "-")
    if config.default_base_url is not None:
        usable = True
        log.info("model endpoint %s for other models (OPENAI_BASE_URL)", config.default_base_url)
    elif config.default_api_key != NO_API_KEY:
        usable = True
        log.info("model endpoint %s for other models (OPENAI_API_KEY set)", DEFAULT_OPENAI_BASE_URL)
    if not usable:
        log.warning(
            "no usable model endpoint: set OPENAI_API_KEY (for %s), OPENAI_BASE_URL or "
            "--models-config, or runs will fail. For local work: `assistants-grpc fake-model` "
            "serves a scripted model at http://127.0.0.1:8089/v1 (set "
            "OPENAI_BASE_URL=http://127.0.0.1:8089/v1), or `make run MODEL=fake` starts both.",
            DEFAULT_OPENAI_BASE_URL,
        )


def _call_each(callbacks: list[Callable[[], None]]) -> None:
    for callback in callbacks:
        callback()


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


def _conninfo(database: Database) -> str:
    """The libpq connection string of the database, for the signals' own connections."""
    url = database.engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _load_after(database: Database) -> LoadAfter:
    async def load(run_id: str, after: int, limit: int) -> list[RunEvent]:
        return await database.transaction(lambda c: event_log.read_after(c, run_id, after, limit))

    return load


def _load_one(database: Database) -> LoadOne:
    async def load(run_id: str, sequence: int) -> RunEvent | None:
        return await database.transaction(lambda c: event_log.read_one(c, run_id, sequence))

    return load


def _listener(bus: EventBus, scheduler: RunScheduler) -> Listener:
    """What this replica does when another one signals."""

    def deleted_elsewhere(run_id: str) -> None:
        bus.forgotten_elsewhere(run_id)
        scheduler.on_deleted(run_id)

    return Listener(
        on_events=bus.wake,
        on_cancel=scheduler.on_cancel,
        on_deleted=deleted_elsewhere,
        on_reconnect=bus.wake_all,
    )


__all__ = ["Face", "Overrides", "Runtime"]
