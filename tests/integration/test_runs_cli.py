"""`assistants-grpc runs ls | show` (README "Runs"): the runs as the database has them, through
the CLI entry point, beside a server that is executing one of them."""

from __future__ import annotations

import pytest

from assistants_grpc.cli import main
from assistants_grpc.contract.pb import run_pb2
from assistants_grpc.fake_model import ErrorReply, FakeModelServer, TextReply
from tests.conftest import serving
from tests.integration.runs_helpers import collect, make_assistant, make_thread, start_hanging_run

R = run_pb2


def _rows(output: str) -> dict[str, list[str]]:
    """The table's lines by run id (first column), split on runs of two spaces."""
    rows: dict[str, list[str]] = {}
    for line in output.splitlines()[1:]:
        cells = [cell.strip() for cell in line.split("  ") if cell.strip()]
        if cells:
            rows[cells[0]] = cells
    return rows


async def test_runs_ls_and_show_read_the_database(
    database_url: str, fake_model: FakeModelServer, capsys: pytest.CaptureFixture[str]
) -> None:
    async with serving(database_url, fake_model) as running:
        s = running.stubs
        owner = running.server.scheduler.owner  # type: ignore[union-attr]
        assistant = await make_assistant(s)
        fake_model.push(TextReply("done"))
        done_thread = await make_thread(s, "one")
        done = (
            await collect(
                s.runs.CreateRunStream(
                    R.CreateRunRequest(thread_id=done_thread.id, assistant_id=assistant.id)
                )
            )
        )[-2].run
        fake_model.push(ErrorReply(500), ErrorReply(500))
        failed_thread = await make_thread(s, "two")
        failed = (
            await collect(
                s.runs.CreateRunStream(
                    R.CreateRunRequest(thread_id=failed_thread.id, assistant_id=assistant.id)
                )
            )
        )[-2].run
        hanging_thread, hanging = await start_hanging_run(s, fake_model)
        capsys.readouterr()

        assert main(["runs", "ls", "--database-url", database_url]) == 0
        listed = capsys.readouterr().out
        header = listed.splitlines()[0].split()
        assert header == [
            "ID", "THREAD", "STATUS", "MODEL", "CREATED", "OWNER", "LEASE", "EXPIRES", "ERROR"
        ]  # fmt: skip
        rows = _rows(listed)
        assert list(rows) == [hanging, failed.id, done.id]  # newest first
        assert rows[done.id][2] == "completed" and rows[done.id][-1] == "-"
        assert rows[failed.id][2] == "failed" and rows[failed.id][-1] == "server_error"
        assert rows[hanging][1:4] == [hanging_thread, "in_progress", "gpt-4o"]
        assert owner in rows[hanging] and "left" in " ".join(rows[hanging])

        assert main(["runs", "ls", "--active", "--database-url", database_url]) == 0
        assert list(_rows(capsys.readouterr().out)) == [hanging]
        assert (
            main(["runs", "ls", "--thread", failed_thread.id, "--database-url", database_url]) == 0
        )
        assert list(_rows(capsys.readouterr().out)) == [failed.id]

        assert main(["runs", "show", failed.id, "--database-url", database_url]) == 0
        shown = capsys.readouterr().out
        fields = dict(
            line.split(None, 1) if " " in line.strip() else (line, "")
            for line in shown.split("\n\n")[0].splitlines()
        )
        assert fields["status"].strip() == "failed"
        assert fields["thread"].strip() == failed_thread.id
        assert fields["owner"].strip() == "-"  # an ended run holds no lease
        assert shown.count("server_error") >= 1
        assert main(["runs", "show", done.id, "--database-url", database_url]) == 0
        shown = capsys.readouterr().out
        steps = shown.split("\n\n")[1].splitlines()
        assert steps[0].split()[:3] == ["STEP", "TYPE", "STATUS"]
        assert len(steps) == 2 and "message_creation" in steps[1] and "completed" in steps[1]
        usage = done.usage
        assert f"{usage.prompt_tokens} in, {usage.completion_tokens} out" in shown

        assert main(["runs", "show", hanging, "--database-url", database_url]) == 0
        shown = capsys.readouterr().out
        assert owner in shown and "s left" in shown

        assert main(["runs", "show", "run_missing", "--database-url", database_url]) == 1
        assert "no run 'run_missing'" in capsys.readouterr().err
        await s.runs.CancelRun(R.CancelRunRequest(thread_id=hanging_thread, run_id=hanging))


def test_runs_ls_on_a_database_never_migrated(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/empty.db"
    assert main(["runs", "ls", "--database-url", url]) == 1
    assert "assistants-grpc migrate" in capsys.readouterr().err
