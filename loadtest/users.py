"""The Locust user: one client of the real gRPC API (`homeport.v1.Scheduler`).

It uses the generated *sync* stub, which cooperates with gevent once
`grpc.experimental.gevent.init_gevent()` has run after gevent's monkey-patching (done by
`loadtest/locustfile.py`, the only module that imports this one). Each RPC is reported as
one Locust request event (`request_type="grpc"`, name `Submit` or `SubmitBatch`), so
Locust's statistics, CSV and HTML report cover it. A batch with any task refused is one
failed request; a call's response time is measured around the RPC only.

Task ids are `<run id>-<user>-<n>`, so the records of one run can be found in PostgreSQL.
"""

from __future__ import annotations

import itertools
import os
import random
import time
from typing import Any

import grpc
from homeport.loadtest.errors import LoadTestError
from homeport.loadtest.workload import Draws, Workload
from homeport.router.proto_gen import scheduler_pb2 as pb
from homeport.router.proto_gen import scheduler_pb2_grpc as pb_grpc
from locust import User, constant_throughput, task
from locust.exception import StopUser

_USER_NUMBERS = itertools.count(1)
_DURABILITY = {
    "LOCAL": pb.DURABILITY_LOCAL,
    "REGION": pb.DURABILITY_REGION,
    "GLOBAL": pb.DURABILITY_GLOBAL,
}


class BatchRefused(LoadTestError):
    """Some tasks of a SubmitBatch were refused; the first refusal is named."""


def run_id() -> str:
    return os.environ.get("HOMEPORT_LOADTEST_RUN_ID", "lt")


class SchedulerUser(User):
    """Submits tasks (single and batch) following the `Workload` in the environment."""

    abstract = False
    workload = Workload.from_env()
    wait_time = constant_throughput(workload.rate_per_user or 1e9)

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        number = next(_USER_NUMBERS)
        self.prefix = f"{run_id()}-{os.getpid()}x{number}"
        self.draws = Draws(self.workload, random.Random(f"{self.workload.seed}-{number}"))
        self.sent = 0
        self.channel: grpc.Channel | None = None
        self.stub: pb_grpc.SchedulerStub | None = None
        weighted: list[Any] = [SchedulerUser.submit] * self.workload.single_weight
        self.tasks = weighted + [SchedulerUser.submit_batch] * self.workload.batch_weight

    def on_start(self) -> None:
        if not self.host:
            raise StopUser("no gateway address: pass --host HOST:PORT")
        self.channel = grpc.insecure_channel(self.host.removeprefix("grpc://"))
        self.stub = pb_grpc.SchedulerStub(self.channel)

    def on_stop(self) -> None:
        if self.channel is not None:
            self.channel.close()

    def _spec(self) -> pb.TaskSpec:
        self.sent += 1
        return pb.TaskSpec(
            id=f"{self.prefix}-{self.sent}",
            partition_key=self.draws.key(),
            kind=self.workload.kind,
            payload=self.draws.payload(),
            durability=_DURABILITY[self.draws.durability()],
        )

    def _fire(self, name: str, began: float, length: int, exc: Exception | None) -> None:
        self.environment.events.request.fire(
            request_type="grpc",
            name=name,
            response_time=(time.perf_counter() - began) * 1000.0,
            response_length=length,
            exception=exc,
            context={},
        )

    @task
    def submit(self) -> None:
        assert self.stub is not None  # set in on_start, before any task runs
        request = pb.SubmitRequest(task=self._spec())
        began = time.perf_counter()
        try:
            reply = self.stub.Submit(request, timeout=self.workload.timeout_s)
        except grpc.RpcError as exc:
            self._fire("Submit", began, 0, exc)
            return
        self._fire("Submit", began, reply.ByteSize(), None)

    @task
    def submit_batch(self) -> None:
        assert self.stub is not None
        request = pb.SubmitBatchRequest(
            tasks=[self._spec() for _ in range(self.workload.batch_size)]
        )
        began = time.perf_counter()
        try:
            reply = self.stub.SubmitBatch(request, timeout=self.workload.timeout_s)
        except grpc.RpcError as exc:
            self._fire("SubmitBatch", began, 0, exc)
            return
        refused: Exception | None = None
        if reply.rejected:
            first = next(r for r in reply.results if r.HasField("error"))
            refused = BatchRefused(
                f"{reply.rejected} of {len(request.tasks)} refused; first: {first.error.message}"
            )
        self._fire("SubmitBatch", began, reply.ByteSize(), refused)
