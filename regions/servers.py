"""How each kind of server of the local cluster is found, started and probed.

Only argument lists and readiness probes live here; `devcluster` decides what runs where.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import requests
from homeport.core.security import TlsFiles
from homeport.regions.errors import LaunchError

_REPO_TOOLS = Path(__file__).resolve().parent.parent / ".tools" / "bin"


def _find(name: str, env: str, extra: list[Path] | None = None) -> str:
    override = os.environ.get(env)
    if override:
        return override
    found = shutil.which(name)
    if found:
        return found
    for folder in extra or []:
        candidate = folder / name
        if candidate.exists():
            return str(candidate)
    return name  # spawning it fails with a LaunchError that names the component


def _postgres_bindir() -> Path:
    override = os.environ.get("HOMEPORT_PG_BINDIR")
    if override:
        return Path(override)
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
    )
    if versions:
        return Path(versions[-1])
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else Path("/usr/lib/postgresql/15/bin")


@dataclass(frozen=True)
class Binaries:
    """Where each server binary is. Defaults: `HOMEPORT_*` variable, then PATH, then the
    project's `.tools/bin` (where `make` installs Toxiproxy)."""

    redis_server: str = field(
        default_factory=lambda: _find("redis-server", "HOMEPORT_REDIS_SERVER")
    )
    redis_cli: str = field(default_factory=lambda: _find("redis-cli", "HOMEPORT_REDIS_CLI"))
    etcd: str = field(default_factory=lambda: _find("etcd", "HOMEPORT_ETCD"))
    toxiproxy: str = field(
        default_factory=lambda: _find(
            "toxiproxy-server", "HOMEPORT_TOXIPROXY_SERVER", [_REPO_TOOLS]
        )
    )
    pg_bindir: Path = field(default_factory=_postgres_bindir)
    prometheus: str = field(
        default_factory=lambda: _find("prometheus", "HOMEPORT_PROMETHEUS", [_REPO_TOOLS])
    )


# ---- Redis -------------------------------------------------------------------------------


def redis_argv(
    binary: str,
    port: int,
    data_dir: Path,
    replica_of: str | None = None,
    cluster: bool = False,
    conf: Path | None = None,
    tls: bool = False,
) -> list[str]:
    """`conf`: the secured cluster's config file (ACL file, replication login, TLS
    files: `regions.security`); with `tls` the node listens for TLS only."""
    ports = ["--port", "0", "--tls-port", str(port)] if tls else ["--port", str(port)]
    argv = [
        binary,
        *([str(conf)] if conf is not None else []),
        *ports,
        "--bind", "127.0.0.1",
        "--dir", str(data_dir),
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--protected-mode", "no",
        "--repl-diskless-sync", "yes",
        "--repl-diskless-sync-delay", "0",
        "--repl-timeout", "10",
        "--maxmemory-policy", "noeviction",
    ]  # fmt: skip
    if replica_of:
        host, _, rport = replica_of.rpartition(":")
        argv += ["--replicaof", host, rport, "--replica-read-only", "yes"]
    if cluster:
        argv += [
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(data_dir / "nodes.conf"),
            "--cluster-node-timeout", "1000",
            # Placement is the topology's: a replica never moves to another master (Redis
            # would move one to a master left without replicas, e.g. while the cluster is
            # formed, or after a failover), which could leave a shard without its mirror
            # in the standby region while GLOBAL's WAIT still counts two replicas.
            "--cluster-allow-replica-migration", "no",
            # A node keeps its data over a restart (the AOF is written before each reply,
            # so a SIGKILL loses no acknowledged write): a failed-over home's old master
            # comes back *held* with what its mirror never got (regions.clusterorphans).
            "--appendonly", "yes",
            "--appendfsync", "everysec",
        ]  # fmt: skip
    return argv


def hold_cluster_node(argv: Sequence[str]) -> Path:
    """Before a Redis Cluster node restarts: set its cluster config file aside (kept as
    `<file>.held`), so it starts under a new node id that no other node knows. It loads
    its data, claims the slots it holds keys of, and stays alone: the others ignore a
    node they never met, so it is not turned into a replica and resynced (which would drop
    what its mirror never got). It refuses writes (its cluster lacks most slots). Returns
    where the old file was kept."""
    if "--cluster-config-file" not in argv:
        raise LaunchError("redis", f"only a Redis Cluster node can be held: {' '.join(argv[:3])}")
    config = Path(argv[argv.index("--cluster-config-file") + 1])
    kept = config.with_name(config.name + ".held")
    if config.exists():
        config.replace(kept)
    return kept


