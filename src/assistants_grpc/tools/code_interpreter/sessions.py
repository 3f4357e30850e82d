"""Code sessions: one kernel per thread, kept between calls and runs, ended by rule.

- A thread's kernel keeps its variables between calls and between runs of the thread. It ends
  after `idle_seconds` without a call or `max_age_seconds` after it started (the injected
  clock; checked at every call and by `sweep`, which the server runs periodically), when its
  kernel dies, when DeleteThread calls `end_thread`, or when it is evicted to make room.
- At most `max_sessions` live at once. A new one past the cap evicts the least recently used
  idle one; when every one is executing, the call is told `SessionsBusyError` at once rather
  than queued behind code that may run for minutes.
- A call that finds its thread's earlier session gone gets a fresh kernel and a reset note in
  the words models are trained on ("Code execution state reset."), with the reason.
- Several replicas: the registry (`registry.py`, one row per thread) says which replica holds
  a thread's session. A call landing elsewhere starts a fresh kernel there and takes the row
  over; the old holder notices at its next `sweep` (or its next call for the thread) that the
  row is no longer its own and stops its kernel. A dead replica's row is simply taken over.
- A warm pool (`warm` kernels, `--code-interpreter-warm`): kernels started ahead, each in a uid
  slot of its own, so a new thread's first call does not wait for a kernel to start (bwrap,
  Python and ipykernel's imports: a few hundred milliseconds, more on a busy machine). A pool
  kernel has run no code but the start-up handshake (`kernel_info_request`), its `/mnt/data` is
  the empty tmpfs of its own sandbox, and the executor copies the session's input files in
  after hand-out exactly as for a kernel started on demand: it is indistinguishable from one.
  A kernel is handed out once, never back to the pool; each hand-out starts a replacement in
  the background. Pool kernels count toward the cap on live kernels (a full pool never evicts
  a session: it only fills into free room, and is the first thing given up when room is
  needed); they stop with the manager, and die with the server as every sandbox does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Protocol

from assistants_grpc.clock import Clock
from assistants_grpc.tools.code_interpreter.kernel import KernelClient
from assistants_grpc.tools.code_interpreter.sandbox import Sandbox, SandboxedKernel

log = logging.getLogger(__name__)

RESET_NOTE = "Code execution state reset."


class SessionsBusyError(Exception):
    """Every session is executing and the cap is reached."""


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A thread's session as the registry knows it."""

    replica: str
    session_id: str
    ended_reason: str | None = None


class SessionRegistry(Protocol):
    """Where a thread's session lives, shared by the replicas."""

    async def begin(self, thread_id: str, replica: str, session_id: str) -> SessionRecord | None:
        """Record a new session of the thread here; the record it replaces, if any."""
        ...

    async def end(self, thread_id: str, session_id: str, reason: str) -> None:
        """The session ended (if the record is still this session's)."""
        ...

    async def not_held(self, replica: str, sessions: dict[str, str]) -> set[str]:
        """Of `sessions` (thread id -> session id held here), the threads whose record now
        names another session (taken over elsewhere) or none (the thread was deleted)."""
        ...

    async def forget(self, thread_id: str) -> None: ...


class MemoryRegistry:
    """A registry for one process (tests, and the server without a shared database)."""

    def __init__(self) -> None:
        self.records: dict[str, SessionRecord] = {}

    async def begin(self, thread_id: str, replica: str, session_id: str) -> SessionRecord | None:
        previous = self.records.get(thread_id)
        self.records[thread_id] = SessionRecord(replica, session_id)
        return previous

    async def end(self, thread_id: str, session_id: str, reason: str) -> None:
        record = self.records.get(thread_id)
        if record is not None and record.session_id == session_id:
            self.records[thread_id] = SessionRecord(record.replica, session_id, reason)

    async def not_held(self, replica: str, sessions: dict[str, str]) -> set[str]:
        return {
            thread_id
            for thread_id, session_id in sessions.items()
            if (record := self.records.get(thread_id)) is None or record.session_id != session_id
        }

    async def forget(self, thread_id: str) -> None:
        self.records.pop(thread_id, None)


