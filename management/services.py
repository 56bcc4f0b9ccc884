"""Services (Serviços do cliente): the RADIUS logins and everything that shapes their answer."""

from __future__ import annotations

import ipaddress
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from aaa.db.enums import MacBinding, ServiceStatus, TaskKind
from aaa.db.models import Customer, ScheduledTask, Service
from management import audit, coa, scope, subscriber_passwords
from management.context import Actor, Context
from management.customers import get_customer
from management.errors import NotFound, RuleViolation
from management.network import get_nas, get_subnet, subnet_containing, usable_hosts
from management.plans import get_plan, parse_money
from management.validation import normalize_mac, parse_ipv4, parse_ipv6_prefix

FIELDS = ("customer_id", "plan_id", "login", "status", "mac", "mac_binding", "interface",
          "nas_id", "ipv4", "ipv6_prefix", "nav_download_kbps", "nav_upload_kbps", "nav_until",
          "associated_service_id", "simultaneous_use", "trust_unlock_until", "price_override",
          "note")
CANCELLED = ServiceStatus.CANCELLED.value  # `status != CANCELLED` selects live services

# Which permission each target status needs.
_STATUS_PERMISSION = {
    ServiceStatus.ENABLED: "services.enable",
    ServiceStatus.SUSPENDED_DEBT: "services.suspend",
    ServiceStatus.SUSPENDED_PARTIAL: "services.suspend",
    ServiceStatus.SUSPENDED_REQUEST: "services.suspend",
    ServiceStatus.CANCELLED: "services.cancel",
    ServiceStatus.AWAITING_INSTALL: "services.edit",
    ServiceStatus.AWAITING_MIGRATION: "services.migrate",
}
SUSPEND_MODES = {
    "debt": ServiceStatus.SUSPENDED_DEBT,
    "partial": ServiceStatus.SUSPENDED_PARTIAL,
    "request": ServiceStatus.SUSPENDED_REQUEST,
}


def find_service(session: Session, login: str, *, actor: Actor | None = None) -> Service:
    """The live service with this login, else the latest cancelled one; with `actor`, only
    a service of a customer in the cities he is limited to (management.scope)."""
    service = session.scalar(
        select(Service).where(Service.login == login)
        .order_by((Service.status == CANCELLED).asc(), Service.id.desc()).limit(1)
    )
    if service is None:
        raise NotFound("service", login)
    if actor is not None:
        scope.check_city(session, actor, service.customer.city, f"service {login}")
    return service


def list_services(
    session: Session, customer_id: int | None = None, status: str | None = None,
    plan: str | None = None, *, actor: Actor | None = None,
) -> list[Service]:
    query = select(Service).order_by(Service.id)
    if scope.visible_cities(session, actor) is not None:
        query = scope.restrict(query.join(Customer, Service.customer_id == Customer.id),
                               session, actor)
    if customer_id is not None:
        query = query.where(Service.customer_id == customer_id)
    if status:
        query = query.where(Service.status == status)
    if plan:
        query = query.where(Service.plan_id == get_plan(session, plan).id)
    return list(session.scalars(query))


def _check_login(session: Session, login: str, exclude_id: int | None = None) -> None:
    if not login or len(login) > 128 or any(c.isspace() or ord(c) < 32 for c in login):
        raise RuleViolation("service.login_invalid",
                            f"invalid login {login!r}: 1-128 characters, no spaces")
    query = select(Service.id).where(Service.login == login, Service.status != CANCELLED)
    if exclude_id is not None:
        query = query.where(Service.id != exclude_id)
    if session.scalar(query):
        raise RuleViolation("service.login_duplicate", f"login {login} is already in use")


def check_password(password: str) -> None:
    if not password or len(password.encode()) > 128:
        raise RuleViolation("service.password_invalid", "password must be 1-128 bytes")


