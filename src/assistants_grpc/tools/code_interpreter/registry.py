"""`SessionRegistry` in the database (`code_sessions`, one row per thread): the replicas'
shared knowledge of where each thread's kernel lives.

A thread has at most one active run, so at most one replica executes its calls at a time; a
row is only ever taken over by the replica now running the thread. The statements are built
once (store/repository.py says why).
"""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from assistants_grpc.clock import Clock
from assistants_grpc.store import repository as repo
from assistants_grpc.store.database import Database
from assistants_grpc.tools.code_interpreter.sessions import SessionRecord

_T = repo.CODE_SESSIONS
_GET = select(_T.c.replica, _T.c.session_id, _T.c.ended_reason).where(
    _T.c.thread_id == bindparam("thread_id")
)
_INSERT = insert(_T)
_TAKE_OVER = (
    update(_T)
    .where(_T.c.thread_id == bindparam("b_thread_id"))
    .values(
        replica=bindparam("b_replica"),
        session_id=bindparam("b_session_id"),
        started_at=bindparam("b_started_at"),
        ended_reason=None,
    )
)
_END = (
    update(_T)
    .where(_T.c.thread_id == bindparam("b_thread_id"), _T.c.session_id == bindparam("b_session_id"))
    .values(ended_reason=bindparam("b_reason"))
)
_HELD = select(_T.c.thread_id, _T.c.session_id).where(
    _T.c.thread_id.in_(bindparam("thread_ids", expanding=True))
)
_FORGET = delete(_T).where(_T.c.thread_id == bindparam("thread_id"))


class DatabaseRegistry:
    def __init__(self, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock

    async def begin(self, thread_id: str, replica: str, session_id: str) -> SessionRecord | None:
        now = int(self._clock.now())

        def work(connection: Connection) -> SessionRecord | None:
            row = connection.execute(_GET, {"thread_id": thread_id}).first()
            values = {
                "thread_id": thread_id,
                "replica": replica,
                "session_id": session_id,
                "started_at": now,
            }
            if row is None:
                connection.execute(_INSERT, values)
                return None
            connection.execute(_TAKE_OVER, {f"b_{k}": v for k, v in values.items()})
            return SessionRecord(row.replica, row.session_id, row.ended_reason)

        return await self._database.transaction(work)

    async def end(self, thread_id: str, session_id: str, reason: str) -> None:
        parameters = {
            "b_thread_id": thread_id,
            "b_session_id": session_id,
            "b_reason": reason[:500],
        }
        await self._database.transaction(lambda c: c.execute(_END, parameters))

    async def not_held(self, replica: str, sessions: dict[str, str]) -> set[str]:
        def work(connection: Connection) -> dict[str, str]:
            rows = connection.execute(_HELD, {"thread_ids": list(sessions)})
            return {row.thread_id: row.session_id for row in rows}

        current = await self._database.transaction(work)
        return {t for t, s in sessions.items() if current.get(t) != s}

    async def forget(self, thread_id: str) -> None:
        await self._database.transaction(lambda c: c.execute(_FORGET, {"thread_id": thread_id}))


__all__ = ["DatabaseRegistry"]
