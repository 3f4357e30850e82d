"""A cancel racing the end of a turn is decided by the state table and the guarded write
(store/run_states.py): whichever commits first on the run wins, and no stream ever shows an
impossible sequence. Also: a cancel whose LISTEN/NOTIFY signal is lost is delivered by the
heartbeat, and a lease is judged by the injected lease clock (no real seconds to wait)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from sqlalchemy import create_engine, text, update

from assistants_grpc.clock import ManualClock
from assistants_grpc.contract.pb import message_pb2, run_pb2
from assistants_grpc.engine.executor import TurnHooks
from assistants_grpc.engine.server_tools import ToolRegistry
from assistants_grpc.events.signals import listener_name
from assistants_grpc.fake_model import FakeModelServer, TextReply, ToolCallsReply
from assistants_grpc.store.database import normalize_url
from assistants_grpc.store.repository import RUNS
from tests.conftest import POSTGRES_URL, RunningServer, serving
from tests.integration.echo_tools import EchoCode
from tests.integration.event_checks import check_run_log
from tests.integration.helpers import expect_error, text_input
from tests.integration.runs_helpers import (
    TERMINAL,
    WEATHER,
    collect,
    make_assistant,
    make_thread,
    names,
    start_hanging_run,
    wait_for_status,
)
from tests.integration.test_sdk_replay import replay
from tests.integration.test_server_tools import CODE

R = run_pb2


class PauseBeforeFinalWrite:
    """A TurnHooks.model_finished that holds every turn between the model's last chunk and its
    final write, until the test releases that run."""

    def __init__(self) -> None:
        self._events: dict[str, tuple[asyncio.Event, asyncio.Event]] = {}

    def _of(self, run_id: str) -> tuple[asyncio.Event, asyncio.Event]:
        return self._events.setdefault(run_id, (asyncio.Event(), asyncio.Event()))

    async def reached(self, run_id: str) -> None:
        await asyncio.wait_for(self._of(run_id)[0].wait(), 10)

    def release(self, run_id: str) -> None:
        self._of(run_id)[1].set()

    async def __call__(self, run_id: str) -> None:
        reached, release = self._of(run_id)
        reached.set()
        await release.wait()


@pytest.fixture
def pause() -> PauseBeforeFinalWrite:
    return PauseBeforeFinalWrite()


@pytest.fixture
async def paused_server(
    database_url: str, fake_model: FakeModelServer, pause: PauseBeforeFinalWrite
) -> AsyncIterator[RunningServer]:
    overrides = {"turn_hooks": TurnHooks(model_finished=pause)}
    async with serving(database_url, fake_model, overrides=overrides) as server:
        yield server


async def start_held_run(server: RunningServer, reply: Any) -> tuple[R.Run, Any, list[R.RunEvent]]:
    """A streaming run (its turn will be held before its final write): the run, its stream,
    and its first event."""
    stubs = server.stubs
    server.model.push(reply)
    assistant = await make_assistant(stubs, tools=[WEATHER])
    thread = await make_thread(stubs, "race")
    stream = stubs.runs.CreateRunStream(
        R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
    )
    first = await anext(aiter(stream))
    return first.run, stream, [first]


async def test_a_cancel_before_the_final_write_wins(
    paused_server: RunningServer, pause: PauseBeforeFinalWrite
) -> None:
    stubs = paused_server.stubs
    reply = TextReply("one two three four five six seven eight", chunks=8, chunk_delay=0.01)
    run, stream, seen = await start_held_run(paused_server, reply)
    await pause.reached(run.id)
    # The model has finished; the turn has not written its end. Cancel here.
    cancelling = await stubs.runs.CancelRun(
        R.CancelRunRequest(thread_id=run.thread_id, run_id=run.id)
    )
    assert cancelling.status == R.RUN_STATUS_CANCELLING
    pause.release(run.id)
    seen += await collect(stream)
    tail = names(seen)[names(seen).index("thread.run.cancelling") :]
    assert tail == [
        "thread.run.cancelling",
        "thread.message.incomplete",
        "thread.run.step.cancelled",
        "thread.run.cancelled",
        "done",
    ]
    check_run_log(seen)
    # The message is what was streamed before the cancel, nothing more: the SDK's rebuild of
    # the deltas equals the incomplete message.
    incomplete = next(e.message for e in seen if e.event == "thread.message.incomplete")
    assert incomplete.incomplete_details.reason == (
        message_pb2.MESSAGE_INCOMPLETE_REASON_RUN_CANCELLED
    )
    message, _ = replay(seen)
    assert message["content"][0]["text"]["value"] == incomplete.content[0].text.value  # type: ignore[index]
    final = await stubs.runs.GetRun(R.GetRunRequest(thread_id=run.thread_id, run_id=run.id))
    assert final.status == R.RUN_STATUS_CANCELLED


async def test_a_cancel_before_a_pause_wins_too(
    paused_server: RunningServer, pause: PauseBeforeFinalWrite
) -> None:
    """The turn was about to go to requires_action: the cancel ends it cancelled instead, and
    the tool step it would have opened is never shown."""
    stubs = paused_server.stubs
    reply = ToolCallsReply([("get_weather", '{"city": "Oslo"}')], text="Looking.")
    run, stream, seen = await start_held_run(paused_server, reply)
    await pause.reached(run.id)
    await stubs.runs.CancelRun(R.CancelRunRequest(thread_id=run.thread_id, run_id=run.id))
    pause.release(run.id)
    seen += await collect(stream)
    check_run_log(seen)
    assert names(seen)[-2:] == ["thread.run.cancelled", "done"]
    assert "thread.run.requires_action" not in names(seen)
    created = [e.run_step.type for e in seen if e.event == "thread.run.step.created"]
    assert R.RUN_STEP_TYPE_TOOL_CALLS not in created


async def test_a_cancel_after_the_final_write_is_refused(
    paused_server: RunningServer, pause: PauseBeforeFinalWrite
) -> None:
    stubs = paused_server.stubs
    run, stream, seen = await start_held_run(paused_server, TextReply("all of it"))
    await pause.reached(run.id)
    pause.release(run.id)
    seen += await collect(stream)
    assert names(seen)[-2:] == ["thread.run.completed", "done"]
    error = await expect_error(
        stubs.runs.CancelRun(R.CancelRunRequest(thread_id=run.thread_id, run_id=run.id)),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert error.details() == "Cannot cancel run with status 'completed'."
    check_run_log(seen)


async def test_a_cancel_racing_the_final_write_is_one_or_the_other(
    paused_server: RunningServer, pause: PauseBeforeFinalWrite
) -> None:
    """Released and cancelled at the same moment: whichever write commits first decides, and
    what the caller is told agrees with how the run ended."""
    stubs = paused_server.stubs
    outcomes = set()
    for _ in range(8):
        run, stream, seen = await start_held_run(paused_server, TextReply("a b c", chunks=3))
        await pause.reached(run.id)
        cancel = asyncio.ensure_future(
            stubs.runs.CancelRun(R.CancelRunRequest(thread_id=run.thread_id, run_id=run.id))
        )
        pause.release(run.id)
        results = await asyncio.gather(cancel, return_exceptions=True)
        seen += await collect(stream)
        check_run_log(seen)
        final = await wait_for_status(stubs, run.thread_id, run.id, *TERMINAL)
        if isinstance(results[0], R.Run):
            assert final.status == R.RUN_STATUS_CANCELLED
        else:
            assert isinstance(results[0], grpc.aio.AioRpcError)
            assert results[0].details() == "Cannot cancel run with status 'completed'."
            assert final.status == R.RUN_STATUS_COMPLETED
        outcomes.add(final.status)
    assert outcomes <= {R.RUN_STATUS_CANCELLED, R.RUN_STATUS_COMPLETED}


# --- 200 runs cancelled at random moments ------------------------------------------------------


def racing_responder(request: dict[str, Any]) -> Any:
    """Text, function calls or server-side calls, paced so a cancel lands anywhere."""
    messages = request.get("messages") or []
    if messages and messages[-1].get("role") == "tool":
        return TextReply("after the tools " * 3, chunks=4, chunk_delay=0.004)
    kind = random.random()
    if kind < 0.4:
        return TextReply("words of an answer " * 4, chunks=random.randint(1, 8), chunk_delay=0.004)
    if kind < 0.7:
        return ToolCallsReply([("python", '{"code": "print(1)"}')], fragments=2, chunk_delay=0.003)
    return ToolCallsReply(
        [("get_weather", '{"city": "Nice"}')], fragments=2, chunk_delay=0.003, text="Let me see."
    )


async def test_200_runs_cancelled_at_random_moments_all_take_legal_paths(
    database_url: str, fake_model: FakeModelServer
) -> None:
    registry = ToolRegistry([EchoCode()])
    fake_model.reset()
    fake_model.set_responder("racing", racing_responder)
    async with serving(
        database_url, fake_model, overrides={"tool_registry": registry}, reset_model=False
    ) as server:
        stubs = server.stubs
        assistant = await make_assistant(stubs, model="racing", tools=[CODE, WEATHER])
        limit = asyncio.Semaphore(16)
        rng = random.Random(11)

        async def one(i: int) -> tuple[str, int]:
            async with limit:
                run = await stubs.runs.CreateThreadAndRun(
                    R.CreateThreadAndRunRequest(
                        assistant_id=assistant.id,
                        thread=R.ThreadInput(messages=[text_input(f"run {i}")]),
                    )
                )
                await asyncio.sleep(rng.uniform(0, 0.06))
                try:
                    await stubs.runs.CancelRun(
                        R.CancelRunRequest(thread_id=run.thread_id, run_id=run.id)
                    )
                    accepted = True
                except grpc.aio.AioRpcError as error:
                    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
                    accepted = False
                final = await wait_for_status(
                    stubs,
                    run.thread_id,
                    run.id,
                    *TERMINAL,
                    R.RUN_STATUS_REQUIRES_ACTION,
                    timeout=60,
                )
                if final.status == R.RUN_STATUS_REQUIRES_ACTION:
                    # Paused before the cancel looked: cancel it there.
                    assert not accepted
                    await stubs.runs.CancelRun(
                        R.CancelRunRequest(thread_id=run.thread_id, run_id=run.id)
                    )
                    accepted = True
                    final = await wait_for_status(stubs, run.thread_id, run.id, *TERMINAL)
                log = await collect(
                    stubs.runs.WatchRun(R.WatchRunRequest(thread_id=run.thread_id, run_id=run.id))
                )
                path = check_run_log(log)
                # A cancel accepted is a cancel that wins; one refused found the run ended.
                assert (final.status == R.RUN_STATUS_CANCELLED) == accepted, path
                return run.id, final.status

        results = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(200))), 300)
        statuses = [status for _, status in results]
        assert len(statuses) == 200
        # The moments were spread enough to see both outcomes.
        assert statuses.count(R.RUN_STATUS_CANCELLED) > 20


# --- a cancel whose signal is lost -------------------------------------------------------------


@pytest.mark.skipif(not POSTGRES_URL, reason="LISTEN/NOTIFY needs PostgreSQL")
async def test_a_cancel_whose_notify_is_lost_is_delivered_by_the_heartbeat(
    fake_model: FakeModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Replica A executes a run whose model holds; A's LISTEN connection is killed; the cancel
    arrives at replica B, whose NOTIFY then reaches nobody. A's heartbeat sees the run
    `cancelling` among the runs it holds and stops it."""
    from tests.conftest import reset_postgres

    assert POSTGRES_URL
    reset_postgres(POSTGRES_URL)
    fake_model.reset()
    # B never takes A's lease for lapsed: its lease clock is far behind A's.
    behind = {"lease_clock": ManualClock(time.time() - 3600)}
    caplog.set_level(logging.INFO, logger="assistants_grpc.engine.scheduler")
    async with (
        serving(POSTGRES_URL, fake_model, run_lease_seconds=1.5) as a,
        serving(POSTGRES_URL, fake_model, overrides=behind, reset_model=False) as b,
    ):
        thread_id, run_id = await start_hanging_run(a.stubs, fake_model)
        assert a.server.scheduler is not None and b.server.scheduler is not None
        name = listener_name(a.server.scheduler.owner)
        engine = create_engine(normalize_url(POSTGRES_URL))
        try:
            with engine.begin() as connection:
                killed = connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = :name"
                    ),
                    {"name": name},
                ).scalars()
                assert list(killed) == [True]
        finally:
            engine.dispose()
        before = fake_model.disconnects
        await b.stubs.runs.CancelRun(R.CancelRunRequest(thread_id=thread_id, run_id=run_id))
        run = await wait_for_status(b.stubs, thread_id, run_id, *TERMINAL, timeout=20)
        assert run.status == R.RUN_STATUS_CANCELLED
        assert await fake_model.wait_for_disconnects(before + 1, timeout=5)
        assert any("its cancel signal was lost" in r.getMessage() for r in caplog.records)
        check_run_log(
            await collect(
                b.stubs.runs.WatchRun(R.WatchRunRequest(thread_id=thread_id, run_id=run_id))
            )
        )


