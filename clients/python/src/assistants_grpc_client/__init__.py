"""Python client of assistants-grpc: the OpenAI Assistants API (v2) over gRPC.

```python
from assistants_grpc_client import Client

with Client("127.0.0.1:50051") as client:
    assistant = client.assistants.create(model="gpt-4o", name="Helper")
    thread = client.threads.create()
    client.messages.create(thread.id, role="user", content="Hello!")
    for text in client.runs.stream(thread.id, assistant.id).text_deltas():
        print(text, end="")
```

Methods return the generated messages of `assistants_grpc_client.v1` (`*_pb2`), where the stubs
are too.
"""

from assistants_grpc_client._client import AsyncClient, Client
from assistants_grpc_client._errors import (
    AbortedError,
    AlreadyExistsError,
    AssistantsError,
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    StreamEndedError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
)
from assistants_grpc_client._function_tool import FunctionTool, function_tool
from assistants_grpc_client._pagination import AsyncCursorPage, AsyncPaginator, SyncCursorPage
from assistants_grpc_client._runner import AsyncToolRunStream, ToolRunResult, ToolRunStream
from assistants_grpc_client._status import ErrorInfo, FieldViolation
from assistants_grpc_client._streaming import AsyncRunStream, RunStream
from assistants_grpc_client._tools import ToolCallError

__all__ = [
    "AbortedError",
    "AlreadyExistsError",
    "AssistantsError",
    "AsyncClient",
    "AsyncCursorPage",
    "AsyncPaginator",
    "AsyncRunStream",
    "AsyncToolRunStream",
    "Client",
    "DeadlineExceededError",
    "ErrorInfo",
    "FailedPreconditionError",
    "FieldViolation",
    "FunctionTool",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "RunStream",
    "StreamEndedError",
    "SyncCursorPage",
    "ToolCallError",
    "ToolRunResult",
    "ToolRunStream",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "function_tool",
]
