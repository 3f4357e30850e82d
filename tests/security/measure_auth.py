"""What authentication costs per call: the median latency of GetAssistant on loopback, with a
key (auth on) and without (no key exists, auth off), sequential calls from one client.

    .venv/bin/python -m tests.security.measure_auth [--calls 2000]

Two server processes on SQLite, one whose database holds a key; the calls alternate between them
in blocks, so drift on the machine affects both alike.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import grpc

from assistants_grpc.contract.pb import assistant_pb2, assistant_pb2_grpc
from tests.security.fuzz_seed import make_keys
from tests.security.fuzz_server import ServerProcess


def _timings(
    stub: assistant_pb2_grpc.AssistantServiceStub,
    request: assistant_pb2.GetAssistantRequest,
    metadata: list[tuple[str, str]],
    calls: int,
) -> list[float]:
    timings = []
    for _ in range(calls):
        start = time.perf_counter()
        stub.GetAssistant(request, metadata=metadata, timeout=10)
        timings.append(time.perf_counter() - start)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    calls = parser.parse_args().calls
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "open").mkdir()
        (root / "keyed").mkdir()
        open_url = f"sqlite:///{root / 'open' / 'a.db'}"
        keyed_url = f"sqlite:///{root / 'keyed' / 'a.db'}"
        key = make_keys(keyed_url)["alpha"]
        servers = {
            "without key": (ServerProcess(root / "open", open_url), []),
            "with key": (
                ServerProcess(root / "keyed", keyed_url),
                [("authorization", f"Bearer {key}")],
            ),
        }
        results: dict[str, list[float]] = {name: [] for name in servers}
        channels = []
        try:
            targets = {}
            for name, (server, metadata) in servers.items():
                channel = grpc.insecure_channel(server.target)
                channels.append(channel)
                stub = assistant_pb2_grpc.AssistantServiceStub(channel)
                made = stub.CreateAssistant(
                    assistant_pb2.CreateAssistantRequest(model="gpt-4o"), metadata=metadata
                )
                request = assistant_pb2.GetAssistantRequest(assistant_id=made.id)
                _timings(stub, request, metadata, 200)  # warm up
                targets[name] = (stub, request, metadata)
            block = 250
            for _ in range(max(1, calls // block)):
                for name, (stub, request, metadata) in targets.items():
                    results[name] += _timings(stub, request, metadata, block)
        finally:
            for channel in channels:
                channel.close()
            for server, _ in servers.values():
                server.stop()
    medians = {name: statistics.median(values) * 1e6 for name, values in results.items()}
    for name, values in results.items():
        p90 = statistics.quantiles(values, n=10)[-1] * 1e6
        print(
            f"GetAssistant {name:12s} {len(values)} calls: "
            f"median {medians[name]:.0f} µs, p90 {p90:.0f} µs"
        )
    print(
        f"authentication: {medians['with key'] - medians['without key']:+.0f} µs per call (median)"
    )


if __name__ == "__main__":
    main()
