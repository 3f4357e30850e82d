"""The server: the gRPC face (`api.face.GrpcFace`) and the OpenAI-compatible HTTP face
(`http.face.HttpFace`, on `--http-port` unless that is 0) served on a runtime.

`AssistantsServer(settings, overrides)` builds its own runtime, which is what `serve` and most
tests want; `AssistantsServer(settings, runtime=runtime)` serves one that another face may be
serving too. Either way `stop` is the runtime's one shutdown (runtime.py has the order), every
face included.

`http=True` serves the HTTP face even with `http_port` 0, which then binds any free port (read
it back from `http_port`): tests use it, as `http_port` 0 otherwise turns the face off.
`metrics=True` does the same for Prometheus `/metrics` and `metrics_port`.

Observability (README "Operating"): with metrics on (`--metrics-port`, not 0) or traces on (the
`OTEL_*` variables, observability/tracing.py), the gRPC face gets the interceptor of
observability/rpc.py; `/metrics` binds `--host` when that is loopback or the server requires
authentication, else 127.0.0.1 (the metrics have no key of their own), with the server's TLS.
"""

from __future__ import annotations

import logging

from assistants_grpc.api.face import SERVICE_NAMES, GrpcFace, StartingHealth
from assistants_grpc.auth.authenticator import AuthMode
from assistants_grpc.auth.exposure import is_loopback
from assistants_grpc.auth.tls import server_credentials
from assistants_grpc.config import Settings
from assistants_grpc.engine.scheduler import RunScheduler
from assistants_grpc.files.ingest import IngestionWorker
from assistants_grpc.files.retrieval import Retriever
from assistants_grpc.http.face import HttpFace, StartingHttp, TlsFiles
from assistants_grpc.observability import metrics, rpc, tracing
from assistants_grpc.observability.metrics import MetricsServer
from assistants_grpc.runtime import Overrides, Runtime
from assistants_grpc.services.files import FileService
from assistants_grpc.store.database import Database
from assistants_grpc.tools.code_interpreter.setup import CodeInterpreter

log = logging.getLogger(__name__)


