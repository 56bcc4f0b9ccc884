"""Models of inventory; imported by aaa.db.models so there is one metadata.

The network around a service besides the NAS: OLTs and their PON ports (Portas de
Atendimento), the addresses of services and customers, and the cities an operator is
limited to. Other tables are referenced by name only (this module is imported by
`aaa.db.models`, never the other way round).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from aaa.db.base import Base
from aaa.db.types import UTCDateTime

ADDRESS_KINDS = ("installation", "registration", "fiscal", "billing")


class Olt(Base):
    """Access equipment (OLT): reached by Telnet or SSH with a user and an encrypted password."""

    __tablename__ = "olts"
    __table_args__ = (CheckConstraint("protocol IN ('telnet', 'ssh')", name="protocol"),
                      CheckConstraint("port >= 1 AND port <= 65535", name="port"))

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    ip: Mapped[str] = mapped_column(String(45), unique=True)
    vendor: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(64))
    pop_id: Mapped[int | None] = mapped_column(ForeignKey("pops.id"))
    username: Mapped[str | None] = mapped_column(String(100))
    # base64(nonce ‖ ciphertext ‖ tag) from management.equipment_passwords; never plain text.
    password_encrypted: Mapped[str | None] = mapped_column(Text)
    password_key_id: Mapped[str | None] = mapped_column(String(16))  # fingerprint of the key
    protocol: Mapped[str] = mapped_column(String(8))
    port: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    ports: Mapped[list[PonPort]] = relationship(
        back_populates="olt", order_by="PonPort.chassis, PonPort.slot, PonPort.pon")

    def __repr__(self) -> str:  # no secret material
        return f"Olt(id={self.id}, name={self.name!r}, ip={self.ip!r})"


class PonPort(Base):
    """A PON port of an OLT (EPON/GPON): who is routed through it and how many may be."""

    __tablename__ = "olt_ports"
    __table_args__ = (
        UniqueConstraint("olt_id", "name", name="uq_olt_ports_olt_name"),
        UniqueConstraint("olt_id", "technology", "chassis", "slot", "pon",
                         name="uq_olt_ports_olt_position"),
        CheckConstraint("technology IN ('gpon', 'epon')", name="technology"),
        CheckConstraint("max_clients IS NULL OR max_clients >= 1", name="max_clients"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    olt_id: Mapped[int] = mapped_column(ForeignKey("olts.id"), index=True)
    technology: Mapped[str] = mapped_column(String(4))
    name: Mapped[str] = mapped_column(String(100))
    chassis: Mapped[int] = mapped_column(Integer, default=0)
    slot: Mapped[int] = mapped_column(Integer)
    pon: Mapped[int] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(String(200))
    default_vlan: Mapped[int | None] = mapped_column(Integer)
    default_cpe_profile: Mapped[str | None] = mapped_column(String(100))
    routing_nas_id: Mapped[int | None] = mapped_column(ForeignKey("nas.id"))
    routing_interface: Mapped[str | None] = mapped_column(String(253))
    max_clients: Mapped[int | None] = mapped_column(Integer)  # None: no limit
    block_over_utilization: Mapped[bool] = mapped_column(Boolean, default=False)
    allow_verification: Mapped[bool] = mapped_column(Boolean, default=False)
    signal_limit_dbm: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    olt: Mapped[Olt] = relationship(back_populates="ports")


class _AddressColumns:
    """Street address fields shared by service and customer addresses (CEP: 8 digits)."""

    street: Mapped[str] = mapped_column(String(200))
    number: Mapped[str | None] = mapped_column(String(20))
    complement: Mapped[str | None] = mapped_column(String(200))
    neighbourhood: Mapped[str] = mapped_column(String(100))
    city: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(2))
    cep: Mapped[str] = mapped_column(String(8))
    latitude: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    longitude: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ServiceAddress(_AddressColumns, Base):
    """One of the four addresses of a service: installation, registration, fiscal, billing."""

    __tablename__ = "service_addresses"
    __table_args__ = (
        UniqueConstraint("service_id", "kind", name="uq_service_addresses_service_kind"),
        CheckConstraint("kind IN ('installation', 'registration', 'fiscal', 'billing')",
                        name="kind"),
        Index("ix_service_addresses_city_neighbourhood", "city", "neighbourhood"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    kind: Mapped[str] = mapped_column(String(16))


class CustomerAddress(_AddressColumns, Base):
    """The customer's registration address (the one shown when searching the customer)."""

    __tablename__ = "customer_addresses"
    __table_args__ = (
        Index("ix_customer_addresses_city_neighbourhood", "city", "neighbourhood"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), unique=True)


class OperatorCity(Base):
    """A city an operator is limited to; an operator without rows sees every city."""

    __tablename__ = "operator_cities"

    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), primary_key=True)
    city: Mapped[str] = mapped_column(String(100), primary_key=True)


__all__ = ["ADDRESS_KINDS", "CustomerAddress", "Olt", "OperatorCity", "PonPort", "ServiceAddress"]
