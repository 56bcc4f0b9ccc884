"""`aaa billing ...`, `aaa routine ...`, `aaa service trust-unlock`, `aaa worker`.

Thin: each command parses its options, calls one billing_bridge function and renders.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
from datetime import timedelta
from typing import Any

import click
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from aaa.cliutil import AppState, fail, format_option, parse_date, parse_moment, pass_state, render
from aaa.db.engine import session_factory
from aaa.db.models import Routine, RoutineRun, TrustUnlock
from aaa.log import log_event
from billing_bridge import payments, routines, trust
from billing_bridge.worker import Worker
from management import serialize
from management.context import load_actor
from management.services import find_service

# --- aaa billing -------------------------------------------------------------------------


@click.group("billing")
def billing_group() -> None:
    """The billing contract by hand: payment methods, invoices, payments."""


@billing_group.group("method")
def method_group() -> None:
    """Payment methods (Formas de Cobrança): when overdue invoices suspend, and how hard."""


@method_group.command("add")
@click.argument("name")
@click.option("--partial-after", type=click.IntRange(min=0), default=None,
              help="Days overdue before partial suspension (reduced speed); omit: never partial.")
@click.option("--total-after", type=click.IntRange(min=0), default=None,
              help="Days overdue before total suspension (blocked pool); omit: never total.")
@click.option("--min-amount", default="0", show_default=True,
              help="Minimum open amount (BRL) for any suspension, e.g. 10.00")
@click.option("--reduction", type=click.Choice(payments.REDUCTIONS), default="relative",
              show_default=True, help="Partial suspension: percent off, or a fixed speed.")
@click.option("--reduction-value", type=int, default=50, show_default=True,
              help="Percent off (relative) or kbit/s (absolute).")
@format_option
@pass_state
def method_add(state: AppState, name: str, partial_after: int | None, total_after: int | None,
               min_amount: str, reduction: str, reduction_value: int) -> None:
    """Create a payment method."""
    with state.context() as ctx:
        data = payments.method_dict(payments.create_method(
            ctx, name, partial_after, total_after, min_amount, reduction, reduction_value))
    render(state, data)


@method_group.command("list")
@format_option
@pass_state
def method_list(state: AppState) -> None:
    """List payment methods."""
    with state.reading() as session:
        render(state, [payments.method_dict(m) for m in payments.list_methods(session)])


@method_group.command("show")
@click.argument("name")
@format_option
@pass_state
def method_show(state: AppState, name: str) -> None:
    """Show one payment method."""
    with state.reading() as session:
        render(state, payments.method_dict(payments.get_method(session, name)))


@method_group.command("assign")
@click.argument("login")
@click.argument("name")
@format_option
@pass_state
def method_assign(state: AppState, login: str, name: str) -> None:
    """Give service LOGIN the payment method NAME."""
    with state.context() as ctx:
        service = payments.assign_method(ctx, login, name)
        data = serialize.service(service)
        data["payment_method"] = name
    render(state, data)


@billing_group.group("invoice")
def invoice_group() -> None:
    """Invoices (Faturas): what the billing module writes and the bridge reads."""


@invoice_group.command("add")
@click.option("--login", required=True)
@click.option("--due", required=True, help="Due date YYYY-MM-DD (the provider's calendar).")
@click.option("--amount", required=True, help="BRL, e.g. 99.90")
@click.option("--method", help="Payment method (default: the service's).")
@click.option("--description")
@format_option
@pass_state
def invoice_add(state: AppState, login: str, due: str, amount: str, method: str | None,
                description: str | None) -> None:
    """Add an open invoice; prints it with its id."""
    day = parse_date(due, "--due")
    with state.context() as ctx:
        invoice = payments.add_invoice(ctx, login, day, amount, method, description)
        data = payments.invoice_dict(ctx.session, invoice)
    render(state, data)


@invoice_group.command("list")
@click.option("--login")
@click.option("--status", type=click.Choice(payments.INVOICE_STATUSES))
@format_option
@pass_state
def invoice_list(state: AppState, login: str | None, status: str | None) -> None:
    """List invoices."""
    with state.reading() as session:
        render(state, [payments.invoice_dict(session, i)
                       for i in payments.list_invoices(session, login, status)])


@invoice_group.command("show")
@click.argument("invoice", type=int)
@format_option
@pass_state
def invoice_show(state: AppState, invoice: int) -> None:
    """Show one invoice."""
    with state.reading() as session:
        render(state, payments.invoice_dict(session, payments.get_invoice(session, invoice)))


@invoice_group.command("cancel")
@click.argument("invoice", type=int)
@click.option("--note")
@format_option
@pass_state
def invoice_cancel(state: AppState, invoice: int, note: str | None) -> None:
    """Cancel an open or partially paid invoice."""
    with state.context() as ctx:
        data = payments.invoice_dict(ctx.session, payments.cancel_invoice(ctx, invoice, note))
    render(state, data)


@billing_group.command("pay")
@click.argument("invoice", type=int)
@click.option("--amount", help="BRL (default: the open remainder).")
@click.option("--note")
@format_option
@pass_state
def pay(state: AppState, invoice: int, amount: str | None, note: str | None) -> None:
    """Record a payment of INVOICE; prints the invoice with the payment."""
    with state.context() as ctx:
        paid, payment = payments.pay_invoice(ctx, invoice, amount, note)
        data = payments.invoice_dict(ctx.session, paid)
        data["payment"] = payments.payment_dict(payment)
    render(state, data)


# --- aaa routine ---------------------------------------------------------------------------


def _routine_dict(r: Routine) -> dict[str, Any]:
    return {"id": r.id, "name": r.name, "task": r.task, "month": r.month, "day": r.day,
            "weekday": r.weekday, "hour": r.hour, "minute": r.minute, "enabled": r.enabled,
            "locked_by": r.locked_by,
            "last_run_at": r.last_run_at.isoformat() if r.last_run_at else None}


def _run_dict(run: RoutineRun, names: dict[int, str]) -> dict[str, Any]:
    return {"id": run.id, "routine": names.get(run.routine_id) if run.routine_id else None,
            "task": run.task, "started_at": run.started_at.isoformat(),
            "as_of": run.as_of.isoformat(), "dry_run": run.dry_run, "operator": run.operator_login,
            "result": run.result, "counts": json.loads(run.counts or "{}"), "error": run.error}


def _sessions(state: AppState) -> sessionmaker[Session]:
    return session_factory(state.engine)


def _settings(state: AppState) -> routines.RoutineSettings:
    return routines.RoutineSettings(
        acct_interim_interval=state.config.radius.acct_interim_interval,
        stale_after_intervals=state.config.accounting.stale_after_intervals,
        auth_log_retention_days=state.config.radius.auth_log_retention_days)


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@click.group("routine")
def routine_group() -> None:
    """Routines (Rotinas): tasks run by `aaa worker` on cron-like fields."""


@routine_group.command("list")
@format_option
@pass_state
def routine_list(state: AppState) -> None:
    """List routines."""
    with state.reading() as session:
        render(state, [_routine_dict(r) for r in routines.list_routines(session)])


@routine_group.command("add")
@click.argument("name")
@click.option("--task", required=True, type=click.Choice(sorted(routines.TASKS)))
@click.option("--month", default="*", show_default=True, help="1-12; *, lists, ranges, */n.")
@click.option("--day", default="*", show_default=True, help="1-31.")
@click.option("--weekday", default="*", show_default=True, help="0-7 (0 and 7: Sunday).")
@click.option("--hour", default="*", show_default=True, help="0-23.")
@click.option("--minute", default="0", show_default=True, help="0-59.")
@format_option
@pass_state
def routine_add(state: AppState, name: str, task: str, month: str, day: str, weekday: str,
                hour: str, minute: str) -> None:
    """Add a routine (fields judged in the provider's time zone)."""
    with state.context() as ctx:
        data = _routine_dict(routines.add_routine(ctx, name, task, month, day, weekday, hour, minute))
    render(state, data)


@routine_group.command("remove")
@click.argument("name")
@format_option
@pass_state
def routine_remove(state: AppState, name: str) -> None:
    """Remove a routine (its runs stay in the log)."""
    with state.context() as ctx:
        data = _routine_dict(routines.remove_routine(ctx, name))
    render(state, data)


@routine_group.command("run")
@click.argument("name")
@click.option("--dry-run", is_flag=True, help="Decide and show what would change; write nothing.")
@click.option("--at", "at", help="Run as of this moment (ISO 8601 or date; default: now).")
@format_option
@pass_state
def routine_run(state: AppState, name: str, dry_run: bool, at: str | None) -> None:
    """Run a routine now, under its lock; prints the counts (and, dry, the details)."""
    wall = state.clock()
    moment = parse_moment(at, state.zone, "--at") if at else wall
    sessions = _sessions(state)
    with sessions() as session:
        actor = load_actor(session, state.operator_login)
    run, result = routines.run_routine(sessions, name, moment, actor=actor, owner=_owner(),
                                       zone=state.zone, settings=_settings(state),
                                       dry_run=dry_run, wall=wall)
    data = _run_dict(run, {run.routine_id: name} if run.routine_id else {})
    if dry_run:
        data["details"] = result.details
    if state.output_format == "table":
        click.echo(f"{name} ({run.task}) as of {run.as_of.isoformat()}: {run.result}"
                   f"{' (dry run)' if dry_run else ''}")
        for key, value in sorted(data["counts"].items()):
            click.echo(f"  {key}: {value}")
        for line in data.get("details", []):
            click.echo(f"  - {line}")
    else:
        render(state, data)
    if run.result == "skipped_locked":
        fail(f"routine {name} is running elsewhere; skipped [rule: routine.locked]")
    if run.result == "failed":
        fail(f"routine {name} failed: {run.error}")


@routine_group.command("runs")
@click.argument("name", required=False)
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@format_option
@pass_state
def routine_runs(state: AppState, name: str | None, limit: int) -> None:
    """The log of routine runs, newest first."""
    with state.reading() as session:
        names = {row[0]: row[1] for row in session.execute(select(Routine.id, Routine.name))}
        rows = [_run_dict(r, names) for r in routines.list_runs(session, name, limit)]
    if state.output_format != "json":
        for row in rows:
            row["counts"] = " ".join(f"{k}={v}" for k, v in sorted(row["counts"].items()))
    render(state, rows)


# --- aaa service trust-unlock ----------------------------------------------------------------


def _unlock_dict(unlock: TrustUnlock, login: str) -> dict[str, Any]:
    return {"id": unlock.id, "login": login, "started_at": unlock.started_at.isoformat(),
            "until": unlock.until.isoformat(), "self_service": unlock.self_service,
            "operator": unlock.operator_login, "note": unlock.note}


@click.command("trust-unlock")
@click.argument("login")
@click.option("--until", help="Last day (YYYY-MM-DD, inclusive) or an ISO 8601 moment.")
@click.option("--note", help="Why (required for an operator's unlock).")
@click.option("--self-service", is_flag=True,
              help="The subscriber's own unlock: one day, once per calendar month.")
@format_option
@pass_state
def trust_unlock_command(state: AppState, login: str, until: str | None, note: str | None,
                         self_service: bool) -> None:
    """Desbloqueio em Confiança: a suspended service answers as enabled until a date."""
    if self_service:
        if until or note:
            raise click.UsageError("--self-service takes neither --until nor --note")
    elif not until or not note:
        raise click.UsageError("give --until and --note (or --self-service)")
    end = parse_moment(until, state.zone, "--until", end_of_day=True) if until else None
    with state.context() as ctx:
        if self_service:
            unlock = trust.self_service_unlock(ctx, login)
        else:
            assert end is not None and note is not None
            unlock = trust.trust_unlock(ctx, login, end, note)
        data = _unlock_dict(unlock, find_service(ctx.session, login).login)
    render(state, data)


# --- aaa worker ------------------------------------------------------------------------------


PAYMENT_LOOKBACK = timedelta(hours=1)


@click.command("worker")
@click.option("--once", is_flag=True, help="One tick, then exit.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=2.0, show_default=True,
              help="Seconds between ticks (the payment fast path's delay).")
@format_option
@pass_state
def worker_command(state: AppState, once: bool, interval: float) -> None:
    """Run due routines each minute and re-enable paying services within seconds."""
    clock = state.clock  # the composition root: the one place that reads the clock
    # Invoices changed in the last hour are re-judged at start: a payment that landed while
    # no worker ran re-enables at once instead of waiting for the next ENABLE routine.
    worker = Worker(_sessions(state), state.zone, _settings(state), _owner(),
                    clock() - PAYMENT_LOOKBACK)
    if once:
        done = worker.tick(clock())
        render(state, {"reenabled": done["reenabled"],
                       "routines": [{"name": n, "result": r} for n, r in done["routines"]]})
        return
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log_event("worker_stopping", signal=signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    log_event("worker_started", owner=worker.owner, interval=interval)
    try:
        while not stop.is_set():
            started = clock()
            try:
                worker.tick(started)
            except Exception as exc:  # a database hiccup must not kill the worker
                log_event("worker_tick_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            elapsed = (clock() - started).total_seconds()
            stop.wait(max(0.0, interval - elapsed))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log_event("worker_stopped", owner=worker.owner)


COMMANDS = [billing_group, routine_group, worker_command]


def register(root: click.Group) -> None:
    """Add the groups to the root command, and `trust-unlock` to `aaa service`."""
    for command in COMMANDS:
        root.add_command(command)
    service_group = root.commands.get("service")
    if isinstance(service_group, click.Group):
        service_group.add_command(trust_unlock_command)
