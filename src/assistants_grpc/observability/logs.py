"""Structured logs: the fields every line of a request or a run carries, and the two formats.

The fields come from context variables, never from the message text: the gRPC and HTTP admission
paths `bind(rpc=..., project=...)` for the call's task, and the engine binds `run_id`,
`thread_id` and `project` while a turn of the run executes (`bound(...)`, reset when the turn
ends, since one worker task executes many runs). `ContextFilter` copies them onto every record;
the formatters print them:

- `text`: `2026-12-01 13:00:00,000 INFO assistants_grpc.engine: run ended [run_id=run_… …]`;
- `json`: one object per line, `{"time", "level", "logger", "message", <fields>, "exception"}`.

What a line may carry is names, ids, statuses, counts and endpoints. Message text never reaches a
log line (nothing here is handed one), and as a last guard every line has anything shaped like an
API key (`sk-…`, `Bearer …`) masked before it is written.

`RunLog` turns the committed events of runs into their INFO lines: a run started (in progress)
and a run ended (status, duration, tokens), WARNING for a failed one.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from assistants_grpc.contract.pb import run_pb2

FORMATS = ("text", "json")
# The context fields, in the order lines show them.
FIELDS = ("rpc", "run_id", "thread_id", "project")

_VARS: dict[str, contextvars.ContextVar[str | None]] = {
    name: contextvars.ContextVar(f"assistants_log_{name}", default=None) for name in FIELDS
}
# Anything shaped like a key: `sk-` and 16 or more key characters, or a bearer token.
# (A bearer token's characters are RFC 6750's b64token.)
_SECRET = re.compile(r"(sk-)[A-Za-z0-9_\-]{16,}|(Bearer\s+)[A-Za-z0-9._~+/=\-]+", re.IGNORECASE)
# Record attributes that are not extra fields (those of every LogRecord, and ours).
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName", *FIELDS}
)


def bind(**fields: str | None) -> None:
    """Set context fields for the rest of the current task (a call's own task)."""
    for name, value in fields.items():
        _VARS[name].set(value)


@contextlib.contextmanager
def bound(**fields: str | None) -> Iterator[None]:
    """Set context fields for a block, then put back what was there."""
    tokens = [(_VARS[name], _VARS[name].set(value)) for name, value in fields.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def current() -> dict[str, str]:
    """The context fields set here (for tests and for code handing work to another task)."""
    return {name: value for name in FIELDS if (value := _VARS[name].get()) is not None}


def mask_secrets(text: str) -> str:
    return _SECRET.sub(lambda m: (m.group(1) or m.group(2)) + "***", text)


class ContextFilter(logging.Filter):
    """Copies the context fields onto each record (a field given in `extra=` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name in FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, _VARS[name].get())
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    """The record's fields: context first, then whatever `extra=` added."""
    fields: dict[str, Any] = {}
    for name in FIELDS:
        value = getattr(record, name, None)
        if value is not None:
            fields[name] = value
    for name, value in vars(record).items():
        if name not in _STANDARD and not name.startswith("_"):
            fields[name] = value
    return fields


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = _extras(record)
        if fields:
            shown = " ".join(f"{name}={value}" for name, value in fields.items())
            head, newline, rest = line.partition("\n")
            line = f"{head} [{shown}]{newline}{rest}"
        return mask_secrets(line)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            body["stack"] = self.formatStack(record.stack_info)
        # Masked value by value: masking the serialized line could cut through its quoting.
        for name, value in body.items():
            if not isinstance(value, str | int | float | bool | None):
                value = str(value)
            body[name] = mask_secrets(value) if isinstance(value, str) else value
        return json.dumps(body, ensure_ascii=False)


def handler(log_format: str, stream: Any = None) -> logging.Handler:
    """A stream handler (stderr by default) writing `log_format` lines with the context fields."""
    if log_format not in FORMATS:
        raise ValueError(f"not a log format: {log_format!r} (text or json)")
    out = logging.StreamHandler(stream if stream is not None else sys.stderr)
    out.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    out.addFilter(ContextFilter())
    return out


_CHATTY = ("httpx", "httpx2")


def configure(level: str, log_format: str = "text", stream: Any = None) -> None:
    """The process's logging: a `log_format` handler on the root logger, at `level`. Like
    `logging.basicConfig`, it leaves a root logger that something else configured (an embedding
    application, pytest) as it is; the handler of an earlier call is replaced."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "_assistants_logs", False)]
    if len(ours) < len(root.handlers):
        return
    for old in ours:
        root.removeHandler(old)
    new = handler(log_format, stream)
    new._assistants_logs = True  # type: ignore[attr-defined]
    root.addHandler(new)
    asked = logging.getLevelNamesMapping()[level.upper()]
    root.setLevel(asked)
    # The HTTP client's INFO line per request (every model call) is noise beside "run ended",
    # and its URL is the client's to render; its errors are our WARNING lines (engine.model_http).
    # At DEBUG, everything.
    quiet = asked if asked <= logging.DEBUG else max(asked, logging.WARNING)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(quiet)


# --- the lines of a run -----------------------------------------------------------------------


_ENDED = {
    "thread.run.completed": "completed",
    "thread.run.incomplete": "incomplete",
    "thread.run.failed": "failed",
    "thread.run.cancelled": "cancelled",
    "thread.run.expired": "expired",
    "thread.run.requires_action": "requires_action",
}
_END_TIME = {
    "completed": "completed_at",
    "failed": "failed_at",
    "cancelled": "cancelled_at",
}

run_log = logging.getLogger("assistants_grpc.runs")


def log_run_events(run_id: str, events: Sequence[run_pb2.RunEvent]) -> None:
    """The INFO/WARNING lines of committed run events: a run in progress (started, or going on
    after its tool outputs), a run that waits for tool outputs, and a run's end with its status,
    duration (seconds since it was created, by the server's clock) and tokens."""
    for item in events:
        name = item.event
        if not name.startswith("thread.run.") or name.startswith("thread.run.step"):
            continue
        if name == "thread.run.in_progress":
            run = item.run
            run_log.info(
                "run in progress",
                extra={"run_id": run_id, "thread_id": run.thread_id or None, "model": run.model},
            )
            continue
        status = _ENDED.get(name)
        if status is None:
            continue
        run = item.run
        fields: dict[str, Any] = {
            "run_id": run_id,
            "thread_id": run.thread_id or None,
            "status": status,
            "model": run.model,
        }
        if status == "requires_action":
            run_log.info("run requires action", extra=fields)
            continue
        end_field = _END_TIME.get(status)
        ended = getattr(run, end_field) if end_field is not None else 0
        if ended and run.created_at:
            fields["duration_s"] = ended - run.created_at
        if run.HasField("usage"):
            fields["prompt_tokens"] = run.usage.prompt_tokens
            fields["completion_tokens"] = run.usage.completion_tokens
        if status == "failed":
            code = run_pb2.RunErrorCode.Name(run.last_error.code)
            fields["error_code"] = code.removeprefix("RUN_ERROR_CODE_").lower()
            run_log.warning("run ended", extra=fields)
        else:
            run_log.info("run ended", extra=fields)


__all__ = [
    "FIELDS",
    "FORMATS",
    "ContextFilter",
    "JsonFormatter",
    "TextFormatter",
    "bind",
    "bound",
    "configure",
    "current",
    "handler",
    "log_run_events",
    "mask_secrets",
    "run_log",
]
