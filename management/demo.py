"""The demo dataset: a small ISP in the Triângulo Mineiro, the same on every install.

Everything is created through the management functions, so the demo has the history and
change-feed rows a real back office leaves. Nothing depends on randomness; the only
moving parts are timestamps (creation times, the custom navigation's end, a scheduled
task's day), which follow the clock of the installing command.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aaa.db.enums import MacBinding, ServiceStatus
from aaa.db.models import Customer, Nas, Plan, Pop, Service, Subnet
from management import customers, network, plans, services, variables
from management.context import Context
from management.validation import cnpj_check_digits, cpf_check_digits

MARKER_LOGIN = "demo.enabled"  # present once the demo is installed
DEMO_PASSWORD = "demo123"
NAS_SECRET = "testing123"
SUBNET = "203.0.113.0/24"  # TEST-NET-3: documentation addresses, never routed
SUBNET_FOLDER = "IPs fixos"

POPS = (("POP-CENTRO", "Uberlândia"), ("POP-ARAGUARI", "Araguari"))
# name, ip, vendor, model, pop. The daemon matches a NAS by the request's source address:
# 127.0.0.1 lets a local radclient play the MikroTik.
NAS_LIST = (
    ("BRAS-MIKROTIK", "127.0.0.1", "mikrotik", "CCR2116-12G-4S+", "POP-CENTRO"),
    ("BRAS-HUAWEI", "127.0.0.2", "huawei", "NE8000 M8", "POP-ARAGUARI"),
)
# name, download kbit/s, upload kbit/s, price, technology, pool, allows association
PLANS = (
    ("FIBRA-100M", 100_000, 50_000, "99.90", "FTTH", "pool-fibra", False),
    ("FIBRA-300M", 300_000, 150_000, "129.90", "FTTH", "pool-fibra", False),
    ("RADIO-10M", 10_000, 5_000, "69.90", "Rádio", "pool-radio", False),
    ("IP-FIXO", 10_000, 10_000, "30.00", "FTTH", None, True),
)
VARIABLES = (
    ("POOL_SUSPENSAO_TOTAL", "pool-bloqueio"),
    ("POOL_SUSPENSAO_PARCIALMENTE", "pool-reduzido"),
    ("ALARME_QUANTIDADE_CONEXOES_LIMITE_PERIODO", "50"),
    ("ALARME_QUANTIDADE_CONEXOES_PERIODO_DIAS", "1"),
    ("ALARME_CONEXAO_DIAS_EXPIRACAO", "7"),
)
CITIES = (("Uberlândia", "MG"), ("Araguari", "MG"), ("Uberaba", "MG"), ("Ituiutaba", "MG"),
          ("Catalão", "GO"))
FIRST_NAMES = ("Ana", "João", "Maria", "José", "Francisca", "Antônio", "Adriana", "Carlos",
               "Juliana", "Paulo", "Márcia", "Lucas", "Fernanda", "Pedro", "Aline", "Rafael",
               "Patrícia", "Marcos", "Camila", "Luiz", "Sandra", "Gabriel", "Letícia", "Raimundo",
               "Beatriz", "Thiago", "Vanessa", "Sebastião", "Larissa", "Diego")
SURNAMES = ("Silva", "Santos", "Oliveira", "Souza", "Rodrigues", "Ferreira", "Alves", "Pereira",
            "Lima", "Gomes", "Costa", "Ribeiro", "Martins", "Carvalho", "Almeida", "Lopes",
            "Soares", "Fernandes", "Vieira", "Barbosa", "Rocha", "Dias", "Nascimento")
COMPANIES = ("Padaria Pão de Queijo Ltda", "Mercado Bom Preço Ltda", "Clínica Vida Saudável S/A",
             "Oficina Mecânica Dois Irmãos ME", "Escola Pequeno Príncipe Ltda")
PEOPLE = 45  # customers 0..44 are persons (CPF), 45..49 companies (CNPJ)


@dataclass(frozen=True, slots=True)
class DemoLogin:
    login: str
    status: str
    plan: str
    what: str  # what the RADIUS server should answer


# The logins to try, all with DEMO_PASSWORD (customers 0..10 and the first company).
DEMO_LOGINS = (
    DemoLogin("demo.enabled", "enabled", "FIBRA-100M", "accepted at 100M/50M"),
    DemoLogin("demo.debt", "suspended_debt", "FIBRA-100M",
              "suspended for debt: blocked pool POOL_SUSPENSAO_TOTAL"),
    DemoLogin("demo.partial", "suspended_partial", "RADIO-10M",
              "partially suspended: reduced speed, pool POOL_SUSPENSAO_PARCIALMENTE"),
    DemoLogin("demo.request", "suspended_request", "FIBRA-300M",
              "suspended on the customer's request: rejected"),
    DemoLogin("demo.cancelled", "cancelled", "FIBRA-100M", "cancelled: rejected"),
    DemoLogin("demo.install", "awaiting_install", "FIBRA-300M", "awaiting installation"),
    DemoLogin("demo.migration", "enabled", "RADIO-10M",
              "enabled, with a deferred migration to FIBRA-100M pending"),
    DemoLogin("demo.navigation", "enabled", "FIBRA-100M",
              "custom navigation 200M/100M for 30 days"),
    DemoLogin("demo.mac", "enabled", "FIBRA-100M", "MAC enforced: only 4C:5E:0C:11:22:33"),
    DemoLogin("demo.learn", "enabled", "RADIO-10M", "MAC binding learn: the first MAC sticks"),
    DemoLogin("demo.huawei", "enabled", "FIBRA-300M",
              "on the Huawei NAS (127.0.0.2), registered interface"),
    DemoLogin("demo.empresa", "enabled", "FIBRA-300M", "company, fixed IP 203.0.113.10"),
    DemoLogin("demo.ipfixo", "enabled", "IP-FIXO",
              "fixed IP 203.0.113.11, associated with demo.empresa"),
)
TRY_COMMAND = (f"echo 'User-Name = \"{MARKER_LOGIN}\", User-Password = \"{DEMO_PASSWORD}\", "
               f"Message-Authenticator = 0x00' | radclient -x 127.0.0.1 auth {NAS_SECRET}")

# Status of the generic services, by customer number (mostly enabled, as in real life).
_STATUS_CYCLE = (
    ServiceStatus.ENABLED, ServiceStatus.ENABLED, ServiceStatus.SUSPENDED_DEBT,
    ServiceStatus.ENABLED, ServiceStatus.ENABLED, ServiceStatus.SUSPENDED_PARTIAL,
    ServiceStatus.ENABLED, ServiceStatus.AWAITING_INSTALL, ServiceStatus.ENABLED,
    ServiceStatus.SUSPENDED_REQUEST, ServiceStatus.ENABLED, ServiceStatus.CANCELLED,
)
_SUSPEND_NOTES = {
    ServiceStatus.SUSPENDED_DEBT: "fatura vencida há mais de 15 dias",
    ServiceStatus.SUSPENDED_PARTIAL: "fatura vencida: redução de velocidade",
    ServiceStatus.SUSPENDED_REQUEST: "viagem do cliente",
    ServiceStatus.CANCELLED: "mudou de cidade",
}


def is_installed(session: Session) -> bool:
    return session.scalar(select(Service.id).where(Service.login == MARKER_LOGIN).limit(1)) is not None


def _slug(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "", plain)


def demo_cpf(n: int) -> str:
    base = f"{(314_159_265 + n * 1_234_567) % 1_000_000_000:09d}"
    return base + cpf_check_digits(base)


def demo_cnpj(n: int) -> str:
    base = f"{(27_182_818 + n * 1_010_101) % 100_000_000:08d}0001"
    return base + cnpj_check_digits(base)


def _mac(n: int) -> str:
    return f"4C:5E:0C:{n:02X}:{n * 37 % 256:02X}:{n * 101 % 256:02X}"


def _customers(ctx: Context) -> list[Customer]:
    created = []
    for n in range(PEOPLE + len(COMPANIES)):
        city, uf = CITIES[n % len(CITIES)]
        if n < PEOPLE:
            first = FIRST_NAMES[n % len(FIRST_NAMES)]
            last = SURNAMES[(n * 7) % len(SURNAMES)]
            name, document = f"{first} {last}", demo_cpf(n)
            email = f"{_slug(first)}.{_slug(last)}@example.com.br"
        else:
            name, document = COMPANIES[n - PEOPLE], demo_cnpj(n)
            email = f"contato@{_slug(name.split()[0] + name.split()[1])}.example.com.br"
        created.append(customers.create_customer(
            ctx, name, document, email=email, phones=f"(34) 9{9100_0000 + n * 7919:08d}",
            city=city, state=uf, address=f"Rua {SURNAMES[n % len(SURNAMES)]}, {100 + n * 3}",
            origin="demo"))
    return created


def _service(ctx: Context, owner: Customer, plan: str, login: str, password: str,
             status: ServiceStatus, **kw: Any) -> Service:
    """Create enabled (or awaiting install) and move to the target status, as it happens."""
    start = ServiceStatus.AWAITING_INSTALL if status == ServiceStatus.AWAITING_INSTALL \
        else ServiceStatus.ENABLED
    service = services.create_service(ctx, owner, plan, login, password, start.value, **kw)
    if status != start:
        services.change_status(ctx, login, status.value, _SUSPEND_NOTES.get(status))
    return service


def install(ctx: Context) -> None:
    """Create the demo dataset in the context's transaction (the caller checks is_installed)."""
    for name, city in POPS:
        network.create_pop(ctx, name, city)
    for name, ip, vendor, model, pop in NAS_LIST:
        network.create_nas(ctx, name, ip, NAS_SECRET, vendor, model, pop)
    for name, down, up, price, technology, pool, association in PLANS:
        plans.create_plan(ctx, name, down, up, price, technology, pool, association)
    for key, value in VARIABLES:
        variables.set_variable(ctx, key, value)
    network.create_subnet(ctx, SUBNET, SUBNET_FOLDER, "IPs públicos fixos (demo)")

    people = _customers(ctx)
    named = {d.login: d for d in DEMO_LOGINS}

    def demo(n: int, login: str, owner: Customer | None = None, **kw: Any) -> Service:
        spec = named[login]
        return _service(ctx, owner or people[n], spec.plan, login, DEMO_PASSWORD,
                        ServiceStatus(spec.status), **kw)

    demo(0, "demo.enabled", mac=_mac(0), nas="BRAS-MIKROTIK")
    demo(1, "demo.debt")
    demo(2, "demo.partial")
    demo(3, "demo.request")
    demo(4, "demo.cancelled")
    demo(5, "demo.install")
    demo(6, "demo.migration")
    services.migrate(ctx, "demo.migration", "FIBRA-100M", deferred=True,
                     note="upgrade de rádio para fibra")
    demo(7, "demo.navigation")
    until = datetime.combine(ctx.today + timedelta(days=30), time(0), ctx.zone).astimezone(UTC)
    services.set_navigation(ctx, "demo.navigation", 200_000, 100_000, until)
    demo(8, "demo.mac", mac="4C:5E:0C:11:22:33", mac_binding=MacBinding.ENFORCE.value)
    demo(9, "demo.learn", mac_binding=MacBinding.LEARN.value)
    demo(10, "demo.huawei", nas="BRAS-HUAWEI", interface="slot=2;subslot=0;port=1;vlanid=100;")
    company = people[PEOPLE]
    demo(0, "demo.empresa", owner=company, ipv4="203.0.113.10", price="249.90")
    demo(0, "demo.ipfixo", owner=company, ipv4="203.0.113.11")
    services.associate(ctx, "demo.ipfixo", "demo.empresa")
    services.schedule(ctx, "demo.request", ServiceStatus.ENABLED.value,
                      ctx.today + timedelta(days=15), note="cliente volta de viagem")

    for n in range(11, PEOPLE):
        person = people[n]
        first, last = person.name.split()[0], person.name.split()[-1]
        login = f"{_slug(first)}.{_slug(last)}{n:02d}"
        status = _STATUS_CYCLE[n % len(_STATUS_CYCLE)]
        plan = ("FIBRA-100M", "FIBRA-300M", "RADIO-10M")[n % 3]
        binding = (MacBinding.OFF, MacBinding.LEARN, MacBinding.ENFORCE)[n % 3]
        _service(ctx, person, plan, login, f"senha{n * 7919 % 10_000:04d}", status,
                 mac=_mac(n) if binding != MacBinding.LEARN else None,
                 mac_binding=binding.value,
                 interface=f"vlan{100 + n % 4}" if plan == "RADIO-10M" else None)
        if n % 10 == 0:  # a second service (e.g. a summer house) for a few customers
            _service(ctx, person, "RADIO-10M", f"{login}.2", f"casa{n:04d}", ServiceStatus.ENABLED)
    for n, company in enumerate(people[PEOPLE + 1:], start=1):
        login = f"{_slug(company.name.split()[0])}.{_slug(company.name.split()[1])}"
        _service(ctx, company, "FIBRA-300M", login, f"empresa{n:02d}", ServiceStatus.ENABLED,
                 ipv4=f"203.0.113.{11 + n}", ipv6_prefix=f"2001:db8:{n:x}00::/56")


def summary(session: Session) -> dict[str, Any]:
    """What the demo database holds now, for the command's report."""
    by_status = dict.fromkeys((s.value for s in ServiceStatus), 0)
    for status, count in session.execute(select(Service.status, func.count()).group_by(Service.status)):
        by_status[status] = count

    def total(model: type) -> int:
        return session.scalar(select(func.count()).select_from(model)) or 0

    return {
        "pops": total(Pop), "nas": [
            {"name": n.name, "ip": n.ip, "vendor": n.vendor, "secret": NAS_SECRET}
            for n in session.scalars(select(Nas).where(Nas.name.in_([x[0] for x in NAS_LIST]))
                                     .order_by(Nas.name))],
        "plans": total(Plan), "subnets": total(Subnet), "customers": total(Customer),
        "services": total(Service), "services_by_status": by_status,
        "logins": [{"login": d.login, "password": DEMO_PASSWORD, "status": d.status,
                    "plan": d.plan, "what": d.what} for d in DEMO_LOGINS],
        "try": TRY_COMMAND,
    }
