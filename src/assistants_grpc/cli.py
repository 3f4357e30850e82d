"""`assistants-grpc serve | migrate | keys | runs | import | export | fake-model`.

Flags override `ASSISTANTS_*` environment variables, which override the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from assistants_grpc import runs_cli
from assistants_grpc.auth import keys_cli
from assistants_grpc.config import Settings
from assistants_grpc.observability import logs
from assistants_grpc.transfer import cli as transfer_cli

log = logging.getLogger("assistants_grpc")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="assistants-grpc", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the gRPC and HTTP faces")
    serve.add_argument("--host", help="address to bind (ASSISTANTS_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (ASSISTANTS_PORT, default 50051)")
    serve.add_argument(
        "--http-port",
        type=int,
        help="port of the OpenAI-compatible HTTP face (ASSISTANTS_HTTP_PORT, default 8080; 0: off)",
    )
    serve.add_argument(
        "--http-host", help="address of the HTTP face (ASSISTANTS_HTTP_HOST, default --host)"
    )
    serve.add_argument(
        "--metrics-port",
        type=int,
        help="port of Prometheus /metrics (ASSISTANTS_METRICS_PORT, default 9464; 0: off)",
    )
    serve.add_argument("--database-url", help="SQLAlchemy URL (ASSISTANTS_DATABASE_URL)")
    serve.add_argument("--log-level", help="DEBUG, INFO, WARNING... (ASSISTANTS_LOG_LEVEL)")
    serve.add_argument(
        "--log-format",
        choices=["text", "json"],
        help="text (default) or json lines (ASSISTANTS_LOG_FORMAT)",
    )
    serve.add_argument(
        "--shutdown-grace", type=float, help="seconds for in-flight calls at shutdown"
    )
    serve.add_argument("--max-concurrent-runs", type=int, help="runs executing at once")
    serve.add_argument("--models-config", help="TOML file routing model names to endpoints")
    serve.add_argument("--run-expiry-seconds", type=int, help="active runs expire after this")
    serve.add_argument("--model-max-retries", type=int, help="retries of a 429/5xx from the model")
    serve.add_argument(
        "--max-tool-rounds", type=int, help="rounds of server-side tool calls a run may make"
    )
    serve.add_argument(
        "--run-lease-seconds", type=float, help="a replica's claim on a run without heartbeat"
    )
    serve.add_argument(
        "--claim-poll-interval", type=float, help="seconds between looks for unclaimed runs"
    )
    serve.add_argument("--embedding-model", help="embedding model for dense vector-store search")
    serve.add_argument("--embedding-base-url", help="its /v1 endpoint (default OPENAI_BASE_URL)")
    serve.add_argument(
        "--embedding-api-key-env", help="variable holding its API key (default OPENAI_API_KEY)"
    )
    serve.add_argument("--ingestion-concurrency", type=int, help="files ingested at once")
    serve.add_argument(
        "--extraction-timeout", type=float, help="seconds one file's text extraction may take"
    )
    serve.add_argument(
        "--extraction-memory-mb", type=int, help="memory one file's text extraction may take"
    )
    serve.add_argument(
        "--truncation-shorten-fraction",
        type=float,
        help="auto truncation shortens texts over this share of the prompt budget (0.125)",
    )

    _add_security_flags(serve)
    files = serve.add_argument_group("files")
    files.add_argument(
        "--data-dir", help="local data: file contents with SQLite (default: beside the database)"
    )
    files.add_argument("--max-file-bytes", type=int, help="largest file (default 512 MB)")
    files.add_argument(
        "--max-project-file-bytes", type=int, help="bytes of files per project (default 0: none)"
    )

    _add_code_interpreter_flags(serve)

    migrate = commands.add_parser("migrate", help="apply the database migrations and exit")
    migrate.add_argument("--database-url", help="SQLAlchemy URL (ASSISTANTS_DATABASE_URL)")
    migrate.add_argument("--log-level")

    keys_cli.add_parser(commands)
    runs_cli.add_parser(commands)
    transfer_cli.add_parsers(commands)

    fake = commands.add_parser("fake-model", help="run a scripted OpenAI-compatible model server")
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=8089)
    fake.add_argument(
        "--nagle",
        action="store_true",
        help="leave Nagle on (no TCP_NODELAY), as simple servers do: reproduces ACK stalls",
    )
    fake.add_argument("--log-level")
    return parser


def _add_security_flags(serve: argparse.ArgumentParser) -> None:
    """Who may call and how much (README "Security"); each also as ASSISTANTS_<NAME>."""
    group = serve.add_argument_group("security and limits")
    group.add_argument(
        "--auth",
        choices=["auto", "required", "disabled"],
        help="auto (default): keys required once one exists; required; disabled",
    )
    group.add_argument(
        "--allow-insecure",
        action="store_true",
        default=None,
        help="serve a non-loopback address without authentication",
    )
    group.add_argument("--auth-cache-seconds", type=float, help="key lookup cache (default 2)")
    group.add_argument("--tls-cert", help="PEM certificate chain: serve TLS")
    group.add_argument("--tls-key", help="PEM private key of --tls-cert")
    group.add_argument("--tls-client-ca", help="PEM CA bundle: require client certificates")
    for flag, kind, meaning in (
        ("--max-request-bytes", int, "largest request accepted (default 10 MiB)"),
        ("--max-message-chars", int, "text characters of one message (default 256000)"),
        ("--max-content-parts", int, "content parts of one message (default 32)"),
        ("--max-tool-output-bytes", int, "bytes of one tool output (default 512 KiB)"),
        ("--max-tool-outputs-bytes", int, "bytes of one submission's outputs (default 4 MiB)"),
        ("--max-streams-per-key", int, "open streams per API key (default 100, 0: no limit)"),
        ("--rate-limit-per-second", float, "calls per second per API key (default 0: off)"),
        ("--rate-limit-burst", int, "calls per API key at once, above the rate (default 100)"),
    ):
        group.add_argument(flag, type=kind, help=meaning)


def _add_code_interpreter_flags(serve: argparse.ArgumentParser) -> None:
    """The python tool's sandbox (README "Code interpreter"); each also as ASSISTANTS_<NAME>."""
    group = serve.add_argument_group("code interpreter")
    group.add_argument(
        "--code-interpreter",
        choices=["auto", "off", "required"],
        help="auto (default): on when the sandbox works; off; required: refuse to start without",
    )
    for flag, kind, meaning in (
        ("--code-interpreter-idle", float, "seconds a session may stay idle (default 1200)"),
        ("--code-interpreter-max-age", float, "seconds a session may live (default 3600)"),
        ("--code-interpreter-timeout", float, "wall seconds per execution (default 120)"),
        ("--code-interpreter-memory", int, "bytes of memory per session (default 1 GiB)"),
        ("--code-interpreter-processes", int, "processes and threads per session (default 128)"),
        ("--code-interpreter-file-bytes", int, "largest file the code writes (default 256 MiB)"),
        ("--code-interpreter-data-bytes", int, "size of /mnt/data per session (default 512 MiB)"),
        ("--code-interpreter-output-chars", int, "log characters kept per call (default 65536)"),
        ("--code-interpreter-sessions", int, "live sessions at once (default 32)"),
        ("--code-interpreter-bwrap", str, "the bubblewrap binary (default: bwrap on PATH)"),
        ("--code-interpreter-venv", str, "the sandbox venv (default: .sandbox/venv)"),
        ("--code-interpreter-uid-base", int, "first uid of the sessions' uids (default 990000)"),
        ("--code-interpreter-warm", int, "kernels started ahead for new threads (default 1)"),
        ("--code-interpreter-preload", str, "modules each kernel imports at start (default none)"),
    ):
        group.add_argument(flag, type=kind, help=meaning)