def _fixed_ipv4(session: Session, raw: str, subnet_cidr: str | None, exclude_id: int | None
                ) -> tuple[str, int]:
    """Validate a fixed IPv4: inside a registered subnet, assignable, not used by a live service."""
    address = parse_ipv4(raw)
    subnet = get_subnet(session, subnet_cidr) if subnet_cidr else subnet_containing(session, address)
    if subnet is None:
        raise RuleViolation("service.ip_outside_subnet",
                            f"{address} is not inside any registered subnet")
    network = ipaddress.ip_network(subnet.cidr)
    if address not in network:
        raise RuleViolation("service.ip_outside_subnet", f"{address} is outside subnet {network}")
    if int(address) not in usable_hosts(network):  # type: ignore[arg-type]
        raise RuleViolation("service.ip_outside_subnet",
                            f"{address} is the network or broadcast address of {network}")
    query = select(Service.login).where(Service.ipv4 == str(address), Service.status != CANCELLED)
    if exclude_id is not None:
        query = query.where(Service.id != exclude_id)
    holder = session.scalar(query)
    if holder:
        raise RuleViolation("service.ip_in_use", f"{address} is already used by {holder}")
    return str(address), subnet.id


def _ipv6_prefix(session: Session, raw: str, exclude_id: int | None) -> str:
    prefix = str(parse_ipv6_prefix(raw))
    query = select(Service.login).where(Service.ipv6_prefix == prefix, Service.status != CANCELLED)
    if exclude_id is not None:
        query = query.where(Service.id != exclude_id)
    holder = session.scalar(query)
    if holder:
        raise RuleViolation("service.ip_in_use", f"{prefix} is already delegated to {holder}")
    return prefix


def check_mac_binding(value: str) -> str:
    if value not in {m.value for m in MacBinding}:
        raise RuleViolation("service.mac_binding_invalid",
                            f"MAC binding must be off, learn or enforce: {value}")
    return value


def _touch(ctx: Context, service: Service, before: dict[str, object], action: str,
           note: str | None = None, publish: bool = True, live_change: str | None = None) -> None:
    """Stamp, flush, write history and the change feed; queue a CoA job when a live
    session must change (`live_change` is coa.DISCONNECT or coa.COA)."""
    service.updated_at = ctx.now
    ctx.session.flush()
    changes = audit.diff(before, audit.snapshot(service, FIELDS))
    audit.record(ctx, "service", service.id, action, changes, customer_id=service.customer_id,
                 note=note)
    if publish:
        audit.publish(ctx, "service", service.id)
    if live_change is not None:
        coa.enqueue(ctx, service, live_change, f"{action}{': ' + note if note else ''}")


def create_service(
    ctx: Context, customer: str | int | Customer, plan: str, login: str, password: str,
    status: str = ServiceStatus.ENABLED.value, mac: str | None = None,
    mac_binding: str = MacBinding.OFF.value, interface: str | None = None,
    nas: str | None = None, ipv4: str | None = None, subnet: str | None = None,
    ipv6_prefix: str | None = None, simultaneous_use: int = 1,
    price: str | Decimal | None = None, note: str | None = None,
) -> Service:
    ctx.require("services.create")
    session = ctx.session
    owner = customer if isinstance(customer, Customer) else get_customer(session, customer)
    scope.check_customer(session, ctx.actor, owner)
    if not owner.active:
        raise RuleViolation("customer.inactive", f"customer {owner.id} is inactive")
    plan_row = get_plan(session, plan)
    _check_login(session, login)
    check_password(password)
    if status not in {s.value for s in ServiceStatus} or status in (
        ServiceStatus.CANCELLED, ServiceStatus.AWAITING_MIGRATION
    ):
        raise RuleViolation("service.status_invalid", f"a new service cannot start as {status}")
    if simultaneous_use < 1:
        raise RuleViolation("service.simultaneous_use_invalid", "simultaneous use must be >= 1")
    fixed_ipv4, subnet_id = _fixed_ipv4(session, ipv4, subnet, None) if ipv4 else (None, None)
    prefix = _ipv6_prefix(session, ipv6_prefix, None) if ipv6_prefix else None
    nas_id = get_nas(session, nas).id if nas else None
    service = Service(
        customer_id=owner.id, customer=owner, plan_id=plan_row.id, plan=plan_row, login=login,
        password=subscriber_passwords.for_storage(ctx, password), status=status,
        mac=normalize_mac(mac) if mac else None,
        mac_binding=check_mac_binding(mac_binding), interface=interface or None,
        nas_id=nas_id, ipv4=fixed_ipv4, subnet_id=subnet_id, ipv6_prefix=prefix,
        simultaneous_use=simultaneous_use,
        price_override=parse_money(price) if price is not None else None, note=note,
        created_at=ctx.now, updated_at=ctx.now,
    )
    session.add(service)
    _touch(ctx, service, {}, "create", note)
    return service


