"""Shared pytest fixtures; the PostgreSQL ones give each test a fresh, empty database.

PostgreSQL server choice: ``$HLS_TUNE_TEST_POSTGRES_URL`` (an admin URL allowed to CREATE and
DROP DATABASE) when set, else a throwaway cluster made with ``initdb`` + ``pg_ctl`` on a free
port; tests are skipped only when neither is available, and fail instead in CI (``CI=true``):
there, a test that skips for any reason fails the run (see `pytest_runtest_makereport`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import settings

from tests.support.helpers import NO_CUDA, in_ci, missing_component

# The machine running the suite is shared: a property test's example may take longer than
# hypothesis's default 200 ms deadline without anything being wrong.
settings.register_profile("hls-tune", deadline=None)
settings.load_profile("hls-tune")

POSTGRES_URL_ENV_VAR = "HLS_TUNE_TEST_POSTGRES_URL"
_NO_POSTGRES = f"no PostgreSQL: set {POSTGRES_URL_ENV_VAR} or install initdb"


# ---------------------------------------------------------------------------------------------
# CI runs every test
# ---------------------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """In CI (``CI=true``) a skipped test is a failed one, keeping its reason: the run must
    not pass while a real component (Chromium, docker-compose, Graphviz, a restartable
    PostgreSQL cluster) is missing. Outside CI, skips stay skips. The one exception is a
    CUDA-path test on a machine without a GPU (`helpers.NO_CUDA`): its CPU equivalent runs."""
    report = yield
    if report.skipped and in_ci() and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        if NO_CUDA in str(reason):
            return report
        report.outcome = "failed"
        report.longrepr = f"skipped in CI (CI=true), which must run every test: {reason}"
    return report


@pytest.fixture(autouse=True)
def _no_remembered_passwords() -> Iterator[None]:
    """Each test starts in a process that remembers no password: the redactor hides every
    password this process has parsed wherever it appears, so a generated one-letter password
    of one test must not hide that letter in the next test's messages."""
    from hls_tune.study.redact import forget_secrets

    forget_secrets()
    yield


# ---------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------


@dataclass
class PostgresServer:
    """A PostgreSQL server the tests may create databases on.

    Attributes:
        admin_url: ``postgresql://…/postgres`` URL of a role allowed to CREATE/DROP DATABASE.
        data_dir: The cluster directory of a throwaway cluster; ``None`` for an external server.
    """

    admin_url: str
    data_dir: Path | None = None
    _pg_ctl: list[str] = field(default_factory=list, repr=False)
    _server_options: str = field(default="", repr=False)
    _log_file: Path | None = field(default=None, repr=False)

    @property
    def restartable(self) -> bool:
        """Whether this is a throwaway cluster the tests may stop, start and restart."""
        return self.data_dir is not None

    def stop(self) -> None:
        """Stops the throwaway cluster (fast shutdown: open sessions are disconnected)."""
        self._ctl("stop", "-m", "fast")

    def start(self) -> None:
        """Starts the throwaway cluster again, on the same port, and waits until it accepts."""
        assert self._log_file is not None
        self._ctl("start", "-l", str(self._log_file), "-o", self._server_options)

    def restart(self) -> None:
        """Stops and starts the throwaway cluster, e.g. to test recovery mid-study."""
        self.stop()
        self.start()

    def connect(self, database: str | None = None):  # -> psycopg.Connection
        """Opens an autocommit psycopg connection as the admin role (to ``database`` if given)."""
        import psycopg

        return psycopg.connect(self.url_for(database), autocommit=True, connect_timeout=10)

    def url_for(self, database: str | None) -> str:
        """The admin URL with its database replaced by ``database`` (``None`` keeps it)."""
        from sqlalchemy.engine import make_url

        url = make_url(self.admin_url).set(drivername="postgresql")
        if database is not None:
            url = url.set(database=database)
        return url.render_as_string(hide_password=False)

    def _ctl(self, *args: str) -> None:
        if not self.restartable:
            raise RuntimeError(
                f"only a throwaway cluster can be stopped or restarted, not {self.admin_url!r}; "
                "use the restartable_postgres_server fixture"
            )
        assert self.data_dir is not None
        _run_checked(
            [*self._pg_ctl, "-D", str(self.data_dir), "-w", "-t", "60", *args],
            cwd=self.data_dir.parent,
        )


def _run_checked(command: list[str], cwd: Path | None = None) -> None:
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )


def _find_postgres_binary(name: str) -> str | None:
    """PATH first, then Debian/Ubuntu's versioned dirs (newest first), then a source build."""
    found = shutil.which(name)
    if found:
        return found

    def version(path: str) -> tuple[int, ...]:
        digits = Path(path).parts[-3]  # /usr/lib/postgresql/<version>/bin/<name>
        return tuple(int(part) for part in digits.split(".") if part.isdigit())

    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=version, reverse=True)
    candidates.append(f"/usr/local/pgsql/bin/{name}")
    return next((path for path in candidates if os.access(path, os.X_OK)), None)


