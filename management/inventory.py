"""Network inventory: OLTs and their PON ports (Portas de Atendimento), services on ports.

An OLT is access equipment besides the NAS: reached for management by Telnet or SSH with
a user and a password kept AES-256-GCM encrypted with the equipment-password key
(`management.equipment_passwords`, `[secrets]` in the configuration). A PON port names the
NAS and interface that route its clients and how many clients it takes: with "block
over-utilization" a service is refused on a full port, without it the attachment goes
through with a warning. A service attached to a port can take its registered NAS and
interface (the daemon's interface check) from the port's routing NAS and interface; when
the port's routing changes, the services that follow it change too (history + change feed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aaa.config import SecretsConfig
from aaa.db.models import Nas, Pop, Service
from aaa.db.models_inventory import Olt, PonPort
from management import audit
from management.context import Context
from management.equipment_passwords import (
    SecretKey,
    SecretsKeyError,
    current_key,
    decrypt_or_refuse,
    opening_key,
)
from management.errors import NotFound, RuleViolation
from management.network import get_nas, get_pop
from management.services import CANCELLED, find_service
from management.services import FIELDS as SERVICE_FIELDS
from management.validation import parse_ip

PROTOCOL_PORTS = {"telnet": 23, "ssh": 22}


@dataclass(frozen=True, slots=True)
class Vendor:
    code: str
    name: str
    protocol: str  # default management protocol (HubSoft's table of ports)
    models: tuple[str, ...]


# The OLTs the reference knows, with the management protocol it recommends per vendor.
VENDORS: dict[str, Vendor] = {v.code: v for v in (
    Vendor("bdcom", "BDCOM", "telnet", ("GP3600", "P3310", "P3608")),
    Vendor("cdata", "C-DATA", "telnet", ("FD1100", "FD1104", "FD1208", "FD1616")),
    Vendor("fiberhome", "Fiberhome", "telnet", ("AN5516-01", "AN5516-04", "AN5516-06", "AN6000")),
    Vendor("huawei", "Huawei", "telnet", ("MA5600", "MA5608T", "MA5680T", "MA5683T", "MA5800")),
    Vendor("parks", "Parks", "ssh", ("Fiberlink",)),
    Vendor("zhone-intelbras", "Zhone/Intelbras", "telnet", ("8820G", "G16")),
    Vendor("zte", "ZTE", "ssh", ("C300", "C320", "C600", "C650")),
)}
_VENDOR_ALIASES = {"c-data": "cdata", "intelbras": "zhone-intelbras", "zhone": "zhone-intelbras",
                   "zhone/intelbras": "zhone-intelbras"}

OLT_FIELDS = ("name", "ip", "vendor", "model", "pop_id", "username", "protocol", "port")
PORT_FIELDS = ("technology", "name", "chassis", "slot", "pon", "description", "default_vlan",
               "default_cpe_profile", "routing_nas_id", "routing_interface", "max_clients",
               "block_over_utilization", "allow_verification", "signal_limit_dbm")
_SERVICE_FIELDS = (*SERVICE_FIELDS, "pon_port_id")
_UNSET: Any = object()


def known_models() -> list[dict[str, Any]]:
    return [{"vendor": v.code, "vendor_name": v.name, "model": m, "protocol": v.protocol,
             "port": PROTOCOL_PORTS[v.protocol]} for v in VENDORS.values() for m in v.models]


def _vendor_model(vendor: str, model: str) -> tuple[Vendor, str]:
    code = _VENDOR_ALIASES.get(vendor.strip().lower(), vendor.strip().lower())
    known = VENDORS.get(code)
    if known is None:
        raise RuleViolation("olt.vendor_invalid",
                            f"unknown OLT vendor {vendor}; known: {', '.join(VENDORS)}")
    for name in known.models:
        if name.lower() == model.strip().lower():
            return known, name
    raise RuleViolation("olt.model_invalid",
                        f"unknown {known.name} model {model}; known: {', '.join(known.models)}")


def _protocol_port(protocol: str, port: int | None) -> tuple[str, int]:
    protocol = protocol.strip().lower()
    if protocol not in PROTOCOL_PORTS:
        raise RuleViolation("olt.protocol_invalid", f"protocol must be telnet or ssh: {protocol}")
    port = PROTOCOL_PORTS[protocol] if port is None else port
    if not 1 <= port <= 65535:
        raise RuleViolation("olt.port_invalid", f"invalid management port {port}")
    return protocol, port


def _text(value: str | None, name: str, limit: int, required: bool = False,
          rule: str = "olt") -> str | None:
    value = value.strip() if value is not None else None
    if not value:
        if required:
            raise RuleViolation(f"{rule}.{name}_required", f"{name} is required")
        return None
    if len(value) > limit:
        raise RuleViolation(f"{rule}.{name}_too_long", f"{name} has more than {limit} characters")
    return value


# --- OLT passwords ------------------------------------------------------------------------


def _encrypt_password(olt: Olt, config: SecretsConfig | None, password: str) -> None:
    if not password or len(password) > 256 or any(ord(c) < 32 or ord(c) == 127 for c in password):
        raise RuleViolation("olt.password_invalid",
                            "the OLT password must have 1-256 characters and no control characters")
    if config is None:
        raise SecretsKeyError("secrets.key: no configuration given to encrypt the OLT password")
    key = current_key(config)
    # The OLT's id is the associated data: a ciphertext copied onto another OLT does not open.
    olt.password_encrypted = key.encrypt(password, olt.id)
    olt.password_key_id = key.key_id


def reveal_password(ctx: Context, config: SecretsConfig, ref: str) -> str | None:
    """The OLT's clear management password (`passwords.view`); the view goes to history."""
    ctx.require("passwords.view")
    olt = get_olt(ctx.session, ref)
    if olt.password_encrypted is None:
        return None
    key = current_key(config)
    if olt.password_key_id != key.key_id:
        raise SecretsKeyError(f"secrets.key: the password of OLT {olt.name} was encrypted with key "
                              f"{olt.password_key_id}, but the configured key is {key.key_id}")
    password = decrypt_or_refuse(key, olt.password_encrypted, olt.id, "olt.password_corrupt",
                                 f"the password of OLT {olt.name}")
    audit.record(ctx, "olt", olt.id, "view_password", {}, note=olt.name)
    return password


