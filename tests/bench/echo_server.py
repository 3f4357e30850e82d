"""The baseline: a bare grpc.aio server with one generic unary handler that returns the request
bytes unchanged. Run as ``python -m tests.bench.echo_server --port N``; it uses uvloop when the
service does, so the two are measured on the same event loop."""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Final

import grpc

from tests.bench.processes import run_event_loop

METHOD: Final = "/bench.Echo/Echo"


async def _echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return request


async def serve(port: int) -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(_echo)}
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    run_event_loop(serve(args.port))


if __name__ == "__main__":
    main()
