"""Operators limited to cities (aba "Cidades" of a user in HubSoft).

An operator with cities set sees and changes only customers of those cities (and their
services); an operator without any sees every customer. The customer's city is
`customers.city` (kept in step with his registration address). Cities compare without
regard to case or surrounding blanks. The checks live here and are called by the
management functions at their entry points (lookups, listings, writes); an `actor` of
`None` means "no restriction" (the daemon, routines, internal callers).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from aaa.db.models import Customer, Operator, Service
from aaa.db.models_inventory import OperatorCity
from management import audit
from management.context import Actor, Context
from management.errors import NotFound, RuleViolation

RULE = "operator.city_scope"
_CACHE_KEY = "aaa.operator_cities"


def city_key(city: str | None) -> str:
    return (city or "").strip().lower()


def operator_cities(session: Session, operator_id: int) -> list[str]:
    return list(session.scalars(select(OperatorCity.city)
                                .where(OperatorCity.operator_id == operator_id)
                                .order_by(OperatorCity.city)))


def visible_cities(session: Session, actor: Actor | None) -> frozenset[str] | None:
    """The cities (lower-cased) an actor is limited to, or None when he sees every city."""
    if actor is None or actor.operator_id is None:
        return None
    cache: dict[int, frozenset[str] | None] = session.info.setdefault(_CACHE_KEY, {})
    if actor.operator_id not in cache:
        cities = frozenset(city_key(c) for c in operator_cities(session, actor.operator_id))
        cache[actor.operator_id] = cities or None
    return cache[actor.operator_id]


def customer_filter(session: Session, actor: Actor | None) -> Any:
    """A WHERE clause on `Customer` for the actor's cities, or None when unrestricted."""
    cities = visible_cities(session, actor)
    if cities is None:
        return None
    return func.lower(func.trim(Customer.city)).in_(sorted(cities))


def restrict(query: Any, session: Session, actor: Actor | None) -> Any:
    """Add the actor's city filter to a select that already involves `Customer`."""
    clause = customer_filter(session, actor)
    return query if clause is None else query.where(clause)


def service_filter(session: Session, actor: Actor | None, service_id: Any) -> Any:
    """A WHERE clause keeping the rows whose `service_id` column names a service of a
    customer in the actor's cities (sessions, authentication log, alarms), or None when
    unrestricted. A row with no service (an unknown login) is in no city: hidden."""
    clause = customer_filter(session, actor)
    if clause is None:
        return None
    visible = select(Service.id).join(Customer, Customer.id == Service.customer_id).where(clause)
    return service_id.in_(visible)


def check_city(session: Session, actor: Actor | None, city: str | None, what: str) -> None:
    """Refuse when `city` is outside the actor's cities (`what` names the object)."""
    cities = visible_cities(session, actor)
    if cities is not None and city_key(city) not in cities:
        assert actor is not None and actor.operator_id is not None
        names = ", ".join(operator_cities(session, actor.operator_id))
        raise RuleViolation(RULE, f"operator {actor.login} is limited to the cities {names}; "
                                  f"{what} is in {city or 'no city'}")


def check_customer(session: Session, actor: Actor | None, customer: Customer) -> Customer:
    check_city(session, actor, customer.city, f"customer {customer.id}")
    return customer


def set_cities(ctx: Context, login: str, cities: Iterable[str]) -> list[str]:
    """Limit operator `login` to `cities` (an empty list lifts the limit); returns them."""
    ctx.require("operators.manage")
    operator = ctx.session.scalar(select(Operator).where(Operator.login == login))
    if operator is None:
        raise NotFound("operator", login)
    wanted: dict[str, str] = {}
    for city in cities:
        name = " ".join(city.split())
        if not name or len(name) > 100:
            raise RuleViolation("operator.city_invalid", f"invalid city name: {city!r}")
        wanted.setdefault(city_key(name), name)
    before = operator_cities(ctx.session, operator.id)
    after = sorted(wanted.values())
    if before != after:
        ctx.session.execute(delete(OperatorCity).where(OperatorCity.operator_id == operator.id))
        ctx.session.add_all(OperatorCity(operator_id=operator.id, city=c) for c in after)
        ctx.session.flush()
        audit.record(ctx, "operator", operator.login, "cities", {"cities": [before, after]})
    ctx.session.info.pop(_CACHE_KEY, None)
    return after
