"""Bulk import of services (and their customers) from a CSV file, for a migrating provider.

One row per service. The file is read whole, every row is validated in Python against
sets fetched once (documents → customers, live logins, used addresses, plans, subnets,
NAS), and only then are the good rows written in bulk, with a history row per created
customer and service and a change-feed row per service, all in the caller's transaction.

All-or-nothing by default: one bad row refuses the whole file (`ImportRefused`, carrying
every bad line). With `skip_errors` the good rows are imported and the bad ones returned.
The columns are documented in docs/import-format.md.
"""

from __future__ import annotations

import contextlib
import csv
import io
import ipaddress
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from aaa.db.enums import MacBinding, ServiceStatus
from aaa.db.models import ChangeFeedEntry, Customer, HistoryEntry, Nas, Plan, Service, Subnet
from management import audit, subscriber_passwords
from management.context import Context
from management.customers import FIELDS as CUSTOMER_FIELDS
from management.errors import RuleViolation
from management.network import usable_hosts
from management.plans import parse_money
from management.services import FIELDS as SERVICE_FIELDS
from management.services import check_mac_binding, check_password
from management.validation import normalize_document, normalize_mac, parse_ipv4, parse_ipv6_prefix

T = TypeVar("T")

ACTION = "import"
CHUNK = 1000  # rows per INSERT statement / per IN (...) lookup

# Canonical column → accepted header spellings (compared without case, accents, spaces).
COLUMNS: dict[str, tuple[str, ...]] = {
    "document": ("document", "documento", "cpf_cnpj", "cpfcnpj", "cpf", "cnpj"),
    "name": ("name", "nome", "nome_razao_social", "razao_social", "customer_name"),
    "login": ("login", "usuario", "username", "user"),
    "password": ("password", "senha"),
    "plan": ("plan", "plano"),
    "status": ("status", "status_servico", "situacao"),
    "mac": ("mac", "mac_address", "endereco_mac"),
    "mac_binding": ("mac_binding", "vinculo_mac"),
    "ip": ("ip", "ipv4", "fixed_ip", "ip_fixo"),
    "ipv6_prefix": ("ipv6_prefix", "ipv6", "prefixo_ipv6"),
    "interface": ("interface", "nas_port_id"),
    "nas": ("nas", "concentrador"),
    "simultaneous_use": ("simultaneous_use", "conexoes_simultaneas"),
    "price": ("price", "valor", "preco"),
    "note": ("note", "observacao", "obs"),
    "email": ("email", "e_mail"),
    "phones": ("phones", "phone", "telefone", "telefones"),
    "city": ("city", "cidade"),
    "state": ("state", "uf", "estado"),
    "address": ("address", "endereco"),
}
REQUIRED_COLUMNS = ("document", "name", "login", "password", "plan", "status")

# Status codes and HubSoft's labels, keyed by their folded form (no case, no accents).
_STATUS_LABELS: dict[str, ServiceStatus] = {
    "habilitado": ServiceStatus.ENABLED,
    "servico habilitado": ServiceStatus.ENABLED,
    "suspenso por debito": ServiceStatus.SUSPENDED_DEBT,
    "suspenso parcialmente": ServiceStatus.SUSPENDED_PARTIAL,
    "suspenso a pedido do cliente": ServiceStatus.SUSPENDED_REQUEST,
    "suspenso a pedido": ServiceStatus.SUSPENDED_REQUEST,
    "cancelado": ServiceStatus.CANCELLED,
    "aguardando instalacao": ServiceStatus.AWAITING_INSTALL,
    "aguardando migracao": ServiceStatus.AWAITING_MIGRATION,
}
# A migration in progress needs its origin service: it cannot come from a file.
_IMPORTABLE = frozenset(ServiceStatus) - {ServiceStatus.AWAITING_MIGRATION}

# Column widths of the schema, checked per row so a long value is a line's error rather
# than a database error that refuses the whole file.
_MAX_LENGTH = {"name": 200, "email": 200, "phones": 200, "city": 100, "address": 300,
               "interface": 253}


@dataclass(frozen=True, slots=True)
class RowError:
    line: int  # line of the file where the row starts (the header is line 1)
    error: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "error": self.error}


@dataclass(slots=True)
class ImportResult:
    imported: int = 0
    customers_created: int = 0
    errors: list[RowError] = field(default_factory=list)
    rows: int = 0  # data rows read (blank lines excluded)

    def as_dict(self) -> dict[str, Any]:
        return {"imported": self.imported, "customers_created": self.customers_created,
                "errors": [e.as_dict() for e in self.errors]}