@dataclass
class CodeSession:
    """A thread's live kernel and what the server knows about its /mnt/data."""

    thread_id: str
    session_id: str
    kernel: SandboxedKernel
    client: KernelClient
    started_at: float
    last_used: float
    inputs: set[str] = field(default_factory=set)
    """Input file ids already copied into /mnt/data."""
    outputs: dict[str, str] = field(default_factory=dict)
    """Path under /mnt/data -> id of the File made of what the code wrote there."""
    seen: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    """Path -> (size, mtime, inode) at the last look, to find what a call wrote."""
    reset_note: str | None = None
    """Said in the output of the session's first call, when an earlier session was lost."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    executing: int = 0
    ended: bool = False


@dataclass
class WarmKernel:
    """A started, answering kernel in the pool, not handed out yet."""

    kernel: SandboxedKernel
    client: KernelClient


@dataclass(frozen=True)
class SessionSettings:
    idle_seconds: float = 20 * 60
    max_age_seconds: float = 60 * 60
    max_sessions: int = 32
    start_timeout: float = 30.0
    warm: int = 0
    """Kernels kept started ahead for new sessions (the server's default is config's)."""


def _minutes(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:g} minute{'s' if minutes != 1 else ''}"


class SessionManager:
    def __init__(
        self,
        sandbox: Sandbox,
        clock: Clock,
        *,
        replica: str,
        settings: SessionSettings | None = None,
        registry: SessionRegistry | None = None,
        client_factory: Callable[[SandboxedKernel], KernelClient] | None = None,
    ) -> None:
        self._sandbox = sandbox
        self._clock = clock
        self.replica = replica
        self.settings = settings or SessionSettings()
        self.registry: SessionRegistry = registry or MemoryRegistry()
        self._client_factory = client_factory or (lambda k: KernelClient(k.urls, k.key))
        self._sessions: OrderedDict[str, CodeSession] = OrderedDict()
        self._starting = 0
        self._thread_locks: dict[str, asyncio.Lock] = {}
        self._closed = False
        self._pool: list[WarmKernel] = []
        self._fills: set[asyncio.Task[None]] = set()
        self._pool_on = False
        self._waiting = 0
        """New sessions waiting for a pool kernel being started."""
        self.handed_out = 0
        """Sessions that got a pool kernel (the rest started one on demand)."""

    @property
    def sandbox(self) -> Sandbox:
        return self._sandbox

    @property
    def live(self) -> int:
        return len(self._sessions)

    @property
    def warm(self) -> int:
        """Pool kernels ready now."""
        return len(self._pool)

    def warm_kernels(self) -> list[SandboxedKernel]:
        """The pool's kernels, oldest first (tests, bench)."""
        return [warm.kernel for warm in self._pool]

    @property
    def _cap(self) -> int:
        return min(self.settings.max_sessions, self._sandbox.capacity)

    def _kernels(self) -> int:
        """Kernels held or being started: sessions, pool, both kinds of start."""
        return len(self._sessions) + self._starting + len(self._pool) + len(self._fills)

    def session_of(self, thread_id: str) -> CodeSession | None:
        return self._sessions.get(thread_id)

    # --- one call ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def use(self, thread_id: str) -> AsyncIterator[CodeSession]:
        """The thread's session for one execution, started if needed; its lock held, so calls
        of one thread run one at a time. SessionsBusyError when no kernel can be had."""
        thread_lock = self._thread_locks.setdefault(thread_id, asyncio.Lock())
        async with thread_lock:
            session = await self._current(thread_id)
        session.executing += 1
        try:
            async with session.lock:
                yield session
        finally:
            session.executing -= 1
            session.last_used = self._clock.now()
            session.reset_note = None

    async def _current(self, thread_id: str) -> CodeSession:
        session = self._sessions.get(thread_id)
        reason: str | None = None
        if session is not None:
            reason = self._expired(session)
            if reason is None and not await self._still_held(session):
                reason = "it was moved to another server"
            if reason is not None:
                await self._end(session, reason)
            else:
                self._sessions.move_to_end(thread_id)
                return session
        return await self._start(thread_id, reason)

    def _expired(self, session: CodeSession) -> str | None:
        now = self._clock.now()
        if session.kernel.exited.done():
            return "its kernel stopped (it crashed or ran out of memory)"
        if session.executing:
            return None
        if now - session.last_used >= self.settings.idle_seconds:
            return f"it was idle for more than {_minutes(self.settings.idle_seconds)}"
        if now - session.started_at >= self.settings.max_age_seconds:
            return (
                f"it reached the maximum session age of {_minutes(self.settings.max_age_seconds)}"
            )
        return None

    async def _still_held(self, session: CodeSession) -> bool:
        gone = await self.registry.not_held(self.replica, {session.thread_id: session.session_id})
        return session.thread_id not in gone

    async def _start(self, thread_id: str, reason: str | None) -> CodeSession:
        if self._closed:
            raise SessionsBusyError("the server is shutting down")
        warm = await self._take_warm()
        if warm is None:
            warm = await self._make_room()
        if warm is not None:
            kernel, client = warm.kernel, warm.client
            self.handed_out += 1
        else:
            self._starting += 1
            try:
                kernel, client = await self._new_kernel()
            finally:
                self._starting -= 1
        now = self._clock.now()
        session = CodeSession(
            thread_id=thread_id,
            session_id=secrets.token_hex(8),
            kernel=kernel,
            client=client,
            started_at=now,
            last_used=now,
        )
        self._sessions[thread_id] = session
        self._refill()  # counted as a session now: the pool fills only into free room
        try:
            previous = await self.registry.begin(thread_id, self.replica, session.session_id)
        except BaseException:
            await self._end(session, "it could not be registered")
            raise
        if reason is None and previous is not None:
            if previous.ended_reason is not None:
                reason = previous.ended_reason
            elif previous.replica != self.replica:
                reason = "it was on another server, which stopped or handed the thread over"
            else:
                reason = "the server restarted"
        if reason is not None:
            session.reset_note = (
                f"{RESET_NOTE} The previous session ended because {reason}: variables, imports "
                "and files it wrote are gone (input files are in /mnt/data again). Re-run any "
                "code the next steps depend on."
            )
        log.info("code session of %s started (%s)", thread_id, kernel.description)
        return session

    async def _new_kernel(self) -> tuple[SandboxedKernel, KernelClient]:
        kernel = await self._sandbox.start()
        client: KernelClient | None = None
        try:
            client = self._client_factory(kernel)
            await client.wait_ready(self.settings.start_timeout)
        except BaseException:
            # Cancelled (the server stopping while a pool kernel starts) or not ready in time:
            # its sockets are closed here, or they would be left to the garbage collector.
            if client is not None:
                client.close()
            await kernel.kill()
            raise
        return kernel, client

    # --- the warm pool ----------------------------------------------------------------------

    async def _take_warm(self) -> WarmKernel | None:
        """A ready pool kernel; when none is ready but one is starting that no other new
        session waits for already, that one (it is further along than a kernel started now
        would be). None: start one on demand (a burst of new threads starts its kernels side
        by side rather than one after another)."""
        while True:
            while self._pool:
                warm = self._pool.pop(0)
                if not warm.kernel.exited.done():
                    return warm
                await self._discard(warm)
            if len(self._fills) <= self._waiting:
                return None
            self._waiting += 1
            try:
                await asyncio.wait(set(self._fills), return_when=asyncio.FIRST_COMPLETED)
            finally:
                self._waiting -= 1

    def start_pool(self) -> None:
        """Keep `warm` kernels started ahead from now on (the server calls it once the sandbox
        is known to work: before, or when it does not, no kernel is started for the pool)."""
        self._pool_on = True
        self._refill()

    def _refill(self) -> None:
        """Start pool kernels in the background until `warm` are ready or starting, within the
        cap on kernels (never by evicting a session)."""
        if self._closed or not self._pool_on:
            return
        wanted = self.settings.warm
        while len(self._pool) + len(self._fills) < wanted and self._kernels() < self._cap:
            task = asyncio.create_task(self._fill(), name="code-warm-kernel")
            self._fills.add(task)
            task.add_done_callback(self._fills.discard)

    async def _fill(self) -> None:
        try:
            kernel, client = await self._new_kernel()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            # Retried at the next hand-out, session end or sweep, not at once.
            log.warning("a warm code kernel did not start: %s", error)
            return
        warm = WarmKernel(kernel, client)
        if self._closed:
            await self._discard(warm)
            return
        self._pool.append(warm)

    async def _discard(self, warm: WarmKernel) -> None:
        warm.client.close()
        await warm.kernel.kill()

    async def wait_warm(self) -> None:
        """Until the pool kernels being started are (tests, bench)."""
        while self._fills:
            await asyncio.wait(set(self._fills))

    async def _make_room(self) -> WarmKernel | None:
        """Room for one more kernel, evicting the least recently used idle session if need
        be; or a pool kernel that became ready meanwhile (then no room is needed)."""
        cap = self._cap
        while self._kernels() >= cap:
            if self._pool:
                warm = self._pool.pop(0)
                if not warm.kernel.exited.done():
                    return warm
                await self._discard(warm)
                continue
            victim = next(
                (s for s in self._sessions.values() if not s.executing and not s.lock.locked()),
                None,
            )
            if victim is None:
                if self._fills:  # a pool kernel is starting: it is the room, wait for it
                    await asyncio.wait(set(self._fills), return_when=asyncio.FIRST_COMPLETED)
                    continue
                raise SessionsBusyError(
                    f"all {cap} code sessions are executing code; try again in a moment"
                )
            await self._end(
                victim, "it was the least recently used one when room was needed", refill=False
            )
        return None

    # --- ending -----------------------------------------------------------------------------

    async def _end(self, session: CodeSession, reason: str, *, refill: bool = True) -> None:
        if session.ended:
            return
        session.ended = True
        if self._sessions.get(session.thread_id) is session:
            del self._sessions[session.thread_id]
        log.info("code session of %s ended: %s", session.thread_id, reason)
        session.client.close()
        await session.kernel.kill()
        with contextlib.suppress(Exception):
            await self.registry.end(session.thread_id, session.session_id, reason)
        if refill:
            self._refill()

    async def end_thread(self, thread_id: str) -> None:
        """DeleteThread: the thread's kernel stops (here) and its record goes (everywhere:
        a replica holding it stops it at its next sweep)."""
        session = self._sessions.get(thread_id)
        if session is not None:
            session.ended = True
            self._sessions.pop(thread_id, None)
            session.client.close()
            await session.kernel.kill()
        self._thread_locks.pop(thread_id, None)
        await self.registry.forget(thread_id)
        self._refill()

    async def kill_session(self, session: CodeSession, reason: str) -> None:
        """Stop a session now (a call's code would not stop); the next call starts afresh."""
        await self._end(session, reason)

    async def sweep(self) -> int:
        """End expired sessions and those another replica took over; how many ended."""
        ended = 0
        for session in list(self._sessions.values()):
            reason = self._expired(session)
            if reason is not None:
                await self._end(session, reason)
                ended += 1
        held = {s.thread_id: s.session_id for s in self._sessions.values() if not s.executing}
        if held:
            for thread_id in await self.registry.not_held(self.replica, held):
                moved = self._sessions.get(thread_id)
                if moved is not None and not moved.executing:
                    # Not registered again: the record is someone else's now (or gone).
                    moved.ended = True
                    del self._sessions[thread_id]
                    log.info("code session of %s ended: held elsewhere now", thread_id)
                    moved.client.close()
                    await moved.kernel.kill()
                    ended += 1
        for warm in [w for w in self._pool if w.kernel.exited.done()]:
            log.warning("a warm code kernel stopped before it was used; replacing it")
            self._pool.remove(warm)
            await self._discard(warm)
        self._refill()
        return ended

    async def close(self) -> None:
        """Shutdown: every kernel stops, the pool's too."""
        self._closed = True
        for task in list(self._fills):
            task.cancel()
        for task in list(self._fills):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        while self._pool:
            await self._discard(self._pool.pop())
        for session in list(self._sessions.values()):
            await self._end(session, "the server stopped", refill=False)


__all__ = [
    "RESET_NOTE",
    "CodeSession",
    "MemoryRegistry",
    "SessionManager",
    "SessionRecord",
    "SessionRegistry",
    "SessionSettings",
    "SessionsBusyError",
    "WarmKernel",
]
