"""The tool runner with the asyncio client: two tools the model may call at once, one async and
one blocking (run in a thread), while every event of the run is printed as it arrives.

    ASSISTANTS_TARGET=127.0.0.1:50051 python examples/async_tool_runner.py
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime

from assistants_grpc_client import AsyncClient, function_tool
from assistants_grpc_client.v1 import run_pb2

TARGET = os.environ.get("ASSISTANTS_TARGET", "127.0.0.1:50051")
MODEL = os.environ.get("ASSISTANTS_MODEL", "gpt-4o-mini")


@function_tool(timeout=10)
async def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    await asyncio.sleep(0.01)  # an HTTP call to a weather service, say
    return f"Sunny and 21 C in {city}."


@function_tool
def get_time(city: str) -> str:
    """Get the current time (UTC) for a city."""
    return datetime.now(UTC).strftime("%H:%M UTC")


async def main() -> None:
    async with AsyncClient(TARGET, api_key=os.environ.get("ASSISTANTS_API_KEY")) as client:
        assistant = await client.assistants.create(
            model=MODEL, name="Concierge", tools=[get_weather, get_time]
        )
        thread = await client.threads.create(
            messages=[{"role": "user", "content": "Weather and time in Lisbon?"}]
        )
        stream = client.runs.stream_with_tools(
            thread.id, assistant.id, tools=[get_weather, get_time]
        )
        async for event in stream:
            if event.event == "thread.message.delta":
                for part in event.message_delta.delta.content:
                    print(part.text.value, end="", flush=True)
            elif event.event.startswith("thread.run.") and event.HasField("run"):
                print(f"[{event.event}]")
        result = await stream.result()
        print(f"run {result.run.id}: {run_pb2.RunStatus.Name(result.run.status)}")


if __name__ == "__main__":
    asyncio.run(main())
