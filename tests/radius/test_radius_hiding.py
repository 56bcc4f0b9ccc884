"""Hidden attributes: User-Password (RFC 2865 §5.2) and salt encryption (RFC 2868 §3.5,
RFC 2548 MS-MPPE keys) over several blocks."""

from __future__ import annotations

import hashlib

import pytest
from pyrad import packet as pyrad_packet
from pyrad.dictionary import Dictionary as PyradDictionary

from aaa.radius import (
    MalformedPacket,
    PacketCode,
    build_reply,
    build_request,
    decode,
    encode_attribute,
    encode_attributes,
    hide_password,
    load_dictionary,
    mppe_key_attribute_value,
    salt_decrypt,
    salt_encrypt,
    unhide_password,
)
from aaa.radius.dictionary import BUILTIN_DICTIONARY

DICT = load_dictionary()
SECRET = b"xyzzy5461"
AUTH = bytes(range(16))
SEND_KEY = bytes.fromhex("8B7CDC149B993A1BA118CB153F56DCCB")
# SEND_KEY salt-encrypted with salt 0x9234 against AUTH (pyrad 2.6 computes the same).
SEND_KEY_ENCRYPTED = bytes.fromhex("923412264d5a9c7c30dac8b01ccca9b218ef2a525074088be5d6c7450f8c68592818")


@pytest.mark.parametrize("size", range(0, 129))
def test_user_password_every_length(size: int) -> None:
    """Passwords of 0..128 octets hide to a multiple of 16 and unhide to themselves;
    pyrad unhides ours too."""
    password = bytes((33 + i % 90) for i in range(size))
    hidden = hide_password(password, SECRET, AUTH)
    assert len(hidden) == max(16, -(-size // 16) * 16)
    assert unhide_password(hidden, SECRET, AUTH) == password
    if size:
        pyrad = pyrad_packet.AuthPacket(secret=SECRET, authenticator=AUTH)
        assert pyrad.PwDecrypt(hidden).encode() == password


def test_user_password_bad_lengths() -> None:
    """Hidden values not 16..128 in steps of 16 are malformed; > 128 octets is refused."""
    for size in (0, 15, 17, 144):
        with pytest.raises(MalformedPacket):
            unhide_password(bytes(size), SECRET, AUTH)
    with pytest.raises(ValueError):
        hide_password(bytes(129), SECRET, AUTH)


def test_salt_encryption_known_vector() -> None:
    """A 16-octet MPPE key (two blocks with its length octet) matches the known vector."""
    salt = SEND_KEY_ENCRYPTED[:2]
    assert salt_encrypt(SEND_KEY, SECRET, AUTH, salt) == SEND_KEY_ENCRYPTED
    assert salt_decrypt(SEND_KEY_ENCRYPTED, SECRET, AUTH) == SEND_KEY
    assert mppe_key_attribute_value(SEND_KEY, SECRET, AUTH, salt) == SEND_KEY_ENCRYPTED


@pytest.mark.parametrize("size", [0, 1, 15, 16, 31, 32, 47, 100, 239])
def test_salt_encryption_round_trip_many_blocks(size: int) -> None:
    """Values spanning 1..15 blocks round-trip, and agree with pyrad both ways."""
    value = bytes((i * 7) & 0xFF for i in range(size))
    encrypted = salt_encrypt(value, SECRET, AUTH)
    assert encrypted[0] & 0x80
    assert len(encrypted) == 2 + -(-(size + 1) // 16) * 16
    assert salt_decrypt(encrypted, SECRET, AUTH) == value
    pyrad = pyrad_packet.AuthPacket(secret=SECRET, authenticator=AUTH)
    assert pyrad.SaltDecrypt(encrypted) == value
    assert salt_decrypt(pyrad.SaltCrypt(value), SECRET, AUTH) == value


def test_salt_decrypt_rejects_garbage() -> None:
    """Bad lengths, or a length octet larger than the data, are malformed."""
    for value in (b"", bytes(17), bytes(19)):
        with pytest.raises(MalformedPacket):
            salt_decrypt(value, SECRET, AUTH)
    # A ciphertext whose first plaintext octet (the length) says 255 but holds 15.
    salt = b"\x80\x01"
    first = hashlib.md5(SECRET + AUTH + salt).digest()[0] ^ 0xFF
    with pytest.raises(MalformedPacket, match="claims more"):
        salt_decrypt(salt + bytes((first,)) + bytes(15), SECRET, AUTH)
    with pytest.raises(ValueError):
        salt_encrypt(bytes(240), SECRET, AUTH)


def test_mppe_keys_in_access_accept() -> None:
    """MS-MPPE-Send/Recv-Key in our Access-Accept use the request authenticator; the NAS
    side (ours and pyrad) recovers the keys."""
    request = decode(build_request(PacketCode.ACCESS_REQUEST, 1, b"\x01\x03u", SECRET), DICT)
    blob = b"".join(
        encode_attribute(DICT[name], key, secret=SECRET, authenticator=request.authenticator)
        for name, key in (("MS-MPPE-Send-Key", SEND_KEY), ("MS-MPPE-Recv-Key", SEND_KEY[::-1]))
    )
    raw = build_reply(request, PacketCode.ACCESS_ACCEPT, SECRET, blob)
    reply = decode(raw, DICT)
    assert reply.get("MS-MPPE-Send-Key") == reply.get_raw("MS-MPPE-Send-Key")  # hidden
    assert reply.reveal("MS-MPPE-Send-Key", SECRET, request.authenticator) == SEND_KEY
    assert reply.reveal("MS-MPPE-Recv-Key", SECRET, request.authenticator) == SEND_KEY[::-1]
    pyrad_dict = PyradDictionary(str(BUILTIN_DICTIONARY))
    pyrad_reply = pyrad_packet.AuthPacket(packet=raw, dict=pyrad_dict, secret=SECRET)
    pyrad_reply.request_authenticator = request.authenticator
    assert pyrad_reply["MS-MPPE-Send-Key"] == [SEND_KEY]  # pyrad unhides on access


def test_hidden_attribute_needs_secret() -> None:
    """Encoding a hidden attribute without secret/authenticator is refused clearly."""
    with pytest.raises(ValueError, match="hidden"):
        encode_attributes(DICT, [("MS-MPPE-Send-Key", SEND_KEY)])
