"""A dump as people kept one: objects built with the `openai` package's own types, with the field
values the hosted API returned and ids in its 24-character form, written as `model_dump_json()`
writes them; Files' bytes saved beside it under their ids, as `client.files.content(id)` gave
them."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from openai.types import FileObject, VectorStore
from openai.types.beta import Assistant, Thread
from openai.types.beta.threads import Message, Run
from openai.types.beta.threads.runs import RunStep
from openai.types.vector_stores import VectorStoreFile, VectorStoreFileBatch
from pydantic import BaseModel

from assistants_grpc.clock import SystemClock
from assistants_grpc.engine.tokens import TokenCounter
from assistants_grpc.files.storage import FileStorage
from assistants_grpc.ids import random_id
from assistants_grpc.store import migrate
from assistants_grpc.store.database import Database
from assistants_grpc.transfer import ImportOptions, Progress, Summary, import_files

T = 1_714_000_000
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_COUNTER = TokenCounter()


def oid(prefix: str, name: str) -> str:
    """A stable id in OpenAI's form: the prefix and 24 base62 characters."""
    number = int.from_bytes(hashlib.sha256(name.encode()).digest(), "big")
    chars = []
    for _ in range(24):
        number, digit = divmod(number, 62)
        chars.append(_ALPHABET[digit])
    return prefix + "".join(chars)


ASSISTANT = oid("asst_", "tutor")
THREAD = oid("thread_", "thread")
DONE_RUN = oid("run_", "done")
ACTIVE_RUN = oid("run_", "active")


def assistant(assistant_id: str = ASSISTANT) -> Assistant:
    return Assistant.model_validate(
        {
            "id": assistant_id,
            "object": "assistant",
            "created_at": T,
            "name": "Math Tutor",
            "description": None,
            "model": "gpt-4o",
            "instructions": "You are a personal math tutor. Write and run code to answer.",
            "tools": [
                {"type": "code_interpreter"},
                {
                    "type": "file_search",
                    "file_search": {
                        "max_num_results": 20,
                        "ranking_options": {"ranker": "default_2024_08_21", "score_threshold": 0.0},
                    },
                },
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "description": "Get the weather of a city",
                        "parameters": {
                            "type": "object",
                            "properties": {"city": {"type": "string"}},
                            "required": ["city"],
                        },
                        "strict": False,
                    },
                },
            ],
            "tool_resources": {
                "code_interpreter": {"file_ids": [oid("file-", "data")]},
                "file_search": {"vector_store_ids": [oid("vs_", "docs")]},
            },
            "metadata": {"team": "math"},
            "top_p": 1.0,
            "temperature": 1.0,
            "response_format": "auto",
        }
    )


def thread(thread_id: str = THREAD, created_at: int = T + 10) -> Thread:
    return Thread.model_validate(
        {
            "id": thread_id,
            "object": "thread",
            "created_at": created_at,
            "metadata": {"user": "u-42"},
            "tool_resources": {"code_interpreter": {"file_ids": []}},
        }
    )


def user_message(name: str, text: str, created_at: int, thread_id: str = THREAD) -> Message:
    return Message.model_validate(
        {
            "id": oid("msg_", name),
            "object": "thread.message",
            "created_at": created_at,
            "assistant_id": None,
            "thread_id": thread_id,
            "run_id": None,
            "role": "user",
            "content": [{"type": "text", "text": {"value": text, "annotations": []}}],
            "attachments": [
                {"file_id": oid("file-", "data"), "tools": [{"type": "code_interpreter"}]}
            ],
            "metadata": {},
            "status": "completed",
            "completed_at": created_at,
            "incomplete_at": None,
            "incomplete_details": None,
        }
    )


