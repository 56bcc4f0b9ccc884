"""Subscriber (PPPoE) passwords sealed at rest, reversibly: CHAP and MS-CHAP need the clear text.

With `[secrets] encrypt_subscriber_passwords = true`, management writes store
`aes1:<key id>:<base64 nonce+ciphertext+tag>` (AES-256-GCM under the `[secrets]` key);
readers — the daemon's view, the portal login — open it. Values without the prefix are
clear text from before the switch and keep working; `aaa passwords rotate-key` reseals
them all. The key never reaches a log, an error message or the history.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING

from Crypto.Cipher import AES
from sqlalchemy import select

from aaa.config import SecretsConfig
from aaa.db.models import Service
from management.context import Context

if TYPE_CHECKING:
    from management.equipment_passwords import SecretKey

# management.equipment_passwords imports management.services, which imports this module:
# its names are imported where they are used.

PREFIX = "aes1:"
_ASSOCIATED = b"subscriber password"
_NONCE, _TAG = 12, 16


def seal(key: SecretKey, plain: str) -> str:
    nonce = secrets.token_bytes(_NONCE)
    cipher = AES.new(key.key, AES.MODE_GCM, nonce=nonce, mac_len=_TAG)
    cipher.update(_ASSOCIATED)
    ciphertext, tag = cipher.encrypt_and_digest(plain.encode("utf-8"))
    return f"{PREFIX}{key.key_id}:{base64.b64encode(nonce + ciphertext + tag).decode('ascii')}"


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)


def unseal(key: SecretKey | None, stored: str) -> str:
    """The clear password; a value stored before encryption was switched on is returned as is."""
    from management.equipment_passwords import SecretsKeyError

    if not is_sealed(stored):
        return stored
    key_id, _, blob = stored[len(PREFIX):].partition(":")
    if key is None:
        raise SecretsKeyError("secrets.key: subscriber passwords are encrypted and no key is configured")
    if key_id != key.key_id:
        raise SecretsKeyError(f"secrets.key: a subscriber password is sealed with key {key_id}, "
                              f"the configured key is {key.key_id}")
    raw = base64.b64decode(blob)
    cipher = AES.new(key.key, AES.MODE_GCM, nonce=raw[:_NONCE], mac_len=_TAG)
    cipher.update(_ASSOCIATED)
    return cipher.decrypt_and_verify(raw[_NONCE:-_TAG], raw[-_TAG:]).decode("utf-8")


def for_storage(ctx: Context, plain: str) -> str:
    """What a management write stores: sealed when the context carries a key."""
    return seal(ctx.password_key, plain) if ctx.password_key is not None else plain


def sealing_key(config: SecretsConfig) -> SecretKey | None:
    """The key new passwords are sealed with, or None when encryption is off."""
    from management.equipment_passwords import current_key

    return current_key(config) if config.encrypt_subscriber_passwords else None


def opener(config: SecretsConfig) -> Callable[[str], str]:
    """A reader for stored passwords; the key is loaded on the first sealed value only, so a
    deployment without encryption needs no key."""
    from management.equipment_passwords import current_key

    loaded: list[SecretKey] = []

    def open_password(stored: str) -> str:
        if not is_sealed(stored):
            return stored
        if not loaded:
            loaded.append(current_key(config))
        return unseal(loaded[0], stored)

    return open_password


def any_sealed(ctx: Context) -> bool:
    sealed = select(Service.id).where(Service.password.startswith(PREFIX)).limit(1)
    return ctx.session.scalar(sealed) is not None


def reseal_all(ctx: Context, old: SecretKey | None, new: SecretKey, previous: SecretKey | None = None) -> int:
    """Seal every stored subscriber password with `new` (clear ones included); the count.

    `previous`, when given, opens the values an earlier rotation left sealed under it; a value
    under any other key refuses the whole rotation (`SecretsKeyError`), and so does a sealed
    value that does not open (altered or damaged: `subscriber_password.corrupt`); the caller
    rolls back."""
    from management.errors import RuleViolation

    changed = 0
    for service in ctx.session.scalars(select(Service).order_by(Service.id)):
        stored = service.password
        key_id, sep, _ = stored[len(PREFIX):].partition(":")
        sealed_under = key_id if is_sealed(stored) and sep else None
        if sealed_under == new.key_id:
            continue
        # Under `previous`: opened with it. Anything else goes to the configured key, whose
        # unseal refuses a value under any other key (SecretsKeyError).
        key = previous if previous is not None and sealed_under == previous.key_id else old
        try:
            plain = unseal(key, stored)
        except (ValueError, IndexError):  # bad base64, a short blob, a failed tag, bad UTF-8
            raise RuleViolation("subscriber_password.corrupt",
                                f"the password of {service.login} does not decrypt: the stored value "
                                "was altered or damaged; nothing was rotated") from None
        service.password = seal(new, plain)
        changed += 1
    ctx.session.flush()
    return changed