class ImportRefused(RuleViolation):
    """All-or-nothing import with bad rows: nothing was written; `errors` lists every one."""

    def __init__(self, errors: list[RowError], rows: int) -> None:
        super().__init__(
            "import.rows_invalid",
            f"import refused: {len(errors)} bad line(s) of {rows}; nothing imported "
            "(fix them, or use --skip-errors to import the good ones)")
        self.errors = errors
        self.rows = rows


# --- reading the file ------------------------------------------------------------------


def fold(value: str) -> str:
    """Lower case, accents removed, runs of spaces and `_-/.` → one space."""
    decomposed = unicodedata.normalize("NFKD", value.strip().lower())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"[\s_./-]+", " ", plain).strip()


_HEADER_ALIASES = {fold(alias): column for column, aliases in COLUMNS.items() for alias in aliases}


def parse_status(raw: str) -> str:
    """Our status code from a code or a HubSoft label (any case, with or without accents)."""
    folded = fold(raw)
    status = _STATUS_LABELS.get(folded)
    if status is None:
        try:
            status = ServiceStatus(folded.replace(" ", "_"))
        except ValueError:
            raise RuleViolation("service.status_invalid", f"unknown status {raw!r}") from None
    if status not in _IMPORTABLE:
        raise RuleViolation("service.status_invalid",
                            f"status {raw!r} cannot be imported (a migration needs its origin)")
    return status.value


def decode(data: bytes) -> str:
    """UTF-8 text with or without a byte-order mark."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RuleViolation(
            "import.encoding",
            f"line {line}: the file is not UTF-8; export it as \"CSV UTF-8\"") from None


def detect_delimiter(header_line: str) -> str:
    """`;` (Brazilian spreadsheets) when the header has more of them than `,`, else `,`."""
    return ";" if header_line.count(";") > header_line.count(",") else ","


def read_rows(content: str) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The canonical column names, and (starting line, cells) for each non-blank row."""
    stream = io.StringIO(content, newline="")
    first = content.split("\n", 1)[0]
    reader = csv.reader(stream, delimiter=detect_delimiter(first))
    try:
        header = next(reader)
    except StopIteration:
        raise RuleViolation("import.header_missing",
                            "the file is empty: a header row is required") from None
    columns = _map_header(header)

    def rows() -> Iterator[tuple[int, list[str]]]:
        previous = reader.line_num
        for cells in reader:
            start, previous = previous + 1, reader.line_num
            if any(cell.strip() for cell in cells):
                yield start, cells

    return columns, rows()


def _map_header(header: Sequence[str]) -> list[str]:
    columns: list[str] = []
    unknown: list[str] = []
    for cell in header:
        column = _HEADER_ALIASES.get(fold(cell))
        if column is None:
            unknown.append(cell.strip() or "(empty)")
        elif column in columns:
            raise RuleViolation("import.header_invalid",
                                f"line 1: column {column!r} appears twice ({cell.strip()!r})")
        else:
            columns.append(column)
    if unknown:
        raise RuleViolation(
            "import.header_invalid",
            f"line 1: unknown column(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(COLUMNS)} (see docs/import-format.md)")
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise RuleViolation("import.header_invalid",
                            f"line 1: required column(s) missing: {', '.join(missing)}")
    return columns


# --- what is already in the database ---------------------------------------------------


def _chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _lookup(session: Session, query: Callable[[Sequence[str]], Any],
            keys: Iterable[str]) -> list[Any]:
    wanted = sorted(set(keys))
    found: list[Any] = []
    for chunk in _chunks(wanted):
        found.extend(session.execute(query(chunk)).all())
    return found


@dataclass(slots=True)
class _Known:
    """What the rows are checked against; grows as rows are accepted."""

    customers: dict[str, tuple[int, bool]]  # document → (id, active)
    live_logins: set[str]
    used_ipv4: set[str]
    used_ipv6: set[str]
    plans: dict[str, int]
    nas: dict[str, int]  # name and IP → id
    subnets: list[tuple[ipaddress.IPv4Network, int]]


