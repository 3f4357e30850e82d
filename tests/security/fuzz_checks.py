"""After the fuzz: the server is up, and the database lists and reads back consistently."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import Connection, create_engine, func, select

from assistants_grpc.contract.pb import (
    assistant_pb2,
    file_pb2,
    message_pb2,
    run_pb2,
    thread_pb2,
)
from assistants_grpc.store import repository as repo
from assistants_grpc.store.database import normalize_url
from assistants_grpc.store.run_states import ACTIVE
from tests.security.fuzz_seed import PROJECTS, Stubs

TIMEOUT = 30.0


def check_serving(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    answer = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


def wait_for_runs_to_settle(url: str, timeout: float = 60) -> None:
    """Until no run is executing (one waiting for tool outputs counts as settled), so the API
    walk and the table counts below see the same rows."""
    engine = create_engine(normalize_url(url))
    moving = (
        select(func.count())
        .select_from(repo.RUNS)
        .where(repo.RUNS.c.status.in_(("queued", "in_progress", "cancelling")))
    )
    deadline = time.monotonic() + timeout
    try:
        while True:
            with engine.connect() as connection:
                if connection.execute(moving).scalar_one() == 0:
                    return
            assert time.monotonic() < deadline, "runs still executing after the fuzz"
            time.sleep(0.1)
    finally:
        engine.dispose()


def _pages(list_call: Any, request: Any, metadata: Any) -> list[Any]:
    items: list[Any] = []
    while True:
        page = list_call(request, metadata=metadata, timeout=TIMEOUT)
        items += page.data
        if not page.has_more:
            return items
        request.after = page.last_id


def read_back_everything(channel: grpc.Channel, keys: dict[str, str]) -> Counter[str]:
    """List every object of every project through the API and read each back by id; counts."""
    seen: Counter[str] = Counter()
    for project in PROJECTS:
        s = Stubs(channel, keys[project])
        md = s.metadata
        for assistant in _pages(
            s.assistants.ListAssistants, assistant_pb2.ListAssistantsRequest(limit=100), md
        ):
            request = assistant_pb2.GetAssistantRequest(assistant_id=assistant.id)
            assert s.assistants.GetAssistant(request, metadata=md) == assistant
            seen[f"assistants:{project}"] += 1
        for thread in _pages(s.threads.ListThreads, thread_pb2.ListThreadsRequest(limit=100), md):
            request_thread = thread_pb2.GetThreadRequest(thread_id=thread.id)
            assert s.threads.GetThread(request_thread, metadata=md) == thread
            seen[f"threads:{project}"] += 1
            _read_thread(s, thread.id, seen)
        for file in _pages(s.files.ListFiles, file_pb2.ListFilesRequest(limit=100), md):
            assert s.files.GetFile(file_pb2.GetFileRequest(file_id=file.id), metadata=md) == file
            content = s.files.GetFileContent(
                file_pb2.GetFileContentRequest(file_id=file.id), metadata=md, timeout=TIMEOUT
            )
            assert sum(len(chunk.data) for chunk in content) == file.bytes
            seen[f"files:{project}"] += 1
    return seen


def _read_thread(s: Stubs, thread_id: str, seen: Counter[str]) -> None:
    md = s.metadata
    for message in _pages(
        s.messages.ListMessages, message_pb2.ListMessagesRequest(thread_id=thread_id, limit=100), md
    ):
        assert message.thread_id == thread_id
        got = s.messages.GetMessage(
            message_pb2.GetMessageRequest(thread_id=thread_id, message_id=message.id), metadata=md
        )
        assert got.id == message.id
        seen["messages"] += 1
    for run in _pages(s.runs.ListRuns, run_pb2.ListRunsRequest(thread_id=thread_id, limit=100), md):
        got_run = s.runs.GetRun(
            run_pb2.GetRunRequest(thread_id=thread_id, run_id=run.id), metadata=md
        )
        assert got_run.id == run.id
        seen["runs"] += 1
        for step in _pages(
            s.runs.ListRunSteps,
            run_pb2.ListRunStepsRequest(thread_id=thread_id, run_id=run.id, limit=100),
            md,
        ):
            got_step = s.runs.GetRunStep(
                run_pb2.GetRunStepRequest(thread_id=thread_id, run_id=run.id, step_id=step.id),
                metadata=md,
            )
            assert got_step.id == step.id
            seen["steps"] += 1


def snapshot(channel: grpc.Channel, key: str) -> list[bytes]:
    """Everything one key can see, serialized: to compare before and after."""
    s = Stubs(channel, key)
    md = s.metadata
    shot = [
        a.SerializeToString()
        for a in _pages(s.assistants.ListAssistants, assistant_pb2.ListAssistantsRequest(), md)
    ]
    for thread in _pages(s.threads.ListThreads, thread_pb2.ListThreadsRequest(), md):
        shot.append(thread.SerializeToString())
        for list_call, request in (
            (s.messages.ListMessages, message_pb2.ListMessagesRequest(thread_id=thread.id)),
            (s.runs.ListRuns, run_pb2.ListRunsRequest(thread_id=thread.id)),
        ):
            shot += [item.SerializeToString() for item in _pages(list_call, request, md)]
    files = _pages(s.files.ListFiles, file_pb2.ListFilesRequest(limit=100), md)
    shot += [file.SerializeToString() for file in files]
    return shot


def check_tables(url: str, seen: Counter[str]) -> None:
    """The tables hold exactly what the API showed, and the schema's invariants hold."""
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as c:
            _check_counts(c, seen)
            _check_invariants(c)
    finally:
        engine.dispose()


