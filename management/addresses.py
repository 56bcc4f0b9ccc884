"""Addresses: the four of a service, the customer's registration address, neighbourhoods.

A service keeps an installation, a registration, a fiscal and a billing address ("Atualizar
Todos" writes the same fields into the four); the customer keeps his own registration
address, the one shown when searching him, which also sets `customers.city`/`state`/`address`
(the city decides which operators see him, `management.scope`). Every change is a history
row on the customer. Grouping neighbourhoods renames several neighbourhood names of a city
into one in every address at once, with one history row per affected customer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from aaa.db.models import Customer, Service
from aaa.db.models_inventory import ADDRESS_KINDS, CustomerAddress, ServiceAddress
from management import audit, scope
from management.context import Actor, Context
from management.customers import get_customer
from management.errors import RuleViolation
from management.services import CANCELLED, find_service

ALL = "all"
KINDS = (*ADDRESS_KINDS, ALL)
FIELDS = ("street", "number", "complement", "neighbourhood", "city", "state", "cep",
          "latitude", "longitude")
REQUIRED = ("street", "neighbourhood", "city", "state", "cep")
UFS = frozenset(("AC", "AL", "AP", "AM", "BA", "CE", "DF", "ES", "GO", "MA", "MT", "MS", "MG",
                 "PA", "PB", "PR", "PE", "PI", "RJ", "RN", "RS", "RO", "RR", "SC", "SP", "SE", "TO"))
_LIMITS = {"street": 200, "number": 20, "complement": 200, "neighbourhood": 100, "city": 100}
_CEP = re.compile(r"\d{8}")

Address = ServiceAddress | CustomerAddress


def normalize_cep(raw: str) -> str:
    """A CEP with or without punctuation → its 8 digits."""
    digits = re.sub(r"[\s.-]", "", raw)
    if not _CEP.fullmatch(digits):
        raise RuleViolation("address.cep_invalid", f"CEP must have 8 digits: {raw}")
    return digits


def normalize_state(raw: str) -> str:
    state = raw.strip().upper()
    if state not in UFS:
        raise RuleViolation("address.state_invalid", f"state must be a 2-letter UF code: {raw}")
    return state


def _coordinate(raw: Any, name: str, limit: int) -> Decimal | None:
    if raw is None or str(raw).strip() == "":
        return None
    try:
        value = Decimal(str(raw).strip().replace(",", "."))
    except InvalidOperation:
        raise RuleViolation("address.coordinates_invalid", f"{name} is not a number: {raw}") from None
    if not value.is_finite() or not -limit <= value <= limit:
        raise RuleViolation("address.coordinates_invalid",
                            f"{name} must be from -{limit} to {limit}: {raw}")
    return value.quantize(Decimal("0.000001"))


def _clean(given: dict[str, Any]) -> dict[str, Any]:
    """Validate and normalise the given fields; an empty string clears an optional one."""
    unknown = set(given) - set(FIELDS)
    if unknown:
        raise TypeError(f"unknown address field(s): {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    for name, value in given.items():
        if name == "cep":
            out[name] = normalize_cep(str(value)) if value not in (None, "") else None
        elif name == "state":
            out[name] = normalize_state(str(value)) if value not in (None, "") else None
        elif name in ("latitude", "longitude"):
            out[name] = _coordinate(value, name, 90 if name == "latitude" else 180)
        else:
            text = " ".join(str(value).split()) if value is not None else ""
            if len(text) > _LIMITS[name]:
                raise RuleViolation("address.field_too_long",
                                    f"{name} has more than {_LIMITS[name]} characters")
            out[name] = text or None
    return out


def _apply(row: Address, values: dict[str, Any], now: Any) -> None:
    """Check the address that `values` would make of `row`, then write them (or nothing)."""
    merged = {name: values.get(name, getattr(row, name)) for name in FIELDS}
    missing = [name for name in REQUIRED if not merged[name]]
    if missing:
        raise RuleViolation("address.incomplete", f"the address needs {', '.join(missing)}")
    if (merged["latitude"] is None) != (merged["longitude"] is None):
        raise RuleViolation("address.coordinates_invalid",
                            "give both latitude and longitude, or neither")
    for name, value in values.items():
        setattr(row, name, value)
    row.updated_at = now


def _snapshot(row: Address | None) -> dict[str, Any]:
    return {} if row is None else audit.snapshot(row, FIELDS)


def one_line(row: Address) -> str:
    """The address as one line: `Rua X, 12, apto 3 - Bairro, Cidade/UF, CEP 50000-000`."""
    street = ", ".join(p for p in (row.street, row.number, row.complement) if p)
    return f"{street} - {row.neighbourhood}, {row.city}/{row.state}, CEP {row.cep[:5]}-{row.cep[5:]}"


def as_dict(row: Address, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = dict(extra)
    data.update({name: getattr(row, name) for name in FIELDS})
    for name in ("latitude", "longitude"):
        data[name] = str(data[name]) if data[name] is not None else None
    data["updated_at"] = row.updated_at.isoformat()
    return data


# --- service addresses ------------------------------------------------------------------------


def service_addresses(session: Session, login: str, *, actor: Actor | None = None
                      ) -> tuple[Service, list[ServiceAddress]]:
    service = find_service(session, login, actor=actor)
    rows = list(session.scalars(select(ServiceAddress).where(ServiceAddress.service_id == service.id)))
    rows.sort(key=lambda r: ADDRESS_KINDS.index(r.kind))
    return service, rows


def set_service_address(ctx: Context, login: str, kind: str, **given: Any) -> list[ServiceAddress]:
    """Write the given fields into one address of a service, or into the four (`all`).

    Fields not given keep their value; an empty string clears an optional field (number,
    complement, coordinates). The result must have street, neighbourhood, city, state and
    CEP. One history row per address that changed.
    """
    ctx.require("addresses.edit")
    if kind not in KINDS:
        raise RuleViolation("address.kind_invalid", f"address kind must be one of {', '.join(KINDS)}")
    service = find_service(ctx.session, login, actor=ctx.actor)
    if service.status == CANCELLED:
        raise RuleViolation("service.cancelled", f"service {login} is cancelled")
    values = _clean(given)
    existing = {row.kind: row for row in ctx.session.scalars(
        select(ServiceAddress).where(ServiceAddress.service_id == service.id))}
    changed: list[ServiceAddress] = []
    for each in ADDRESS_KINDS if kind == ALL else (kind,):
        row = existing.get(each)
        before = _snapshot(row)
        if row is None:
            row = ServiceAddress(service_id=service.id, kind=each)
        with ctx.session.no_autoflush:
            _apply(row, values, ctx.now)
        ctx.session.add(row)
        changes = audit.diff(before, _snapshot(row))
        if changes:
            ctx.session.flush()
            audit.record(ctx, "service", service.id, f"address:{each}", changes,
                         customer_id=service.customer_id)
        changed.append(row)
    return changed


def carry_addresses(ctx: Context, old: Service, new: Service) -> None:
    """Copy a service's addresses onto the service that replaces it (plan migration)."""
    have = set(ctx.session.scalars(select(ServiceAddress.kind)
                                   .where(ServiceAddress.service_id == new.id)))
    for row in ctx.session.scalars(select(ServiceAddress).where(ServiceAddress.service_id == old.id)):
        if row.kind not in have:
            ctx.session.add(ServiceAddress(service_id=new.id, kind=row.kind, updated_at=ctx.now,
                                           **{name: getattr(row, name) for name in FIELDS}))


