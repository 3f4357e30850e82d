"""The HTTP face against OpenAI's own OpenAPI document (`../shared/openapi/openapi.yaml` from the
project root, or `ASSISTANTS_OPENAPI_DOCUMENT`): the route table is exactly its Assistants-era
operations that this face serves, and schemathesis sends generated requests to each of them and
checks every answer the document describes (its 200s) against the document's schema.

The document lists only 200 and 429 responses, so the status-code check is off (our 400s and
404s are OpenAI's envelope, tested elsewhere); no answer may be a 5xx. Path ids are real ids, so
reads return real objects to check; `stream` is forced off (the document has no SSE bodies).
Example counts are bounded so this runs in CI in reasonable time.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx2
import pytest

from assistants_grpc.clock import ManualClock
from assistants_grpc.fake_model import FakeModelServer
from assistants_grpc.http.app import PREFIX
from assistants_grpc.http.routes import ROUTES
from tests.conftest import start_server

ROOT: Final = Path(__file__).resolve().parents[2]
DOCUMENT: Final = Path(
    os.environ.get(
        "ASSISTANTS_OPENAPI_DOCUMENT", ROOT.parent / "shared" / "openapi" / "openapi.yaml"
    )
)
# The Assistants-era families of the document, by tag, and how many operations each has.
FAMILIES: Final = {"Assistants": 23, "Files": 5, "Vector stores": 16}
EXAMPLES: Final = int(os.environ.get("ASSISTANTS_SCHEMATHESIS_EXAMPLES", "8"))

pytestmark = pytest.mark.skipif(
    not DOCUMENT.exists(),
    reason=f"OpenAI's OpenAPI document is not at {DOCUMENT} (../shared/openapi/openapi.yaml "
    "from the project root, or ASSISTANTS_OPENAPI_DOCUMENT)",
)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with DOCUMENT.open() as stream:
        loaded: dict[str, Any] = yaml.load(stream, Loader=loader)
    return loaded


def _operations(document: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    """operationId -> (METHOD, path, tag) of the Assistants-era operations."""
    found = {}
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            tags = operation.get("tags", []) if isinstance(operation, dict) else []
            if tags and tags[0] in FAMILIES:
                found[operation["operationId"]] = (method.upper(), path, tags[0])
    return found


def test_the_route_table_is_the_documents_operations(document: dict[str, Any]) -> None:
    operations = _operations(document)
    counted = {tag: sum(1 for *_, t in operations.values() if t == tag) for tag in FAMILIES}
    assert counted == FAMILIES  # the 44 Assistants-era operations
    served = {route.operation: (route.method, route.path) for route in ROUTES}
    for operation_id, (method, path) in served.items():
        assert operations[operation_id][:2] == (method, path), operation_id
    # Every one is served: assistants, threads, messages, runs, steps, files, vector stores.
    assert set(operations) == set(served)


@dataclass
class _Served:
    """A server on its own thread and loop: schemathesis calls are synchronous."""

    base_url: str = ""
    ids: dict[str, str] = field(default_factory=dict)
    ready: threading.Event = field(default_factory=threading.Event)
    stop: asyncio.Event | None = None
    loop: asyncio.AbstractEventLoop | None = None
    error: BaseException | None = None


def _serve(served: _Served, database_url: str) -> None:
    async def main() -> None:
        async with FakeModelServer() as model:
            server = await start_server(
                database_url, ManualClock(), model, http=True, auth="disabled"
            )
            try:
                served.base_url = f"http://127.0.0.1:{server.http_port}"
                served.loop = asyncio.get_running_loop()
                served.stop = asyncio.Event()
                served.ready.set()
                await served.stop.wait()
            finally:
                await server.stop(0)

    try:
        asyncio.run(main())
    except BaseException as error:
        served.error = error
        served.ready.set()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Served]:
    served = _Served()
    database = tmp_path_factory.mktemp("openapi") / "a.db"
    thread = threading.Thread(target=_serve, args=(served, f"sqlite:///{database}"), daemon=True)
    thread.start()
    assert served.ready.wait(60) and served.error is None, served.error
    served.ids = _objects(served.base_url)
    try:
        yield served
    finally:
        assert served.loop is not None and served.stop is not None
        served.loop.call_soon_threadsafe(served.stop.set)
        thread.join(30)


def _objects(base_url: str) -> dict[str, str]:
    """One of each object, a finished run with its steps, a File in a vector store and a file
    batch: what path ids point at."""
    with httpx2.Client(base_url=base_url + PREFIX, timeout=30) as client:
        upload = client.post(
            "/files",
            data={"purpose": "assistants"},
            files={"file": ("notes.md", b"# Notes\n\nThe schema check reads this file.\n")},
        )
        assert upload.status_code == 200, upload.text
        file_id = upload.json()["id"]
        store_id = client.post("/vector_stores", json={"file_ids": [file_id]}).json()["id"]
        batch = client.post(f"/vector_stores/{store_id}/file_batches", json={"file_ids": [file_id]})
        assert batch.status_code == 200, batch.text
        assistant = client.post("/assistants", json={"model": "gpt-4o"}).json()
        thread = client.post(
            "/threads", json={"messages": [{"role": "user", "content": "hello"}]}
        ).json()
        run = client.post(
            f"/threads/{thread['id']}/runs", json={"assistant_id": assistant["id"], "stream": True}
        )
        assert run.status_code == 200
        run_id = client.get(f"/threads/{thread['id']}/runs").json()["data"][0]["id"]
        step = client.get(f"/threads/{thread['id']}/runs/{run_id}/steps").json()["data"][0]
        message = client.get(f"/threads/{thread['id']}/messages").json()["data"][0]
    return {
        "assistant_id": assistant["id"],
        "thread_id": thread["id"],
        "run_id": run_id,
        "step_id": step["id"],
        "message_id": message["id"],
        "file_id": file_id,
        "vector_store_id": store_id,
        "batch_id": batch.json()["id"],
    }


def _with_known_deviations(document: dict[str, Any]) -> dict[str, Any]:
    """The document, allowing the two nulls this service sends on purpose:

    - `first_id`/`last_id` of an empty page: the document types them as strings, but there is
      no id to give (CONTRACT.md §1: "make them nullable");
    - a tool's entry of `tool_resources` (`code_interpreter`, `file_search`) when that tool has
      none: every key of an object is rendered, unset ones as null (`contract/openai_json.py`),
      as the SDK's own objects dump them too;
    - for the same reason a File's `expires_at` (no expiry) and deprecated `status_details`, and
      a vector store's `expires_after` (no policy; CONTRACT.md §12: `{anchor, days}|null`),
      which the document lists as optional but not nullable.
    """
    schemas = document["components"]["schemas"]
    for name, schema in schemas.items():
        properties = schema.get("properties", {})
        if name.startswith("List") and name.endswith("Response"):
            for key in ("first_id", "last_id"):
                if key in properties:
                    properties[key] = {"anyOf": [properties[key], {"type": "null"}]}
        resources = properties.get("tool_resources", {})
        for option in resources.get("anyOf", [resources]):
            for key, value in option.get("properties", {}).items():
                if key in ("code_interpreter", "file_search"):
                    option["properties"][key] = {"anyOf": [value, {"type": "null"}]}
    for name, key in _OPTIONAL_AS_NULL:
        properties = schemas[name]["properties"]
        properties[key] = {"anyOf": [properties[key], {"type": "null"}]}
    return document


_OPTIONAL_AS_NULL: Final = (
    ("OpenAIFile", "expires_at"),
    ("OpenAIFile", "status_details"),
    ("VectorStoreObject", "expires_after"),
)


@pytest.fixture(scope="module")
def schema(document: dict[str, Any]) -> Any:
    import schemathesis

    return schemathesis.openapi.from_dict(_with_known_deviations(document))


@pytest.mark.timeout(600)
@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.operation)
def test_answers_conform_to_the_document(served: _Served, schema: Any, route: Any) -> None:
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance

    (result,) = list(schema.include(operation_id=route.operation).get_all_operations())
    operation = result.ok()
    conforming = 0

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        nonlocal conforming
        if case.path_parameters:
            # A delete gets objects of its own, so the others keep theirs.
            ids = _objects(served.base_url) if route.method == "DELETE" else served.ids
            case.path_parameters = {
                name: ids.get(name, value) for name, value in case.path_parameters.items()
            }
        if isinstance(case.body, dict) and "stream" in case.body:
            case.body["stream"] = False
        response = case.call(base_url=served.base_url + PREFIX)
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
        conforming += response.status_code == 200

    check()
    if route.method in ("GET", "DELETE"):
        # Real ids: reads and deletes answered real objects, which the schema then checked.
        assert conforming > 0
