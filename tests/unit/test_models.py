"""Model routing from a TOML config and the environment, and its clients, against the fake
chat-completions server with real ``openai`` clients."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from assistants_grpc.engine.model_stream import (
    Finished,
    TextDelta,
    ToolCallStarted,
    stream_completion,
)
from assistants_grpc.engine.models import (
    DEFAULT_OPENAI_BASE_URL,
    ModelConfig,
    ModelConfigError,
    ModelRoute,
    ModelRouter,
    known_context_window,
)
from assistants_grpc.fake_model import FakeModelServer

CONFIG = """
[defaults]
context_window = 32000

[[endpoints]]
base_url = "http://127.0.0.1:8000/v1/"
api_key_env = "LOCAL_LLM_KEY"
models = ["llama-*", "qwen2.5"]
context_window = 8192

[[endpoints]]
base_url = "http://10.0.0.2:9000/v1"
api_key = "sk-literal-key"
models = ["llama-3*", "mistral-?b", "alias-*"]

[[endpoints]]
base_url = "https://gpu.example.com/v1"
models = ["phi-[34]"]

[models."llama-3.1-8b"]
context_window = 131072
upstream_model = "meta-llama/Llama-3.1-8B-Instruct"

[models."alias-fast"]
upstream_model = "gpt-4.1-mini"

