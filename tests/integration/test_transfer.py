"""`import` and `export`: OpenAI dumps come in with their ids and render back as they were; an
export imports back to the same objects; active runs end; problems are reported by line; a
killed import finishes on a rerun."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from assistants_grpc.contract.openai_json import render
from assistants_grpc.contract.pb import common_pb2, message_pb2, run_pb2, thread_pb2
from assistants_grpc.fake_model import FakeModelServer, TextReply, ToolCallsReply
from assistants_grpc.services.messages import content_tokens
from assistants_grpc.store import migrate
from assistants_grpc.store import repository as repo
from assistants_grpc.store.database import Database
from assistants_grpc.store.mapping import message_from_row
from assistants_grpc.transfer import Progress, export
from assistants_grpc.transfer.writing import CRASH_AFTER_ENV
from tests.conftest import reset_postgres, serving
from tests.integration import transfer_fixtures as fx
from tests.integration.files_helpers import download, upload
from tests.integration.runs_helpers import (
    WEATHER,
    collect,
    make_assistant,
    make_thread,
    names,
    thread_messages,
    wait_for_status,
)
from tests.integration.vector_helpers import wait_ingested

R = run_pb2


def export_lines(
    url: str,
    *,
    project: str = "default",
    threads: list[str] | None = None,
    out: Path | None = None,
    now: int | None = None,
) -> list[str]:
    """The lines `export` writes (to `out`, with the Files' bytes beside it, or to a temporary
    file removed after)."""
    database = Database(url)
    log = io.StringIO()
    path = out or Path(os.environ.get("TMPDIR", "/tmp")) / f"export-{os.getpid()}-{id(log)}.jsonl"
    try:
        result = export(database, str(path), project, Progress(log, tty=False), threads, now=now)
        assert not result.missing and not result.unreadable
        return path.read_text().splitlines()
    finally:
        if out is None:
            path.unlink(missing_ok=True)
            shutil.rmtree(f"{path}.files", ignore_errors=True)
        database.dispose()


def by_id(lines: list[str]) -> dict[str, dict[str, Any]]:
    objects = [json.loads(line) for line in lines]
    return {obj["id"]: obj for obj in objects}


def empty_twin(url: str, tmp_path: Path, name: str) -> str:
    """An empty database of the same backend (PostgreSQL: the same one, emptied). A SQLite
    twin has a folder of its own: Files' bytes live beside the database."""
    if url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / Path(name).stem / name}"
    reset_postgres(url)
    return url


# --- OpenAI dumps -------------------------------------------------------------------------------


def test_an_openai_dump_renders_back_as_it_was(database_url: str, tmp_path: Path) -> None:
    dump = fx.dump()
    # Children before their parents: order within a command does not matter.
    path = fx.write_jsonl(tmp_path / "dump.jsonl", list(reversed(dump)))
    summary, problems = fx.run_import(database_url, path)
    assert problems == [] and summary.ok
    assert summary.total("imported") == len(dump)

    exported = by_id(export_lines(database_url))
    assert set(exported) == {obj.id for obj in dump}  # type: ignore[attr-defined]
    ended = {fx.ACTIVE_RUN, fx.oid("step_", "waiting"), fx.oid("msg_", "open")}
    for obj in dump:
        if obj.id not in ended:  # type: ignore[attr-defined]
            assert exported[obj.id] == fx.as_json(obj), obj.id  # type: ignore[attr-defined]


def test_a_run_active_in_the_dump_is_imported_expired(database_url: str, tmp_path: Path) -> None:
    dump = fx.dump()
    fx.run_import(database_url, fx.write_jsonl(tmp_path / "dump.jsonl", dump))
    exported = by_id(export_lines(database_url))
    deadline = fx.T + 41 + 600  # the run's expires_at: when it ended

    run = exported[fx.ACTIVE_RUN]
    original = fx.as_json(fx.active_run(fx.T + 41))
    assert run == original | {"status": "expired", "expires_at": None, "required_action": None}

    step = exported[fx.oid("step_", "waiting")]
    assert step["status"] == "expired" and step["expired_at"] == deadline
    assert step["usage"] is None

    message = exported[fx.oid("msg_", "open")]
    assert message["status"] == "incomplete"
    assert message["incomplete_at"] == deadline
    assert message["incomplete_details"] == {"reason": "run_expired"}