_UNSET = object()


def edit_service(
    ctx: Context, login: str, *, password: str | None = None, mac: object = _UNSET,
    mac_binding: str | None = None, interface: object = _UNSET, nas: object = _UNSET,
    ipv4: object = _UNSET, subnet: str | None = None, ipv6_prefix: object = _UNSET,
    simultaneous_use: int | None = None, price: object = _UNSET, note: object = _UNSET,
    new_login: str | None = None,
) -> Service:
    """Change authentication and addressing fields; `None` for an optional field clears it."""
    ctx.require("services.edit")
    session = ctx.session
    service = find_service(session, login, actor=ctx.actor)
    if service.status == CANCELLED:
        raise RuleViolation("service.cancelled", f"service {login} is cancelled")
    before = audit.snapshot(service, FIELDS)
    if new_login is not None and new_login != service.login:
        _check_login(session, new_login, service.id)
        service.login = new_login
    if password is not None:
        check_password(password)
        service.password = subscriber_passwords.for_storage(ctx, password)
    if mac is not _UNSET:
        service.mac = normalize_mac(str(mac)) if mac else None
    if mac_binding is not None:
        service.mac_binding = check_mac_binding(mac_binding)
    if interface is not _UNSET:
        service.interface = str(interface) if interface else None
    if nas is not _UNSET:
        service.nas_id = get_nas(session, str(nas)).id if nas else None
    if ipv4 is not _UNSET:
        if ipv4:
            service.ipv4, service.subnet_id = _fixed_ipv4(session, str(ipv4), subnet, service.id)
        else:
            service.ipv4, service.subnet_id = None, None
    if ipv6_prefix is not _UNSET:
        service.ipv6_prefix = _ipv6_prefix(session, str(ipv6_prefix), service.id) if ipv6_prefix else None
    if simultaneous_use is not None:
        if simultaneous_use < 1:
            raise RuleViolation("service.simultaneous_use_invalid", "simultaneous use must be >= 1")
        service.simultaneous_use = simultaneous_use
    if price is not _UNSET:
        service.price_override = parse_money(str(price)) if price is not None else None
    if note is not _UNSET:
        service.note = str(note) if note else None
    changes = audit.diff(before, audit.snapshot(service, FIELDS))
    password_changed = password is not None
    if changes or password_changed:
        if password_changed:
            changes["password"] = ["***", "***"]  # never the password itself
        service.updated_at = ctx.now
        session.flush()
        audit.record(ctx, "service", service.id, "edit", changes,
                     customer_id=service.customer_id)
        audit.publish(ctx, "service", service.id)
        if {"ipv4", "ipv6_prefix"} & changes.keys():  # a new address needs a new session
            coa.enqueue(ctx, service, coa.DISCONNECT, "edit: address changed")
    return service