[models."gpt-4o"]
context_window = 64000
"""

ENV = {
    "LOCAL_LLM_KEY": "sk-local-secret",
    "OPENAI_BASE_URL": "https://proxy.example.com/v1",
    "OPENAI_API_KEY": "sk-default-secret",
}


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "models.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


@pytest.fixture
def router(tmp_path: Path) -> ModelRouter:
    return ModelRouter(ModelConfig.load(write(tmp_path, CONFIG), ENV))


# -- routing -------------------------------------------------------------------------------------


def test_no_config_uses_the_sdk_default_endpoint_without_a_key() -> None:
    router = ModelRouter(ModelConfig.load(None, env={}))
    assert router.route("gpt-4o") == ModelRoute(
        base_url=None, api_key="not-needed", context_window=128000, upstream_model="gpt-4o"
    )
    assert router.route("my-local-model").context_window == 128000


def test_default_endpoint_comes_from_openai_env_variables() -> None:
    env = {"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1", "OPENAI_API_KEY": "sk-env"}
    route = ModelRouter(ModelConfig.load(None, env)).route("whatever")
    assert route.base_url == "http://127.0.0.1:11434/v1"
    assert route.api_key == "sk-env"
    assert route.upstream_model == "whatever"


def test_empty_env_variables_count_as_unset() -> None:
    route = ModelRouter(ModelConfig.load(None, {"OPENAI_BASE_URL": "", "OPENAI_API_KEY": ""}))
    assert route.route("m") == ModelRoute(None, "not-needed", 128000, "m")


def test_patterns_route_to_the_first_matching_endpoint(router: ModelRouter) -> None:
    # "llama-3.1-8b" matches both the first and the second endpoint: the first wins.
    route = router.route("llama-3.1-8b")
    assert route.base_url == "http://127.0.0.1:8000/v1"  # trailing slash dropped
    assert route.api_key == "sk-local-secret"  # from api_key_env
    assert router.route("qwen2.5").base_url == "http://127.0.0.1:8000/v1"
    assert router.route("qwen2.5-coder").base_url == "https://proxy.example.com/v1"  # exact only

    mistral = router.route("mistral-7b")
    assert mistral.base_url == "http://10.0.0.2:9000/v1"
    assert mistral.api_key == "sk-literal-key"
    assert router.route("mistral-70b").base_url == "https://proxy.example.com/v1"  # ? is one char

    phi = router.route("phi-4")
    assert phi.base_url == "https://gpu.example.com/v1"
    assert phi.api_key == "not-needed"  # neither api_key nor api_key_env
    assert router.route("phi-5").api_key == "sk-default-secret"
    assert router.route("PHI-4").base_url == "https://proxy.example.com/v1"  # case-sensitive


def test_unmatched_models_go_to_the_default_endpoint(router: ModelRouter) -> None:
    route = router.route("gpt-4o-mini")
    assert route == ModelRoute(
        base_url="https://proxy.example.com/v1",
        api_key="sk-default-secret",
        context_window=128000,
        upstream_model="gpt-4o-mini",
    )


def test_per_model_override(router: ModelRouter) -> None:
    route = router.route("llama-3.1-8b")
    assert route.context_window == 131072  # override beats the endpoint's 8192
    assert route.upstream_model == "meta-llama/Llama-3.1-8B-Instruct"
    other = router.route("llama-3.2-1b")
    assert other.context_window == 8192  # the endpoint's
    assert other.upstream_model == "llama-3.2-1b"


def test_context_window_fallbacks(router: ModelRouter) -> None:
    # Override on a default-endpoint model beats the built-in table.
    assert router.route("gpt-4o").context_window == 64000
    # No endpoint window: the built-in table, tried on the requested name...
    assert router.route("gpt-4.1-nano").context_window == 1047576
    # ... then on the upstream name.
    alias = router.route("alias-fast")
    assert alias.upstream_model == "gpt-4.1-mini"
    assert alias.base_url == "http://10.0.0.2:9000/v1"
    assert alias.context_window == 1047576
    # Then [defaults], then 128000.
    assert router.route("mistral-7b").context_window == 32000
    assert router.route("some-model").context_window == 32000
    bare = ModelRouter(ModelConfig.load(None, {}))
    assert bare.route("some-model").context_window == 128000


@pytest.mark.parametrize(
    ("model", "window"),
    [
        ("gpt-4o", 128000),
        ("gpt-4o-mini-2024-07-18", 128000),
        ("gpt-4.1", 1047576),
        ("gpt-4.1-mini", 1047576),
        ("gpt-4-turbo-preview", 128000),
        ("gpt-4", 8192),
        ("gpt-4-0613", 8192),
        ("gpt-3.5-turbo-0125", 16385),
        ("o1", 200000),
        ("o3-mini", 200000),
        ("o4-mini", 200000),
        ("gpt-5", 400000),
        ("gpt-5-nano", 400000),
        ("llama3", None),
        ("", None),
    ],
)
def test_known_context_windows(model: str, window: int | None) -> None:
    assert known_context_window(model) == window


def test_api_keys_stay_out_of_reprs(router: ModelRouter) -> None:
    assert "sk-local-secret" not in repr(router.route("llama-3.1-8b"))
    assert "secret" not in repr(router.config)
    assert "sk-literal-key" not in repr(router.config)


# -- bad configs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("colour = 1\n", "colour: unknown key"),
        ("[defaults]\ncontext = 5\n", "defaults.context: unknown key"),
        ("[defaults]\ncontext_window = 0\n", "defaults.context_window: must be a positive"),
        ('[defaults]\ncontext_window = "big"\n', "defaults.context_window: must be a positive"),
        ("[defaults]\ncontext_window = true\n", "defaults.context_window: must be a positive"),
        ("defaults = 3\n", "defaults: must be a table"),
        ("endpoints = 3\n", "endpoints: must be an array of tables"),
        ('[[endpoints]]\nmodels = ["a"]\n', "endpoints[0].base_url: is required"),
        (
            '[[endpoints]]\nbase_url = "ftp://x"\nmodels = ["a"]\n',
            "endpoints[0].base_url: must be an http:// or https:// URL",
        ),
        ('[[endpoints]]\nbase_url = ""\nmodels = ["a"]\n', "endpoints[0].base_url: must be a non"),
        ('[[endpoints]]\nbase_url = "http://x"\n', "endpoints[0].models: is required"),
        (
            '[[endpoints]]\nbase_url = "http://x"\nmodels = "a*"\n',
            "endpoints[0].models: must be a non-empty list",
        ),
        (
            '[[endpoints]]\nbase_url = "http://x"\nmodels = []\n',
            "endpoints[0].models: must be a non-empty list",
        ),
        (
            '[[endpoints]]\nbase_url = "http://x"\nmodels = ["a", 3]\n',
            "endpoints[0].models[1]: must be a non-empty string",
        ),
        (
            '[[endpoints]]\nbase_url = "http://x"\nmodels = ["a"]\nkey = "k"\n',
            "endpoints[0].key: unknown key",
        ),
        (
            '[[endpoints]]\nbase_url = "http://x"\nmodels = ["a"]\n'
            '[[endpoints]]\nbase_url = "http://y"\nmodels = ["b"]\ncontext_window = -1\n',
            "endpoints[1].context_window: must be a positive integer",
        ),
        (
            '[[endpoints]]\nbase_url = "http://x"\nmodels = ["a"]\napi_key = "k"\n'
            'api_key_env = "K"\n',
            "endpoints[0]: set api_key or api_key_env, not both",
        ),
        (
            '[[endpoints]]\nbase_url = "http://x"\nmodels = ["a"]\napi_key_env = "NOPE_KEY"\n',
            "endpoints[0].api_key_env: environment variable NOPE_KEY is not set",
        ),
        (
            '[[endpoints]]\nbase_url = "http://x"\nmodels = ["a"]\napi_key = 12345\n',
            "endpoints[0].api_key: must be a non-empty string, not an integer",
        ),
        ("[models]\nx = 1\n", 'models."x": must be a table'),
        ('[models."m"]\nwindow = 1\n', 'models."m".window: unknown key'),
        ('[models."m"]\nupstream_model = ""\n', 'models."m".upstream_model: must be a non-empty'),
        ('[models."m"]\ncontext_window = 1.5\n', 'models."m".context_window: must be a positive'),
        ("models = [1]\n", "models: must be a table"),
        ("[[endpoints]\n", "invalid TOML"),
    ],
)
def test_bad_configs_are_rejected_naming_the_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ModelConfigError) as info:
        ModelConfig.load(path, env={})
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert isinstance(info.value, ValueError)


def test_missing_config_file(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.toml")
    with pytest.raises(ModelConfigError, match=r"nope\.toml: cannot read the models config"):
        ModelConfig.load(path, env={})


def test_from_mapping_without_a_file() -> None:
    config = ModelConfig.from_mapping(
        {"endpoints": [{"base_url": "http://h/v1", "models": ["*"]}]}, env={}
    )
    assert ModelRouter(config).route("anything").base_url == "http://h/v1"


# -- clients -------------------------------------------------------------------------------------


async def test_one_cached_client_per_endpoint_and_key(tmp_path: Path) -> None:
    router = ModelRouter(
        ModelConfig.load(write(tmp_path, CONFIG), ENV), max_retries=5, timeout=12.5
    )
    llama = router.client_for("llama-3.2-1b")
    assert router.client_for("qwen2.5") is llama
    assert router.client_for("llama-3.1-8b") is llama
    assert str(llama.base_url).rstrip("/") == "http://127.0.0.1:8000/v1"
    assert llama.api_key == "sk-local-secret"
    assert llama.max_retries == 5
    assert llama.timeout == 12.5

    mistral = router.client_for("mistral-7b")
    assert mistral is not llama
    assert mistral.api_key == "sk-literal-key"
    default = router.client_for("gpt-4o")
    assert str(default.base_url).rstrip("/") == "https://proxy.example.com/v1"
    assert default.api_key == "sk-default-secret"
    assert router.client_for("gpt-5") is default

    await router.aclose()
    assert llama.is_closed() and mistral.is_closed() and default.is_closed()
    with pytest.raises(RuntimeError, match="closed"):
        router.client_for("gpt-4o")
    await router.aclose()  # idempotent


async def test_default_client_ignores_process_env_when_env_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    async with ModelRouter(ModelConfig.load(None, env={})) as router:
        client = router.client_for("gpt-4o")
        assert str(client.base_url).rstrip("/") == DEFAULT_OPENAI_BASE_URL
        assert client.api_key == "not-needed"
        assert client.max_retries == 3
        assert client.timeout == 600.0


async def test_routed_request_arrives_at_the_endpoint_as_sent(tmp_path: Path) -> None:
    async with FakeModelServer() as server:
        config = f"""
            [[endpoints]]
            base_url = "{server.base_url}"
            api_key_env = "FAKE_KEY"
            models = ["llama-*"]

            [models."llama-3.1-8b"]
            upstream_model = "meta-llama/Llama-3.1-8B-Instruct"
            context_window = 131072
        """
        path = write(tmp_path, config)
        async with ModelRouter(ModelConfig.load(path, {"FAKE_KEY": "k"}), max_retries=0) as router:
            route = router.route("llama-3.1-8b")
            tools: list[dict[str, Any]] = [
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "description": "Weather for a city.",
                        "parameters": {
                            "type": "object",
                            "properties": {"city": {"type": "string"}},
                            "required": ["city"],
                        },
                    },
                }
            ]
            messages = [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": '/tool get_weather {"city": "Paris"}'},
            ]
            params: dict[str, Any] = {
                "model": route.upstream_model,
                "messages": messages,
                "tools": tools,
                "tool_choice": "auto",
                "temperature": 0.25,
                "max_completion_tokens": 77,
                "parallel_tool_calls": True,
            }
            client = router.client_for("llama-3.1-8b")
            async with stream_completion(client, params) as events:
                received = [event async for event in events]

    assert server.requests == [
        {**params, "stream": True, "stream_options": {"include_usage": True}}
    ]
    started = [e for e in received if isinstance(e, ToolCallStarted)]
    assert [(e.index, e.name) for e in started] == [(0, "get_weather")]
    assert not [e for e in received if isinstance(e, TextDelta)]
    assert received[-1] == Finished("tool_calls")
