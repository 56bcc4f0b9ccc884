"""Equipment passwords: encrypted at rest, key problems, rotation, permissions, audit, CLI."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from aaa.config import ConfigError, SecretsConfig
from aaa.db.models import HistoryEntry, Service
from aaa.db.models_inventory import Olt
from aaa.db.models_secrets import EquipmentPassword
from management import equipment_passwords as ep
from management import inventory, subscriber_passwords
from management.context import Actor, Context, load_actor
from management.errors import PermissionDenied, RuleViolation
from tests import factories
from tests.conftest import NOW, ZONE, CliResult

Cli = Callable[..., CliResult]

KEY_A = base64.b64encode(bytes(range(32))).decode()
KEY_B = base64.b64encode(bytes(range(100, 132))).decode()
KEY_C = base64.b64encode(b"\x07" * 32).decode()
KEY_D = base64.b64encode(b"\x09" * 32).decode()
CONF_A = SecretsConfig(key=KEY_A)
CONF_B = SecretsConfig(key=KEY_B)
CONF_C = SecretsConfig(key=KEY_C)
SECRET = "Tr0ub4dor&3-wifi"
LOOK_ALIKES = set("0Oo1lIi'\"`\\ |")


# --- pure parts -----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=ep.MIN_SUGGESTED_LENGTH, max_value=ep.MAX_SUGGESTED_LENGTH))
def test_suggested_passwords_meet_the_policy(length: int) -> None:
    """Right length; a lower, upper, digit and symbol each; no look-alikes, quotes or backslash."""
    password = ep.suggest_password(length)
    assert len(password) == length
    assert any(c in ep.LOWER for c in password) and any(c in ep.UPPER for c in password)
    assert any(c in ep.DIGITS for c in password) and any(c in ep.SYMBOLS for c in password)
    assert set(password) <= set(ep.ALPHABET)
    assert not set(password) & LOOK_ALIKES


@given(st.one_of(st.integers(max_value=ep.MIN_SUGGESTED_LENGTH - 1),
                 st.integers(min_value=ep.MAX_SUGGESTED_LENGTH + 1)))
def test_suggested_length_out_of_range_is_refused(length: int) -> None:
    with pytest.raises(RuleViolation) as info:
        ep.suggest_password(length)
    assert info.value.rule == "equipment_password.length"


def test_alphabet_has_no_look_alikes() -> None:
    assert not set(ep.ALPHABET) & LOOK_ALIKES
    assert len(set(ep.ALPHABET)) == len(ep.ALPHABET)


def test_suggestions_differ() -> None:
    assert len({ep.suggest_password(16) for _ in range(50)}) == 50


def test_aes_gcm_nonce_per_value_and_entry_binding() -> None:
    """Two encryptions of one value differ; a value only decrypts for its own entry id."""
    key = ep.SecretKey.from_base64(KEY_A, "secrets.key")
    one, two = key.encrypt(SECRET, 1), key.encrypt(SECRET, 1)
    assert one != two and key.decrypt(one, 1) == key.decrypt(two, 1) == SECRET
    with pytest.raises(ValueError):
        key.decrypt(one, 2)
    with pytest.raises(ValueError):
        ep.SecretKey.from_base64(KEY_B, "k").decrypt(one, 1)
    assert KEY_A not in repr(key) and repr(bytes(range(32))) not in repr(key)
    assert key.key_id != ep.SecretKey.from_base64(KEY_B, "k").key_id and len(key.key_id) == 16


def test_missing_and_malformed_keys_name_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        ep.current_key(SecretsConfig())
    assert "secrets.key" in str(info.value)
    with pytest.raises(ConfigError) as info:
        ep.current_key(SecretsConfig(key_file=str(tmp_path / "absent")))
    assert "secrets.key_file" in str(info.value)
    key_file = tmp_path / "key"
    key_file.write_text("short\n")
    with pytest.raises(ConfigError) as info:
        ep.current_key(SecretsConfig(key_file=str(key_file)))
    assert "secrets.key_file" in str(info.value) and "short" not in str(info.value)
    key_file.write_text(KEY_B + "\n")
    assert ep.current_key(SecretsConfig(key_file=str(key_file))).key_id == \
        ep.current_key(CONF_B).key_id
    # secrets.key wins over key_file
    assert ep.current_key(SecretsConfig(key=KEY_A, key_file=str(key_file))).key_id == \
        ep.current_key(CONF_A).key_id


# --- on both databases ----------------------------------------------------------------------


def _setup(ctx: Context, login: str = "ana") -> None:
    if ctx.session.scalar(text("SELECT count(*) FROM plans WHERE name = 'FIBRA-100'")) == 0:
        factories.plan(ctx)
    factories.service(ctx, login)


def _as(ctx: Context, login: str, *permissions: str) -> Context:
    actor = Actor(operator_id=None, login=login, is_admin=False, permissions=frozenset(permissions))
    return Context(session=ctx.session, actor=actor, now=NOW, zone=ZONE)


def _raw_rows(session: Session) -> list[tuple[object, ...]]:
    return [tuple(r) for r in session.execute(text("SELECT * FROM equipment_passwords"))]


def _history(session: Session) -> list[HistoryEntry]:
    return list(session.scalars(select(HistoryEntry).where(HistoryEntry.object_type == ep.OBJECT_TYPE)
                                .order_by(HistoryEntry.id)))


def test_database_never_holds_the_plain_text(ctx: Context) -> None:
    """The raw row (read with SQL) has no trace of the password; reveal gives it back."""
    _setup(ctx)
    entry = ep.add_entry(ctx, CONF_A, "ana", "router admin", SECRET, username="admin", note="sala")
    rows = _raw_rows(ctx.session)
    assert len(rows) == 1
    raw = " ".join(str(v) for v in rows[0])
    assert SECRET not in raw and "Tr0ub4dor" not in raw
    stored = ctx.session.scalar(text("SELECT password_encrypted FROM equipment_passwords"))
    assert SECRET.encode() not in base64.b64decode(stored)
    assert len(base64.b64decode(stored)) == 12 + len(SECRET) + 16
    assert ctx.session.scalar(text("SELECT key_id FROM equipment_passwords")) == \
        ep.current_key(CONF_A).key_id
    shown, password = ep.reveal(ctx, CONF_A, "ana", entry.id)
    assert password == SECRET and shown.username == "admin"


def test_each_view_is_audited(ctx: Context) -> None:
    """One history row per view: who saw which entry, when; none for a refused view."""
    _setup(ctx)
    entry = ep.add_entry(ctx, CONF_A, "ana", "Wi-Fi 5 GHz", SECRET, username="ANA-5G")
    viewer = _as(ctx, "suporte", "passwords.view")
    ep.reveal(viewer, CONF_A, "ana", entry.id)
    ep.reveal(ctx, CONF_A, "ana", entry.id)
    with pytest.raises(PermissionDenied):
        ep.reveal(_as(ctx, "caixa"), CONF_A, "ana", entry.id)
    views = [h for h in _history(ctx.session) if h.action == "view"]
    assert [(h.operator_login, h.object_id, h.at) for h in views] == [
        ("suporte", str(entry.id), NOW), ("admin", str(entry.id), NOW)]
    assert views[0].customer_id is not None and "Wi-Fi 5 GHz" in (views[0].note or "")
    ep.list_entries(viewer, "ana")  # a listing shows no password: not a view
    assert len([h for h in _history(ctx.session) if h.action == "view"]) == 2


def test_secrets_absent_from_history_and_listing(ctx: Context) -> None:
    """Create/edit/delete history says "set"/"changed"/"deleted", never the password."""
    _setup(ctx)
    entry = ep.add_entry(ctx, CONF_A, "ana", "ONU", SECRET, username="root")
    ep.edit_entry(ctx, CONF_A, "ana", entry.id, password="N3w-Secret-Value", note="trocada")
    ep.edit_entry(ctx, CONF_A, "ana", entry.id, username="")
    listed = [ep.as_dict(e, "ana") for e in ep.list_entries(ctx, "ana")]
    assert listed[0]["username"] is None and listed[0]["note"] == "trocada"
    assert "password" not in listed[0] and "password_encrypted" not in listed[0]
    ep.delete_entry(ctx, "ana", entry.id)
    history = _history(ctx.session)
    assert [h.action for h in history] == ["create", "edit", "edit", "delete"]
    changes = [json.loads(h.changes) for h in history]
    assert changes[0]["password"] == "set" and changes[0]["username"] == [None, "root"]
    assert changes[1] == {"password": "changed", "note": [None, "trocada"]}
    assert changes[2] == {"username": ["root", None]}
    assert changes[3]["password"] == "deleted"
    everything = json.dumps([[h.changes, h.note] for h in history]) + json.dumps(listed)
    assert SECRET not in everything and "N3w-Secret-Value" not in everything
    assert ep.list_entries(ctx, "ana") == []


def test_wrong_and_missing_key(ctx: Context) -> None:
    """No key or another key: a configuration error naming secrets.key; nothing audited."""
    _setup(ctx)
    entry = ep.add_entry(ctx, CONF_A, "ana", "router admin", SECRET)
    with pytest.raises(ep.SecretsKeyError) as info:
        ep.reveal(ctx, SecretsConfig(), "ana", entry.id)
    assert str(info.value).startswith("secrets.key:")
    with pytest.raises(ep.SecretsKeyError) as info:
        ep.reveal(ctx, CONF_B, "ana", entry.id)
    message = str(info.value)
    assert "secrets.key" in message and ep.current_key(CONF_A).key_id in message
    assert SECRET not in message and KEY_B not in message and KEY_A not in message
    # writing with another key than the stored entries' is refused too
    with pytest.raises(ep.SecretsKeyError):
        ep.add_entry(ctx, CONF_B, "ana", "Wi-Fi", "another-one")
    with pytest.raises(ep.SecretsKeyError):
        ep.add_entry(ctx, SecretsConfig(), "ana", "Wi-Fi", "another-one")
    assert not [h for h in _history(ctx.session) if h.action == "view"]


def test_tampered_or_moved_ciphertext_does_not_decrypt(ctx: Context) -> None:
    """GCM authenticates: a flipped byte or a value copied onto another entry is refused."""
    _setup(ctx)
    first = ep.add_entry(ctx, CONF_A, "ana", "router admin", SECRET)
    second = ep.add_entry(ctx, CONF_A, "ana", "Wi-Fi", "wifi-password")
    ctx.session.execute(text("UPDATE equipment_passwords SET password_encrypted = :v WHERE id = :id"),
                        {"v": first.password_encrypted, "id": second.id})
    ctx.session.expire_all()
    with pytest.raises(RuleViolation) as info:
        ep.reveal(ctx, CONF_A, "ana", second.id)
    assert info.value.rule == "equipment_password.corrupt" and SECRET not in str(info.value)
    raw = bytearray(base64.b64decode(first.password_encrypted))
    raw[15] ^= 1
    ctx.session.execute(text("UPDATE equipment_passwords SET password_encrypted = :v WHERE id = :id"),
                        {"v": base64.b64encode(bytes(raw)).decode(), "id": first.id})
    ctx.session.expire_all()
    with pytest.raises(RuleViolation) as info:
        ep.reveal(ctx, CONF_A, "ana", first.id)
    assert info.value.rule == "equipment_password.corrupt"


def test_key_rotation_reencrypts_every_entry(ctx: Context) -> None:
    """After rotate-key the old key no longer reads any entry, the new key reads them all."""
    _setup(ctx, "ana")
    _setup(ctx, "bia")
    plain = {("ana", "router admin"): "pw-ana-router", ("ana", "Wi-Fi"): "pw-ana-wifi",
             ("bia", "ONU"): "pw-bia-onu"}
    ids = {k: ep.add_entry(ctx, CONF_A, k[0], k[1], v).id for k, v in plain.items()}
    before = {r[0]: r for r in _raw_rows(ctx.session)}
    new_key = ep.SecretKey.from_base64(KEY_B, "--new-key")
    with pytest.raises(PermissionDenied):
        ep.rotate_key(_as(ctx, "suporte", "passwords.view"), CONF_A, new_key)
    with pytest.raises(RuleViolation) as same:
        ep.rotate_key(ctx, CONF_A, ep.SecretKey.from_base64(KEY_A, "--new-key"))
    assert same.value.rule == "equipment_password.same_key"
    result = ep.rotate_key(ctx, CONF_A, new_key)
    assert (result.entries, result.new_key_id) == (3, new_key.key_id)
    ctx.session.expire_all()
    after = {r[0]: r for r in _raw_rows(ctx.session)}
    for entry_id in ids.values():
        assert after[entry_id] != before[entry_id]
    assert {r[0] for r in ctx.session.execute(text("SELECT key_id FROM equipment_passwords"))} == \
        {new_key.key_id}
    for (login, kind), entry_id in ids.items():
        with pytest.raises(ep.SecretsKeyError):
            ep.reveal(ctx, CONF_A, login, entry_id)
        assert ep.reveal(ctx, CONF_B, login, entry_id)[1] == plain[(login, kind)]
    rekeys = [h for h in _history(ctx.session) if h.action == "rekey"]
    assert len(rekeys) == 3 and all(KEY_B not in h.changes for h in rekeys)
    # A writer still configured with the old key is refused.
    with pytest.raises(ep.SecretsKeyError):
        ep.add_entry(ctx, CONF_A, "ana", "late", "written-with-the-old-key")


def test_rotation_is_all_or_nothing(ctx: Context) -> None:
    """An entry the configured key cannot read refuses the whole rotation."""
    _setup(ctx)
    good = ep.add_entry(ctx, CONF_A, "ana", "router admin", SECRET)
    bad = ep.add_entry(ctx, CONF_A, "ana", "Wi-Fi", "wifi")
    ctx.session.execute(text("UPDATE equipment_passwords SET password_encrypted = :v WHERE id = :id"),
                        {"v": good.password_encrypted, "id": bad.id})
    ctx.session.expire_all()
    savepoint = ctx.session.begin_nested()
    with pytest.raises(RuleViolation) as info:
        ep.rotate_key(ctx, CONF_A, ep.SecretKey.from_base64(KEY_B, "k"))
    assert info.value.rule == "equipment_password.corrupt"
    savepoint.rollback()
    assert ep.reveal(ctx, CONF_A, "ana", good.id)[1] == SECRET


def _key(value: str) -> ep.SecretKey:
    return ep.SecretKey.from_base64(value, "k")


def _history_of(session: Session, object_type: str, action: str) -> list[tuple[str, list[str]]]:
    rows = session.scalars(select(HistoryEntry).where(HistoryEntry.object_type == object_type,
                                                      HistoryEntry.action == action)
                           .order_by(HistoryEntry.id))
    return [(r.object_id, json.loads(r.changes)["key_id"]) for r in rows]


def test_rotations_move_values_left_under_the_previous_key(ctx: Context) -> None:
    """The three rotations (equipment, OLT, subscriber passwords) given a `previous` key open the
    values an older rotation left under it and move them to the new key along with those under
    the configured key; each history row names the key the value came from. Without `previous`,
    or with a previous key that is not the one left behind, the same state refuses
    (SecretsKeyError naming the keys), nothing changed."""
    key_a, key_b, key_c = _key(KEY_A), _key(KEY_B), _key(KEY_C)
    _setup(ctx, "ana")  # a clear (legacy) subscriber password
    # Equipment: both written under A, rotated to B, then one put back to its A ciphertext
    # (bound to its own id, so genuinely "left under A").
    left = ep.add_entry(ctx, CONF_A, "ana", "router admin", "left-under-a")
    moved = ep.add_entry(ctx, CONF_A, "ana", "Wi-Fi", "moved-to-b")
    left_under_a = left.password_encrypted
    ep.rotate_key(ctx, CONF_A, key_b)
    ctx.session.execute(text("UPDATE equipment_passwords SET password_encrypted = :v, key_id = :k "
                             "WHERE id = :id"), {"v": left_under_a, "k": key_a.key_id, "id": left.id})
    ctx.session.expire_all()
    olt_a = inventory.create_olt(ctx, "OLT-A", "10.9.0.1", "zte", "C300", password="olt-a-pw",
                                 config=CONF_A)
    olt_b = inventory.create_olt(ctx, "OLT-B", "10.9.0.2", "zte", "C300", password="olt-b-pw",
                                 config=CONF_B)
    for login, key in (("bia", key_a), ("cy", key_b)):
        sealing = Context(ctx.session, ctx.actor, ctx.now, ctx.zone, password_key=key)
        factories.service(sealing, login, password=f"pppoe-{login}")
    rotations: list[Callable[[ep.SecretKey | None], object]] = [
        lambda previous: ep.rotate_key(ctx, CONF_B, key_c, previous),
        lambda previous: inventory.rekey_olt_passwords(ctx, CONF_B, key_c, previous),
        lambda previous: subscriber_passwords.reseal_all(ctx, key_b, key_c, previous),
    ]
    before = _raw_rows(ctx.session)
    for rotate in rotations:
        for previous in (None, _key(KEY_D)):
            savepoint = ctx.session.begin_nested()
            with pytest.raises(ep.SecretsKeyError) as refused:
                rotate(previous)
            savepoint.rollback()
            assert key_a.key_id in str(refused.value)
            if previous is not None and rotate is not rotations[2]:
                assert previous.key_id in str(refused.value)
    ctx.session.expire_all()
    assert _raw_rows(ctx.session) == before

    rotation = ep.rotate_key(ctx, CONF_B, key_c, key_a)
    assert (rotation.old_key_id, rotation.new_key_id, rotation.entries) == (key_b.key_id, key_c.key_id, 2)
    assert inventory.rekey_olt_passwords(ctx, CONF_B, key_c, key_a) == 2
    assert subscriber_passwords.reseal_all(ctx, key_b, key_c, key_a) == 3  # ana's clear one too
    ctx.session.expire_all()
    assert ep.reveal(ctx, CONF_C, "ana", left.id)[1] == "left-under-a"
    assert ep.reveal(ctx, CONF_C, "ana", moved.id)[1] == "moved-to-b"
    assert inventory.reveal_password(ctx, CONF_C, "OLT-A") == "olt-a-pw"
    assert inventory.reveal_password(ctx, CONF_C, "OLT-B") == "olt-b-pw"
    stored = ctx.session.execute(select(Service.login, Service.password)).all()
    assert {login: subscriber_passwords.unseal(key_c, value) for login, value in stored} == \
        {"ana": "secret", "bia": "pppoe-bia", "cy": "pppoe-cy"}
    assert _history_of(ctx.session, ep.OBJECT_TYPE, "rekey")[-2:] == [
        (str(left.id), [key_a.key_id, key_c.key_id]), (str(moved.id), [key_b.key_id, key_c.key_id])]
    assert _history_of(ctx.session, "olt", "rekey") == [
        (str(olt_a.id), [key_a.key_id, key_c.key_id]), (str(olt_b.id), [key_b.key_id, key_c.key_id])]


def test_permissions(ctx: Context) -> None:
    """view to see, edit to change; listing takes either; refusals name the permission."""
    _setup(ctx)
    entry = ep.add_entry(ctx, CONF_A, "ana", "router admin", SECRET)
    nobody = _as(ctx, "caixa")
    viewer = _as(ctx, "suporte", "passwords.view")
    editor = _as(ctx, "tecnico", "passwords.edit")
    cases: list[tuple[Context, Callable[[Context], object], str]] = [
        (nobody, lambda c: ep.list_entries(c, "ana"), "passwords.view"),
        (editor, lambda c: ep.reveal(c, CONF_A, "ana", entry.id), "passwords.view"),
        (viewer, lambda c: ep.add_entry(c, CONF_A, "ana", "x", "y"), "passwords.edit"),
        (viewer, lambda c: ep.edit_entry(c, CONF_A, "ana", entry.id, note="n"), "passwords.edit"),
        (viewer, lambda c: ep.delete_entry(c, "ana", entry.id), "passwords.edit"),
    ]
    for who, action, permission in cases:
        with pytest.raises(PermissionDenied) as info:
            action(who)
        assert info.value.permission == permission and permission in str(info.value)
    assert len(ep.list_entries(viewer, "ana")) == len(ep.list_entries(editor, "ana")) == 1
    ep.edit_entry(editor, CONF_A, "ana", entry.id, password="changed-by-editor")
    assert ep.reveal(viewer, CONF_A, "ana", entry.id)[1] == "changed-by-editor"


def test_entries_belong_to_their_service(ctx: Context) -> None:
    _setup(ctx, "ana")
    _setup(ctx, "bia")
    entry = ep.add_entry(ctx, CONF_A, "ana", "router admin", SECRET)
    with pytest.raises(RuleViolation) as info:
        ep.reveal(ctx, CONF_A, "bia", entry.id)
    assert info.value.rule == "equipment_password.not_found"
    with pytest.raises(RuleViolation) as info:
        ep.add_entry(ctx, CONF_A, "nobody", "x", "y")
    assert info.value.rule == "service.not_found"
    with pytest.raises(RuleViolation) as info:
        ep.add_entry(ctx, CONF_A, "ana", "  ", "y")
    assert info.value.rule == "equipment_password.kind_required"
    with pytest.raises(RuleViolation) as info:
        ep.add_entry(ctx, CONF_A, "ana", "x", "")
    assert info.value.rule == "equipment_password.password_required"
    with pytest.raises(RuleViolation) as info:
        ep.edit_entry(ctx, CONF_A, "ana", entry.id)
    assert info.value.rule == "equipment_password.unchanged"


# --- the CLI ---------------------------------------------------------------------------------


def _cli_setup(cli: Cli) -> None:
    for args in (
        ["plan", "add", "FIBRA-100", "--download", "100000", "--upload", "50000"],
        ["customer", "add", "--name", "Ana", "--document", "529.982.247-25"],
        ["service", "add", "--customer", "1", "--plan", "FIBRA-100", "--login", "ana",
         "--password", "pppoe-pw"],
        ["operator", "add", "suporte", "--name", "Suporte", "--permission", "passwords.view"],
        ["operator", "add", "caixa", "--name", "Caixa"],
    ):
        result = cli(*args)
        assert result.code == 0, result.err


def test_cli_add_list_show_edit_delete(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole flow with --format json; the secret only in show and in add --suggest."""
    monkeypatch.setenv("AAA_SECRETS_KEY", KEY_A)
    _cli_setup(cli)
    added = cli("passwords", "add", "ana", "--kind", "router admin", "--username", "admin",
                "--password", SECRET, "--format", "json")
    assert added.code == 0, added.err
    body = added.json
    assert body["kind"] == "router admin" and isinstance(body["id"], int) and "password" not in body
    assert body["created_by"] == "admin" and body["created_at"].endswith("+00:00")
    assert SECRET not in added.out
    suggested = cli("passwords", "add", "ana", "--kind", "Wi-Fi 2.4 GHz", "--username", "ANA",
                    "--suggest", "--format", "json")
    assert suggested.code == 0, suggested.err
    generated = suggested.json["password"]
    assert len(generated) == 16 and not set(generated) & LOOK_ALIKES
    listing = cli("passwords", "list", "ana", "--format", "json")
    assert listing.code == 0 and [r["kind"] for r in listing.json] == ["router admin", "Wi-Fi 2.4 GHz"]
    assert all("password" not in r for r in listing.json)
    assert SECRET not in listing.out and generated not in listing.out
    table = cli("passwords", "list", "ana")
    assert "router admin" in table.out and SECRET not in table.out
    shown = cli("--as", "suporte", "passwords", "show", "ana", str(body["id"]), "--format", "json")
    assert shown.code == 0, shown.err
    assert shown.json["password"] == SECRET and shown.json["username"] == "admin"
    wifi_id = str(suggested.json["id"])
    assert cli("passwords", "show", "ana", wifi_id, "--format", "json").json["password"] == generated
    monkeypatch.setattr("sys.stdin", io.StringIO("Piped-Secret-9\n"))
    edited = cli("passwords", "edit", "ana", str(body["id"]), "--password", "-", "--note", "trocada",
                 "--format", "json")
    assert edited.code == 0, edited.err
    assert "password" not in edited.json and edited.json["note"] == "trocada"
    assert cli("passwords", "show", "ana", str(body["id"]), "--format", "json").json["password"] == \
        "Piped-Secret-9"
    deleted = cli("passwords", "delete", "ana", wifi_id, "--format", "json")
    assert deleted.code == 0 and deleted.json["id"] == int(wifi_id)
    assert len(cli("passwords", "list", "ana", "--format", "json").json) == 1
    history = cli("history", "--customer", "1", "--format", "json")
    assert history.code == 0, history.err
    rows = [h for h in history.json if h["object_type"] == ep.OBJECT_TYPE]
    assert [h["action"] for h in rows] == ["create", "create", "view", "view", "edit", "view", "delete"]
    assert rows[2]["operator"] == "suporte" and rows[2]["object_id"] == str(body["id"])
    for secret in (SECRET, generated, "Piped-Secret-9"):
        assert secret not in history.out
    engine = create_engine(cli.url)  # type: ignore[attr-defined]
    try:
        with engine.connect() as connection:
            dump = repr(connection.execute(text("SELECT * FROM equipment_passwords")).all())
            dump += repr(connection.execute(text("SELECT * FROM history")).all())
    finally:
        engine.dispose()
    for secret in (SECRET, generated, "Piped-Secret-9"):
        assert secret not in dump


