"""Who a process is to the servers behind it, and how it proves it.

Every real server needs credentials (docs/security.md). A deployment's topology carries
a `security` section that says, per *role*, which user the role is on each server and
where its password lives (a file or an environment variable, never the value itself),
and where the CA and certificates are:

    security:
      tls: {ca: /state/tls/ca.pem, cert: /state/tls/server.pem, key: /state/tls/server.key}
      replication: {user: replicator, password: {file: /state/secrets/redis-replicator}}
      roles:
        gateway:
          redis: {user: gateway, password: {file: /state/secrets/redis-gateway}}
          postgres: {user: hp_gateway, password: {env: HP_PG_GATEWAY_PASSWORD}}
          etcd: {user: gateway, password: {file: /state/secrets/etcd-gateway}}

Roles: `gateway` (the enqueue path), `worker` (consume, record), `agent` (the region's
control plane: health, controller, promotion), `operator` (a person: the CLI, the
console's actions, game days), `console` (what the console's pages read: etcd only; its
records come through the gateways). An `Identity` is one role's view of that section; it builds the
connection arguments of redis-py, asyncpg and aetcd, reading each password when a
connection is made, so a rotated secret file is picked up without a restart.

A process finds its role and the file holding the section in `HOMEPORT_ROLE` and
`HOMEPORT_SECURITY_FILE` (the launcher sets both); a process without either connects
with no credentials, which only a server started `--insecure` accepts. Production
entry points call `Identity.require()`, which refuses to start without credentials
unless `HOMEPORT_INSECURE` is set.
"""

from __future__ import annotations

import functools
import logging
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import click
from homeport.core.errors import InvalidArgument
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from redis.asyncio.connection import SSLConnection
from redis.credentials import CredentialProvider

ROLES = ("gateway", "worker", "agent", "operator", "console")
Role = Literal["gateway", "worker", "agent", "operator", "console"]
ROLE_ENV = "HOMEPORT_ROLE"
FILE_ENV = "HOMEPORT_SECURITY_FILE"
INSECURE_ENV = "HOMEPORT_INSECURE"
# The servers each role talks to: the credentials `require()` insists on.
ROLE_SERVERS = {
    "gateway": ("redis", "postgres", "etcd"),
    "worker": ("redis", "postgres"),
    "agent": ("redis", "etcd"),
    "operator": ("redis", "postgres", "etcd"),
    "console": ("etcd",),
}
INSECURE_BANNER = (
    "INSECURE: started with --insecure: servers are reached without credentials and "
    "without TLS (docs/security.md, 'What --insecure gives up')"
)


class MissingCredentials(InvalidArgument):
    """A production role was started without the credentials it needs."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(_Model):
    """Where a secret lives: a file (mode 0600) or an environment variable. Never the
    value: a topology file is shared, logged and rendered; a secret is not."""

    file: Path | None = None
    env: str | None = None

    @model_validator(mode="after")
    def _one(self) -> SecretRef:
        if (self.file is None) == (self.env is None):
            raise ValueError("give exactly one of 'file' (a path) or 'env' (a variable name)")
        return self

    def read(self, where: str) -> str:
        """The secret's value; `where` names the setting in errors (never the value)."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if not value:
                raise MissingCredentials(
                    where, f"env {self.env}", "the environment variable is unset or empty"
                )
            return value
        path = Path(str(self.file))
        try:
            value = path.read_text().strip()
        except OSError as exc:
            raise MissingCredentials(where, str(path), f"cannot read: {exc.strerror}") from None
        if not value:
            raise MissingCredentials(where, str(path), "the secret file is empty")
        return value


class Login(_Model):
    """A user on one server and where its password is."""

    user: str
    password: SecretRef


class RoleLogins(_Model):
    redis: Login | None = None
    postgres: Login | None = None
    etcd: Login | None = None


class TlsFiles(_Model):
    """PEM files: the CA every client trusts, and the certificate servers present
    (issued for every name and IP clients dial, loopback included)."""

    ca: Path
    cert: Path
    key: Path
    # Which servers speak TLS (etcd: its client port; etcd_peer: Raft between members).
    redis: bool = True
    postgres: bool = True
    etcd: bool = True
    etcd_peer: bool = True
    # The name every etcd member's certificate carries, checked on each connection; by
    # default the host of the first endpoint a process dials (one gRPC channel spans
    # every member, so one name is checked for all of them: regions/etcd.py).
    etcd_server_name: str | None = None


class SecurityConfig(_Model):
    """The `security` section of a topology. `insecure: true` turns every check off."""

    insecure: bool = False
    tls: TlsFiles | None = None
    replication: Login | None = None  # the Redis user replicas (mirrors) sync as
    roles: dict[Role, RoleLogins] = {}