def _prefetch(session: Session, rows: list[tuple[int, dict[str, str]]]) -> _Known:
    def column(name: str) -> list[str]:
        return [r[name].strip() for _, r in rows if r.get(name, "").strip()]

    def parsed(name: str, parse: Callable[[str], object]) -> list[str]:
        values = []
        for raw in column(name):
            with contextlib.suppress(RuleViolation):  # reported when its row is checked
                values.append(str(parse(raw)))
        return values

    documents = parsed("document", lambda raw: normalize_document(raw)[0])
    ipv4 = parsed("ip", parse_ipv4)
    ipv6 = parsed("ipv6_prefix", parse_ipv6_prefix)
    live = Service.status != ServiceStatus.CANCELLED.value
    customers = {
        document: (cid, active) for cid, document, active in _lookup(
            session, lambda c: select(Customer.id, Customer.document, Customer.active)
            .where(Customer.document.in_(c)), documents)
    }
    logins = {row[0] for row in _lookup(
        session, lambda c: select(Service.login).where(Service.login.in_(c), live),
        column("login"))}
    used_ipv4 = {row[0] for row in _lookup(
        session, lambda c: select(Service.ipv4).where(Service.ipv4.in_(c), live), ipv4)}
    used_ipv6 = {row[0] for row in _lookup(
        session, lambda c: select(Service.ipv6_prefix).where(Service.ipv6_prefix.in_(c), live),
        ipv6)}
    plans = {name: pid for pid, name in session.execute(select(Plan.id, Plan.name))}
    nas: dict[str, int] = {}
    for nid, name, ip in session.execute(select(Nas.id, Nas.name, Nas.ip)):
        nas[name] = nas[ip] = nid
    subnets = []
    for sid, cidr in session.execute(select(Subnet.id, Subnet.cidr).order_by(Subnet.id)):
        network = ipaddress.ip_network(cidr)
        if isinstance(network, ipaddress.IPv4Network):
            subnets.append((network, sid))
    return _Known(customers, logins, used_ipv4, used_ipv6, plans, nas, subnets)


# --- checking one row ------------------------------------------------------------------


@dataclass(slots=True)
class _Row:
    line: int
    document: str
    customer_id: int | None  # None: created by this import
    customer: dict[str, Any]  # the new customer's fields (first accepted row wins)
    service: dict[str, Any]


def _check_login_format(login: str) -> None:
    # Same rule as management.services._check_login, whose uniqueness half needs the
    # database; uniqueness is checked here against the pre-fetched set.
    if not login or len(login) > 128 or any(c.isspace() or ord(c) < 32 for c in login):
        raise RuleViolation("service.login_invalid",
                            f"invalid login {login!r}: 1-128 characters, no spaces")


def _fixed_ipv4(raw: str, known: _Known) -> tuple[str, int]:
    """The rules of management.services._fixed_ipv4 against the pre-fetched subnets."""
    address = parse_ipv4(raw)
    for network, subnet_id in known.subnets:
        if address in network:
            if int(address) not in usable_hosts(network):
                raise RuleViolation(
                    "service.ip_outside_subnet",
                    f"{address} is the network or broadcast address of {network}")
            return str(address), subnet_id
    raise RuleViolation("service.ip_outside_subnet",
                        f"{address} is not inside any registered subnet")


