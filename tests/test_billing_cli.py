"""`aaa billing`, `aaa routine`, `aaa service trust-unlock`, `aaa worker --once` end to end
(in-process, both databases): JSON shapes (§7: ids, money strings, ISO times), exit codes,
and time travel through `routine run --at` checked with `aaa explain --at`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from tests.conftest import CliResult

Cli = Callable[..., CliResult]


def ok(cli: Cli, *args: str) -> CliResult:
    result = cli(*args)
    assert result.code == 0, (args, result.err)
    return result


def setup(cli: Cli) -> None:
    for args in (
        ["plan", "add", "FIBRA-100", "--download", "100000", "--upload", "50000", "--pool", "pool-fibra"],
        ["nas", "add", "mk1", "--ip", "10.0.0.1", "--secret", "s3cret", "--vendor", "mikrotik"],
        ["nas", "add", "hw1", "--ip", "10.0.0.2", "--secret", "s3cret", "--vendor", "huawei"],
        ["var", "set", "POOL_SUSPENSAO_TOTAL", "bloqueados"],
        ["customer", "add", "--name", "Ana", "--document", "529.982.247-25"],
        ["service", "add", "--customer", "52998224725", "--plan", "FIBRA-100", "--login", "ana",
         "--password", "pw"],
    ):
        ok(cli, *args)


def test_method_commands(cli: Cli) -> None:
    """method add prints the method (partial/total allowed iff their days were given, money as
    a string); list is an array; show one object; assign ties it to a service."""
    setup(cli)
    body = ok(cli, "billing", "method", "add", "BOLETO", "--partial-after", "5", "--total-after",
              "15", "--min-amount", "10", "--reduction", "absolute", "--reduction-value", "2048",
              "--format", "json").json
    assert isinstance(body["id"], int)
    assert {k: body[k] for k in ("allows_partial", "partial_after_days", "allows_total",
                                 "total_after_days", "min_open_amount", "reduction_type",
                                 "reduction_value")} == {
        "allows_partial": True, "partial_after_days": 5, "allows_total": True,
        "total_after_days": 15, "min_open_amount": "10.00", "reduction_type": "absolute",
        "reduction_value": 2048}
    only_total = ok(cli, "billing", "method", "add", "PIX", "--total-after", "10", "--format",
                    "json").json
    assert (only_total["allows_partial"], only_total["allows_total"]) == (False, True)
    assert [m["name"] for m in ok(cli, "--format", "json", "billing", "method", "list").json] \
        == ["BOLETO", "PIX"]
    assert ok(cli, "billing", "method", "show", "PIX", "--format", "json").json["total_after_days"] == 10
    assigned = ok(cli, "billing", "method", "assign", "ana", "BOLETO", "--format", "json").json
    assert assigned["login"] == "ana" and assigned["payment_method"] == "BOLETO"
    dup = cli("billing", "method", "add", "PIX")
    assert dup.code == 1 and "billing.method_duplicate" in dup.err and dup.err.count("\n") == 1
    assert cli("billing", "method", "show", "NOPE").code == 1
    assert cli("billing", "method", "add", "X", "--reduction", "half").code == 2


def test_invoice_and_payment_commands(cli: Cli) -> None:
    """invoice add prints the invoice with its id; list filters by login and status; pay
    defaults to the open remainder; overpaying exits 1 and writes nothing; cancel."""
    setup(cli)
    ok(cli, "billing", "method", "add", "BOLETO", "--total-after", "15")
    first = ok(cli, "billing", "invoice", "add", "--login", "ana", "--due", "2026-01-10",
               "--amount", "99.90", "--format", "json").json
    assert isinstance(first["id"], int) and first["amount"] == "99.90" and first["status"] == "open"
    assert first["method"] is None and first["due_date"] == "2026-01-10"
    assert first["updated_at"].endswith("+00:00")
    second = ok(cli, "billing", "invoice", "add", "--login", "ana", "--due", "2026-02-10",
                "--amount", "99,90", "--method", "BOLETO", "--format", "json").json
    assert second["method"] == "BOLETO" and second["amount"] == "99.90"

    partial = ok(cli, "billing", "pay", str(first["id"]), "--amount", "40", "--format", "json").json
    assert (partial["status"], partial["amount_paid"], partial["open_amount"]) == (
        "partially_paid", "40.00", "59.90")
    assert partial["payment"]["amount"] == "40.00"
    over = cli("billing", "pay", str(first["id"]), "--amount", "59.91")
    assert over.code == 1 and "billing.overpayment" in over.err
    rest = ok(cli, "billing", "pay", str(first["id"]), "--format", "json").json
    assert (rest["status"], rest["payment"]["amount"], rest["open_amount"]) == ("paid", "59.90", "0.00")
    cancelled = ok(cli, "billing", "invoice", "cancel", str(second["id"]), "--format", "json").json
    assert cancelled["status"] == "cancelled"
    assert cli("billing", "invoice", "cancel", str(second["id"])).code == 1

    listing = ok(cli, "billing", "invoice", "list", "--login", "ana", "--format", "json").json
    assert [(i["id"], i["status"]) for i in listing] == [(first["id"], "paid"),
                                                         (second["id"], "cancelled")]
    assert [i["id"] for i in ok(cli, "billing", "invoice", "list", "--status", "paid",
                                "--format", "json").json] == [first["id"]]
    for args in (["billing", "invoice", "add", "--login", "ana", "--due", "10/01/2026", "--amount", "1"],
                 ["billing", "invoice", "list", "--status", "late"],
                 ["billing", "pay", "abc"]):
        result = cli(*args)
        assert result.code == 2 and result.err.count("\n") == 1, (args, result.err)
    zero = cli("billing", "invoice", "add", "--login", "ana", "--due", "2026-01-10", "--amount", "0")
    assert zero.code == 1 and "billing.amount_invalid" in zero.err
    csv_out = ok(cli, "billing", "invoice", "list", "--format", "csv").out.splitlines()
    assert csv_out[0].startswith("id,login,service_id,due_date,amount") and len(csv_out) == 3


def test_routines_time_travel_with_explain(cli: Cli) -> None:
    """routine add/list; `routine run --dry-run --at` details what would change and why and
    writes nothing; `run --at` day 6 partial and day 16 total, each seen in `aaa explain
    --at` for MikroTik and Huawei; payment then ENABLE brings full speed back; runs is the log;
    remove."""
    setup(cli)
    ok(cli, "billing", "method", "add", "BOLETO", "--partial-after", "5", "--total-after", "15",
       "--reduction", "relative", "--reduction-value", "50")
    ok(cli, "billing", "method", "assign", "ana", "BOLETO")
    invoice = ok(cli, "billing", "invoice", "add", "--login", "ana", "--due", "2026-01-10",
                 "--amount", "99.90", "--format", "json").json
    routine = ok(cli, "routine", "add", "suspensao", "--task", "SUSPENSION", "--weekday", "1-5",
                 "--hour", "8", "--format", "json").json
    assert (routine["weekday"], routine["hour"], routine["minute"]) == ("1-5", "8", "0")
    ok(cli, "routine", "add", "habilitacao", "--task", "ENABLE", "--minute", "*/10")
    assert [r["name"] for r in ok(cli, "routine", "list", "--format", "json").json] == [
        "habilitacao", "suspensao"]
    bad = cli("routine", "add", "x", "--task", "ENABLE", "--hour", "24")
    assert bad.code == 1 and "routine.cron_invalid" in bad.err

    def explain(login: str, nas: str, moment: str) -> dict[str, object]:
        body = ok(cli, "explain", login, "--nas", nas, "--at", moment, "--format", "json").json
        return {r["attribute"]: r["value"] for r in body["reply"]}

    dry = ok(cli, "routine", "run", "suspensao", "--dry-run", "--at", "2026-01-16T09:00:00",
             "--format", "json").json
    assert dry["dry_run"] is True and dry["counts"]["suspended_partial"] == 1
    assert dry["details"] == ["ana: enabled -> suspended_partial (6 days overdue (partial "
                              "suspension after 5, BOLETO), open 99.90)"]
    table = ok(cli, "routine", "run", "suspensao", "--dry-run", "--at", "2026-01-16T09:00:00").out
    assert "(dry run)" in table and "ana: enabled -> suspended_partial" in table
    assert ok(cli, "service", "show", "ana", "--format", "json").json["status"] == "enabled"

    day6 = ok(cli, "routine", "run", "suspensao", "--at", "2026-01-16T09:00:00", "--format",
              "json").json
    assert day6["counts"]["changed"] == 1 and day6["as_of"] == "2026-01-16T12:00:00+00:00"
    assert "details" not in day6
    assert explain("ana", "mk1", "2026-01-16T09:00:00")["Mikrotik-Rate-Limit"] == "25000k/50000k"
    assert explain("ana", "hw1", "2026-01-16T09:00:00")["Huawei-Output-Peak-Rate"] == 50_000_000

    ok(cli, "routine", "run", "suspensao", "--at", "2026-01-26")
    assert ok(cli, "service", "show", "ana", "--format", "json").json["status"] == "suspended_debt"
    assert explain("ana", "mk1", "2026-01-26")["Framed-Pool"] == "bloqueados"
    assert explain("ana", "hw1", "2026-01-26")["Framed-Pool"] == "bloqueados"

    ok(cli, "billing", "pay", str(invoice["id"]))
    back = ok(cli, "routine", "run", "habilitacao", "--at", "2026-01-27", "--format", "json").json
    assert back["counts"] == {"examined": 1, "changed": 1, "enabled": 1, "coa_jobs": 0}
    assert explain("ana", "mk1", "2026-01-27")["Mikrotik-Rate-Limit"] == "50000k/100000k"

    log = ok(cli, "routine", "runs", "suspensao", "--format", "json").json
    assert [(r["dry_run"], r["result"]) for r in log] == [(False, "ok"), (False, "ok"),
                                                          (True, "ok"), (True, "ok")]
    assert len(ok(cli, "routine", "runs", "--format", "json").json) == 5
    assert "changed=1" in ok(cli, "routine", "runs").out
    ok(cli, "routine", "remove", "suspensao")
    missing = cli("routine", "run", "suspensao")
    assert missing.code == 1 and "routine.not_found" in missing.err
    assert len(ok(cli, "routine", "runs", "--format", "json").json) == 5  # the log stays


def test_trust_unlock_commands(cli: Cli) -> None:
    """An operator's unlock needs --until and --note (else exit 2); it prints the unlock; the
    self-service unlock works once a month; an operator without the permission gets exit 1."""
    setup(cli)
    ok(cli, "service", "suspend", "ana", "--mode", "debt")
    assert cli("service", "trust-unlock", "ana", "--until", "2099-01-01").code == 2
    assert cli("service", "trust-unlock", "ana", "--self-service", "--note", "x").code == 2
    ok(cli, "operator", "add", "clerk", "--name", "Clerk")
    denied = cli("--as", "clerk", "service", "trust-unlock", "ana", "--until", "2099-01-01",
                 "--note", "promessa")
    assert denied.code == 1 and "services.trust_unlock" in denied.err
    until = (datetime.now(UTC) + timedelta(days=3)).date()
    unlock = ok(cli, "service", "trust-unlock", "ana", "--until", until.isoformat(), "--note",
                "promessa de pagamento", "--format", "json").json
    assert unlock["login"] == "ana" and unlock["note"] == "promessa de pagamento"
    assert unlock["self_service"] is False and unlock["until"].endswith("+00:00")
    assert date.fromisoformat(unlock["until"][:10]) >= until  # through the whole last day
    shown = ok(cli, "service", "show", "ana", "--format", "json").json
    assert shown["status"] == "suspended_debt" and shown["trust_unlock_until"] == unlock["until"]
    first = ok(cli, "service", "trust-unlock", "ana", "--self-service", "--format", "json").json
    assert first["self_service"] is True
    again = cli("service", "trust-unlock", "ana", "--self-service")
    assert again.code == 1 and "trust.monthly_limit" in again.err


def test_worker_once(cli: Cli) -> None:
    """`aaa worker --once` does one tick: a payment made shortly before re-enables the service."""
    setup(cli)
    ok(cli, "billing", "method", "add", "BOLETO", "--total-after", "1")
    ok(cli, "billing", "method", "assign", "ana", "BOLETO")
    invoice = ok(cli, "billing", "invoice", "add", "--login", "ana", "--due", "2026-01-10",
                 "--amount", "10.00", "--format", "json").json
    ok(cli, "routine", "add", "suspensao", "--task", "SUSPENSION")
    ok(cli, "routine", "run", "suspensao")
    assert ok(cli, "service", "show", "ana", "--format", "json").json["status"] == "suspended_debt"
    ok(cli, "billing", "pay", str(invoice["id"]))
    tick = ok(cli, "worker", "--once", "--format", "json").json
    assert tick["reenabled"] == 1
    assert ok(cli, "service", "show", "ana", "--format", "json").json["status"] == "enabled"
