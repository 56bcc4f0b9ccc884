"""`aaa import services`: bulk import of services and their customers from CSV."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from aaa.db.models import ChangeFeedEntry, Customer, HistoryEntry, Service
from management import customers, importer, network, operators
from management.context import Context, load_actor
from management.errors import PermissionDenied, RuleViolation
from tests import factories
from tests.conftest import NOW, ZONE, CliResult
from tests.factories import cnpj, cpf

Cli = Callable[..., CliResult]

HEADER = "document,name,login,password,plan,status,mac,ip"


def csv_text(*rows: str, header: str = HEADER) -> str:
    return "\n".join((header, *rows)) + "\n"


def row(login: str, document: str | None = None, name: str = "Maria Souza",
        plan: str = "FIBRA-100", status: str = "enabled", mac: str = "", ip: str = "") -> str:
    return ",".join((document or cpf(), name, login, "pw", plan, status, mac, ip))


def count(session: Session, model: type, *where: object) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


@pytest.fixture
def isp(ctx: Context) -> Context:
    """A plan FIBRA-100, a subnet 203.0.113.0/29 and a NAS, in the rolled-back session."""
    factories.plan(ctx)
    network.create_subnet(ctx, "203.0.113.0/29", folder="fixos")
    network.create_nas(ctx, "mk1", "10.0.0.1", "s3cret", "mikrotik")
    return ctx


def test_happy_path_creates_and_matches_customers(isp: Context) -> None:
    """Rows become services; customers are created once per document or matched when known."""
    known = factories.customer(isp, name="Já Cliente", document=cpf(7))
    company = cnpj(42)
    formatted = f"{company[:2]}.{company[2:5]}.{company[5:8]}/{company[8:12]}-{company[12:]}"
    header = ("document,name,login,password,plan,status,mac,ip,email,city,state,interface,"
              "ipv6_prefix,simultaneous_use,price,nas,mac_binding")
    content = csv_text(
        f"{known.document},ignored name,ana,s3nh@,FIBRA-100,enabled,aa-bb-cc-dd-ee-ff,203.0.113.1,"
        ",,,vlan100,2001:db8:1::/48,2,79.90,mk1,enforce",
        f"{formatted},Padaria Pão Quente LTDA,padaria,pw,FIBRA-100,awaiting_install,,,"
        "contato@padaria.com.br,Recife,pe,,,,,,",
        f"{company},Padaria Pão Quente LTDA,padaria2,pw,FIBRA-100,suspended_request,,,,,,,,,,,",
        header=header,
    )
    result = importer.import_services(isp, content)
    assert (result.imported, result.customers_created, result.errors) == (3, 1, [])
    session = isp.session
    ana = session.scalar(select(Service).where(Service.login == "ana"))
    assert ana is not None and ana.customer_id == known.id
    assert (ana.mac, ana.mac_binding, ana.ipv4, ana.ipv6_prefix) == (
        "AA:BB:CC:DD:EE:FF", "enforce", "203.0.113.1", "2001:db8:1::/48")
    assert (ana.interface, ana.simultaneous_use, str(ana.price_override)) == ("vlan100", 2, "79.90")
    assert ana.subnet_id is not None and ana.nas_id is not None and ana.password == "s3nh@"
    padaria = customers.get_customer(session, company)
    assert (padaria.person_type, padaria.name, padaria.city, padaria.state, padaria.email) == (
        "PJ", "Padaria Pão Quente LTDA", "Recife", "PE", "contato@padaria.com.br")
    assert sorted(s.login for s in padaria.services) == ["padaria", "padaria2"]
    assert known.name == "Já Cliente"  # a known customer is matched, not rewritten


# Each case: the cells of a bad row (overriding a good one) and the rule it breaks.
BAD_ROWS: list[tuple[dict[str, str], str]] = [
    ({"document": "123.456.789-00"}, "customer.document_invalid"),
    ({"document": "INACTIVE"}, "customer.inactive"),
    ({"name": ""}, "customer.name_required"),
    ({"state": "Pernambuco"}, "customer.state_invalid"),
    ({"name": "x" * 201}, "import.value_too_long"),
    ({"login": "has space"}, "service.login_invalid"),
    ({"login": "taken"}, "service.login_duplicate"),
    ({"password": ""}, "service.password_invalid"),
    ({"status": "ativo-ish"}, "service.status_invalid"),
    ({"status": "Aguardando Migração"}, "service.status_invalid"),
    ({"plan": "NO-SUCH-PLAN"}, "plan.not_found"),
    ({"mac": "aa:bb:cc"}, "service.mac_invalid"),
    ({"mac_binding": "sometimes"}, "service.mac_binding_invalid"),
    ({"ip": "203.0.113.300"}, "ip.invalid"),
    ({"ip": "198.51.100.1"}, "service.ip_outside_subnet"),
    ({"ip": "203.0.113.0"}, "service.ip_outside_subnet"),
    ({"ip": "203.0.113.7"}, "service.ip_outside_subnet"),
    ({"ip": "203.0.113.6"}, "service.ip_in_use"),
    ({"ipv6_prefix": "2001:db8::1/48"}, "ip.invalid"),
    ({"ipv6_prefix": "2001:db8:ffff::/48"}, "service.ip_in_use"),
    ({"nas": "ghost"}, "nas.not_found"),
    ({"simultaneous_use": "0"}, "service.simultaneous_use_invalid"),
    ({"price": "abc"}, "money.invalid"),
]
FULL_HEADER = ("document", "name", "login", "password", "plan", "status", "mac", "mac_binding",
               "ip", "ipv6_prefix", "nas", "simultaneous_use", "price", "state")


@pytest.mark.parametrize(("cells", "rule"), BAD_ROWS, ids=[rule + ":" + next(iter(c))
                                                            for c, rule in BAD_ROWS])
def test_every_rule_is_refused_with_its_line_number(isp: Context, cells: dict[str, str],
                                                    rule: str) -> None:
    """A row breaking a rule refuses the file: its line and the rule are named, nothing written."""
    inactive = factories.customer(isp, name="Inativa")
    customers.inactivate_customer(isp, inactive.id)
    factories.service(isp, "taken", ipv4="203.0.113.6", ipv6_prefix="2001:db8:ffff::/48")
    good = {"document": cpf(), "name": "Maria", "login": "good", "password": "pw",
            "plan": "FIBRA-100", "status": "enabled", "mac": "", "mac_binding": "",
            "ip": "", "ipv6_prefix": "", "nas": "", "simultaneous_use": "", "price": "",
            "state": ""}
    bad = {**good, "document": cpf(), "login": "bad", **cells}
    if bad["document"] == "INACTIVE":
        bad["document"] = inactive.document
    lines = [",".join(FULL_HEADER)] + [",".join(r[c] for c in FULL_HEADER) for r in (good, bad)]
    before = count(isp.session, Service)
    with pytest.raises(importer.ImportRefused) as refused:
        importer.import_services(isp, "\n".join(lines) + "\n")
    assert [e.line for e in refused.value.errors] == [3]
    assert f"[rule: {rule}]" in refused.value.errors[0].error
    assert refused.value.rule == "import.rows_invalid"
    assert count(isp.session, Service) == before  # not even the good row


def test_wrong_number_of_cells_is_a_bad_line(isp: Context) -> None:
    """A row with more or fewer cells than the header is reported with its line."""
    content = csv_text(row("a"), row("b") + ",extra", "x,y")
    with pytest.raises(importer.ImportRefused) as refused:
        importer.import_services(isp, content)
    assert [e.line for e in refused.value.errors] == [3, 4]
    assert all("[rule: import.columns]" in e.error for e in refused.value.errors)


def test_all_bad_lines_reported_and_all_or_nothing(isp: Context) -> None:
    """Every bad line is reported (not just the first), one entry per line, and nothing is written."""
    content = csv_text(row("ok1"), row("bad 1"), row("ok2"), row("bad2", plan="NOPE", mac="zz"),
                       "", row("bad3", status="???"))
    customers_before = count(isp.session, Customer)
    with pytest.raises(importer.ImportRefused) as refused:
        importer.import_services(isp, content)
    errors = refused.value.errors
    assert [e.line for e in errors] == [3, 5, 7]  # the blank line 6 is skipped but counted
    assert "plan.not_found" in errors[1].error and "service.mac_invalid" in errors[1].error
    assert count(isp.session, Service) == 0
    assert count(isp.session, Customer) == customers_before


def test_skip_errors_imports_the_good_rows(isp: Context) -> None:
    """With skip_errors the good rows are imported and the bad ones are returned by line."""
    content = csv_text(row("ok1"), row("bad 1"), row("ok2"), row("bad2", plan="NOPE"))
    result = importer.import_services(isp, content, skip_errors=True)
    assert (result.imported, result.customers_created) == (2, 2)
    assert [e.line for e in result.errors] == [3, 5]
    assert "[rule: service.login_invalid]" in result.errors[0].error
    assert sorted(isp.session.scalars(select(Service.login))) == ["ok1", "ok2"]


def test_duplicates_within_the_file(isp: Context) -> None:
    """A login or fixed IP repeated in the file is refused on its second line, naming the first.

    Cancelled rows keep their login and addresses for the record only, as in the schema, so
    they may repeat a live row's login.
    """
    content = csv_text(row("dup", ip="203.0.113.1"), row("other", ip="203.0.113.1"),
                       row("dup"), row("dup", status="Cancelado"))
    with pytest.raises(importer.ImportRefused) as refused:
        importer.import_services(isp, content)
    assert [(e.line, e.error.split(" [")[0]) for e in refused.value.errors] == [
        (3, "203.0.113.1 is already on line 2"), (4, "login dup is already on line 2")]
    result = importer.import_services(isp, content, skip_errors=True)
    assert result.imported == 2
    statuses = sorted(isp.session.scalars(select(Service.status).where(Service.login == "dup")))
    assert statuses == ["cancelled", "enabled"]


def test_skipped_row_does_not_reserve_its_login(isp: Context) -> None:
    """A bad row's login is free for a later good row (only accepted rows take logins)."""
    content = csv_text(row("same", plan="NOPE"), row("same"))
    result = importer.import_services(isp, content, skip_errors=True)
    assert result.imported == 1 and [e.line for e in result.errors] == [2]


