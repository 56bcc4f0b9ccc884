"""Equipment passwords (Documentação de Senhas): CPE, ONU and Wi-Fi credentials per service.

The password of each entry is stored only AES-256-GCM encrypted: a random 96-bit nonce per
value, the entry's id as associated data (a ciphertext copied onto another entry does not
decrypt), and the id of the key that encrypted it (`key_id`, a fingerprint of the key, not
the key) so that a rotation knows what it holds and a wrong key is told apart from damage.

Key problems are configuration problems: without a key, or with a key other than the one
the entries were encrypted with, the functions raise `SecretsKeyError` (a `ConfigError`,
exit 2 naming `secrets.key`). A value that does not authenticate under the right key was
altered in the database: `RuleViolation("equipment_password.corrupt")`.

Permissions: `passwords.view` to see a password, `passwords.edit` to add, change, delete
and rotate the key; listing the entries (no passwords) takes either of the two, as the
whole screen sits behind the permission in HubSoft. Every view of a password is a history row. The clear
password never reaches the history (only "set"/"changed"), a listing, an exception message
or a log line.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from Crypto.Cipher import AES
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from aaa.config import ConfigError, SecretsConfig, decode_secrets_key
from aaa.db.models import Service
from aaa.db.models_secrets import EquipmentPassword
from management import audit
from management.context import Context
from management.errors import NotFound, RuleViolation
from management.services import find_service

OBJECT_TYPE = "equipment_password"
NONCE_BYTES = 12
TAG_BYTES = 16
MAX_PASSWORD_LENGTH = 256
MIN_SUGGESTED_LENGTH = 8
MAX_SUGGESTED_LENGTH = 128

# Suggested passwords: no look-alikes (0/O/o, 1/l/I/i), no quotes, backquote, backslash,
# spaces or brackets; symbols that sit on the first symbol page of phone keyboards (or next
# to it) and that router CLIs do not treat specially ($ expands variables, ? asks for help).
LOWER = "".join(c for c in string.ascii_lowercase if c not in "ilo")
UPPER = "".join(c for c in string.ascii_uppercase if c not in "IO")
DIGITS = "23456789"
SYMBOLS = "@#&*+-=!"
CLASSES = (LOWER, UPPER, DIGITS, SYMBOLS)
ALPHABET = "".join(CLASSES)


class SecretsKeyError(ConfigError):
    """No usable key for equipment passwords (exit 2, naming the configuration key)."""


# --- keys -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SecretKey:
    """An AES-256 key and its public fingerprint; `repr` never shows the key."""

    key: bytes = field(repr=False)
    key_id: str = ""

    @classmethod
    def from_bytes(cls, key: bytes) -> SecretKey:
        if len(key) != 32:
            raise ValueError("an equipment password key has 32 bytes")
        fingerprint = hashlib.sha256(b"aaa equipment password key id\0" + key).hexdigest()[:16]
        return cls(key=key, key_id=fingerprint)

    @classmethod
    def from_base64(cls, value: str, name: str) -> SecretKey:
        """Parse a base64 key; errors name `name` and never echo the value."""
        try:
            return cls.from_bytes(decode_secrets_key(value, name))
        except ConfigError as exc:
            raise SecretsKeyError(str(exc)) from None

    def encrypt(self, plain: str, entry_id: int) -> str:
        nonce = secrets.token_bytes(NONCE_BYTES)
        cipher = AES.new(self.key, AES.MODE_GCM, nonce=nonce, mac_len=TAG_BYTES)
        cipher.update(_associated_data(entry_id))
        ciphertext, tag = cipher.encrypt_and_digest(plain.encode("utf-8"))
        return base64.b64encode(nonce + ciphertext + tag).decode("ascii")

    def decrypt(self, blob: str, entry_id: int) -> str:
        """The clear text; `ValueError` when the value does not authenticate."""
        raw = base64.b64decode(blob, validate=True)
        if len(raw) < NONCE_BYTES + TAG_BYTES:
            raise ValueError("too short")
        nonce, ciphertext, tag = raw[:NONCE_BYTES], raw[NONCE_BYTES:-TAG_BYTES], raw[-TAG_BYTES:]
        cipher = AES.new(self.key, AES.MODE_GCM, nonce=nonce, mac_len=TAG_BYTES)
        cipher.update(_associated_data(entry_id))
        return cipher.decrypt_and_verify(ciphertext, tag).decode("utf-8")


def _associated_data(entry_id: int) -> bytes:
    return f"equipment_passwords:{entry_id}".encode()


def generate_key() -> str:
    """A new random key, base64 (for `secrets.key`, `key_file` or AAA_SECRETS_KEY)."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def current_key(config: SecretsConfig) -> SecretKey:
    """The configured key: `secrets.key` (or AAA_SECRETS_KEY), else `secrets.key_file`."""
    if config.key:
        return SecretKey.from_base64(config.key, "secrets.key")
    if config.key_file:
        try:
            content = Path(config.key_file).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or "not a base64 text file"
            raise SecretsKeyError(f"secrets.key_file: cannot read {config.key_file}: {reason}") from None
        return SecretKey.from_base64(content, "secrets.key_file")
    raise SecretsKeyError(
        "secrets.key: no key for equipment passwords; set secrets.key or secrets.key_file, "
        "or AAA_SECRETS_KEY (make one with `aaa passwords generate-key`)")


