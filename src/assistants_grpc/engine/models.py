"""Routing model names to OpenAI-compatible chat-completions endpoints.

By default every model goes to the endpoint the ``openai`` SDK itself would use:
``OPENAI_BASE_URL`` (else ``https://api.openai.com/v1``) with ``OPENAI_API_KEY`` (else
``"not-needed"``, so a local endpoint without auth works). A TOML file (``--models-config``)
may send model names to other endpoints and give context windows::

    [defaults]                        # optional
    context_window = 128000

    [[endpoints]]
    base_url = "http://127.0.0.1:8000/v1"
    api_key_env = "LOCAL_LLM_KEY"     # or api_key = "..."; neither -> "not-needed"
    models = ["llama-*", "qwen2.5"]   # fnmatch patterns (case-sensitive); first endpoint wins
    context_window = 8192             # optional, for every model of this endpoint

    [models."llama-3.1-8b"]           # optional per-model overrides (exact names)
    context_window = 131072
    upstream_model = "meta-llama/Llama-3.1-8B-Instruct"

A model's context window is the first of: its ``[models]`` override, its endpoint's
``context_window``, the built-in table of known OpenAI models (by prefix, tried on the requested
name, then on ``upstream_model``), ``[defaults].context_window``, 128000.

Unknown keys, wrong types and an ``api_key_env`` naming an unset variable are rejected with a
:class:`ModelConfigError` naming the key.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import translate
from types import TracebackType
from typing import Any, Final, Self

import httpcore2
import openai

from assistants_grpc.engine.model_http import QuickAckBackend, model_http_client

__all__ = [
    "DEFAULT_CONTEXT_WINDOW",
    "DEFAULT_OPENAI_BASE_URL",
    "NO_API_KEY",
    "EndpointConfig",
    "ModelConfig",
    "ModelConfigError",
    "ModelOverride",
    "ModelRoute",
    "ModelRouter",
    "known_context_window",
]

DEFAULT_CONTEXT_WINDOW: Final = 128_000
DEFAULT_OPENAI_BASE_URL: Final = "https://api.openai.com/v1"
NO_API_KEY: Final = "not-needed"
"""The API key sent when none is configured (the SDK refuses to start without one)."""

# Known OpenAI models, by name prefix; the first matching prefix wins (so order matters).
_KNOWN_CONTEXT_WINDOWS: Final[tuple[tuple[str, int], ...]] = (
    ("gpt-4o", 128_000),
    ("gpt-4.1", 1_047_576),
    ("gpt-4-turbo", 128_000),
    ("gpt-4", 8_192),
    ("gpt-3.5-turbo", 16_385),
    ("o1", 200_000),
    ("o3", 200_000),
    ("o4", 200_000),
    ("gpt-5", 400_000),
)


def known_context_window(model: str) -> int | None:
    """The context window of a known OpenAI model (by name prefix), else None."""
    for prefix, window in _KNOWN_CONTEXT_WINDOWS:
        if model.startswith(prefix):
            return window
    return None


class ModelConfigError(ValueError):
    """The models configuration is invalid; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class ModelRoute:
    """Where and how to call one model."""

    base_url: str | None
    """The endpoint's base URL; None means the SDK default (``https://api.openai.com/v1``)."""
    api_key: str | None = field(repr=False)
    context_window: int
    upstream_model: str
    """The model name to send to the endpoint."""


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    """One ``[[endpoints]]`` entry, with its API key resolved."""

    base_url: str
    api_key: str = field(repr=False)
    models: tuple[str, ...]
    context_window: int | None = None
    _patterns: tuple[re.Pattern[str], ...] = field(
        init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        patterns = tuple(re.compile(translate(p)) for p in self.models)
        object.__setattr__(self, "_patterns", patterns)

    def matches(self, model: str) -> bool:
        return any(p.match(model) is not None for p in self._patterns)


@dataclass(frozen=True, slots=True)
class ModelOverride:
    """One ``[models."NAME"]`` table."""

    context_window: int | None = None
    upstream_model: str | None = None


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """The parsed models configuration plus the default endpoint taken from the environment."""

    endpoints: tuple[EndpointConfig, ...] = ()
    models: Mapping[str, ModelOverride] = field(default_factory=dict)
    default_context_window: int | None = None
    default_base_url: str | None = None
    default_api_key: str = field(default=NO_API_KEY, repr=False)

    @classmethod
    def load(cls, path: str | None, env: Mapping[str, str] | None = None) -> ModelConfig:
        """Read the TOML file at ``path`` (None: no file, only the default endpoint).

        ``env`` (default ``os.environ``) supplies ``OPENAI_BASE_URL``, ``OPENAI_API_KEY`` and
        the variables named by ``api_key_env``.
        """
        if path is None:
            return cls.from_mapping({}, env)
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ModelConfigError(f"{path}: cannot read the models config: {reason}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ModelConfigError(f"{path}: invalid TOML: {exc}") from None
        return cls.from_mapping(data, env, source=path)

    @classmethod
    def from_mapping(
        cls,
        data: Mapping[str, Any],
        env: Mapping[str, str] | None = None,
        *,
        source: str = "models config",
    ) -> ModelConfig:
        """Validate already-parsed TOML data (see the module docstring for the format)."""
        env = os.environ if env is None else env
        parser = _Parser(source, env)
        return parser.config(data)


class _Parser:
    def __init__(self, source: str, env: Mapping[str, str]) -> None:
        self.source = source
        self.env = env

    def error(self, key: str, problem: str) -> ModelConfigError:
        return ModelConfigError(f"{self.source}: {key}: {problem}")

    def table(self, value: object, key: str, allowed: Sequence[str]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error(key, f"must be a table, not {_type_name(value)}")
        for name in value:
            if name not in allowed:
                where = f"{key}.{name}" if key else str(name)
                raise self.error(where, f"unknown key (allowed: {', '.join(allowed)})")
        return value

    def positive_int(self, value: object, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.error(key, f"must be a positive integer, not {_describe(value)}")
        return value

    def string(self, value: object, key: str, *, secret: bool = False) -> str:
        if not isinstance(value, str) or not value.strip():
            if secret:
                shown = "an empty string" if isinstance(value, str) else _type_name(value)
            else:
                shown = _describe(value)
            raise self.error(key, f"must be a non-empty string, not {shown}")
        return value

    def config(self, data: Mapping[str, Any]) -> ModelConfig:
        top = self.table(data, "", ("defaults", "endpoints", "models"))
        default_window: int | None = None
        if "defaults" in top:
            defaults = self.table(top["defaults"], "defaults", ("context_window",))
            if "context_window" in defaults:
                default_window = self.positive_int(
                    defaults["context_window"], "defaults.context_window"
                )
        endpoints: list[EndpointConfig] = []
        if "endpoints" in top:
            raw_endpoints = top["endpoints"]
            if not isinstance(raw_endpoints, list):
                raise self.error(
                    "endpoints",
                    f"must be an array of tables ([[endpoints]]), not {_type_name(raw_endpoints)}",
                )
            for i, raw in enumerate(raw_endpoints):
                endpoints.append(self.endpoint(raw, f"endpoints[{i}]"))
        models: dict[str, ModelOverride] = {}
        if "models" in top:
            raw_models = top["models"]
            if not isinstance(raw_models, Mapping):
                raise self.error("models", f"must be a table, not {_type_name(raw_models)}")
            for name, raw in raw_models.items():
                models[name] = self.override(raw, f'models."{name}"')
        base_url = self.env.get("OPENAI_BASE_URL") or None
        api_key = self.env.get("OPENAI_API_KEY") or NO_API_KEY
        return ModelConfig(
            endpoints=tuple(endpoints),
            models=models,
            default_context_window=default_window,
            default_base_url=base_url,
            default_api_key=api_key,
        )

    def endpoint(self, raw: object, key: str) -> EndpointConfig:
        allowed = ("base_url", "api_key", "api_key_env", "models", "context_window")
        table = self.table(raw, key, allowed)
        if "base_url" not in table:
            raise self.error(f"{key}.base_url", "is required")
        base_url = self.string(table["base_url"], f"{key}.base_url")
        if not base_url.startswith(("http://", "https://")):
            raise self.error(
                f"{key}.base_url", f"must be an http:// or https:// URL, not {base_url!r}"
            )
        if "api_key" in table and "api_key_env" in table:
            raise self.error(key, "set api_key or api_key_env, not both")
        api_key = NO_API_KEY
        if "api_key" in table:
            api_key = self.string(table["api_key"], f"{key}.api_key", secret=True)
        elif "api_key_env" in table:
            variable = self.string(table["api_key_env"], f"{key}.api_key_env")
            value = self.env.get(variable)
            if not value:
                raise self.error(
                    f"{key}.api_key_env", f"environment variable {variable} is not set"
                )
            api_key = str(value)
        if "models" not in table:
            raise self.error(f"{key}.models", "is required (a list of model name patterns)")
        raw_patterns = table["models"]
        if not isinstance(raw_patterns, list) or not raw_patterns:
            raise self.error(
                f"{key}.models",
                f"must be a non-empty list of model name patterns, not {_describe(raw_patterns)}",
            )
        patterns = tuple(self.string(p, f"{key}.models[{j}]") for j, p in enumerate(raw_patterns))
        window = None
        if "context_window" in table:
            window = self.positive_int(table["context_window"], f"{key}.context_window")
        return EndpointConfig(
            base_url=base_url.rstrip("/"), api_key=api_key, models=patterns, context_window=window
        )

    def override(self, raw: object, key: str) -> ModelOverride:
        table = self.table(raw, key, ("context_window", "upstream_model"))
        window = None
        if "context_window" in table:
            window = self.positive_int(table["context_window"], f"{key}.context_window")
        upstream = None
        if "upstream_model" in table:
            upstream = self.string(table["upstream_model"], f"{key}.upstream_model")
        return ModelOverride(context_window=window, upstream_model=upstream)


def _type_name(value: object) -> str:
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    return type(value).__name__


def _describe(value: object) -> str:
    if isinstance(value, (Mapping, list)):
        return _type_name(value)
    return repr(value)


class ModelRouter:
    """Routes model names to endpoints and hands out one cached ``AsyncOpenAI`` client per
    (base_url, api_key). Clients are created lazily with the router's ``max_retries`` and
    ``timeout``; the SDK retries 429/5xx and connection errors with exponential backoff.

    Every client sends through :func:`~assistants_grpc.engine.model_http.model_http_client` on
    one ``network_backend`` (default :class:`~assistants_grpc.engine.model_http.QuickAckBackend`,
    which keeps model servers that leave Nagle on from delaying the first chunk by ~40 ms)."""

    def __init__(
        self,
        config: ModelConfig,
        *,
        max_retries: int = 3,
        timeout: float = 600.0,
        network_backend: httpcore2.AsyncNetworkBackend | None = None,
    ) -> None:
        self.config = config
        self.max_retries = max_retries
        self.timeout = timeout
        self.network_backend = network_backend if network_backend is not None else QuickAckBackend()
        self._clients: dict[tuple[str, str], openai.AsyncOpenAI] = {}
        self._closed = False

    def route(self, model: str) -> ModelRoute:
        """The endpoint, key, context window and upstream name for ``model``."""
        config = self.config
        override = config.models.get(model)
        upstream = model
        if override is not None and override.upstream_model is not None:
            upstream = override.upstream_model
        endpoint = next((e for e in config.endpoints if e.matches(model)), None)
        if endpoint is not None:
            base_url: str | None = endpoint.base_url
            api_key = endpoint.api_key
        else:
            base_url = config.default_base_url
            api_key = config.default_api_key
        window = override.context_window if override is not None else None
        if window is None and endpoint is not None:
            window = endpoint.context_window
        if window is None:
            window = known_context_window(model)
        if window is None and upstream != model:
            window = known_context_window(upstream)
        if window is None:
            window = config.default_context_window
        if window is None:
            window = DEFAULT_CONTEXT_WINDOW
        return ModelRoute(
            base_url=base_url, api_key=api_key, context_window=window, upstream_model=upstream
        )

    def client_for(self, model: str) -> openai.AsyncOpenAI:
        """The (cached) client for ``model``'s endpoint."""
        route = self.route(model)
        return self.client_for_route(route)

    def client_for_route(self, route: ModelRoute) -> openai.AsyncOpenAI:
        """The (cached) client for a route returned by :meth:`route`."""
        if self._closed:
            raise RuntimeError("ModelRouter is closed")
        base_url = route.base_url or DEFAULT_OPENAI_BASE_URL
        api_key = route.api_key or NO_API_KEY
        key = (base_url, api_key)
        client = self._clients.get(key)
        if client is None:
            # base_url is always explicit, so the SDK never falls back to os.environ for it.
            client = openai.AsyncOpenAI(
                base_url=base_url,
                api_key=api_key,
                max_retries=self.max_retries,
                timeout=self.timeout,
                http_client=model_http_client(self.network_backend),
            )
            self._clients[key] = client
        return client

    async def aclose(self) -> None:
        """Close every client (idempotent); the router cannot be used afterwards."""
        self._closed = True
        clients = list(self._clients.values())
        self._clients.clear()
        for client in clients:
            await client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
