"""Engine and session set-up for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, echo: bool = False, statement_timeout: float = 0.0) -> Engine:
    """Create an engine; for SQLite, create the file's directory and set safe pragmas.

    `statement_timeout` (seconds, PostgreSQL; 0: none) bounds every statement: the daemon
    sets it so that a row lock held by a forgotten transaction cannot stall accounting
    indefinitely (the statement fails, the records go to the journal)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # A database that hangs instead of refusing must not hang us: bounded connects, TCP
    # keepalives (a silent peer while we wait for an answer) and a user timeout (our own
    # data unacknowledged: without it the kernel retransmits for ~15 minutes), so the
    # accounting committer falls back to its journal within seconds of a network cut.
    connect_args: dict[str, Any] = {
        "connect_timeout": 5, "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
        "keepalives_count": 3, "tcp_user_timeout": 15_000}
    if statement_timeout:
        connect_args["options"] = f"-c statement_timeout={round(statement_timeout * 1000)}"
    return create_engine(url, echo=echo, pool_pre_ping=True, connect_args=connect_args)


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (the daemon) never block writers
    # FULL: a commit is on disk when it returns, so an acknowledged accounting record
    # survives a power loss too (NORMAL in WAL mode may lose the last commits).
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def refused(exc: BaseException) -> bool:
    """True when the database refused the data itself (PEP 249's DataError or
    IntegrityError, whichever driver raised it, wrapped by SQLAlchemy or not): no retry
    would store it. False for everything else, a database that cannot be reached included."""
    original = getattr(exc, "orig", None) or exc
    return any(cls.__name__ in ("DataError", "IntegrityError") for cls in type(original).__mro__)


def error_detail(exc: BaseException) -> str:
    """The first line of a database error's message (the driver's, when SQLAlchemy wrapped
    it), at most 200 characters: for a log line."""
    text = str(getattr(exc, "orig", None) or exc)
    return text.splitlines()[0][:200] if text else ""