def decrypt_or_refuse(key: SecretKey, blob: str, entry_id: int, rule: str, what: str,
                      rotating: bool = False) -> str:
    """`key.decrypt`, a value that does not authenticate refused as `rule` (exit 1) naming
    `what`; `rotating`: the message says the rotation as a whole was refused."""
    try:
        return key.decrypt(blob, entry_id)
    except (ValueError, UnicodeDecodeError):
        raise RuleViolation(rule, f"{what} does not decrypt: the stored value was altered or damaged"
                                  + ("; nothing was rotated" if rotating else "")) from None


def opening_key(key_id: str | None, configured: SecretKey, previous: SecretKey | None) -> SecretKey | None:
    """The key that opens a value stored under `key_id` during a rotation: the configured one,
    or the `previous` key an earlier rotation left values under; None for any other key."""
    if key_id == configured.key_id:
        return configured
    if previous is not None and key_id == previous.key_id:
        return previous
    return None


def _wrong_key(entry_key_id: str, key: SecretKey, what: str,
               previous: SecretKey | None = None) -> SecretsKeyError:
    if previous is not None:
        return SecretsKeyError(
            f"secrets.key: {what} encrypted with key {entry_key_id}, neither the configured key "
            f"{key.key_id} nor the previous key {previous.key_id}; nothing was rotated")
    return SecretsKeyError(
        f"secrets.key: {what} encrypted with key {entry_key_id}, but the configured key is "
        f"{key.key_id} (wrong key, or the configuration was not updated after "
        "`aaa passwords rotate-key`)")


