"""Alembic environment: runs on the engine handed in by aaa.db.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine, create_engine

from aaa.db import models

config = context.config
engine = config.attributes.get("engine")
if not isinstance(engine, Engine):
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite:///data/aaa.sqlite3")

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=models.Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    context.run_migrations()
