"""History rows and change-feed rows, written in the caller's transaction."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select, text

from aaa.db.models import ChangeFeedEntry, HistoryEntry
from management.context import Context

NOTIFY_CHANNEL = "aaa_changes"
# Serialises change-feed inserts on PostgreSQL so that `seq` values commit in order and a
# reader that remembers the last seq it saw never skips a row committed late.
FEED_LOCK_KEY = 0x0AAA_FEED


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def snapshot(obj: Any, names: Iterable[str]) -> dict[str, Any]:
    return {name: jsonable(getattr(obj, name)) for name in names}


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, list[Any]]:
    """{field: [before, after]} for the fields whose value changed."""
    return {
        key: [before.get(key), after.get(key)]
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }


def record(
    ctx: Context,
    object_type: str,
    object_id: object,
    action: str,
    changes: Mapping[str, Any] | None = None,
    customer_id: int | None = None,
    note: str | None = None,
) -> None:
    ctx.session.add(
        HistoryEntry(
            at=ctx.now,
            operator_id=ctx.actor.operator_id,
            operator_login=ctx.actor.login,
            object_type=object_type,
            object_id=str(object_id),
            customer_id=customer_id,
            action=action,
            changes=json.dumps(
                {k: [jsonable(x) for x in v] if isinstance(v, list) else jsonable(v)
                 for k, v in (changes or {}).items()},
                sort_keys=True, ensure_ascii=False,
            ),
            note=note,
        )
    )


def publish(ctx: Context, object_type: str, object_id: object) -> None:
    """Append a change-feed row; on PostgreSQL also NOTIFY (delivered at commit)."""
    session = ctx.session
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": FEED_LOCK_KEY})
    session.add(ChangeFeedEntry(object_type=object_type, object_id=str(object_id), at=ctx.now))
    if postgres:
        session.flush()
        session.execute(text("SELECT pg_notify(:channel, :payload)"),
                        {"channel": NOTIFY_CHANNEL, "payload": f"{object_type}:{object_id}"})


def last_seq(ctx: Context) -> int:
    return ctx.session.scalar(select(func.coalesce(func.max(ChangeFeedEntry.seq), 0))) or 0


def record_many(ctx: Context, entries: list[dict[str, Any]]) -> None:
    """Bulk history: each entry has object_type, object_id, action, changes, customer_id, note."""
    if not entries:
        return
    ctx.session.execute(insert(HistoryEntry), [
        {"at": ctx.now, "operator_id": ctx.actor.operator_id, "operator_login": ctx.actor.login,
         "object_type": e["object_type"], "object_id": str(e["object_id"]),
         "customer_id": e.get("customer_id"), "action": e["action"],
         "changes": json.dumps(e.get("changes", {}), sort_keys=True, ensure_ascii=False, default=str),
         "note": e.get("note")}
        for e in entries])


def publish_many(ctx: Context, object_type: str, object_ids: list[Any]) -> None:
    """Bulk change feed in the caller's transaction, one NOTIFY (PostgreSQL)."""
    if not object_ids:
        return
    session = ctx.session
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": FEED_LOCK_KEY})
    session.execute(insert(ChangeFeedEntry), [
        {"object_type": object_type, "object_id": str(i), "at": ctx.now} for i in object_ids])
    if postgres:
        session.execute(text("SELECT pg_notify(:channel, :payload)"),
                        {"channel": NOTIFY_CHANNEL, "payload": f"{object_type}:bulk"})