def redis_probe(
    port: int, replica: bool = False, cluster: bool = False, auth: dict[str, Any] | None = None
) -> bool:
    """`auth`: credentials and TLS arguments (`Identity.redis_kwargs`)."""
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.5, **(auth or {}))
    try:
        if not client.ping():
            return False
        if replica:
            info = client.info("replication")
            return info.get("master_link_status") == "up"
        if cluster:
            info = client.cluster("INFO")  # parsed into a dict by redis-py
            return isinstance(info, dict) and info.get("cluster_state") == "ok"
        return True
    finally:
        client.close()


def create_redis_cluster(
    redis_cli: str,
    masters: list[str],
    replicas: list[list[str]],
    log: Path,
    cli: tuple[list[str], dict[str, str]] = ([], {}),
) -> None:
    """Make a Redis Cluster of `masters`, then attach `replicas[i]` to master i.

    Replicas are added one by one with `--cluster-slave --cluster-master-id` rather than
    `--cluster-replicas`, so placement is exact: the in-region replica and the standby
    region's mirror of each master are the nodes the topology says.
    """
    args, env = cli  # credentials go in the environment, never in argv (`ps`)
    env = {**os.environ, **env}
    run = _logged(log, env)
    redis_cli_auth = [redis_cli, *args]
    run(
        [
            *redis_cli_auth,
            "--cluster",
            "create",
            *masters,
            "--cluster-replicas",
            "0",
            "--cluster-yes",
        ]
    )
    for master, extra in zip(masters, replicas, strict=True):
        host, _, port = master.rpartition(":")
        node_id = subprocess.run(
            [*redis_cli_auth, "-h", host, "-p", port, "CLUSTER", "MYID"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout.strip()
        for replica in extra:
            run(
                [
                    *redis_cli_auth, "--cluster", "add-node", replica, master,
                    "--cluster-slave", "--cluster-master-id", node_id,
                ]
            )  # fmt: skip


def _logged(log: Path, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    def run(argv: list[str]) -> None:
        with log.open("ab") as out:
            done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=60, env=env)
        if done.returncode != 0:
            raise LaunchError("redis-cluster-create", f"{' '.join(argv[:3])} failed", log)

    return run


# ---- PostgreSQL ----------------------------------------------------------------------------


def pg_user() -> str | None:
    """PostgreSQL refuses to run as root: run it as `postgres` when we are root."""
    return "postgres" if os.geteuid() == 0 else None


def pg_initdb(bindir: Path, data_dir: Path, log: Path) -> None:
    user = pg_user()
    data_dir.mkdir(parents=True, exist_ok=True)
    if user is not None:
        shutil.chown(data_dir, user=user, group=user)
        shutil.chown(data_dir.parent, user=user, group=user)
    argv = [str(bindir / "initdb"), "-D", str(data_dir), "-A", "trust", "-E", "UTF8", "--no-sync",
            "-U", "postgres"]  # fmt: skip
    with log.open("ab") as out:
        try:
            done = subprocess.run(
                argv, stdout=out, stderr=subprocess.STDOUT, user=user, timeout=120
            )
        except OSError as exc:
            raise LaunchError("postgres", f"cannot run initdb: {exc.strerror}", log) from exc
    if done.returncode != 0:
        raise LaunchError("postgres", f"initdb exited with {done.returncode}", log)


def pg_argv(bindir: Path, data_dir: Path, port: int, extra: list[str] | None = None) -> list[str]:
    """`extra`: more `-c` options (TLS, from `regions.security`)."""
    return [*_pg_argv(bindir, data_dir, port), *(extra or [])]


def _pg_argv(bindir: Path, data_dir: Path, port: int) -> list[str]:
    return [
        str(bindir / "postgres"),
        "-D", str(data_dir),
        "-p", str(port),
        "-k", str(data_dir.parent),
        "-c", "listen_addresses=127.0.0.1",
        "-c", "fsync=off",
        "-c", "synchronous_commit=off",
        "-c", "full_page_writes=off",
        "-c", "max_connections=300",
        "-c", "shared_buffers=128MB",
    ]  # fmt: skip


def pg_probe(bindir: Path, port: int) -> bool:
    done = subprocess.run(
        [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"],
        capture_output=True,
        timeout=5,
    )
    return done.returncode == 0


def pg_create_databases(
    bindir: Path,
    port: int,
    names: list[str],
    log: Path,
    *,
    socket_dir: Path,
    setup: str = "",
    owner: str | None = None,
) -> None:
    """Create the region databases (owned by `owner`), after the SQL `setup` (roles).
    Runs as the superuser over the Unix socket in the state directory: TCP accepts only
    the roles' passwords."""
    owned = f' OWNER "{owner}"' if owner else ""
    sql = setup + "".join(f'CREATE DATABASE "{n}"{owned};\n' for n in names)
    with log.open("ab") as out:
        done = subprocess.run(
            [str(bindir / "psql"), "-h", str(socket_dir), "-p", str(port), "-U", "postgres",
             "-v", "ON_ERROR_STOP=1", "-q", "-d", "postgres"],
            input=sql.encode(),
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=60,
        )  # fmt: skip
    if done.returncode != 0:
        raise LaunchError("postgres", "creating the region databases failed", log)


# ---- etcd ----------------------------------------------------------------------------------


def etcd_argv(
    binary: str,
    name: str,
    data_dir: Path,
    client_port: int,
    peer_port: int,
    advertise_peer: str,
    initial_cluster: str,
    token: str,
    peer_scheme: str = "http",
    extra: list[str] | None = None,
    client_scheme: str = "http",
    metrics_port: int | None = None,
) -> list[str]:
    """`client_scheme`/`peer_scheme` https: client/peer TLS; `extra`: the auth and TLS
    flags (`regions.security`); `metrics_port`: plaintext /metrics and /health."""
    metrics = ["--listen-metrics-urls", f"http://127.0.0.1:{metrics_port}"] if metrics_port else []
    return [
        binary,
        "--name", name,
        "--data-dir", str(data_dir),
        "--listen-client-urls", f"{client_scheme}://127.0.0.1:{client_port}",
        "--advertise-client-urls", f"{client_scheme}://127.0.0.1:{client_port}",
        "--listen-peer-urls", f"{peer_scheme}://127.0.0.1:{peer_port}",
        "--initial-advertise-peer-urls", f"{peer_scheme}://{advertise_peer}",
        *(extra or []),
        *metrics,
        "--initial-cluster", initial_cluster,
        "--initial-cluster-state", "new",
        "--initial-cluster-token", token,
        "--heartbeat-interval", "100",
        "--election-timeout", "1000",
        # The etcd 3.5 default: a member that rejoins after a pause or partition asks
        # before it campaigns, so it cannot depose a healthy leader with a higher term.
        "--pre-vote",
        # Clients ping every 500 ms to notice a paused member (regions/etcd.py).
        "--grpc-keepalive-min-time", "200ms",
        "--logger", "zap",
        "--log-outputs", "stderr",
    ]  # fmt: skip


def etcd_probe(client_port: int, tls: TlsFiles | None = None) -> bool:
    """`tls`: the client port speaks TLS and wants a client certificate."""
    if tls is None:
        reply = requests.get(f"http://127.0.0.1:{client_port}/health", timeout=1)
    else:
        reply = requests.get(
            f"https://127.0.0.1:{client_port}/health",
            timeout=1,
            verify=str(tls.ca),
            cert=(str(tls.cert), str(tls.key)),
        )
    return reply.status_code == 200 and reply.json().get("health") == "true"


# ---- homeport's own processes -------------------------------------------------------------


def tcp_probe(port: int) -> bool:
    """True once something accepts connections on the port (a gateway is listening)."""
    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True


# ---- Toxiproxy -----------------------------------------------------------------------------


def toxiproxy_argv(binary: str, api_port: int, config: Path, seed: int) -> list[str]:
    return [
        binary,
        "-host", "127.0.0.1",
        "-port", str(api_port),
        "-config", str(config),
        "-seed", str(seed),
    ]  # fmt: skip


def toxiproxy_probe(api_port: int, expected: int) -> bool:
    reply = requests.get(f"http://127.0.0.1:{api_port}/proxies", timeout=1)
    return reply.status_code == 200 and len(reply.json()) == expected