def rekey_olt_passwords(ctx: Context, config: SecretsConfig, new_key: SecretKey,
                        previous: SecretKey | None = None) -> int:
    """Re-encrypt every OLT password from the configured key to `new_key` in the caller's
    transaction (`aaa passwords rotate-key`); the count of OLTs re-keyed.

    `previous`, when given, is a key an earlier rotation left OLT passwords under (rotations
    before the OLTs were re-keyed did that): those are opened with it and moved too.
    All or nothing, like `equipment_passwords.rotate_key`: a password under any other key
    (`SecretsKeyError`) or one that does not decrypt (`olt.password_corrupt`) refuses the
    whole rotation, and the caller rolls back. Each re-keyed OLT gets a "rekey" history row
    naming the key it came from.
    """
    ctx.require("passwords.edit")
    old_key = current_key(config)
    # FOR UPDATE (PostgreSQL): a concurrent password edit waits instead of being overwritten
    # by the ciphertext of the value read here.
    olts = list(ctx.session.scalars(select(Olt).where(Olt.password_encrypted.is_not(None))
                                    .order_by(Olt.id).with_for_update()))
    count = 0
    for olt in olts:
        if olt.password_key_id == new_key.key_id:
            continue
        from_key = opening_key(olt.password_key_id, old_key, previous)
        if from_key is None:
            what = f"secrets.key: the password of OLT {olt.name} was encrypted with key {olt.password_key_id}"
            if previous is not None:
                raise SecretsKeyError(f"{what}, neither the configured key {old_key.key_id} nor the "
                                      f"previous key {previous.key_id}; nothing was rotated")
            # Rotations before OLT passwords were re-keyed left them under the key of that time.
            raise SecretsKeyError(f"{what}, but the configured key is {old_key.key_id}; nothing was "
                                  "rotated (left by an older rotation? give that key with --previous-key)")
        assert olt.password_encrypted is not None
        plain = decrypt_or_refuse(from_key, olt.password_encrypted, olt.id, "olt.password_corrupt",
                                  f"the password of OLT {olt.name}", rotating=True)
        olt.password_encrypted = new_key.encrypt(plain, olt.id)
        olt.password_key_id = new_key.key_id
        audit.record(ctx, "olt", olt.id, "rekey",
                     {"key_id": [from_key.key_id, new_key.key_id]}, note=olt.name)
        count += 1
    ctx.session.flush()
    return count


# --- OLTs ---------------------------------------------------------------------------------


def get_olt(session: Session, ref: str) -> Olt:
    """An OLT by name or IP address."""
    olt = session.scalar(select(Olt).where((Olt.name == ref) | (Olt.ip == ref)))
    if olt is None:
        raise NotFound("olt", ref)
    return olt


