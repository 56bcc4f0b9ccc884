"""OLTs and PON ports: vendor defaults, encrypted passwords, client limits, interfaces from ports."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import pytest
from sqlalchemy import select

from aaa.config import SecretsConfig
from aaa.db.models import ChangeFeedEntry, HistoryEntry, Service
from aaa.db.models_inventory import Olt
from management import inventory, network, services
from management.context import Context
from management.equipment_passwords import current_key
from management.errors import RuleViolation
from tests import factories
from tests.conftest import CliResult

Cli = Callable[..., CliResult]
KEY = base64.b64encode(bytes(range(32))).decode()
SECRETS = SecretsConfig(key=KEY)


def _isp(ctx: Context) -> None:
    factories.plan(ctx)
    network.create_nas(ctx, "mk1", "10.0.0.1", "s3cret", "mikrotik")
    network.create_nas(ctx, "mk2", "10.0.0.2", "s3cret", "mikrotik")
    inventory.create_olt(ctx, "OLT-CENTRO", "10.9.0.1", "huawei", "ma5800")


def _port(ctx: Context, name: str = "PON-0/1/1", pon: int = 1, **kw: object) -> None:
    kw.setdefault("routing_nas", "mk1")
    kw.setdefault("routing_interface", "vlan101")
    inventory.create_port(ctx, "OLT-CENTRO", name, slot=1, pon=pon, **kw)  # type: ignore[arg-type]


def test_olt_vendor_defaults_and_known_models(ctx: Context) -> None:
    """Telnet 23 or SSH 22 by vendor; models come from the known list; duplicates refused."""
    huawei = inventory.create_olt(ctx, "H", "10.9.1.1", "Huawei", "MA5600")
    zte = inventory.create_olt(ctx, "Z", "10.9.1.2", "zte", "c300")
    parks = inventory.create_olt(ctx, "P", "10.9.1.3", "parks", "fiberlink", protocol="telnet")
    assert (huawei.protocol, huawei.port) == ("telnet", 23)
    assert (zte.protocol, zte.port, zte.model) == ("ssh", 22, "C300")
    assert (parks.protocol, parks.port) == ("telnet", 23)
    for args, rule in ((("X", "10.9.1.9", "acme", "1"), "olt.vendor_invalid"),
                       (("X", "10.9.1.9", "zte", "C999"), "olt.model_invalid"),
                       (("H", "10.9.1.9", "zte", "C300"), "olt.name_duplicate"),
                       (("X", "10.9.1.1", "zte", "C300"), "olt.ip_duplicate")):
        with pytest.raises(RuleViolation) as refused:
            inventory.create_olt(ctx, *args)
        assert refused.value.rule == rule
    edited = inventory.edit_olt(ctx, "Z", protocol="telnet")
    assert (edited.protocol, edited.port) == ("telnet", 23)


def test_olt_password_is_stored_encrypted(ctx: Context) -> None:
    """The management password is never stored nor written to history in clear; viewing it is history."""
    olt = inventory.create_olt(ctx, "E", "10.9.2.1", "bdcom", "GP3600", username="adm",
                               password="olt-pass-123", config=SECRETS)
    ctx.session.flush()
    stored = ctx.session.scalar(select(Olt.password_encrypted).where(Olt.id == olt.id))
    assert stored and "olt-pass-123" not in stored and olt.password_key_id
    assert inventory.reveal_password(ctx, SECRETS, "E") == "olt-pass-123"
    rows = ctx.session.scalars(select(HistoryEntry).where(HistoryEntry.object_type == "olt")).all()
    assert [r.action for r in rows] == ["create", "view_password"]
    assert all("olt-pass-123" not in r.changes for r in rows)
    other = SecretsConfig(key=base64.b64encode(bytes(32)).decode())
    assert inventory.rekey_olt_passwords(ctx, SECRETS, current_key(other)) == 1
    assert inventory.reveal_password(ctx, other, "10.9.2.1") == "olt-pass-123"


def test_port_rules(ctx: Context) -> None:
    """Positions and names are unique per OLT; VLAN range; verification needs a signal limit."""
    _isp(ctx)
    _port(ctx, max_clients=64, allow_verification=True, signal_limit_dbm="-27")
    for kw, rule in (({"name": "PON-0/1/1", "pon": 9}, "port.duplicate"),
                     ({"name": "B", "pon": 1}, "port.duplicate"),
                     ({"name": "C", "pon": 2, "default_vlan": 5000}, "port.default_vlan_invalid"),
                     ({"name": "D", "pon": 3, "allow_verification": True}, "port.signal_limit_required")):
        with pytest.raises(RuleViolation) as refused:
            _port(ctx, **kw)  # type: ignore[arg-type]
        assert refused.value.rule == rule
    port = inventory.get_port(ctx.session, "OLT-CENTRO", "0/1/1")
    assert port.name == "PON-0/1/1" and str(port.signal_limit_dbm) == "-27.00"


def test_over_utilization_blocked_or_warned(ctx: Context) -> None:
    """A full port that blocks over-utilization refuses a new service; one that does not warns."""
    _isp(ctx)
    _port(ctx, "BLOCK", pon=1, max_clients=1, block_over_utilization=True)
    _port(ctx, "WARN", pon=2, max_clients=1)
    for login in ("a", "b", "c", "d"):
        factories.service(ctx, login)
    assert inventory.attach_port(ctx, "a", "OLT-CENTRO", "BLOCK").warnings == []
    with pytest.raises(RuleViolation) as refused:
        inventory.attach_port(ctx, "b", "OLT-CENTRO", "BLOCK")
    assert refused.value.rule == "port.over_utilization" and "1 of 1" in refused.value.message
    assert services.find_service(ctx.session, "b").pon_port_id is None
    assert inventory.attach_port(ctx, "a", "OLT-CENTRO", "BLOCK").warnings == []  # already there
    assert inventory.attach_port(ctx, "c", "OLT-CENTRO", "WARN").warnings == []
    result = inventory.attach_port(ctx, "d", "OLT-CENTRO", "WARN")
    assert result.clients == 2 and "over its maximum" in result.warnings[0]
    # a cancelled service frees its place
    services.change_status(ctx, "a", "cancelled")
    assert inventory.attach_port(ctx, "b", "OLT-CENTRO", "BLOCK").warnings == []
    report = {r["port"]: r for r in inventory.ports_report(ctx.session)}
    assert (report["WARN"]["clients"], report["WARN"]["occupancy"], report["WARN"]["over_utilized"]) \
        == (2, "2/1", True)
    assert report["BLOCK"]["occupancy_percent"] == 100.0


def test_interface_taken_from_the_port(ctx: Context) -> None:
    """Attaching takes the port's routing NAS and interface (history + change feed); a change of
    the port's routing moves the services that follow it, not those with their own interface."""
    _isp(ctx)
    _port(ctx)
    factories.service(ctx, "ana")
    factories.service(ctx, "own")
    seq = ctx.session.scalar(select(ChangeFeedEntry.seq).order_by(ChangeFeedEntry.seq.desc()).limit(1))
    inventory.attach_port(ctx, "ana", "OLT-CENTRO", "PON-0/1/1")
    inventory.attach_port(ctx, "own", "OLT-CENTRO", "PON-0/1/1", use_port_interface=False)
    ana = services.find_service(ctx.session, "ana")
    assert (ana.interface, ana.nas.name if ana.nas else None) == ("vlan101", "mk1")
    assert services.find_service(ctx.session, "own").interface is None
    feed = ctx.session.scalars(select(ChangeFeedEntry.object_id).where(ChangeFeedEntry.seq > seq)).all()
    assert feed == [str(ana.id)]
    entry = ctx.session.scalar(select(HistoryEntry).where(HistoryEntry.action == "attach_port",
                                                          HistoryEntry.object_id == str(ana.id)))
    assert entry is not None and entry.customer_id == ana.customer_id
    assert json.loads(entry.changes)["interface"] == [None, "vlan101"]
    _, moved = inventory.edit_port(ctx, "OLT-CENTRO", "PON-0/1/1", routing_nas="mk2",
                                   routing_interface="vlan202")
    assert [s.login for s in moved] == ["ana"]
    assert (ana.interface, ana.nas_id) == ("vlan202", network.get_nas(ctx.session, "mk2").id)
    inventory.detach_port(ctx, "ana")
    assert ana.pon_port_id is None and ana.interface == "vlan202"


