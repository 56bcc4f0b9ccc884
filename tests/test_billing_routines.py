"""Routines on their cron fields and the worker, on committed databases (both backends):
cron parsing, a SUSPENSION routine due at 08:00 Monday to Friday, the routine lock, the
run log, and the worker's payment fast path — all driven by an injected clock."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from aaa.accounting.events import AcctEvent
from aaa.db.accounting import apply_events
from aaa.db.models import CoaJob, HistoryEntry, Routine, RoutineRun, Service
from billing_bridge import payments, routines
from billing_bridge.worker import Worker
from management.context import Context, load_actor
from management.errors import RuleViolation
from tests import factories
from tests.conftest import ZONE

SETTINGS = routines.RoutineSettings()
DUE = date(2026, 11, 2)
# Monday 2026-11-23, 08:00 in São Paulo (UTC-3) is 11:00 UTC.
MONDAY_8 = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)


def act(sessions: sessionmaker[Session], now: datetime, work: Callable[[Context], Any]) -> Any:
    """Run `work(ctx)` as admin at `now` in its own committed transaction, as the CLI does."""
    with sessions() as session, session.begin():
        return work(Context(session, load_actor(session, "admin"), now, ZONE))


def setup(sessions: sessionmaker[Session], now: datetime) -> int:
    """A method (partial 5, total 15 days), service `ana` online with an invoice overdue 21
    days as of Monday 2026-11-23, and a SUSPENSION routine at 08:00 Monday to Friday."""
    def work(ctx: Context) -> int:
        factories.plan(ctx)
        payments.create_method(ctx, "BOLETO", 5, 15)
        service = factories.service(ctx, "ana")
        payments.assign_method(ctx, "ana", "BOLETO")
        payments.add_invoice(ctx, "ana", DUE, "99.90")
        routines.add_routine(ctx, "suspensao-semana", "SUSPENSION", weekday="1-5", hour="8",
                             minute="0")
        return service.id

    service_id: int = act(sessions, now, work)
    apply_events(sessions, [AcctEvent("start", now - timedelta(days=1), 1, "10.0.0.1",
                                      unique_id="u-ana", acct_session_id="s-ana", login="ana",
                                      service_id=service_id)])
    return service_id


def service_status(sessions: sessionmaker[Session], login: str = "ana") -> str:
    with sessions() as session:
        return session.scalars(select(Service.status).where(Service.login == login)).one()


def runs(sessions: sessionmaker[Session]) -> list[RoutineRun]:
    with sessions() as session:
        return list(session.scalars(select(RoutineRun).order_by(RoutineRun.id)))


def test_cron_fields_parse_stars_lists_ranges_steps_and_sunday() -> None:
    """Each field takes *, numbers, lists, ranges and steps; weekday 0 and 7 are Sunday;
    anything else is refused with routine.cron_invalid."""
    assert routines.parse_field("minute", "*/15") == {0, 15, 30, 45}
    assert routines.parse_field("hour", "8-18/4") == {8, 12, 16}
    assert routines.parse_field("day", "1,15,28-31") == {1, 15, 28, 29, 30, 31}
    assert routines.parse_field("month", "*") == set(range(1, 13))
    assert routines.parse_field("weekday", "7") == routines.parse_field("weekday", "0") == {0}
    assert routines.parse_field("weekday", "5-7") == {5, 6, 0}
    assert routines.parse_field("weekday", "1-5") == {1, 2, 3, 4, 5}
    for name, text in (("minute", "60"), ("hour", "x"), ("day", "0"), ("month", "13"),
                       ("weekday", "8"), ("minute", "*/0"), ("hour", "5-3"), ("day", "")):
        with pytest.raises(RuleViolation) as refused:
            routines.parse_field(name, text)
        assert refused.value.rule == "routine.cron_invalid"


def test_matches_is_judged_in_the_provider_zone() -> None:
    """08:00 Mon-Fri matches 08:00 local on a weekday only; Sunday as 0 or 7 both match."""
    weekdays = Routine(name="r", task="SUSPENSION", month="*", day="*", weekday="1-5",
                       hour="8", minute="0")
    monday = MONDAY_8.astimezone(ZONE)
    assert routines.matches(weekdays, monday)
    assert not routines.matches(weekdays, monday + timedelta(minutes=1))
    assert not routines.matches(weekdays, monday - timedelta(days=1))  # Sunday
    assert not routines.matches(weekdays, MONDAY_8)  # 11:00 UTC is not 08:00 here
    for text in ("0", "7"):
        sunday = Routine(name="s", task="ENABLE", month="*", day="*", weekday=text, hour="*",
                         minute="*")
        assert routines.matches(sunday, monday - timedelta(days=1))
        assert not routines.matches(sunday, monday)


def test_add_routine_refusals(sessions: sessionmaker[Session]) -> None:
    """Unknown task, bad cron field and duplicate name are refused when the routine is added."""
    setup(sessions, MONDAY_8 - timedelta(hours=1))
    for kwargs, rule in (({"task": "NOPE"}, "routine.task_unknown"),
                         ({"task": "ENABLE", "hour": "25"}, "routine.cron_invalid"),
                         ({"task": "ENABLE", "name": "suspensao-semana"}, "routine.duplicate")):
        arguments = {"name": "x", **kwargs}
        with pytest.raises(RuleViolation) as refused:
            act(sessions, MONDAY_8, lambda ctx, a=arguments: routines.add_routine(ctx, **a))
        assert refused.value.rule == rule


def test_suspension_routine_runs_at_its_minute_once(sessions: sessionmaker[Session]) -> None:
    """The worker runs the 08:00 Mon-Fri SUSPENSION routine at 08:00 on Monday (not at 07:59,
    not twice in the minute, not on Saturday); the run is logged with its counts, and the
    suspension leaves history and a CoA job."""
    service_id = setup(sessions, MONDAY_8 - timedelta(hours=1))
    worker = Worker(sessions, ZONE, SETTINGS, "test-worker", MONDAY_8 - timedelta(hours=1))
    assert worker.tick(MONDAY_8 - timedelta(seconds=30))["routines"] == []
    assert service_status(sessions) == "enabled"
    done = worker.tick(MONDAY_8 + timedelta(seconds=5))
    assert done["routines"] == [("suspensao-semana", "ok")]
    assert service_status(sessions) == "suspended_debt"
    assert worker.tick(MONDAY_8 + timedelta(seconds=35))["routines"] == []  # same minute
    assert worker.tick(MONDAY_8 + timedelta(minutes=1))["routines"] == []
    assert worker.tick(MONDAY_8 + timedelta(days=5))["routines"] == []  # Saturday 08:00
    logged = runs(sessions)
    assert len(logged) == 1 and logged[0].result == "ok" and not logged[0].dry_run
    assert json.loads(logged[0].counts) == {"examined": 1, "changed": 1, "suspended_debt": 1,
                                            "coa_jobs": 1}
    assert logged[0].operator_login == "routine"
    with sessions() as session:
        actions = list(session.scalars(select(HistoryEntry.action).where(
            HistoryEntry.object_id == str(service_id), HistoryEntry.object_type == "service")))
        jobs = session.scalar(select(func.count()).select_from(CoaJob)
                              .where(CoaJob.service_id == service_id))
        routine = session.scalars(select(Routine)).one()
    assert "status:suspended_debt" in actions and jobs == 1
    assert routine.last_run_at == MONDAY_8 + timedelta(seconds=5) and routine.locked_by is None
    assert worker.tick(MONDAY_8 + timedelta(days=1))["routines"] == [("suspensao-semana", "ok")]


def test_locked_routine_is_skipped_and_logged(sessions: sessionmaker[Session]) -> None:
    """A routine locked by another worker is not run: the run is logged as skipped_locked
    and nothing changes; a lock older than an hour is taken over."""
    setup(sessions, MONDAY_8 - timedelta(hours=1))
    with sessions() as session, session.begin():
        session.execute(update(Routine).values(locked_by="other-host:1", locked_at=MONDAY_8))
    run, result = routines.run_routine(sessions, "suspensao-semana", MONDAY_8,
                                       actor=routines.ROUTINE_ACTOR, owner="me", zone=ZONE,
                                       settings=SETTINGS)
    assert run.result == "skipped_locked" and result.counts == {}
    assert service_status(sessions) == "enabled"
    with sessions() as session:
        assert session.scalars(select(Routine.locked_by)).one() == "other-host:1"
    later = MONDAY_8 + timedelta(hours=2)
    run, _ = routines.run_routine(sessions, "suspensao-semana", later,
                                  actor=routines.ROUTINE_ACTOR, owner="me", zone=ZONE,
                                  settings=SETTINGS)
    assert run.result == "ok" and service_status(sessions) == "suspended_debt"
    assert [r.result for r in runs(sessions)] == ["skipped_locked", "ok"]


def test_dry_run_routine_writes_nothing_but_its_log(sessions: sessionmaker[Session]) -> None:
    """A dry run reports what would change and why, changes no row, leaves last_run_at
    alone and is logged as a dry run."""
    service_id = setup(sessions, MONDAY_8 - timedelta(hours=1))

    def snapshot() -> tuple[Any, ...]:
        with sessions() as session:
            return (session.scalar(select(func.count()).select_from(HistoryEntry)),
                    session.scalar(select(func.count()).select_from(CoaJob)),
                    session.get(Service, service_id).status,  # type: ignore[union-attr]
                    session.scalars(select(Routine.last_run_at)).one())

    before = snapshot()
    run, result = routines.run_routine(sessions, "suspensao-semana", MONDAY_8,
                                       actor=routines.ROUTINE_ACTOR, owner="me", zone=ZONE,
                                       settings=SETTINGS, dry_run=True)
    assert run.result == "ok" and run.dry_run
    assert result.details == ["ana: enabled -> suspended_debt (21 days overdue (total suspension "
                              "after 15, BOLETO), open 99.90)"]
    assert snapshot() == before


def test_routine_run_as_another_moment(sessions: sessionmaker[Session]) -> None:
    """`at` runs a routine as of another day: four days after the due date nothing is due,
    on the sixth the service is partially suspended."""
    setup(sessions, MONDAY_8 - timedelta(hours=1))

    def run_at(day: int) -> dict[str, int]:
        moment = datetime(2026, 11, day, 15, tzinfo=UTC)
        run, result = routines.run_routine(sessions, "suspensao-semana", moment,
                                           actor=routines.ROUTINE_ACTOR, owner="me", zone=ZONE,
                                           settings=SETTINGS, wall=MONDAY_8)
        assert run.as_of == moment and run.started_at == MONDAY_8
        return result.counts

    assert run_at(6)["changed"] == 0
    assert run_at(8) == {"examined": 1, "changed": 1, "suspended_partial": 1, "coa_jobs": 1}
    assert service_status(sessions) == "suspended_partial"


def test_payment_fast_path_through_worker_tick(sessions: sessionmaker[Session]) -> None:
    """A payment committed while the worker runs re-enables the suspended service on the
    next tick (seconds later), without waiting for an ENABLE routine; an unrelated tick
    finds nothing."""
    service_id = setup(sessions, MONDAY_8 - timedelta(hours=1))
    routines.run_routine(sessions, "suspensao-semana", MONDAY_8, actor=routines.ROUTINE_ACTOR,
                         owner="me", zone=ZONE, settings=SETTINGS)
    assert service_status(sessions) == "suspended_debt"
    started = MONDAY_8 + timedelta(hours=1)
    worker = Worker(sessions, ZONE, SETTINGS, "w", started)
    assert worker.tick(started + timedelta(seconds=2))["reenabled"] == 0
    invoice_id = act(sessions, started, lambda ctx: payments.list_invoices(ctx.session, "ana")[0].id)
    act(sessions, started + timedelta(seconds=3),
        lambda ctx: payments.pay_invoice(ctx, invoice_id))
    assert worker.tick(started + timedelta(seconds=4))["reenabled"] == 1
    assert service_status(sessions) == "enabled"
    assert worker.tick(started + timedelta(seconds=6))["reenabled"] == 0
    with sessions() as session:
        reasons = list(session.scalars(select(CoaJob.reason).where(CoaJob.service_id == service_id)
                                       .order_by(CoaJob.id)))
    assert reasons == ["suspension routine", "enable routine"]


def test_partial_payment_does_not_reenable(sessions: sessionmaker[Session]) -> None:
    """The fast path re-judges, it does not forgive: half a payment leaves the debt over the
    thresholds and the service suspended."""
    setup(sessions, MONDAY_8 - timedelta(hours=1))
    routines.run_routine(sessions, "suspensao-semana", MONDAY_8, actor=routines.ROUTINE_ACTOR,
                         owner="me", zone=ZONE, settings=SETTINGS)
    worker = Worker(sessions, ZONE, SETTINGS, "w", MONDAY_8)
    act(sessions, MONDAY_8 + timedelta(seconds=1), lambda ctx: payments.pay_invoice(
        ctx, payments.list_invoices(ctx.session, "ana")[0].id, "50.00"))
    assert worker.tick(MONDAY_8 + timedelta(seconds=2))["reenabled"] == 0
    assert service_status(sessions) == "suspended_debt"


def test_scheduled_tasks_and_expiry_routines(sessions: sessionmaker[Session]) -> None:
    """SCHEDULED_TASKS applies a status change on its day; NAVIGATION_EXPIRY removes custom
    navigation whose end passed; TRUST_UNLOCK_EXPIRY ends a trust unlock."""
    from billing_bridge import trust
    from management import services

    setup(sessions, MONDAY_8 - timedelta(hours=1))

    def prepare(ctx: Context) -> None:
        factories.service(ctx, "bia")
        services.schedule(ctx, "bia", "suspended_request", date(2026, 11, 24), "viagem")
        services.set_navigation(ctx, "bia", 5000, 5000, MONDAY_8 + timedelta(hours=2))
        services.suspend(ctx, "ana", "debt")
        trust.trust_unlock(ctx, "ana", MONDAY_8 + timedelta(hours=3), "promessa")
        for name, task in (("tarefas", "SCHEDULED_TASKS"), ("navegacao", "NAVIGATION_EXPIRY"),
                           ("confianca", "TRUST_UNLOCK_EXPIRY")):
            routines.add_routine(ctx, name, task, hour="*", minute="*")

    act(sessions, MONDAY_8, prepare)

    def run(name: str, moment: datetime) -> dict[str, int]:
        _, result = routines.run_routine(sessions, name, moment, actor=routines.ROUTINE_ACTOR,
                                         owner="me", zone=ZONE, settings=SETTINGS)
        return result.counts

    assert run("tarefas", MONDAY_8) == {"due": 0, "applied": 0, "refused": 0}
    assert run("tarefas", MONDAY_8 + timedelta(days=1)) == {"due": 1, "applied": 1, "refused": 0}
    assert service_status(sessions, "bia") == "suspended_request"
    assert run("navegacao", MONDAY_8 + timedelta(hours=1)) == {"expired": 0}
    assert run("navegacao", MONDAY_8 + timedelta(hours=2)) == {"expired": 1}
    assert run("confianca", MONDAY_8 + timedelta(hours=4)) == {"expired": 1}
    with sessions() as session:
        bia = session.scalars(select(Service).where(Service.login == "bia")).one()
        ana = session.scalars(select(Service).where(Service.login == "ana")).one()
    assert bia.nav_download_kbps is None and ana.trust_unlock_until is None
