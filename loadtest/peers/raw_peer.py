"""The raw limit: Redis stream commands from Python with nothing on top.

Enqueue: pipelined XADD (500 per pipeline) of a 64-byte msgpack blob, round-robin over 16
streams. Worker (`python -m homeport.loadtest.peers.raw_peer`): one asyncio process on uvloop that
XREADGROUPs (COUNT 500) all streams, calls the same `mark` per entry as every no-op
handler, and XACKs each batch in one pipeline. This is the floor every queue on Redis
streams (homeport included) pays: no validation, no records, no ordering, no retries.
"""

from __future__ import annotations

import os

import redis
from homeport.core.bench import consume_raw
from homeport.loadtest.peers.base import Contender, paced, python_m
from homeport.loadtest.peers.marker import mark

STREAMS = [f"hpraw:{{{p}}}" for p in range(16)]
GROUP = "hpraw"
_PIPE = 500
_BLOB = b"x" * 64


class RawContender(Contender):
    name = "raw Redis streams"
    changed = ()

    def __init__(self, redis_url: str) -> None:
        super().__init__(redis_url)
        self.conn = redis.Redis.from_url(redis_url)

    def setup(self) -> None:
        pass

    def worker_cmd(self) -> list[str]:
        return python_m("homeport.loadtest.peers.raw_peer")

    def submit(self, n: int, stamped: bool = False, rate: float | None = None) -> None:
        if stamped or rate:
            counter = iter(range(n))

            def one(stamp: float) -> None:
                self.conn.xadd(STREAMS[next(counter) % len(STREAMS)], {"t": _BLOB, "s": stamp})

            paced(n, stamped, rate, one)
            return
        for lo in range(0, n, _PIPE):
            with self.conn.pipeline(transaction=False) as pipe:
                for i in range(lo, min(n, lo + _PIPE)):
                    pipe.xadd(STREAMS[i % len(STREAMS)], {"t": _BLOB, "s": 0})
                pipe.execute()

    def probe(self) -> None:
        self.conn.xadd(STREAMS[0], {"t": _BLOB, "s": -1})

    def version(self) -> str:
        return f"Redis {self.conn.info('server')['redis_version']}"


async def _consume(url: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    for stream in STREAMS:
        try:
            await client.xgroup_create(stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError:  # BUSYGROUP: made by an earlier start
            pass
    await consume_raw(client, GROUP, STREAMS, _PIPE, each=lambda fields: mark(float(fields[b"s"])))


if __name__ == "__main__":
    import uvloop

    uvloop.run(_consume(os.environ["HP_BENCH_REDIS"]))
