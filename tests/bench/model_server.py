"""The benchmark's model server: the project's `FakeModelServer` in its own process, with
responders for the bench model names. Run as
``python -m tests.bench.model_server --port N [--nagle-port M]``.

With ``--nagle-port`` the same responders are also served on a second port by a
`FakeModelServer(nodelay=False)`: Nagle's algorithm left on, as simple model servers do (the
runs section measures both; the service reaches it as :data:`MODEL_FAST_NAGLE`, see
:func:`models_config`).

* ``bench-fast``: 50 text chunks at once (the "model that answers at once" of the run figures).
* ``bench-slow``: a long answer, one chunk every :data:`SLOW_CHUNK_DELAY` seconds, so its runs
  stay in progress while watchers are attached.
* ``bench-paced``: one chunk every :data:`PACED_CHUNK_DELAY` seconds, just above the service's
  delta flush interval, so each chunk becomes its own event (a run with a long event log).
* ``bench-tools``: a two-round function-tool conversation: calls ``get_weather``, then
  ``get_time`` once the first output is in, then answers in text.
* ``bench-file-search``: one `file_search` call (the server executes it), then, once its tool
  message is in, an answer citing the first passage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from typing import Any, Final

from assistants_grpc.fake_model import FakeModelServer, Reply, TextReply, ToolCallsReply
from tests.bench.processes import HOST, run_event_loop

MODEL_FAST: Final = "bench-fast"
MODEL_SLOW: Final = "bench-slow"
MODEL_PACED: Final = "bench-paced"
MODEL_TOOLS: Final = "bench-tools"
MODEL_FAST_NAGLE: Final = "bench-fast-nagle"
"""`bench-fast` on the Nagle-on port (the service routes it there by its models config)."""

FAST_CHUNKS: Final = 50
FAST_TEXT: Final = " ".join(f"word{i}" for i in range(FAST_CHUNKS))
SLOW_CHUNK_DELAY: Final = 0.5
SLOW_CHUNKS: Final = 600  # five minutes: longer than any bench section; the bench cancels them
PACED_CHUNK_DELAY: Final = 0.03

TOOL_CALLS: Final = (
    ("get_weather", json.dumps({"city": "Paris"})),
    ("get_time", json.dumps({"tz": "Europe/Paris"})),
)
TOOLS_ANSWER: Final = "It is sunny in Paris and the local time is noon."
MODEL_FILE_SEARCH: Final = "bench-file-search"
FILE_SEARCH_QUESTION: Final = "How are keyword arguments matched to the parameters of a call?"
FILE_SEARCH_ANSWER: Final = "Keyword arguments are matched by name 【0:0†topics.txt】 first."


def fast(_request: dict[str, Any]) -> Reply:
    return TextReply(FAST_TEXT, chunks=FAST_CHUNKS)


def slow(_request: dict[str, Any]) -> Reply:
    text = " ".join(f"slow{i}" for i in range(SLOW_CHUNKS))
    return TextReply(text, chunks=SLOW_CHUNKS, chunk_delay=SLOW_CHUNK_DELAY)


def paced(request: dict[str, Any]) -> Reply:
    """As many chunks as the last user message says (a number)."""
    chunks = 100
    for message in reversed(request.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str) and content.strip().isdigit():
                chunks = int(content)
            break
    text = " ".join(f"paced{i}" for i in range(chunks))
    return TextReply(text, chunks=chunks, chunk_delay=PACED_CHUNK_DELAY)


def tool_round(request: dict[str, Any]) -> Reply:
    """Which round of the two-round conversation `request` is at: tool calls made so far."""
    done = sum(
        1
        for message in request.get("messages") or []
        if message.get("role") == "assistant" and message.get("tool_calls")
    )
    if done < len(TOOL_CALLS):
        return ToolCallsReply([TOOL_CALLS[done]], fragments=4)
    return TextReply(TOOLS_ANSWER, chunks=10)


def file_search_round(request: dict[str, Any]) -> Reply:
    """A `file_search` call, or the cited answer once the call's output is the last message."""
    messages = request.get("messages") or []
    if messages and messages[-1].get("role") == "tool":
        return TextReply(FILE_SEARCH_ANSWER, chunks=10)
    arguments = json.dumps({"queries": [FILE_SEARCH_QUESTION, "keyword arguments"]})
    return ToolCallsReply([("file_search", arguments)], fragments=4)


def models_config(nagle_port: int) -> str:
    """The service's ``--models-config``: :data:`MODEL_FAST_NAGLE` goes to the Nagle-on port,
    every other model to ``OPENAI_BASE_URL`` (the usual port)."""
    return (
        "[[endpoints]]\n"
        f'base_url = "http://{HOST}:{nagle_port}/v1"\n'
        f'models = ["{MODEL_FAST_NAGLE}"]\n'
    )


def _server(port: int, *, nodelay: bool) -> FakeModelServer:
    server = FakeModelServer(HOST, port, nodelay=nodelay)
    server.set_responder(MODEL_FAST, fast)
    server.set_responder(MODEL_FAST_NAGLE, fast)
    server.set_responder(MODEL_SLOW, slow)
    server.set_responder(MODEL_PACED, paced)
    server.set_responder(MODEL_TOOLS, tool_round)
    server.set_responder(MODEL_FILE_SEARCH, file_search_round)
    return server


async def serve(port: int, nagle_port: int | None = None) -> None:
    servers = [_server(port, nodelay=True)]
    if nagle_port is not None:
        servers.append(_server(nagle_port, nodelay=False))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        for server in servers:
            await stack.enter_async_context(server)
        # The fake keeps every request body; a long benchmark would grow it without bound.
        while not stop.is_set():
            for server in servers:
                server.requests.clear()
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except TimeoutError:
                pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--nagle-port", type=int, help="also serve with Nagle on, on this port")
    args = parser.parse_args()
    run_event_loop(serve(args.port, args.nagle_port))


if __name__ == "__main__":
    main()