def _guard_key(session: Session, key: SecretKey) -> None:
    """Refuse to write with a key other than the one every stored entry uses.

    On PostgreSQL the table is locked against a concurrent rotation first (ROW EXCLUSIVE
    conflicts with the rotation's EXCLUSIVE lock), so a writer either finishes before the
    rotation (which then re-encrypts its entry) or sees the rotated entries and is refused.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE equipment_passwords IN ROW EXCLUSIVE MODE"))
    other = session.scalar(select(EquipmentPassword.key_id)
                           .where(EquipmentPassword.key_id != key.key_id).limit(1))
    if other is not None:
        raise _wrong_key(other, key, "the stored equipment passwords were")


# --- suggested passwords ------------------------------------------------------------------


def suggest_password(length: int) -> str:
    """A strong password from `secrets`: at least one lower, upper, digit and symbol."""
    if not MIN_SUGGESTED_LENGTH <= length <= MAX_SUGGESTED_LENGTH:
        raise RuleViolation("equipment_password.length",
                            f"suggested passwords have {MIN_SUGGESTED_LENGTH} to "
                            f"{MAX_SUGGESTED_LENGTH} characters, not {length}")
    chars = [secrets.choice(group) for group in CLASSES]
    chars += [secrets.choice(ALPHABET) for _ in range(length - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)


# --- entries ------------------------------------------------------------------------------

FIELDS = ("kind", "username", "note")


def _clean(value: str | None, name: str, limit: int | None, required: bool = False) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        if required:
            raise RuleViolation(f"equipment_password.{name}_required", f"{name} is required")
        return None
    if limit is not None and len(value) > limit:
        raise RuleViolation(f"equipment_password.{name}_too_long", f"{name} has more than {limit} characters")
    return value


def _check_password(password: str) -> str:
    # Never echo the value: the messages only say what is wrong with it.
    if not password:
        raise RuleViolation("equipment_password.password_required", "the password is empty")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise RuleViolation("equipment_password.password_too_long",
                            f"the password has more than {MAX_PASSWORD_LENGTH} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in password):
        raise RuleViolation("equipment_password.password_invalid",
                            "the password holds control characters")
    return password


def list_entries(ctx: Context, login: str) -> list[EquipmentPassword]:
    """The entries of a service, without their passwords (`passwords.view` or `passwords.edit`)."""
    actor = ctx.actor
    if not (actor.is_admin or {"passwords.view", "passwords.edit"} & actor.permissions):
        ctx.require("passwords.view")
    service = find_service(ctx.session, login, actor=ctx.actor)
    return list(ctx.session.scalars(
        select(EquipmentPassword).where(EquipmentPassword.service_id == service.id)
        .order_by(EquipmentPassword.id)))


def get_entry(session: Session, login: str, entry_id: int) -> EquipmentPassword:
    service = find_service(session, login)
    entry = session.get(EquipmentPassword, entry_id)
    if entry is None or entry.service_id != service.id:
        raise NotFound("equipment_password", f"{entry_id} of {login}")
    return entry


def reveal(ctx: Context, config: SecretsConfig, login: str, entry_id: int) -> tuple[EquipmentPassword, str]:
    """The clear password of one entry (`passwords.view`); the view is written to history."""
    ctx.require("passwords.view")
    entry = get_entry(ctx.session, login, entry_id)
    key = current_key(config)
    if entry.key_id != key.key_id:
        raise _wrong_key(entry.key_id, key, f"equipment password {entry.id} was")
    password = decrypt_or_refuse(key, entry.password_encrypted, entry.id, "equipment_password.corrupt",
                                 f"equipment password {entry.id}")
    audit.record(ctx, OBJECT_TYPE, entry.id, "view", {}, customer_id=_customer_id(entry, ctx.session),
                 note=f"{login}: {entry.kind}")
    return entry, password


def _customer_id(entry: EquipmentPassword, session: Session) -> int | None:
    return session.scalar(select(Service.customer_id).where(Service.id == entry.service_id))


def add_entry(ctx: Context, config: SecretsConfig, login: str, kind: str, password: str,
              username: str | None = None, note: str | None = None) -> EquipmentPassword:
    """Document a credential of the service's equipment (`passwords.edit`)."""
    ctx.require("passwords.edit")
    service = find_service(ctx.session, login, actor=ctx.actor)
    kind_clean = _clean(kind, "kind", 100, required=True)
    username = _clean(username, "username", 200)
    note = _clean(note, "note", None)
    _check_password(password)
    key = current_key(config)
    _guard_key(ctx.session, key)
    who = ctx.actor.login
    entry = EquipmentPassword(service_id=service.id, kind=kind_clean, username=username,
                              password_encrypted="", key_id=key.key_id, note=note,
                              created_at=ctx.now, created_by=who, updated_at=ctx.now, updated_by=who)
    ctx.session.add(entry)
    ctx.session.flush()  # the id is the associated data of the ciphertext
    entry.password_encrypted = key.encrypt(password, entry.id)
    changes: dict[str, Any] = audit.diff({}, audit.snapshot(entry, FIELDS))
    changes["password"] = "set"
    audit.record(ctx, OBJECT_TYPE, entry.id, "create", changes, customer_id=service.customer_id,
                 note=f"{login}: {entry.kind}")
    ctx.session.flush()
    return entry


_UNSET: Any = object()


def edit_entry(ctx: Context, config: SecretsConfig, login: str, entry_id: int, *,
               kind: str | None = None, username: str | None = _UNSET, note: str | None = _UNSET,
               password: str | None = None) -> EquipmentPassword:
    """Change fields of an entry (`passwords.edit`); an empty username or note clears it."""
    ctx.require("passwords.edit")
    entry = get_entry(ctx.session, login, entry_id)
    before = audit.snapshot(entry, FIELDS)
    if kind is not None:
        entry.kind = _clean(kind, "kind", 100, required=True) or entry.kind
    if username is not _UNSET:
        entry.username = _clean(username, "username", 200)
    if note is not _UNSET:
        entry.note = _clean(note, "note", None)
    changes: dict[str, Any] = audit.diff(before, audit.snapshot(entry, FIELDS))
    if password is not None:
        _check_password(password)
        key = current_key(config)
        _guard_key(ctx.session, key)
        entry.password_encrypted = key.encrypt(password, entry.id)
        entry.key_id = key.key_id
        changes["password"] = "changed"
    if not changes:
        raise RuleViolation("equipment_password.unchanged", "nothing to change")
    entry.updated_at, entry.updated_by = ctx.now, ctx.actor.login
    audit.record(ctx, OBJECT_TYPE, entry.id, "edit", changes,
                 customer_id=_customer_id(entry, ctx.session), note=f"{login}: {entry.kind}")
    ctx.session.flush()
    return entry


