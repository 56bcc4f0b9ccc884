"""Routines over the connection statement: stale sessions and connection alarms."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from aaa.db import accounting
from aaa.db.models import AcctSession, ConnectionAlarm, Service
from management import scope
from management.context import Context
from management.errors import RuleViolation
from management.variables import KNOWN_VARIABLES

LIMIT = "ALARME_QUANTIDADE_CONEXOES_LIMITE_PERIODO"
PERIOD = "ALARME_QUANTIDADE_CONEXOES_PERIODO_DIAS"
EXPIRY = "ALARME_CONEXAO_DIAS_EXPIRACAO"
assert {LIMIT, PERIOD, EXPIRY} <= set(KNOWN_VARIABLES)


def close_stale(ctx: Context, interim_interval: int, intervals: int) -> int:
    """Close open sessions silent for `intervals` × the interim interval (cause Stale)."""
    ctx.require("sessions.manage")
    if interim_interval <= 0 or intervals <= 0:
        raise RuleViolation("sessions.stale_config",
                            "stale sessions need a positive interim interval and multiplier")
    before = ctx.now - timedelta(seconds=interim_interval * intervals)
    return accounting.close_stale(ctx.session, before, ctx.now)


def _int_variable(ctx: Context, key: str) -> int | None:
    from aaa.db.models import Variable

    row = ctx.session.get(Variable, key)
    if row is None or not row.value.strip():
        return None
    return int(row.value)


def raise_alarms(ctx: Context) -> list[ConnectionAlarm]:
    """Flag services with more sessions than the limit in the period (Alarmes de Conexões).

    Services that already have an alarm in force are not flagged again; nothing is done
    when the three variables are not all set.
    """
    ctx.require("sessions.manage")
    limit, period, expiry = (_int_variable(ctx, k) for k in (LIMIT, PERIOD, EXPIRY))
    if limit is None or period is None or expiry is None:
        raise RuleViolation("alarms.not_configured",
                            f"set {LIMIT}, {PERIOD} and {EXPIRY} to use connection alarms")
    since = ctx.now - timedelta(days=period)
    in_force = select(ConnectionAlarm.service_id).where(ConnectionAlarm.expires_at > ctx.now)
    counts = ctx.session.execute(
        select(AcctSession.service_id, Service.login, func.count())
        .join(Service, Service.id == AcctSession.service_id)
        .where(AcctSession.started_at >= since, AcctSession.service_id.not_in(in_force))
        .group_by(AcctSession.service_id, Service.login)
        .having(func.count() > limit)).all()
    alarms = [ConnectionAlarm(service_id=service_id, login=login, sessions=count, period_days=period,
                              limit=limit, raised_at=ctx.now,
                              expires_at=ctx.now + timedelta(days=expiry))
              for service_id, login, count in counts]
    ctx.session.add_all(alarms)
    return alarms


def alarms_in_force(ctx: Context, include_expired: bool = False) -> list[ConnectionAlarm]:
    query = select(ConnectionAlarm).order_by(ConnectionAlarm.raised_at.desc())
    visible = scope.service_filter(ctx.session, ctx.actor, ConnectionAlarm.service_id)
    if visible is not None:
        query = query.where(visible)
    if not include_expired:
        query = query.where(ConnectionAlarm.expires_at > ctx.now)
    return list(ctx.session.scalars(query))


def purge_auth_log(ctx: Context, retention_days: int, dry_run: bool = False) -> int:
    """Delete authentication-log rows older than the retention, in bounded chunks; 0 days keeps
    everything. Returns how many rows were (or, dry, would be) deleted."""
    from sqlalchemy import delete

    from aaa.db.models import AuthLogEntry

    ctx.require("sessions.manage")
    if retention_days <= 0:
        return 0
    before = ctx.now - timedelta(days=retention_days)
    old = select(AuthLogEntry.id).where(AuthLogEntry.at < before)
    if dry_run:
        return ctx.session.scalar(select(func.count()).select_from(old.subquery())) or 0
    deleted = 0
    while True:
        ids = list(ctx.session.scalars(old.limit(10_000)))
        if not ids:
            return deleted
        ctx.session.execute(delete(AuthLogEntry).where(AuthLogEntry.id.in_(ids)))
        deleted += len(ids)
