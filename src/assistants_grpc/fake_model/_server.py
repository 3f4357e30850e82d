"""A minimal HTTP/1.1 server speaking the OpenAI chat-completions protocol (see the package
docstring for the behaviour)."""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import inspect
import json
import logging
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self

from ._embeddings import embeddings_response
from ._responses import (
    ErrorReply,
    HangReply,
    MalformedReply,
    Reply,
    Responder,
    TextReply,
    ToolCallsReply,
    compact_json,
    default_responder,
    new_call_id,
    new_completion_id,
    prompt_token_estimate,
    split_even,
    split_words,
)

__all__ = ["FakeModelServer", "FakeModelThread", "main", "serve"]

_LOG = logging.getLogger("assistants_grpc.fake_model")

DEFAULT_MODEL: Final = "fake-model"
NAGLE_HELP: Final = (
    "leave Nagle's algorithm on (no TCP_NODELAY on accepted connections), as simple servers do, "
    "to reproduce clients waiting ~40 ms on delayed ACKs"
)
_MAX_HEAD: Final = 64 * 1024
_MAX_BODY: Final = 64 * 1024 * 1024
_READ_SIZE: Final = 64 * 1024
_REASONS: Final = {
    100: "Continue",
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    411: "Length Required",
    413: "Content Too Large",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_DONE: Final = b"e\r\ndata: [DONE]\n\n\r\n"
_END: Final = b"0\r\n\r\n"


class _ClientGone(Exception):
    """The client closed (or reset) the connection while a response was in progress."""


class _Broken(Exception):
    """The reply was scripted to break the response here: the connection is closed."""


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class _Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool


def _error_body(status: int, message: str, error_type: str = "invalid_request_error") -> bytes:
    envelope = {"error": {"message": message, "type": error_type, "param": None, "code": None}}
    return compact_json(envelope).encode()


class _Connection:
    """One client connection: buffered request reading, writes, and EOF watching while a
    response is being produced (so a client going away is noticed even while sleeping)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buf = bytearray()
        self.eof = False
        self._watcher: asyncio.Task[None] | None = None

    async def _fill(self) -> bool:
        if self.eof:
            return False
        try:
            data = await self.reader.read(_READ_SIZE)
        except (ConnectionError, OSError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    async def _read_until(self, marker: bytes, limit: int) -> bytes | None:
        start = 0
        while True:
            index = self.buf.find(marker, start)
            if index >= 0:
                data = bytes(self.buf[:index])
                del self.buf[: index + len(marker)]
                return data
            if len(self.buf) > limit:
                raise _BadRequest(431, "Request header too large.")
            start = max(0, len(self.buf) - len(marker) + 1)
            if not await self._fill():
                return None

    async def _read_exactly(self, size: int) -> bytes | None:
        while len(self.buf) < size:
            if not await self._fill():
                return None
        data = bytes(self.buf[:size])
        del self.buf[:size]
        return data

    async def read_request(self) -> _Request | None:
        """The next request, or None when the client closed the connection."""
        while self.buf.startswith(b"\r\n"):
            del self.buf[:2]
        head = await self._read_until(b"\r\n\r\n", _MAX_HEAD)
        if head is None:
            return None
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadRequest(400, "Malformed request line.")
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise _BadRequest(400, "Malformed header line.")
            key = name.lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        connection = headers.get("connection", "").lower()
        if version == "HTTP/1.0":
            keep_alive = "keep-alive" in connection
        else:
            keep_alive = "close" not in connection
        if headers.get("expect", "").lower() == "100-continue":
            await self.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._read_chunked_body()
        else:
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                raise _BadRequest(400, "Invalid Content-Length.") from None
            if length < 0:
                raise _BadRequest(400, "Invalid Content-Length.")
            if length > _MAX_BODY:
                raise _BadRequest(413, "Request body too large.")
            body = await self._read_exactly(length)
        if body is None:
            return None
        return _Request(method.upper(), target, headers, body, keep_alive)

    async def _read_chunked_body(self) -> bytes | None:
        body = bytearray()
        while True:
            line = await self._read_until(b"\r\n", _MAX_HEAD)
            if line is None:
                return None
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadRequest(400, "Invalid chunk size.") from None
            if size == 0:
                while True:  # trailers
                    trailer = await self._read_until(b"\r\n", _MAX_HEAD)
                    if trailer is None:
                        return None
                    if not trailer:
                        return bytes(body)
            if len(body) + size > _MAX_BODY:
                raise _BadRequest(413, "Request body too large.")
            data = await self._read_exactly(size + 2)
            if data is None:
                return None
            body += data[:-2]

    # -- response side -------------------------------------------------------------------------

    def watch(self) -> None:
        """Start noticing EOF from the client (pipelined bytes are kept in the buffer)."""
        if self._watcher is None and not self.eof:
            self._watcher = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        try:
            while await self._fill():
                pass
        except Exception:  # treat anything unexpected as the client being gone
            self.eof = True

    async def unwatch(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None and not watcher.done():
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    def check(self) -> None:
        if self.eof or self.writer.transport.is_closing():
            raise _ClientGone

    async def sleep(self, seconds: float) -> None:
        """Sleep, but raise _ClientGone as soon as the client goes away."""
        self.check()
        if seconds <= 0:
            return
        watcher = self._watcher
        if watcher is None:
            await asyncio.sleep(seconds)
        else:
            await asyncio.wait((watcher,), timeout=seconds)
        self.check()

    async def wait_for(self, event: asyncio.Event) -> None:
        """Wait until `event` is set, but raise _ClientGone as soon as the client goes away."""
        self.check()
        waiting = asyncio.ensure_future(event.wait())
        try:
            watcher = self._watcher
            await asyncio.wait(
                {waiting} if watcher is None else {waiting, watcher},
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            waiting.cancel()
        self.check()

    async def send(self, data: bytes) -> None:
        self.check()
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            raise _ClientGone from exc

    async def send_response(
        self,
        status: int,
        body: bytes,
        *,
        keep_alive: bool,
        content_type: str = "application/json",
    ) -> None:
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"
            f"Content-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"x-request-id: req_fake\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
        )
        await self.send(head.encode() + body)


def _frame(payload: str) -> bytes:
    data = f"data: {payload}\n\n".encode()
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


_SSE_HEAD: Final = (
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/event-stream; charset=utf-8\r\n"
    "Cache-Control: no-cache\r\n"
    "Transfer-Encoding: chunked\r\n"
    "x-request-id: req_fake\r\n"
    "Connection: {}\r\n\r\n"
)


class _Responder:
    """Produces one chat-completions response (streaming or not) on a connection."""

    def __init__(self, conn: _Connection, request: dict[str, Any], keep_alive: bool) -> None:
        self.conn = conn
        self.request = request
        self.keep_alive = keep_alive
        model = request.get("model")
        self.model = model if isinstance(model, str) and model else DEFAULT_MODEL
        self.id = new_completion_id()
        self.created = int(time.time())
        options = request.get("stream_options")
        self.include_usage = isinstance(options, dict) and options.get("include_usage") is True
        self._role_sent = False
        self._head_pending = True

    # -- streaming -----------------------------------------------------------------------------

    def _chunk(self, choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_fake",
            "choices": choices,
        }
        if usage is not None:
            chunk["usage"] = usage
        return _frame(compact_json(chunk))

    async def _emit_raw(self, data: bytes) -> None:
        # The head, each SSE chunk and the end of the body are separate writes, as in simple
        # servers (http.server flushes its headers, then writes each chunk): with Nagle left on
        # (FakeModelServer(nodelay=False)) that is the pattern that meets delayed ACKs.
        if self._head_pending:
            self._head_pending = False
            head = _SSE_HEAD.format("keep-alive" if self.keep_alive else "close").encode()
            await self.conn.send(head)
        await self.conn.send(data)

    async def _emit(self, delta: dict[str, Any], finish_reason: str | None = None) -> None:
        if not self._role_sent and finish_reason is None:
            self._role_sent = True
            delta = {"role": "assistant", **delta}
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        await self._emit_raw(self._chunk([choice]))

    async def _finish(
        self, finish_reason: str, completion_tokens: int, prompt: int | None, usage: bool = True
    ) -> None:
        await self._emit({}, finish_reason)
        if self.include_usage and usage:
            await self._emit_raw(self._chunk([], self._usage(prompt, completion_tokens)))
        await self._emit_raw(_DONE)
        await self._emit_raw(_END)

    def _usage(self, prompt: int | None, completion: int) -> dict[str, int]:
        prompt_tokens = prompt if prompt is not None else prompt_token_estimate(self.request)
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
        }

    async def _stream_text(self, fragments: list[str], delay: float) -> None:
        for i, fragment in enumerate(fragments):
            if i:
                await self.conn.sleep(delay)
            await self._emit({"content": fragment})

    async def stream(self, reply: Reply) -> None:
        if isinstance(reply, TextReply):
            fragments = reply.fragments()
            await self._stream_text(fragments, reply.chunk_delay)
            completion = (
                reply.completion_tokens if reply.completion_tokens is not None else len(fragments)
            )
            await self._finish(
                reply.finish_reason, completion, reply.prompt_tokens, reply.report_usage
            )
        elif isinstance(reply, ToolCallsReply):
            count = 0
            if reply.text is not None:
                text_fragments = split_words(reply.text)
                await self._stream_text(text_fragments, reply.chunk_delay)
                count += len(text_fragments)
            between = split_words(reply.text_between) if reply.text_between else []
            deltas = self._tool_deltas(reply)
            for i, delta in enumerate(deltas):
                if i or count:
                    await self.conn.sleep(reply.chunk_delay)
                if reply.hold is not None and i == len(deltas) - 1:
                    await self.conn.wait_for(reply.hold)
                    if reply.break_at_hold:
                        await self.malformed(True)
                        raise _Broken
                if i == 0 and not self._role_sent:
                    delta = {"content": None, **delta}
                await self._emit(delta)
                if i < len(between):
                    await self._emit({"content": between[i]})
            # Words left over when there are more words than call fragments.
            await self._stream_text(between[len(deltas) :], 0.0)
            count += len(between)
            if reply.text_after is not None:
                after = split_words(reply.text_after)
                await self._stream_text(after, reply.chunk_delay)
                count += len(after)
            count += len(reply.calls) * reply.fragments
            await self._finish("tool_calls", count, None)
        elif isinstance(reply, HangReply):
            await self._emit({"content": ""})
            await self.conn.sleep(reply.seconds)
            fragments = split_words(reply.text)
            await self._stream_text(fragments, 0.0)
            await self._finish("stop", len(fragments), None)
        else:
            raise TypeError(f"cannot stream {reply!r}")

    @staticmethod
    def _tool_deltas(reply: ToolCallsReply) -> list[dict[str, Any]]:
        per_call: list[list[dict[str, Any]]] = []
        for index, (name, arguments) in enumerate(reply.calls):
            header = {
                "index": index,
                "id": new_call_id(),
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }
            steps = [header]
            for piece in split_even(arguments, reply.fragments):
                steps.append({"index": index, "function": {"arguments": piece}})
            per_call.append(steps)
        if reply.interleave:
            ordered = [call[j] for j in range(reply.fragments + 1) for call in per_call]
        else:
            ordered = [step for call in per_call for step in call]
        return [{"tool_calls": [step]} for step in ordered]

    # -- non-streaming -------------------------------------------------------------------------

    async def complete(self, reply: Reply) -> None:
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        if isinstance(reply, TextReply):
            fragments = reply.fragments()
            await self.conn.sleep(reply.chunk_delay * (len(fragments) - 1))
            message["content"] = reply.text
            finish_reason = reply.finish_reason
            completion = (
                reply.completion_tokens if reply.completion_tokens is not None else len(fragments)
            )
            usage = self._usage(reply.prompt_tokens, completion)
        elif isinstance(reply, ToolCallsReply):
            completion = len(reply.calls) * reply.fragments
            if reply.texts():
                message["content"] = reply.texts()
                completion += len(split_words(reply.texts()))
            await self.conn.sleep(reply.chunk_delay * max(0, completion - 1))
            message["tool_calls"] = [
                {
                    "id": new_call_id(),
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
                for name, arguments in reply.calls
            ]
            finish_reason = "tool_calls"
            usage = self._usage(None, completion)
        elif isinstance(reply, HangReply):
            await self.conn.sleep(reply.seconds)
            message["content"] = reply.text
            finish_reason = "stop"
            usage = self._usage(None, len(split_words(reply.text)))
        else:
            raise TypeError(f"cannot complete {reply!r}")
        body = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_fake",
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
            ],
            "usage": usage,
        }
        await self.conn.send_response(200, compact_json(body).encode(), keep_alive=self.keep_alive)

    async def malformed(self, stream: bool) -> None:
        broken = f'{{"id":"{self.id}","object":"chat.completion.chunk","choices":[{{"index":0,'
        if stream:
            await self._emit_raw(_frame(broken + '"delta":{"content":"trunc'))
        else:
            body = (broken + '"message":{"content":"trunc').encode()
            await self.conn.send_response(200, body, keep_alive=False)


def _leave_nagle_on(writer: asyncio.StreamWriter) -> None:
    """Unset ``TCP_NODELAY``, which asyncio (and uvloop) set on every TCP connection."""
    sock = writer.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
    except OSError as error:
        _LOG.debug("fake model could not leave Nagle on: %s", error)


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


class FakeModelServer:
    """An in-process fake of the OpenAI chat-completions endpoint (see the package docstring).

    Use ``async with FakeModelServer() as server:`` (or ``await start()`` / ``await stop()``),
    point an ``openai`` client at ``server.base_url`` and script replies with :meth:`push` or
    :meth:`set_responder`. Scripting methods and counters are thread-safe, so the server can
    also run on its own thread (:meth:`start_in_thread`).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, nodelay: bool = True) -> None:
        self.host = host
        self.nodelay = nodelay
        """False leaves Nagle's algorithm on for accepted connections (``TCP_NODELAY`` unset),
        as simple servers do: a client that delays its ACKs then waits ~40 ms for a response's
        second small write (see ``engine/model_http.py``)."""
        self._requested_port = port
        self._port: int | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lock = threading.Lock()
        self._queue: collections.deque[Reply] = collections.deque()
        self._responders: dict[str, Responder] = {}
        self.requests: list[dict[str, Any]] = []
        """Every chat-completions request body received, in order."""
        self.disconnects = 0
        """Responses whose client went away before the response was complete."""
        self.connections = 0
        """TCP connections accepted (to check that clients keep connections alive)."""
        self.embedding_requests = 0
        """`/v1/embeddings` requests answered."""

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("FakeModelServer is already started")
        self._server = await asyncio.start_server(
            self._handle, self.host, self._requested_port, limit=_READ_SIZE
        )
        self._port = int(self._server.sockets[0].getsockname()[1])
        _LOG.debug("fake model listening on %s", self.base_url)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @classmethod
    def start_in_thread(
        cls, host: str = "127.0.0.1", port: int = 0, *, nodelay: bool = True
    ) -> FakeModelThread:
        """Start a new server on its own event loop in a daemon thread; call ``.stop()`` on the
        returned handle (or use it as a context manager)."""
        return FakeModelThread(cls(host, port, nodelay=nodelay))

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeModelServer is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """E.g. ``http://127.0.0.1:PORT/v1``, for ``openai.AsyncOpenAI(base_url=...)``."""
        return f"http://{_url_host(self.host)}:{self.port}/v1"

    # -- scripting -----------------------------------------------------------------------------

    def push(self, *replies: Reply) -> None:
        """Queue replies; each chat-completions request (any model) consumes the next one."""
        with self._lock:
            self._queue.extend(replies)

    def set_responder(self, model: str, fn: Responder) -> None:
        """Answer requests for ``model`` with ``fn(request_json)`` when the queue is empty."""
        with self._lock:
            self._responders[model] = fn

    @property
    def pending(self) -> int:
        """How many pushed replies have not been consumed yet."""
        return len(self._queue)

    def reset(self) -> None:
        """Clear the queue, responders, recorded requests and counters."""
        with self._lock:
            self._queue.clear()
            self._responders.clear()
            self.requests.clear()
            self.disconnects = 0
            self.connections = 0
            self.embedding_requests = 0

    async def wait_for_disconnects(self, count: int = 1, timeout: float = 1.0) -> bool:
        """Poll until ``disconnects >= count``; False on timeout. Works from any loop."""
        deadline = time.monotonic() + timeout
        while self.disconnects < count:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    async def _choose(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(body)
            if self._queue:
                return self._queue.popleft()
            model = body.get("model")
            responder = self._responders.get(model) if isinstance(model, str) else None
        result = (responder or default_responder)(body)
        if inspect.isawaitable(result):
            result = await result
        return result

    # -- HTTP ----------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._server is None:  # accepted while stopping
            writer.close()
            return
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        with self._lock:
            self.connections += 1
        if not self.nodelay:
            _leave_nagle_on(writer)
        conn = _Connection(reader, writer)
        try:
            while True:
                try:
                    request = await conn.read_request()
                except _BadRequest as exc:
                    body = _error_body(exc.status, exc.message)
                    await conn.send_response(exc.status, body, keep_alive=False)
                    break
                if request is None or not await self._dispatch(conn, request):
                    break
        except _ClientGone:
            pass
        except asyncio.CancelledError:
            # Only stop() cancels these top-level tasks. Ending normally matters: on Python
            # 3.11 the done-callback of asyncio.start_server calls task.exception(), which
            # raises on a cancelled task.
            pass
        except Exception:
            _LOG.exception("fake model connection failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await conn.unwatch()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()
            if task is not None:
                self._tasks.discard(task)

    async def _dispatch(self, conn: _Connection, request: _Request) -> bool:
        """Answer one request; returns whether to keep the connection open."""
        keep = request.keep_alive
        path = request.path.split("?", 1)[0].rstrip("/")
        if path.startswith("/v1/") or path == "/v1":
            path = path[3:]
        if path == "/chat/completions":
            if request.method != "POST":
                await conn.send_response(405, _error_body(405, "Use POST."), keep_alive=keep)
                return keep
            return await self._chat(conn, request)
        if path == "/embeddings":
            if request.method != "POST":
                await conn.send_response(405, _error_body(405, "Use POST."), keep_alive=keep)
                return keep
            status, payload = embeddings_response(request.body)
            with self._lock:
                self.embedding_requests += 1
            await conn.send_response(status, payload, keep_alive=keep)
            return keep
        if request.method != "GET":
            message = f"Unknown request URL: {request.method} {request.path}."
            await conn.send_response(404, _error_body(404, message), keep_alive=keep)
            return keep
        if path == "/models":
            models = sorted({DEFAULT_MODEL, *self._responders})
            data = [self._model_object(name) for name in models]
            body = compact_json({"object": "list", "data": data}).encode()
        elif path.startswith("/models/"):
            body = compact_json(self._model_object(path[len("/models/") :])).encode()
        elif path in ("", "/health"):
            body = b'{"status":"ok"}'
        else:
            message = f"Unknown request URL: {request.method} {request.path}."
            await conn.send_response(404, _error_body(404, message), keep_alive=keep)
            return keep
        await conn.send_response(200, body, keep_alive=keep)
        return keep

    @staticmethod
    def _model_object(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": 0, "owned_by": "assistants-grpc"}

    async def _chat(self, conn: _Connection, request: _Request) -> bool:
        keep = request.keep_alive
        try:
            body = json.loads(request.body)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            message = "We could not parse the JSON body of your request."
            await conn.send_response(400, _error_body(400, message), keep_alive=keep)
            return keep
        stream = body.get("stream") is True
        try:
            reply = await self._choose(body)
        except Exception as exc:
            _LOG.exception("fake model responder failed")
            reply = ErrorReply(500, f"Fake model responder failed: {exc!r}")
        _LOG.debug("fake model request model=%r stream=%s -> %r", body.get("model"), stream, reply)

        if isinstance(reply, ErrorReply):
            payload = compact_json(reply.envelope()).encode()
            await conn.send_response(reply.status, payload, keep_alive=keep)
            return keep
        responder = _Responder(conn, body, keep)
        conn.watch()
        try:
            if isinstance(reply, MalformedReply):
                await responder.malformed(stream)
                return False
            if stream:
                await responder.stream(reply)
            else:
                await responder.complete(reply)
        except _ClientGone:
            with self._lock:
                self.disconnects += 1
            _LOG.debug("fake model client went away mid-response")
            return False
        except _Broken:
            return False
        finally:
            await conn.unwatch()
        return keep


class FakeModelThread:
    """A :class:`FakeModelServer` running its own event loop in a daemon thread.

    Created by :meth:`FakeModelServer.start_in_thread`; scripting goes through ``.server`` (or
    the forwarding helpers below). ``stop()`` shuts it down and joins the thread.
    """

    def __init__(self, server: FakeModelServer) -> None:
        self.server = server
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="fake-model-server", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            if not self._ready.is_set():
                self._error = exc
                self._ready.set()
            else:
                _LOG.exception("fake model thread failed")

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        async with self.server:
            self._ready.set()
            await self._stop_event.wait()

    def stop(self, timeout: float = 10.0) -> None:
        loop, event = self._loop, self._stop_event
        if loop is not None and event is not None and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(event.set)
        self._thread.join(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self.server.requests

    @property
    def disconnects(self) -> int:
        return self.server.disconnects

    def push(self, *replies: Reply) -> None:
        self.server.push(*replies)

    def set_responder(self, model: str, fn: Responder) -> None:
        self.server.set_responder(model, fn)

    def reset(self) -> None:
        self.server.reset()


async def serve(host: str, port: int, *, nodelay: bool = True) -> None:
    """Run a fake model server with the default responder until cancelled."""
    async with FakeModelServer(host, port, nodelay=nodelay) as server:
        _LOG.info(
            "fake model (OpenAI chat completions) listening on %s:%d; base_url %s%s",
            host,
            server.port,
            server.base_url,
            "" if nodelay else "; Nagle left on (no TCP_NODELAY)",
        )
        await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> int:
    """``assistants-grpc fake-model [--host H] [--port N] [--nagle]`` (blocks until
    interrupted)."""
    parser = argparse.ArgumentParser(
        prog="assistants-grpc fake-model",
        description="Serve a fake OpenAI chat-completions endpoint for tests and benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--nagle", action="store_true", help=NAGLE_HELP)
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, nodelay=not args.nagle))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
