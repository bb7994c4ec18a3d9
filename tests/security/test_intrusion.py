"""Tests that try to get in: a secure two-region cluster started by the launcher (as
`homeport dev up` starts it by default), attacked with no credentials, plaintext, the
wrong role's credentials and wrong certificates. A client token calling admin RPCs is
covered by tests/router/test_security.py::test_admin_rpc_needs_the_admin_token.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import os
import secrets
import ssl
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import aetcd
import asyncpg
import grpc
import pytest
import redis
from aetcd import rpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from homeport.core.security import Identity, SecretRef, TlsFiles, client_tls_context
from homeport.regions.certs import issue
from homeport.regions.devcluster import ClusterSpec, DevCluster
from homeport.regions.etcd import TlsClient, connect, endpoints_for, make_client
from homeport.regions.security import find_leaks, rotate_redis_password, secret_values
from homeport.regions.topology import Topology, split_address
from redis import exceptions as rexc

from tests.conftest import make_state_dir, sdk_for

HOME = "us-east"


@pytest.fixture(scope="module")
def secure(state_dir_factory: list[Path]) -> Iterator[DevCluster]:
    state = make_state_dir("secure")
    state_dir_factory.append(state)
    cluster = DevCluster(state / "cluster")
    spec = dataclasses.replace(
        ClusterSpec.default(2, partitions=4), services="homeport.loadtest.apps:app", workers=1
    )
    assert not spec.insecure  # secure is the default
    cluster.up(spec)
    try:
        yield cluster
    finally:
        cluster.down()


@pytest.fixture(scope="module")
def topo(secure: DevCluster) -> Topology:
    return secure.topology


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA the cluster never heard of (what a client tricked into trusting an
    attacker's CA, or a server with a forged certificate, looks like)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "evil CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path_factory.mktemp("other-ca") / "evil-ca.pem"
    path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return path


def _expired_client_cert(topo: Topology, folder: Path) -> tuple[Path, Path]:
    """(certificate, key) signed by the cluster's own CA, expired yesterday."""
    tls = topo.security.tls  # type: ignore[union-attr]
    ca_cert = x509.load_pem_x509_certificate(tls.ca.read_bytes())
    ca_key = serialization.load_pem_private_key((tls.ca.parent / "ca.key").read_bytes(), None)
    now = datetime.datetime.now(datetime.UTC)
    key, cert = issue(
        ca_cert, ca_key, "expired client", ("127.0.0.1",),  # type: ignore[arg-type]
        now - datetime.timedelta(days=10), now - datetime.timedelta(days=1),
    )  # fmt: skip
    (folder / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "c.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return folder / "c.pem", folder / "c.key"


def _redis(
    topo: Topology, role: str | None, *, tls: bool = True, host_region: str = HOME, **extra: object
) -> redis.Redis:
    host, port = split_address(topo.region(host_region).redis.primary or "")
    kwargs = Identity.of(topo.security, role).redis_kwargs() if role else {}
    if role is None and tls:
        kwargs = {"ssl": True, "ssl_ca_certs": str(topo.security.tls.ca)}  # type: ignore[union-attr]
    return redis.Redis(host=host, port=port, socket_timeout=2, **{**kwargs, **extra})


def test_secret_files_are_private_and_the_topology_names_them_only(secure: DevCluster) -> None:
    folder = secure.state_dir / "secrets"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    values = secret_values(secure.state_dir)
    assert len(values) >= 10  # 4 roles x their servers, the replicator, etcd root
    for path in [*folder.iterdir(), secure.state_dir / "tls" / "server.key"]:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    text = secure.topology_path.read_text()
    argv = secure.table_path.read_text()
    for name, value in values.items():
        assert value not in text, f"{name} is inline in the topology"
        assert value not in argv, f"{name} is on a command line"


def test_redis_refuses_plaintext_anonymous_and_default_user(topo: Topology) -> None:
    plain = _redis(topo, None, tls=False)
    with pytest.raises(rexc.ConnectionError):
        plain.ping()
    anonymous = _redis(topo, None)
    with pytest.raises(rexc.AuthenticationError):
        anonymous.ping()
    default = _redis(topo, None, password="nopass")
    with pytest.raises((rexc.AuthenticationError, rexc.ResponseError)):
        default.ping()
    for client in (plain, anonymous, default):
        client.close()


def test_gateway_credentials_cannot_take_over_or_read_other_roles_keys(topo: Topology) -> None:
    gateway = _redis(topo, "gateway")
    try:
        assert gateway.ping()
        for command in (("REPLICAOF", "127.0.0.1", "1"), ("CONFIG", "GET", "*"),
                        ("CLIENT", "KILL", "TYPE", "normal"), ("FLUSHALL",)):  # fmt: skip
            with pytest.raises(rexc.NoPermissionError):
                gateway.execute_command(*command)
        lease = f"hp:{{{HOME}/0}}:lease"  # the workers' ownership of a partition
        with pytest.raises(rexc.NoPermissionError):
            gateway.hset(lease, "owner", "gateway")  # taking a partition over
        gateway.hget(lease, "owner")  # reading its owner is allowed (RegionStatus shows it)
        with pytest.raises(rexc.NoPermissionError):
            gateway.zrange(f"hp:{{{HOME}}}:workers", 0, -1)
        with pytest.raises(rexc.NoPermissionError):
            gateway.set("someone-elses-key", "x")  # outside homeport's key patterns
        assert gateway.xlen(f"hp:{{{HOME}/0}}:stream") >= 0  # its own keys: allowed
    finally:
        gateway.close()


def test_worker_credentials_cannot_fence_a_home(topo: Topology) -> None:
    worker = _redis(topo, "worker")
    agent = _redis(topo, "agent")
    epoch = f"hp:{{{HOME}/0}}:epoch"
    try:
        before = agent.get(epoch)
        with pytest.raises(rexc.NoPermissionError):
            worker.set(epoch, 10**9)
        fence = "redis.call('SET', KEYS[1], ARGV[1]) return 1"
        with pytest.raises(rexc.NoPermissionError):
            worker.eval(fence, 1, epoch, 10**9)
        with pytest.raises(rexc.NoPermissionError):
            worker.execute_command("REPLICAOF", "NO", "ONE")
        assert worker.get(epoch) == before  # it may read the epoch, not move it
        assert agent.get(epoch) == before
        assert agent.execute_command("CONFIG", "GET", "maxmemory-policy")  # the agent may
    finally:
        worker.close()
        agent.close()


async def test_etcd_refuses_anonymous_and_gateways_cannot_write_routes(topo: Topology) -> None:
    endpoints = endpoints_for(topo, "client")
    # Over TLS with the cluster's client certificate, but without a login: the
    # certificate's name is no etcd user, so it grants nothing.
    anonymous = make_client(endpoints, Identity.of(topo.security), username=None, password=None)
    try:
        with pytest.raises(aetcd.ClientError):
            await anonymous.get(f"{topo.etcd_prefix}/routing/{HOME}".encode())
    finally:
        await anonymous.close()
    gateway = await connect(endpoints, identity=Identity.of(topo.security, "gateway"))
    key = f"{topo.etcd_prefix}/routing/{HOME}".encode()
    try:
        route = await gateway.get(key)
        assert route is not None  # gateways read routes
        with pytest.raises(aetcd.ClientError, match="permission denied"):
            await gateway.put(key, b'{"hijacked": true}')
        with pytest.raises(aetcd.ClientError, match="permission denied"):
            await gateway.put(f"{topo.etcd_prefix}/controller/leader".encode(), b"me")
    finally:
        await gateway.close()
    operator = Identity.of(topo.security, "operator")
    client = make_client(endpoints, operator, password="guess")
    with pytest.raises(aetcd.ClientError, match="authentication failed"):
        await client.get(key)
    await client.close()


async def test_the_console_role_reads_etcd_and_can_write_nothing(topo: Topology) -> None:
    """The console's pages log in as `console`: routes readable, nothing writable, and
    no Redis or PostgreSQL login at all (its actions open the operator's)."""
    console = Identity.of(topo.security, "console")
    assert console.redis_kwargs().get("credential_provider") is None
    assert "user" not in console.pg_kwargs()
    client = await connect(endpoints_for(topo, "client"), identity=console)
    key = f"{topo.etcd_prefix}/routing/{HOME}".encode()
    try:
        assert await client.get(key) is not None
        with pytest.raises(aetcd.ClientError, match="permission denied"):
            await client.put(key, b'{"hijacked": true}')
        with pytest.raises(aetcd.ClientError, match="permission denied"):
            await client.delete(f"{topo.etcd_prefix}/controller/leader".encode())
    finally:
        await client.close()


async def test_etcd_refuses_plaintext_no_certificate_an_expired_one_and_another_ca(
    topo: Topology, other_ca: Path, tmp_path: Path
) -> None:
    """etcd's client port speaks TLS only and wants a client certificate from the
    cluster's CA; a client verifies the member against that CA. The same operator
    login succeeds over the right channel, so each refusal is the channel's."""
    operator = Identity.of(topo.security, "operator")
    tls = operator.etcd_tls()
    assert tls is not None, "a secure cluster's etcd client port speaks TLS"
    endpoint = endpoints_for(topo, "client")[0]
    host, port = split_address(endpoint)
    key = f"{topo.etcd_prefix}/routing/{HOME}".encode()

    async def read(client: aetcd.Client) -> object:
        try:
            return await client.get(key)
        finally:
            await client.close()

    assert await read(TlsClient(tls, host, host=host, port=port, **operator.etcd_kwargs()))
    plain = aetcd.Client(host=host, port=port, timeout=2, **operator.etcd_kwargs())
    with pytest.raises(aetcd.ConnectionFailedError):
        await read(plain)
    evil = TlsFiles(ca=other_ca, cert=tls.cert, key=tls.key)
    with pytest.raises(aetcd.ConnectionFailedError):
        await read(TlsClient(evil, host, host=host, port=port, **operator.etcd_kwargs()))
    cert, cert_key = _expired_client_cert(topo, tmp_path)
    expired = TlsFiles(ca=tls.ca, cert=cert, key=cert_key)
    with pytest.raises(aetcd.ConnectionFailedError):
        await read(TlsClient(expired, host, host=host, port=port, **operator.etcd_kwargs()))
    # No client certificate at all (a TLS client that trusts the right CA).
    channel = grpc.aio.secure_channel(endpoint, grpc.ssl_channel_credentials(tls.ca.read_bytes()))
    try:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await rpc.MaintenanceStub(channel).Status(rpc.StatusRequest(), timeout=2)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await channel.close()


async def test_postgres_refuses_plaintext_and_wrong_password_and_limits_roles(
    topo: Topology,
) -> None:
    dsn = topo.region(HOME).postgres
    gateway = Identity.of(topo.security, "gateway").pg_kwargs()
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError):
        await asyncpg.connect(dsn, **(gateway | {"ssl": False}))
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(dsn, **(gateway | {"password": "guess"}))
    conn = await asyncpg.connect(dsn, **gateway)
    try:
        assert await conn.fetchval("SELECT count(*) FROM tasks") >= 0  # gateways read
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM tasks")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("UPDATE tasks SET status = 'succeeded'")
        method = await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert method is True
    finally:
        await conn.close()
    worker = await asyncpg.connect(dsn, **Identity.of(topo.security, "worker").pg_kwargs())
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await worker.execute("DROP TABLE attempts")
    finally:
        await worker.close()


