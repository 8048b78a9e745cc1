"""Throwaway Redis, PostgreSQL and SASL Kafka servers, for tests and benchmarks.

Redis and PostgreSQL are the Debian packages' binaries; the SASL Kafka is the local
stack's Kafka (its jars, its KRaft config) with a SCRAM listener and an authorizer.

Each server runs on a free port of 127.0.0.1 with its files in a fresh temporary
directory, and is gone when its ``with`` block ends. A server never outlives the
process that started it: it runs in its own process group (a Ctrl-C reaches the
tests, which stop it in order) and with a parent-death signal (``setpriv
--pdeathsig``), so the kernel stops it if that process dies, even by SIGKILL.
Start servers from the main thread: the parent-death signal follows the thread
that started the server.

PostgreSQL refuses to run as root; as root, ``initdb`` and ``postgres`` run as
the ``postgres`` system user (``setpriv --reuid``, which, unlike ``runuser``,
leaves no root process in between, so the death signal reaches the server itself).

    with running_redis() as redis_server, running_postgres() as postgres_server:
        url = postgres_server.sqlalchemy_url(postgres_server.create_database())
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError
from psycopg import sql
from pydantic import SecretStr

from berg.kafka.security import client_security
from berg.settings import KafkaSettings
from berg_app.stack import kafka
from berg_app.stack.layout import StateLayout
from berg_app.stack.probes import port_open
from berg_app.stack.settings import StackSettings
from tests.helpers import free_port, free_port_table, wait_for

__all__ = [
    "PostgresServer",
    "RedisServer",
    "SaslKafka",
    "ServerProcess",
    "postgres_bin_dir",
    "running_http_server",
    "running_postgres",
    "running_redis",
    "running_sasl_kafka",
]

HOST = "127.0.0.1"
_REDIS_DATABASES = 16
"""redis-server's default ``databases``: the indexes :meth:`RedisServer.allocate_db` hands out."""


