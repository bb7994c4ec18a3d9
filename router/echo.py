"""A bare grpc.aio echo service: the baseline `homeport bench gateway` measures beside the
gateway, so its figures say what the gateway costs over gRPC itself on this machine.

`python -m router.echo --listen 127.0.0.1:0` prints `echo listening on HOST:PORT`.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import grpc
import uvloop
from grpc import aio

METHOD = "/homeport.bench.Echo/Echo"


def _identity(data: bytes) -> bytes:
    return data


async def _echo(request: bytes, context: aio.ServicerContext[bytes, bytes]) -> bytes:
    return request


async def serve(listen: str, max_message_bytes: int = 32 * 1024 * 1024) -> None:
    options = [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]
    server = aio.server(options=options)
    handler = grpc.method_handlers_generic_handler(
        "homeport.bench.Echo",
        {
            "Echo": grpc.unary_unary_rpc_method_handler(
                _echo, request_deserializer=_identity, response_serializer=_identity
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(listen)
    await server.start()
    print(f"echo listening on {listen.rpartition(':')[0]}:{port}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", default="127.0.0.1:0")
    # The same event loop as the gateway process, so the baseline is like for like.
    uvloop.run(serve(parser.parse_args().listen))


if __name__ == "__main__":
    main()
