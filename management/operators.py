"""Operators (Usuários do sistema) and their named permissions."""

from __future__ import annotations

import os

from sqlalchemy import select
from sqlalchemy.orm import Session

from aaa.db.models import Operator, OperatorPermission
from management import audit
from management.context import Context
from management.errors import NotFound, RuleViolation
from management.passwords import generate_password, hash_password
from management.permissions import PERMISSIONS, is_known


def get_operator(session: Session, login: str) -> Operator:
    operator = session.scalar(select(Operator).where(Operator.login == login))
    if operator is None:
        raise NotFound("operator", login)
    return operator


def _check_permissions(names: list[str]) -> list[str]:
    unknown = [name for name in names if not is_known(name)]
    if unknown:
        raise RuleViolation("operator.permission_unknown",
                            f"unknown permission(s): {', '.join(unknown)}; known: {', '.join(PERMISSIONS)}")
    return sorted(set(names))


def create_operator(
    ctx: Context, login: str, name: str, password: str | None = None,
    permissions: list[str] | None = None, is_admin: bool = False,
) -> Operator:
    ctx.require("operators.manage")
    if not login.strip() or any(c.isspace() for c in login):
        raise RuleViolation("operator.login_invalid", f"invalid operator login: {login!r}")
    if ctx.session.scalar(select(Operator.id).where(Operator.login == login)):
        raise RuleViolation("operator.login_duplicate", f"operator {login} already exists")
    if is_admin and not ctx.actor.is_admin:
        raise RuleViolation("operator.admin_only", "only an administrator can create another")
    operator = Operator(
        login=login, name=name, password_hash=hash_password(password) if password else None,
        active=True, is_admin=is_admin, created_at=ctx.now,
        permissions=[OperatorPermission(permission=p) for p in _check_permissions(permissions or [])],
    )
    ctx.session.add(operator)
    ctx.session.flush()
    audit.record(ctx, "operator", operator.login, "create",
                 {"permissions": [[], [p.permission for p in operator.permissions]],
                  "is_admin": [None, is_admin]})
    return operator


def _set_permissions(ctx: Context, operator: Operator, names: list[str], action: str) -> None:
    before = [p.permission for p in operator.permissions]
    operator.permissions = [OperatorPermission(permission=p) for p in names]
    audit.record(ctx, "operator", operator.login, action, {"permissions": [before, names]})


def grant(ctx: Context, login: str, add: list[str], remove: list[str]) -> Operator:
    ctx.require("operators.manage")
    operator = get_operator(ctx.session, login)
    current = {p.permission for p in operator.permissions}
    wanted = sorted((current | set(_check_permissions(add))) - set(_check_permissions(remove)))
    if wanted != sorted(current):
        _set_permissions(ctx, operator, wanted, "permissions")
    return operator


def clone_permissions(ctx: Context, target_login: str, source_login: str) -> Operator:
    """Give `target` exactly the permissions of `source` (the ones it had are lost)."""
    ctx.require("operators.manage")
    source = get_operator(ctx.session, source_login)
    target = get_operator(ctx.session, target_login)
    _set_permissions(ctx, target, sorted(p.permission for p in source.permissions),
                     f"clone_permissions:{source.login}")
    return target


def inactivate_operator(ctx: Context, login: str) -> Operator:
    ctx.require("operators.manage")
    operator = get_operator(ctx.session, login)
    if operator.login == ctx.actor.login:
        raise RuleViolation("operator.self_inactivate", "an operator cannot inactivate himself")
    if operator.active:
        operator.active = False
        audit.record(ctx, "operator", operator.login, "inactivate", {"active": [True, False]})
    return operator


def list_operators(session: Session) -> list[Operator]:
    return list(session.scalars(select(Operator).order_by(Operator.login)))


def ensure_admin(ctx: Context, login: str = "admin", password: str | None = None) -> str | None:
    """Create the initial administrator once; returns its password when one was generated.

    The password comes from AAA_ADMIN_PASSWORD when set, otherwise it is generated and
    shown once by `aaa db init`.
    """
    if ctx.session.scalar(select(Operator.id).where(Operator.login == login)):
        return None
    given = password or os.environ.get("AAA_ADMIN_PASSWORD")
    password = given or generate_password()
    ctx.session.add(Operator(login=login, name="Administrator", password_hash=hash_password(password),
                             active=True, is_admin=True, created_at=ctx.now))
    audit.record(ctx, "operator", login, "create", {"is_admin": [None, True]})
    return None if given else password
