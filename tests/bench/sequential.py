"""The foundation figures (issue 2): median latency of GetAssistant and CreateMessage over 1,000
sequential calls, and CreateMessage calls/s with 32 concurrent callers, against a service in its
own process on SQLite. Run as ``python -m tests.bench.sequential``."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from assistants_grpc.contract.pb import assistant_pb2, message_pb2, thread_pb2
from tests.bench.common import Stubs
from tests.bench.processes import Children, run_event_loop

CALLS = 1_000
WARMUP = 200
CALLERS = 32
SECONDS = 5.0


def _message(thread_id: str) -> message_pb2.CreateMessageRequest:
    return message_pb2.CreateMessageRequest(
        thread_id=thread_id,
        role=message_pb2.MESSAGE_ROLE_USER,
        content=[message_pb2.MessageContentInput(text="hello there")],
    )


async def _measure(port: int) -> None:
    stubs = Stubs.connect(port)
    try:
        assistant = await stubs.assistants.CreateAssistant(
            assistant_pb2.CreateAssistantRequest(model="gpt-4o", name="bench")
        )
        threads = [
            (await stubs.threads.CreateThread(thread_pb2.CreateThreadRequest())).id
            for _ in range(CALLERS)
        ]
        get = assistant_pb2.GetAssistantRequest(assistant_id=assistant.id)
        for _ in range(WARMUP):
            await stubs.assistants.GetAssistant(get)
        gets, creates = [], []
        for _ in range(CALLS):
            began = time.perf_counter()
            await stubs.assistants.GetAssistant(get)
            gets.append(time.perf_counter() - began)
        for _ in range(CALLS):
            began = time.perf_counter()
            await stubs.messages.CreateMessage(_message(threads[0]))
            creates.append(time.perf_counter() - began)

        count = 0
        end = time.perf_counter() + SECONDS

        async def caller(index: int) -> None:
            nonlocal count
            while time.perf_counter() < end:
                await stubs.messages.CreateMessage(_message(threads[index]))
                count += 1

        began = time.perf_counter()
        await asyncio.gather(*(caller(i) for i in range(CALLERS)))
        elapsed = time.perf_counter() - began
        for name, values in (("GetAssistant", gets), ("CreateMessage", creates)):
            median = statistics.median(values) * 1000
            print(f"{name}: median {median:.3f} ms over {CALLS} sequential calls")
        rate = count / elapsed
        print(f"CreateMessage, {CALLERS} callers: {rate:,.0f} calls/s for {elapsed:.1f} s")
    finally:
        await stubs.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, Children(Path(tmp)) as children:
        service = children.start_service("service", f"sqlite:///{tmp}/bench.db", model_port=9)
        run_event_loop(_measure(service.port))


if __name__ == "__main__":
    main()
