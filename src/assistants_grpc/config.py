"""Settings, read once at start-up: CLI flags over `ASSISTANTS_*` environment variables over
defaults, into one frozen object that is passed down (no global state).

A Settings object checks itself when made: a value the server cannot run with (no workers, a
lease of no time, a negative grace, interval or limit, a boolean word it does not know) is a
ValueError naming the flag and the variable, which `assistants-grpc` reports and exits 2 on,
before anything starts.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

ENV_PREFIX = "ASSISTANTS_"
# A file beside the working directory: `serve` works on a fresh machine with no setup.
DEFAULT_DATABASE_URL = "sqlite:///data/assistants.db"


def _default_max_concurrent_runs() -> int:
    # Runs mostly wait on the model, so a few per core keep the CPU busy without piling up.
    return max(8, 16 * (os.cpu_count() or 1))


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 50051
    # The OpenAI-compatible HTTP/JSON face (README "From the openai SDK"): its port (0 turns it
    # off) and address (None: the same as `host`).
    http_port: int = 8080
    http_host: str | None = None
    # Prometheus `/metrics` (README "Operating"): its port, 0 turns it off. It binds `host` when
    # that is loopback or the server is secured (authentication required), else 127.0.0.1.
    metrics_port: int = 9464
    database_url: str = DEFAULT_DATABASE_URL
    log_level: str = "INFO"
    # text | json (observability.logs): every line carries the call's or the run's ids.
    log_format: str = "text"
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
    # Rounds of server-side tool calls (file_search, code_interpreter) one run may make; the
    # next one ends the run failed, with a message saying so (a model looping on its tools).
    max_tool_rounds: int = 20
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
    # code_interpreter (README "Code interpreter"): auto | off | required; the sandbox's
    # limits per call and per session; the bubblewrap binary, the sandbox venv (None: the
    # checkout's .sandbox/venv) and the first uid of the slots' range; `warm` kernels started
    # ahead for new threads' first calls (0: none), counted among the `sessions`; modules every
    # kernel imports while it starts (comma-separated; "": none).
    code_interpreter: str = "auto"
    code_interpreter_idle: float = 20 * 60
    code_interpreter_max_age: float = 60 * 60
    code_interpreter_timeout: float = 120.0
    code_interpreter_memory: int = 1024 * 1024 * 1024
    code_interpreter_processes: int = 128
    code_interpreter_file_bytes: int = 256 * 1024 * 1024
    code_interpreter_data_bytes: int = 512 * 1024 * 1024
    code_interpreter_output_chars: int = 64 * 1024
    code_interpreter_sessions: int = 32
    code_interpreter_bwrap: str = "bwrap"
    code_interpreter_venv: str | None = None
    code_interpreter_uid_base: int = 990000
    code_interpreter_warm: int = 1
    code_interpreter_preload: str = ""

    @property
    def http_bind_host(self) -> str:
        """The address the HTTP face binds: `--http-host`, else `--host`."""
        return self.http_host if self.http_host is not None else self.host

    def __post_init__(self) -> None:
        for name, (rule, meaning) in _RULES.items():
            value = getattr(self, name)
            if not rule(value):
                raise ValueError(f"{_names(name)}: must be {meaning}, got {value!r}")
        if logging.getLevelNamesMapping().get(self.log_level.upper()) is None:
            raise ValueError(
                f"{_names('log_level')}: not a log level: {self.log_level!r} "
                "(DEBUG, INFO, WARNING, ERROR or CRITICAL)"
            )

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


_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def _at_least(minimum: float) -> Callable[[float], bool]:
    # math.isfinite: NaN compares false with everything, and would slip through a comparison.
    return lambda value: math.isfinite(value) and value >= minimum


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


# The values the server cannot run with, and what a good one is.
_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "log_format": (lambda value: value in ("text", "json"), "text or json"),
    "port": (lambda value: 0 <= value <= 65535, "a port between 0 and 65535 (0: any free one)"),
    "http_port": (lambda value: 0 <= value <= 65535, "a port between 0 and 65535 (0: no HTTP)"),
    "metrics_port": (
        lambda value: 0 <= value <= 65535,
        "a port between 0 and 65535 (0: no metrics)",
    ),
    "shutdown_grace": (_at_least(0), "at least 0 seconds"),
    "max_concurrent_runs": (_at_least(1), "at least 1"),
    "run_expiry_seconds": (_at_least(1), "at least 1 second"),
    "run_lease_seconds": (_positive, "more than 0 seconds"),
    "claim_poll_interval": (_positive, "more than 0 seconds"),
    "model_max_retries": (_at_least(0), "at least 0"),
    "max_tool_rounds": (_at_least(1), "at least 1"),
    "auth_cache_seconds": (_at_least(0), "at least 0 seconds"),
    "max_request_bytes": (_at_least(1), "at least 1"),
    "max_message_chars": (_at_least(1), "at least 1"),
    "max_content_parts": (_at_least(1), "at least 1"),
    "max_tool_output_bytes": (_at_least(1), "at least 1"),
    "max_tool_outputs_bytes": (_at_least(1), "at least 1"),
    "max_streams_per_key": (_at_least(0), "at least 0 (0: no limit)"),
    "rate_limit_per_second": (_at_least(0), "at least 0 (0: no limit)"),
    "rate_limit_burst": (_at_least(1), "at least 1"),
    "code_interpreter_warm": (_at_least(0), "at least 0 (0: no warm kernels)"),
    "code_interpreter_preload": (
        lambda value: all(_MODULE.fullmatch(n.strip()) for n in value.split(",") if n.strip()),
        "comma-separated Python module names (e.g. numpy,pandas,matplotlib.pyplot)",
    ),
}

# The words a boolean variable may be, either way (case does not matter).
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _names(name: str) -> str:
    """How a person sets `name`: its flag and its environment variable."""
    return f"--{name.replace('_', '-')} / {ENV_PREFIX}{name.upper()}"


def _parse(name: str, raw: str, annotation: Any) -> Any:
    kind = str(annotation)
    variable = ENV_PREFIX + name.upper()
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError:
        raise ValueError(f"{variable}: not a valid {kind}: {raw!r}") from None
    if kind == "bool":
        word = raw.strip().lower()
        if word in _TRUE | _FALSE:
            return word in _TRUE
        raise ValueError(
            f"{variable}: not a boolean: {raw!r} (use 1/0, true/false, yes/no or on/off)"
        )
    return raw


__all__ = ["DEFAULT_DATABASE_URL", "ENV_PREFIX", "Settings"]