class _Problems:
    """Collects every independent problem of one row."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def check(self, func: Callable[[], T]) -> T | None:
        try:
            return func()
        except RuleViolation as exc:
            self.messages.append(str(exc))
            return None

    def add(self, rule: str, message: str) -> None:
        self.messages.append(str(RuleViolation(rule, message)))


def _check_row(line: int, cells: dict[str, str], known: _Known,
               file_logins: dict[str, int], file_ipv4: dict[str, int],
               file_ipv6: dict[str, int]) -> _Row | RowError:
    get = {name: value.strip() for name, value in cells.items()}
    problems = _Problems()

    document = problems.check(lambda: normalize_document(get["document"])[0])
    customer_id: int | None = None
    if document is not None and document in known.customers:
        customer_id, active = known.customers[document]
        if not active:
            problems.add("customer.inactive", f"customer {customer_id} is inactive")
    elif document is not None and not get["name"]:
        problems.add("customer.name_required", "customer name is required (new customer)")
    uf = get.get("state", "")
    if uf and len(uf) != 2:
        problems.add("customer.state_invalid", f"state must be a 2-letter code: {uf}")
    for name, limit in _MAX_LENGTH.items():
        if len(get.get(name, "")) > limit:
            problems.add("import.value_too_long", f"{name} longer than {limit} characters")

    login = get["login"]
    problems.check(lambda: _check_login_format(login))
    problems.check(lambda: check_password(cells["password"]))  # passwords are kept as typed
    status = problems.check(lambda: parse_status(get["status"]))
    live = status is not None and status != ServiceStatus.CANCELLED.value
    if live and login in known.live_logins:
        problems.add("service.login_duplicate", f"login {login} is already in use")
    elif live and login in file_logins:
        problems.add("service.login_duplicate",
                     f"login {login} is already on line {file_logins[login]}")
    plan_id = known.plans.get(get["plan"])
    if plan_id is None:
        problems.add("plan.not_found", f"plan {get['plan']} not found")

    mac = problems.check(lambda: normalize_mac(get["mac"])) if get.get("mac") else None
    binding = problems.check(lambda: check_mac_binding(get.get("mac_binding") or MacBinding.OFF.value))
    ipv4 = subnet_id = None
    if get.get("ip"):
        checked = problems.check(lambda: _fixed_ipv4(get["ip"], known))
        if checked is not None:
            ipv4, subnet_id = checked
            if live and ipv4 in known.used_ipv4:
                problems.add("service.ip_in_use", f"{ipv4} is already used by another service")
            elif live and ipv4 in file_ipv4:
                problems.add("service.ip_in_use", f"{ipv4} is already on line {file_ipv4[ipv4]}")
    ipv6 = None
    if get.get("ipv6_prefix"):
        prefix = problems.check(lambda: parse_ipv6_prefix(get["ipv6_prefix"]))
        if prefix is not None:
            ipv6 = str(prefix)
            if live and ipv6 in known.used_ipv6:
                problems.add("service.ip_in_use", f"{ipv6} is already delegated to another service")
            elif live and ipv6 in file_ipv6:
                problems.add("service.ip_in_use", f"{ipv6} is already on line {file_ipv6[ipv6]}")
    nas_id = None
    if get.get("nas"):
        nas_id = known.nas.get(get["nas"])
        if nas_id is None:
            problems.add("nas.not_found", f"nas {get['nas']} not found")
    simultaneous = 1
    if get.get("simultaneous_use"):
        raw_use = get["simultaneous_use"]
        if not raw_use.isdigit() or int(raw_use) < 1:
            problems.add("service.simultaneous_use_invalid",
                         f"simultaneous use must be a whole number >= 1: {raw_use}")
        else:
            simultaneous = int(raw_use)
    price: Decimal | None = None
    if get.get("price"):
        price = problems.check(lambda: parse_money(get["price"]))

    if problems.messages:
        return RowError(line, "; ".join(problems.messages))
    assert document is not None and status is not None and binding is not None
    return _Row(
        line=line, document=document, customer_id=customer_id,
        customer={
            "name": get["name"], "email": get.get("email") or None,
            "phones": get.get("phones") or None, "city": get.get("city") or None,
            "state": uf.upper() or None, "address": get.get("address") or None,
        },
        service={
            "plan_id": plan_id, "login": login, "password": cells["password"], "status": status,
            "mac": mac, "mac_binding": binding, "interface": get.get("interface") or None,
            "nas_id": nas_id, "ipv4": ipv4, "subnet_id": subnet_id, "ipv6_prefix": ipv6,
            "simultaneous_use": simultaneous, "price_override": price,
            "note": get.get("note") or None,
        },
    )


def validate(session: Session, content: str) -> tuple[list[_Row], list[RowError], int]:
    """Check every row; returns the good rows, the bad ones and the number of rows read."""
    columns, raw_rows = read_rows(content)
    rows: list[tuple[int, dict[str, str]]] = []
    errors: list[RowError] = []
    count = 0
    for line, raw in raw_rows:
        count += 1
        if len(raw) != len(columns):
            errors.append(RowError(line, str(RuleViolation(
                "import.columns", f"expected {len(columns)} columns, found {len(raw)}"))))
            continue
        rows.append((line, dict(zip(columns, raw, strict=True))))
    known = _prefetch(session, rows)
    file_logins: dict[str, int] = {}
    file_ipv4: dict[str, int] = {}
    file_ipv6: dict[str, int] = {}
    good: list[_Row] = []
    for line, cells in rows:
        checked = _check_row(line, cells, known, file_logins, file_ipv4, file_ipv6)
        if isinstance(checked, RowError):
            errors.append(checked)
            continue
        good.append(checked)
        service = checked.service
        if service["status"] != ServiceStatus.CANCELLED.value:
            file_logins.setdefault(service["login"], line)
            if service["ipv4"]:
                file_ipv4.setdefault(service["ipv4"], line)
            if service["ipv6_prefix"]:
                file_ipv6.setdefault(service["ipv6_prefix"], line)
    errors.sort(key=lambda e: e.line)
    return good, errors, count


# --- writing ---------------------------------------------------------------------------


def _history(ctx: Context, object_type: str, object_id: int, customer_id: int,
             after: dict[str, Any], note: str) -> dict[str, Any]:
    """A history row as management.audit.record writes it, as a dict for a bulk insert."""
    changes = audit.diff({}, {k: audit.jsonable(v) for k, v in after.items()})
    return {
        "at": ctx.now, "operator_id": ctx.actor.operator_id,
        "operator_login": ctx.actor.login, "object_type": object_type,
        "object_id": str(object_id), "customer_id": customer_id, "action": ACTION,
        "changes": json.dumps(changes, sort_keys=True, ensure_ascii=False), "note": note,
    }


def _insert_returning_ids(session: Session, model: type[Any], rows: list[dict[str, Any]]
                          ) -> list[int]:
    ids: list[int] = []
    for chunk in _chunks(rows):
        result = session.execute(
            insert(model).returning(model.id, sort_by_parameter_order=True), list(chunk))
        ids.extend(result.scalars().all())
    return ids


def _insert(session: Session, model: type[Any], rows: list[dict[str, Any]]) -> None:
    for chunk in _chunks(rows):
        session.execute(insert(model), list(chunk))


def _write(ctx: Context, rows: list[_Row], source: str) -> int:
    """Insert the customers, services, history and change feed; returns customers created."""
    session = ctx.session
    session.flush()  # pending ORM objects first: the bulk inserts bypass the unit of work
    new_customers: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.customer_id is None and row.document not in new_customers:
            person_type = normalize_document(row.document)[1].value
            new_customers[row.document] = {
                "person_type": person_type, "document": row.document, **row.customer,
                "group_name": None, "origin": ACTION, "active": True, "created_at": ctx.now,
                "_line": row.line,
            }
    customer_rows = [{k: v for k, v in c.items() if k != "_line"} for c in new_customers.values()]
    customer_ids = dict(zip(new_customers,
                            _insert_returning_ids(session, Customer, customer_rows), strict=True))
    history = [
        _history(ctx, "customer", customer_ids[document], customer_ids[document],
                 {name: values.get(name) for name in CUSTOMER_FIELDS},
                 f"imported from {source} line {values['_line']}")
        for document, values in new_customers.items()
    ]
    service_rows = [
        {**row.service, "customer_id": row.customer_id or customer_ids[row.document],
         "password": subscriber_passwords.for_storage(ctx, row.service["password"]),
         "created_at": ctx.now, "updated_at": ctx.now}
        for row in rows
    ]
    service_ids = _insert_returning_ids(session, Service, service_rows)
    for row, values, service_id in zip(rows, service_rows, service_ids, strict=True):
        history.append(_history(
            ctx, "service", service_id, values["customer_id"],
            {name: values.get(name) for name in SERVICE_FIELDS},
            f"imported from {source} line {row.line}"))
    _insert(session, HistoryEntry, history)
    _publish_many(ctx, service_ids)
    return len(customer_rows)


def _publish_many(ctx: Context, service_ids: list[int]) -> None:
    """management.audit.publish for many services: one lock, bulk rows, one NOTIFY."""
    if not service_ids:
        return
    session = ctx.session
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": audit.FEED_LOCK_KEY})
    _insert(session, ChangeFeedEntry, [
        {"object_type": "service", "object_id": str(sid), "at": ctx.now} for sid in service_ids])
    if postgres:
        session.execute(text("SELECT pg_notify(:channel, :payload)"),
                        {"channel": audit.NOTIFY_CHANNEL, "payload": f"service:{service_ids[-1]}"})


def import_services(ctx: Context, data: bytes | str, skip_errors: bool = False,
                    source: str = "file") -> ImportResult:
    """Import services (creating customers by document) from CSV; see docs/import-format.md.

    Raises `ImportRefused` (nothing written) when a row is bad and `skip_errors` is off.
    Needs `services.create`, and `customers.edit` when the file creates customers.
    """
    ctx.require("services.create")
    content = decode(data) if isinstance(data, bytes) else data.removeprefix("\ufeff")
    good, errors, count = validate(ctx.session, content)
    if errors and not skip_errors:
        raise ImportRefused(errors, count)
    if any(row.customer_id is None for row in good):
        ctx.require("customers.edit")
    result = ImportResult(imported=len(good), errors=errors, rows=count)
    result.customers_created = _write(ctx, good, source)
    return result