def test_migration_keeps_the_port(ctx: Context) -> None:
    """A plan migration carries the port (and does not count the service twice)."""
    _isp(ctx)
    factories.plan(ctx, "FIBRA-200")
    _port(ctx, max_clients=1, block_over_utilization=True)
    factories.service(ctx, "ana")
    inventory.attach_port(ctx, "ana", "OLT-CENTRO", "PON-0/1/1")
    new = services.migrate(ctx, "ana", "FIBRA-200")
    assert new.pon_port_id is not None and new.interface == "vlan101"
    assert inventory.port_clients(ctx.session, new.pon_port_id) == 1
    assert ctx.session.scalar(select(Service.status).where(Service.id == new.migrated_from_id)) == "cancelled"


def test_cli_olt_ports_and_over_utilization(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """olt add|list|show, port add|list, attach-port: refusal exits 1, warning on stderr exits 0."""
    monkeypatch.setenv("AAA_SECRETS_KEY", KEY)
    for args in (["plan", "add", "FIBRA", "--download", "1000", "--upload", "1000"],
                 ["nas", "add", "mk1", "--ip", "10.0.0.1", "--secret", "s", "--vendor", "mikrotik"],
                 ["customer", "add", "--name", "Ana", "--document", factories.cpf(), "--city", "Recife"]):
        assert cli(*args).code == 0
    for login in ("a", "b", "c"):
        assert cli("service", "add", "--customer", "1", "--plan", "FIBRA", "--login", login,
                   "--password", "p").code == 0
    added = cli("olt", "add", "OLT1", "--ip", "10.9.0.1", "--vendor", "zte", "--model", "C300",
                "--user", "adm", "--password", "pw-olt", "--format", "json")
    assert added.code == 0, added.err
    assert added.json["port"] == 22 and added.json["has_password"] is True
    assert "pw-olt" not in added.out
    port = cli("olt", "port", "add", "OLT1", "P1", "--slot", "1", "--pon", "1", "--max-clients", "1",
               "--block-over-utilization", "--routing-nas", "mk1", "--routing-interface", "ve1",
               "--format", "json")
    assert port.code == 0, port.err
    assert port.json["block_over_utilization"] is True and port.json["max_clients"] == 1
    assert cli("olt", "port", "add", "OLT1", "P2", "--slot", "1", "--pon", "2",
               "--max-clients", "1").code == 0
    attached = cli("service", "attach-port", "a", "--olt", "OLT1", "--port", "P1", "--format", "json")
    assert attached.code == 0 and attached.json["interface"] == "ve1" and attached.err == ""
    refused = cli("service", "attach-port", "b", "--olt", "OLT1", "--port", "0/1/1")
    assert refused.code == 1 and "port.over_utilization" in refused.err
    assert refused.err.strip().count("\n") == 0
    assert cli("service", "attach-port", "b", "--olt", "OLT1", "--port", "P2").code == 0
    warned = cli("service", "attach-port", "c", "--olt", "OLT1", "--port", "P2", "--format", "json")
    assert warned.code == 0 and "warning" in warned.err and "over its maximum" in warned.err
    assert warned.json["clients"] == 2
    listing = cli("olt", "list", "--format", "json").json
    assert [o["name"] for o in listing] == ["OLT1"] and "password" not in listing[0]
    ports = cli("olt", "port", "list", "OLT1", "--format", "json").json
    assert [(p["name"], p["clients"]) for p in ports] == [("P1", 1), ("P2", 2)]
    shown = cli("olt", "show", "OLT1", "--show-password", "--format", "json")
    assert shown.code == 0, shown.err
    assert shown.json["password"] == "pw-olt" and len(shown.json["pon_ports"]) == 2
    report = cli("report", "ports", "--format", "json").json
    assert [(r["port"], r["occupancy"], r["full"]) for r in report] == [("P1", "1/1", True),
                                                                         ("P2", "2/1", True)]
    assert cli("report", "ports", "--format", "csv").out.startswith("olt,port,")
