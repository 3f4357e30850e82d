"""`code_interpreter`: model-written Python in a sandboxed Jupyter kernel, one per thread.

Modules, one thing each: `arguments` (the code decoded from streamed JSON arguments),
`sandbox` (the backend interface), `bwrap` (the bubblewrap backend), `seccomp`, `slots` (uids
and cgroups), `datadir` (/mnt/data from the server), `kernel` (the Jupyter protocol client),
`sessions` (one kernel per thread, expiry, eviction, replicas), `registry` (which replica holds
a thread's session), `files` (inputs and outputs as Files), `annotator` (sandbox links),
`executor` (the `ToolExecutor`).
"""

from assistants_grpc.tools.code_interpreter.executor import (
    CodeInterpreterExecutor,
    ExecutionLimits,
)
from assistants_grpc.tools.code_interpreter.sandbox import (
    Sandbox,
    SandboxLimits,
    SandboxUnavailableError,
)
from assistants_grpc.tools.code_interpreter.sessions import (
    RESET_NOTE,
    SessionManager,
    SessionSettings,
)

__all__ = [
    "RESET_NOTE",
    "CodeInterpreterExecutor",
    "ExecutionLimits",
    "Sandbox",
    "SandboxLimits",
    "SandboxUnavailableError",
    "SessionManager",
    "SessionSettings",
]