def list_olts(session: Session) -> list[Olt]:
    return list(session.scalars(select(Olt).order_by(Olt.name)))


def create_olt(
    ctx: Context, name: str, ip: str, vendor: str, model: str, pop: str | None = None,
    username: str | None = None, password: str | None = None, protocol: str | None = None,
    port: int | None = None, config: SecretsConfig | None = None,
) -> Olt:
    ctx.require("inventory.edit")
    session = ctx.session
    clean_name = _text(name, "name", 100, required=True)
    assert clean_name is not None
    address = str(parse_ip(ip))
    known, model_name = _vendor_model(vendor, model)
    chosen_protocol, chosen_port = _protocol_port(protocol or known.protocol, port)
    if session.scalar(select(Olt.id).where(Olt.name == clean_name)):
        raise RuleViolation("olt.name_duplicate", f"OLT {clean_name} already exists")
    if session.scalar(select(Olt.id).where(Olt.ip == address)):
        raise RuleViolation("olt.ip_duplicate", f"an OLT with IP {address} already exists")
    olt = Olt(name=clean_name, ip=address, vendor=known.code, model=model_name,
              pop_id=get_pop(session, pop).id if pop else None,
              username=_text(username, "username", 100), protocol=chosen_protocol,
              port=chosen_port, created_at=ctx.now, updated_at=ctx.now)
    session.add(olt)
    session.flush()
    changes: dict[str, Any] = dict(audit.diff({}, audit.snapshot(olt, OLT_FIELDS)))
    if password is not None:
        _encrypt_password(olt, config, password)
        changes["password"] = "set"  # never the password, nor its ciphertext
    audit.record(ctx, "olt", olt.id, "create", changes, note=olt.name)
    session.flush()
    return olt


def edit_olt(
    ctx: Context, ref: str, *, name: str | None = None, ip: str | None = None,
    model: str | None = None, pop: Any = _UNSET, username: Any = _UNSET,
    password: str | None = None, protocol: str | None = None, port: int | None = None,
    config: SecretsConfig | None = None,
) -> Olt:
    """Change an OLT; `None` for pop/username clears them; a new protocol resets the port
    to its default unless a port is given."""
    ctx.require("inventory.edit")
    session = ctx.session
    olt = get_olt(session, ref)
    before = audit.snapshot(olt, OLT_FIELDS)
    if name is not None:
        clean = _text(name, "name", 100, required=True)
        if session.scalar(select(Olt.id).where(Olt.name == clean, Olt.id != olt.id)):
            raise RuleViolation("olt.name_duplicate", f"OLT {clean} already exists")
        olt.name = clean or olt.name
    if ip is not None:
        address = str(parse_ip(ip))
        if session.scalar(select(Olt.id).where(Olt.ip == address, Olt.id != olt.id)):
            raise RuleViolation("olt.ip_duplicate", f"an OLT with IP {address} already exists")
        olt.ip = address
    if model is not None:
        olt.model = _vendor_model(olt.vendor, model)[1]
    if pop is not _UNSET:
        olt.pop_id = get_pop(session, str(pop)).id if pop else None
    if username is not _UNSET:
        olt.username = _text(username, "username", 100)
    if protocol is not None or port is not None:
        new_protocol = (protocol or olt.protocol).strip().lower()
        new_port = port if port is not None else (
            None if new_protocol != olt.protocol else olt.port)
        olt.protocol, olt.port = _protocol_port(new_protocol, new_port)
    changes: dict[str, Any] = dict(audit.diff(before, audit.snapshot(olt, OLT_FIELDS)))
    if password is not None:
        _encrypt_password(olt, config, password)
        changes["password"] = "changed"
    if changes:
        olt.updated_at = ctx.now
        audit.record(ctx, "olt", olt.id, "edit", changes, note=olt.name)
        session.flush()
    return olt


# --- PON ports ----------------------------------------------------------------------------


def _parse_position(ref: str) -> tuple[int, int, int] | None:
    parts = ref.split("/")
    if len(parts) == 3 and all(p.strip().isdigit() for p in parts):
        return int(parts[0]), int(parts[1]), int(parts[2])
    return None