# --- the customer's registration address ---------------------------------------------------------


def customer_address(session: Session, ref: str | int, *, actor: Actor | None = None
                     ) -> tuple[Customer, CustomerAddress | None]:
    customer = get_customer(session, ref, actor=actor)
    return customer, session.scalar(select(CustomerAddress)
                                    .where(CustomerAddress.customer_id == customer.id))


def set_customer_address(ctx: Context, ref: str | int, **given: Any) -> CustomerAddress:
    """Write the customer's registration address; his city, state and one-line address follow."""
    ctx.require("addresses.edit")
    customer, row = customer_address(ctx.session, ref, actor=ctx.actor)
    values = _clean(given)
    before = _snapshot(row)
    if row is None:
        row = CustomerAddress(customer_id=customer.id)
    with ctx.session.no_autoflush:
        _apply(row, values, ctx.now)
        scope.check_city(ctx.session, ctx.actor, row.city,
                         f"the new address of customer {customer.id}")
    ctx.session.add(row)
    changes = audit.diff(before, _snapshot(row))
    if changes:
        customer_before = audit.snapshot(customer, ("city", "state", "address"))
        customer.city, customer.state, customer.address = row.city, row.state, one_line(row)
        changes.update(audit.diff(customer_before, audit.snapshot(customer, ("city", "state", "address"))))
        ctx.session.flush()
        audit.record(ctx, "customer", customer.id, "address", changes, customer_id=customer.id)
    return row


# --- neighbourhoods -------------------------------------------------------------------------------


def _same_city(column: Any, city: str) -> Any:
    return func.lower(func.trim(column)) == scope.city_key(city)