def run_plain() -> None:
    """Make this process and every process it starts run without credentials: drop the
    security file of the caller's environment (a shell next to a secure dev cluster has
    one) and say `--insecure`. For the benches, whose servers are their own and plain
    (docs/benchmarks.md): a security file there would ask a plain server for TLS."""
    os.environ.pop(FILE_ENV, None)
    os.environ[INSECURE_ENV] = "1"


def load_security(path: Path) -> SecurityConfig | None:
    """The `security` section of the YAML file at `path` (a topology), None if absent."""
    import yaml  # here, not at the top: most processes read no security file (config.py)

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidArgument(
            FILE_ENV, str(path), f"cannot read the security file: {exc}"
        ) from None
    section = data.get("security") if isinstance(data, dict) else None
    if section is None:
        return None
    try:
        return SecurityConfig.model_validate(section)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = "security." + ".".join(str(p) for p in err["loc"])
        raise InvalidArgument(field, "(see file)", f"{err['msg']} in {path}") from None


class _SharedContextSSLConnection(SSLConnection):
    """redis-py builds an SSL context for every new connection, loading the system's
    whole CA bundle each time: measured at 75 ms of CPU on an idle 2-core machine and
    300 ms under load, per connection. Every connection of the process that trusts the
    same CA file shares one context instead (`client_tls_context`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.ssl_context.ca_certs is not None:
            self.ssl_context.context = client_tls_context(Path(self.ssl_context.ca_certs))


class _FileCredentials(CredentialProvider):
    """redis-py asks for credentials on every new connection: a rotated secret file is
    used from the next connection on."""

    def __init__(self, login: Login, where: str) -> None:
        self._login = login
        self._where = where

    def get_credentials(self) -> tuple[str, str]:
        return self._login.user, self._login.password.read(self._where)

    async def get_credentials_async(self) -> tuple[str, str]:
        return self.get_credentials()


@dataclass(frozen=True)
class Identity:
    """One role's credentials (from `config`), or none (`config` None: anonymous)."""

    config: SecurityConfig | None
    role: str = "operator"

    @classmethod
    def of(cls, config: SecurityConfig | None, role: str | None = None) -> Identity:
        """`config` as the role this process runs as (`HOMEPORT_ROLE`, default
        operator: a person at the CLI)."""
        return cls(config, role or os.environ.get(ROLE_ENV) or "operator")

    @classmethod
    def from_env(cls) -> Identity:
        path = os.environ.get(FILE_ENV)
        return cls.of(load_security(Path(path)) if path else None)

    @property
    def insecure(self) -> bool:
        return self.config is None or self.config.insecure

    def require(self) -> Identity:
        """Refuse to run a production role without its credentials, naming the missing
        setting, unless `HOMEPORT_INSECURE` says so. Reads every secret once, so a
        missing file fails at start, not at the first connection."""
        if os.environ.get(INSECURE_ENV, "").lower() in ("1", "true", "yes"):
            return self
        if self.config is None:
            raise MissingCredentials(
                FILE_ENV, os.environ.get(FILE_ENV, "(unset)"),
                "no `security` section: point it at a topology that has one (`homeport "
                "dev up` writes one) or start with --insecure",
            )  # fmt: skip
        if self.config.insecure:
            return self
        logins = self.config.roles.get(self.role)  # type: ignore[call-overload]
        if logins is None:
            raise MissingCredentials(
                f"security.roles.{self.role}", None, "this role has no credentials"
            )
        for server in ROLE_SERVERS.get(self.role, ()):
            login = getattr(logins, server)
            if login is None:
                raise MissingCredentials(
                    f"security.roles.{self.role}.{server}", None, "missing for this role"
                )
            login.password.read(f"security.roles.{self.role}.{server}.password")
        return self

    def _login(self, server: str) -> Login | None:
        if self.config is None or self.config.insecure:
            return None
        logins = self.config.roles.get(self.role)  # type: ignore[call-overload]
        return getattr(logins, server) if logins is not None else None

    def _tls(self, server: str) -> TlsFiles | None:
        if self.config is None or self.config.insecure or self.config.tls is None:
            return None
        return self.config.tls if getattr(self.config.tls, server) else None

    # ---- Redis ---------------------------------------------------------------------------

    def _redis_credentials(self) -> dict[str, Any]:
        login = self._login("redis")
        if login is None:
            return {}
        where = f"security.roles.{self.role}.redis.password"
        return {"credential_provider": _FileCredentials(login, where)}

    def redis_kwargs(self) -> dict[str, Any]:
        """Arguments for `redis.Redis(host=..., port=..., **kwargs)` (sync or asyncio)."""
        out = self._redis_credentials()
        tls = self._tls("redis")
        if tls is not None:
            out.update(ssl=True, ssl_ca_certs=str(tls.ca), ssl_check_hostname=True)
        return out

    def redis_pool_kwargs(self) -> dict[str, Any]:
        """Arguments for an asyncio connection pool (`BlockingConnectionPool(...)`)."""
        out = self._redis_credentials()
        tls = self._tls("redis")
        if tls is not None:
            out.update(
                connection_class=_SharedContextSSLConnection,
                ssl_ca_certs=str(tls.ca),
                ssl_check_hostname=True,
            )
        return out

    def redis_cli_args(self) -> tuple[list[str], dict[str, str]]:
        """(arguments, environment) for `redis-cli`: the password goes in REDISCLI_AUTH,
        never on a command line (`ps` shows those to every user)."""
        login = self._login("redis")
        args: list[str] = []
        env: dict[str, str] = {}
        if login is not None:
            args += ["--user", login.user]
            env["REDISCLI_AUTH"] = login.password.read(f"security.roles.{self.role}.redis.password")
        tls = self._tls("redis")
        if tls is not None:
            args += ["--tls", "--cacert", str(tls.ca)]
        return args, env

    # ---- PostgreSQL ----------------------------------------------------------------------

    def pg_kwargs(self) -> dict[str, Any]:
        """Arguments for `asyncpg.connect(dsn, **kwargs)` / `create_pool`: the role's
        user and password (read at each connection), and `sslmode=verify-full`."""
        out: dict[str, Any] = {}
        login = self._login("postgres")
        if login is not None:
            where = f"security.roles.{self.role}.postgres.password"
            password: Callable[[], str] = lambda: login.password.read(where)  # noqa: E731
            out.update(user=login.user, password=password)
        tls = self._tls("postgres")
        if tls is not None:
            out["ssl"] = client_tls_context(tls.ca)
        return out

    # ---- etcd ----------------------------------------------------------------------------

    def etcd_kwargs(self) -> dict[str, Any]:
        """Arguments for `aetcd.Client(...)`: the role's etcd user and password."""
        login = self._login("etcd")
        if login is None:
            return {}
        where = f"security.roles.{self.role}.etcd.password"
        return {"username": login.user, "password": login.password.read(where)}

    def etcd_tls(self) -> TlsFiles | None:
        """The CA to verify etcd members with and the certificate to present to them
        (members run `--client-cert-auth`), or None for a plaintext client port."""
        return self._tls("etcd")