def _as_postgres_user() -> tuple[list[str], pwd.struct_passwd | None] | None:
    """The command prefix that runs initdb/pg_ctl as a non-root user, or None if impossible.

    initdb and postgres refuse to run as root, so as root they run as the ``postgres`` system
    user (created by the distribution's PostgreSQL packages).
    """
    if os.geteuid() != 0:
        return [], None
    try:
        account = pwd.getpwnam("postgres")
    except KeyError:
        return None
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", "postgres", "--"], account
    setpriv = shutil.which("setpriv")
    if setpriv:
        return [
            setpriv,
            f"--reuid={account.pw_uid}",
            f"--regid={account.pw_gid}",
            "--init-groups",
        ], account
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def throwaway_postgres_cluster() -> Iterator[PostgresServer]:
    """Runs a new PostgreSQL cluster in a temporary directory; skips the test if impossible.

    Trust authentication, listening on 127.0.0.1 only, durability off (fsync, synchronous
    commit, full-page writes) because the cluster is thrown away.
    """
    initdb, pg_ctl = _find_postgres_binary("initdb"), _find_postgres_binary("pg_ctl")
    as_postgres = _as_postgres_user()
    if initdb is None or pg_ctl is None or as_postgres is None:
        missing_component(_NO_POSTGRES)
    prefix, account = as_postgres
    # Not under pytest's tmp_path: that is private to the current user, and as root the server
    # runs as `postgres`; also short, since the Unix socket path must fit in 107 bytes.
    base = Path(tempfile.mkdtemp(prefix="hls_tune_pg_"))
    try:
        if account is not None:
            os.chown(base, account.pw_uid, account.pw_gid)
        data_dir = base / "data"
        initdb_options = ["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"]
        _run_checked(
            [*prefix, initdb, "-D", str(data_dir), *initdb_options],
            cwd=base,  # the postgres user may not be allowed into the current directory
        )
        for attempt in range(3):  # another process may take the free port before we bind it
            port = _free_port()
            server = PostgresServer(
                admin_url=f"postgresql://postgres@127.0.0.1:{port}/postgres",
                data_dir=data_dir,
                _pg_ctl=[*prefix, pg_ctl],
                _server_options=(
                    f"-p {port} -k {base} -c listen_addresses=127.0.0.1 "
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
                ),
                _log_file=base / "server.log",
            )
            try:
                server.start()
                break
            except RuntimeError:
                if attempt == 2:
                    log = server._log_file.read_text() if server._log_file.exists() else ""
                    raise RuntimeError(f"throwaway PostgreSQL did not start:\n{log}") from None
        try:
            yield server
        finally:
            with contextlib.suppress(RuntimeError):
                server._ctl("stop", "-m", "immediate")
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def fresh_postgres_database(server: PostgresServer) -> Iterator[str]:
    """Creates an empty database ``hls_tune_test_<random>``, yields its URL, then drops it."""
    from psycopg import sql

    name = f"hls_tune_test_{secrets.token_hex(6)}"
    with server.connect() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield server.url_for(name)
    finally:
        with server.connect() as admin:
            # Storages opened by the test may still hold pooled connections.
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The PostgreSQL server of this test session: ``$HLS_TUNE_TEST_POSTGRES_URL`` or throwaway.

    An external server is never restarted (``restartable`` is False); tests that restart the
    server use ``restartable_postgres_server`` instead.
    """
    admin_url = os.environ.get(POSTGRES_URL_ENV_VAR, "").strip()
    if not admin_url:
        with throwaway_postgres_cluster() as server:
            yield server
        return
    server = PostgresServer(admin_url=admin_url)
    try:
        server.connect().close()
    except Exception as error:  # the driver's many error types; all mean "cannot use it"
        problem = str(error)
    else:
        problem = ""
    if problem:
        from hls_tune.study.storage import redact

        pytest.fail(
            f"{POSTGRES_URL_ENV_VAR}={redact(admin_url)!r} is set but unusable: "
            f"{redact(problem).strip()}",
            pytrace=False,
        )
    yield server


@pytest.fixture(scope="session")
def restartable_postgres_server(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    """A throwaway cluster with ``stop()``/``start()``/``restart()``, even when the env var is set.

    Shares the session's cluster when ``postgres_server`` is already a throwaway one.
    """
    if not os.environ.get(POSTGRES_URL_ENV_VAR, "").strip():
        yield request.getfixturevalue("postgres_server")
        return
    with throwaway_postgres_cluster() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """URL (``postgresql://…``) of a fresh, empty database, dropped after the test."""
    with fresh_postgres_database(postgres_server) as url:
        yield url


@pytest.fixture
def restartable_postgres_url(restartable_postgres_server: PostgresServer) -> Iterator[str]:
    """Like ``postgres_url``, on ``restartable_postgres_server`` (which the test may restart)."""
    with fresh_postgres_database(restartable_postgres_server) as url:
        yield url


# ---------------------------------------------------------------------------------------------
# torch
# ---------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> Iterator[None]:
    """Tiny test models run fastest on one thread, and the tests that start worker
    processes must not oversubscribe the cores (torch's spinning threads slow tiny ops
    down by orders of magnitude when processes compete)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# ---------------------------------------------------------------------------------------------
# artifacts
# ---------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True, scope="session")
def _artifacts_outside_the_repository(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    """Workers started without --artifacts write their figures to ./artifacts by default;
    in the tests that default points into the session's temporary directory instead, and the
    `hls-tune` processes of `helpers` run in a scratch directory there (so ./checkpoints and
    other relative defaults stay out of the repository)."""
    from tests.support import helpers

    patch = pytest.MonkeyPatch()
    patch.setenv("HLS_TUNE_ARTIFACTS", str(tmp_path_factory.mktemp("default-artifacts")))
    patch.setattr(helpers, "scratch_cwd", tmp_path_factory.mktemp("cwd"))
    yield
    patch.undo()
