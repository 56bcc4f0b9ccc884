"""The `aaa` CLI end to end: exit codes, JSON output, history and change feed per write."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, select

from aaa.db.models import ChangeFeedEntry, HistoryEntry
from tests.conftest import CliResult
from tests.factories import cpf

Cli = Callable[..., CliResult]


def setup_isp(cli: Cli) -> None:
    for args in (
        ["plan", "add", "FIBRA-100", "--download", "100000", "--upload", "50000", "--price", "99.90",
         "--pool", "pool-fibra"],
        ["plan", "add", "IP-FIXO", "--download", "1000", "--upload", "1000", "--allows-association"],
        ["subnet", "add", "200.200.0.0/29", "--folder", "clientes"],
        ["nas", "add", "mk1", "--ip", "10.0.0.1", "--secret", "s3cret", "--vendor", "mikrotik"],
        ["customer", "add", "--name", "Ana", "--document", "529.982.247-25", "--city", "Recife"],
    ):
        result = cli(*args)
        assert result.code == 0, result.err


def test_json_output_of_creating_and_listing_commands(cli: Cli) -> None:
    """add prints the created object with its id; list prints an array; show prints one object."""
    setup_isp(cli)
    created = cli("--format", "json", "service", "add", "--customer", "52998224725", "--plan",
                  "FIBRA-100", "--login", "ana", "--password", "pw", "--mac", "aabbccddeeff",
                  "--ip", "200.200.0.1")
    assert created.code == 0, created.err
    body = created.json
    assert body["login"] == "ana" and body["status"] == "enabled" and isinstance(body["id"], int)
    assert body["mac"] == "AA:BB:CC:DD:EE:FF" and body["price"] == "99.90"
    assert "password" not in body
    listing = cli("service", "list", "--format", "json")
    assert [row["login"] for row in listing.json] == ["ana"]
    shown = cli("service", "show", "ana", "--format", "json").json
    assert shown["ipv4"] == "200.200.0.1" and shown["created_at"].endswith("+00:00")
    plans = cli("plan", "list", "--format", "json").json
    assert {p["name"]: p["allows_association"] for p in plans} == {"FIBRA-100": False, "IP-FIXO": True}
    nas = cli("nas", "list", "--format", "json").json
    assert "secret" not in nas[0] and nas[0]["require_message_authenticator"] is True


def test_csv_and_table_output(cli: Cli) -> None:
    """csv prints a header and one line per row; table prints aligned columns."""
    setup_isp(cli)
    csv_out = cli("customer", "list", "--format", "csv").out.splitlines()
    assert csv_out[0].startswith("id,person_type,name,document") and len(csv_out) == 2
    table = cli("plan", "list").out.splitlines()
    assert table[0].split()[:2] == ["id", "name"] and "FIBRA-100" in table[1] + table[2]


def test_rule_refusal_exits_1_with_one_line(cli: Cli) -> None:
    """A refused business rule exits 1 with one stderr line naming the rule; nothing is written."""
    setup_isp(cli)
    result = cli("customer", "add", "--name", "Dup", "--document", "52998224725")
    assert result.code == 1
    assert result.err.strip().count("\n") == 0 and "customer.document_duplicate" in result.err
    listing = cli("customer", "list", "--format", "json").json
    assert len(listing) == 1
    inactivate = cli("service", "add", "--customer", "1", "--plan", "FIBRA-100", "--login", "a",
                     "--password", "p", "--ip", "10.1.1.1")
    assert inactivate.code == 1 and "service.ip_outside_subnet" in inactivate.err
    assert cli("service", "list", "--format", "json").json == []


def test_usage_errors_exit_2_with_one_line(cli: Cli) -> None:
    """Bad arguments and bad dates exit 2 with one readable line."""
    for args in (["plan", "add", "X", "--download", "fast", "--upload", "1"],
                 ["service", "schedule", "ana", "--status", "cancelled", "--on", "tomorrow"],
                 ["service", "suspend", "ana", "--mode", "forever"],
                 ["nosuchcommand"]):
        result = cli(*args)
        assert result.code == 2, (args, result.err)
        assert len(result.err.strip().splitlines()) == 1, result.err


def test_bad_config_exits_2_naming_the_key(cli: Cli, tmp_path: Path) -> None:
    """A bad configuration value exits 2 with one line naming the key."""
    config = tmp_path / "bad.toml"
    config.write_text('[radius]\nauth_port = "x"\n')
    result = cli("--config", str(config), "plan", "list")
    assert result.code == 2 and "radius.auth_port" in result.err
    missing = cli("--config", str(tmp_path / "nope.toml"), "plan", "list")
    assert missing.code == 2 and "not found" in missing.err


def test_every_write_leaves_history_and_feed(cli: Cli) -> None:
    """Each CLI write leaves a history row naming the operator, and feed rows where RADIUS cares."""
    setup_isp(cli)
    assert cli("operator", "add", "suporte", "--name", "Suporte", "--permission",
               "services.suspend", "--permission", "services.enable").code == 0
    steps = [
        ["service", "add", "--customer", "1", "--plan", "FIBRA-100", "--login", "ana", "--password", "p"],
        ["service", "add", "--customer", "1", "--plan", "IP-FIXO", "--login", "ana-ip", "--password", "p",
         "--ip", "200.200.0.2"],
        ["service", "associate", "ana-ip", "ana"],
        ["--as", "suporte", "service", "suspend", "ana", "--mode", "debt", "--note", "fatura"],
        ["--as", "suporte", "service", "enable", "ana"],
        ["service", "set-plan", "ana", "IP-FIXO"],
        ["service", "navigation", "ana", "--download", "5000", "--upload", "1000", "--until", "2099-01-31"],
        ["service", "edit", "ana", "--mac", "aa-bb-cc-dd-ee-ff", "--mac-binding", "learn"],
        ["var", "set", "POOL_SUSPENSAO_TOTAL", "bloqueados"],
        ["service", "schedule", "ana", "--status", "cancelled", "--on", "2099-02-01"],
    ]
    for step in steps:
        result = cli(*step)
        assert result.code == 0, (step, result.err)
    engine = create_engine(cli.url)  # type: ignore[attr-defined]
    with engine.connect() as conn:
        actions = conn.execute(select(HistoryEntry.operator_login, HistoryEntry.action)).all()
        feed = conn.execute(select(ChangeFeedEntry.object_type, ChangeFeedEntry.seq)).all()
    engine.dispose()
    assert ("suporte", "status:suspended_debt") in actions and ("suporte", "status:enabled") in actions
    assert ("admin", "schedule") in actions and ("admin", "associate") in actions
    seqs = [seq for _, seq in feed]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    kinds = [kind for kind, _ in feed]
    assert kinds.count("service") == 8 and "variable" in kinds and "nas" in kinds
    history = cli("history", "ana", "--format", "json").json
    assert history[0]["action"] == "create" and history[-1]["action"] == "schedule"
    assert all(h["operator"] in {"admin", "suporte"} for h in history)


def test_permission_refused_exit_1(cli: Cli) -> None:
    """An operator without the permission is refused with exit 1 naming the permission."""
    setup_isp(cli)
    cli("service", "add", "--customer", "1", "--plan", "FIBRA-100", "--login", "ana", "--password", "p")
    assert cli("operator", "add", "caixa", "--name", "Caixa").code == 0
    result = cli("--as", "caixa", "service", "suspend", "ana", "--mode", "debt")
    assert result.code == 1 and "services.suspend" in result.err
    assert cli("service", "show", "ana", "--format", "json").json["status"] == "enabled"
    assert cli("operator", "inactivate", "caixa").code == 0
    inactive = cli("--as", "caixa", "plan", "list")
    assert inactive.code == 0  # reading needs no operator check
    write = cli("--as", "caixa", "var", "set", "X", "1")
    assert write.code == 1 and "operator.inactive" in write.err


def test_operator_env_identity_and_clone(cli: Cli, monkeypatch: object) -> None:
    """AAA_OPERATOR chooses the acting operator; clone-permissions copies the list."""
    import pytest

    mp: pytest.MonkeyPatch = monkeypatch  # type: ignore[assignment]
    assert cli("operator", "add", "a", "--name", "A", "--permission", "plans.edit").code == 0
    assert cli("operator", "add", "b", "--name", "B").code == 0
    cloned = cli("operator", "clone-permissions", "b", "--from", "a", "--format", "json")
    assert cloned.json["permissions"] == ["plans.edit"]
    mp.setenv("AAA_OPERATOR", "b")
    assert cli("plan", "add", "P", "--download", "1", "--upload", "1").code == 0
    history = cli("history", "--operator", "b", "--format", "json").json
    assert history[0]["action"] == "create" and history[0]["object_type"] == "plan"


def test_migrate_and_next_ip_via_cli(cli: Cli) -> None:
    """migrate prints the new service; next-ip skips used addresses; mass-change moves services."""
    setup_isp(cli)
    cli("service", "add", "--customer", "1", "--plan", "FIBRA-100", "--login", "ana", "--password",
        "p", "--ip", "200.200.0.1")
    free = cli("service", "next-ip", "--subnet", "200.200.0.0/29", "--format", "json").json
    assert free["ip"] == "200.200.0.2"
    new = cli("service", "migrate", "ana", "IP-FIXO", "--format", "json").json
    assert new["login"] == "ana" and new["plan"] == "IP-FIXO" and new["ipv4"] == "200.200.0.1"
    other = cli("customer", "add", "--name", "Bia", "--document", cpf(), "--format", "json").json
    moved = cli("service", "transfer", "ana", "--customer", str(other["id"]), "--format", "json").json
    assert moved["customer_id"] == other["id"]
    changed = cli("plan", "mass-change", "IP-FIXO", "FIBRA-100", "--format", "json").json
    assert [s["login"] for s in changed] == ["ana"]


def test_installed_console_script_runs(tmp_path: Path) -> None:
    """The `aaa` console script initialises a fresh SQLite database from nothing."""
    script = Path(sys.executable).parent / "aaa"
    env = {**os.environ, "AAA_DATA_DIR": str(tmp_path / "data"), "AAA_ADMIN_PASSWORD": "x"}
    env.pop("AAA_DATABASE_URL", None)
    env.pop("AAA_CONFIG", None)
    init = subprocess.run([str(script), "db", "init"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert init.returncode == 0, init.stderr
    assert (tmp_path / "data" / "aaa.sqlite3").exists()
    check = subprocess.run([str(script), "db", "check"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=120, check=False)
    assert check.returncode == 0 and "agree" in check.stdout