def group_neighbourhoods(ctx: Context, city: str, into: str, olds: Sequence[str]
                         ) -> dict[str, Any]:
    """Rename the neighbourhoods `olds` of `city` to `into` in every service and customer
    address (names compare without regard to case); one history row per affected customer.
    Returns {"city", "into", "merged", "addresses", "customers"}."""
    ctx.require("addresses.edit")
    target = " ".join(into.split())
    if not target or len(target) > _LIMITS["neighbourhood"]:
        raise RuleViolation("address.neighbourhood_invalid", f"invalid neighbourhood name: {into!r}")
    names = sorted({" ".join(o.split()).lower() for o in olds if o.strip()})
    if not names:
        raise RuleViolation("address.neighbourhood_invalid", "give the neighbourhoods to group")
    if not city.strip():
        raise RuleViolation("address.city_required", "the city is required")
    scope.check_city(ctx.session, ctx.actor, city, "the grouping")
    session = ctx.session
    where_service = and_(_same_city(ServiceAddress.city, city),
                         func.lower(ServiceAddress.neighbourhood).in_(names),
                         ServiceAddress.neighbourhood != target)
    where_customer = and_(_same_city(CustomerAddress.city, city),
                          func.lower(CustomerAddress.neighbourhood).in_(names),
                          CustomerAddress.neighbourhood != target)
    affected: dict[int, dict[str, Any]] = {}

    def note(customer_id: int, what: str, old: str) -> None:
        entry = affected.setdefault(customer_id, {"addresses": [], "old": set()})
        entry["addresses"].append(what)
        entry["old"].add(old)

    for login, kind, old, customer_id in session.execute(
            select(Service.login, ServiceAddress.kind, ServiceAddress.neighbourhood,
                   Service.customer_id)
            .join(Service, Service.id == ServiceAddress.service_id).where(where_service)):
        note(customer_id, f"{login}:{kind}", old)
    customer_rows = list(session.scalars(select(CustomerAddress).where(where_customer)))
    for row in customer_rows:
        note(row.customer_id, "customer", row.neighbourhood)
    addresses = sum(len(v["addresses"]) for v in affected.values())
    session.execute(update(ServiceAddress).where(where_service)
                    .values(neighbourhood=target, updated_at=ctx.now)
                    .execution_options(synchronize_session="fetch"))
    for row in customer_rows:
        row.neighbourhood, row.updated_at = target, ctx.now
        customer = session.get(Customer, row.customer_id)
        if customer is not None:
            customer.address = one_line(row)
    audit.record_many(ctx, [
        {"object_type": "customer", "object_id": customer_id, "customer_id": customer_id,
         "action": "group_neighbourhoods",
         "changes": {"neighbourhood": [sorted(info["old"]), target]},
         "note": f"{city}: {', '.join(info['addresses'])}"}
        for customer_id, info in sorted(affected.items())])
    return {"city": city, "into": target, "merged": names, "addresses": addresses,
            "customers": len(affected)}


def neighbourhoods(session: Session, city: str | None = None, *, actor: Actor | None = None
                   ) -> list[dict[str, Any]]:
    """The neighbourhood names in use per city (service and customer addresses)."""
    rows: list[tuple[str | None, str | None, str | None, int]] = []
    for model in (ServiceAddress, CustomerAddress):
        query = select(model.city, model.state, model.neighbourhood, func.count()).group_by(
            model.city, model.state, model.neighbourhood)
        if city:
            query = query.where(_same_city(model.city, city))
        rows.extend((c, s, n, count) for c, s, n, count in session.execute(query))
    cities = scope.visible_cities(session, actor)
    return [{"city": c, "state": s, "neighbourhood": n, "addresses": count}
            for c, s, n, count in _merge_spellings(rows)
            if cities is None or scope.city_key(c) in cities]


def _merge_spellings(rows: Sequence[tuple[str | None, str | None, str | None, int]]
                     ) -> list[tuple[str | None, str | None, str | None, int]]:
    """Add up counts of the same city and neighbourhood written in other cases; the
    spelling shown is the most used one."""
    groups: dict[tuple[str, str, str], dict[tuple[str | None, str | None, str | None], int]] = {}
    for c, s, n, count in rows:
        key = (scope.city_key(c), (s or "").upper(), scope.city_key(n))
        spellings = groups.setdefault(key, {})
        spellings[(c, s, n)] = spellings.get((c, s, n), 0) + count
    merged = []
    for key in sorted(groups, key=lambda k: (k[0] == "", k)):
        spellings = groups[key]
        shown = max(spellings, key=lambda sp: (spellings[sp], str(sp[0]).istitle(), str(sp)))
        merged.append((*shown, sum(spellings.values())))
    return merged


def neighbourhoods_report(session: Session, city: str | None = None, status: str | None = None,
                          *, actor: Actor | None = None) -> list[dict[str, Any]]:
    """Services per neighbourhood and city, by installation address (services not cancelled,
    or of one status); services without an installation address are counted apart."""
    query = (select(ServiceAddress.city, ServiceAddress.state, ServiceAddress.neighbourhood,
                    func.count(Service.id))
             .select_from(Service)
             .join(ServiceAddress, and_(ServiceAddress.service_id == Service.id,
                                        ServiceAddress.kind == "installation"), isouter=True)
             .group_by(ServiceAddress.city, ServiceAddress.state, ServiceAddress.neighbourhood))
    query = query.where(Service.status == status) if status else query.where(Service.status != CANCELLED)
    if city:
        query = query.where(_same_city(ServiceAddress.city, city))
    if scope.visible_cities(session, actor) is not None:
        query = scope.restrict(query.join(Customer, Customer.id == Service.customer_id), session, actor)
    return [{"city": c, "state": s, "neighbourhood": n, "services": count}
            for c, s, n, count in _merge_spellings(
                [(c, s, n, count) for c, s, n, count in session.execute(query)])]
