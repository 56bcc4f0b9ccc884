"""Encoding: typed values to attribute octets, and attribute octets to a packet.

Attributes encode to plain `bytes`, so a server can encode a subscriber's reply
attributes once and concatenate the blob into every Access-Accept.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from aaa.radius.codecs import Tagged, codec_for
from aaa.radius.dictionary import AttributeDef, Dictionary
from aaa.radius.errors import EncodeError
from aaa.radius.hiding import hide_password, salt_encrypt
from aaa.radius.packet import MAX_LENGTH, MIN_LENGTH, AttrRef

_HEADER = struct.Struct("!BBH")


def _hidden(
    attr: AttributeDef,
    value: object,
    secret: bytes | None,
    authenticator: bytes | None,
    salt: bytes | None,
) -> bytes:
    if secret is None or authenticator is None:
        raise EncodeError(f"{attr.name} is hidden: pass secret and the request authenticator")
    if attr.encrypt == 1:
        return hide_password(attr.encode_value(value), secret, authenticator)
    if attr.encrypt == 2:
        if not attr.has_tag:
            return salt_encrypt(attr.encode_value(value), secret, authenticator, salt)
        # RFC 2868 §3.5: the tag of a salted attribute is always present and not hidden.
        tag, plain = (value.tag, value.value) if isinstance(value, Tagged) else (0, value)
        if not 0 <= tag <= 0x1F:
            raise EncodeError(f"{attr.name}: tag {tag} is outside 0..31")
        inner = codec_for(attr.type_name).encode(plain)
        return bytes((tag,)) + salt_encrypt(inner, secret, authenticator, salt)
    raise EncodeError(f"{attr.name}: encrypt={attr.encrypt} is not supported")


def wrap(attr: AttributeDef, raw: bytes) -> bytes:
    """Attribute header(s) around an already encoded value, split if `concat` allows."""
    if attr.vendor:
        if attr.vendor_continuation:
            raise EncodeError(f"{attr.name}: vendor formats with continuation are not supported")
        type_size, length_size = attr.vendor_format
        room = 255 - 6 - type_size - length_size
    else:
        room = 253
    if len(raw) > room:
        if not attr.concat:
            raise EncodeError(
                f"{attr.name}: value of {len(raw)} octets exceeds the {room} one attribute "
                "holds and the attribute cannot be split"
            )
        return b"".join(wrap_one(attr, raw[i : i + room]) for i in range(0, len(raw), room))
    return wrap_one(attr, raw)


def wrap_one(attr: AttributeDef, raw: bytes) -> bytes:
    if not attr.vendor:
        return bytes((attr.number, len(raw) + 2)) + raw
    type_size, length_size = attr.vendor_format
    sub_len = len(raw) + type_size + length_size
    sub = attr.number.to_bytes(type_size, "big")
    if length_size:
        sub += sub_len.to_bytes(length_size, "big")
    return bytes((26, sub_len + 6)) + attr.vendor.to_bytes(4, "big") + sub + raw


def encode_attribute(
    attr: AttributeDef,
    value: object,
    *,
    secret: bytes | None = None,
    authenticator: bytes | None = None,
    salt: bytes | None = None,
) -> bytes:
    """Wire octets of one attribute (VSA wrapper included) holding `value`.

    Hidden attributes need `secret` and the Request Authenticator they hide against.
    """
    if attr.encrypt:
        return wrap(attr, _hidden(attr, value, secret, authenticator, salt))
    return wrap(attr, attr.encode_value(value))


def encode_attributes(
    dictionary: Dictionary,
    items: Iterable[tuple[AttrRef, object]],
    *,
    secret: bytes | None = None,
    authenticator: bytes | None = None,
) -> bytes:
    """Wire octets of several attributes, in order: a blob to reuse across packets."""
    out = []
    for ref, value in items:
        if isinstance(ref, AttributeDef):
            attr = ref
        elif isinstance(ref, str):
            attr = dictionary[ref]
        else:
            attr = dictionary.attribute(ref)
        out.append(encode_attribute(attr, value, secret=secret, authenticator=authenticator))
    return b"".join(out)


def encode_packet(code: int, identifier: int, authenticator: bytes, attributes: bytes) -> bytes:
    """A packet from its header fields and already encoded attributes (no signing)."""
    length = MIN_LENGTH + len(attributes)
    if length > MAX_LENGTH:
        raise EncodeError(f"packet of {length} octets exceeds {MAX_LENGTH}")
    if len(authenticator) != 16:
        raise EncodeError("the authenticator must be 16 octets")
    return _HEADER.pack(code, identifier, length) + authenticator + attributes