def answer(created_at: int) -> Message:
    """An assistant message with both kinds of annotations and an image part."""
    value = "The mean is 4.2 【4:0†data.csv】. Download sandbox:/mnt/data/result.csv"
    citation = "【4:0†data.csv】"
    link = "sandbox:/mnt/data/result.csv"
    return Message.model_validate(
        {
            "id": oid("msg_", "answer"),
            "object": "thread.message",
            "created_at": created_at,
            "assistant_id": ASSISTANT,
            "thread_id": THREAD,
            "run_id": DONE_RUN,
            "role": "assistant",
            "content": [
                {
                    "type": "image_file",
                    "image_file": {"file_id": oid("file-", "plot"), "detail": None},
                },
                {
                    "type": "text",
                    "text": {
                        "value": value,
                        "annotations": [
                            {
                                "type": "file_citation",
                                "text": citation,
                                "start_index": value.index(citation),
                                "end_index": value.index(citation) + len(citation),
                                "file_citation": {"file_id": oid("file-", "data")},
                            },
                            {
                                "type": "file_path",
                                "text": link,
                                "start_index": value.index(link),
                                "end_index": value.index(link) + len(link),
                                "file_path": {"file_id": oid("file-", "result")},
                            },
                        ],
                    },
                },
            ],
            "attachments": [],
            "metadata": {},
            "status": "completed",
            "completed_at": created_at + 3,
            "incomplete_at": None,
            "incomplete_details": None,
        }
    )


def _run(run_id: str, created_at: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": run_id,
        "object": "thread.run",
        "created_at": created_at,
        "assistant_id": ASSISTANT,
        "thread_id": THREAD,
        "status": "completed",
        "started_at": created_at + 1,
        "expires_at": None,
        "cancelled_at": None,
        "failed_at": None,
        "completed_at": created_at + 9,
        "last_error": None,
        "model": "gpt-4o",
        "instructions": "You are a personal math tutor. Write and run code to answer.",
        "tools": [{"type": "code_interpreter"}],
        "metadata": {},
        "incomplete_details": None,
        "usage": {"prompt_tokens": 812, "completion_tokens": 96, "total_tokens": 908},
        "temperature": 1.0,
        "top_p": 1.0,
        "max_prompt_tokens": None,
        "max_completion_tokens": None,
        "truncation_strategy": {"type": "auto", "last_messages": None},
        "response_format": "auto",
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "required_action": None,
    } | fields


def done_run(created_at: int) -> Run:
    return Run.model_validate(_run(DONE_RUN, created_at))


def active_run(created_at: int) -> Run:
    """A run dumped while it waited for tool outputs."""
    call = {
        "id": oid("call_", "weather"),
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }
    return Run.model_validate(
        _run(
            ACTIVE_RUN,
            created_at,
            status="requires_action",
            completed_at=None,
            usage=None,
            expires_at=created_at + 600,
            tools=[assistant().tools[2].model_dump(mode="json")],
            required_action={
                "type": "submit_tool_outputs",
                "submit_tool_outputs": {"tool_calls": [call]},
            },
        )
    )


def _step(step_id: str, run_id: str, created_at: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "object": "thread.run.step",
        "created_at": created_at,
        "run_id": run_id,
        "assistant_id": ASSISTANT,
        "thread_id": THREAD,
        "type": "tool_calls",
        "status": "completed",
        "cancelled_at": None,
        "completed_at": created_at + 2,
        "expired_at": None,
        "failed_at": None,
        "last_error": None,
        "metadata": {},
        "usage": {"prompt_tokens": 400, "completion_tokens": 40, "total_tokens": 440},
    } | fields


def tool_step(created_at: int) -> RunStep:
    return RunStep.model_validate(
        _step(
            oid("step_", "tools"),
            DONE_RUN,
            created_at,
            step_details={
                "type": "tool_calls",
                "tool_calls": [
                    {
                        "id": oid("call_", "python"),
                        "type": "code_interpreter",
                        "code_interpreter": {
                            "input": "import pandas as pd\n"
                            "pd.read_csv('/mnt/data/data.csv').mean()",
                            "outputs": [
                                {"type": "logs", "logs": "x    4.2\ndtype: float64"},
                                {"type": "image", "image": {"file_id": oid("file-", "plot")}},
                            ],
                        },
                    },
                    {
                        "id": oid("call_", "search"),
                        "type": "file_search",
                        "file_search": {
                            "ranking_options": {
                                "ranker": "default_2024_08_21",
                                "score_threshold": 0.0,
                            },
                            "results": [
                                {
                                    "file_id": oid("file-", "data"),
                                    "file_name": "data.csv",
                                    "score": 0.82,
                                    "content": [{"type": "text", "text": "x\n1\n7.4"}],
                                }
                            ],
                        },
                    },
                ],
            },
        )
    )


