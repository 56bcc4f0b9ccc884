"""Small builders for test data, all going through the management functions."""

from __future__ import annotations

import itertools
from typing import Any

from aaa.db.models import Customer, Plan, Service
from management import customers, network, plans, services
from management.context import Context
from management.validation import cnpj_check_digits, cpf_check_digits

_serial = itertools.count(100_000_001)


def cpf(n: int | None = None) -> str:
    base = f"{(n if n is not None else next(_serial)) % 1_000_000_000:09d}"
    return base + cpf_check_digits(base)


def cnpj(n: int | None = None) -> str:
    base = f"{(n if n is not None else next(_serial)) % 100_000_000:08d}0001"
    return base + cnpj_check_digits(base)


def customer(ctx: Context, **kw: Any) -> Customer:
    kw.setdefault("name", "Cliente Teste")
    kw.setdefault("document", cpf())
    return customers.create_customer(ctx, **kw)


def plan(ctx: Context, name: str = "FIBRA-100", **kw: Any) -> Plan:
    kw.setdefault("download_kbps", 100_000)
    kw.setdefault("upload_kbps", 50_000)
    kw.setdefault("price", "99.90")
    return plans.create_plan(ctx, name, **kw)


def service(ctx: Context, login: str, plan_name: str = "FIBRA-100", owner: Customer | None = None,
            **kw: Any) -> Service:
    if owner is None:
        owner = customer(ctx)
    kw.setdefault("password", "secret")
    return services.create_service(ctx, owner, plan_name, login, **kw)


def subnet(ctx: Context, cidr: str = "200.200.0.0/29") -> None:
    network.create_subnet(ctx, cidr)