def get_port(session: Session, olt_ref: str, port_ref: str) -> PonPort:
    """A PON port of an OLT by name, or by position CHASSIS/SLOT/PON (e.g. 0/1/3)."""
    olt = get_olt(session, olt_ref)
    query = select(PonPort).where(PonPort.olt_id == olt.id)
    position = _parse_position(port_ref)
    if position is not None:
        named = session.scalar(query.where(PonPort.name == port_ref))
        if named is not None:
            return named
        chassis, slot, pon = position
        found = list(session.scalars(query.where(PonPort.chassis == chassis,
                                                 PonPort.slot == slot, PonPort.pon == pon)))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise RuleViolation("port.ambiguous",
                                f"{port_ref} is both a GPON and an EPON port of {olt.name}; use its name")
    else:
        port = session.scalar(query.where(PonPort.name == port_ref))
        if port is not None:
            return port
    raise NotFound("port", f"{port_ref} of OLT {olt.name}")


def list_ports(session: Session, olt_ref: str | None = None) -> list[PonPort]:
    query = select(PonPort).join(Olt).order_by(Olt.name, PonPort.chassis, PonPort.slot,
                                               PonPort.pon, PonPort.technology)
    if olt_ref is not None:
        query = query.where(PonPort.olt_id == get_olt(session, olt_ref).id)
    return list(session.scalars(query))


def port_clients(session: Session, port_id: int, exclude_service_id: int | None = None) -> int:
    """Services on the port that are not cancelled."""
    query = select(func.count(Service.id)).where(Service.pon_port_id == port_id,
                                                 Service.status != CANCELLED)
    if exclude_service_id is not None:
        query = query.where(Service.id != exclude_service_id)
    return session.scalar(query) or 0


def _int(value: int | None, name: str, low: int, high: int) -> int | None:
    if value is not None and not low <= value <= high:
        raise RuleViolation(f"port.{name}_invalid", f"{name} must be from {low} to {high}: {value}")
    return value


def _signal(value: str | Decimal | float | None) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        signal = Decimal(str(value)).quantize(Decimal("0.01"))
    except InvalidOperation:
        raise RuleViolation("port.signal_limit_invalid",
                            f"signal limit must be a number of dBm: {value}") from None
    if not Decimal("-60") <= signal <= Decimal("10"):
        raise RuleViolation("port.signal_limit_invalid",
                            f"signal limit must be from -60 to 10 dBm: {value}")
    return signal


def _check_port(session: Session, port: PonPort) -> None:
    if port.technology not in ("gpon", "epon"):
        raise RuleViolation("port.technology_invalid", f"technology must be gpon or epon: {port.technology}")
    _int(port.chassis, "chassis", 0, 255)
    _int(port.slot, "slot", 0, 255)
    _int(port.pon, "pon", 0, 255)
    _int(port.default_vlan, "default_vlan", 1, 4094)
    _int(port.max_clients, "max_clients", 1, 1_000_000)
    if port.allow_verification and port.signal_limit_dbm is None:
        raise RuleViolation("port.signal_limit_required",
                            "allowing verification needs a signal limit (dBm)")
    if port.routing_interface and port.routing_nas_id is None:
        raise RuleViolation("port.routing_nas_required",
                            "a routing interface needs its routing NAS")
    query = select(PonPort.name).where(PonPort.olt_id == port.olt_id)
    if port.id is not None:
        query = query.where(PonPort.id != port.id)
    clash = session.scalar(query.where(
        (PonPort.name == port.name) | (
            (PonPort.technology == port.technology) & (PonPort.chassis == port.chassis)
            & (PonPort.slot == port.slot) & (PonPort.pon == port.pon))))
    if clash is not None:
        raise RuleViolation("port.duplicate",
                            f"the OLT already has port {clash} with that name or position")


def create_port(
    ctx: Context, olt: str, name: str, slot: int, pon: int, chassis: int = 0,
    technology: str = "gpon", description: str | None = None, default_vlan: int | None = None,
    default_cpe_profile: str | None = None, routing_nas: str | None = None,
    routing_interface: str | None = None, max_clients: int | None = None,
    block_over_utilization: bool = False, allow_verification: bool = False,
    signal_limit_dbm: str | Decimal | None = None,
) -> PonPort:
    ctx.require("inventory.edit")
    session = ctx.session
    owner = get_olt(session, olt)
    port = PonPort(
        olt_id=owner.id, technology=technology.strip().lower(),
        name=_text(name, "name", 100, required=True, rule="port"), chassis=chassis, slot=slot,
        pon=pon, description=_text(description, "description", 200, rule="port"),
        default_vlan=default_vlan,
        default_cpe_profile=_text(default_cpe_profile, "default_cpe_profile", 100, rule="port"),
        routing_nas_id=get_nas(session, routing_nas).id if routing_nas else None,
        routing_interface=_text(routing_interface, "routing_interface", 253, rule="port"),
        max_clients=max_clients, block_over_utilization=block_over_utilization,
        allow_verification=allow_verification, signal_limit_dbm=_signal(signal_limit_dbm),
        created_at=ctx.now, updated_at=ctx.now,
    )
    with session.no_autoflush:
        _check_port(session, port)
    session.add(port)
    session.flush()
    audit.record(ctx, "olt_port", port.id, "create",
                 audit.diff({}, audit.snapshot(port, PORT_FIELDS)), note=f"{owner.name} {port.name}")
    return port