def message_step(created_at: int) -> RunStep:
    return RunStep.model_validate(
        _step(
            oid("step_", "answer"),
            DONE_RUN,
            created_at,
            type="message_creation",
            step_details={
                "type": "message_creation",
                "message_creation": {"message_id": oid("msg_", "answer")},
            },
        )
    )


def active_steps(created_at: int) -> list[RunStep]:
    """The open tool_calls step of the active run, and its open message's step."""
    waiting = _step(
        oid("step_", "waiting"),
        ACTIVE_RUN,
        created_at,
        status="in_progress",
        completed_at=None,
        usage=None,
        step_details={
            "type": "tool_calls",
            "tool_calls": [
                {
                    "id": oid("call_", "weather"),
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "arguments": '{"city":"Paris"}',
                        "output": None,
                    },
                }
            ],
        },
    )
    return [RunStep.model_validate(waiting)]


def open_message(created_at: int) -> Message:
    """The message the active run was writing when it was dumped."""
    message = answer(created_at).model_dump(mode="json")
    message |= {
        "id": oid("msg_", "open"),
        "run_id": ACTIVE_RUN,
        "status": "in_progress",
        "completed_at": None,
        "content": [{"type": "text", "text": {"value": "Let me check the", "annotations": []}}],
    }
    return Message.model_validate(message)


def dump() -> list[BaseModel]:
    """A whole conversation: an assistant, a thread, a finished tool run, and a run that was
    waiting for tool outputs when it was dumped."""
    return [
        assistant(),
        thread(),
        user_message("q1", "What is the mean of x in data.csv?", T + 20),
        done_run(T + 21),
        tool_step(T + 22),
        message_step(T + 25),
        answer(T + 26),
        user_message("q2", "And the weather in Paris?", T + 40),
        active_run(T + 41),
        *active_steps(T + 42),
        open_message(T + 43),
    ]


def as_json(obj: BaseModel) -> dict[str, Any]:
    """What `model_dump_json()` wrote, read back."""
    return json.loads(obj.model_dump_json())  # type: ignore[no-any-return]


