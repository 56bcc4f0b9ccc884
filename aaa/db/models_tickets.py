"""Models of tickets (Atendimentos) and service orders (Ordens de Serviço).

Imported by aaa.db.models so there is one metadata; other tables are referenced only by
their names (this module must not import aaa.db.models).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from aaa.db.base import Base
from aaa.db.types import UTCDateTime

TICKET_STATUSES = ("draft", "awaiting_analysis", "pending", "resolved", "finished")
TICKET_ORIGINS = ("operator", "portal")
MESSAGE_AUTHOR_KINDS = ("operator", "subscriber")
ORDER_STATUSES = ("open", "closed")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class TicketType(Base):
    """Tipo de Atendimento: a configurable list; `SAC` is built in."""

    __tablename__ = "ticket_types"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ProtocolCounter(Base):
    """The last sequence number handed out on a day (provider's zone): protocols are
    YYYYMMDD followed by the day's sequence, allocated with one atomic upsert."""

    __tablename__ = "ticket_protocol_counters"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    last: Mapped[int] = mapped_column(Integer)


class Ticket(Base):
    """Atendimento: one protocol number, never reused."""

    __tablename__ = "tickets"
    __table_args__ = (
        CheckConstraint(_in("status", TICKET_STATUSES), name="status"),
        CheckConstraint(_in("origin", TICKET_ORIGINS), name="origin"),
        Index("ix_tickets_customer_created", "customer_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    protocol: Mapped[str] = mapped_column(String(20), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"), index=True)
    type_id: Mapped[int | None] = mapped_column(ForeignKey("ticket_types.id"), index=True)
    status: Mapped[str] = mapped_column(String(24), index=True)
    origin: Mapped[str] = mapped_column(String(16), index=True)
    opened_by_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), index=True)
    opened_by_login: Mapped[str] = mapped_column(String(64))
    destination: Mapped[str | None] = mapped_column(String(100))
    opening_description: Mapped[str | None] = mapped_column(Text)
    closing_description: Mapped[str | None] = mapped_column(Text)
    diagnostics: Mapped[str] = mapped_column(Text, default="{}")  # JSON snapshot at opening
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_by_login: Mapped[str | None] = mapped_column(String(64))


class TicketMessage(Base):
    """One entry of a ticket's message timeline; only its author edits or deletes it."""

    __tablename__ = "ticket_messages"
    __table_args__ = (CheckConstraint(_in("author_kind", MESSAGE_AUTHOR_KINDS), name="author_kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    author_kind: Mapped[str] = mapped_column(String(16))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    author_login: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ServiceOrderReason(Base):
    """Motivo de Fechamento de O.S.: a configurable list chosen when an order is closed."""

    __tablename__ = "service_order_reasons"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ServiceOrder(Base):
    """Ordem de Serviço, opened from a ticket; closed with a reason."""

    __tablename__ = "service_orders"
    __table_args__ = (CheckConstraint(_in("status", ORDER_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"), index=True)
    kind: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), index=True)
    technician: Mapped[str | None] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text)
    opened_by_login: Mapped[str] = mapped_column(String(64))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_by_login: Mapped[str | None] = mapped_column(String(64))
    closing_reason_id: Mapped[int | None] = mapped_column(ForeignKey("service_order_reasons.id"),
                                                          index=True)
    closing_description: Mapped[str | None] = mapped_column(Text)


__all__ = ["ProtocolCounter", "ServiceOrder", "ServiceOrderReason", "Ticket", "TicketMessage",
           "TicketType"]