@pytest.mark.parametrize(("label", "status"), [
    ("Habilitado", "enabled"),
    ("Serviço Habilitado", "enabled"),
    ("Suspenso por Débito", "suspended_debt"),
    ("SUSPENSO POR DEBITO", "suspended_debt"),
    ("suspenso parcialmente", "suspended_partial"),
    ("Suspenso a Pedido do Cliente", "suspended_request"),
    ("Cancelado", "cancelled"),
    ("Aguardando Instalação", "awaiting_install"),
    ("aguardando instalacao", "awaiting_install"),
    ("suspended_debt", "suspended_debt"),
    ("Awaiting Install", "awaiting_install"),
])
def test_portuguese_status_labels(isp: Context, label: str, status: str) -> None:
    """HubSoft's labels (any case, with or without accents) and our codes map to our codes."""
    importer.import_services(isp, csv_text(row("x", status=label)))
    assert isp.session.scalar(select(Service.status).where(Service.login == "x")) == status


def test_semicolon_delimiter_and_bom(isp: Context) -> None:
    """A `;` file from a Brazilian spreadsheet, UTF-8 with BOM and CRLF, with Portuguese headers."""
    document = cpf()
    content = ("\ufeffCPF/CNPJ;Nome;Usuário;Senha;Plano;Status;MAC;IP Fixo;Cidade;UF\r\n"
               f"{document};José Araújo, Filho;jose;pw;FIBRA-100;Habilitado;;203.0.113.2;"
               "São Paulo;SP\r\n")
    result = importer.import_services(isp, content.encode("utf-8"))
    assert result.imported == 1
    customer = customers.get_customer(isp.session, document)
    assert (customer.name, customer.city) == ("José Araújo, Filho", "São Paulo")


