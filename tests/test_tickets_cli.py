"""`aaa ticket ...` and `aaa order ...` end to end on both databases: output formats,
exit codes, who may do what."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable

from tests.conftest import CliResult

Cli = Callable[..., CliResult]


def ok(result: CliResult) -> CliResult:
    assert result.code == 0, result.err
    return result


def setup(cli: Cli) -> None:
    for args in (
        ["plan", "add", "FIBRA-100", "--download", "100000", "--upload", "50000", "--price", "99.90"],
        ["customer", "add", "--name", "Ana", "--document", "529.982.247-25"],
        ["service", "add", "--customer", "52998224725", "--plan", "FIBRA-100", "--login", "ana",
         "--password", "pw"],
        ["ticket", "type", "add", "Técnico"],
        ["operator", "add", "joana", "--name", "Joana", "--permission", "tickets.open"],
        ["operator", "add", "pedro", "--name", "Pedro", "--permission", "tickets.open",
         "--permission", "orders.open"],
    ):
        ok(cli(*args))


def open_ticket(cli: Cli) -> str:
    return ok(cli("ticket", "open", "--login", "ana", "--type", "Técnico", "--description", "x")).out.strip()


def test_open_prints_the_protocol_and_json_the_ticket(cli: Cli) -> None:
    setup(cli)
    plain = ok(cli("ticket", "open", "--login", "ana", "--type", "Técnico", "--description", "sem sinal"))
    protocol = plain.out.strip()
    assert re.fullmatch(r"\d{8}\d{6}", protocol), plain.out
    created = ok(cli("--format", "json", "ticket", "open", "--login", "ana", "--type", "SAC",
                     "--description", "boleto", "--status", "pending")).json
    assert created["protocol"] == protocol[:8] + "000002"
    assert (created["status"], created["type"], created["opened_by"], created["origin"]) == (
        "pending", "SAC", "admin", "operator")
    draft = ok(cli("ticket", "open", "--login", "ana", "--format", "json")).json
    assert draft["status"] == "draft" and draft["protocol"].endswith("000003")
    completed = ok(cli("--format", "json", "ticket", "edit", draft["protocol"], "--type", "Técnico",
                       "--description", "completo")).json
    assert (completed["protocol"], completed["status"]) == (draft["protocol"], "awaiting_analysis")


def test_list_filters_and_show(cli: Cli) -> None:
    setup(cli)
    ok(cli("ticket", "open", "--login", "ana", "--type", "Técnico", "--description", "a"))
    ok(cli("--as", "joana", "ticket", "open", "--login", "ana", "--type", "SAC", "--description", "b",
           "--status", "pending"))
    every = ok(cli("--format", "json", "ticket", "list")).json
    assert len(every) == 2 and every[0]["opened_by"] == "joana"  # newest first
    assert [t["type"] for t in ok(cli("ticket", "list", "--type", "SAC", "--format", "json")).json] == ["SAC"]
    assert ok(cli("ticket", "list", "--operator", "sac", "--format", "json")).json == []
    assert len(ok(cli("ticket", "list", "--origin", "operator", "--status", "pending",
                      "--format", "json")).json) == 1
    assert ok(cli("ticket", "list", "--since", "2000-01-01", "--until", "2000-12-31",
                  "--format", "json")).json == []
    rows = list(csv.DictReader(io.StringIO(ok(cli("--format", "csv", "ticket", "list")).out)))
    assert {r["login"] for r in rows} == {"ana"} and len(rows) == 2
    assert "(none)" in ok(cli("ticket", "list", "--status", "finished")).out
    shown = ok(cli("--format", "json", "ticket", "show", every[0]["protocol"])).json
    assert shown["messages"] == [] and shown["diagnostics"]["service"]["login"] == "ana"
    bad = cli("ticket", "list", "--status", "closed")
    assert bad.code == 2
    missing = cli("ticket", "show", "19990101000001")
    assert missing.code == 1 and "ticket.not_found" in missing.err


def test_messages_finish_and_permissions(cli: Cli) -> None:
    setup(cli)
    protocol = open_ticket(cli)
    message = ok(cli("--as", "joana", "--format", "json", "ticket", "message", "add", protocol,
                     "--text", "liguei")).json
    assert message["author"] == "joana"
    refused = cli("--as", "pedro", "ticket", "message", "edit", str(message["id"]), "--text", "mudei")
    assert refused.code == 1 and "ticket_message.not_author" in refused.err
    assert len(refused.err.strip().splitlines()) == 1
    edited = ok(cli("--as", "joana", "--format", "json", "ticket", "message", "edit", str(message["id"]),
                    "--text", "liguei 2x")).json
    assert edited["body"] == "liguei 2x" and edited["edited_at"]
    listed = ok(cli("--format", "json", "ticket", "message", "list", protocol)).json
    assert [m["body"] for m in listed] == ["liguei 2x"]
    history = ok(cli("--format", "json", "history", "--operator", "joana")).json
    assert {h["action"] for h in history if h["object_type"] == "ticket_message"} == {"create", "edit"}
    ok(cli("--as", "joana", "ticket", "message", "delete", str(message["id"])))
    assert ok(cli("--format", "json", "ticket", "message", "list", protocol)).json == []

    denied = cli("--as", "joana", "ticket", "finish", protocol, "--description", "feito")
    assert denied.code == 1 and "tickets.finish" in denied.err
    usage = cli("ticket", "finish", protocol)
    assert usage.code == 2
    done = ok(cli("--format", "json", "ticket", "finish", protocol, "--description", "feito")).json
    assert (done["status"], done["closing_description"], done["finished_by"]) == (
        "finished", "feito", "admin")
    again = cli("ticket", "finish", protocol, "--description", "de novo")
    assert again.code == 1 and "ticket.finished" in again.err


def test_types_orders_and_reasons(cli: Cli) -> None:
    setup(cli)
    types = ok(cli("--format", "json", "ticket", "type", "list")).json
    assert {t["name"]: t["builtin"] for t in types} == {"SAC": True, "Técnico": False}
    assert cli("--as", "joana", "ticket", "type", "add", "Outro").code == 1
    for name in ("Fonte roteador queimada", "Cabo rompido"):
        ok(cli("order", "reason", "add", name))
    reasons = ok(cli("--format", "json", "order", "reason", "list")).json
    assert [r["name"] for r in reasons] == ["Cabo rompido", "Fonte roteador queimada"]
    protocol = open_ticket(cli)
    order = ok(cli("--as", "pedro", "--format", "json", "order", "open", "--ticket", protocol,
                   "--kind", "Cliente não conecta", "--description", "visitar", "--technician", "Zé")).json
    assert (order["ticket"], order["status"], order["opened_by"]) == (protocol, "open", "pedro")
    assert ok(cli("--format", "json", "ticket", "show", protocol)).json["status"] == "pending"
    no_reason = cli("order", "close", str(order["id"]))
    assert no_reason.code == 2
    unknown = cli("order", "close", str(order["id"]), "--reason", "Nope")
    assert unknown.code == 1 and "closing_reason.not_found" in unknown.err
    closed = ok(cli("--format", "json", "order", "close", str(order["id"]), "--reason", "Cabo rompido",
                    "--description", "emenda feita")).json
    assert (closed["status"], closed["closing_reason"]) == ("closed", "Cabo rompido")
    by_reason = ok(cli("--format", "json", "order", "list", "--reason", "Cabo rompido")).json
    assert [o["id"] for o in by_reason] == [order["id"]]
    assert ok(cli("--format", "json", "order", "list", "--reason", "Fonte roteador queimada")).json == []
    assert ok(cli("--format", "json", "order", "show", str(order["id"]))).json["closing_description"] == (
        "emenda feita")