async def test_an_imported_thread_takes_new_messages_and_runs(
    database_url: str, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    fx.run_import(database_url, fx.write_jsonl(tmp_path / "dump.jsonl", fx.dump()))
    async with serving(database_url, fake_model) as running:
        stubs = running.stubs
        imported = await stubs.runs.GetRun(
            R.GetRunRequest(thread_id=fx.THREAD, run_id=fx.ACTIVE_RUN)
        )
        assert imported.status == R.RUN_STATUS_EXPIRED
        assert not imported.HasField("expires_at")
        # Imported runs have no history: watching one gives its final snapshot, then done.
        watched = await collect(
            stubs.runs.WatchRun(R.WatchRunRequest(thread_id=fx.THREAD, run_id=fx.ACTIVE_RUN))
        )
        assert names(watched) == ["thread.run.expired", "done"]
        assert [e.sequence for e in watched] == [1, 2]
        assert render(watched[0].run) == render(imported)
        finished = await collect(
            stubs.runs.WatchRun(R.WatchRunRequest(thread_id=fx.THREAD, run_id=fx.DONE_RUN))
        )
        assert names(finished) == ["thread.run.completed", "done"]

        # The thread lock is free: a message and a run go through.
        await stubs.messages.CreateMessage(
            message_pb2.CreateMessageRequest(
                thread_id=fx.THREAD,
                role=message_pb2.MESSAGE_ROLE_USER,
                content=[message_pb2.MessageContentInput(text="Thanks! Anything else?")],
            )
        )
        running.model.push(TextReply("You're welcome."))
        run = await stubs.runs.CreateRun(
            R.CreateRunRequest(thread_id=fx.THREAD, assistant_id=fx.ASSISTANT)
        )
        await wait_for_status(stubs, fx.THREAD, run.id, R.RUN_STATUS_COMPLETED)
        # The model saw the imported conversation, oldest first.
        prompt = running.model.requests[-1]["messages"]
        texts = [m["content"] for m in prompt if m["role"] == "user"]
        assert texts[0] == "What is the mean of x in data.csv?"
        assert texts[-1] == "Thanks! Anything else?"


def test_imported_messages_carry_the_api_token_count(database_url: str, tmp_path: Path) -> None:
    fx.run_import(database_url, fx.write_jsonl(tmp_path / "dump.jsonl", fx.dump()))
    database = Database(database_url)
    try:
        with database.engine.connect() as connection:
            rows = list(connection.execute(select(repo.MESSAGES)).mappings())
    finally:
        database.dispose()
    assert rows
    for row in rows:
        expected = content_tokens(fx._COUNTER, message_from_row(row).content)
        assert row["token_count"] == expected > 0
        assert row["token_encoding"] == "o200k_base"


def test_newest_first_lists_are_stored_oldest_first(database_url: str, tmp_path: Path) -> None:
    """`client.beta.threads.messages.list()` pages newest first by default (CONTRACT §1)."""
    messages = [fx.user_message(f"m{i}", f"message {i}", fx.T + 100 + i // 2) for i in range(6)]
    page = {
        "object": "list",
        "data": [fx.as_json(m) for m in reversed(messages)],
        "first_id": messages[-1].id,
        "last_id": messages[0].id,
        "has_more": False,
    }
    (tmp_path / "messages.json").write_text(json.dumps(page, indent=2))
    fx.write_jsonl(tmp_path / "threads.jsonl", [fx.thread()])
    summary, problems = fx.run_import(
        database_url, tmp_path / "messages.json", tmp_path / "threads.jsonl"
    )
    assert problems == [] and summary.total("imported") == 7
    exported = [json.loads(line)["id"] for line in export_lines(database_url)]
    assert exported[1:] == [m.id for m in messages]


# --- idempotency -------------------------------------------------------------------------------


def test_importing_twice_changes_nothing_and_replace_overwrites(
    database_url: str, tmp_path: Path
) -> None:
    path = fx.write_jsonl(tmp_path / "dump.jsonl", fx.dump())
    fx.run_import(database_url, path)
    before = export_lines(database_url)

    again, problems = fx.run_import(database_url, path)
    assert problems == [] and again.ok
    assert again.total("unchanged") == len(fx.dump()) and again.total("imported") == 0
    assert export_lines(database_url) == before

    edited = [fx.as_json(obj) for obj in fx.dump()]
    edited[2]["metadata"] = {"edited": "yes"}  # the first user message
    changed = fx.write_jsonl(tmp_path / "edited.jsonl", edited)
    refused, problems = fx.run_import(database_url, changed)
    assert refused.counts["thread.message"]["refused"] == 1
    assert problems == [
        f"{changed}:3: id: differs from the stored object with this id (--replace overwrites it)"
    ]
    assert export_lines(database_url) == before

    replaced, problems = fx.run_import(database_url, changed, replace=True)
    assert problems == [] and replaced.total("replaced") == 1
    assert by_id(export_lines(database_url))[edited[2]["id"]]["metadata"] == {"edited": "yes"}
    # A run written over keeps a consistent log: still its terminal event and done.
    edited[3]["metadata"] = {"edited": "too"}
    replaced, _ = fx.run_import(database_url, fx.write_jsonl(changed, edited), replace=True)
    assert replaced.counts["thread.run"]["replaced"] == 1
    database = Database(database_url)
    try:
        with database.engine.connect() as connection:
            events = connection.execute(
                select(repo.RUN_EVENTS.c.event).where(repo.RUN_EVENTS.c.run_id == fx.DONE_RUN)
            ).scalars()
            assert list(events) == ["thread.run.completed", "done"]
    finally:
        database.dispose()


# --- problems ---------------------------------------------------------------------------------


def test_bad_lines_are_reported_with_their_line(database_url: str, tmp_path: Path) -> None:
    other = fx.write_jsonl(tmp_path / "other.jsonl", [fx.thread(fx.oid("thread_", "theirs"))])
    fx.run_import(database_url, other, project="other")

    lost = fx.oid("thread_", "lost")
    lines: list[Any] = [
        fx.as_json(fx.thread()),  # 1
        "{not json",  # 2
        fx.as_json(fx.thread()),  # 3: a duplicate
        fx.as_json(fx.user_message("orphan", "hi", fx.T, thread_id=lost)),  # 4: no such thread
        fx.as_json(fx.thread(fx.oid("thread_", "theirs"))),  # 5: another project's id
        fx.as_json(fx.user_message("q", "hi", fx.T)) | {"role": None},  # 6: missing role
        {"id": "resp_abc", "object": "response"},  # 7: a type not imported
        fx.as_json(fx.user_message("nul", "a\x00b", fx.T)),  # 8: a NUL character
        fx.as_json(fx.tool_step(fx.T)),  # 9: its run is in no file
        fx.as_json(fx.user_message("bad", "hi", fx.T)) | {"content": [{"type": "text", "text": 3}]},
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text(
        "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    )
    summary, problems = fx.run_import(database_url, path)
    assert not summary.ok
    assert problems == [
        f"{path}:2: not valid JSON: Expecting property name enclosed in double quotes (column 2)",
        f"{path}:6: role: required.",
        f"{path}:7: object: 'response' is not one of 'file', 'vector_store', "
        "'vector_store.file', 'assistant', 'thread', 'thread.message', 'thread.run', "
        "'thread.run.step'",
        f"{path}:8: content[0].text.value: must not contain NUL characters.",
        f"{path}:10: content[0].text: expected an object",
        f"{path}:3: id: {fx.THREAD} was already read at {path}:1; the first one is imported",
        f"{path}:5: id: {fx.oid('thread_', 'theirs')} exists in another project ('other')",
        f"{path}:4: thread_id: {lost} is neither in the database nor in this import",
        f"{path}:9: run_id: {fx.DONE_RUN} is neither in the database nor in this import",
    ]
    assert summary.counts["thread"] == {
        "imported": 1,
        "unchanged": 0,
        "replaced": 0,
        "refused": 2,
        "skipped": 0,
    }
    assert summary.counts["thread.message"]["refused"] == 4
    assert summary.counts["(unreadable)"]["refused"] == 2


def test_children_of_refused_or_foreign_parents_are_refused(
    database_url: str, tmp_path: Path
) -> None:
    theirs = fx.oid("thread_", "theirs")
    fx.run_import(
        database_url, fx.write_jsonl(tmp_path / "o.jsonl", [fx.thread(theirs)]), project="other"
    )
    broken_thread = fx.as_json(fx.thread()) | {"metadata": {"k": "x" * 600}}
    lines = [
        broken_thread,  # 1: refused (metadata value too long)
        fx.as_json(fx.user_message("a", "hi", fx.T)),  # 2: its thread was refused
        fx.as_json(fx.user_message("b", "hi", fx.T, thread_id=theirs)),  # 3: another project's
    ]
    _, problems = fx.run_import(database_url, fx.write_jsonl(tmp_path / "c.jsonl", lines))
    path = tmp_path / "c.jsonl"
    assert problems == [
        f"{path}:1: metadata.k: value longer than 512 characters.",
        f"{path}:2: thread_id: {fx.THREAD} is neither in the database nor in this import",
        f"{path}:3: thread_id: {theirs} is in another project ('other')",
    ]
    # A step must be under its run's thread.
    good = [fx.as_json(o) for o in (fx.thread(), fx.thread(theirs + "x"), fx.done_run(fx.T))]
    fx.run_import(database_url, fx.write_jsonl(tmp_path / "g.jsonl", good))
    step = fx.as_json(fx.tool_step(fx.T)) | {"thread_id": theirs + "x"}
    _, problems = fx.run_import(database_url, fx.write_jsonl(path, [step]))
    assert problems == [
        f"{path}:1: thread_id: {fx.DONE_RUN} is in thread {fx.THREAD}, not in {theirs}x"
    ]


# --- the round trip ---------------------------------------------------------------------------


async def test_export_then_import_gives_back_the_same_objects(
    database_url: str, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    """A thread made through the server with tool runs (two rounds, parallel calls), steps and
    an annotated answer, a File attached to it and a vector store of it; exported, imported
    into an empty database, exported again once its server has ingested the store."""
    async with serving(database_url, fake_model) as running:
        stubs, model = running.stubs, running.model
        model.push(
            ToolCallsReply(
                [("get_weather", '{"city":"Paris"}'), ("get_weather", '{"city":"Lyon"}')]
            ),
            TextReply("Sunny in both."),
        )
        assistant = await make_assistant(stubs, tools=[WEATHER], metadata={"v": "1"})
        thread = await make_thread(stubs, "weather in Paris and Lyon?")
        run = await stubs.runs.CreateRun(
            R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
        )
        paused = await wait_for_status(stubs, thread.id, run.id, R.RUN_STATUS_REQUIRES_ACTION)
        calls = paused.required_action.submit_tool_outputs.tool_calls
        await stubs.runs.SubmitToolOutputs(
            R.SubmitToolOutputsRequest(
                thread_id=thread.id,
                run_id=run.id,
                tool_outputs=[R.ToolOutput(tool_call_id=c.id, output="sunny") for c in calls],
            )
        )
        await wait_for_status(stubs, thread.id, run.id, R.RUN_STATUS_COMPLETED)
        other = await make_thread(stubs, "second thread")
        # Annotations only come from file_search and code_interpreter: an imported answer
        # brings them into the served thread.
        annotated = fx.as_json(fx.answer(fx.T)) | {
            "thread_id": thread.id,
            "run_id": run.id,
            "assistant_id": assistant.id,
            "created_at": int(running.clock.now()),
        }
        _, problems = fx.run_import(
            database_url, fx.write_jsonl(tmp_path / "answer.jsonl", [annotated])
        )
        assert problems == []
        # A File attached to a message (with file_search: the thread gets a store of it).
        notes = await upload(stubs, fx.DOC_BYTES, "handbook.md")
        await stubs.messages.CreateMessage(
            message_pb2.CreateMessageRequest(
                thread_id=other.id,
                role=message_pb2.MESSAGE_ROLE_USER,
                content=[message_pb2.MessageContentInput(text="See the handbook.")],
                attachments=[
                    message_pb2.Attachment(
                        file_id=notes.id,
                        tools=[message_pb2.AttachmentTool(type=common_pb2.TOOL_TYPE_FILE_SEARCH)],
                    )
                ],
            )
        )
        resources = (
            await stubs.threads.GetThread(thread_pb2.GetThreadRequest(thread_id=other.id))
        ).tool_resources
        [store_id] = resources.file_search.vector_store_ids
        await wait_ingested(running, store_id)
        before_messages = [render(m) for m in await thread_messages(stubs, thread.id)]
        steps = await stubs.runs.ListRunSteps(
            R.ListRunStepsRequest(thread_id=thread.id, run_id=run.id, limit=100)
        )
        assert {s.type for s in steps.data} == {
            R.RUN_STEP_TYPE_TOOL_CALLS,
            R.RUN_STEP_TYPE_MESSAGE_CREATION,
        }
        now = int(running.clock.now())

    dump = tmp_path / "export.jsonl"
    first = export_lines(database_url, out=dump, now=now)
    kinds = [json.loads(line)["object"] for line in first]
    assert kinds.count("thread.run.step") == len(steps.data) and kinds.count("thread") == 2
    assert kinds[:3] == ["file", "vector_store", "vector_store.file"]
    assert any("file_citation" in line for line in first)
    assert (tmp_path / "export.jsonl.files" / notes.id).read_bytes() == fx.DOC_BYTES

    twin = empty_twin(database_url, tmp_path, "twin.db")
    summary, problems = fx.run_import(twin, dump, now=now)
    assert problems == [] and summary.total("imported") == len(first)

    async with serving(twin, fake_model) as running:
        after = [render(m) for m in await thread_messages(running.stubs, thread.id)]
        assert after == before_messages
        assert [render(m) for m in await thread_messages(running.stubs, other.id)]
        await wait_ingested(running, store_id)
        assert await download(running.stubs, notes.id) == fx.DOC_BYTES
    assert export_lines(twin, now=now) == first


def test_export_of_some_threads_brings_their_assistants(database_url: str, tmp_path: Path) -> None:
    second = fx.oid("asst_", "unused")
    fx.run_import(
        database_url,
        fx.write_jsonl(
            tmp_path / "d.jsonl",
            [*fx.dump(), fx.assistant(second), fx.thread(fx.oid("thread_", "x"))],
        ),
    )
    lines = export_lines(database_url, threads=[fx.THREAD])
    objects = [json.loads(line) for line in lines]
    assert [o["id"] for o in objects if o["object"] == "assistant"] == [fx.ASSISTANT]
    assert [o["id"] for o in objects if o["object"] == "thread"] == [fx.THREAD]
    assert len(objects) == len(fx.dump())
    database = Database(database_url)
    try:
        result = export(
            database, str(tmp_path / "x.jsonl"), "default", Progress(io.StringIO()), ["thread_nope"]
        )
        assert result.missing == ["thread_nope"]
        assert export(
            database, str(tmp_path / "y.jsonl"), "other", Progress(io.StringIO())
        ).counts == dict.fromkeys(
            (
                "file",
                "vector_store",
                "vector_store.file",
                "assistant",
                "thread",
                "thread.message",
                "thread.run",
                "thread.run.step",
            ),
            0,
        )
    finally:
        database.dispose()


# --- a crash in the middle ---------------------------------------------------------------------


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "assistants_grpc", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_a_killed_import_finishes_on_a_rerun_exactly_once(
    database_url: str, tmp_path: Path
) -> None:
    objects: list[Any] = []
    for t in range(40):
        thread_id = fx.oid("thread_", f"t{t}")
        objects.append(fx.thread(thread_id, fx.T + t))
        objects += [
            fx.user_message(f"t{t}m{m}", f"message {m}", fx.T + t, thread_id) for m in range(10)
        ]
    path = fx.write_jsonl(tmp_path / "big.jsonl", objects)
    database = Database(database_url)
    try:
        migrate.upgrade(database)
    finally:
        database.dispose()
    args = ["import", str(path), "--database-url", database_url, "--batch-size", "50"]

    killed = _cli(*args, "--progress-seconds", "0", env={CRASH_AFTER_ENV: "230"})
    assert killed.returncode == -9, killed.stderr
    # Killed inside the fifth transaction: the four before it are there, reported as written.
    assert "writing: 200 objects" in killed.stderr
    assert _count_rows(database_url) == 200

    rerun = _cli(*args)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.splitlines()[1:3] == [
        "thread                 0         40         0        0",
        "thread.message       240        160         0        0",
    ]
    assert _count_rows(database_url) == len(objects)
    assert _distinct_ids(database_url) == len(objects)


def _count_rows(url: str) -> int:
    database = Database(url)
    try:
        with database.engine.connect() as connection:
            return sum(
                connection.execute(select(func.count()).select_from(t)).scalar_one()
                for t in (repo.THREADS, repo.MESSAGES)
            )
    finally:
        database.dispose()


def _distinct_ids(url: str) -> int:
    database = Database(url)
    try:
        with database.engine.connect() as connection:
            return sum(
                connection.execute(select(func.count(t.c.id.distinct()))).scalar_one()
                for t in (repo.THREADS, repo.MESSAGES)
            )
    finally:
        database.dispose()


def test_cli_summary_and_exit_codes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    good = fx.write_jsonl(tmp_path / "good.jsonl", fx.dump())
    done = _cli("import", str(good), "--database-url", url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].split() == [
        "type",
        "imported",
        "unchanged",
        "replaced",
        "refused",
    ]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"object": "thread"}\n')
    failed = _cli("import", str(bad), str(tmp_path / "missing.jsonl"), "--database-url", url)
    assert failed.returncode == 1
    assert f"{bad}:1: id: required." in failed.stderr
    assert f"{tmp_path / 'missing.jsonl'}: No such file or directory" in failed.stderr
    out = tmp_path / "out.jsonl.gz"
    exported = _cli("export", str(out), "--database-url", url)
    assert exported.returncode == 0, exported.stderr
    again = _cli("import", str(out), "--database-url", url)
    assert again.returncode == 0 and "0 imported" in again.stderr
    assert (
        _cli("import", str(good), "--project", "no spaces", "--database-url", url).returncode == 2
    )
