"""`aaa serve`, `aaa explain`, `aaa report auth-log`."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import click
from sqlalchemy.orm import Session

from aaa.cliutil import AppState, format_option, parse_moment, pass_state, render
from aaa.db import authlog
from aaa.db.models import AuthLogEntry
from aaa.db.views import load_view
from aaa.policy.mac import canonical_mac
from aaa.policy.rules import RequestFacts, decide
from aaa.policy.view import NasFacts, SubscriberView
from management import scope, services, subscriber_passwords
from management.context import load_actor
from management.errors import NotFound, RuleViolation


@click.command("serve")
@click.option("--bind", help="Address to listen on (default: radius.bind).")
@click.option("--auth-port", type=click.IntRange(0, 65535), help="Default: radius.auth_port.")
@click.option("--acct-port", type=click.IntRange(0, 65535), help="Default: radius.acct_port.")
@click.option("--metrics-port", type=click.IntRange(0, 65535),
              help="Prometheus /metrics port (0: off). Worker N listens on port + N.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Processes sharing the RADIUS ports with SO_REUSEPORT.")
@click.option("--portal-port", type=click.IntRange(0, 65535),
              help="Serve the subscriber-portal API on this port (default: portal.enabled, portal.port).")
@pass_state
def serve_command(state: AppState, bind: str | None, auth_port: int | None, acct_port: int | None,
                  metrics_port: int | None, workers: int,
                  portal_port: int | None = None) -> None:
    """Run the RADIUS server: authentication, accounting, CoA/Disconnect dispatcher, portal API."""
    from aaa.service import WORKER_ACCT_PORT_ENV, WORKER_AUTH_PORT_ENV, WORKER_ENV, ServeOptions, serve

    radius = state.config.radius
    # A worker started by worker 0 binds the ports worker 0 really got (`--auth-port 0`
    # asks the kernel for one: the workers must share it, not each pick their own).
    if WORKER_AUTH_PORT_ENV in os.environ:
        auth_port = int(os.environ[WORKER_AUTH_PORT_ENV])
        acct_port = int(os.environ[WORKER_ACCT_PORT_ENV])
    options = ServeOptions(
        bind=bind or radius.bind,
        auth_port=radius.auth_port if auth_port is None else auth_port,
        acct_port=radius.acct_port if acct_port is None else acct_port,
        metrics_port=radius.metrics_port if metrics_port is None else metrics_port,
        workers=workers, worker_index=int(os.environ.get(WORKER_ENV, "0")),
        portal_port=portal_port,
    )
    serve(state.config, state.config_path, options)


def _nas_for(view: SubscriberView, session: Session, name: str | None, service_nas: int | None) -> NasFacts:
    candidates = list(view.nas_by_ip.values())
    if name:
        for nas in candidates:
            if name in (nas.name, nas.ip):
                return nas
        raise NotFound("nas", name)
    for nas in candidates:
        if nas.id == service_nas:
            return nas
    if not candidates:
        raise RuleViolation("nas.none", "no NAS registered: add one with `aaa nas add`")
    return sorted(candidates, key=lambda n: n.name)[0]


@click.command("explain")
@click.argument("login")
@click.option("--nas", help="NAS name or IP (default: the service's NAS, else the first one).")
@click.option("--mac", help="Calling-Station-Id the NAS would send.")
@click.option("--port-id", help="NAS-Port-Id the NAS would send.")
@click.option("--at", "at", help="Decide as of this moment (ISO 8601 or date; default: now).")
@format_option
@pass_state
def explain_command(state: AppState, login: str, nas: str | None, mac: str | None,
                    port_id: str | None, at: str | None) -> None:
    """Run the daemon's decision for LOGIN on the current database and show why."""
    moment = parse_moment(at, state.zone, "--at") if at else datetime.now(UTC)
    from aaa.service import handler_settings

    with state.reading() as session:
        view = load_view(session, subscriber_passwords.opener(state.config.secrets))
        service = view.services_by_login.get(login)
        if service is not None:  # an operator limited to cities explains only theirs
            services.find_service(session, login, actor=load_actor(session, state.operator_login))
        chosen = _nas_for(view, session, nas, service.nas_id if service else None)
    facts = RequestFacts(login=login, nas=chosen, authenticated=True,
                         mac=(canonical_mac(mac) or mac) if mac else None, port_id=port_id)
    decision = decide(facts, view, moment, handler_settings(state.config).policy)
    data: dict[str, Any] = {
        "login": login, "nas": chosen.name, "vendor": chosen.vendor, "at": moment.isoformat(),
        "verdict": decision.verdict.value, "status": decision.effective_status,
        "reasons": list(decision.reasons), "flags": sorted(decision.flags),
        "reply": [{"attribute": name, "value": value} for name, value in decision.reply],
    }
    if state.output_format == "table":
        click.echo(f"{login} on {chosen.name} ({chosen.vendor}) at {moment.isoformat()}: "
                   f"{decision.verdict.value.upper()}")
        for reason in decision.reasons:
            click.echo(f"  - {reason}")
        for name, value in decision.reply:
            click.echo(f"  {name} = {value}")
        return
    render(state, data)


def _auth_row(entry: AuthLogEntry) -> dict[str, Any]:
    return {
        "at": entry.at.isoformat(), "login": entry.login, "nas_ip": entry.nas_ip,
        "result": entry.result, "reason": entry.reason, "mac": entry.mac,
        "mac_differs": entry.mac_differs, "interface": entry.interface,
        "interface_differs": entry.interface_differs, "ip": entry.ip, "pool": entry.pool,
        "download_kbps": entry.download_kbps, "upload_kbps": entry.upload_kbps,
    }


@click.group("report")
def report_group() -> None:
    """Reports."""


@report_group.command("auth-log")
@click.option("--login")
@click.option("--since", help="ISO 8601 moment or date (provider's zone).")
@click.option("--until", help="ISO 8601 moment or date (provider's zone).")
@click.option("--result", type=click.Choice(["accept", "reject"]))
@click.option("--mac-differs", is_flag=True)
@click.option("--interface-differs", is_flag=True)
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=1000, show_default=True)
@format_option
@pass_state
def auth_log_command(state: AppState, login: str | None, since: str | None, until: str | None,
                     result: str | None, mac_differs: bool, interface_differs: bool, limit: int) -> None:
    """The authentication log, newest first."""
    start = parse_moment(since, state.zone, "--since") if since else None
    end = parse_moment(until, state.zone, "--until", end_of_day=True) if until else None
    with state.reading() as session:
        visible = scope.service_filter(session, load_actor(session, state.operator_login),
                                       AuthLogEntry.service_id)
        rows = authlog.query(session, login, start, end, result, mac_differs, interface_differs, limit,
                             visible)
        render(state, [_auth_row(r) for r in rows])


COMMANDS = [serve_command, explain_command, report_group]
