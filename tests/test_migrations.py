"""The schema the migrations build is the one the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, text

import aaa.db.models
import aaa.db.models_inventory
import aaa.db.models_secrets
import aaa.db.models_tickets  # noqa: F401
from aaa.db import authlog
from aaa.db.authlog import AuthRecord
from aaa.db.base import Base


def test_the_models_and_the_migrations_agree(engine: Engine) -> None:
    """Alembic finds nothing to generate (tables, columns with their types, indexes): a
    model changed without a migration, or a migration the models do not follow, fails."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_auth_log_ids_go_past_int4(engine: Engine) -> None:
    """auth_log.id is 64-bit (migration 0011): rows keep coming past 2**31, which an
    int4 sequence reaches in 30 hours at 20,000 decisions/s."""
    row = AuthRecord(1.7e9, "ana", None, None, "10.0.0.1", "reject", "unknown login", None, False, None,
                     False, None, None, None, None)
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT setval('auth_log_id_seq', 2147483647)"))
        else:  # SQLite's rowid follows the largest id
            connection.execute(text(
                "INSERT INTO auth_log (id, at, login, nas_ip, result, reason, mac_differs, interface_differs)"
                " VALUES (2147483647, '2026-01-01 00:00:00', 'x', '1', 'reject', 'r', 0, 0)"))
    authlog.write_records(engine, [row, row])
    with engine.connect() as connection:
        query = text("SELECT id FROM auth_log WHERE login = 'ana' ORDER BY id")
        ids = list(connection.execute(query).scalars())
    assert ids == [2**31, 2**31 + 1]
