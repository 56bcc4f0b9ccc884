"""Shared fixtures: real databases (SQLite files and a throwaway PostgreSQL), contexts, CLI.

Tests that take the `backend` fixture (directly or through `db`, `session`, `ctx`, `cli`)
run twice: on SQLite and on PostgreSQL. Without PostgreSQL binaries the PostgreSQL runs
are skipped, unless AAA_REQUIRE_PG=1 (as in CI), where they fail.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from aaa.db import migrate
from aaa.db.engine import make_engine, session_factory
from management.context import SYSTEM, Context, load_actor
from management.operators import ensure_admin
from tests.pg import Cluster, PostgresUnavailable

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
ZONE = ZoneInfo("America/Sao_Paulo")
ADMIN_PASSWORD = "admin-test-password"


def _require_pg() -> bool:
    return os.environ.get("AAA_REQUIRE_PG") == "1"


def _cluster_parent() -> str | None:
    """/dev/shm when it has room: a test's own database is a copy of the template, and
    CREATE DATABASE takes ~30 ms in memory against ~210 ms on this VM's disk (hundreds of
    copies per run). None: the system's temporary directory."""
    shm = Path("/dev/shm")
    try:
        if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free >= 2 << 30:
            return str(shm)
    except OSError:
        pass
    return None


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    # Not under pytest's tmp dir: that one is private to root and the cluster runs as postgres.
    base = Path(tempfile.mkdtemp(prefix="aaa-test-pg-", dir=_cluster_parent()))
    base.chmod(0o755)
    try:
        cluster = Cluster(base / "cluster")
        cluster.start()
    except PostgresUnavailable as exc:
        if _require_pg():
            pytest.fail(f"PostgreSQL required (AAA_REQUIRE_PG=1): {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class Database:
    """A migrated template database (with the initial admin) that tests copy or share."""

    backend: str
    url: str
    make_copy: Callable[[], str]
    drop_copy: Callable[[str], None]


def _prepare(url: str) -> None:
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        with Session(engine) as session, session.begin():
            ensure_admin(Context(session=session, actor=SYSTEM, now=NOW, zone=ZONE),
                         password=ADMIN_PASSWORD)
    finally:
        engine.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def template_db(backend: str, request: pytest.FixtureRequest,
                tmp_path_factory: pytest.TempPathFactory) -> Database:
    """The migrated template for this backend, built once per test session."""
    counter = itertools.count()
    if backend == "sqlite":
        base = tmp_path_factory.mktemp("sqlite")
        template = base / "template.sqlite3"
        _prepare(f"sqlite:///{template}")

        def copy_sqlite() -> str:
            target = base / f"copy{next(counter)}.sqlite3"
            shutil.copyfile(template, target)
            return f"sqlite:///{target}"

        def drop_sqlite(url: str) -> None:
            Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)

        return Database("sqlite", f"sqlite:///{template}", copy_sqlite, drop_sqlite)

    cluster: Cluster = request.getfixturevalue("pg_cluster")
    admin = create_engine(cluster.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text("CREATE DATABASE aaa_template"))
    _prepare(cluster.url("aaa_template"))

    def copy_pg() -> str:
        name = f"aaa_copy{next(counter)}"
        with admin.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {name} TEMPLATE aaa_template"))
        return cluster.url(name)

    def drop_pg(url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with admin.connect() as connection:  # FORCE: a connection a test left open is ended
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))

    return Database("postgresql", cluster.url("aaa_template"), copy_pg, drop_pg)


@pytest.fixture(scope="session")
def shared_engine(template_db: Database) -> Iterator[Engine]:
    """An engine on a database shared by rolled-back tests (a copy, not the template)."""
    engine = make_engine(template_db.make_copy())
    yield engine
    engine.dispose()


@pytest.fixture
def session(shared_engine: Engine) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test."""
    connection = shared_engine.connect()
    transaction = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint",
                      expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()
        transaction.rollback()
        connection.close()


@pytest.fixture
def ctx(session: Session) -> Context:
    """Acting as the initial admin at a fixed moment (2026-11-23 12:00 in São Paulo)."""
    return Context(session=session, actor=load_actor(session, "admin"), now=NOW, zone=ZONE)


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def fresh_db_url(template_db: Database) -> Iterator[str]:
    """A database of its own for a test that commits (CLI, daemon); dropped afterwards, so
    a run's copies do not pile up (hundreds of them, ~10 MB each)."""
    url = template_db.make_copy()
    yield url
    template_db.drop_copy(url)


@pytest.fixture
def engine(fresh_db_url: str) -> Iterator[Engine]:
    """An engine on a database of its own (threads and committed transactions welcome)."""
    engine = make_engine(fresh_db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


@pytest.fixture
def cli(fresh_db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> Callable[..., CliResult]:
    """Run `aaa ARGS...` in-process on a fresh database; returns exit code, stdout, stderr."""
    from aaa.cli import root
    from aaa.cliutil import run_cli

    monkeypatch.setenv("AAA_DATABASE_URL", fresh_db_url)
    monkeypatch.delenv("AAA_CONFIG", raising=False)
    monkeypatch.delenv("AAA_OPERATOR", raising=False)
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = run_cli(root, list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    run.url = fresh_db_url  # type: ignore[attr-defined]
    return run