# --- leases by the injected clock --------------------------------------------------------------


async def test_a_lapsed_lease_is_taken_over_by_the_lease_clock(
    database_url: str, fake_model: FakeModelServer
) -> None:
    """A queued run claimed by a replica that died is left alone while its lease lasts and
    taken over once it lapses: by the lease clock, with no real seconds waited."""
    lease_clock = ManualClock(time.time())
    async with serving(
        database_url,
        fake_model,
        overrides={"lease_clock": lease_clock},
        max_concurrent_runs=1,
        claim_poll_interval=0.02,
    ) as server:
        stubs = server.stubs
        busy_thread, busy_run = await start_hanging_run(stubs, fake_model)
        assistant = await make_assistant(stubs)
        thread = await make_thread(stubs, "orphan")
        run = await stubs.runs.CreateRun(
            R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
        )
        database = server.server.database
        assert database is not None
        dead = {"lease_owner": "dead-replica", "lease_expires_at": lease_clock.now() + 10}
        await database.transaction(
            lambda c: c.execute(update(RUNS).where(RUNS.c.id == run.id).values(**dead))
        )
        await stubs.runs.CancelRun(R.CancelRunRequest(thread_id=busy_thread, run_id=busy_run))
        await wait_for_status(stubs, busy_thread, busy_run, R.RUN_STATUS_CANCELLED)
        # The worker is free and polls every 20 ms, but the lease is live: the run waits.
        await asyncio.sleep(0.3)
        waiting = await stubs.runs.GetRun(R.GetRunRequest(thread_id=thread.id, run_id=run.id))
        assert waiting.status == R.RUN_STATUS_QUEUED
        lease_clock.advance(11)
        done = await wait_for_status(stubs, thread.id, run.id, *TERMINAL)
        assert done.status == R.RUN_STATUS_COMPLETED
