"""`make test` runs with security on (issue 15, "done when"): the clusters the engine and
system tests share are secure unless HOMEPORT_TEST_INSECURE says otherwise, and the code
under test reaches them with the session's credentials, not around them."""

from __future__ import annotations

import os

import pytest
import redis
from homeport.core.broker import Broker
from homeport.core.security import FILE_ENV
from homeport.regions.topology import Topology, split_address
from redis import exceptions as rexc

from tests.conftest import INSECURE_ENV, session_security


@pytest.mark.skipif(bool(os.environ.get(INSECURE_ENV)), reason="the session runs --insecure")
async def test_the_shared_test_cluster_is_secure_and_tests_log_in_to_it(
    topology: Topology, redis_url: str
) -> None:
    config = topology.security
    assert config is not None and not config.insecure and config.tls is not None
    assert session_security().config == config, "the cluster runs the session's credentials"
    assert FILE_ENV in os.environ  # what the processes tests start inherit
    host, port = split_address(topology.region("us-east").redis.primary or "")
    plain = redis.Redis(host=host, port=port, socket_timeout=2)
    with pytest.raises(rexc.ConnectionError):
        plain.ping()  # TLS only
    plain.close()
    broker = Broker(redis_url)  # a plain URL, as the engine tests hand it
    try:
        await broker.connect()
        client = broker._seed  # noqa: SLF001 - which user the engine logged in as
        assert await client.acl_whoami() == "operator"
    finally:
        await broker.close()