def change_status(ctx: Context, login: str, status: str, note: str | None = None) -> Service:
    """Move a service to another status; enabling one awaiting migration completes it."""
    try:
        target = ServiceStatus(status)
    except ValueError:
        raise RuleViolation("service.status_invalid", f"unknown status {status}") from None
    ctx.require(_STATUS_PERMISSION[target])
    service = find_service(ctx.session, login, actor=ctx.actor)
    if service.status == CANCELLED:
        raise RuleViolation("service.cancelled", f"service {login} is cancelled; it cannot change")
    if target == ServiceStatus.AWAITING_MIGRATION:
        raise RuleViolation("service.status_invalid", "use `migrate` to start a migration")
    if service.status == target:
        return service
    if service.status == ServiceStatus.AWAITING_MIGRATION and target == ServiceStatus.ENABLED:
        return _complete_migration(ctx, service, note)
    before = audit.snapshot(service, FIELDS)
    service.status = target.value
    if target != ServiceStatus.ENABLED:
        service.trust_unlock_until = None  # a trust unlock ends with any other status change
    _touch(ctx, service, before, f"status:{target.value}", note, live_change=coa.DISCONNECT)
    return service


def suspend(ctx: Context, login: str, mode: str, note: str | None = None) -> Service:
    if mode not in SUSPEND_MODES:
        raise RuleViolation("service.suspend_mode_invalid",
                            f"suspension mode must be debt, partial or request: {mode}")
    return change_status(ctx, login, SUSPEND_MODES[mode].value, note)


def set_plan(ctx: Context, login: str, plan: str, note: str | None = None) -> Service:
    ctx.require("services.edit")
    service = find_service(ctx.session, login, actor=ctx.actor)
    if service.status == CANCELLED:
        raise RuleViolation("service.cancelled", f"service {login} is cancelled")
    target = get_plan(ctx.session, plan)
    if service.associated_service_id is not None and not target.allows_association:
        raise RuleViolation("service.association_not_allowed",
                            f"plan {target.name} does not allow association and {login} is associated")
    before = audit.snapshot(service, FIELDS)
    service.plan_id, service.plan = target.id, target
    _touch(ctx, service, before, "set_plan", note, live_change=coa.COA)
    return service


def set_navigation(ctx: Context, login: str, download_kbps: int | None,
                   upload_kbps: int | None, until: datetime | None = None) -> Service:
    """Custom navigation: a speed override, optionally until a moment; None/None clears it."""
    ctx.require("services.edit")
    service = find_service(ctx.session, login, actor=ctx.actor)
    if service.status == CANCELLED:
        raise RuleViolation("service.cancelled", f"service {login} is cancelled")
    clearing = download_kbps is None and upload_kbps is None
    if not clearing:
        if not download_kbps or not upload_kbps or download_kbps <= 0 or upload_kbps <= 0:
            raise RuleViolation("service.navigation_invalid",
                                "custom navigation needs positive download and upload kbit/s")
        if until is not None and until <= ctx.now:
            raise RuleViolation("service.navigation_invalid",
                                f"custom navigation end {until.isoformat()} is in the past")
    before = audit.snapshot(service, FIELDS)
    service.nav_download_kbps, service.nav_upload_kbps = download_kbps, upload_kbps
    service.nav_until = None if clearing else until
    _touch(ctx, service, before, "navigation_clear" if clearing else "navigation",
           live_change=coa.COA)
    return service


def associate(ctx: Context, login: str, other_login: str | None) -> Service:
    """Tie `login` (e.g. a fixed-IP service) to `other_login` (the browsing service)."""
    ctx.require("services.edit")
    service = find_service(ctx.session, login, actor=ctx.actor)
    if other_login is None:
        before = audit.snapshot(service, FIELDS)
        service.associated_service_id, service.associated_service = None, None
        _touch(ctx, service, before, "dissociate")
        return service
    other = find_service(ctx.session, other_login, actor=ctx.actor)
    for row in (service, other):
        if row.status == CANCELLED:
            raise RuleViolation("service.cancelled", f"service {row.login} is cancelled")
    if service.id == other.id:
        raise RuleViolation("service.association_self", "a service cannot be associated with itself")
    if not service.plan.allows_association:
        raise RuleViolation("service.association_not_allowed",
                            f"plan {service.plan.name} does not allow association")
    if other.associated_service_id == service.id:
        raise RuleViolation("service.association_cycle",
                            f"{other.login} is already associated with {service.login}")
    before = audit.snapshot(service, FIELDS)
    service.associated_service_id, service.associated_service = other.id, other
    _touch(ctx, service, before, "associate", note=f"associated with {other.login}")
    return service


