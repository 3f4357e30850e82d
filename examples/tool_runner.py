"""Answer an assistant's tool calls with a Python function: the weather tool.

`@function_tool` turns `get_weather` into the assistant's tool definition (the JSON Schema
comes from the type hints, the descriptions from the docstring); `run_with_tools` streams the run
and calls it whenever the model asks, until the run ends.

    ASSISTANTS_TARGET=127.0.0.1:50051 python examples/tool_runner.py
"""

from __future__ import annotations

import os
from typing import Literal

from assistants_grpc_client import Client, function_tool
from assistants_grpc_client.v1 import run_pb2

TARGET = os.environ.get("ASSISTANTS_TARGET", "127.0.0.1:50051")
MODEL = os.environ.get("ASSISTANTS_MODEL", "gpt-4o-mini")


@function_tool
def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> dict[str, object]:
    """Get the current weather in a city.

    Args:
        city: The city, e.g. "Paris".
        unit: The temperature unit.
    """
    temperature = 21 if unit == "celsius" else 70
    return {"city": city, "temperature": temperature, "unit": unit, "sky": "sunny"}


def show(event: run_pb2.RunEvent) -> None:
    if event.event == "thread.run.requires_action":
        for call in event.run.required_action.submit_tool_outputs.tool_calls:
            print(f"-> {call.function.name}({call.function.arguments})")


def main() -> None:
    with Client(TARGET, api_key=os.environ.get("ASSISTANTS_API_KEY")) as client:
        assistant = client.assistants.create(
            model=MODEL,
            name="Weather",
            instructions="Use get_weather to answer questions about the weather.",
            tools=[get_weather],
        )
        thread = client.threads.create()
        client.messages.create(thread.id, role="user", content="What's the weather in Paris?")

        result = client.runs.run_with_tools(
            thread.id, assistant.id, tools=[get_weather], on_event=show
        )
        print(result.text)
        print(f"run {result.run.id}: {run_pb2.RunStatus.Name(result.run.status)}")


if __name__ == "__main__":
    main()
