"""The code_interpreter in a server: `--code-interpreter` modes, the DeleteThread hook, and
the registry that tells replicas where a thread's session lives (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistants_grpc.clock import ManualClock
from assistants_grpc.config import Settings
from assistants_grpc.engine.server_tools import ToolCallRequest, ToolRunContext
from assistants_grpc.server import AssistantsServer, Overrides
from assistants_grpc.store import migrate
from assistants_grpc.store.database import Database
from assistants_grpc.tools.code_interpreter.bwrap import BwrapSandbox
from assistants_grpc.tools.code_interpreter.registry import DatabaseRegistry
from assistants_grpc.tools.code_interpreter.sessions import RESET_NOTE, SessionManager
from tests.sandbox.conftest import new_thread

pytestmark = pytest.mark.timeout(120)


def test_required_without_a_working_sandbox_exits_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "assistants_grpc",
            "serve",
            "--port",
            "0",
            "--database-url",
            f"sqlite:///{tmp_path / 'db.sqlite'}",
            "--code-interpreter",
            "required",
            "--code-interpreter-bwrap",
            str(tmp_path / "no-such-bwrap"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "--code-interpreter required" in result.stderr
    assert "bubblewrap not found" in result.stderr


async def test_auto_without_a_sandbox_serves_and_says_so(tmp_path: Path) -> None:
    server = AssistantsServer(
        Settings(
            port=0,
            http_port=0,
            metrics_port=0,
            database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
            code_interpreter="auto",
            code_interpreter_bwrap=str(tmp_path / "no-such-bwrap"),
        ),
        Overrides(clock=ManualClock()),
    )
    await server.start()
    try:
        assert server.code_interpreter is not None
        executor = server.code_interpreter.executor
        context = ToolRunContext("default", "run_x", "thread_x", "asst_x", "m", {}, {})

        async def emit(delta: object) -> None:
            pass

        result = await executor.execute(
            ToolCallRequest("call_x", 0, '{"code": "1"}'), context, emit
        )
        assert "not available" in result.output and "bubblewrap not found" in result.output
    finally:
        await server.stop(0)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    import os

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    else:
        url = os.environ.get("ASSISTANTS_TEST_DATABASE_URL", "")
        if not url:
            pytest.skip("PostgreSQL: ASSISTANTS_TEST_DATABASE_URL is not set")
    db = Database(url)
    if db.is_postgresql:
        with db.engine.begin() as connection:
            from sqlalchemy import text

            connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    migrate.upgrade(db)
    yield db
    db.dispose()


async def test_a_thread_moved_to_another_replica_restarts_there(database: Database) -> None:
    clock = ManualClock()
    registry = DatabaseRegistry(database, clock)
    one = SessionManager(
        BwrapSandbox(slots=2, uid_base=990500), clock, replica="one", registry=registry
    )
    two = SessionManager(
        BwrapSandbox(slots=2, uid_base=990510), clock, replica="two", registry=registry
    )
    try:
        thread = new_thread()
        async with one.use(thread) as first:
            assert first.reset_note is None
            await first.client.execute("x = 1", _execution())
        # The thread's next run lands on replica two: a fresh kernel there, with the note.
        async with two.use(thread) as second:
            assert second.reset_note is not None and second.reset_note.startswith(RESET_NOTE)
            assert "another server" in second.reset_note
        # One notices at its next sweep that the thread is not its any more.
        assert await one.sweep() == 1
        assert one.session_of(thread) is None and first.kernel.exited.done()
        # Back on one: two's session is the one lost now.
        async with one.use(thread) as third:
            assert third.reset_note is not None
        await two.sweep()
        assert two.session_of(thread) is None
        # DeleteThread forgets it everywhere.
        await one.end_thread(thread)
        async with two.use(thread) as fresh:
            assert fresh.reset_note is None
    finally:
        await one.close()
        await two.close()


def _execution() -> object:
    from assistants_grpc.tools.code_interpreter.kernel import Execution

    return Execution(1000, 1)


def test_the_record_is_plain_json_free(database: Database) -> None:
    # The registry stores only ids and short reasons: nothing of the code or its output.
    with database.engine.connect() as connection:
        from sqlalchemy import inspect

        columns = {c["name"] for c in inspect(connection).get_columns("code_sessions")}
    assert columns == {"thread_id", "replica", "session_id", "started_at", "ended_reason"}
    assert json.dumps(sorted(columns))