def test_a_wrong_ca_or_an_expired_certificate_is_refused_by_redis(
    topo: Topology, other_ca: Path, tmp_path: Path
) -> None:
    # A client that trusts another CA refuses the server (verify-full).
    auth = Identity.of(topo.security, "operator").redis_kwargs() | {"ssl_ca_certs": str(other_ca)}
    client = _redis(topo, None, **auth)
    with pytest.raises(rexc.ConnectionError, match="certificate verify failed"):
        client.ping()
    client.close()
    # A client certificate signed by the cluster's CA but expired is refused by Redis.
    cert, key = _expired_client_cert(topo, tmp_path)
    auth = Identity.of(topo.security, "operator").redis_kwargs()
    expired = _redis(topo, None, **auth, ssl_certfile=str(cert), ssl_keyfile=str(key))
    with pytest.raises(rexc.ConnectionError):
        expired.ping()
    expired.close()


async def test_a_postgres_client_trusting_another_ca_refuses_the_server(
    topo: Topology, other_ca: Path
) -> None:
    """verify-full: the server's certificate must chain to the CA the client trusts. The
    same login with the cluster's CA connects, so the refusal is the certificate's."""
    dsn = topo.region(HOME).postgres
    gateway = Identity.of(topo.security, "gateway").pg_kwargs()
    conn = await asyncpg.connect(dsn, **gateway)
    await conn.close()
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        await asyncpg.connect(dsn, **(gateway | {"ssl": client_tls_context(other_ca)}))