# Authentication data that a migration carries from the old service to the new.
_CARRIED = ("login", "password", "mac", "mac_binding", "interface", "nas_id", "ipv4",
            "subnet_id", "ipv6_prefix", "simultaneous_use", "associated_service_id", "pon_port_id")


def migrate(ctx: Context, login: str, plan: str, deferred: bool = False,
            note: str | None = None) -> Service:
    """Migrate a service to another plan; returns the new service.

    Immediate: the old one is cancelled and a new enabled one takes its authentication.
    Deferred: a new service waits as `awaiting_migration` (with a provisional login) while
    the old keeps working; enabling the new one completes the migration.
    """
    ctx.require("services.migrate")
    session = ctx.session
    old = find_service(session, login, actor=ctx.actor)
    if old.status == CANCELLED:
        raise RuleViolation("service.cancelled", f"service {login} is cancelled")
    if old.status == ServiceStatus.AWAITING_MIGRATION:
        raise RuleViolation("service.migration_pending", f"{login} is itself awaiting a migration")
    pending = session.scalar(select(Service.login).where(
        Service.migrated_from_id == old.id,
        Service.status == ServiceStatus.AWAITING_MIGRATION.value))
    if pending:
        raise RuleViolation("service.migration_pending",
                            f"{login} already has a migration pending ({pending})")
    target = get_plan(session, plan)
    new = Service(
        customer_id=old.customer_id, customer=old.customer, plan_id=target.id, plan=target,
        login=f"{old.login}#migration-{old.id}", password=old.password,
        status=ServiceStatus.AWAITING_MIGRATION.value, mac_binding=MacBinding.OFF.value,
        simultaneous_use=old.simultaneous_use, price_override=None, note=note,
        migrated_from_id=old.id, created_at=ctx.now, updated_at=ctx.now,
    )
    session.add(new)
    _touch(ctx, new, {}, "create", note=f"migration of {old.login} to plan {target.name}",
           publish=False)
    if deferred:
        return new
    return _complete_migration(ctx, new, note)


def _complete_migration(ctx: Context, new: Service, note: str | None) -> Service:
    session = ctx.session
    if new.migrated_from_id is None:
        raise RuleViolation("service.migration_unknown",
                            f"{new.login} is awaiting migration but has no origin service")
    old = session.get(Service, new.migrated_from_id)
    assert old is not None
    old_before = audit.snapshot(old, FIELDS)
    new_before = audit.snapshot(new, FIELDS)
    carried = {name: getattr(old, name) for name in _CARRIED}
    old.status = ServiceStatus.CANCELLED.value
    session.flush()  # the old service leaves the live set before the new one takes its login
    for name, value in carried.items():
        setattr(new, name, value)
    new.status = ServiceStatus.ENABLED.value
    from management.addresses import carry_addresses  # here: addresses imports this module
    carry_addresses(ctx, old, new)
    _touch(ctx, old, old_before, "migrated_out", note=f"migrated to plan {new.plan.name}",
           live_change=coa.DISCONNECT)
    _touch(ctx, new, new_before, "migrated_in", note=note or f"migrated from service {old.id}")
    # Services associated with the old one follow to the new one.
    for dependant in session.scalars(select(Service).where(Service.associated_service_id == old.id,
                                                            Service.status != CANCELLED)):
        before = audit.snapshot(dependant, FIELDS)
        dependant.associated_service_id = new.id
        _touch(ctx, dependant, before, "associate", note=f"follows migration of {new.login}")
    return new


