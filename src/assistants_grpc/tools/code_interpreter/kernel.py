"""The server's side of a sandboxed Jupyter kernel: the message protocol over ZMQ.

`jupyter_client.session.Session` signs and parses the messages (HMAC-SHA256); the sockets are
our own `zmq.asyncio` ones, connected to the addresses the sandbox gives (`/proc/self/fd/N`),
which `jupyter_client`'s own clients cannot take (they derive ipc paths from one prefix).

The kernel is hostile: everything it sends is checked before use. ZMQ's `MAXMSGSIZE` caps
each incoming message part (a larger one drops the connection, which ZMQ re-makes; the call
then says output was lost), and the iopub queue is short (`RCVHWM`), so a kernel flooding its
output costs the server a bounded amount of memory. Messages whose signature does not check,
or that answer another request, are dropped. What one execution produced is collected into an
`Execution`, in arrival order, with the logs capped (`max_log_chars`): the rest is counted,
not kept.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import zmq
import zmq.asyncio
from jupyter_client.session import Session

log = logging.getLogger(__name__)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_READY_RETRY = 0.1
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


def strip_ansi(text: str) -> str:
    """Without terminal escapes (a traceback's colours, whatever the code printed)."""
    return _ANSI.sub("", text)


class KernelLostError(Exception):
    """The kernel stopped answering while starting."""


@dataclass
class Execution:
    """What one `execute_request` produced so far (kept when it is interrupted)."""

    max_log_chars: int
    max_images: int
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    result: str | None = None
    traceback: str | None = None
    error_name: str | None = None
    images: list[bytes] = field(default_factory=list)
    dropped_chars: int = 0
    dropped_images: int = 0
    status: str | None = None
    """The reply's status: ok, error, aborted; None until it came."""
    idle: bool = False
    _kept: int = 0

    def _keep(self, target: list[str], text: str) -> None:
        room = self.max_log_chars - self._kept
        if len(text) > room:
            self.dropped_chars += len(text) - max(room, 0)
            text = text[: max(room, 0)]
        if text:
            target.append(text)
            self._kept += len(text)

    def add(self, msg_type: str, content: Mapping[str, Any]) -> None:
        if msg_type == "stream":
            text = content.get("text")
            if isinstance(text, str):
                name = content.get("name")
                self._keep(self.stderr if name == "stderr" else self.stdout, text)
        elif msg_type in ("execute_result", "display_data"):
            data = content.get("data")
            if not isinstance(data, Mapping):
                return
            png = data.get("image/png")
            if isinstance(png, str):
                self._image(png)
            elif msg_type == "execute_result":
                text = data.get("text/plain")
                if isinstance(text, str):
                    self.result = text[: self.max_log_chars]
            elif isinstance(data.get("text/plain"), str):
                # A display without a picture (display(df)) reads as printed text.
                self._keep(self.stdout, f"{data['text/plain']}\n")
        elif msg_type == "error":
            lines = content.get("traceback")
            if isinstance(lines, list) and all(isinstance(line, str) for line in lines):
                text = "\n".join(line.rstrip("\n") for line in lines)
            else:
                text = f"{content.get('ename', 'Error')}: {content.get('evalue', '')}"
            self.traceback = strip_ansi(text)[: self.max_log_chars]
            name = content.get("ename")
            self.error_name = name if isinstance(name, str) else None

    def _image(self, encoded: str) -> None:
        if len(self.images) >= self.max_images:
            self.dropped_images += 1
            return
        try:
            data = base64.b64decode(encoded, validate=False)
        except (binascii.Error, ValueError):
            return
        if data.startswith(PNG_MAGIC):
            self.images.append(data)

    @property
    def logs(self) -> str:
        """The one `logs` output: stdout, stderr, the last expression's value, the traceback
        (without terminal colours)."""
        parts = ["".join(self.stdout), "".join(self.stderr)]
        if self.result is not None:
            parts.append(self.result + "\n")
        if self.traceback is not None:
            parts.append(self.traceback + "\n")
        text = strip_ansi("".join(p if p.endswith("\n") or not p else p + "\n" for p in parts))
        return text.rstrip("\n")


class KernelClient:
    """The shell, iopub and control channels of one kernel."""

    def __init__(
        self,
        urls: Mapping[str, str],
        key: bytes,
        *,
        max_message_bytes: int = 16 * 1024 * 1024,
        context: zmq.asyncio.Context | None = None,
    ) -> None:
        self._context = context or zmq.asyncio.Context.instance()
        self._session = Session(key=key, signature_scheme="hmac-sha256", username="server")
        self._shell = self._socket(zmq.DEALER, urls["shell"], max_message_bytes)
        self._iopub = self._socket(zmq.SUB, urls["iopub"], max_message_bytes)
        self._iopub.setsockopt(zmq.SUBSCRIBE, b"")
        self._control = self._socket(zmq.DEALER, urls["control"], max_message_bytes)
        self._poller = zmq.asyncio.Poller()
        self._poller.register(self._shell, zmq.POLLIN)
        self._poller.register(self._iopub, zmq.POLLIN)
        self._lock = asyncio.Lock()

    def _socket(self, kind: int, url: str, max_bytes: int) -> zmq.asyncio.Socket:
        sock = self._context.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, max_bytes)
        sock.setsockopt(zmq.RCVHWM, 64)
        sock.connect(url)
        return sock

    def close(self) -> None:
        for sock in (self._shell, self._iopub, self._control):
            sock.close(linger=0)

    def _receive(self, frames: list[bytes]) -> dict[str, Any] | None:
        try:
            _, parts = self._session.feed_identities(frames, copy=True)
            message = self._session.deserialize(parts, content=True, copy=True)
        except Exception:  # a hostile or broken kernel: its message is dropped
            return None
        header, parent, content = (
            message.get("header"),
            message.get("parent_header"),
            message.get("content"),
        )
        if not (isinstance(header, Mapping) and isinstance(parent, Mapping)):
            return None
        if not isinstance(content, Mapping):
            return None
        return message

    async def _request(self, msg_type: str, content: dict[str, Any]) -> str:
        message = self._session.msg(msg_type, content)
        await self._shell.send_multipart(self._session.serialize(message))
        return str(message["header"]["msg_id"])

    async def wait_ready(self, timeout: float) -> None:
        """Until the kernel answers on shell and its iopub reaches us (a SUB socket misses
        what is published before its subscription is made, so a request is sent again after
        `_READY_RETRY` seconds, then twice as long each time up to a second, until one's status
        arrives on iopub; the answers to any of them count, and the late answers to the others
        are dropped as answers to no request)."""
        deadline = time.monotonic() + timeout
        sent: set[str] = set()
        replied = published = False
        retry = _READY_RETRY
        while time.monotonic() < deadline:
            sent.add(await self._request("kernel_info_request", {}))
            attempt_end = min(deadline, time.monotonic() + retry)
            retry = min(1.0, retry * 2)
            while not (replied and published) and time.monotonic() < attempt_end:
                events = dict(await self._poller.poll(20))
                for sock in events:
                    message = self._receive(await sock.recv_multipart())
                    if message is None or message["parent_header"].get("msg_id") not in sent:
                        continue
                    if sock is self._shell:
                        replied = True
                    else:
                        published = True
            if replied and published:
                return
        raise KernelLostError("the kernel did not answer in time")

    async def execute(self, code: str, execution: Execution) -> Execution:
        """Run `code`, filling `execution` as messages come, until the kernel is idle again.
        Cancel it to stop waiting (the kernel keeps running: interrupt it)."""
        async with self._lock:
            msg_id = await self._request(
                "execute_request",
                {
                    "code": code,
                    "silent": False,
                    "store_history": True,
                    "user_expressions": {},
                    "allow_stdin": False,
                    "stop_on_error": True,
                },
            )
            replied_at: float | None = None
            while not (execution.status is not None and execution.idle):
                # After the reply, the iopub's idle comes at once; if a dropped message or a
                # reconnect lost it, a second is enough to know.
                wait_ms = 1000 if replied_at is None else 100
                if replied_at is not None and time.monotonic() - replied_at > 1.0:
                    break
                events = dict(await self._poller.poll(wait_ms))
                for sock in events:
                    message = self._receive(await sock.recv_multipart())
                    if message is None or message["parent_header"].get("msg_id") != msg_id:
                        continue
                    msg_type = message["header"].get("msg_type")
                    if sock is self._shell:
                        if msg_type == "execute_reply":
                            status = message["content"].get("status")
                            execution.status = status if isinstance(status, str) else "error"
                            replied_at = time.monotonic()
                    elif msg_type == "status":
                        if message["content"].get("execution_state") == "idle":
                            execution.idle = True
                    elif isinstance(msg_type, str):
                        execution.add(msg_type, message["content"])
            return execution

    async def shutdown(self) -> None:
        with contextlib.suppress(Exception):
            message = self._session.msg("shutdown_request", {"restart": False})
            await self._control.send_multipart(self._session.serialize(message))


__all__ = ["PNG_MAGIC", "Execution", "KernelClient", "KernelLostError", "strip_ansi"]