async def test_tasks_run_end_to_end_and_no_secret_reaches_a_log_or_status(
    secure: DevCluster, topo: Topology
) -> None:
    run = uuid.uuid4().hex[:8]
    async with sdk_for(secure) as sdk:
        ids = [
            (await sdk.submit("noop", f"{run}-{i}", durability="REGION")).task_id for i in range(20)
        ]
    dsn = topo.region(HOME).postgres
    owner = Identity.of(topo.security, "operator").pg_kwargs()
    done: set[str] = set()
    for _ in range(200):
        conn = await asyncpg.connect(dsn, **owner)
        other = await asyncpg.connect(topo.region("eu-west").postgres, **owner)
        try:
            for c in (conn, other):
                rows = await c.fetch("SELECT id FROM tasks WHERE status = 'succeeded'")
                done |= {r["id"] for r in rows} & set(ids)
        finally:
            await conn.close()
            await other.close()
        if len(done) == len(ids):
            break
        await asyncio.sleep(0.1)
    assert done == set(ids), "secured workers ran every acknowledged task"
    status = subprocess.run(
        [sys.executable, "-m", "homeport", "dev", "status", "--state-dir", str(secure.state_dir)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    shown = status.stdout + status.stderr  # the table goes to the terminal (stderr)
    assert status.returncode == 0 and "healthy" in shown, shown
    assert any(p.name.startswith("worker-") for p in secure.logs.iterdir())
    checked, leaks = find_leaks(secure.state_dir)
    assert checked >= 10 and leaks == []
    for name, value in secret_values(secure.state_dir).items():
        assert value not in shown, f"{name} in dev status"


async def test_rotating_the_gateway_redis_password_loses_no_submit(
    secure: DevCluster, topo: Topology
) -> None:
    """Rotation under load: every submit is acknowledged while the password changes and
    while every gateway connection is forced to log in again, which only the new
    password can do by then."""
    old = secret_values(secure.state_dir)["redis-gateway"]
    new = secrets.token_urlsafe(24)
    acked: list[str] = []
    failed: list[Exception] = []
    stop = asyncio.Event()

    async def until(n: int) -> None:
        for _ in range(600):
            if len(acked) >= n or failed:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"only {len(acked)} of {n} submits acknowledged in 30 s")

    async with sdk_for(secure) as sdk:

        async def load() -> None:
            i = 0
            while not stop.is_set():
                try:
                    done = await sdk.submit("noop", f"rot-{i}", durability="REGION")
                    acked.append(done.task_id)
                except Exception as exc:  # noqa: BLE001 - counted and asserted below
                    failed.append(exc)
                i += 1

        task = asyncio.create_task(load())
        await until(10)
        await rotate_redis_password(topo, "gateway", new)
        killed = 0
        for region in topo.regions:
            operator = _redis(topo, "operator", host_region=region.name)
            killed += int(operator.execute_command("CLIENT", "KILL", "USER", "gateway"))
            operator.close()
        assert killed > 0, "the gateways held connections to kill"
        await until(len(acked) + 30)
        stop.set()
        await task
    assert failed == []
    with pytest.raises(rexc.AuthenticationError):
        _redis(topo, None, username="gateway", password=old).ping()
    fresh = _redis(topo, None, username="gateway", password=new)
    assert fresh.ping()
    fresh.close()
    operator = _redis(topo, "operator")
    users = [c["user"] for c in operator.client_list()]
    operator.close()
    assert "gateway" in users, "the gateways logged in again, with the new password"


def test_a_production_role_without_credentials_refuses_to_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMEPORT_")}
    argv = [sys.executable, "-m", "homeport", "worker", "--app", "homeport.loadtest.apps:app",
            "--redis-url", "redis://127.0.0.1:1/0"]  # fmt: skip
    refused = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    assert refused.returncode != 0
    assert "HOMEPORT_SECURITY_FILE" in refused.stderr and "--insecure" in refused.stderr
    missing = tmp_path / "topology.yaml"
    secret = tmp_path / "gone"
    missing.write_text(
        "security:\n  roles:\n    worker:\n"
        f"      redis: {{user: worker, password: {{file: {secret}}}}}\n"
        f"      postgres: {{user: w, password: {{file: {secret}}}}}\n"
    )
    refused = subprocess.run(
        argv, capture_output=True, text=True, timeout=60,
        env=env | {"HOMEPORT_SECURITY_FILE": str(missing)},
    )  # fmt: skip
    assert refused.returncode != 0
    assert "security.roles.worker.redis.password" in refused.stderr


def test_secret_ref_never_holds_a_value() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        SecretRef.model_validate({"file": "/a", "env": "B"})
    with pytest.raises(ValueError):
        SecretRef.model_validate({"value": "hunter2"})
