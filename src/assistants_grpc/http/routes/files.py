"""`/v1/files` (CONTRACT.md §12): upload as multipart/form-data, streamed to storage through the
FileService's upload stream (`http/uploads.py`); the content is streamed back as it is read.

An upload's limits are the FileService's (`--max-file-bytes`, `--max-project-file-bytes`), not
`--max-request-bytes`: past the size limit it is OpenAI's 413, past the quota a 400, neither of
which the SDK retries; nothing is stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

from starlette.responses import StreamingResponse
from starlette.types import ASGIApp

from assistants_grpc.contract.pb import file_pb2 as F
from assistants_grpc.files.storage import FileLimitError
from assistants_grpc.http.call import Call
from assistants_grpc.http.errors import HttpError
from assistants_grpc.http.routes.table import Route
from assistants_grpc.http.uploads import FORM_OVERHEAD, upload_requests
from assistants_grpc.services.files import limit_error

LIST_QUERY: Final = frozenset({"purpose", "limit", "order", "after"})
CONTENT_TYPE: Final = "application/octet-stream"


async def create(call: Call) -> ASGIApp:
    if call.request.query_params:
        name = next(iter(call.request.query_params))
        raise HttpError(400, f"Unrecognized query parameter: {name}", param=name)
    files = call.services.files
    limit = files.storage.max_file_bytes
    length = call.request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit + FORM_OVERHEAD:
        # Surely past the size limit whatever the form around it: refused unread.
        error = FileLimitError(f"The file is larger than the limit of {limit} bytes.")
        raise limit_error(error)
    requests = upload_requests(call.request, max_file_bytes=limit)
    try:
        return call.respond(await files.upload(call.project, requests))
    finally:
        await requests.aclose()


async def list_(call: Call) -> ASGIApp:
    request = call.parse(F.ListFilesRequest, query=LIST_QUERY)
    return call.respond(await call.services.files.list(call.project, request))


async def get(call: Call) -> ASGIApp:
    request = call.parse(F.GetFileRequest)
    return call.respond(await call.services.files.get(call.project, request.file_id))


async def delete(call: Call) -> ASGIApp:
    request = call.parse(F.DeleteFileRequest)
    return call.respond(await call.services.files.delete(call.project, request.file_id))


async def content(call: Call) -> ASGIApp:
    """The bytes as they are read from storage; a missing file is a 404 before the 200."""
    request = call.parse(F.GetFileContentRequest)
    files = call.services.files
    file = await files.get(call.project, request.file_id)
    chunks = files.content(call.project, request.file_id)
    first = await anext(chunks, None)  # a file deleted meanwhile raises here: still a 404

    async def body() -> AsyncIterator[bytes]:
        try:
            if first is not None:
                yield first.data
            async for chunk in chunks:
                yield chunk.data
        finally:
            await chunks.aclose()

    headers = {**call.headers, "content-length": str(file.bytes)}
    return StreamingResponse(body(), headers=headers, media_type=CONTENT_TYPE)


ROUTES = (
    Route("POST", "/files", "createFile", create, own_body=True),
    Route("GET", "/files", "listFiles", list_),
    Route("GET", "/files/{file_id}", "retrieveFile", get),
    Route("DELETE", "/files/{file_id}", "deleteFile", delete),
    Route("GET", "/files/{file_id}/content", "downloadFile", content),
)

__all__ = ["ROUTES"]
