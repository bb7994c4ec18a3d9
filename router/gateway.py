"""The gateway process: a grpc.aio server in front of one home region's engine.

`Gateway.start()` connects to the region's Redis (broker) and PostgreSQL (record store),
then serves homeport.v1.Scheduler plus the standard health-checking and reflection
services, behind the bearer-token interceptor, over plaintext, TLS or mutual TLS.

Shutdown is graceful: health turns NOT_SERVING first (so balancers stop sending), the
server refuses new calls and gives in-flight ones `grace_seconds` to finish, then the
engine's connections close. Message sizes are capped both ways by `max_message_bytes`.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from grpc import aio
from grpc_health.v1 import _async as health_async
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from homeport.core.admin import AdminServer
from homeport.core.broker import Broker
from homeport.core.metrics import GatewayMetrics, Metrics
from homeport.core.partitioner import partition_of
from homeport.core.producer import Producer
from homeport.core.settings import Settings
from homeport.core.store import RecordStore
from homeport.core.task import Durability
from homeport.regions.topology import Topology
from homeport.router.auth import SERVICE, TokenAuthInterceptor
from homeport.router.finder import TaskFinder
from homeport.router.kinds import KindCheck
from homeport.router.proto_gen import scheduler_pb2 as pb
from homeport.router.proto_gen import scheduler_pb2_grpc as pb_grpc
from homeport.router.records import TaskLookup
from homeport.router.routed import RoutedServing
from homeport.router.servicer import SchedulerServicer, ServicerConfig
from homeport.router.serving import ServingCheck, StaticServing
from homeport.router.settings import GatewaySettings
from homeport.router.tls import server_credentials
from prometheus_client import CollectorRegistry

# The generated registration function is untyped.
_add_servicer = cast(
    Callable[[SchedulerServicer, aio.Server], None], pb_grpc.add_SchedulerServicer_to_server
)


def static_serving(
    engine: Settings, gateway: GatewaySettings, topology: Topology | None
) -> StaticServing:
    """The serving check for a gateway without a routing table: its own region only."""
    gateways = {r.name: r.gateway for r in topology.regions if r.gateway} if topology else {}
    return StaticServing(
        engine.region,
        engine.partitions,
        gateway.epoch,
        partition_of=partition_of,
        pin=topology.home_of if topology else (lambda key: None),
        gateways=gateways,
    )


@dataclass
class _Backends:
    broker: Broker
    store: RecordStore


class Gateway:
    """One gateway process's server; `start()`, then `wait()` or `stop()`."""

    def __init__(
        self,
        engine: Settings,
        settings: GatewaySettings,
        *,
        topology: Topology | None = None,
        serving: ServingCheck | None = None,
        registry: CollectorRegistry | None = None,
        interceptors: Sequence[aio.ServerInterceptor] = (),  # type: ignore[type-arg]
        engine_metrics: Metrics | None = None,
        reuse_port: bool = False,
    ) -> None:
        """`reuse_port`: bind with SO_REUSEPORT, so that the gateway processes of
        `homeport gateway --processes N` share one port (the kernel spreads connections
        over them); off otherwise, so that a port in use is an error."""
        self.engine = engine
        self.settings = settings
        self.topology = topology
        self.serving = serving or static_serving(engine, settings, topology)
        self.engine_metrics = engine_metrics or Metrics(registry or CollectorRegistry())
        self.registry = self.engine_metrics.registry
        self.metrics = GatewayMetrics(self.registry)
        self.port = 0
        self.admin_port = 0
        self._admin: AdminServer | None = None
        self._serving_now = False
        self._server: aio.Server | None = None
        self._reuse_port = reuse_port
        self._backends: _Backends | None = None
        self._health = health_async.HealthServicer()
        self._stopped = asyncio.Event()
        self._interceptors = list(interceptors)

    @property
    def address(self) -> str:
        host = self.settings.listen.rpartition(":")[0]
        return f"{host}:{self.port}"

    def _servicer_config(self) -> ServicerConfig:
        name = self.topology.durability_default if self.topology else "LOCAL"
        return ServicerConfig(
            region=self.engine.region,
            advertise=self.settings.advertise or self.address,
            limits=self.engine.limits,
            default_durability=Durability[name],
            max_batch=self.settings.max_batch,
            watch_poll_s=self.settings.watch_poll_seconds,
        )

    def _server_options(self) -> list[tuple[str, Any]]:
        size = self.settings.max_message_bytes
        return [
            ("grpc.max_send_message_length", size),
            ("grpc.max_receive_message_length", size),
            ("grpc.so_reuseport", 1 if self._reuse_port else 0),
        ]

    async def start(self) -> None:
        broker = Broker.from_settings(self.engine)
        await broker.connect()
        store = await RecordStore.connect(self.engine.pg_dsn)
        await store.migrate()
        self._backends = _Backends(broker, store)
        producer = Producer(broker, self.engine, self.engine_metrics)
        lookup = TaskLookup(broker, store, self.engine.region, self.engine.partitions)
        auth = TokenAuthInterceptor(
            self.settings.tokens,
            self.settings.admin_tokens,
            on_refusal=lambda method, code: self.metrics.refused.labels(method, code).inc(),
        )
        server = aio.server(
            interceptors=[auth, *self._interceptors],
            options=self._server_options(),
            maximum_concurrent_rpcs=self.settings.max_concurrent_rpcs or None,
        )
        self._server = server
        self.port = self._bind(server)
        producer_for = None
        finder = None

        async def own_broker(_: str) -> Broker:
            return broker

        kinds = KindCheck(own_broker)
        if isinstance(self.serving, RoutedServing):
            await self.serving.start(self.settings.advertise or self.address)
            producer_for = self.serving.producer_for
            finder = TaskFinder(self.serving.homes, self.serving.lookup_for, self.serving.home_of)
            kinds = KindCheck(self.serving.broker_for)
        servicer = SchedulerServicer(
            producer, lookup, self.serving, self._servicer_config(), self.metrics, producer_for,
            finder, kinds,
        )  # fmt: skip
        _add_servicer(servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (
                pb.DESCRIPTOR.services_by_name["Scheduler"].full_name,
                reflection.SERVICE_NAME,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            ),
            server,
        )
        await server.start()
        for name in ("", SERVICE):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._serving_now = True
        if self.engine.admin_port >= 0:
            self._admin = AdminServer(
                self.engine_metrics,
                status=self.status,
                healthy=lambda: not self._stopped.is_set(),
                ready=lambda: self._serving_now,
                host=self.engine.admin_host,
                port=self.engine.admin_port,
                targets_dir=self.engine.metrics_targets_dir,
                job="gateway",
                labels={"site": self.engine.region},  # the region it runs in
            )
            self.admin_port = await self._admin.start()

    def status(self) -> dict[str, Any]:
        """What /v1/status of the admin server shows for a gateway."""
        return {
            "role": "gateway",
            "region": self.engine.region,
            "address": self.address,
            "partitions": [p.name for p in self.serving.served()],
            "epochs": sorted({p.epoch for p in self.serving.served()}),
            "tls": self.settings.tls_cert is not None,
            "mutual_tls": self.settings.tls_client_ca is not None,
            "auth": self.settings.auth_enabled,
        }

    def _bind(self, server: aio.Server) -> int:
        s = self.settings
        if s.tls_cert is None or s.tls_key is None:
            port = server.add_insecure_port(s.listen)
        else:
            creds = server_credentials(s.tls_cert, s.tls_key, s.tls_client_ca)
            port = server.add_secure_port(s.listen, creds)
        if port == 0:
            raise OSError(f"gateway could not bind {s.listen}: address in use or invalid")
        return port

    async def stop(self, grace: float | None = None) -> None:
        """Drain and stop; idempotent."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._serving_now = False
        await self._health.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(self.settings.grace_seconds if grace is None else grace)
        if self._admin is not None:
            await self._admin.stop()
        if isinstance(self.serving, RoutedServing):
            await self.serving.stop()
        if self._backends is not None:
            await self._backends.broker.close()
            await self._backends.store.close()

    async def wait(self) -> None:
        await self._stopped.wait()

    def stop_on_signals(self) -> None:
        """SIGTERM/SIGINT start a graceful stop (the first one; later ones are ignored)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(self.stop()))
