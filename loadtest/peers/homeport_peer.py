"""homeport: a gateway process, one worker process (records in PostgreSQL), two clients.

- `HomeportBatch`: the gateway's `SubmitBatch` RPC straight from a grpc.aio stub,
  batches of 1,000, 4 in flight (light load: single `Submit` calls);
- `HomeportSDK`: `homeport.AsyncClient.submit_many` (its defaults: batches of 1,000,
  4 in flight), single `submit` at light load.

The worker is `homeport worker --app homeport.loadtest.peers.homeport_peer:app` with
default engine settings (`--no-manager` is not used: it assigns itself the partitions).
Both gateway and worker use the region name `bench` and 16 partitions; durability LOCAL.

The `noop` kind of `app` is ordered (per-key FIFO, homeport's default), which none of the
peers offers. `HomeportUnordered` runs the same batches against `app_unordered`, whose
`noop` kind is unordered: the same promise as the peers' (at least once, no order), and
the worker's batch path (docs/engine.md, "The batch path").

The worker imports this module for `app`: the clients' imports (grpc, the SDK) are made
inside the contenders' methods, so the worker imports what a real worker's app module
does, and its start is not charged for a client it never uses.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from contextlib import ExitStack
from importlib.metadata import version

from homeport.core.app import App, TaskContext
from homeport.loadtest.peers.base import Contender, apaced, python_m
from homeport.loadtest.peers.marker import mark

app = App("hpbench")
REGION = "bench"
PARTITIONS = 16
_KEYS = 1024


app_unordered = App("hpbench-unordered")


@app.task("noop")
@app_unordered.task("noop", ordered=False)
async def noop(ctx: TaskContext) -> None:
    mark(float(ctx.payload or b"0"))


class _Homeport(Contender):
    changed = ("region `bench`, 16 partitions, durability LOCAL; otherwise engine defaults",)
    app_attr = "app"

    def __init__(self, redis_url: str, pg_dsn: str) -> None:
        super().__init__(redis_url)
        self.pg_dsn = pg_dsn
        self.gateway = ""
        self._stack = ExitStack()
        self._ids = itertools.count()
        self._run = uuid.uuid4().hex[:8]

    def _engine(self) -> list[str]:
        return [
            "--region",
            REGION,
            "--partitions",
            str(PARTITIONS),
            "--redis-url",
            self.redis_url,
            "--pg-dsn",
            self.pg_dsn,
            "--admin-port",
            "-1",
        ]

    def setup(self) -> None:
        from homeport.router.bench import launch

        self.gateway = self._stack.enter_context(
            launch(
                python_m(
                    "homeport", "gateway", *self._engine(), "--listen", "127.0.0.1:0", "--insecure"
                )
            )
        )

    def teardown(self) -> None:
        self._stack.close()

    def worker_cmd(self) -> list[str]:
        return python_m(
            "homeport",
            "worker",
            "--app",
            f"homeport.loadtest.peers.homeport_peer:{self.app_attr}",
            *self._engine(),
            "--insecure",  # the peers bench runs its own plain Redis and PostgreSQL
        )

    def _id(self) -> str:
        return f"{self._run}-{next(self._ids)}"

    def probe(self) -> None:
        self.submit(1, stamped=False, rate=None, stamp=-1.0)

    def version(self) -> str:
        return f"homeport {version('homeport')} (grpcio {version('grpcio')})"

    def submit(
        self, n: int, stamped: bool = False, rate: float | None = None, stamp: float | None = None
    ) -> None:
        raise NotImplementedError


class HomeportBatch(_Homeport):
    name = "homeport (gateway SubmitBatch)"

    def submit(
        self, n: int, stamped: bool = False, rate: float | None = None, stamp: float | None = None
    ) -> None:
        from grpc import aio  # here, not at the top: the worker imports this module
        from homeport.router.proto_gen import scheduler_pb2 as pb

        def spec(s: float) -> pb.TaskSpec:
            i = next(self._ids)
            return pb.TaskSpec(
                id=f"{self._run}-{i}",
                partition_key=f"k{i % _KEYS}",
                kind="noop",
                payload=repr(s).encode(),
            )

        async def main() -> None:
            async with aio.insecure_channel(self.gateway) as channel:
                one = channel.unary_unary(
                    "/homeport.v1.Scheduler/Submit",
                    request_serializer=pb.SubmitRequest.SerializeToString,
                    response_deserializer=pb.SubmitResponse.FromString,
                )
                many = channel.unary_unary(
                    "/homeport.v1.Scheduler/SubmitBatch",
                    request_serializer=pb.SubmitBatchRequest.SerializeToString,
                    response_deserializer=pb.SubmitBatchResponse.FromString,
                )
                if stamp is not None:
                    await one(pb.SubmitRequest(task=spec(stamp)), timeout=10)
                elif stamped or rate:
                    await apaced(
                        n, stamped, rate, lambda s: one(pb.SubmitRequest(task=spec(s)), timeout=10)
                    )
                else:
                    sizes = [min(1000, n - lo) for lo in range(0, n, 1000)]
                    slots = asyncio.Semaphore(4)

                    async def batch(size: int) -> None:
                        async with slots:
                            reply = await many(
                                pb.SubmitBatchRequest(tasks=[spec(0.0) for _ in range(size)]),
                                timeout=60,
                            )
                            if reply.rejected:
                                raise RuntimeError(f"{reply.rejected} tasks refused")

                    await asyncio.gather(*(batch(s) for s in sizes))

        asyncio.run(main())


class HomeportUnordered(HomeportBatch):
    name = "homeport (SubmitBatch, unordered kind)"
    changed = (
        "region `bench`, 16 partitions, durability LOCAL, an unordered kind "
        "(no per-key order, as the peers); otherwise engine defaults",
    )
    app_attr = "app_unordered"


class HomeportSDK(_Homeport):
    name = "homeport (SDK submit_many)"

    def submit(
        self, n: int, stamped: bool = False, rate: float | None = None, stamp: float | None = None
    ) -> None:
        from homeport.router.client import AsyncClient
        from homeport.router.views import NewTask

        def task(s: float) -> NewTask:
            i = next(self._ids)
            return NewTask("noop", f"k{i % _KEYS}", repr(s).encode(), id=f"{self._run}-{i}")

        async def main() -> None:
            async with AsyncClient(self.gateway) as client:

                async def one(s: float) -> None:
                    t = task(s)
                    await client.submit(t.kind, t.partition_key, t.payload, id=t.id)

                if stamp is not None:
                    await one(stamp)
                elif stamped or rate:
                    await apaced(n, stamped, rate, one)
                else:
                    items = await client.submit_many(task(0.0) for _ in range(n))
                    bad = sum(1 for it in items if not it.ok)
                    if bad:
                        raise RuntimeError(f"{bad} tasks refused")

        asyncio.run(main())