def _count(c: Connection, table: Any, *where: Any) -> int:
    return int(c.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def _check_counts(c: Connection, seen: Counter[str]) -> None:
    for kind, table in (
        ("assistants", repo.ASSISTANTS),
        ("threads", repo.THREADS),
        ("files", repo.FILES),
    ):
        for project in PROJECTS:
            assert _count(c, table, table.c.project == project) == seen[f"{kind}:{project}"]
        # Nothing outside the keys' projects: no call without a valid key wrote anything.
        assert _count(c, table) == sum(seen[f"{kind}:{project}"] for project in PROJECTS)
    assert _count(c, repo.MESSAGES) == seen["messages"]
    assert _count(c, repo.RUNS) == seen["runs"]
    assert _count(c, repo.RUN_STEPS) == seen["steps"]


def _check_invariants(c: Connection) -> None:
    # No orphans: everything under a thread is under one that exists.
    threads = select(repo.THREADS.c.id)
    for table in (repo.MESSAGES, repo.RUNS, repo.RUN_STEPS, repo.RUN_EVENTS):
        assert _count(c, table, table.c.thread_id.not_in(threads)) == 0, table.name
    # The thread lock held: at most one active run per thread.
    active = (
        select(repo.RUNS.c.thread_id, func.count().label("n"))
        .where(repo.RUNS.c.status.in_([s.value for s in ACTIVE]))
        .group_by(repo.RUNS.c.thread_id)
    )
    assert all(row.n == 1 for row in c.execute(active))
    # Every run's event log is 1..last_sequence, without gaps.
    logs = (
        select(
            repo.RUNS.c.id,
            repo.RUNS.c.last_sequence,
            func.count(repo.RUN_EVENTS.c.sequence),
            func.max(repo.RUN_EVENTS.c.sequence),
        )
        .join(repo.RUN_EVENTS, repo.RUN_EVENTS.c.run_id == repo.RUNS.c.id, isouter=True)
        .group_by(repo.RUNS.c.id, repo.RUNS.c.last_sequence)
    )
    for run_id, last, events, highest in c.execute(logs):
        assert events == last == (highest or 0), run_id
    # Every content is counted by exactly the files that share it, and no file lacks one.
    files_per_content = (
        select(repo.FILES.c.sha256, func.count().label("n"))
        .group_by(repo.FILES.c.sha256)
        .subquery()
    )
    counted = select(repo.FILE_CONTENTS.c.sha256, repo.FILE_CONTENTS.c.refs).join(
        files_per_content,
        files_per_content.c.sha256 == repo.FILE_CONTENTS.c.sha256,
        isouter=True,
    )
    refs = {sha: n for sha, n in c.execute(counted)}
    per_file = {row.sha256: row.n for row in c.execute(select(files_per_content))}
    assert refs == per_file


__all__ = [
    "check_serving",
    "check_tables",
    "read_back_everything",
    "snapshot",
    "wait_for_runs_to_settle",
]
