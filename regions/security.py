"""What `homeport dev up` makes to run the local cluster secure by default: a password
per role and server, a throwaway CA and a server certificate, and each server's share of
the roles (Redis ACL users, PostgreSQL roles with SCRAM-SHA-256, etcd users and roles).

Everything lands in the state directory: `secrets/` (mode 0700, files 0600) and `tls/`.
The topology written next to them names the files, never the values
(`core.security`). docs/security.md has the roles table this module implements.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from pathlib import Path

import asyncpg
import redis.asyncio as aredis
from aetcd import rpc
from aetcd.rpc import auth_pb2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from homeport.core.security import (
    ROLES,
    Identity,
    Login,
    RoleLogins,
    SecretRef,
    SecurityConfig,
)
from homeport.core.store import RecordStore
from homeport.regions.certs import make_tls, pem_key, write_secret
from homeport.regions.control import ControlPlane
from homeport.regions.etcd import tls_channel
from homeport.regions.topology import Topology, split_address

# PostgreSQL user of each role. The operator owns the databases and runs migrations;
# workers write records; gateways (and the agent, which reads nothing today) read them.
PG_USERS = {"operator": "hp_owner", "worker": "hp_worker", "gateway": "hp_gateway"}
# etcd user of each role; workers never talk to etcd.
# The console's pages read etcd only (records come through the gateways' gRPC API, Redis
# only inside promote/failback, which run as the operator): it has no Redis or
# PostgreSQL login of its own.
ETCD_USERS = {"gateway": "gateway", "agent": "agent", "operator": "operator", "console": "console"}
REDIS_USERS = {"gateway": "gateway", "worker": "worker", "agent": "agent", "operator": "operator"}
REPLICATION_USER = "replicator"

# Redis key patterns (core/keys.py). The epoch of a partition is what fencing raises: the
# gateway may raise it only through the enqueue script, carrying the epoch of the route
# it read from etcd; workers may only read it.
_DATA = ["stream", "delayed", "delayed:data", "dedup:*", "cancelled", "dead"]
_OWNERSHIP = ["lease", "fence", "started", "workers", "assignment", "leader", "leader:fence"]
_ADMIN_CMDS = "+@all"
_CLIENT_CMDS = (
    "-@all +@read +@write +@scripting +@connection +@transaction +@stream +@hash "
    "+@sortedset +@string +@keyspace -@admin -@dangerous "
    "+info +wait +cluster|slots +cluster|shards +cluster|info +cluster|myid "
    "+client|setname +client|id +role"
)


# The pub/sub channels (`core.keys.RegionKeys`): enqueue.lua announces delayed tasks on
# `due` (whoever enqueues publishes), the partition owners' forwarders listen; a fence
# (agents, operators) announces its epoch on `fenced`, parked workers listen.
_CHANNELS = "resetchannels &hp:{*}:due &hp:{*}:fenced"


def _keys(patterns: list[str], prefix: str = "~") -> str:
    return " ".join(f"{prefix}hp:{{*}}:{p}" for p in patterns)


REDIS_RULES = {
    # `kinds`: workers announce the kinds they run, gateways read them (refuse others).
    # `lease`: read only, for the partition's owner in RegionStatus (the console shows it).
    "gateway": f"resetkeys {_keys([*_DATA, 'epoch'])} %R~hp:{{*}}:started %R~hp:{{*}}:kinds "
    f"%R~hp:{{*}}:lease {_CHANNELS} {_CLIENT_CMDS} +publish",
    "worker": f"resetkeys {_keys([*_DATA, *_OWNERSHIP, 'kinds'])} %R~hp:{{*}}:epoch {_CHANNELS} "
    f"{_CLIENT_CMDS} +publish +subscribe +unsubscribe",
    "agent": f"resetkeys ~hp:* {_CHANNELS} {_ADMIN_CMDS}",
    "operator": f"resetkeys ~hp:* {_CHANNELS} {_ADMIN_CMDS}",
}


def _password(folder: Path, name: str) -> SecretRef:
    path = folder / name
    write_secret(path, secrets.token_urlsafe(24))
    return SecretRef(file=path)


def generate(state_dir: Path, insecure: bool = False, tls: bool = True) -> SecurityConfig:
    """Make every secret and certificate of a new local cluster under `state_dir`."""
    if insecure:
        return SecurityConfig(insecure=True)
    folder = state_dir / "secrets"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    roles = {}
    for role in ROLES:
        pg, etcd, user = PG_USERS.get(role), ETCD_USERS.get(role), REDIS_USERS.get(role)
        roles[role] = RoleLogins(
            redis=Login(user=user, password=_password(folder, f"redis-{role}")) if user else None,
            postgres=Login(user=pg, password=_password(folder, f"postgres-{role}")) if pg else None,
            etcd=Login(user=etcd, password=_password(folder, f"etcd-{role}")) if etcd else None,
        )
    replication = Login(user=REPLICATION_USER, password=_password(folder, "redis-replicator"))
    _password(folder, "etcd-root")
    files = make_tls(state_dir / "tls") if tls else None
    return SecurityConfig(tls=files, replication=replication, roles=roles)  # type: ignore[arg-type]


def cluster_security(
    state_dir: Path, insecure: bool = False, shared: SecurityConfig | None = None
) -> SecurityConfig:
    """The security of a new local cluster: fresh (`generate`), or `shared` credentials
    and CA made once for several clusters (a test session's clusters share one set, so
    one HOMEPORT_SECURITY_FILE serves them all). Each cluster still gets its own
    `secrets/` for what is its alone (etcd root, JWT keys, Redis ACL and config)."""
    if shared is None or insecure:
        return generate(state_dir, insecure)
    folder = state_dir / "secrets"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    _password(folder, "etcd-root")
    return shared


# ---- TLS -------------------------------------------------------------------------------


# ---- Redis -----------------------------------------------------------------------------


def _sha(secret: SecretRef, where: str) -> str:
    return "#" + hashlib.sha256(secret.read(where).encode()).hexdigest()


def redis_acl(config: SecurityConfig) -> str:
    """The ACL file every Redis node loads: `default` off, one user per role, the
    replication user. Passwords appear only as SHA-256 hashes."""
    # `default` is off: no connection can log in as it, and an unauthenticated one gets
    # NOAUTH for everything. Its rights are those of the client that replays the AOF at
    # start-up: Redis 7.0 re-checks EXEC's commands against them, and drops every
    # MULTI/EXEC of the file (our scripts' effects) without them (redis/redis#14541).
    lines = ["user default off ~* &* +@all"]
    for role, logins in config.roles.items():
        if logins.redis is not None:
            where = f"security.roles.{role}.redis.password"
            lines.append(
                f"user {logins.redis.user} on {_sha(logins.redis.password, where)} "
                f"{REDIS_RULES[role]}"
            )
    if config.replication is not None:
        lines.append(
            f"user {config.replication.user} on "
            f"{_sha(config.replication.password, 'security.replication.password')} "
            "resetkeys -@all +psync +sync +replconf +ping"
        )
    return "\n".join(lines) + "\n"


def write_redis_conf(config: SecurityConfig, folder: Path) -> Path | None:
    """The config file every Redis node starts from (0600: it holds `masterauth`), or
    None for an insecure cluster."""
    if config.insecure:
        return None
    acl = folder / "redis.acl"
    write_secret(acl, redis_acl(config))
    lines = [f"aclfile {acl}"]
    if config.replication is not None:
        password = config.replication.password.read("security.replication.password")
        lines += [f"masteruser {config.replication.user}", f"masterauth {password}"]
    if config.tls is not None and config.tls.redis:
        lines += [
            f"tls-cert-file {config.tls.cert}",
            f"tls-key-file {config.tls.key}",
            f"tls-ca-cert-file {config.tls.ca}",
            "tls-auth-clients optional",
            "tls-replication yes",
            "tls-cluster yes",
        ]
    conf = folder / "redis.conf"
    write_secret(conf, "\n".join(lines) + "\n")
    return conf


# ---- PostgreSQL ------------------------------------------------------------------------


def pg_hba(config: SecurityConfig) -> str:
    """Unix-socket access (the socket sits in the 0700 state directory) for the launcher;
    TCP only with TLS and SCRAM-SHA-256 for everyone else."""
    if config.insecure:
        return "local all all trust\nhost all all 127.0.0.1/32 trust\n"
    tcp = "hostssl" if config.tls is not None and config.tls.postgres else "host"
    return (
        "local all all trust\n"
        f"{tcp} all all 127.0.0.1/32 scram-sha-256\n"
        "host all all 0.0.0.0/0 reject\n"
    )


def pg_tls_files(config: SecurityConfig, data_dir: Path, user: str | None) -> list[str]:
    """Copy the server certificate where PostgreSQL accepts it (its key owned by the
    server's user, 0600) and return the `-c` options that turn TLS on."""
    if config.insecure or config.tls is None or not config.tls.postgres:
        return []
    cert, key = data_dir / "server.crt", data_dir / "server.key"
    shutil.copyfile(config.tls.cert, cert)
    shutil.copyfile(config.tls.key, key)
    os.chmod(key, 0o600)
    if user is not None:
        for path in (cert, key):
            shutil.chown(path, user=user, group=user)
    return ["-c", "ssl=on", "-c", f"ssl_cert_file={cert}", "-c", f"ssl_key_file={key}"]


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def pg_roles_sql(config: SecurityConfig) -> str:
    """SQL (run as the superuser, once) creating each role's login with its password."""
    out = ["SET password_encryption = 'scram-sha-256';"]
    for role, logins in config.roles.items():
        if logins.postgres is not None:
            password = logins.postgres.password.read(f"security.roles.{role}.postgres.password")
            out.append(f'CREATE ROLE "{logins.postgres.user}" LOGIN PASSWORD {_quote(password)};')
    return "\n".join(out) + "\n"


def pg_owner(config: SecurityConfig) -> str | None:
    logins = config.roles.get("operator")
    return logins.postgres.user if logins and logins.postgres else None


def pg_grants_sql(config: SecurityConfig, database: str) -> str:
    """Per database, run as its owner after the migrations: workers write records,
    gateways read them; nobody else connects."""
    users = {role: lg.postgres.user for role, lg in config.roles.items() if lg.postgres}
    out = [f'REVOKE ALL ON DATABASE "{database}" FROM PUBLIC;']
    for role, user in users.items():
        out.append(f'GRANT CONNECT, TEMPORARY ON DATABASE "{database}" TO "{user}";')
        if role == "worker":
            out += [
                f'GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO "{user}";',
                f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{user}";',
                "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE "
                f'ON TABLES TO "{user}";',
            ]
        elif role != "operator":
            out += [
                f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{user}";',
                f'ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO "{user}";',
            ]
    return "\n".join(out) + "\n"


# ---- etcd ------------------------------------------------------------------------------


def etcd_jwt_keys(state_dir: Path) -> tuple[Path, Path]:
    """A key pair for etcd's JWT tokens: every member verifies a token any member issued
    (etcd's default 'simple' tokens are only known to the member that issued them, so a
    client failing over to another member would be refused)."""
    folder = state_dir / "secrets"
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = folder / "etcd-jwt.key", folder / "etcd-jwt.pub"
    write_secret(private, pem_key(key))
    write_secret(
        public,
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    return private, public


def _prefix_range(prefix: str) -> tuple[bytes, bytes]:
    key = prefix.encode()
    return key, key[:-1] + bytes([key[-1] + 1])


async def etcd_enable_auth(
    endpoint: str, config: SecurityConfig, prefix: str, root: SecretRef
) -> None:
    """Create the users and roles, then turn auth on (through one member; Raft carries
    it to the others). Gateways read routes and keep their registration; the agent and
    the operator read and write the deployment's prefix."""
    base = prefix.rstrip("/") + "/"
    grants: dict[str, list[tuple[int, str]]] = {
        "gateway": [(auth_pb2.Permission.READ, base + "routing/"),
                    (auth_pb2.Permission.READWRITE, base + "gateways/")],
        "agent": [(auth_pb2.Permission.READWRITE, base)],
        "operator": [(auth_pb2.Permission.READWRITE, base)],
        "console": [(auth_pb2.Permission.READ, base)],
    }  # fmt: skip
    tls = config.tls if config.tls is not None and config.tls.etcd else None
    if tls is None:
        channel = rpc.insecure_channel(endpoint)
    else:
        channel = tls_channel(endpoint, tls, tls.etcd_server_name or split_address(endpoint)[0])
    try:
        stub = rpc.AuthStub(channel)
        await stub.UserAdd(rpc.AuthUserAddRequest(name="root", password=root.read("etcd root")))
        await stub.UserGrantRole(rpc.AuthUserGrantRoleRequest(user="root", role="root"))
        for role, logins in config.roles.items():
            if logins.etcd is None:
                continue
            name = logins.etcd.user
            password = logins.etcd.password.read(f"security.roles.{role}.etcd.password")
            await stub.RoleAdd(rpc.AuthRoleAddRequest(name=name))
            for perm, key_prefix in grants[role]:
                key, end = _prefix_range(key_prefix)
                await stub.RoleGrantPermission(
                    rpc.AuthRoleGrantPermissionRequest(
                        name=name, perm=auth_pb2.Permission(permType=perm, key=key, range_end=end)
                    )
                )
            await stub.UserAdd(rpc.AuthUserAddRequest(name=name, password=password))
            await stub.UserGrantRole(rpc.AuthUserGrantRoleRequest(user=name, role=name))
        await stub.AuthEnable(rpc.AuthEnableRequest())
    finally:
        await channel.close()


def etcd_flags(config: SecurityConfig | None, state_dir: Path) -> tuple[str, str, list[str]]:
    """(client URL scheme, peer URL scheme, extra flags) of every etcd member: JWT tokens
    once auth is on, client TLS with client certificates (processes of every region dial
    members of other regions), and peer TLS (Raft traffic crosses regions), with
    certificates from the dev CA."""
    if config is None or config.insecure:
        return "http", "http", []
    folder = state_dir / "secrets"
    private, public = folder / "etcd-jwt.key", folder / "etcd-jwt.pub"
    if not private.exists():
        private, public = etcd_jwt_keys(state_dir)
    flags = [
        "--auth-token",
        f"jwt,pub-key={public},priv-key={private},sign-method=ES256,ttl=24h",
        # bcrypt's cost protects human-chosen passwords; these are 144 random bits, and
        # cost 10 made each client's login take 0.3-0.8 s on a loaded 2-core machine.
        "--bcrypt-cost", "4",
    ]  # fmt: skip
    tls = config.tls
    schemes = []
    for enabled, kind in ((tls and tls.etcd, ""), (tls and tls.etcd_peer, "peer-")):
        schemes.append("https" if enabled and tls else "http")
        if enabled and tls:
            flags += [
                f"--{kind}cert-file", str(tls.cert),
                f"--{kind}key-file", str(tls.key),
                f"--{kind}trusted-ca-file", str(tls.ca),
                f"--{kind}client-cert-auth",
            ]  # fmt: skip
    return schemes[0], schemes[1], flags


async def prepare_etcd(topology: Topology, state_dir: Path) -> None:
    """Turn etcd auth on (secure clusters), then write the routing table as the operator,
    so no gateway ever needs to write a route."""
    config = topology.security
    if config is not None and not config.insecure:
        root = SecretRef(file=state_dir / "secrets" / "etcd-root")
        await etcd_enable_auth(topology.regions[0].etcd, config, topology.etcd_prefix, root)
    cp = await ControlPlane.open(topology, "client")
    try:
        await cp.routing.bootstrap(topology)
    finally:
        await cp.close()


async def prepare_databases(topology: Topology) -> None:
    """Apply the migrations as the owner, then grant each role its share (secure
    clusters); an insecure cluster's gateways migrate as before."""
    config = topology.security
    owner = Identity.of(config, "operator")
    for region in topology.regions:
        store = await RecordStore.connect(region.postgres, max_size=1, identity=owner)
        try:
            await store.migrate()
        finally:
            await store.close()
        if config is None or config.insecure:
            continue
        database = region.postgres.rsplit("/", 1)[1]
        conn = await asyncpg.connect(region.postgres, **owner.pg_kwargs())
        try:
            await conn.execute(pg_grants_sql(config, database))
        finally:
            await conn.close()


def secret_values(state_dir: Path) -> dict[str, str]:
    """Every password `generate` wrote for the cluster in `state_dir`, by file name."""
    folder = state_dir / "secrets"
    if not folder.is_dir():
        return {}
    return {
        p.name: p.read_text().strip()
        for p in sorted(folder.iterdir())
        if p.name.startswith(("redis-", "postgres-", "etcd-")) and not p.name.startswith("etcd-jwt")
    }


def find_leaks(state_dir: Path, also: tuple[Path, ...] = ()) -> tuple[int, list[str]]:
    """(secrets checked, where each one leaked): every password of the cluster searched
    in every log, the process table, the topology, and every file under `also` (a game
    day's reports). `secrets/` itself is where they belong and is not searched."""
    if not state_dir.is_dir():
        return 0, []
    values = secret_values(state_dir)
    files = [p for p in state_dir.iterdir() if p.is_file()]
    for folder in [state_dir / "logs", *also]:
        files += [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
    leaks = []
    for path in files:
        text = path.read_bytes()
        leaks += [f"{name} in {path}" for name, v in values.items() if v.encode() in text]
    return len(values), leaks


async def rotate_redis_password(topology: Topology, role: str, new: str) -> None:
    """Rotate `role`'s Redis password on every node without a moment when neither works:
    add the new password beside the old one, write it to the role's secret file (new
    connections read the file), then remove the old one. Connections already logged in
    stay logged in; a reconnect uses the new password. The ACL file is rewritten last,
    for nodes that restart later."""
    config = topology.security
    if config is None or config.insecure:
        raise ValueError("an insecure cluster has no passwords to rotate")
    logins = config.roles.get(role)  # type: ignore[call-overload]
    if logins is None or logins.redis is None or logins.redis.password.file is None:
        raise ValueError(f"role {role!r} has no Redis password file to rotate")
    user, secret = logins.redis.user, logins.redis.password
    old = secret.read(f"security.roles.{role}.redis.password")
    operator = Identity.of(config, "operator")
    nodes = [a for r in topology.regions for a in r.redis.addresses()]

    async def on_every_node(*rule: str) -> None:
        for address in nodes:
            host, port = address.rsplit(":", 1)
            client = aredis.Redis(host=host, port=int(port), **operator.redis_kwargs())
            try:
                await client.acl_setuser(user, enabled=True, passwords=list(rule))
            finally:
                await client.aclose()

    await on_every_node(f"+{new}")
    write_secret(secret.file, new)
    await on_every_node(f"-{old}")
    acl = secret.file.parent / "redis.acl"
    if acl.exists():
        write_secret(acl, redis_acl(config))
