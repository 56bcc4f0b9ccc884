"""Value codecs: one (decode, encode) pair per RADIUS data type.

A codec is picked once per attribute when the dictionary loads, so reading a value is a
single call through the attribute's codec with no dispatch on type names.  Decoders take
the raw attribute value and raise `MalformedPacket` for anything the type does not allow;
encoders take a Python value and raise `EncodeError`.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from aaa.radius.errors import EncodeError, MalformedPacket


@dataclass(frozen=True, slots=True)
class Tagged:
    """The value of a `has_tag` attribute (RFC 2868 §3): a tag 0..31 and a value."""

    tag: int
    value: str | bytes | int


AttrValue = str | bytes | int | Tagged

Decoder = Callable[[bytes], AttrValue]
Encoder = Callable[[object], bytes]


@dataclass(frozen=True, slots=True)
class Codec:
    """How one data type travels: `decode(raw) -> value`, `encode(value) -> raw`."""

    type_name: str
    decode: Decoder
    encode: Encoder


# --- decoders ---------------------------------------------------------------------------


def _bad(type_name: str, raw: bytes) -> MalformedPacket:
    return MalformedPacket(f"invalid {type_name} value of {len(raw)} octets: {raw.hex()}")


def decode_string(raw: bytes) -> str:
    # surrogateescape: NAS send Latin-1 logins too; the bytes survive a round trip.
    return raw.decode("utf-8", "surrogateescape")


def decode_octets(raw: bytes) -> bytes:
    return bytes(raw)


def decode_ipaddr(raw: bytes) -> str:
    if len(raw) != 4:
        raise _bad("ipaddr", raw)
    return socket.inet_ntoa(raw)


def decode_ipv6addr(raw: bytes) -> str:
    if len(raw) != 16:
        raise _bad("ipv6addr", raw)
    return str(ipaddress.IPv6Address(raw))


def decode_ipv6prefix(raw: bytes) -> str:
    # RFC 3162 §2.3: reserved, prefix length, then only as many prefix octets as needed.
    if not 2 <= len(raw) <= 18 or raw[1] > 128:
        raise _bad("ipv6prefix", raw)
    address = ipaddress.IPv6Address(raw[2:].ljust(16, b"\x00"))
    return str(ipaddress.IPv6Network((address, raw[1]), strict=False))


def decode_ipv4prefix(raw: bytes) -> str:
    # RFC 6572 §3.1: reserved, prefix length, four address octets.
    if len(raw) != 6 or raw[1] > 32:
        raise _bad("ipv4prefix", raw)
    address = ipaddress.IPv4Address(raw[2:])
    return str(ipaddress.IPv4Network((address, raw[1]), strict=False))


def decode_combo_ip(raw: bytes) -> str:
    if len(raw) == 4:
        return socket.inet_ntoa(raw)
    if len(raw) == 16:
        return str(ipaddress.IPv6Address(raw))
    raise _bad("combo-ip", raw)


def _fixed_int(type_name: str, size: int, signed: bool) -> Decoder:
    def decode(raw: bytes) -> int:
        if len(raw) != size:
            raise _bad(type_name, raw)
        return int.from_bytes(raw, "big", signed=signed)

    return decode


def decode_ether(raw: bytes) -> str:
    if len(raw) != 6:
        raise _bad("ether", raw)
    return raw.hex(":")


def decode_ifid(raw: bytes) -> str:
    if len(raw) != 8:
        raise _bad("ifid", raw)
    return ":".join(f"{group:x}" for group in struct.unpack("!4H", raw))


# --- encoders ---------------------------------------------------------------------------


def _wrong(type_name: str, value: object) -> EncodeError:
    return EncodeError(f"cannot encode {value!r} as {type_name}")


def encode_string(value: object) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    raise _wrong("string", value)


def encode_octets(value: object) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        # FreeRADIUS writes octets as 0x-prefixed hex.
        if value.startswith("0x"):
            try:
                return bytes.fromhex(value[2:])
            except ValueError:
                raise _wrong("octets", value) from None
        return value.encode("utf-8")
    raise _wrong("octets", value)


def encode_ipaddr(value: object) -> bytes:
    if isinstance(value, ipaddress.IPv4Address):
        return value.packed
    if isinstance(value, str):
        try:
            return socket.inet_pton(socket.AF_INET, value)
        except OSError:
            pass
    raise _wrong("ipaddr", value)


def encode_ipv6addr(value: object) -> bytes:
    try:
        if isinstance(value, ipaddress.IPv6Address):
            return value.packed
        if isinstance(value, str):
            return ipaddress.IPv6Address(value).packed
    except ValueError:
        pass
    raise _wrong("ipv6addr", value)


def _network(value: object, version: int) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
            network = value
        elif isinstance(value, str):
            network = ipaddress.ip_network(value, strict=False)
        else:
            raise _wrong(f"ipv{version}prefix", value)
    except ValueError:
        raise _wrong(f"ipv{version}prefix", value) from None
    if network.version != version:
        raise _wrong(f"ipv{version}prefix", value)
    return network


def encode_ipv6prefix(value: object) -> bytes:
    network = _network(value, 6)
    return bytes((0, network.prefixlen)) + network.network_address.packed


def encode_ipv4prefix(value: object) -> bytes:
    network = _network(value, 4)
    return bytes((0, network.prefixlen)) + network.network_address.packed


def encode_combo_ip(value: object) -> bytes:
    if isinstance(value, str) and ":" in value:
        return encode_ipv6addr(value)
    return encode_ipaddr(value)


def _fixed_int_encoder(type_name: str, size: int, signed: bool) -> Encoder:
    def encode(value: object) -> bytes:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _wrong(type_name, value)
        try:
            return value.to_bytes(size, "big", signed=signed)
        except OverflowError:
            raise EncodeError(f"{value} is out of range for {type_name}") from None

    return encode


_ETHER = re.compile(r"[0-9a-fA-F]{1,2}([:-])(?:[0-9a-fA-F]{1,2}\1){4}[0-9a-fA-F]{1,2}")
_IFID = re.compile(r"(?:[0-9a-fA-F]{1,4}:){3}[0-9a-fA-F]{1,4}")


def encode_ether(value: object) -> bytes:
    if isinstance(value, bytes) and len(value) == 6:
        return value
    if isinstance(value, str) and _ETHER.fullmatch(value):
        return bytes(int(part, 16) for part in re.split("[:-]", value))
    raise _wrong("ether", value)


def encode_ifid(value: object) -> bytes:
    if isinstance(value, bytes) and len(value) == 8:
        return value
    if isinstance(value, str) and _IFID.fullmatch(value):
        return struct.pack("!4H", *(int(part, 16) for part in value.split(":")))
    raise _wrong("ifid", value)


# --- tagged variants (RFC 2868 §3) -------------------------------------------------------


def _tagged_int(inner: Codec) -> Codec:
    # The tag takes the first octet of the four; the value is the remaining 24 bits.
    def decode(raw: bytes) -> AttrValue:
        if len(raw) != 4:
            raise _bad("tagged integer", raw)
        return Tagged(raw[0], int.from_bytes(raw[1:], "big"))

    def encode(value: object) -> bytes:
        tag, plain = (value.tag, value.value) if isinstance(value, Tagged) else (0, value)
        if not isinstance(plain, int) or not 0 <= plain < 1 << 24:
            raise _wrong("tagged integer", value)
        return bytes((_check_tag(tag),)) + plain.to_bytes(3, "big")

    return Codec(inner.type_name, decode, encode)


def _tagged_text(inner: Codec) -> Codec:
    # A first octet 0x00..0x1F is a tag; anything above is already the value.
    plain = cast(Callable[[bytes], str | bytes | int], inner.decode)  # never Tagged

    def decode(raw: bytes) -> AttrValue:
        if raw and raw[0] <= 0x1F:
            return Tagged(raw[0], plain(raw[1:]))
        return Tagged(0, plain(raw))

    def encode(value: object) -> bytes:
        if isinstance(value, Tagged):
            return bytes((_check_tag(value.tag),)) + inner.encode(value.value)
        return inner.encode(value)

    return Codec(inner.type_name, decode, encode)


def _check_tag(tag: int) -> int:
    if not 0 <= tag <= 0x1F:
        raise EncodeError(f"tag {tag} is outside 0..31")
    return tag


OCTETS = Codec("octets", decode_octets, encode_octets)

CODECS: dict[str, Codec] = {
    "string": Codec("string", decode_string, encode_string),
    "octets": OCTETS,
    "ipaddr": Codec("ipaddr", decode_ipaddr, encode_ipaddr),
    "ipv6addr": Codec("ipv6addr", decode_ipv6addr, encode_ipv6addr),
    "ipv6prefix": Codec("ipv6prefix", decode_ipv6prefix, encode_ipv6prefix),
    "ipv4prefix": Codec("ipv4prefix", decode_ipv4prefix, encode_ipv4prefix),
    "combo-ip": Codec("combo-ip", decode_combo_ip, encode_combo_ip),
    "integer": Codec("integer", _fixed_int("integer", 4, False), _fixed_int_encoder("integer", 4, False)),
    "integer64": Codec(
        "integer64", _fixed_int("integer64", 8, False), _fixed_int_encoder("integer64", 8, False)
    ),
    "date": Codec("date", _fixed_int("date", 4, False), _fixed_int_encoder("date", 4, False)),
    "byte": Codec("byte", _fixed_int("byte", 1, False), _fixed_int_encoder("byte", 1, False)),
    "short": Codec("short", _fixed_int("short", 2, False), _fixed_int_encoder("short", 2, False)),
    "signed": Codec("signed", _fixed_int("signed", 4, True), _fixed_int_encoder("signed", 4, True)),
    "ether": Codec("ether", decode_ether, encode_ether),
    "ifid": Codec("ifid", decode_ifid, encode_ifid),
}
# Spellings other dictionaries use for the same types.
CODECS["uint32"] = CODECS["integer"]
CODECS["uint16"] = CODECS["short"]
CODECS["uint8"] = CODECS["byte"]
CODECS["uint64"] = CODECS["integer64"]
CODECS["int32"] = CODECS["signed"]
CODECS["time_delta"] = CODECS["integer"]

_INT_TYPES = frozenset({"integer", "uint32", "time_delta"})


def codec_for(type_name: str, has_tag: bool = False) -> Codec:
    """The codec of a dictionary type; types we do not model (tlv, abinary...) are octets."""
    codec = CODECS.get(type_name, OCTETS)
    if not has_tag:
        return codec
    if type_name in _INT_TYPES:
        return _tagged_int(codec)
    return _tagged_text(codec)
