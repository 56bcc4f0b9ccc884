"""Reading the history: per service login or per customer."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from aaa.db.models import HistoryEntry, Service
from management.context import Actor
from management.customers import get_customer
from management.errors import NotFound


def for_login(session: Session, login: str, *, actor: Actor | None = None) -> list[HistoryEntry]:
    """Every entry of every service that ever had this login (migrations included)."""
    if actor is not None:
        from management.services import find_service  # the operator's cities (scope)
        find_service(session, login, actor=actor)
    ids = [str(i) for i in session.scalars(select(Service.id).where(Service.login == login))]
    if not ids:
        raise NotFound("service", login)
    return list(session.scalars(
        select(HistoryEntry).where(HistoryEntry.object_type == "service",
                                   HistoryEntry.object_id.in_(ids))
        .order_by(HistoryEntry.at, HistoryEntry.id)))


def for_customer(session: Session, ref: str | int, *, actor: Actor | None = None
                 ) -> list[HistoryEntry]:
    customer = get_customer(session, ref, actor=actor)
    return list(session.scalars(
        select(HistoryEntry).where(or_(
            HistoryEntry.customer_id == customer.id,
            (HistoryEntry.object_type == "customer") & (HistoryEntry.object_id == str(customer.id)),
        )).order_by(HistoryEntry.at, HistoryEntry.id)))


def for_operator(session: Session, login: str) -> list[HistoryEntry]:
    return list(session.scalars(
        select(HistoryEntry).where(HistoryEntry.operator_login == login)
        .order_by(HistoryEntry.at, HistoryEntry.id)))