def test_file_level_refusals(isp: Context) -> None:
    """Empty file, unknown or missing columns and a non-UTF-8 file are refused before any row."""
    cases: list[tuple[bytes | str, str]] = [
        ("", "import.header_missing"),
        ("document,name,login,password,plan\n", "import.header_invalid"),
        (HEADER + ",bairro\n", "import.header_invalid"),
        ("document,name,login,login,password,plan,status\n", "import.header_invalid"),
        ((HEADER + "\n" + row("a", name="José")).encode("latin-1"), "import.encoding"),
    ]
    for content, rule in cases:
        with pytest.raises(RuleViolation) as refused:
            importer.import_services(isp, content)
        assert refused.value.rule == rule, content


def test_history_and_change_feed_rows(isp: Context) -> None:
    """One history row per created customer and service (action import) and one feed row per service."""
    known = factories.customer(isp)
    history_before = count(isp.session, HistoryEntry)
    feed_before = count(isp.session, ChangeFeedEntry)
    document = cpf()
    content = csv_text(row("h1", document=known.document), row("h2", document=document),
                       row("h3", document=document, status="Cancelado"))
    importer.import_services(isp, content, source="legacy.csv")
    session = isp.session
    ids = {s.login: s.id for s in session.scalars(select(Service).where(Service.login.like("h%")))}
    entries = list(session.scalars(select(HistoryEntry).where(HistoryEntry.action == "import")
                                   .order_by(HistoryEntry.id)))
    assert count(session, HistoryEntry) == history_before + 4
    assert [(e.object_type, e.operator_login) for e in entries] == [
        ("customer", "admin"), ("service", "admin"), ("service", "admin"), ("service", "admin")]
    service_entry = next(e for e in entries if e.object_id == str(ids["h1"]))
    assert service_entry.customer_id == known.id
    assert service_entry.note == "imported from legacy.csv line 2"
    assert json.loads(service_entry.changes)["login"] == [None, "h1"]
    assert "password" not in json.loads(service_entry.changes)
    customer_entry = entries[0]
    assert customer_entry.customer_id == int(customer_entry.object_id)
    assert json.loads(customer_entry.changes)["origin"] == [None, "import"]
    feed = list(session.scalars(select(ChangeFeedEntry).order_by(ChangeFeedEntry.seq)))
    assert len(feed) == feed_before + 3
    assert [(f.object_type, f.object_id) for f in feed[-3:]] == [
        ("service", str(ids[login])) for login in ("h1", "h2", "h3")]


