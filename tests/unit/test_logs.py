"""observability.logs: the handler `serve` installs, and what a JSON line holds."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator

import pytest

from assistants_grpc.observability import logs


@contextlib.contextmanager
def bare_root() -> Iterator[logging.Logger]:
    """The root logger with no handlers (as in a fresh `assistants-grpc serve`), restored after
    (pytest's capture handlers are on it during a test's call)."""
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    chatty = {name: logging.getLogger(name).level for name in ("httpx", "httpx2")}
    for handler in saved:
        root.removeHandler(handler)
    try:
        yield root
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(level)
        for name, old in chatty.items():
            logging.getLogger(name).setLevel(old)


def test_configure_installs_one_handler_and_quiets_the_http_client() -> None:
    with bare_root() as root:
        _configure_installs_one_handler(root)


def _configure_installs_one_handler(bare_root: logging.Logger) -> None:
    out = io.StringIO()
    logs.configure("INFO", "json", out)
    logs.configure("INFO", "json", out)  # again: replaced, not doubled
    assert len(bare_root.handlers) == 1 and bare_root.level == logging.INFO
    assert logging.getLogger("httpx2").level == logging.WARNING
    logging.getLogger("httpx2").info("HTTP Request: POST http://model/v1/chat/completions")
    with logs.bound(run_id="run_1"):
        logging.getLogger("assistants_grpc.x").info("hello", extra={"status": "completed"})
    (line,) = out.getvalue().splitlines()
    body = json.loads(line)
    assert body["message"] == "hello" and body["logger"] == "assistants_grpc.x"
    assert (body["run_id"], body["status"], body["level"]) == ("run_1", "completed", "INFO")
    logs.configure("DEBUG", "text", out)
    assert logging.getLogger("httpx2").level == logging.DEBUG


def test_configure_leaves_a_configured_root_alone() -> None:
    with bare_root() as root:
        theirs = logging.StreamHandler(io.StringIO())
        root.addHandler(theirs)
        root.setLevel(logging.ERROR)
        logs.configure("DEBUG", "json")
        assert root.handlers == [theirs] and root.level == logging.ERROR


def test_a_json_line_holds_the_exception_and_masks_keys() -> None:
    out = io.StringIO()
    logger = logging.getLogger("tests.logs.json")
    handler = logs.handler("json", out)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ValueError("key sk-" + "b" * 30 + " leaked into an error")
        except ValueError:
            logger.exception("failed with Bearer sk-abc")
    finally:
        logger.removeHandler(handler)
    body = json.loads(out.getvalue())
    assert body["level"] == "ERROR" and "ValueError" in body["exception"]
    assert "b" * 30 not in out.getvalue() and "sk-abc" not in out.getvalue()
    assert body["message"] == "failed with Bearer ***"


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="not a log format: 'xml'"):
        logs.handler("xml")