class AssistantsServer:
    def __init__(
        self,
        settings: Settings,
        overrides: Overrides | None = None,
        *,
        runtime: Runtime | None = None,
        http: bool | None = None,
        metrics: bool | None = None,
    ) -> None:
        self.settings = settings
        self.runtime = runtime if runtime is not None else Runtime(settings, overrides)
        self._face: GrpcFace | None = None
        self._starting: StartingHealth | None = None
        self._starting_http: StartingHttp | None = None
        self._serve_http = bool(settings.http_port) if http is None else http
        self._http: HttpFace | None = None
        self._serve_metrics = bool(settings.metrics_port) if metrics is None else metrics
        self._metrics: MetricsServer | None = None

    @property
    def port(self) -> int:
        """The bound port (the chosen one for port 0): while starting, that of the health service
        alone (NOT_SERVING); 0 before and after."""
        if self._face is not None:
            return self._face.port
        return self._starting.port if self._starting is not None else 0

    @property
    def http_port(self) -> int:
        """The HTTP face's bound port: while starting, that of the starting listener (503);
        0 when it is off or not started."""
        if self._http is not None:
            return self._http.port
        return self._starting_http.port if self._starting_http is not None else 0

    @property
    def metrics_port(self) -> int:
        """The bound port of `/metrics`; 0 when it is off or not started."""
        return self._metrics.port if self._metrics is not None else 0

    @property
    def metrics_server(self) -> MetricsServer | None:
        """`/metrics` while served (its `host` and `port`), else None."""
        return self._metrics

    @property
    def http_face(self) -> HttpFace | None:
        return self._http

    @property
    def database(self) -> Database | None:
        return self.runtime.database

    @property
    def scheduler(self) -> RunScheduler | None:
        return self.runtime.scheduler

    @property
    def ingestion(self) -> IngestionWorker | None:
        """The vector-store ingestion worker (tests drive it)."""
        return self.runtime.ingestion

    @property
    def retriever(self) -> Retriever | None:
        """The vector-store search, for the file_search tool's wiring."""
        return self.runtime.retriever

    @property
    def code_interpreter(self) -> CodeInterpreter | None:
        """The python tool's sandbox, sessions and executor (`code_interpreter.executor`)."""
        return self.runtime.code_interpreter

    @property
    def files(self) -> FileService | None:
        """The files' use cases and storage while started (for the wiring of other owners of
        File references, `files.on_delete`, and for tests)."""
        return self.runtime.services.files if self.runtime.started else None

    async def start(self) -> int:
        """Start the runtime (unless it is already) and serve it over gRPC; returns the port."""
        settings = self.settings
        # TLS files first: a refused configuration (SecurityConfigError) starts nothing.
        credentials = server_credentials(
            settings.tls_cert, settings.tls_key, settings.tls_client_ca
        )
        # Before anything records: the faces are built observed, or not at all.
        if self._serve_metrics:
            metrics.enable()
        tracing.configure()
        owns_runtime = not self.runtime.started
        port = settings.port
        http_port = settings.http_port
        starting: StartingHealth | None = None
        starting_http: StartingHttp | None = None
        try:
            if owns_runtime:
                # The ports answer health from now on: NOT_SERVING while migrations run.
                starting = StartingHealth(host=settings.host, port=port, credentials=credentials)
                port = await starting.start()
                self._starting = starting
                if self._serve_http:
                    starting_http = StartingHttp(
                        host=settings.http_bind_host, port=http_port, tls=self._http_tls()
                    )
                    http_port = await starting_http.start()
                    self._starting_http = starting_http
            await self.runtime.start()
        except BaseException:
            self._starting = self._starting_http = None
            raise
        finally:
            if starting is not None:
                await starting.stop()
            if starting_http is not None:
                await starting_http.stop()
        face = GrpcFace(
            self.runtime.services,
            self.runtime.guard,
            host=settings.host,
            port=port,
            max_request_bytes=settings.max_request_bytes,
            credentials=credentials,
            interceptors=rpc.interceptors(),
        )
        http_face = self._http_face(http_port) if self._serve_http else None
        metrics_face = self._metrics_face() if self._serve_metrics else None
        faces = [f for f in (face, http_face, metrics_face) if f is not None]
        try:
            await self.runtime.serve(*faces)
        except BaseException:
            if owns_runtime:
                await self.runtime.stop(0)
            raise
        self._face = face
        self._starting = self._starting_http = None
        self._http = http_face
        self._metrics = metrics_face
        database = self.runtime.database
        assert database is not None  # started above
        log.info(
            "serving on %s:%d (database %s)",
            settings.host,
            face.port,
            database.engine.url.render_as_string(hide_password=True),
        )
        return face.port

    def _http_tls(self) -> TlsFiles | None:
        settings = self.settings
        if settings.tls_cert is None or settings.tls_key is None:
            return None
        return TlsFiles(settings.tls_cert, settings.tls_key, settings.tls_client_ca)

    def _http_face(self, port: int) -> HttpFace:
        """The HTTP face on `port` (the one the starting listener held, for port 0)."""
        settings = self.settings
        return HttpFace(
            self.runtime.services,
            self.runtime.guard,
            host=settings.http_bind_host,
            port=port,
            max_request_bytes=settings.max_request_bytes,
            tls=self._http_tls(),
        )

    def _metrics_face(self) -> MetricsServer:
        settings = self.settings
        secured = self.runtime.guard.authenticator.mode is AuthMode.REQUIRED
        host = settings.host if is_loopback(settings.host) or secured else "127.0.0.1"
        return MetricsServer(
            host,
            settings.metrics_port,
            certfile=settings.tls_cert if settings.tls_key is not None else None,
            keyfile=settings.tls_key if settings.tls_cert is not None else None,
        )

    async def stop(self, grace: float | None = None) -> None:
        """The runtime's shutdown: every face it serves, then the engine and the database."""
        await self.runtime.stop(grace)
        self._face = None
        self._http = None
        self._metrics = None

    async def wait_for_termination(self) -> None:
        if self._face is not None:
            await self._face.wait_for_termination()


__all__ = ["SERVICE_NAMES", "AssistantsServer", "Overrides"]
