"""Stream a run: print the assistant's answer as it is written.

ASSISTANTS_TARGET=127.0.0.1:50051 python examples/streamed_run.py
"""

from __future__ import annotations

import os

from assistants_grpc_client import Client
from assistants_grpc_client.v1 import run_pb2

TARGET = os.environ.get("ASSISTANTS_TARGET", "127.0.0.1:50051")
MODEL = os.environ.get("ASSISTANTS_MODEL", "gpt-4o-mini")


def main() -> None:
    with Client(TARGET, api_key=os.environ.get("ASSISTANTS_API_KEY")) as client:
        assistant = client.assistants.create(
            model=MODEL, name="Greeter", instructions="Answer in one short sentence."
        )
        thread = client.threads.create()
        client.messages.create(thread.id, role="user", content="Say hello in French.")

        stream = client.runs.stream(thread.id, assistant.id)
        for text in stream.text_deltas():
            print(text, end="", flush=True)
        print()
        run = stream.final_run()
        print(f"run {run.id}: {run_pb2.RunStatus.Name(run.status)}")


if __name__ == "__main__":
    main()