def edit_port(ctx: Context, olt: str, port_ref: str, **changes: Any) -> tuple[PonPort, list[Service]]:
    """Change a port's fields (the keyword names of `create_port`; `routing_nas` by name).

    When the routing NAS or interface changes, the live services that followed the port
    (registered with its old routing NAS and interface) take the new ones: one history row
    each and the change feed. Returns the port and those services.
    """
    ctx.require("inventory.edit")
    session = ctx.session
    port = get_port(session, olt, port_ref)
    before = audit.snapshot(port, PORT_FIELDS)
    old_routing = (port.routing_nas_id, port.routing_interface)
    for key, value in changes.items():
        if key == "routing_nas":
            port.routing_nas_id = get_nas(session, value).id if value else None
        elif key == "signal_limit_dbm":
            port.signal_limit_dbm = _signal(value)
        elif key == "technology":
            port.technology = str(value).strip().lower()
        elif key in ("name", "description", "default_cpe_profile", "routing_interface"):
            limit = {"name": 100, "description": 200, "default_cpe_profile": 100,
                     "routing_interface": 253}[key]
            setattr(port, key, _text(value, key, limit, required=key == "name", rule="port"))
        elif key in PORT_FIELDS:
            setattr(port, key, value)
        else:
            raise TypeError(f"unknown port field {key}")
    with session.no_autoflush:
        _check_port(session, port)
    diff = audit.diff(before, audit.snapshot(port, PORT_FIELDS))
    followers: list[Service] = []
    if not diff:
        return port, followers
    port.updated_at = ctx.now
    session.flush()
    audit.record(ctx, "olt_port", port.id, "edit", diff, note=f"{port.olt.name} {port.name}")
    new_routing = (port.routing_nas_id, port.routing_interface)
    if new_routing != old_routing and old_routing[1]:
        followers = list(session.scalars(select(Service).where(
            Service.pon_port_id == port.id, Service.status != CANCELLED,
            Service.interface == old_routing[1],
            Service.nas_id.is_(None) if old_routing[0] is None else Service.nas_id == old_routing[0])))
        for service in followers:
            service_before = audit.snapshot(service, _SERVICE_FIELDS)
            service.interface, service.nas_id = port.routing_interface, port.routing_nas_id
            _service_changed(ctx, service, service_before, "port_routing",
                             f"routing of PON port {port.olt.name} {port.name} changed")
    return port, followers


def _service_changed(ctx: Context, service: Service, before: dict[str, Any], action: str,
                     note: str) -> None:
    service.updated_at = ctx.now
    ctx.session.flush()
    changes = audit.diff(before, audit.snapshot(service, _SERVICE_FIELDS))
    audit.record(ctx, "service", service.id, action, changes, customer_id=service.customer_id,
                 note=note)
    if {"interface", "nas_id"} & changes.keys():
        audit.publish(ctx, "service", service.id)


# --- services on ports ----------------------------------------------------------------------


@dataclass
class Attachment:
    service: Service
    port: PonPort
    clients: int  # on the port, this service included
    warnings: list[str] = field(default_factory=list)