def test_permissions(isp: Context) -> None:
    """services.create is required; creating customers also needs customers.edit."""
    operators.create_operator(isp, "clerk", "Clerk", permissions=["customers.edit"])
    operators.create_operator(isp, "seller", "Seller", permissions=["services.create"])
    known = factories.customer(isp)
    clerk = Context(session=isp.session, actor=load_actor(isp.session, "clerk"), now=NOW, zone=ZONE)
    seller = Context(session=isp.session, actor=load_actor(isp.session, "seller"), now=NOW, zone=ZONE)
    with pytest.raises(PermissionDenied) as denied:
        importer.import_services(clerk, csv_text(row("p1", document=known.document)))
    assert denied.value.permission == "services.create"
    with pytest.raises(PermissionDenied) as denied:
        importer.import_services(seller, csv_text(row("p2")))
    assert denied.value.permission == "customers.edit"
    assert importer.import_services(seller, csv_text(row("p3", document=known.document))).imported == 1


def test_ten_thousand_rows(ctx: Context) -> None:
    """10,000 rows import in one call (timing is measured by benchmarks/import_bench.py)."""
    if ctx.session.get_bind().dialect.name != "sqlite":
        pytest.skip("the bulk-size run is for SQLite; the rules run on both databases")
    factories.plan(ctx)
    network.create_subnet(ctx, "10.20.0.0/16", folder="bulk")
    rows = [row(f"bulk{i}", document=cpf(200_000_000 + i), mac=f"4c5e0c{i:06x}",
                ip=f"10.20.{i // 250}.{i % 250 + 1}" if i % 10 == 0 else "")
            for i in range(10_000)]
    result = importer.import_services(ctx, csv_text(*rows))
    assert (result.imported, result.customers_created, result.errors) == (10_000, 10_000, [])
    assert count(ctx.session, Service, Service.login.like("bulk%")) == 10_000
    assert count(ctx.session, ChangeFeedEntry, ChangeFeedEntry.object_type == "service") >= 10_000


# --- the command end to end ------------------------------------------------------------


def setup_cli(cli: Cli) -> None:
    for args in (["plan", "add", "FIBRA-100", "--download", "100000", "--upload", "50000"],
                 ["subnet", "add", "203.0.113.0/29", "--folder", "fixos"]):
        assert cli(*args).code == 0