def delete_entry(ctx: Context, login: str, entry_id: int) -> EquipmentPassword:
    """Remove an entry (`passwords.edit`); history keeps what it was, without the password."""
    ctx.require("passwords.edit")
    entry = get_entry(ctx.session, login, entry_id)
    changes: dict[str, Any] = audit.diff(audit.snapshot(entry, FIELDS), {})
    changes["password"] = "deleted"
    audit.record(ctx, OBJECT_TYPE, entry.id, "delete", changes,
                 customer_id=_customer_id(entry, ctx.session), note=f"{login}: {entry.kind}")
    ctx.session.delete(entry)
    ctx.session.flush()
    return entry


@dataclass(frozen=True, slots=True)
class Rotation:
    old_key_id: str
    new_key_id: str
    entries: int


def rotate_key(ctx: Context, config: SecretsConfig, new_key: SecretKey,
               previous: SecretKey | None = None) -> Rotation:
    """Re-encrypt every entry from the configured key to `new_key` in the caller's transaction.

    `previous`, when given, is a key an earlier rotation left some entries under: they are
    opened with it and moved to `new_key` as well (their history row names it as the old key).
    All or nothing: an entry under any other key, or one that does not decrypt, refuses the
    whole rotation. Afterwards the configuration must name the new key.
    """
    ctx.require("passwords.edit")
    old_key = current_key(config)
    if new_key.key_id == old_key.key_id:
        raise RuleViolation("equipment_password.same_key", "the new key is the configured key")
    session = ctx.session
    if session.get_bind().dialect.name == "postgresql":
        # Writers hold ROW EXCLUSIVE while they write: wait for them, keep new ones out.
        session.execute(text("LOCK TABLE equipment_passwords IN EXCLUSIVE MODE"))
    entries = list(session.scalars(select(EquipmentPassword).order_by(EquipmentPassword.id)))
    history: list[dict[str, Any]] = []
    customers = _customers_of(session, {e.service_id for e in entries})
    for entry in entries:
        if entry.key_id == new_key.key_id:
            continue
        from_key = opening_key(entry.key_id, old_key, previous)
        if from_key is None:
            raise _wrong_key(entry.key_id, old_key, f"equipment password {entry.id} was", previous)
        plain = decrypt_or_refuse(from_key, entry.password_encrypted, entry.id,
                                  "equipment_password.corrupt", f"equipment password {entry.id}",
                                  rotating=True)
        entry.password_encrypted = new_key.encrypt(plain, entry.id)
        entry.key_id = new_key.key_id
        history.append({"object_type": OBJECT_TYPE, "object_id": entry.id, "action": "rekey",
                        "changes": {"key_id": [from_key.key_id, new_key.key_id]},
                        "customer_id": customers.get(entry.service_id)})
    session.flush()
    audit.record_many(ctx, history)
    return Rotation(old_key.key_id, new_key.key_id, len(history))


def _customers_of(session: Session, service_ids: set[int]) -> dict[int, int]:
    if not service_ids:
        return {}
    rows = session.execute(select(Service.id, Service.customer_id).where(Service.id.in_(service_ids)))
    return {service_id: customer_id for service_id, customer_id in rows}


def as_dict(entry: EquipmentPassword, login: str, password: str | None = None) -> dict[str, Any]:
    """The entry for output; the password only when given (show, or a suggested one on add)."""
    data: dict[str, Any] = {
        "id": entry.id, "login": login, "kind": entry.kind, "username": entry.username,
        "note": entry.note, "key_id": entry.key_id,
        "created_at": entry.created_at.isoformat(), "created_by": entry.created_by,
        "updated_at": entry.updated_at.isoformat(), "updated_by": entry.updated_by,
    }
    if password is not None:
        data["password"] = password
    return data