@functools.lru_cache(maxsize=8)
def client_tls_context(ca: Path) -> ssl.SSLContext:
    """Verify the server's certificate against `ca` and its name or IP (verify-full).
    One per CA file and process: building one costs milliseconds of CPU."""
    context = ssl.create_default_context(cafile=str(ca))
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def insecure_option(role: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The `--insecure` flag of a server command (`HOMEPORT_INSECURE` too), one wording."""
    article = "an" if role[:1] in "aeiou" else "a"
    return click.option(
        "--insecure",
        is_flag=True,
        envvar="HOMEPORT_INSECURE",
        help=f"Run without credentials for the servers (docs/security.md); without it, "
        f"{article} {role} with no credentials refuses to start, naming the missing setting.",
    )


def cluster_insecure_option(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The `--insecure` flag of a command that starts a whole local cluster (`dev up`,
    the demo, game days): the servers get no credentials and no TLS. One wording."""
    return click.option(
        "--insecure",
        is_flag=True,
        help=f"Run the cluster without credentials and TLS (docs/security.md), e.g. to "
        f"measure what security costs; {what} secure by default.",
    )


def start_role_or_usage(role: Role, security_file: Path | None, insecure: bool) -> None:
    """`start_role` for a CLI command: a missing credential is a usage error."""
    try:
        start_role(role, security_file, insecure)
    except InvalidArgument as exc:
        raise click.UsageError(str(exc)) from None


def start_role(role: Role, security_file: Path | None, insecure: bool = False) -> Identity:
    """Called first by every production entry point (gateway, worker, agent): records
    the role and the security file in the environment (the processes it starts inherit
    them), refuses to go on without credentials (unless `insecure`), and says loudly in
    the process's first log line when it runs insecure."""
    os.environ[ROLE_ENV] = role
    if security_file is not None:
        os.environ[FILE_ENV] = str(security_file.resolve())
    if insecure:
        os.environ[INSECURE_ENV] = "1"
    identity = Identity.from_env().require()
    if identity.insecure:
        logging.getLogger("homeport.security").warning("%s (%s)", INSECURE_BANNER, role)
    return identity
