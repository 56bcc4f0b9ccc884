"""System variables (Variáveis): key → value, read by the daemon and the routines."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from aaa.db.models import Variable
from management import audit
from management.context import Context
from management.errors import NotFound, RuleViolation

KNOWN_VARIABLES: dict[str, str] = {
    "POOL_SUSPENSAO_TOTAL": "IP pool given to services suspended for debt (total suspension); "
                            "unset: such services are rejected",
    "POOL_SUSPENSAO_PARCIALMENTE": "IP pool given to partially suspended services (reduced speed)",
    "ALARME_QUANTIDADE_CONEXOES_LIMITE_PERIODO": "connection alarm: sessions allowed in the period",
    "ALARME_QUANTIDADE_CONEXOES_PERIODO_DIAS": "connection alarm: length of the period, in days",
    "ALARME_CONEXAO_DIAS_EXPIRACAO": "connection alarm: days until an alarm expires",
}
_INTEGER_VARIABLES = {key for key in KNOWN_VARIABLES if key.startswith("ALARME_")}


def set_variable(ctx: Context, key: str, value: str) -> Variable:
    ctx.require("variables.edit")
    key = key.strip().upper()
    if not key or any(c.isspace() for c in key):
        raise RuleViolation("variable.key_invalid", f"invalid variable name: {key!r}")
    if key in _INTEGER_VARIABLES and not value.strip().isdigit():
        raise RuleViolation("variable.value_invalid", f"{key} must be a whole number of days/sessions")
    row = ctx.session.get(Variable, key)
    before = row.value if row else None
    if row is None:
        row = Variable(key=key, value=value)
        ctx.session.add(row)
    else:
        row.value = value
    if before != value:
        audit.record(ctx, "variable", key, "set", {"value": [before, value]})
        audit.publish(ctx, "variable", key)
    return row


def get_variable(session: Session, key: str) -> Variable:
    row = session.get(Variable, key.strip().upper())
    if row is None:
        raise NotFound("variable", key)
    return row


def list_variables(session: Session) -> list[Variable]:
    return list(session.scalars(select(Variable).order_by(Variable.key)))