def transfer(ctx: Context, login: str, customer: str | int, note: str | None = None) -> Service:
    """Change of ownership (troca de titularidade): history on both customers."""
    ctx.require("services.migrate")
    service = find_service(ctx.session, login, actor=ctx.actor)
    if service.status == CANCELLED:
        raise RuleViolation("service.cancelled", f"service {login} is cancelled")
    target = get_customer(ctx.session, customer, actor=ctx.actor)
    if not target.active:
        raise RuleViolation("customer.inactive", f"customer {target.id} is inactive")
    if target.id == service.customer_id:
        raise RuleViolation("service.transfer_same", f"{login} already belongs to customer {target.id}")
    old_customer = service.customer_id
    before = audit.snapshot(service, FIELDS)
    service.customer_id, service.customer = target.id, target
    _touch(ctx, service, before, "transfer_in", note, publish=False)
    audit.record(ctx, "service", service.id, "transfer_out",
                 {"customer_id": [old_customer, target.id]}, customer_id=old_customer, note=note)
    return service


def schedule(ctx: Context, login: str, status: str, on: date, note: str | None = None) -> ScheduledTask:
    """Store a status change (or a cancellation) for the scheduler to apply on `on`."""
    try:
        target = ServiceStatus(status)
    except ValueError:
        raise RuleViolation("service.status_invalid", f"unknown status {status}") from None
    ctx.require("services.schedule")
    ctx.require(_STATUS_PERMISSION[target])
    service = find_service(ctx.session, login, actor=ctx.actor)
    if service.status == CANCELLED:
        raise RuleViolation("service.cancelled", f"service {login} is cancelled")
    if target == ServiceStatus.AWAITING_MIGRATION:
        raise RuleViolation("service.status_invalid", "a migration cannot be scheduled this way")
    if on <= ctx.today:
        raise RuleViolation("task.date_past", f"{on.isoformat()} is not in the future")
    kind = TaskKind.CANCEL if target == ServiceStatus.CANCELLED else TaskKind.STATUS_CHANGE
    duplicate = ctx.session.scalar(select(ScheduledTask.id).where(
        ScheduledTask.service_id == service.id, ScheduledTask.kind == kind.value,
        ScheduledTask.run_on == on, ScheduledTask.target_status == target.value))
    if duplicate:
        raise RuleViolation("task.duplicate", f"task {duplicate} already does this")
    task = ScheduledTask(service_id=service.id, kind=kind.value, target_status=target.value,
                         run_on=on, note=note, created_by=ctx.actor.login, created_at=ctx.now)
    ctx.session.add(task)
    ctx.session.flush()
    audit.record(ctx, "service", service.id, "schedule",
                 {"task": [None, f"{kind.value} -> {target.value} on {on.isoformat()}"]},
                 customer_id=service.customer_id, note=note)
    return task


def pending_tasks(session: Session, login: str | None = None) -> list[ScheduledTask]:
    query = select(ScheduledTask).where(ScheduledTask.done_at.is_(None)).order_by(ScheduledTask.run_on)
    if login:
        query = query.where(ScheduledTask.service_id == find_service(session, login).id)
    return list(session.scalars(query))


def learn_mac(ctx: Context, service_id: int, mac: str) -> bool:
    """Store the first MAC seen for a service in `learn` mode (called by the daemon's writer).

    Does nothing when a MAC was registered meanwhile or the binding changed.
    """
    ctx.require("services.edit")
    service = ctx.session.get(Service, service_id)
    if service is None or service.mac is not None or service.mac_binding != MacBinding.LEARN.value:
        return False
    before = audit.snapshot(service, FIELDS)
    service.mac = normalize_mac(mac)
    _touch(ctx, service, before, "learn_mac", note="first MAC seen by the RADIUS server")
    return True
