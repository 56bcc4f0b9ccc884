"""All shared models. The billing module and the daemon read these same tables."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from aaa.db.base import Base
from aaa.db.enums import MacBinding, NasVendor, PersonType, ServiceStatus, TaskKind, check_in
from aaa.db.types import Money, UTCDateTime


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (CheckConstraint(check_in("person_type", PersonType), name="person_type"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_type: Mapped[str] = mapped_column(String(2))
    name: Mapped[str] = mapped_column(String(200))
    document: Mapped[str] = mapped_column(String(14), unique=True)  # digits only
    email: Mapped[str | None] = mapped_column(String(200))
    phones: Mapped[str | None] = mapped_column(String(200))  # comma-separated
    city: Mapped[str | None] = mapped_column(String(100), index=True)
    state: Mapped[str | None] = mapped_column(String(2))
    address: Mapped[str | None] = mapped_column(String(300))
    group_name: Mapped[str | None] = mapped_column(String(100))
    origin: Mapped[str | None] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    services: Mapped[list[Service]] = relationship(back_populates="customer")


class Plan(Base):
    __tablename__ = "plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    download_kbps: Mapped[int] = mapped_column(Integer)
    upload_kbps: Mapped[int] = mapped_column(Integer)
    price: Mapped[Decimal] = mapped_column(Money)
    technology: Mapped[str | None] = mapped_column(String(50))
    pool: Mapped[str | None] = mapped_column(String(100))
    allows_association: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Pop(Base):
    __tablename__ = "pops"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    city: Mapped[str | None] = mapped_column(String(100))


class Nas(Base):
    __tablename__ = "nas"
    __table_args__ = (CheckConstraint(check_in("vendor", NasVendor), name="vendor"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    ip: Mapped[str] = mapped_column(String(45), unique=True)
    vendor: Mapped[str] = mapped_column(String(16))
    model: Mapped[str | None] = mapped_column(String(100))
    pop_id: Mapped[int | None] = mapped_column(ForeignKey("pops.id"))
    secret: Mapped[str] = mapped_column(String(128))
    coa_port: Mapped[int] = mapped_column(Integer, default=3799)
    require_message_authenticator: Mapped[bool] = mapped_column(Boolean, default=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    pop: Mapped[Pop | None] = relationship()


class SubnetFolder(Base):
    __tablename__ = "subnet_folders"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)


class Subnet(Base):
    __tablename__ = "subnets"

    id: Mapped[int] = mapped_column(primary_key=True)
    folder_id: Mapped[int] = mapped_column(ForeignKey("subnet_folders.id"))
    cidr: Mapped[str] = mapped_column(String(49), unique=True)
    description: Mapped[str | None] = mapped_column(String(200))

    folder: Mapped[SubnetFolder] = relationship()


_LIVE = text("status != 'cancelled'")


class Service(Base):
    __tablename__ = "services"
    __table_args__ = (
        CheckConstraint(check_in("status", ServiceStatus), name="status"),
        CheckConstraint(check_in("mac_binding", MacBinding), name="mac_binding"),
        CheckConstraint("simultaneous_use >= 1", name="simultaneous_use"),
        # A cancelled service keeps its login and addresses for the record; only live
        # services must not share them (a migration re-uses the login on a new service).
        *(
            Index(f"uq_services_live_{column}", column, unique=True,
                  sqlite_where=_LIVE, postgresql_where=_LIVE)
            for column in ("login", "ipv4", "ipv6_prefix")
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"), index=True)
    login: Mapped[str] = mapped_column(String(128), index=True)
    # Kept recoverable on purpose: CHAP and MS-CHAP need the clear password.
    password: Mapped[str] = mapped_column(String(512))  # clear, or sealed (subscriber_passwords)
    status: Mapped[str] = mapped_column(String(24), index=True)
    mac: Mapped[str | None] = mapped_column(String(17))
    mac_binding: Mapped[str] = mapped_column(String(8), default=MacBinding.OFF.value)
    interface: Mapped[str | None] = mapped_column(String(253))
    nas_id: Mapped[int | None] = mapped_column(ForeignKey("nas.id"))
    ipv4: Mapped[str | None] = mapped_column(String(15))
    subnet_id: Mapped[int | None] = mapped_column(ForeignKey("subnets.id"))
    ipv6_prefix: Mapped[str | None] = mapped_column(String(43))
    nav_download_kbps: Mapped[int | None] = mapped_column(Integer)
    nav_upload_kbps: Mapped[int | None] = mapped_column(Integer)
    nav_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    associated_service_id: Mapped[int | None] = mapped_column(ForeignKey("services.id"))
    simultaneous_use: Mapped[int] = mapped_column(Integer, default=1)
    trust_unlock_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    price_override: Mapped[Decimal | None] = mapped_column(Money)
    note: Mapped[str | None] = mapped_column(Text)
    migrated_from_id: Mapped[int | None] = mapped_column(ForeignKey("services.id"))
    payment_method_id: Mapped[int | None] = mapped_column(ForeignKey("payment_methods.id"))
    pon_port_id: Mapped[int | None] = mapped_column(ForeignKey("olt_ports.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    customer: Mapped[Customer] = relationship(back_populates="services")
    plan: Mapped[Plan] = relationship()
    nas: Mapped[Nas | None] = relationship()
    subnet: Mapped[Subnet | None] = relationship()
    associated_service: Mapped[Service | None] = relationship(
        remote_side="Service.id", foreign_keys=[associated_service_id]
    )


class Variable(Base):
    __tablename__ = "variables"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Operator(Base):
    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(255))  # None: cannot log in
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    permissions: Mapped[list[OperatorPermission]] = relationship(
        cascade="all, delete-orphan", order_by="OperatorPermission.permission"
    )


class OperatorPermission(Base):
    __tablename__ = "operator_permissions"

    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), primary_key=True)
    permission: Mapped[str] = mapped_column(String(64), primary_key=True)


class HistoryEntry(Base):
    """Who changed what, when: the customer's history in HubSoft."""

    __tablename__ = "history"
    __table_args__ = (Index("ix_history_object", "object_type", "object_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    operator_login: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    action: Mapped[str] = mapped_column(String(64))
    changes: Mapped[str] = mapped_column(Text, default="{}")  # JSON: {field: [before, after]}
    note: Mapped[str | None] = mapped_column(Text)


class ChangeFeedEntry(Base):
    """One row per write that can change a RADIUS answer; `seq` only grows."""

    __tablename__ = "change_feed"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class ScheduledTask(Base):
    """A status change or cancellation the scheduler applies on a given day."""

    __tablename__ = "scheduled_tasks"
    __table_args__ = (
        CheckConstraint(check_in("kind", TaskKind), name="kind"),
        UniqueConstraint("service_id", "kind", "run_on", "target_status", name="uq_task_once"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    target_status: Mapped[str] = mapped_column(String(24))
    run_on: Mapped[date] = mapped_column(Date, index=True)
    note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)



class AuthLogEntry(Base):
    """One row per authentication decision: the Log de Autenticações."""

    __tablename__ = "auth_log"
    __table_args__ = (Index("ix_auth_log_login_at", "login", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    login: Mapped[str] = mapped_column(String(253))
    service_id: Mapped[int | None] = mapped_column(Integer)
    nas_id: Mapped[int | None] = mapped_column(Integer)
    nas_ip: Mapped[str] = mapped_column(String(45))
    result: Mapped[str] = mapped_column(String(8))  # accept / reject
    reason: Mapped[str] = mapped_column(Text)
    mac: Mapped[str | None] = mapped_column(String(64))
    mac_differs: Mapped[bool] = mapped_column(Boolean, default=False)
    interface: Mapped[str | None] = mapped_column(String(253))
    interface_differs: Mapped[bool] = mapped_column(Boolean, default=False)
    ip: Mapped[str | None] = mapped_column(String(45))
    pool: Mapped[str | None] = mapped_column(String(100))
    download_kbps: Mapped[int | None] = mapped_column(Integer)
    upload_kbps: Mapped[int | None] = mapped_column(Integer)



class AcctSession(Base):
    """One row per accounting session: the Extrato de Conexões."""

    __tablename__ = "acct_sessions"
    __table_args__ = (
        Index("ix_acct_sessions_nas_session", "nas_id", "acct_session_id"),
        Index("ix_acct_sessions_open_service", "service_id", "stopped_at"),
        Index("ix_acct_sessions_open_nas", "nas_id", "stopped_at"),
        # Not (login, started_at): started_at may move on an Interim, and an indexed column
        # that moves makes the update non-HOT (migration 0010).
        Index("ix_acct_sessions_login", "login"),
        {"postgresql_with": {"fillfactor": 80}},  # room on each page for HOT interims
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    # md5 of User-Name, Acct-Session-Id, NAS address, NAS-Identifier, NAS-Port-Id, NAS-Port
    # (FreeRADIUS's Acct-Unique-Session-Id); the idempotency key of every upsert.
    unique_id: Mapped[str] = mapped_column(String(32), unique=True)
    acct_session_id: Mapped[str] = mapped_column(String(253))
    nas_id: Mapped[int | None] = mapped_column(Integer)
    nas_ip: Mapped[str] = mapped_column(String(45))
    login: Mapped[str] = mapped_column(String(253))
    service_id: Mapped[int | None] = mapped_column(Integer)
    nas_port_id: Mapped[str | None] = mapped_column(String(253))
    mac: Mapped[str | None] = mapped_column(String(64))
    framed_ip: Mapped[str | None] = mapped_column(String(45))
    ipv6_prefix: Mapped[str | None] = mapped_column(String(64))
    delegated_ipv6_prefix: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    session_time: Mapped[int] = mapped_column(BigInteger, default=0)
    input_octets: Mapped[int] = mapped_column(BigInteger, default=0)
    output_octets: Mapped[int] = mapped_column(BigInteger, default=0)
    terminate_cause: Mapped[str | None] = mapped_column(String(64))


class ConnectionAlarm(Base):
    """A service that connected more often than ALARME_QUANTIDADE_CONEXOES_LIMITE_PERIODO."""

    __tablename__ = "connection_alarms"

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"), index=True)
    login: Mapped[str] = mapped_column(String(128))
    sessions: Mapped[int] = mapped_column(Integer)
    period_days: Mapped[int] = mapped_column(Integer)
    limit: Mapped[int] = mapped_column(Integer)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class CoaJob(Base):
    """A live-session change to push to the NAS: queued by management and billing writes."""

    __tablename__ = "coa_jobs"
    __table_args__ = (Index("ix_coa_jobs_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"), index=True)
    login: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))  # disconnect | coa
    reason: Mapped[str] = mapped_column(Text)
    operator_login: Mapped[str] = mapped_column(String(64))
    fallback_disconnect: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|sending|done|failed
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    result: Mapped[str | None] = mapped_column(Text)


class CoaAttempt(Base):
    """Every request sent for a job and what came back: the Histórico PoD/CoD."""

    __tablename__ = "coa_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("coa_jobs.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    service_id: Mapped[int] = mapped_column(Integer, index=True)
    login: Mapped[str] = mapped_column(String(128))
    nas_id: Mapped[int | None] = mapped_column(Integer)
    nas_ip: Mapped[str] = mapped_column(String(45))
    acct_session_id: Mapped[str | None] = mapped_column(String(253))
    request_type: Mapped[str] = mapped_column(String(16))  # disconnect | coa
    attempt: Mapped[int] = mapped_column(Integer)
    result: Mapped[str] = mapped_column(String(16))  # ack | nak | timeout | error
    error_cause: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    operator_login: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)


class PaymentMethod(Base):
    """Forma de Cobrança: when overdue invoices suspend a service, and how hard."""

    __tablename__ = "payment_methods"
    __table_args__ = (CheckConstraint("reduction_type IN ('relative', 'absolute')",
                                      name="reduction_type"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    allows_partial: Mapped[bool] = mapped_column(Boolean, default=False)
    partial_after_days: Mapped[int | None] = mapped_column(Integer)
    allows_total: Mapped[bool] = mapped_column(Boolean, default=True)
    total_after_days: Mapped[int | None] = mapped_column(Integer)
    min_open_amount: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    reduction_type: Mapped[str] = mapped_column(String(8), default="relative")
    reduction_value: Mapped[int] = mapped_column(Integer, default=50)  # % off, or kbit/s
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Invoice(Base):
    """Fatura, written by the billing module. `status`: open, paid, partially_paid, cancelled."""

    __tablename__ = "invoices"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'paid', 'partially_paid', 'cancelled')", name="status"),
        Index("ix_invoices_service_status_due", "service_id", "status", "due_date"),
        Index("ix_invoices_updated", "updated_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    due_date: Mapped[date] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(Money)
    amount_paid: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    status: Mapped[str] = mapped_column(String(16), default="open")
    payment_method_id: Mapped[int | None] = mapped_column(ForeignKey("payment_methods.id"))
    description: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Payment(Base):
    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    paid_at: Mapped[datetime] = mapped_column(UTCDateTime)
    amount: Mapped[Decimal] = mapped_column(Money)
    note: Mapped[str | None] = mapped_column(String(200))


class TrustUnlock(Base):
    """Desbloqueio em Confiança: who unlocked, until when; self-service ones count per month."""

    __tablename__ = "trust_unlocks"

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    until: Mapped[datetime] = mapped_column(UTCDateTime)
    self_service: Mapped[bool] = mapped_column(Boolean, default=False)
    operator_login: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text)


class Routine(Base):
    """A scheduled job with cron-like fields (Rotinas), run by `aaa worker`."""

    __tablename__ = "routines"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    task: Mapped[str] = mapped_column(String(32))
    month: Mapped[str] = mapped_column(String(64), default="*")
    day: Mapped[str] = mapped_column(String(128), default="*")
    weekday: Mapped[str] = mapped_column(String(32), default="*")
    hour: Mapped[str] = mapped_column(String(96), default="*")
    minute: Mapped[str] = mapped_column(String(200), default="0")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    locked_by: Mapped[str | None] = mapped_column(String(100))
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RoutineRun(Base):
    __tablename__ = "routine_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    routine_id: Mapped[int | None] = mapped_column(ForeignKey("routines.id"), index=True)
    task: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    as_of: Mapped[datetime] = mapped_column(UTCDateTime)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    operator_login: Mapped[str] = mapped_column(String(64))
    result: Mapped[str] = mapped_column(String(16))  # ok | failed | skipped_locked
    counts: Mapped[str] = mapped_column(Text, default="{}")  # JSON
    error: Mapped[str | None] = mapped_column(Text)

__all__ = [
    "AcctSession",
    "AuthLogEntry",
    "Base",
    "ChangeFeedEntry",
    "CoaAttempt",
    "CoaJob",
    "ConnectionAlarm",
    "Customer",
    "HistoryEntry",
    "Invoice",
    "Nas",
    "Operator",
    "OperatorPermission",
    "Payment",
    "PaymentMethod",
    "Plan",
    "Pop",
    "Routine",
    "RoutineRun",
    "ScheduledTask",
    "Service",
    "Subnet",
    "SubnetFolder",
    "TrustUnlock",
    "Variable",
]

# The other areas' tables live in modules of their own on the same Base and metadata.
from aaa.db import models_inventory, models_secrets, models_tickets  # noqa: E402, F401
