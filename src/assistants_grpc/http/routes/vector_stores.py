"""`/v1/vector_stores` (CONTRACT.md §12): stores, their files, file batches and search, each a
call of the VectorStoreService rendered through `contract/openai_json.py`.

A vector-store file or batch read with GET tells the SDK's poller when to look again
(`openai-poll-after-ms`), as a run does: `create_and_poll` / `upload_and_poll` otherwise sleep
a whole second between polls while a small file is often ingested within milliseconds.
"""

from __future__ import annotations

from starlette.types import ASGIApp

from assistants_grpc.contract.pb import vector_store_pb2 as V
from assistants_grpc.http.call import Call
from assistants_grpc.http.routes.assistants import LIST_QUERY
from assistants_grpc.http.routes.runs import POLL_AFTER_MS
from assistants_grpc.http.routes.table import Route

STORE = "/vector_stores/{vector_store_id}"
FILES = STORE + "/files"
FILE = FILES + "/{file_id}"
BATCHES = STORE + "/file_batches"
BATCH = BATCHES + "/{batch_id}"
FILES_QUERY = LIST_QUERY | {"filter"}


async def create(call: Call) -> ASGIApp:
    request = call.parse(V.CreateVectorStoreRequest)
    return call.respond(await call.services.vector_stores.create(call.project, request))


async def list_(call: Call) -> ASGIApp:
    request = call.parse(V.ListVectorStoresRequest, query=LIST_QUERY)
    return call.respond(await call.services.vector_stores.list(call.project, request))


async def get(call: Call) -> ASGIApp:
    request = call.parse(V.GetVectorStoreRequest)
    stores = call.services.vector_stores
    return call.respond(await stores.get(call.project, request.vector_store_id))


async def update(call: Call) -> ASGIApp:
    request = call.parse(V.UpdateVectorStoreRequest)
    return call.respond(await call.services.vector_stores.update(call.project, request))


async def delete(call: Call) -> ASGIApp:
    request = call.parse(V.DeleteVectorStoreRequest)
    stores = call.services.vector_stores
    return call.respond(await stores.delete(call.project, request.vector_store_id))


async def search(call: Call) -> ASGIApp:
    request = call.parse(V.SearchVectorStoreRequest)
    return call.respond(await call.services.vector_stores.search(call.project, request))


async def create_file(call: Call) -> ASGIApp:
    request = call.parse(V.CreateVectorStoreFileRequest)
    return call.respond(await call.services.vector_stores.create_file(call.project, request))


async def list_files(call: Call) -> ASGIApp:
    request = call.parse(V.ListVectorStoreFilesRequest, query=FILES_QUERY)
    return call.respond(await call.services.vector_stores.list_files(call.project, request))


async def get_file(call: Call) -> ASGIApp:
    request = call.parse(V.GetVectorStoreFileRequest)
    stores = call.services.vector_stores
    file = await stores.get_file(call.project, request.vector_store_id, request.file_id)
    call.headers["openai-poll-after-ms"] = POLL_AFTER_MS
    return call.respond(file)


async def update_file(call: Call) -> ASGIApp:
    request = call.parse(V.UpdateVectorStoreFileRequest)
    return call.respond(await call.services.vector_stores.update_file(call.project, request))


async def delete_file(call: Call) -> ASGIApp:
    request = call.parse(V.DeleteVectorStoreFileRequest)
    stores = call.services.vector_stores
    deleted = await stores.delete_file(call.project, request.vector_store_id, request.file_id)
    return call.respond(deleted)


async def file_content(call: Call) -> ASGIApp:
    request = call.parse(V.GetVectorStoreFileContentRequest)
    stores = call.services.vector_stores
    content = await stores.file_content(call.project, request.vector_store_id, request.file_id)
    return call.respond(content)


async def create_batch(call: Call) -> ASGIApp:
    request = call.parse(V.CreateVectorStoreFileBatchRequest)
    return call.respond(await call.services.vector_stores.create_batch(call.project, request))


async def get_batch(call: Call) -> ASGIApp:
    request = call.parse(V.GetVectorStoreFileBatchRequest)
    stores = call.services.vector_stores
    batch = await stores.get_batch(call.project, request.vector_store_id, request.batch_id)
    call.headers["openai-poll-after-ms"] = POLL_AFTER_MS
    return call.respond(batch)


async def cancel_batch(call: Call) -> ASGIApp:
    request = call.parse(V.CancelVectorStoreFileBatchRequest)  # the SDK sends no body
    stores = call.services.vector_stores
    batch = await stores.cancel_batch(call.project, request.vector_store_id, request.batch_id)
    return call.respond(batch)


async def list_batch_files(call: Call) -> ASGIApp:
    request = call.parse(V.ListVectorStoreFileBatchFilesRequest, query=FILES_QUERY)
    return call.respond(await call.services.vector_stores.list_files(call.project, request))


ROUTES = (
    Route("POST", "/vector_stores", "createVectorStore", create),
    Route("GET", "/vector_stores", "listVectorStores", list_),
    Route("GET", STORE, "getVectorStore", get),
    Route("POST", STORE, "modifyVectorStore", update),
    Route("DELETE", STORE, "deleteVectorStore", delete),
    Route("POST", STORE + "/search", "searchVectorStore", search),
    Route("POST", FILES, "createVectorStoreFile", create_file),
    Route("GET", FILES, "listVectorStoreFiles", list_files),
    Route("GET", FILE, "getVectorStoreFile", get_file),
    Route("POST", FILE, "updateVectorStoreFileAttributes", update_file),
    Route("DELETE", FILE, "deleteVectorStoreFile", delete_file),
    Route("GET", FILE + "/content", "retrieveVectorStoreFileContent", file_content),
    Route("POST", BATCHES, "createVectorStoreFileBatch", create_batch),
    Route("GET", BATCH, "getVectorStoreFileBatch", get_batch),
    Route("POST", BATCH + "/cancel", "cancelVectorStoreFileBatch", cancel_batch),
    Route("GET", BATCH + "/files", "listFilesInVectorStoreBatch", list_batch_files),
)

__all__ = ["ROUTES"]
