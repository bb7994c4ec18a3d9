"""One typed, frozen settings object per process, from a YAML file plus `HOMEPORT_*` env.

Precedence, lowest first: the defaults below, the YAML file (`HOMEPORT_CONFIG` or
`--config`), `HOMEPORT_<FIELD>` environment variables, then explicit overrides (CLI flags).
Every field's comment states its unit, default and what zero means; the bounds are
declared on the field. Read through `core.config`, the one settings loader of homeport.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from homeport.core import config
from homeport.core.task import Limits
from pydantic import BaseModel, ConfigDict, Field, field_validator

ENV_PREFIX = "HOMEPORT_"


class Settings(BaseModel):
    """Process configuration; see the module docstring for where values come from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Name of the region this process serves, e.g. "us-east". Never empty.
    region: str = "us-east"
    # Number of partitions P of the region (fixed by the topology). Must be >= 1.
    partitions: int = Field(default=16, gt=0)
    # Redis URL of the region store (for a cluster: any seed node).
    redis_url: str = "redis://127.0.0.1:6379/0"
    # True when the region store is a Redis Cluster rather than a single primary.
    redis_cluster: bool = False
    # PostgreSQL DSN of the region's record store. Empty = do not record (bench raw runs).
    pg_dsn: str = ""
    # Seconds a task id is remembered for submit dedup. Default 3600. Zero is refused.
    dedup_window_s: float = Field(default=3600.0, gt=0)
    # Milliseconds WAIT blocks for the in-region replica's ack (REGION durability).
    # Default 100. Zero would block forever in Redis, so it is refused.
    wait_timeout_ms: int = Field(default=100, gt=0)
    # Milliseconds WAIT blocks for GLOBAL durability, whose last ack crosses regions (one
    # replication round trip to the standby region). Default 1000. Zero is refused.
    global_wait_timeout_ms: int = Field(default=1000, gt=0)
    # Connections per Redis node in a process's main pool. Default 128. Must be >= 1.
    redis_pool_size: int = Field(default=128, gt=0)
    # Connections per Redis node for GLOBAL submits, whose WAIT for the standby region
    # holds a connection up to `global_wait_timeout_ms`; kept apart so they cannot starve
    # LOCAL and REGION submits. Default 256. Must be >= 1.
    redis_global_pool_size: int = Field(default=256, gt=0)
    # Seconds a call waits for a free pooled connection before it fails as unavailable
    # (retryable). Default 2. Must be > 0.
    redis_pool_wait_s: float = Field(default=2.0, gt=0)
    # Replica acks for REGION durability (in-region replica). Default 1. Zero = like LOCAL.
    region_replicas: int = Field(default=1, ge=0)
    # Replica acks for GLOBAL durability (all replicas incl. the standby region's).
    # Default 2 (the dev cluster: one in-region replica, one cross-region mirror).
    global_replicas: int = Field(default=2, ge=0)
    # Entries per XREADGROUP call. Default 256. Must be >= 1.
    batch_size: int = Field(default=256, gt=0)
    # Milliseconds an idle XREADGROUP blocks (a new entry wakes it at once, so this only
    # sets the idle polling rate). Default 1000. Zero = poll without blocking.
    block_ms: int = Field(default=1000, ge=0)
    # Most handlers running at once in one worker (a hard bound: a task takes a slot
    # before it begins and gives it back when its handler returns). Default 256. >= 1.
    concurrency: int = Field(default=256, gt=0)
    # Entries a worker fetches beyond its slots (Celery's prefetch): the fetch budget of
    # fetched-but-unfinished entries is `concurrency + prefetch`. A slot freed by a handler
    # then finds its next entry already read, instead of idling through the finished task's
    # record write and ack and the next read. The budget is soft (each partition's reader
    # may land one read past it) and bounds the work of one event-loop turn, and so how
    # late lease renewals can be under load. Prefetched entries are not begun: a crash
    # leaves them pending, not suspect. Default 256 (as many as the default slots): an
    # entry keeps its unit through its record write, and at 15–20k tasks/s the writes in
    # flight alone held most of a 256 budget (a 30k drain: +19 % unordered, +11 % ordered,
    # docs/benchmarks.md, fourteenth session). 0 = read only as entries finish.
    prefetch: int = Field(default=256, ge=0)
    # Threads for sync handlers. Default 16. Must be >= 1.
    sync_threads: int = Field(default=16, gt=0)
    # Most fetched-but-unfinished entries per partition in a worker (fairness between
    # partitions). Default 512. Must be >= 1.
    max_buffered: int = Field(default=512, gt=0)
    # Seconds a partition lease / worker heartbeat / manager lease lives unless renewed.
    # Default 5. A dead worker's partitions move within about this long. Must be > 0.
    lease_ttl_s: float = Field(default=5.0, gt=0)
    # Seconds between lease renewals, heartbeats and assignment polls. Default 0.5. > 0.
    heartbeat_s: float = Field(default=0.5, gt=0)
    # Times an entry may begin without finishing (its worker died meanwhile) before it is
    # a poison task and dead-lettered instead of run again. Default 5. Must be >= 1.
    max_deliveries: int = Field(default=5, gt=0)
    # Seconds the delayed-task forwarder sleeps at most between scans. Delayed tasks are
    # announced (pub/sub), so this bounds only the lateness of one whose notice was lost
    # (a reconnecting subscriber), and is the idle cost (one pipelined call per node per
    # scan). Default 1. Must be > 0.
    forward_interval_s: float = Field(default=1.0, gt=0)
    # Seconds between stream trims (XTRIM MINID) per partition. Default 1. Must be > 0.
    trim_interval_s: float = Field(default=1.0, gt=0)
    # Seconds the record writer waits to fill a batch. Default 0.005. Zero = flush at once.
    record_flush_s: float = Field(default=0.005, ge=0)
    # Most rows in one record-store write. Default 5000. Must be >= 1.
    record_batch_max: int = Field(default=5000, gt=0)
    # Seconds in-flight handlers get to finish after the first SIGTERM. Default 10.
    # Zero = stop at once (in-flight work is redelivered).
    shutdown_grace_s: float = Field(default=10.0, ge=0)
    # Port of the admin HTTP server (/metrics, /healthz, ...). Default 0 = any free port
    # (printed at start); -1 = no admin server.
    admin_port: int = 0
    # Interface of the admin HTTP server. Default loopback.
    admin_host: str = "127.0.0.1"
    # Directory where the admin server announces its /metrics address for Prometheus'
    # file-based discovery (`core.targets`). Default empty = do not announce.
    metrics_targets_dir: str = ""
    # Dead-letter stream approximate cap per partition (entries). Default 100000. 0 = none.
    dead_maxlen: int = Field(default=100_000, ge=0)
    # Largest payload accepted, in bytes. Default 1 MiB. Zero is refused.
    max_payload_bytes: int = Field(default=1024 * 1024, gt=0)
    # Largest partition key accepted, in UTF-8 bytes. Default 1024. Zero is refused.
    max_key_bytes: int = Field(default=1024, gt=0)

    @field_validator("region")
    @classmethod
    def _region_name(cls, region: str) -> str:
        if not region or "/" in region or "{" in region:
            raise ValueError("must be a non-empty name without '/' or '{'")
        return region

    @property
    def limits(self) -> Limits:
        return Limits(max_key_bytes=self.max_key_bytes, max_payload_bytes=self.max_payload_bytes)

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Settings:
        """Build settings from defaults, a YAML file, `HOMEPORT_*` env and overrides."""
        env = os.environ if env is None else env
        return config.load(cls, ENV_PREFIX, path or env.get("HOMEPORT_CONFIG"), env, overrides)

    def but(self, **changes: Any) -> Settings:
        """A copy with `changes`, validated like any other source."""
        return config.validate(type(self), {**self.model_dump(), **changes}, ENV_PREFIX)
