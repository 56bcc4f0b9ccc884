"""Subscriber passwords sealed at rest: stored sealed, opened for the daemon and the portal,
legacy clear values still valid, resealed by `aaa passwords rotate-key`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from aaa.config import SecretsConfig
from aaa.db.models import Service
from aaa.db.views import load_view
from management import subscriber_passwords
from management.context import Context
from management.equipment_passwords import SecretKey, SecretsKeyError, generate_key
from management.tickets import authenticate_subscriber
from tests import factories
from tests.conftest import CliResult

KEY = generate_key()


def raw_password(url: str, login: str) -> str:
    engine = create_engine(url)
    with engine.connect() as connection:
        value = connection.execute(text("SELECT password FROM services WHERE login = :l"),
                                   {"l": login}).scalar_one()
    engine.dispose()
    return str(value)


def test_seal_and_unseal_round_trip() -> None:
    """A sealed value opens to the same text with its key, refuses another key, and a clear
    legacy value is returned as it is."""
    key = SecretKey.from_base64(KEY, "k")
    sealed = subscriber_passwords.seal(key, "s3nha-ção")
    assert sealed.startswith("aes1:") and "s3nha" not in sealed
    assert subscriber_passwords.unseal(key, sealed) == "s3nha-ção"
    with pytest.raises(SecretsKeyError):
        subscriber_passwords.unseal(SecretKey.from_base64(generate_key(), "k"), sealed)
    assert subscriber_passwords.unseal(None, "plain") == "plain"
    with pytest.raises(SecretsKeyError):
        subscriber_passwords.unseal(None, sealed)


def test_writes_seal_and_readers_open(ctx: Context) -> None:
    """With a key in the context the stored value is sealed; the view and the portal login
    see the clear password; values stored before stay valid."""
    key = SecretKey.from_base64(KEY, "k")
    factories.plan(ctx)
    owner = factories.customer(ctx)
    factories.service(ctx, "legacy", owner=owner, password="velha")  # before encryption
    sealing = Context(ctx.session, ctx.actor, ctx.now, ctx.zone, password_key=key)
    factories.service(sealing, "ana", owner=owner, password="s3nha")
    stored = ctx.session.scalar(select(Service.password).where(Service.login == "ana"))
    assert stored is not None and stored.startswith("aes1:") and "s3nha" not in stored
    opener = subscriber_passwords.opener(SecretsConfig(key=KEY, encrypt_subscriber_passwords=True))
    view = load_view(ctx.session, opener)
    assert view.services_by_login["ana"].password == "s3nha"
    assert view.services_by_login["legacy"].password == "velha"
    assert authenticate_subscriber(ctx.session, owner.document, "s3nha", opener) is not None
    assert authenticate_subscriber(ctx.session, owner.document, "velha", opener) is not None
    assert authenticate_subscriber(ctx.session, owner.document, "errada", opener) is None


def test_cli_seals_and_rotation_reseals(cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    """Through the CLI with encryption on: the column holds no clear text, `explain` still
    decides, rotate-key reseals every subscriber password (the old key no longer opens them)."""
    monkeypatch.setenv("AAA_SECRETS_KEY", KEY)
    url = cli.url  # type: ignore[attr-defined]
    (tmp_path / "aaa.toml").write_text("[secrets]\nencrypt_subscriber_passwords = true\n")  # ./aaa.toml
    assert cli("plan", "add", "P", "--download", "1000", "--upload", "500").code == 0
    assert cli("nas", "add", "mk", "--ip", "10.0.0.1", "--secret", "x", "--vendor", "mikrotik").code == 0
    assert cli("customer", "add", "--name", "Ana", "--document", factories.cpf()).code == 0
    assert cli("service", "add", "--customer", "1", "--plan", "P", "--login", "ana",
               "--password", "s3nha-forte").code == 0
    sealed = raw_password(url, "ana")
    assert sealed.startswith("aes1:") and "s3nha" not in sealed
    explained = cli("explain", "ana", "--format", "json")
    assert explained.code == 0 and explained.json["verdict"] == "accept"
    new_key = generate_key()
    rotated = cli("passwords", "rotate-key", "--new-key", new_key, "--format", "json")
    assert rotated.code == 0, rotated.err
    assert rotated.json["subscriber_passwords"] == 1
    resealed = raw_password(url, "ana")
    assert resealed != sealed and resealed.startswith("aes1:")
    assert subscriber_passwords.unseal(SecretKey.from_base64(new_key, "k"), resealed) == "s3nha-forte"
    with pytest.raises(SecretsKeyError):
        subscriber_passwords.unseal(SecretKey.from_base64(KEY, "k"), resealed)
