"""Settings, read once at start-up: CLI flags over `ASSISTANTS_*` environment variables over
defaults, into one frozen object that is passed down (no global state)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from assistants_grpc.store.database import DEFAULT_DATABASE_URL

ENV_PREFIX = "ASSISTANTS_"


def _default_max_concurrent_runs() -> int:
    # Runs mostly wait on the model, so a few per core keep the CPU busy without piling up.
    return max(8, 16 * (os.cpu_count() or 1))


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 50051
    database_url: str = DEFAULT_DATABASE_URL
    log_level: str = "INFO"
    # How long in-flight calls may take to finish after SIGTERM before they are cancelled.
    shutdown_grace: float = 10.0
    # Run execution.
    max_concurrent_runs: int = field(default_factory=_default_max_concurrent_runs)
    run_expiry_seconds: int = 600
    models_config: str | None = None
    # How long a replica's claim on a run lasts without a heartbeat: a dead replica's runs are
    # taken over this long after its last renewal (plus one claim poll).
    run_lease_seconds: float = 10.0
    # How often idle workers look for runs nobody holds (created elsewhere, or orphaned).
    claim_poll_interval: float = 0.5
    # Retries of a 429/5xx from the model endpoint (the openai SDK backs off between them).
    model_max_retries: int = 3
    # Dense retrieval (README "Files and vector stores"): an OpenAI-compatible /v1/embeddings
    # endpoint; without a model, vector stores are searched lexically only. The base URL
    # defaults to OPENAI_BASE_URL, the key to OPENAI_API_KEY (or the variable named here).
    embedding_model: str | None = None
    embedding_base_url: str | None = None
    embedding_api_key_env: str | None = None
    # Files ingested into vector stores at once by this replica, and what extracting the text
    # of one may take (a child process, killed past the time; its address space capped).
    ingestion_concurrency: int = 2
    extraction_timeout: float = 120.0
    extraction_memory_mb: int = 2048
    # `auto` truncation shortens a text longer than this share of the prompt budget (to that
    # length, head and tail around a marker) before it drops any message (engine/prompt.py).
    truncation_shorten_fraction: float = 0.125
    # Whether `serve` applies pending migrations itself before serving.
    migrate_on_start: bool = True
    # Who may call (README "Security"). auth: auto | required | disabled; `auto` requires a key
    # as soon as one exists. Without authentication only loopback is served, unless
    # allow_insecure. Key lookups are cached this many seconds (revocation takes that long).
    auth: str = "auto"
    allow_insecure: bool = False
    auth_cache_seconds: float = 2.0
    # TLS from PEM files; a client CA also requires client certificates (mTLS).
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    # Limits. Request bytes are enforced by gRPC (RESOURCE_EXHAUSTED); the content and tool
    # output limits are INVALID_ARGUMENT naming the field; streams and the request rate count
    # per API key (RESOURCE_EXHAUSTED, the rate with RetryInfo). A rate of 0 turns it off.
    max_request_bytes: int = 10 * 1024 * 1024
    max_message_chars: int = 256_000
    max_content_parts: int = 32
    max_tool_output_bytes: int = 512 * 1024
    max_tool_outputs_bytes: int = 4 * 1024 * 1024
    max_streams_per_key: int = 100
    rate_limit_per_second: float = 0.0
    rate_limit_burst: int = 100
    # Files (README "Files"): where local data lives (None: beside the SQLite database, or
    # `data/`), the largest file a project may store, and its quota (0: none). Past either,
    # RESOURCE_EXHAUSTED and nothing is stored.
    data_dir: str | None = None
    max_file_bytes: int = 512 * 1000 * 1000
    max_project_file_bytes: int = 0

    @classmethod
    def load(
        cls, overrides: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
    ) -> Settings:
        """Defaults, then `ASSISTANTS_<NAME>` variables from `env`, then non-None overrides."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _parse(f.name, raw, f.type)
        for name, value in (overrides or {}).items():
            if value is not None:
                values[name] = value
        return cls(**values)


def _parse(name: str, raw: str, annotation: Any) -> Any:
    kind = str(annotation)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            return raw.strip().lower() in {"1", "true", "yes", "on"}
    except ValueError:
        raise ValueError(f"{ENV_PREFIX}{name.upper()}: not a valid {kind}: {raw!r}") from None
    return raw


__all__ = ["ENV_PREFIX", "Settings"]