def postgres_bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` (Debian keeps these off PATH), else initdb's folder on PATH.

    Raises:
        RuntimeError: PostgreSQL is not installed.
    """
    candidates = sorted(
        (path for path in Path("/usr/lib/postgresql").glob("*/bin") if (path / "initdb").exists()),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1]
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    raise RuntimeError("PostgreSQL is not installed (initdb not found): run scripts/bootstrap.sh")


class ServerProcess:
    """A server child process in its own process group, logging to a file."""

    def __init__(
        self,
        argv: Sequence[str],
        log_path: Path,
        death_signal: str,
        run_as: pwd.struct_passwd | None,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        """``environment`` replaces the inherited one when given."""
        self.log_path = log_path
        prefix = ["setpriv", f"--pdeathsig={death_signal}"]
        if run_as is not None:
            prefix += [f"--reuid={run_as.pw_uid}", f"--regid={run_as.pw_gid}", "--init-groups"]
        with open(log_path, "ab") as log:
            self.popen = subprocess.Popen(
                [*prefix, "--", *argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                env=None if environment is None else dict(environment),
            )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self, what: str) -> None:
        """Raise at once when the server already exited, instead of polling it to the timeout."""
        if not self.alive():
            raise RuntimeError(f"{what} exited with {self.popen.returncode}:\n{self.log_tail()}")

    def stop(self, sig: signal.Signals, timeout_s: float) -> bool:
        """Send ``sig`` and wait; SIGKILL the process group after ``timeout_s``.

        Returns:
            True when the server exited by itself with status 0 (a clean shutdown).
        """
        if self.alive():
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=timeout_s)
                return False
        return self.popen.returncode == 0


@dataclass
class RedisServer:
    """A running redis-server without persistence."""

    port: int
    host: str = HOST
    _next_db: int = field(default=1, repr=False)

    def connection_string(self, db: int = 0) -> str:
        """Feast's form: ``host:port[,db=N]``."""
        return f"{self.host}:{self.port}" + (f",db={db}" if db else "")

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, db=db, socket_timeout=10)

    def allocate_db(self) -> int:
        """A database index no one else got from this server, so users of one server never see each other's keys.

        Database 0, the default, is never handed out.

        Raises:
            RuntimeError: all 15 others are taken.
        """
        if self._next_db >= _REDIS_DATABASES:
            raise RuntimeError(f"all {_REDIS_DATABASES} Redis databases are allocated")
        db, self._next_db = self._next_db, self._next_db + 1
        return db


@dataclass
class PostgresServer:
    """A running PostgreSQL cluster with one login role that owns the databases it creates."""

    port: int
    socket_dir: Path
    user: str
    password: str
    database: str
    host: str = HOST
    _created: int = field(default=0, repr=False)

    def sqlalchemy_url(self, database: str | None = None, driver: str = "psycopg") -> str:
        """``postgresql+psycopg://user:password@host:port/database`` (TCP, password auth), as Feast takes it."""
        return f"postgresql+{driver}://{self.user}:{self.password}@{self.host}:{self.port}/{database or self.database}"

    def connect(self, database: str | None = None) -> psycopg.Connection:
        """A connection as the login role, over TCP with its password, like an application's."""
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=database or self.database,
            connect_timeout=10,
            autocommit=True,
        )

    def superuser_connect(self) -> psycopg.Connection:
        """A connection as the superuser over the Unix socket (trusted)."""
        return psycopg.connect(
            host=str(self.socket_dir), port=self.port, user="postgres", dbname="postgres", connect_timeout=10
        )

    def create_database(self, prefix: str = "berg") -> str:
        """A new empty database owned by the login role; returns its name."""
        self._created += 1
        name = f"{prefix}_{self._created}_{secrets.token_hex(3)}"
        with self.superuser_connect() as conn:
            conn.autocommit = True
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(self.user)))
        return name


@contextmanager
def running_http_server(binary: str, arguments: Sequence[str], log_path: Path, ready_url: str) -> Iterator[None]:
    """``binary`` (a Debian package's server: Prometheus, Alertmanager) until ``ready_url`` answers 200; SIGTERM at
    the end.

    Raises:
        RuntimeError: ``binary`` is not installed, or it exited while starting.
        AssertionError: it did not answer within the bound (only a hang: these are ready in a second or two).
    """
    found = shutil.which(binary)
    if found is None:
        raise RuntimeError(f"{binary} is not installed: run scripts/bootstrap.sh")
    process = ServerProcess([found, *arguments], log_path, death_signal="TERM", run_as=None)

    def ready() -> bool:
        process.check_alive(binary)
        try:
            return httpx.get(ready_url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(ready, 120, f"{binary} to be ready")
        yield
    finally:
        process.stop(signal.SIGTERM, 30)


@contextmanager
def running_redis(timeout_s: float = 30) -> Iterator[RedisServer]:
    """A redis-server on a free port of 127.0.0.1, no persistence, stopped (SIGTERM) at the end.

    Raises:
        RuntimeError: redis-server is missing or exited while starting.
        AssertionError: it did not answer PING within ``timeout_s``.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: run scripts/bootstrap.sh")
    workdir = Path(tempfile.mkdtemp(prefix="berg-redis-"))
    server = RedisServer(port=free_port())
    argv = [
        binary,
        "--port", str(server.port),
        "--bind", server.host,
        "--save", "",
        "--appendonly", "no",
        "--dir", str(workdir),
        "--daemonize", "no",
    ]  # fmt: skip
    process = ServerProcess(argv, workdir / "redis.log", death_signal="TERM", run_as=None)
    try:
        with server.client() as client:

            def answers() -> bool:
                process.check_alive("redis-server")
                try:
                    return bool(client.ping())
                except redis.ConnectionError:
                    return False

            wait_for(answers, timeout_s, f"redis-server on port {server.port} to answer PING")
        yield server
    finally:
        clean = process.stop(signal.SIGTERM, timeout_s)
        tail = process.log_tail()
        shutil.rmtree(workdir, ignore_errors=True)
    assert clean, f"redis-server had to be killed at teardown:\n{tail}"


def _postgres_user() -> pwd.struct_passwd | None:
    """The account PostgreSQL runs as: ``postgres`` when we are root (it refuses root), else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError as error:
        raise RuntimeError("running as root needs the postgres system user: run scripts/bootstrap.sh") from error


@contextmanager
def running_postgres(timeout_s: float = 60) -> Iterator[PostgresServer]:
    """A fresh PostgreSQL cluster on a free port of 127.0.0.1, with a login role and a database.

    Tuned for throwaway use (fsync and synchronous commit off). Stopped with a fast
    shutdown (SIGINT) at the end, its files removed.

    Raises:
        RuntimeError: PostgreSQL is missing, initdb failed or the server exited while starting.
        AssertionError: it did not accept connections within ``timeout_s``.
    """
    bin_dir = postgres_bin_dir()
    run_as = _postgres_user()
    # Our own temporary folder, not pytest's: pytest's base folder is private to its
    # user, and the postgres user must be able to reach the data directory.
    workdir = Path(tempfile.mkdtemp(prefix="berg-postgres-"))
    process: ServerProcess | None = None
    try:
        if run_as is not None:
            os.chown(workdir, run_as.pw_uid, run_as.pw_gid)
        data_dir = workdir / "data"
        initdb = ServerProcess(
            [
                str(bin_dir / "initdb"),
                f"--pgdata={data_dir}",
                "--username=postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            workdir / "initdb.log",
            death_signal="KILL",
            run_as=run_as,
        )
        try:
            returncode = initdb.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            initdb.stop(signal.SIGKILL, 10)
            raise RuntimeError(f"initdb did not finish within {timeout_s}s:\n{initdb.log_tail()}") from None
        if returncode != 0:
            raise RuntimeError(f"initdb failed ({returncode}):\n{initdb.log_tail()}")

        server = PostgresServer(
            port=free_port(), socket_dir=workdir, user="berg", password=secrets.token_hex(12), database="berg"
        )
        argv = [
            str(bin_dir / "postgres"),
            "-D", str(data_dir),
            "-p", str(server.port),
            "-k", str(workdir),
            "-c", f"listen_addresses={server.host}",
            "-c", "fsync=off",
            "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off",
        ]  # fmt: skip
        # The postmaster runs in the foreground (not `pg_ctl start`, which detaches it), so
        # it is our child: its process group and parent-death signal are ours to set. SIGQUIT
        # is PostgreSQL's immediate shutdown.
        process = ServerProcess(argv, workdir / "postgres.log", death_signal="QUIT", run_as=run_as)

        def accepts_connections() -> bool:
            assert process is not None
            process.check_alive("postgres")
            try:
                server.superuser_connect().close()
            except psycopg.OperationalError:
                return False
            return True

        wait_for(accepts_connections, timeout_s, f"PostgreSQL on port {server.port} to accept connections")
        with server.superuser_connect() as conn:
            conn.autocommit = True
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(server.user), sql.Literal(server.password)
                )
            )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(server.database), sql.Identifier(server.user)
                )
            )
        server.connect().close()  # the login role gets in over TCP with its password, as applications will
        yield server
    finally:
        clean = True
        tail = ""
        if process is not None:
            clean = process.stop(signal.SIGINT, timeout_s)
            tail = process.log_tail()
        shutil.rmtree(workdir, ignore_errors=True)
    assert clean, f"PostgreSQL had to be killed at teardown:\n{tail}"


@dataclass(frozen=True)
class SaslKafka:
    """A single-node Kafka whose only client listener takes SASL/SCRAM-SHA-512 (``SASL_PLAINTEXT``) and whose
    authorizer (KRaft's ``StandardAuthorizer``) allows a user only what an ACL grants it; ``admin`` is a super user."""

    bootstrap: str
    log_path: Path
    """The broker's log: where it says why it refused a client (a wrong password, say)."""
    admin_password: str = field(repr=False)
    admin_user: str = "admin"

    def log(self) -> str:
        """The broker's log so far."""
        return self.log_path.read_text(errors="replace")

    def settings(self, username: str, password: str) -> KafkaSettings:
        """Client settings that sign in as ``username``."""
        return KafkaSettings(
            bootstrap_servers=self.bootstrap,
            client_id=f"berg-test-{username}",
            security_protocol="SASL_PLAINTEXT",
            sasl_username=username,
            sasl_password=SecretStr(password),
        )

    def admin(self) -> Any:
        """An admin client signed in as the super user (close it)."""
        settings = self.settings(self.admin_user, self.admin_password)
        return KafkaAdminClient(
            bootstrap_servers=settings.bootstrap_servers, client_id=settings.client_id, **client_security(settings)
        )


@contextmanager
def running_sasl_kafka(timeout_s: float = 180) -> Iterator[SaslKafka]:
    """The local stack's Kafka on free ports of 127.0.0.1, its client listener SASL/SCRAM, with ACLs enforced.

    The super user's SCRAM credential is written at format time (``--add-scram``); tests create
    the other users and their ACLs through it. Stopped (SIGTERM) at the end, its files removed.

    Raises:
        RuntimeError: Kafka's jars could not be fetched, formatting failed or the broker exited while starting.
        AssertionError: the super user could not sign in within ``timeout_s``.
    """
    workdir = Path(tempfile.mkdtemp(prefix="berg-kafka-sasl-"))
    settings = StackSettings(state_dir=workdir, ports=free_port_table(), services=[])
    layout = StateLayout.at(workdir)
    server = SaslKafka(
        bootstrap=settings.kafka_bootstrap, log_path=workdir / "kafka.log", admin_password=secrets.token_hex(16)
    )
    host, ports = settings.host, settings.ports
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
    properties = {
        "listeners": f"SASL_PLAINTEXT://{host}:{ports.kafka},CONTROLLER://{host}:{ports.kafka_controller}",
        "advertised.listeners": f"SASL_PLAINTEXT://{host}:{ports.kafka}",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
        "inter.broker.listener.name": "SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
        "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": (
            f'{scram} required username="{server.admin_user}" password="{server.admin_password}";'
        ),
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        # The controller listener stays plaintext on loopback: a KRaft controller cannot check SCRAM
        # credentials (they live in the metadata it serves), so the broker half of this one process
        # registers with it as ANONYMOUS, which must be allowed the cluster actions that takes.
        "super.users": f"User:{server.admin_user};User:ANONYMOUS",
    }
    process: ServerProcess | None = None
    try:
        layout.create()
        try:
            libs = kafka.fetch_kafka_jars(settings, layout)
            config = kafka.write_broker_config(settings, layout, properties)
            kafka.ensure_storage_formatted(
                settings,
                layout,
                libs,
                config,
                add_scram=[f"SCRAM-SHA-512=[name={server.admin_user},password={server.admin_password}]"],
            )
        except kafka.KafkaRuntimeError as error:
            raise RuntimeError(str(error)) from None
        process = ServerProcess(
            kafka.broker_command(settings, layout, libs, config),
            workdir / "kafka.log",
            death_signal="KILL",
            run_as=None,
        )

        def admin_signs_in() -> bool:
            assert process is not None
            process.check_alive("kafka")
            # A client only once the listener accepts: kafka-python 3.0 leaves a client whose bootstrap
            # failed unclosed (its sockets), which the test session would report as errors.
            if not port_open(host, ports.kafka):
                return False
            try:
                admin = server.admin()
            except KafkaError:
                return False
            try:
                return bool(admin.describe_cluster()["brokers"])
            except KafkaError:
                return False
            finally:
                admin.close()

        wait_for(admin_signs_in, timeout_s, f"the SASL Kafka on {server.bootstrap} to let its super user in")
        yield server
    finally:
        tail = ""
        if process is not None:
            process.stop(signal.SIGTERM, timeout_s)
            tail = process.log_tail()
        shutil.rmtree(workdir, ignore_errors=True)
    # Kafka's JVM answers SIGTERM with a clean shutdown and exit status 143 (128 + SIGTERM).
    assert process is None or process.popen.returncode in (0, 143), f"Kafka had to be killed at teardown:\n{tail}"