def _configure_logging(level: str, log_format: str = "text") -> None:
    logs.configure(level, log_format)


async def _serve(settings: Settings) -> int:
    from assistants_grpc.server import AssistantsServer
    from assistants_grpc.store.database import normalize_url

    server = AssistantsServer(settings)
    if normalize_url(settings.database_url).startswith("postgresql"):
        # PostgreSQL calls run on threads beside the event loop; a thread waiting for the GIL
        # otherwise waits out CPython's 5 ms switch interval while the loop is busy (measured:
        # 32 -> 47 runs/s and 19 -> 17 ms added latency with one caller).
        sys.setswitchinterval(0.001)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await server.start()
    except ValueError as error:
        # A configuration the server will not start with: an exposed address without
        # authentication (SecurityConfigError), unreadable TLS files, a limit below 1.
        print(f"assistants-grpc: {error}", file=sys.stderr)
        return 2
    await stop.wait()
    log.info("shutting down (grace %.1f s)", settings.shutdown_grace)
    await server.stop()
    return 0


def _run(main: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop
    except ImportError:  # uvloop is optional (not on Windows)
        return asyncio.run(main)
    return uvloop.run(main)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("keys", "runs", "import", "export"):
        # Only the settings these share with `serve`; the rest are their own arguments.
        shared = {"database_url": args.database_url, "log_level": args.log_level}
        if args.command not in ("keys", "runs"):
            shared |= {name: getattr(args, name, None) for name in transfer_cli.SHARED_SETTINGS}
        try:
            key_settings = Settings.load(shared)
        except (TypeError, ValueError) as error:
            print(f"assistants-grpc: {error}", file=sys.stderr)
            return 2
        _configure_logging(key_settings.log_level, key_settings.log_format)
        if args.command == "keys":
            return keys_cli.run(args, key_settings.database_url)
        if args.command == "runs":
            return runs_cli.run(args, key_settings.database_url)
        return transfer_cli.run(args, key_settings)
    overrides = {k: v for k, v in vars(args).items() if k != "command"}
    if args.command == "fake-model":
        from assistants_grpc.fake_model import main as fake_main

        _configure_logging(args.log_level or "INFO")
        nagle = ["--nagle"] if args.nagle else []
        return fake_main(["--host", args.host, "--port", str(args.port), *nagle]) or 0
    try:
        settings = Settings.load(overrides)
    except (TypeError, ValueError) as error:
        print(f"assistants-grpc: {error}", file=sys.stderr)
        return 2
    _configure_logging(settings.log_level, settings.log_format)
    if args.command == "migrate":
        from assistants_grpc.store import migrate
        from assistants_grpc.store.database import Database

        database = Database(settings.database_url)
        try:
            migrate.upgrade(database)
            log.info("database at revision %s", migrate.current_revision(database))
        finally:
            database.dispose()
        return 0
    with contextlib.suppress(KeyboardInterrupt):
        return _run(_serve(settings))
    return 0


__all__ = ["main"]