def write(path: Path, content: str, bom: bool = False) -> str:
    path.write_bytes(("\ufeff" if bom else "").encode() + content.encode("utf-8"))
    return str(path)


def test_cli_happy_path_json(cli: Cli, tmp_path: Path) -> None:
    """`--format json` prints {imported, customers_created, errors}; services are listed after."""
    setup_cli(cli)
    content = ("documento;nome;login;senha;plano;status;mac;ip\n"
               f"{cpf()};Ana Lima;ana;pw;FIBRA-100;Suspenso por Débito;aabb.ccdd.eeff;203.0.113.3\n"
               f"{cnpj()};Loja SA;loja;pw;FIBRA-100;Habilitado;;\n")
    result = cli("import", "services", write(tmp_path / "in.csv", content, bom=True),
                 "--format", "json")
    assert result.code == 0, result.err
    assert result.json == {"imported": 2, "customers_created": 2, "errors": []}
    listing = {s["login"]: s for s in cli("service", "list", "--format", "json").json}
    assert listing["ana"]["status"] == "suspended_debt" and listing["ana"]["mac"] == "AA:BB:CC:DD:EE:FF"
    assert listing["ana"]["ipv4"] == "203.0.113.3" and listing["loja"]["status"] == "enabled"
    history = cli("history", "ana", "--format", "json").json
    assert [(h["action"], h["operator"]) for h in history] == [("import", "admin")]


def test_cli_all_or_nothing_then_skip_errors(cli: Cli, tmp_path: Path) -> None:
    """Exit 1 with one stderr line per bad row plus a summary and nothing written; then --skip-errors."""
    setup_cli(cli)
    path = write(tmp_path / "in.csv", csv_text(row("ok"), row("bad 1"), row("bad2", plan="NOPE")))
    refused = cli("import", "services", path)
    assert refused.code == 1 and refused.out == ""
    lines = refused.err.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("aaa: line 3: ") and "service.login_invalid" in lines[0]
    assert lines[1].startswith("aaa: line 4: ") and "plan.not_found" in lines[1]
    assert "2 bad line(s) of 3" in lines[2] and "import.rows_invalid" in lines[2]
    assert cli("service", "list", "--format", "json").json == []
    assert cli("customer", "list", "--format", "json").json == []
    skipped = cli("--format", "json", "import", "services", path, "--skip-errors")
    assert skipped.code == 0
    body = skipped.json
    assert (body["imported"], body["customers_created"]) == (1, 1)
    assert [e["line"] for e in body["errors"]] == [3, 4]
    assert "plan.not_found" in body["errors"][1]["error"]
    assert len(skipped.err.strip().splitlines()) == 2
    table = cli("import", "services", write(tmp_path / "b.csv", csv_text(row("ok3"))))
    assert table.code == 0 and "imported" in table.out and "customers_created" in table.out


def test_cli_permission_refused(cli: Cli, tmp_path: Path) -> None:
    """An operator without services.create is refused with exit 1 and nothing is written."""
    setup_cli(cli)
    added = cli("operator", "add", "clerk", "--name", "Clerk", "--permission", "customers.edit")
    assert added.code == 0, added.err
    result = cli("--as", "clerk", "import", "services", write(tmp_path / "in.csv", csv_text(row("a"))))
    assert result.code == 1
    assert "services.create" in result.err and len(result.err.strip().splitlines()) == 1
    engine = create_engine(cli.url)  # type: ignore[attr-defined]
    try:
        with Session(engine) as session:
            assert count(session, Service) == 0
    finally:
        engine.dispose()


def test_cli_usage_errors(cli: Cli, tmp_path: Path) -> None:
    """A missing file is a usage error (exit 2); a non-UTF-8 file is refused (exit 1)."""
    setup_cli(cli)
    assert cli("import", "services", str(tmp_path / "missing.csv")).code == 2
    latin = tmp_path / "latin.csv"
    latin.write_bytes(csv_text(row("a", name="João")).encode("latin-1"))
    result = cli("import", "services", str(latin))
    assert result.code == 1 and "import.encoding" in result.err and "line 2" in result.err
