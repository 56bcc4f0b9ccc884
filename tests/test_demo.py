"""`aaa demo`: the deterministic demo ISP, installed once, through the management functions."""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from aaa.db.enums import ServiceStatus
from aaa.db.models import ChangeFeedEntry, HistoryEntry, Service
from management.validation import normalize_document
from tests.conftest import CliResult, Database

Cli = Callable[..., CliResult]
TIMESTAMPS = {"created_at", "updated_at", "navigation_until", "trust_unlock_until"}
_empty_databases = itertools.count()


def install(cli: Cli) -> dict[str, Any]:
    result = cli("demo", "--format", "json")
    assert result.code == 0, result.err
    body: dict[str, Any] = result.json
    return body


def listing(cli: Cli, *args: str) -> list[dict[str, Any]]:
    result = cli(*args, "--format", "json")
    assert result.code == 0, result.err
    rows: list[dict[str, Any]] = result.json
    return rows


def without_timestamps(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k not in TIMESTAMPS} for row in rows]


def test_every_status_and_the_advertised_counts(cli: Cli) -> None:
    """The demo has ~50 customers, two NAS and services in every status; its report agrees."""
    body = install(cli)
    assert body["created"] is True
    services = listing(cli, "service", "list")
    by_status = {s.value: 0 for s in ServiceStatus}
    for service in services:
        by_status[service["status"]] += 1
    assert all(by_status.values()), by_status  # every status present
    assert body["services_by_status"] == by_status and body["services"] == len(services)
    customers = listing(cli, "customer", "list")
    assert len(customers) == body["customers"] == 50
    assert {c["person_type"] for c in customers} == {"PF", "PJ"}
    for customer in customers:  # valid generated CPFs/CNPJs
        assert normalize_document(customer["document"])[0] == customer["document"]
    nas = {n["name"]: n for n in listing(cli, "nas", "list")}
    assert {(n["ip"], n["vendor"]) for n in nas.values()} == {
        ("127.0.0.1", "mikrotik"), ("127.0.0.2", "huawei")}
    plans = {p["name"]: p for p in listing(cli, "plan", "list")}
    assert plans["FIBRA-100M"]["download_kbps"] == 100_000 and plans["FIBRA-100M"]["upload_kbps"] == 50_000
    assert [name for name, p in plans.items() if p["allows_association"]] == ["IP-FIXO"]
    values = {v["key"]: v["value"] for v in listing(cli, "var", "list")}
    assert {"POOL_SUSPENSAO_TOTAL", "POOL_SUSPENSAO_PARCIALMENTE",
            "ALARME_QUANTIDADE_CONEXOES_LIMITE_PERIODO", "ALARME_QUANTIDADE_CONEXOES_PERIODO_DIAS",
            "ALARME_CONEXAO_DIAS_EXPIRACAO"} <= set(values)
    logins = {s["login"]: s for s in services}
    for demo_login in body["logins"]:  # the advertised logins exist with the advertised status
        assert logins[demo_login["login"]]["status"] == demo_login["status"]
        assert demo_login["password"] == "demo123"
    assert logins["demo.enabled"]["status"] == "enabled"
    assert "radclient" in body["try"] and "127.0.0.1" in body["try"] and "testing123" in body["try"]


def test_fixed_ips_association_navigation_and_mac_bindings(cli: Cli) -> None:
    """Fixed IPs lie inside the registered subnet; an association, a navigation, MAC bindings."""
    install(cli)
    subnets = listing(cli, "subnet", "list")
    networks = [ipaddress.ip_network(s["cidr"]) for s in subnets]
    services = {s["login"]: s for s in listing(cli, "service", "list")}
    fixed = [s["ipv4"] for s in services.values() if s["ipv4"]]
    assert len(fixed) >= 3
    assert len(set(fixed)) == len(fixed)
    for address in fixed:
        assert any(ipaddress.ip_address(address) in network for network in networks), address
    ipfixo = services["demo.ipfixo"]
    assert ipfixo["plan"] == "IP-FIXO" and ipfixo["ipv4"] and ipfixo["associated_login"] == "demo.empresa"
    assert services["demo.empresa"]["plan"] != "IP-FIXO"
    navigation = services["demo.navigation"]
    assert (navigation["navigation_download_kbps"], navigation["navigation_upload_kbps"]) == (
        200_000, 100_000)
    assert datetime.fromisoformat(navigation["navigation_until"]) > datetime.now(UTC)
    bindings = {s["mac_binding"] for s in services.values()}
    assert {"learn", "enforce"} <= bindings
    assert services["demo.mac"]["mac"] == "4C:5E:0C:11:22:33"
    assert services["demo.mac"]["mac_binding"] == "enforce"
    assert services["demo.huawei"]["interface"] and services["demo.huawei"]["nas"] == "BRAS-HUAWEI"
    pending = [s for s in services.values() if s["status"] == "awaiting_migration"]
    assert [s["login"] for s in pending] == [f"demo.migration#migration-{services['demo.migration']['id']}"]