def write_jsonl(path: Path, objects: Sequence[BaseModel] | Sequence[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        for obj in objects:
            out.write(
                (obj.model_dump_json() if isinstance(obj, BaseModel) else json.dumps(obj)) + "\n"
            )
    return path


def run_import(
    url: str,
    *paths: Path,
    now: int | None = None,
    max_file_bytes: int | None = None,
    max_project_file_bytes: int | None = None,
    **options: Any,
) -> tuple[Summary, list[str]]:
    """The importer in this process: its summary and the problem lines it printed. The Files'
    storage is the database's default one (beside a SQLite file, as the test servers have it),
    with these limits."""
    database = Database(url)
    out = io.StringIO()
    limits: dict[str, Any] = {"max_project_file_bytes": max_project_file_bytes}
    if max_file_bytes is not None:
        limits["max_file_bytes"] = max_file_bytes
    try:
        migrate.upgrade(database)
        summary = import_files(
            database,
            list(paths),
            ImportOptions(**options),
            Progress(out, interval=3600, tty=False),
            counter=_COUNTER,
            now=now,
            storage=FileStorage.for_database(database, SystemClock(), random_id, **limits),
        )
    finally:
        database.dispose()
    problems = [
        line
        for line in out.getvalue().splitlines()
        if not line.startswith(("reading:", "writing:"))
    ]
    return summary, problems


# --- Files and vector stores ----------------------------------------------------------------

DOC = oid("file-", "handbook")
DATA = oid("file-", "data")  # the assistant's code_interpreter file, attached to messages
SCAN = oid("file-", "scan")
STORE = oid("vs_", "docs")  # the assistant's file_search store
BATCH = oid("vsfb_", "batch")

DOC_BYTES = (
    b"# Staff handbook\n\nGreen tea steeps at 80 degrees Celsius for two minutes; black tea "
    b"takes boiling water and four minutes.\n\nThe office closes on the first Monday of August."
)
DATA_BYTES = b"x\n1\n7.4\n4.2\n"
SCAN_BYTES = bytes(range(256)) * 4  # what OpenAI could not read (a failed file)
BYTES = {DOC: DOC_BYTES, DATA: DATA_BYTES, SCAN: SCAN_BYTES}


def file_object(file_id: str, filename: str, created_at: int, **fields: Any) -> FileObject:
    return FileObject.model_validate(
        {
            "id": file_id,
            "object": "file",
            "bytes": len(BYTES.get(file_id, b"")),
            "created_at": created_at,
            "filename": filename,
            "purpose": "assistants",
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }
        | fields
    )


def store(store_id: str = STORE, **fields: Any) -> VectorStore:
    return VectorStore.model_validate(
        {
            "id": store_id,
            "object": "vector_store",
            "created_at": T + 3,
            "name": "Handbooks",
            "usage_bytes": 41_233,
            "file_counts": {
                "in_progress": 0,
                "completed": 1,
                "failed": 1,
                "cancelled": 0,
                "total": 2,
            },
            "status": "completed",
            "expires_after": None,
            "expires_at": None,
            "last_active_at": T + 9,
            "metadata": {"team": "people"},
        }
        | fields
    )


def store_file(file_id: str, store_id: str = STORE, **fields: Any) -> VectorStoreFile:
    return VectorStoreFile.model_validate(
        {
            "id": file_id,
            "object": "vector_store.file",
            "created_at": T + 4,
            "last_error": None,
            "status": "completed",
            "usage_bytes": 40_117,
            "vector_store_id": store_id,
            "attributes": {"lang": "en", "year": 2024, "public": True},
            "chunking_strategy": {
                "type": "static",
                "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
            },
        }
        | fields
    )


def failed_store_file() -> VectorStoreFile:
    return store_file(
        SCAN,
        status="failed",
        usage_bytes=0,
        attributes={},
        last_error={"code": "unsupported_file", "message": "The file type is not supported."},
    )


def batch() -> VectorStoreFileBatch:
    return VectorStoreFileBatch.model_validate(
        {
            "id": BATCH,
            "object": "vector_store.files_batch",
            "created_at": T + 4,
            "vector_store_id": STORE,
            "status": "completed",
            "file_counts": {
                "in_progress": 0,
                "completed": 1,
                "failed": 1,
                "cancelled": 0,
                "total": 2,
            },
        }
    )


def file_dump() -> list[BaseModel]:
    """The Files (their bytes are beside the dump, see `write_bytes`), a store with a file that
    was searchable and one that failed, and what `list()` of the store's batches gave."""
    return [
        file_object(DOC, "handbook.md", T + 1),
        file_object(DATA, "data.csv", T + 2),
        file_object(SCAN, "scan.png", T + 2, purpose="user_data"),
        store(),
        store_file(DOC),
        failed_store_file(),
        batch(),
    ]


def write_bytes(dump: Path) -> None:
    """Each File's bytes in one of the places the importer looks: `DUMP.files/<id>` (what
    export writes), `files/<id>` beside the dump, and `<id>` beside it."""
    places = [
        dump.with_name(dump.name + ".files") / DOC,
        dump.parent / "files" / DATA,
        dump.parent / SCAN,
    ]
    for place in places:
        place.parent.mkdir(parents=True, exist_ok=True)
        place.write_bytes(BYTES[place.name])