def attach_port(ctx: Context, login: str, olt: str, port_ref: str,
                use_port_interface: bool = True) -> Attachment:
    """Put a service on a PON port; with `use_port_interface` its registered NAS and
    interface become the port's routing NAS and interface.

    A full port (clients >= maximum) refuses the service when it blocks over-utilization,
    and otherwise takes it with a warning in `Attachment.warnings`.
    """
    ctx.require("services.edit")
    session = ctx.session
    service = find_service(session, login, actor=ctx.actor)
    if service.status == CANCELLED:
        raise RuleViolation("service.cancelled", f"service {login} is cancelled")
    port = get_port(session, olt, port_ref)
    if session.get_bind().dialect.name == "postgresql":
        # Two operators filling the last place of a port one after the other, not together.
        session.execute(select(PonPort.id).where(PonPort.id == port.id).with_for_update())
    warnings: list[str] = []
    others = port_clients(session, port.id, exclude_service_id=service.id)
    label = f"{port.olt.name} {port.name}"
    if service.pon_port_id != port.id and port.max_clients is not None \
            and others >= port.max_clients:
        if port.block_over_utilization:
            raise RuleViolation("port.over_utilization",
                                f"PON port {label} is full ({others} of {port.max_clients} clients) "
                                "and blocks over-utilization")
        warnings.append(f"PON port {label} is over its maximum: {others + 1} of "
                        f"{port.max_clients} clients")
    before = audit.snapshot(service, _SERVICE_FIELDS)
    service.pon_port_id = port.id
    if use_port_interface and port.routing_interface:
        service.interface, service.nas_id = port.routing_interface, port.routing_nas_id
    _service_changed(ctx, service, before, "attach_port",
                     f"PON port {label}" + (f"; {warnings[0]}" if warnings else ""))
    return Attachment(service, port, others + 1, warnings)


def detach_port(ctx: Context, login: str) -> Service:
    """Take a service off its PON port (its registered NAS and interface stay)."""
    ctx.require("services.edit")
    service = find_service(ctx.session, login, actor=ctx.actor)
    if service.pon_port_id is None:
        raise RuleViolation("service.no_port", f"service {login} is not on a PON port")
    before = audit.snapshot(service, _SERVICE_FIELDS)
    service.pon_port_id = None
    _service_changed(ctx, service, before, "detach_port", "taken off its PON port")
    return service


def port_of(session: Session, service: Service) -> PonPort | None:
    return session.get(PonPort, service.pon_port_id) if service.pon_port_id else None


# --- output and reports -----------------------------------------------------------------------


def olt_dict(session: Session, olt: Olt) -> dict[str, Any]:
    row = session.get(Pop, olt.pop_id) if olt.pop_id is not None else None
    pop = row.name if row else None
    return {
        "id": olt.id, "name": olt.name, "ip": olt.ip, "vendor": olt.vendor,
        "vendor_name": VENDORS[olt.vendor].name if olt.vendor in VENDORS else olt.vendor,
        "model": olt.model, "pop": pop, "username": olt.username,
        "has_password": olt.password_encrypted is not None, "protocol": olt.protocol,
        "port": olt.port, "ports": len(olt.ports), "created_at": olt.created_at.isoformat(),
    }


def port_dict(session: Session, port: PonPort, clients: int | None = None) -> dict[str, Any]:
    nas = session.get(Nas, port.routing_nas_id) if port.routing_nas_id else None
    used = port_clients(session, port.id) if clients is None else clients
    return {
        "id": port.id, "olt": port.olt.name, "technology": port.technology, "name": port.name,
        "chassis": port.chassis, "slot": port.slot, "pon": port.pon,
        "description": port.description, "default_vlan": port.default_vlan,
        "default_cpe_profile": port.default_cpe_profile,
        "routing_nas": nas.name if nas else None, "routing_interface": port.routing_interface,
        "max_clients": port.max_clients, "clients": used,
        "block_over_utilization": port.block_over_utilization,
        "allow_verification": port.allow_verification,
        "signal_limit_dbm": f"{port.signal_limit_dbm:.2f}" if port.signal_limit_dbm is not None else None,
    }


def ports_report(session: Session, olt: str | None = None, full_only: bool = False) -> list[dict[str, Any]]:
    """Occupancy of every PON port: clients (services not cancelled) / maximum."""
    counts = dict(session.execute(
        select(Service.pon_port_id, func.count(Service.id))
        .where(Service.pon_port_id.is_not(None), Service.status != CANCELLED)
        .group_by(Service.pon_port_id)).all())
    rows = []
    for port in list_ports(session, olt):
        clients = counts.get(port.id, 0)
        maximum = port.max_clients
        percent = round(100 * clients / maximum, 1) if maximum else None
        full = maximum is not None and clients >= maximum
        if full_only and not full:
            continue
        rows.append({
            "olt": port.olt.name, "port": port.name, "technology": port.technology,
            "position": f"{port.chassis}/{port.slot}/{port.pon}", "clients": clients,
            "max_clients": maximum,
            "occupancy": f"{clients}/{maximum}" if maximum else f"{clients}/-",
            "occupancy_percent": percent, "full": full,
            "over_utilized": maximum is not None and clients > maximum,
            "block_over_utilization": port.block_over_utilization,
        })
    return rows