def test_written_through_the_management_functions(cli: Cli) -> None:
    """Every demo service has history naming the admin, and a change-feed row when it can log in.

    (A deferred migration's new service waits with a provisional login that cannot
    authenticate; management.services.migrate publishes it only when it completes.)
    """
    install(cli)
    history = listing(cli, "history", "demo.debt")
    assert [(h["action"], h["operator"]) for h in history] == [
        ("create", "admin"), ("status:suspended_debt", "admin")]
    engine = create_engine(cli.url)  # type: ignore[attr-defined]
    try:
        with Session(engine) as session:
            ids = set(session.scalars(select(Service.id)))
            can_log_in = set(session.scalars(select(Service.id).where(
                Service.status != ServiceStatus.AWAITING_MIGRATION.value)))
            fed = set(session.scalars(select(ChangeFeedEntry.object_id)
                                      .where(ChangeFeedEntry.object_type == "service")))
            assert {str(i) for i in can_log_in} <= fed
            histories = set(session.scalars(select(HistoryEntry.object_id)
                                            .where(HistoryEntry.object_type == "service")))
            assert {str(i) for i in ids} <= histories
    finally:
        engine.dispose()


def test_idempotent(cli: Cli) -> None:
    """A second `aaa demo` says the data is there, exits 0 and changes nothing."""
    install(cli)
    services = listing(cli, "service", "list")
    engine = create_engine(cli.url)  # type: ignore[attr-defined]
    try:
        with Session(engine) as session:
            history_rows = session.scalar(select(func.count()).select_from(HistoryEntry))
        again = cli("demo")
        assert again.code == 0, again.err
        assert "already installed" in again.out and "nothing changed" in again.out
        assert install(cli)["created"] is False
        with Session(engine) as session:
            assert session.scalar(select(func.count()).select_from(HistoryEntry)) == history_rows
    finally:
        engine.dispose()
    assert listing(cli, "service", "list") == services


def test_deterministic_across_databases(cli: Cli, template_db: Database,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two installs on two fresh databases give the same services and customers (timestamps aside)."""
    install(cli)
    first = (listing(cli, "service", "list"), listing(cli, "customer", "list"))
    monkeypatch.setenv("AAA_DATABASE_URL", template_db.make_copy())
    install(cli)
    second = (listing(cli, "service", "list"), listing(cli, "customer", "list"))
    assert without_timestamps(first[0]) == without_timestamps(second[0])
    assert without_timestamps(first[1]) == without_timestamps(second[1])


@pytest.fixture
def empty_db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A database that does not exist yet (SQLite) or has no tables (PostgreSQL)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'new' / 'aaa.sqlite3'}"
    cluster = request.getfixturevalue("pg_cluster")
    name = f"demo_empty{next(_empty_databases)}"
    admin = create_engine(cluster.url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {name}"))
    finally:
        admin.dispose()
    return str(cluster.url(name))


def test_creates_and_migrates_the_database(cli: Cli, empty_db_url: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """On an empty database the demo migrates it, creates the admin (password shown once)."""
    monkeypatch.setenv("AAA_DATABASE_URL", empty_db_url)
    monkeypatch.delenv("AAA_ADMIN_PASSWORD", raising=False)
    result = cli("demo")
    assert result.code == 0, result.err
    assert "demo data installed" in result.out and "initial operator: admin / " in result.out
    assert "radclient -x 127.0.0.1 auth testing123" in result.out
    assert len(listing(cli, "service", "list")) > 50
    assert "admin_password" not in install(cli)  # shown once only
