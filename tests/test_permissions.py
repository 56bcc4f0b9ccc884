"""Every management write function checks the operator's permission itself.

Each case calls one function as an operator who holds every permission except the one
that function needs, and expects PermissionDenied naming that permission, with nothing
written (no history row, no change-feed row). The list is explicit on purpose: a new
write function must be added here, and tests/test_permissions.py::test_list_is_complete
fails when one that calls ctx.require is missing.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aaa.config import SecretsConfig
from aaa.db.models import ChangeFeedEntry, HistoryEntry
from billing_bridge import bridge, routines, trust
from management import (
    addresses,
    coa,
    connections,
    customers,
    equipment_passwords,
    importer,
    inventory,
    network,
    operators,
    plans,
    scope,
    service_orders,
    services,
    tickets,
    variables,
)
from management.context import Actor, Context
from management.errors import PermissionDenied
from management.permissions import PERMISSIONS

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
KEY = equipment_passwords.generate_key()
CONFIG = SecretsConfig(key=KEY)
NEW_KEY = equipment_passwords.SecretKey.from_base64(equipment_passwords.generate_key(), "k")

Call = Callable[[Context], Any]

# (function, the permission it needs, a call with plausible arguments)
CASES: list[tuple[str, str, Call]] = [
    ("addresses.set_service_address", "addresses.edit",
     lambda c: addresses.set_service_address(c, "ana", "installation", city="Recife")),
    ("addresses.set_customer_address", "addresses.edit",
     lambda c: addresses.set_customer_address(c, "12345678909", city="Recife")),
    ("addresses.group_neighbourhoods", "addresses.edit",
     lambda c: addresses.group_neighbourhoods(c, "Recife", "Centro", ["Centro Velho"])),
    ("coa.request", "coa.send", lambda c: coa.request(c, "ana", "disconnect", "test")),
    ("connections.close_stale", "sessions.manage", lambda c: connections.close_stale(c, 300, 3)),
    ("connections.raise_alarms", "sessions.manage", lambda c: connections.raise_alarms(c)),
    ("connections.purge_auth_log", "sessions.manage", lambda c: connections.purge_auth_log(c, 30)),
    ("customers.create_customer", "customers.edit",
     lambda c: customers.create_customer(c, "Ana", "12345678909")),
    ("customers.inactivate_customer", "customers.inactivate",
     lambda c: customers.inactivate_customer(c, "12345678909")),
    ("equipment_passwords.list_entries", "passwords.view",
     lambda c: equipment_passwords.list_entries(c, "ana")),
    ("equipment_passwords.reveal", "passwords.view",
     lambda c: equipment_passwords.reveal(c, CONFIG, "ana", 1)),
    ("equipment_passwords.add_entry", "passwords.edit",
     lambda c: equipment_passwords.add_entry(c, CONFIG, "ana", "wifi", "S3cret!pw")),
    ("equipment_passwords.edit_entry", "passwords.edit",
     lambda c: equipment_passwords.edit_entry(c, CONFIG, "ana", 1, password="Other!pw")),
    ("equipment_passwords.delete_entry", "passwords.edit",
     lambda c: equipment_passwords.delete_entry(c, "ana", 1)),
    ("equipment_passwords.rotate_key", "passwords.edit",
     lambda c: equipment_passwords.rotate_key(c, CONFIG, NEW_KEY)),
    ("importer.import_services", "services.create",
     lambda c: importer.import_services(c, "login,password,plan\nana,pw,FIBRA\n")),
    ("inventory.reveal_password", "passwords.view", lambda c: inventory.reveal_password(c, CONFIG, "olt1")),
    ("inventory.rekey_olt_passwords", "passwords.edit",
     lambda c: inventory.rekey_olt_passwords(c, CONFIG, NEW_KEY)),
    ("inventory.create_olt", "inventory.edit",
     lambda c: inventory.create_olt(c, "olt1", "10.1.0.1", "huawei", "MA5800")),
    ("inventory.edit_olt", "inventory.edit", lambda c: inventory.edit_olt(c, "olt1", name="olt2")),
    ("inventory.create_port", "inventory.edit", lambda c: inventory.create_port(c, "olt1", "p1", 0, 1)),
    ("inventory.edit_port", "inventory.edit",
     lambda c: inventory.edit_port(c, "olt1", "p1", description="x")),
    ("inventory.attach_port", "services.edit", lambda c: inventory.attach_port(c, "ana", "olt1", "p1")),
    ("inventory.detach_port", "services.edit", lambda c: inventory.detach_port(c, "ana")),
    ("network.create_nas", "nas.edit",
     lambda c: network.create_nas(c, "mk9", "10.2.0.9", "nas-secret-xyz", "mikrotik")),
    ("network.create_pop", "network.edit", lambda c: network.create_pop(c, "POP9")),
    ("network.create_subnet", "network.edit", lambda c: network.create_subnet(c, "100.64.9.0/24")),
    ("operators.create_operator", "operators.manage",
     lambda c: operators.create_operator(c, "joao", "João", password="op-pass-123")),
    ("operators.grant", "operators.manage", lambda c: operators.grant(c, "joao", ["plans.edit"], [])),
    ("operators.clone_permissions", "operators.manage",
     lambda c: operators.clone_permissions(c, "joao", "admin")),
    ("operators.inactivate_operator", "operators.manage", lambda c: operators.inactivate_operator(c, "joao")),
    ("plans.create_plan", "plans.edit", lambda c: plans.create_plan(c, "FIBRA-9", 9000, 4500)),
    ("plans.clone_plan", "plans.edit", lambda c: plans.clone_plan(c, "FIBRA", "FIBRA-COPY")),
    ("plans.mass_change", "plans.edit", lambda c: plans.mass_change(c, "FIBRA", "FIBRA-9")),
    ("scope.set_cities", "operators.manage", lambda c: scope.set_cities(c, "joao", ["Recife"])),
    ("service_orders.create_reason", "tickets.configure",
     lambda c: service_orders.create_reason(c, "Resolvido")),
    ("service_orders.open_order", "orders.open",
     lambda c: service_orders.open_order(c, "20261123000001", "install", "instalar")),
    ("service_orders.close_order", "orders.close",
     lambda c: service_orders.close_order(c, 1, "Resolvido")),
    ("services.create_service", "services.create",
     lambda c: services.create_service(c, "12345678909", "FIBRA", "ana", "s3nha")),
    ("services.edit_service", "services.edit", lambda c: services.edit_service(c, "ana", password="new")),
    ("services.change_status:enabled", "services.enable",
     lambda c: services.change_status(c, "ana", "enabled")),
    ("services.change_status:cancelled", "services.cancel",
     lambda c: services.change_status(c, "ana", "cancelled")),
    ("services.change_status:awaiting_migration", "services.migrate",
     lambda c: services.change_status(c, "ana", "awaiting_migration")),
    ("services.change_status:awaiting_install", "services.edit",
     lambda c: services.change_status(c, "ana", "awaiting_install")),
    ("services.suspend", "services.suspend", lambda c: services.suspend(c, "ana", "debt")),
    ("services.set_plan", "services.edit", lambda c: services.set_plan(c, "ana", "FIBRA-9")),
    ("services.set_navigation", "services.edit",
     lambda c: services.set_navigation(c, "ana", 200_000, 100_000)),
    ("services.associate", "services.edit", lambda c: services.associate(c, "ana", "bia")),
    ("services.migrate", "services.migrate", lambda c: services.migrate(c, "ana", "FIBRA-9")),
    ("services.transfer", "services.migrate", lambda c: services.transfer(c, "ana", "98765432100")),
    ("services.schedule", "services.schedule",
     lambda c: services.schedule(c, "ana", "suspended_request", date(2026, 12, 1))),
    ("services.learn_mac", "services.edit", lambda c: services.learn_mac(c, 1, "AA:BB:CC:DD:EE:FF")),
    ("tickets.create_type", "tickets.configure", lambda c: tickets.create_type(c, "Visita")),
    ("tickets.open_ticket", "tickets.open", lambda c: tickets.open_ticket(c, "ana", description="sem sinal")),
    ("tickets.update_ticket", "tickets.open",
     lambda c: tickets.update_ticket(c, "20261123000001", description="x")),
    ("tickets.finish_ticket", "tickets.finish",
     lambda c: tickets.finish_ticket(c, "20261123000001", "resolvido")),
    ("tickets.add_message", "tickets.open", lambda c: tickets.add_message(c, "20261123000001", "oi")),
    ("tickets.edit_message", "tickets.open", lambda c: tickets.edit_message(c, 1, "editado")),
    ("tickets.delete_message", "tickets.open", lambda c: tickets.delete_message(c, 1)),
    ("variables.set_variable", "variables.edit",
     lambda c: variables.set_variable(c, "POOL_SUSPENSAO_TOTAL", "bloqueio")),
    ("bridge.suspension_routine", "services.suspend", lambda c: bridge.suspension_routine(c)),
    ("bridge.enable_routine", "services.enable", lambda c: bridge.enable_routine(c)),
    ("routines.add_routine", "routines.manage",
     lambda c: routines.add_routine(c, "noite", "suspension", hour="2")),
    ("routines.remove_routine", "routines.manage", lambda c: routines.remove_routine(c, "noite")),
    ("trust.trust_unlock", "services.trust_unlock",
     lambda c: trust.trust_unlock(c, "ana", datetime(2026, 11, 25, tzinfo=UTC), "promessa")),
    ("trust.expire_trust_unlocks", "services.suspend", lambda c: trust.expire_trust_unlocks(c)),
    ("trust.expire_navigation", "services.edit", lambda c: trust.expire_navigation(c)),
]


# Functions that take either of two permissions: the operator lacks both.
ALSO_WITHOUT = {"equipment_passwords.list_entries": {"passwords.edit"}}


def without(permission: str, name: str) -> Actor:
    return Actor(operator_id=None, login="quase", is_admin=False,
                 permissions=frozenset(PERMISSIONS) - {permission} - ALSO_WITHOUT.get(name, set()))


@pytest.fixture
def world(ctx: Context) -> Session:
    """A customer, two plans, services ana and bia: lookups succeed, only the permission fails."""
    plans.create_plan(ctx, "FIBRA", 100_000, 50_000)
    plans.create_plan(ctx, "FIBRA-9", 9_000, 4_500)
    owner = customers.create_customer(ctx, "Ana", "12345678909")
    services.create_service(ctx, owner, "FIBRA", "ana", "s3nha")
    services.create_service(ctx, owner, "FIBRA", "bia", "pw-bia")
    ctx.session.flush()
    return ctx.session


def counts(session: Session) -> tuple[int, int]:
    return (session.scalar(select(func.count()).select_from(HistoryEntry)) or 0,
            session.scalar(select(func.count()).select_from(ChangeFeedEntry)) or 0)


@pytest.mark.parametrize(("name", "permission", "call"), CASES, ids=[c[0] for c in CASES])
def test_refused_without_its_permission(world: Session, name: str, permission: str, call: Call) -> None:
    """Holding every permission but this one: PermissionDenied naming it, nothing written,
    and the message names operator and permission only."""
    assert permission in PERMISSIONS
    session = world
    before = counts(session)
    ctx = Context(session=session, actor=without(permission, name), now=NOW)
    with pytest.raises(PermissionDenied) as denied:
        call(ctx)
    assert denied.value.permission == permission
    assert str(denied.value) == \
        f"operator quase lacks the permission {permission} [rule: operator.permission]"
    session.flush()
    assert counts(session) == before


# Not operator functions: the subscriber portal calls them for an authenticated subscriber
# (aaa/portal), who holds no operator permissions; their checks are the customer's own
# service/ticket and the portal settings (tests/test_portal.py).
PORTAL_FUNCTIONS = {"tickets.open_self_service_ticket"}

WRITE_MODULES = ["management/*.py", "billing_bridge/bridge.py", "billing_bridge/routines.py",
                 "billing_bridge/trust.py"]


def test_list_is_complete() -> None:
    """Every public function taking a Context that calls ctx.require has a case above."""
    covered = {name.split(":")[0] for name, _, _ in CASES} | PORTAL_FUNCTIONS
    missing = []
    for pattern in WRITE_MODULES:
        for path in sorted(ROOT.glob(pattern)):
            tree = ast.parse(path.read_text())
            for node in tree.body:
                if (isinstance(node, ast.FunctionDef) and not node.name.startswith("_")
                        and node.args.args and node.args.args[0].arg == "ctx"
                        and "require" in ast.unparse(node)) and f"{path.stem}.{node.name}" not in covered:
                    missing.append(f"{path.stem}.{node.name}")
    assert missing == []
