"""Who is acting, on which session, at what time: handed to every management function."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from aaa.db.models import Operator
from management.errors import PermissionDenied, RuleViolation


@dataclass(frozen=True, slots=True)
class Actor:
    operator_id: int | None
    login: str
    is_admin: bool
    permissions: frozenset[str]

    def require(self, permission: str) -> None:
        if not (self.is_admin or permission in self.permissions):
            raise PermissionDenied(self.login, permission)


DEFAULT_ZONE = ZoneInfo("America/Sao_Paulo")
SYSTEM = Actor(operator_id=None, login="system", is_admin=True, permissions=frozenset())


@dataclass(frozen=True, slots=True)
class Context:
    session: Session
    actor: Actor
    now: datetime  # timezone-aware UTC; injected so tests can travel in time
    zone: ZoneInfo = DEFAULT_ZONE  # the provider's days and dates
    password_key: Any = None  # a SecretKey: subscriber passwords are sealed with it when set

    @property
    def today(self) -> date:
        return self.now.astimezone(self.zone).date()

    def require(self, permission: str) -> None:
        self.actor.require(permission)


def load_actor(session: Session, login: str) -> Actor:
    """The operator behind a CLI call; refused when unknown or inactive."""
    operator = session.scalar(select(Operator).where(Operator.login == login))
    if operator is None:
        raise RuleViolation("operator.unknown", f"unknown operator {login}")
    if not operator.active:
        raise RuleViolation("operator.inactive", f"operator {login} is inactive")
    return Actor(
        operator_id=operator.id,
        login=operator.login,
        is_admin=operator.is_admin,
        permissions=frozenset(p.permission for p in operator.permissions),
    )
