"""`aaa worker`: runs due routines each minute and re-enables paying services within seconds.

The clock is injected: `tick(now)` does one pass, so tests drive it through time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from aaa.log import log_event
from billing_bridge import bridge, routines
from management.context import Context


class Worker:
    def __init__(self, sessions: sessionmaker[Session], zone: Any, settings: routines.RoutineSettings,
                 owner: str, started: datetime) -> None:
        self.sessions = sessions
        self.zone = zone
        self.settings = settings
        self.owner = owner
        self.invoices_seen = started  # payments before the worker started are the routine's job

    def tick(self, now: datetime) -> dict[str, Any]:
        """One pass: the payment fast path, then every routine due this minute."""
        done: dict[str, Any] = {"reenabled": self.payments(now), "routines": []}
        with self.sessions() as session:
            due = routines.due_routines(session, now, self.zone)
        for name in due:
            run, _ = routines.run_routine(
                self.sessions, name, now, actor=routines.ROUTINE_ACTOR, owner=self.owner,
                zone=self.zone, settings=self.settings)
            log_event("routine", name=name, task=run.task, result=run.result, counts=run.counts)
            done["routines"].append((name, run.result))
        return done

    def payments(self, now: datetime) -> int:
        """Suspended services whose invoices changed are re-judged at once."""
        with self.sessions() as session, session.begin():
            service_ids, latest = routines.paid_since(session, self.invoices_seen)
            if latest is None:
                return 0
            ctx = Context(session=session, actor=routines.ROUTINE_ACTOR, now=now, zone=self.zone)
            outcome = bridge.enable_routine(ctx, service_ids=service_ids) if service_ids else None
        self.invoices_seen = latest
        changed = len(outcome.changes) if outcome else 0
        if changed:
            log_event("payment_fast_path", services=len(service_ids), reenabled=changed)
        return changed
