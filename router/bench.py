"""`homeport bench gateway`: what the gateway costs, measured beside bare gRPC.

In one run, on this machine:

- single-task Submit latency p50/p99/p999 at several offered rates (open loop: requests
  are sent on a fixed schedule, not when the previous one returns, so queueing shows);
- SubmitBatch throughput in tasks/s through the SDK's `submit_many`;
- the same message sizes sent to a bare grpc.aio echo service (router/echo.py) at the same
  rates and concurrency, and the engine's own enqueue rate (`Producer.submit_many`
  in-process, no gRPC), so each gateway figure has its baseline next to it.

The gateway and the echo service run as separate processes (`homeport gateway`,
`python -m router.echo`) and the load comes from this one. The run writes tasks into the
given Redis under the region name `--region` (default `bench`); no worker consumes them.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click
import uvloop
from grpc import aio
from homeport.core.broker import Broker
from homeport.core.producer import Producer
from homeport.core.settings import Settings
from homeport.core.supervisor import Child, ChildFailed
from homeport.core.task import new_task
from homeport.router.client import AsyncClient
from homeport.router.echo import METHOD as ECHO_METHOD
from homeport.router.proto_gen import scheduler_pb2 as pb
from homeport.router.views import NewTask
from rich.console import Console
from rich.table import Table

_LISTENING = re.compile(r"listening on (\S+)")
START_LIMIT_S = 60.0
MAX_IN_FLIGHT = 512


@contextmanager
def launch(args: list[str], limit_s: float = START_LIMIT_S) -> Iterator[str]:
    """Run `args` (a server printing `listening on HOST:PORT`); yield the address, then
    stop the process with SIGTERM (SIGKILL after 10 s)."""
    with tempfile.TemporaryDirectory(prefix="homeport-bench-") as tmp:
        server = Child.start(" ".join(args[:4]), args, Path(tmp) / "server.log")
        try:
            found = server.wait_ready(_LISTENING, limit_s, "listening")
        except ChildFailed as exc:
            server.stop()
            raise click.ClickException(str(exc)) from None
        assert found is not None
        try:
            yield found[1]
        finally:
            server.stop()


@dataclass
class Latency:
    rate: int
    sent: int
    errors: int
    p50_ms: float
    p99_ms: float
    p999_ms: float


def _percentiles(rate: int, samples: list[float], errors: int) -> Latency:
    ordered = sorted(samples) or [float("nan")]
    cuts = statistics.quantiles(ordered, n=1000, method="inclusive") if len(ordered) > 1 else []

    def at(per_mille: int) -> float:
        return (cuts[per_mille - 1] if cuts else ordered[0]) * 1000

    return Latency(rate, len(samples) + errors, errors, at(500), at(990), at(999))


async def open_loop(rate: int, seconds: float, call: Callable[[int], Awaitable[Any]]) -> Latency:
    """Send `rate` calls/s for `seconds` on a fixed schedule; latency of each call."""
    total = int(rate * seconds)
    samples: list[float] = []
    errors = 0
    slots = asyncio.Semaphore(MAX_IN_FLIGHT)
    start = time.perf_counter()

    async def one(i: int) -> None:
        nonlocal errors
        try:
            began = time.perf_counter()
            await call(i)
            samples.append(time.perf_counter() - began)
        except Exception:  # a failed call is counted and the run goes on
            errors += 1
        finally:
            slots.release()

    jobs = []
    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await slots.acquire()
        jobs.append(asyncio.create_task(one(i)))
    await asyncio.gather(*jobs)
    return _percentiles(rate, samples, errors)


async def _throughput(count: int, in_flight: int, send: Callable[[int], Awaitable[Any]]) -> float:
    """Run `send(0..count-1)` with `in_flight` at once; calls per second."""
    queue = iter(range(count))
    began = time.perf_counter()

    async def lane() -> None:
        for i in queue:
            await send(i)

    await asyncio.gather(*(lane() for _ in range(in_flight)))
    return count / (time.perf_counter() - began)


@dataclass
class BenchConfig:
    rates: list[int]
    seconds: float
    batch_tasks: int
    batch_size: int
    in_flight: int
    payload_bytes: int


def _spec(i: int, payload: bytes, run: str) -> pb.TaskSpec:
    return pb.TaskSpec(
        id=f"{run}-{i}", partition_key=f"key-{i % 1024}", kind="noop", payload=payload
    )


async def _latencies(
    gateway: str, echo: str, cfg: BenchConfig, payload: bytes, run: str
) -> list[dict[str, Any]]:
    """Submit through a raw stub (no SDK retries) and the same bytes through the echo."""
    out = []
    async with aio.insecure_channel(gateway) as gw_channel, aio.insecure_channel(echo) as e_channel:
        submit = gw_channel.unary_unary(
            "/homeport.v1.Scheduler/Submit",
            request_serializer=pb.SubmitRequest.SerializeToString,
            response_deserializer=pb.SubmitResponse.FromString,
        )
        echo_call = e_channel.unary_unary(ECHO_METHOD, None, None)
        for rate in cfg.rates:
            tag = f"{run}-r{rate}"
            body = pb.SubmitRequest(task=_spec(0, payload, tag)).SerializeToString()

            async def via_gateway(i: int, tag: str = tag) -> None:
                await submit(pb.SubmitRequest(task=_spec(i, payload, tag)), timeout=10)

            async def via_echo(i: int, body: bytes = body) -> None:
                await echo_call(body, timeout=10)

            gw = await open_loop(rate, cfg.seconds, via_gateway)
            bare = await open_loop(rate, cfg.seconds, via_echo)
            out.append({"gateway": asdict(gw), "echo": asdict(bare)})
    return out


async def _batch(
    gateway: str, echo: str, engine: Settings, cfg: BenchConfig, payload: bytes, run: str
) -> dict[str, Any]:
    tasks = [
        NewTask("noop", f"key-{i % 1024}", payload, id=f"{run}-b{i}")
        for i in range(cfg.batch_tasks)
    ]
    async with AsyncClient(gateway, batch_size=cfg.batch_size, max_in_flight=cfg.in_flight) as c:
        began = time.perf_counter()
        items = await c.submit_many(tasks)
        gateway_rate = len(items) / (time.perf_counter() - began)
    body = pb.SubmitBatchRequest(
        tasks=[_spec(i, payload, run) for i in range(cfg.batch_size)]
    ).SerializeToString()
    async with aio.insecure_channel(echo) as channel:
        echo_call = channel.unary_unary(ECHO_METHOD, None, None)

        async def send(i: int) -> None:
            await echo_call(body, timeout=30)

        echo_rate = await _throughput(cfg.batch_tasks // cfg.batch_size, cfg.in_flight, send)
    return {
        "gateway_tasks_per_s": gateway_rate,
        "gateway_rejected": sum(1 for i in items if not i.ok),
        "echo_tasks_per_s": echo_rate * cfg.batch_size,
        "engine_tasks_per_s": await _engine_rate(engine, cfg, payload, run),
    }


async def run_bench(gateway: str, echo: str, engine: Settings, cfg: BenchConfig) -> dict[str, Any]:
    payload = b"x" * cfg.payload_bytes
    run = f"bench{int(time.time())}"
    return {
        "config": asdict(cfg),
        "latency": await _latencies(gateway, echo, cfg, payload, run),
        "batch": await _batch(gateway, echo, engine, cfg, payload, run),
    }


async def _engine_rate(engine: Settings, cfg: BenchConfig, payload: bytes, run: str) -> float:
    broker = Broker.from_settings(engine)
    await broker.connect()
    try:
        producer = Producer(broker, engine)
        batches = [
            [
                new_task(f"key-{i % 1024}", "noop", payload, id=f"{run}-e{b}-{i}")
                for i in range(cfg.batch_size)
            ]
            for b in range(cfg.batch_tasks // cfg.batch_size)
        ]

        async def send(b: int) -> None:
            await producer.submit_many(batches[b], 0)

        return cfg.batch_size * await _throughput(len(batches), cfg.in_flight, send)
    finally:
        await broker.close()


def _table(result: dict[str, Any]) -> Table:
    table = Table(title="homeport bench gateway (loopback; gateway vs bare grpc.aio echo)")
    for column in ("measure", "gateway", "bare echo", "engine (no gRPC)"):
        table.add_column(column)
    for row in result["latency"]:
        gw, echo = row["gateway"], row["echo"]

        def fmt(r: dict[str, Any]) -> str:
            errors = f", {r['errors']} errors" if r["errors"] else ""
            return f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f} / {r['p999_ms']:.2f} ms{errors}"

        table.add_row(f"Submit p50/p99/p999 @ {gw['rate']}/s", fmt(gw), fmt(echo), "")
    b = result["batch"]
    cfg = result["config"]
    table.add_row(
        f"SubmitBatch {cfg['batch_tasks']} tasks ({cfg['batch_size']}/batch, "
        f"{cfg['in_flight']} in flight)",
        f"{b['gateway_tasks_per_s']:,.0f} tasks/s",
        f"{b['echo_tasks_per_s']:,.0f} tasks/s",
        f"{b['engine_tasks_per_s']:,.0f} tasks/s",
    )
    return table


@click.command("gateway")
@click.option("--redis-url", required=True, help="Redis to enqueue into (tasks are left there).")
@click.option("--pg-dsn", required=True, help="PostgreSQL the gateway connects to.")
@click.option("--region", default="bench", show_default=True)
@click.option("--partitions", default=16, show_default=True)
@click.option("--rates", default="200,500,1000", show_default=True, help="Offered Submit rates/s.")
@click.option("--seconds", default=3.0, show_default=True, help="Seconds per rate.")
@click.option("--batch-tasks", default=50_000, show_default=True)
@click.option("--batch-size", default=1000, show_default=True)
@click.option("--in-flight", default=4, show_default=True, help="Batches on the wire at once.")
@click.option("--payload-bytes", default=64, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def gateway_bench(
    redis_url: str,
    pg_dsn: str,
    region: str,
    partitions: int,
    rates: str,
    seconds: float,
    batch_tasks: int,
    batch_size: int,
    in_flight: int,
    payload_bytes: int,
    as_json: bool,
) -> None:
    """Submit latency at three rates and batch throughput, beside a bare gRPC echo."""
    cfg = BenchConfig(
        [int(r) for r in rates.split(",")],
        seconds,
        batch_tasks,
        batch_size,
        in_flight,
        payload_bytes,
    )
    engine = Settings(
        region=region, partitions=partitions, redis_url=redis_url, pg_dsn=pg_dsn, admin_port=-1
    )
    gateway_cmd = [
        sys.executable,
        "-m",
        "homeport",
        "gateway",
        "--region",
        region,
        "--redis-url",
        redis_url,
        "--pg-dsn",
        pg_dsn,
        "--partitions",
        str(partitions),
        "--listen",
        "127.0.0.1:0",
        "--admin-port",
        "-1",
        "--insecure",  # a bench takes plain URLs (docs/benchmarks.md)
    ]
    with (
        launch(gateway_cmd) as gateway,
        launch([sys.executable, "-m", "homeport.router.echo"]) as echo,
    ):
        result = uvloop.run(run_bench(gateway, echo, engine, cfg))
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        Console().print(_table(result))


if __name__ == "__main__":
    gateway_bench()
