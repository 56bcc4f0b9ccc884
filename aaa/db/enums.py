"""Codes stored in the database and printed by the CLI (the glossary's names)."""

from __future__ import annotations

from enum import StrEnum


class ServiceStatus(StrEnum):
    ENABLED = "enabled"
    SUSPENDED_DEBT = "suspended_debt"
    SUSPENDED_PARTIAL = "suspended_partial"
    SUSPENDED_REQUEST = "suspended_request"
    CANCELLED = "cancelled"
    AWAITING_INSTALL = "awaiting_install"
    AWAITING_MIGRATION = "awaiting_migration"


class MacBinding(StrEnum):
    OFF = "off"
    LEARN = "learn"  # store the first MAC seen
    ENFORCE = "enforce"  # reject any other MAC


class NasVendor(StrEnum):
    MIKROTIK = "mikrotik"
    HUAWEI = "huawei"
    OTHER = "other"


class PersonType(StrEnum):
    PF = "PF"  # pessoa física, CPF
    PJ = "PJ"  # pessoa jurídica, CNPJ


class TaskKind(StrEnum):
    STATUS_CHANGE = "status_change"
    CANCEL = "cancel"


def check_in(column: str, enum: type[StrEnum]) -> str:
    """SQL CHECK expression restricting `column` to the enum's values."""
    values = ", ".join(f"'{member.value}'" for member in enum)
    return f"{column} IN ({values})"
