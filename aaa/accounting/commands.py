"""`aaa sessions ...` and the accounting reports."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from aaa.cliutil import AppState, format_option, parse_moment, pass_state, render
from aaa.db import accounting
from aaa.db.models import AcctSession, ConnectionAlarm
from management import connections, scope
from management.context import load_actor
from management.network import get_nas


def session_row(s: AcctSession, now: datetime) -> dict[str, Any]:
    end = s.stopped_at or now
    return {
        "login": s.login, "nas_ip": s.nas_ip, "interface": s.nas_port_id, "mac": s.mac,
        "ip": s.framed_ip, "ipv6_prefix": s.delegated_ipv6_prefix or s.ipv6_prefix,
        "start": s.started_at.isoformat(), "stop": s.stopped_at.isoformat() if s.stopped_at else None,
        "duration_seconds": max(s.session_time, int((end - s.started_at).total_seconds()))
        if s.stopped_at is None else s.session_time,
        "bytes_in": s.input_octets, "bytes_out": s.output_octets, "cause": s.terminate_cause,
        "session_id": s.acct_session_id, "unique_id": s.unique_id,
    }


def alarm_row(a: ConnectionAlarm) -> dict[str, Any]:
    return {"login": a.login, "sessions": a.sessions, "limit": a.limit,
            "period_days": a.period_days, "raised_at": a.raised_at.isoformat(),
            "expires_at": a.expires_at.isoformat()}


@click.group("sessions")
def sessions_group() -> None:
    """Accounting sessions: who is online, stale sessions, connection alarms."""


@sessions_group.command("online")
@click.option("--nas", help="NAS name or IP.")
@format_option
@pass_state
def online(state: AppState, nas: str | None) -> None:
    """Open sessions, oldest first."""
    with state.reading() as session:
        nas_id = get_nas(session, nas).id if nas else None
        visible = scope.service_filter(session, load_actor(session, state.operator_login),
                                       AcctSession.service_id)
        now = datetime.now(UTC)
        render(state, [session_row(s, now) for s in accounting.open_sessions(session, nas_id, visible)])


@sessions_group.command("close-stale")
@click.option("--intervals", type=click.IntRange(min=1), help="Default: accounting.stale_after_intervals.")
@click.option("--at", "at", help="Judge as of this moment (ISO 8601; default: now).")
@format_option
@pass_state
def close_stale(state: AppState, intervals: int | None, at: str | None) -> None:
    """Close sessions with no update for N interim intervals (cause Stale)."""
    if at:
        moment = parse_moment(at, state.zone, "--at")
        state.clock = lambda: moment
    with state.context() as ctx:
        closed = connections.close_stale(ctx, state.config.radius.acct_interim_interval,
                                         intervals or state.config.accounting.stale_after_intervals)
    render(state, {"closed": closed})


@sessions_group.command("check-alarms")
@format_option
@pass_state
def check_alarms(state: AppState) -> None:
    """Raise connection alarms for services that reconnect too often."""
    with state.context() as ctx:
        raised = [alarm_row(a) for a in connections.raise_alarms(ctx)]
    render(state, raised)


@click.command("connections")
@click.option("--login")
@click.option("--since", help="ISO 8601 moment or date (provider's zone).")
@click.option("--until", help="ISO 8601 moment or date (provider's zone).")
@click.option("--nas", help="NAS name or IP.")
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=1000, show_default=True)
@format_option
@pass_state
def connections_report(state: AppState, login: str | None, since: str | None, until: str | None,
                       nas: str | None, limit: int) -> None:
    """The connection statement (Extrato de Conexões), newest first."""
    start = parse_moment(since, state.zone, "--since") if since else None
    end = parse_moment(until, state.zone, "--until", end_of_day=True) if until else None
    with state.reading() as session:
        nas_id = get_nas(session, nas).id if nas else None
        visible = scope.service_filter(session, load_actor(session, state.operator_login),
                                       AcctSession.service_id)
        now = datetime.now(UTC)
        rows = accounting.connections(session, login, start, end, nas_id, limit, visible)
        render(state, [session_row(s, now) for s in rows])


@click.command("alarms")
@click.option("--all", "include_expired", is_flag=True, help="Include expired alarms.")
@format_option
@pass_state
def alarms_report(state: AppState, include_expired: bool) -> None:
    """Connection alarms in force."""
    with state.context() as ctx:
        render(state, [alarm_row(a) for a in connections.alarms_in_force(ctx, include_expired)])


COMMANDS = [sessions_group]
REPORTS = [connections_report, alarms_report]