def test_cli_permissions_and_usage(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refusals exit 1 naming the permission; bad option combinations exit 2."""
    monkeypatch.setenv("AAA_SECRETS_KEY", KEY_A)
    _cli_setup(cli)
    entry = cli("passwords", "add", "ana", "--kind", "ONU", "--password", SECRET, "--format", "json").json
    refused = cli("--as", "caixa", "passwords", "show", "ana", str(entry["id"]))
    assert refused.code == 1 and "passwords.view" in refused.err and SECRET not in refused.err
    assert len(refused.err.strip().splitlines()) == 1
    refused = cli("--as", "suporte", "passwords", "add", "ana", "--kind", "x", "--password", "y")
    assert refused.code == 1 and "passwords.edit" in refused.err
    refused = cli("--as", "suporte", "passwords", "delete", "ana", str(entry["id"]))
    assert refused.code == 1 and "passwords.edit" in refused.err
    assert cli("--as", "caixa", "passwords", "list", "ana").code == 1
    both = cli("passwords", "add", "ana", "--kind", "x", "--password", "y", "--suggest")
    assert both.code == 2 and "--suggest" in both.err
    neither = cli("passwords", "add", "ana", "--kind", "x")
    assert neither.code == 2 and "--password" in neither.err
    missing = cli("passwords", "show", "ana", "999")
    assert missing.code == 1 and "not found" in missing.err
    assert len(cli("passwords", "list", "ana", "--format", "json").json) == 1


def test_cli_missing_or_wrong_key_exit_2(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a key (or with another one) show/add exit 2 with one line naming secrets.key."""
    monkeypatch.setenv("AAA_SECRETS_KEY", KEY_A)
    _cli_setup(cli)
    entry = cli("passwords", "add", "ana", "--kind", "ONU", "--password", SECRET, "--format", "json").json
    monkeypatch.delenv("AAA_SECRETS_KEY")
    for args in (["passwords", "show", "ana", str(entry["id"])],
                 ["passwords", "add", "ana", "--kind", "x", "--password", "y"]):
        result = cli(*args)
        assert result.code == 2 and "secrets.key" in result.err, result.err
        assert len(result.err.strip().splitlines()) == 1 and SECRET not in result.err
    assert cli("passwords", "list", "ana").code == 0  # listing needs no key
    monkeypatch.setenv("AAA_SECRETS_KEY", KEY_B)
    wrong = cli("passwords", "show", "ana", str(entry["id"]))
    assert wrong.code == 2 and "secrets.key" in wrong.err and "configured key" in wrong.err
    monkeypatch.setenv("AAA_SECRETS_KEY", "not-a-key")
    bad = cli("passwords", "list", "ana")
    assert bad.code == 2 and "AAA_SECRETS_KEY" in bad.err and "not-a-key" not in bad.err


def test_cli_rotate_key(cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """rotate-key re-encrypts everything; then only the new key (from key_file here) reads."""
    monkeypatch.setenv("AAA_SECRETS_KEY", KEY_A)
    _cli_setup(cli)
    ids = [cli("passwords", "add", "ana", "--kind", f"k{i}", "--password", f"pw-{i}",
               "--format", "json").json["id"] for i in range(3)]
    assert cli("--as", "suporte", "passwords", "rotate-key", "--new-key", KEY_B).code == 1
    assert cli("passwords", "rotate-key", "--new-key", "garbage").code == 2
    assert cli("passwords", "rotate-key").code == 2
    generated = cli("passwords", "generate-key", "--format", "json").json
    assert len(base64.b64decode(generated["key"])) == 32
    rotated = cli("passwords", "rotate-key", "--new-key", KEY_B, "--format", "json")
    assert rotated.code == 0, rotated.err
    assert rotated.json["entries"] == 3 and rotated.json["new_key_id"] == \
        ep.SecretKey.from_base64(KEY_B, "k").key_id
    assert KEY_B not in rotated.out
    old = cli("passwords", "show", "ana", str(ids[0]))
    assert old.code == 2 and "secrets.key" in old.err
    monkeypatch.delenv("AAA_SECRETS_KEY")
    key_file = tmp_path / "secrets.key"
    key_file.write_text(KEY_B + "\n")
    config = tmp_path / "aaa.toml"
    config.write_text(f'[secrets]\nkey_file = "{key_file}"\n')
    for i, entry_id in enumerate(ids):
        shown = cli("--config", str(config), "passwords", "show", "ana", str(entry_id), "--format", "json")
        assert shown.code == 0 and shown.json["password"] == f"pw-{i}"
    key_file_c = tmp_path / "c.key"
    key_file_c.write_text(KEY_C)
    again = cli("--config", str(config), "passwords", "rotate-key", "--new-key-file", str(key_file_c))
    assert again.code == 0, again.err
    engine = create_engine(cli.url)  # type: ignore[attr-defined]
    try:
        with Session(engine) as session:
            assert {e.key_id for e in session.scalars(select(EquipmentPassword))} == \
                {ep.SecretKey.from_base64(KEY_C, "k").key_id}
    finally:
        engine.dispose()


# --- rotate-key and the OLT passwords (same [secrets] key) ------------------------------------


def _cli_olts(cli: Cli) -> None:
    """Two OLTs with a management password and one without, and an equipment password."""
    for args in (
        ["passwords", "add", "ana", "--kind", "ONU", "--password", SECRET],
        ["olt", "add", "OLT-A", "--ip", "10.9.0.1", "--vendor", "zte", "--model", "C300",
         "--user", "adm", "--password", "olt-a-pw"],
        ["olt", "add", "OLT-B", "--ip", "10.9.0.2", "--vendor", "huawei", "--model", "MA5800",
         "--user", "adm", "--password", "olt-b-pw"],
        ["olt", "add", "OLT-C", "--ip", "10.9.0.3", "--vendor", "huawei", "--model", "MA5800"],
    ):
        result = cli(*args)
        assert result.code == 0, result.err


def _dump(cli: Cli, *tables: str) -> dict[str, list[tuple[object, ...]]]:
    engine = create_engine(cli.url)  # type: ignore[attr-defined]
    try:
        with engine.connect() as connection:
            return {t: [tuple(r) for r in connection.execute(text(f"SELECT * FROM {t} ORDER BY id"))]
                    for t in tables}
    finally:
        engine.dispose()


def test_cli_rotate_key_rekeys_olt_passwords(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """rotate-key moves the OLT passwords to the new key with the equipment passwords: with the
    new key configured `olt show --show-password` gives the original back, each re-keyed OLT
    has a "rekey" history row, and the output counts them as `olt_passwords`."""
    monkeypatch.setenv("AAA_SECRETS_KEY", KEY_A)
    _cli_setup(cli)
    _cli_olts(cli)
    rotated = cli("passwords", "rotate-key", "--new-key", KEY_B, "--format", "json")
    assert rotated.code == 0, rotated.err
    monkeypatch.setenv("AAA_SECRETS_KEY", KEY_B)
    for name, password in (("OLT-A", "olt-a-pw"), ("10.9.0.2", "olt-b-pw")):
        shown = cli("olt", "show", name, "--show-password", "--format", "json")
        assert shown.code == 0, shown.err
        assert shown.json["password"] == password
    assert (rotated.json["entries"], rotated.json["olt_passwords"], rotated.json["subscriber_passwords"]) \
        == (1, 2, 0)
    assert cli("olt", "show", "OLT-C", "--show-password", "--format", "json").json["password"] is None
    monkeypatch.setenv("AAA_SECRETS_KEY", KEY_A)
    old = cli("olt", "show", "OLT-A", "--show-password")
    assert old.code == 2 and "secrets.key" in old.err and "olt-a-pw" not in old.err
    new_key_id = ep.SecretKey.from_base64(KEY_B, "k").key_id
    engine = create_engine(cli.url)  # type: ignore[attr-defined]
    try:
        with Session(engine) as session:
            rekeys = session.scalars(select(HistoryEntry).where(HistoryEntry.object_type == "olt",
                                                                HistoryEntry.action == "rekey")).all()
            assert sorted(r.note or "" for r in rekeys) == ["OLT-A", "OLT-B"]
            assert all(new_key_id in r.changes and KEY_B not in r.changes for r in rekeys)
            key_ids = [k for (k,) in session.execute(text("SELECT password_key_id FROM olts ORDER BY id"))]
            assert key_ids == [new_key_id, new_key_id, None]
    finally:
        engine.dispose()


def _sealed_site(cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Subscriber passwords sealed (./aaa.toml), KEY_A configured, the CLI set-up and the OLTs."""
    (tmp_path / "aaa.toml").write_text("[secrets]\nencrypt_subscriber_passwords = true\n")
    monkeypatch.setenv("AAA_SECRETS_KEY", KEY_A)
    _cli_setup(cli)
    _cli_olts(cli)


def test_cli_rotate_key_refused_by_a_corrupt_olt_password(cli: Cli, monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    """An OLT password that does not decrypt under the configured key refuses the whole rotation:
    exit 1 naming `olt.password_corrupt`, and no equipment, OLT or (sealed) subscriber password
    re-keyed, no history row written; the old key still opens everything."""
    _sealed_site(cli, monkeypatch, tmp_path)
    engine = create_engine(cli.url)  # type: ignore[attr-defined]
    try:
        with engine.begin() as connection:  # OLT-A's ciphertext copied onto OLT-B: bound to its id
            connection.execute(text("UPDATE olts SET password_encrypted = "
                                    "(SELECT password_encrypted FROM olts WHERE name = 'OLT-A') "
                                    "WHERE name = 'OLT-B'"))
    finally:
        engine.dispose()
    tables = ("equipment_passwords", "olts", "services", "history")
    before = _dump(cli, *tables)
    assert before["services"] and all("aes1:" in repr(row) for row in before["services"])
    refused = cli("passwords", "rotate-key", "--new-key", KEY_B)
    assert refused.code == 1, refused.err
    assert "olt.password_corrupt" in refused.err and "OLT-B" in refused.err
    assert len(refused.err.strip().splitlines()) == 1
    assert not any(s in refused.err for s in (SECRET, "olt-a-pw", "olt-b-pw", KEY_A, KEY_B))
    assert _dump(cli, *tables) == before
    assert cli("passwords", "show", "ana", "1", "--format", "json").json["password"] == SECRET
    assert cli("olt", "show", "OLT-A", "--show-password", "--format", "json").json["password"] == "olt-a-pw"


def test_cli_rotate_key_refused_by_an_olt_password_under_a_third_key(
        cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """An OLT password under neither the configured nor the new key refuses the whole rotation
    as a key problem (exit 2 naming secrets.key and that key, like an equipment password under
    a third key); nothing is re-keyed."""
    monkeypatch.setenv("AAA_SECRETS_KEY", KEY_A)
    _cli_setup(cli)
    _cli_olts(cli)
    monkeypatch.setenv("AAA_SECRETS_KEY", KEY_C)  # OLT-C's password is written under a third key
    assert cli("olt", "edit", "OLT-C", "--password", "olt-c-pw").code == 0
    monkeypatch.setenv("AAA_SECRETS_KEY", KEY_A)
    before = _dump(cli, "equipment_passwords", "olts")
    refused = cli("passwords", "rotate-key", "--new-key", KEY_B)
    assert refused.code == 2, refused.err
    assert "secrets.key" in refused.err and ep.SecretKey.from_base64(KEY_C, "k").key_id in refused.err
    assert "OLT-C" in refused.err and len(refused.err.strip().splitlines()) == 1
    assert _dump(cli, "equipment_passwords", "olts") == before


def test_cli_rotate_key_refused_by_a_corrupt_subscriber_password(
        cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A sealed subscriber password that does not open (its tag altered) refuses the whole
    rotation with one line naming `subscriber_password.corrupt` and the login, exit 1 — not a
    traceback — and nothing is re-keyed."""
    _sealed_site(cli, monkeypatch, tmp_path)
    engine = create_engine(cli.url)  # type: ignore[attr-defined]
    try:
        with engine.begin() as connection:  # the last base64 quartet changed: the GCM tag fails
            stored = connection.execute(
                text("SELECT password FROM services WHERE login = 'ana'")).scalar_one()
            damaged = stored[:-4] + ("AAAA" if stored[-4:] != "AAAA" else "BBBB")
            connection.execute(text("UPDATE services SET password = :p WHERE login = 'ana'"), {"p": damaged})
    finally:
        engine.dispose()
    tables = ("equipment_passwords", "olts", "services", "history")
    before = _dump(cli, *tables)
    refused = cli("passwords", "rotate-key", "--new-key", KEY_B)
    assert refused.code == 1, refused.err
    assert "subscriber_password.corrupt" in refused.err and "ana" in refused.err
    assert len(refused.err.strip().splitlines()) == 1 and "Traceback" not in refused.err
    assert not any(s in refused.err for s in (SECRET, "pppoe-pw", KEY_A, KEY_B))
    assert _dump(cli, *tables) == before


# --- rotate-key --previous-key: out of the state older rotations left behind -------------------


def _old_rotation(cli: Cli, old: str, new: str) -> None:
    """What rotate-key did before it re-keyed the OLT passwords: equipment and subscriber
    passwords moved from `old` to `new`, committed; the OLT passwords stay under `old`."""
    engine = create_engine(cli.url)  # type: ignore[attr-defined]
    try:
        with Session(engine) as session, session.begin():
            ctx = Context(session=session, actor=load_actor(session, "admin"), now=NOW, zone=ZONE)
            ep.rotate_key(ctx, SecretsConfig(key=old), _key(new))
            subscriber_passwords.reseal_all(ctx, _key(old), _key(new))
    finally:
        engine.dispose()


def test_cli_rotate_key_previous_key_recovers_olt_passwords_left_behind(
        cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The state an older rotate-key left (A -> B with the OLT passwords still under A, B
    configured): a plain rotation to C refuses (exit 2 naming A's key id and --previous-key),
    so does one given a previous key that is not A; `--previous-key A` moves everything to C in
    one go (rekey history naming A for the OLTs), and with C configured every OLT, equipment
    and (sealed) subscriber password reads back, and the next rotation needs no previous key."""
    _sealed_site(cli, monkeypatch, tmp_path)
    _old_rotation(cli, KEY_A, KEY_B)
    monkeypatch.setenv("AAA_SECRETS_KEY", KEY_B)
    stranded = cli("olt", "show", "OLT-A", "--show-password")
    assert stranded.code == 2 and _key(KEY_A).key_id in stranded.err
    tables = ("equipment_passwords", "olts", "services", "history")
    before = _dump(cli, *tables)
    for extra in ([], ["--previous-key", KEY_D]):
        refused = cli("passwords", "rotate-key", "--new-key", KEY_C, *extra)
        assert refused.code == 2, refused.err
        assert "secrets.key" in refused.err and _key(KEY_A).key_id in refused.err and "OLT-A" in refused.err
        assert len(refused.err.strip().splitlines()) == 1
        assert not any(s in refused.err for s in (KEY_A, KEY_B, KEY_C, KEY_D, "olt-a-pw"))
        # The plain refusal points at the way out; the other names the key it tried.
        assert ("--previous-key" if not extra else _key(KEY_D).key_id) in refused.err
        assert _dump(cli, *tables) == before
    rotated = cli("passwords", "rotate-key", "--new-key", KEY_C, "--previous-key", KEY_A, "--format", "json")
    assert rotated.code == 0, rotated.err
    assert rotated.json == {"old_key_id": _key(KEY_B).key_id, "new_key_id": _key(KEY_C).key_id,
                            "entries": 1, "olt_passwords": 2, "subscriber_passwords": 1}
    assert not any(k in rotated.out for k in (KEY_A, KEY_B, KEY_C))
    monkeypatch.setenv("AAA_SECRETS_KEY", KEY_C)
    for name, password in (("OLT-A", "olt-a-pw"), ("OLT-B", "olt-b-pw")):
        shown = cli("olt", "show", name, "--show-password", "--format", "json")
        assert shown.code == 0, shown.err
        assert shown.json["password"] == password
    shown = cli("passwords", "show", "ana", "1", "--format", "json")
    assert shown.code == 0 and shown.json["password"] == SECRET
    opener = subscriber_passwords.opener(SecretsConfig(key=KEY_C, encrypt_subscriber_passwords=True))
    engine = create_engine(cli.url)  # type: ignore[attr-defined]
    try:
        with Session(engine) as session:
            assert opener(session.scalars(select(Service.password)).one()) == "pppoe-pw"
            key_ids = session.scalars(select(Olt.password_key_id).order_by(Olt.id)).all()
            assert key_ids == [_key(KEY_C).key_id, _key(KEY_C).key_id, None]
            assert [changes for _, changes in _history_of(session, "olt", "rekey")] == \
                [[_key(KEY_A).key_id, _key(KEY_C).key_id]] * 2
            assert [changes for _, changes in _history_of(session, ep.OBJECT_TYPE, "rekey")] == \
                [[_key(KEY_A).key_id, _key(KEY_B).key_id], [_key(KEY_B).key_id, _key(KEY_C).key_id]]
    finally:
        engine.dispose()
    again = cli("passwords", "rotate-key", "--new-key", KEY_D, "--format", "json")  # no longer stuck
    assert again.code == 0 and (again.json["entries"], again.json["olt_passwords"]) == (1, 2), again.err


def test_cli_rotate_key_previous_key_usage_errors(cli: Cli, monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    """--previous-key (given, from stdin or from a file) equal to the configured or the new key,
    both --previous-key and --previous-key-file, a malformed previous key, and both keys from
    stdin: exit 2 with one line, no key echoed, nothing changed."""
    monkeypatch.setenv("AAA_SECRETS_KEY", KEY_A)
    _cli_setup(cli)
    _cli_olts(cli)
    key_file = tmp_path / "b.key"
    key_file.write_text(KEY_B + "\n")
    tables = ("equipment_passwords", "olts", "services", "history")
    before = _dump(cli, *tables)
    monkeypatch.setattr("sys.stdin", io.StringIO(KEY_A + "\n"))
    for extra, expected in (
        (["--previous-key", KEY_A], "configured key"),
        (["--previous-key", "-"], "configured key"),  # read from stdin
        (["--previous-key-file", str(key_file)], "new key"),
        (["--previous-key", KEY_C, "--previous-key-file", str(key_file)], "--previous-key-file"),
        (["--previous-key", "not-a-key"], "--previous-key"),
    ):
        refused = cli("passwords", "rotate-key", "--new-key", KEY_B, *extra)
        assert refused.code == 2, refused.err
        assert expected in refused.err and len(refused.err.strip().splitlines()) == 1, refused.err
        assert not any(k in refused.err for k in (KEY_A, KEY_B, KEY_C, "not-a-key"))
    both_stdin = cli("passwords", "rotate-key", "--new-key", "-", "--previous-key", "-")
    assert both_stdin.code == 2 and "stdin" in both_stdin.err
    assert _dump(cli, *tables) == before
