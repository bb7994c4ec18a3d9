"""Bearer tokens, admin tokens, TLS and mutual TLS, against a real gateway."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from homeport.router.client import AsyncClient, RetryPolicy
from homeport.router.errors import NotAllowed, TaskNotFoundError, TransientError
from homeport.router.tls import ClientTls

from tests.router.certs import Pki, make_pki
from tests.router.conftest import GatewayFactory

USER, ADMIN = "user-token", "admin-token"
NO_RETRY = RetryPolicy(attempts=1)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


async def test_calls_without_or_with_a_wrong_token_are_unauthenticated(
    gateway_factory: GatewayFactory,
) -> None:
    gw = await gateway_factory(tokens=(USER,), admin_tokens=(ADMIN,))
    for token in (None, "wrong"):
        async with AsyncClient(gw.address, token=token, retry=NO_RETRY) as c:
            with pytest.raises(NotAllowed) as err:
                await c.get("no-such-task")
            assert err.value.status == grpc.StatusCode.UNAUTHENTICATED
    async with AsyncClient(gw.address, token=USER) as c:
        with pytest.raises(TaskNotFoundError):  # authenticated: the call reached the store
            await c.get("no-such-task")
    labels = {"method": "/homeport.v1.Scheduler/GetTask", "status": "UNAUTHENTICATED"}
    assert gw.registry.get_sample_value("homeport_gateway_auth_refused_total", labels) == 2


async def test_admin_rpc_needs_the_admin_token(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(tokens=(USER,), admin_tokens=(ADMIN,))
    async with AsyncClient(gw.address, token=USER, retry=NO_RETRY) as c:
        with pytest.raises(NotAllowed) as err:
            await c.dead_letters()
        assert err.value.status == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(NotAllowed):
            await c.requeue("some-task")
    async with AsyncClient(gw.address, token=ADMIN) as c:
        assert await c.dead_letters() == []


async def test_health_service_stays_open_without_a_token(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(tokens=(USER,))
    async with grpc.aio.insecure_channel(gw.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service="homeport.v1.Scheduler"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_tls_gateway_serves_a_client_that_trusts_its_ca(
    gateway_factory: GatewayFactory, pki: Pki
) -> None:
    gw = await gateway_factory(tls_cert=pki.server_cert, tls_key=pki.server_key)
    async with AsyncClient(gw.address, tls=ClientTls(ca=pki.ca)) as c:
        status = await c.region_status()
    assert status.region == "us-east"
    assert len(status.partitions) == 16
    async with AsyncClient(gw.address, retry=NO_RETRY, timeout=2.0) as plain:
        with pytest.raises(TransientError):  # plaintext against TLS never handshakes
            await plain.region_status()


async def test_mutual_tls_refuses_clients_without_a_ca_signed_certificate(
    gateway_factory: GatewayFactory, pki: Pki
) -> None:
    gw = await gateway_factory(
        tls_cert=pki.server_cert, tls_key=pki.server_key, tls_client_ca=pki.ca
    )
    good = ClientTls(ca=pki.ca, cert=pki.client_cert, key=pki.client_key)
    async with AsyncClient(gw.address, tls=good) as c:
        assert (await c.region_status()).region == "us-east"
    for bad in (ClientTls(ca=pki.ca), ClientTls(ca=pki.ca, cert=pki.rogue_cert, key=pki.rogue_key)):
        async with AsyncClient(gw.address, tls=bad, retry=NO_RETRY, timeout=2.0) as c:
            with pytest.raises(TransientError) as err:
                await c.region_status()
            assert err.value.status == grpc.StatusCode.UNAVAILABLE


def test_unreadable_certificate_is_named(tmp_path: Path) -> None:
    from homeport.router.tls import TlsConfigError, server_credentials

    with pytest.raises(TlsConfigError, match="missing.key"):
        server_credentials(tmp_path / "missing.pem", tmp_path / "missing.key")
