"""NAS (Equipamentos de Conexão), POPs, subnet folders and subnets."""

from __future__ import annotations

import ipaddress

from sqlalchemy import select
from sqlalchemy.orm import Session

from aaa.db.enums import NasVendor, ServiceStatus
from aaa.db.models import Nas, Pop, Service, Subnet, SubnetFolder
from management import audit
from management.context import Context
from management.errors import NotFound, RuleViolation
from management.validation import parse_ip, parse_subnet

NAS_FIELDS = ("name", "ip", "vendor", "model", "pop_id", "coa_port",
              "require_message_authenticator", "enabled")


def get_nas(session: Session, ref: str) -> Nas:
    """A NAS by name or by IP address."""
    nas = session.scalar(select(Nas).where((Nas.name == ref) | (Nas.ip == ref)))
    if nas is None:
        raise NotFound("nas", ref)
    return nas


def get_pop(session: Session, name: str) -> Pop:
    pop = session.scalar(select(Pop).where(Pop.name == name))
    if pop is None:
        raise NotFound("pop", name)
    return pop


def create_nas(
    ctx: Context, name: str, ip: str, secret: str, vendor: str, model: str | None = None,
    pop: str | None = None, coa_port: int = 3799, require_message_authenticator: bool = True,
) -> Nas:
    ctx.require("nas.edit")
    address = str(parse_ip(ip))
    if vendor not in {v.value for v in NasVendor}:
        raise RuleViolation("nas.vendor_invalid", f"unknown vendor {vendor}")
    if not secret:
        raise RuleViolation("nas.secret_required", "a RADIUS secret is required")
    if not 1 <= coa_port <= 65535:
        raise RuleViolation("nas.port_invalid", f"invalid CoA port {coa_port}")
    if ctx.session.scalar(select(Nas.id).where(Nas.name == name)):
        raise RuleViolation("nas.name_duplicate", f"NAS {name} already exists")
    if ctx.session.scalar(select(Nas.id).where(Nas.ip == address)):
        raise RuleViolation("nas.ip_duplicate", f"a NAS with IP {address} already exists")
    nas = Nas(name=name, ip=address, secret=secret, vendor=vendor, model=model,
              pop_id=get_pop(ctx.session, pop).id if pop else None, coa_port=coa_port,
              require_message_authenticator=require_message_authenticator, enabled=True,
              created_at=ctx.now)
    ctx.session.add(nas)
    ctx.session.flush()
    # The secret is never written to history.
    audit.record(ctx, "nas", nas.id, "create", audit.diff({}, audit.snapshot(nas, NAS_FIELDS)))
    audit.publish(ctx, "nas", nas.id)
    return nas


def list_nas(session: Session) -> list[Nas]:
    return list(session.scalars(select(Nas).order_by(Nas.name)))


def create_pop(ctx: Context, name: str, city: str | None = None) -> Pop:
    ctx.require("network.edit")
    if ctx.session.scalar(select(Pop.id).where(Pop.name == name)):
        raise RuleViolation("pop.name_duplicate", f"POP {name} already exists")
    pop = Pop(name=name, city=city)
    ctx.session.add(pop)
    ctx.session.flush()
    audit.record(ctx, "pop", pop.id, "create", {"name": [None, name], "city": [None, city]})
    return pop


def list_pops(session: Session) -> list[Pop]:
    return list(session.scalars(select(Pop).order_by(Pop.name)))


def create_subnet(ctx: Context, cidr: str, folder: str = "default",
                  description: str | None = None) -> Subnet:
    """Register a subnet for fixed IPs inside a folder (created when new)."""
    ctx.require("network.edit")
    network = parse_subnet(cidr)
    for existing in ctx.session.scalars(select(Subnet)):
        other = ipaddress.ip_network(existing.cidr)
        if other.version == network.version and network.overlaps(other):
            raise RuleViolation("subnet.overlap", f"{network} overlaps registered subnet {other}")
    folder_row = ctx.session.scalar(select(SubnetFolder).where(SubnetFolder.name == folder))
    if folder_row is None:
        folder_row = SubnetFolder(name=folder)
        ctx.session.add(folder_row)
        ctx.session.flush()
    subnet = Subnet(folder_id=folder_row.id, folder=folder_row, cidr=str(network),
                    description=description)
    ctx.session.add(subnet)
    ctx.session.flush()
    audit.record(ctx, "subnet", subnet.cidr, "create", {"folder": [None, folder]})
    return subnet


def list_subnets(session: Session, folder: str | None = None) -> list[Subnet]:
    query = select(Subnet).join(SubnetFolder).order_by(SubnetFolder.name, Subnet.cidr)
    if folder:
        query = query.where(SubnetFolder.name == folder)
    return list(session.scalars(query))


def get_subnet(session: Session, cidr: str) -> Subnet:
    subnet = session.scalar(select(Subnet).where(Subnet.cidr == str(parse_subnet(cidr))))
    if subnet is None:
        raise NotFound("subnet", cidr)
    return subnet


def subnet_containing(session: Session, address: ipaddress.IPv4Address) -> Subnet | None:
    for subnet in session.scalars(select(Subnet)):
        network = ipaddress.ip_network(subnet.cidr)
        if network.version == 4 and address in network:
            return subnet
    return None


def usable_hosts(network: ipaddress.IPv4Network) -> range:
    """Integer range of assignable addresses: network and broadcast excluded (/31, /32 kept)."""
    first, last = int(network.network_address), int(network.broadcast_address)
    if network.prefixlen >= 31:
        return range(first, last + 1)
    return range(first + 1, last)


def next_free_ip(session: Session, cidr: str) -> str:
    subnet = get_subnet(session, cidr)
    network = ipaddress.ip_network(subnet.cidr)
    if network.version != 4:
        raise RuleViolation("subnet.not_ipv4", f"{network} is not an IPv4 subnet")
    used = {
        int(ipaddress.IPv4Address(ip)) for ip in session.scalars(
            select(Service.ipv4).where(Service.ipv4.is_not(None),
                                       Service.status != ServiceStatus.CANCELLED.value))
        if ip
    }
    for candidate in usable_hosts(network):
        if candidate not in used:
            return str(ipaddress.IPv4Address(candidate))
    raise RuleViolation("subnet.full", f"no free address left in {network}")
