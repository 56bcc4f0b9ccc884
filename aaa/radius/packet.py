"""Decoding: bytes in, a `Packet` out.

`decode` validates the framing strictly (RFC 2865 §3) and splits the attributes into
(key, raw value) pairs; nothing is typed until asked for.  Vendor-Specific attributes in
the recommended layout are split into their sub-attributes, keyed (vendor, type).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass, field
from typing import cast

from aaa.radius.codecs import AttrValue, Tagged, codec_for
from aaa.radius.dictionary import AttributeDef, AttrKey, Dictionary
from aaa.radius.errors import MalformedPacket
from aaa.radius.hiding import salt_decrypt, unhide_password

MIN_LENGTH = 20
MAX_LENGTH = 4096
MESSAGE_AUTHENTICATOR = 80
PROXY_STATE = 33
_SPECIAL_KINDS = frozenset((26, MESSAGE_AUTHENTICATOR, PROXY_STATE))  # decode looks closer at these

# Where a Message-Authenticator is: absent, or present more than once (never valid).
NO_MA = -1
DUPLICATE_MA = -2

AttrRef = str | AttributeDef | AttrKey


@dataclass(frozen=True, slots=True)
class Packet:
    """A decoded RADIUS packet; attribute values are typed on access."""

    code: int
    identifier: int
    authenticator: bytes
    attributes: tuple[tuple[AttrKey, bytes], ...]
    raw: bytes = field(repr=False)
    dictionary: Dictionary = field(repr=False, compare=False)
    # Offset in `raw` of the Message-Authenticator attribute, or NO_MA / DUPLICATE_MA.
    message_authenticator_at: int = field(default=NO_MA, repr=False)
    proxy_state_count: int = field(default=0, repr=False)  # a reply must echo them all

    # --- raw access -------------------------------------------------------------------

    def _def(self, attr: AttrRef) -> AttributeDef:
        if isinstance(attr, AttributeDef):
            return attr
        if isinstance(attr, str):
            return self.dictionary[attr]
        return self.dictionary.attribute(attr)

    def get_raw(self, attr: AttrRef) -> bytes | None:
        """The raw value of the first occurrence, or None."""
        # Numeric keys (the hot paths) need no dictionary lookup: a key is its own identity.
        key = attr if type(attr) is int or type(attr) is tuple else self._def(attr).key
        for k, raw in self.attributes:
            if k == key:
                return raw
        return None

    def first_values(self) -> dict[AttrKey, bytes]:
        """Attribute key -> raw value of its first occurrence, in one pass."""
        return dict(reversed(self.attributes))

    def get_all_raw(self, attr: AttrRef) -> list[bytes]:
        key = self._def(attr).key
        return [raw for k, raw in self.attributes if k == key]

    def __contains__(self, attr: AttrRef) -> bool:
        return self.get_raw(attr) is not None

    @property
    def has_message_authenticator(self) -> bool:
        return self.message_authenticator_at != NO_MA

    # --- typed access -----------------------------------------------------------------

    def get(self, attr: AttrRef, default: AttrValue | None = None) -> AttrValue | None:
        """The typed value of the first occurrence (all of them joined for `concat`).

        Hidden attributes (encrypt=1/2) come back as their raw octets; use `reveal`.
        """
        definition = self._def(attr)
        if definition.concat:
            parts = self.get_all_raw(definition)
            return b"".join(parts) if parts else default
        raw = self.get_raw(definition)
        if raw is None:
            return default
        if definition.encrypt:
            return raw
        return definition.codec.decode(raw)

    def get_all(self, attr: AttrRef) -> list[AttrValue]:
        definition = self._def(attr)
        raws = self.get_all_raw(definition)
        if definition.encrypt:
            return list(raws)
        decode = definition.codec.decode
        return [decode(raw) for raw in raws]

    def __getitem__(self, attr: AttrRef) -> AttrValue:
        value = self.get(attr)
        if value is None:
            raise KeyError(attr)
        return value

    def items(self) -> Iterator[tuple[AttributeDef, AttrValue]]:
        """Every attribute in wire order with its typed value (hidden ones raw)."""
        lookup = self.dictionary.attribute
        for key, raw in self.attributes:
            definition = lookup(key)
            yield definition, raw if definition.encrypt else definition.codec.decode(raw)

    # --- hidden attributes -------------------------------------------------------------

    def reveal(
        self, attr: AttrRef, secret: bytes, request_authenticator: bytes | None = None
    ) -> AttrValue | None:
        """Decrypt a hidden attribute (User-Password, Tunnel-Password, MS-MPPE-*-Key).

        The key stream uses the Request Authenticator: this packet's own for a request,
        `request_authenticator` (the original request's) for a reply.
        """
        definition = self._def(attr)
        raw = self.get_raw(definition)
        if raw is None:
            return None
        authenticator = request_authenticator or self.authenticator
        return reveal_value(definition, raw, secret, authenticator)

    def user_password(self, secret: bytes) -> bytes | None:
        """The cleartext User-Password (attribute 2), or None if absent."""
        for key, raw in self.attributes:
            if key == 2:
                return unhide_password(raw, secret, self.authenticator)
        return None


def reveal_value(definition: AttributeDef, raw: bytes, secret: bytes, authenticator: bytes) -> AttrValue:
    encrypt = definition.encrypt
    if encrypt == 1:
        return definition.codec.decode(unhide_password(raw, secret, authenticator))
    if encrypt == 2:
        if definition.has_tag:
            # RFC 2868 §3.5: the tag octet is always there and is not encrypted.
            if not raw:
                raise MalformedPacket(f"{definition.name} is empty")
            plain = salt_decrypt(raw[1:], secret, authenticator)
            inner = codec_for(definition.type_name).decode(plain)
            return Tagged(raw[0], cast(str | bytes | int, inner))
        return definition.codec.decode(salt_decrypt(raw, secret, authenticator))
    if encrypt:
        raise MalformedPacket(f"{definition.name} uses unsupported encrypt={encrypt}")
    return definition.codec.decode(raw)


def _split_vsa(data: bytes, start: int, end: int, vendor: int) -> list[tuple[AttrKey, bytes]]:
    """Sub-attributes of one Vendor-Specific value, or [] if not in the standard layout."""
    subs: list[tuple[AttrKey, bytes]] = []
    pos = start
    while pos < end:
        if pos + 2 > end:
            return []
        sub_len = data[pos + 1]
        if sub_len < 2 or pos + sub_len > end:
            return []
        subs.append(((vendor, data[pos]), data[pos + 2 : pos + sub_len]))
        pos += sub_len
    return subs


# A frozen dataclass __init__ goes through object.__setattr__ per field; decode is hot,
# so it fills the slots through their descriptors instead (same result, half the cost).
_SLOT_SETTERS = tuple(
    Packet.__dict__[name].__set__
    for name in (
        "code",
        "identifier",
        "authenticator",
        "attributes",
        "raw",
        "dictionary",
        "message_authenticator_at",
        "proxy_state_count",
    )
)


def decode(data: bytes, dictionary: Dictionary) -> Packet:
    """Parse a datagram.  Raises `MalformedPacket` for anything RFC 2865 §3 forbids."""
    size = len(data)
    if size < MIN_LENGTH:
        raise MalformedPacket(f"packet of {size} octets is shorter than {MIN_LENGTH}")
    if size > MAX_LENGTH:
        raise MalformedPacket(f"packet of {size} octets is longer than {MAX_LENGTH}")
    length = (data[2] << 8) | data[3]
    if length < MIN_LENGTH:
        raise MalformedPacket(f"Length field {length} is shorter than {MIN_LENGTH}")
    if length > size:
        raise MalformedPacket(f"Length field {length} runs past the {size} octets received")
    # Octets past Length are padding (§3); bytes() also freezes a bytearray/memoryview.
    if length < size or type(data) is not bytes:
        data = bytes(data[:length])
    # The compiled split answers None for a packet it would refuse: the Python loop then
    # raises the precise error.
    split = _compiled_split(data, dictionary.odd_vendor_formats) if _compiled_split else None
    if split is None:
        split = split_attributes(data, dictionary.odd_vendor_formats)
    packet = _new_packet(Packet)
    s0, s1, s2, s3, s4, s5, s6, s7 = _SLOT_SETTERS
    s0(packet, data[0])
    s1(packet, data[1])
    s2(packet, data[4:20])
    s3(packet, split[0])
    s4(packet, data)
    s5(packet, dictionary)
    s6(packet, split[1])
    s7(packet, split[2])
    return packet


Split = tuple[tuple[tuple[AttrKey, bytes], ...], int, int]


def split_attributes(data: bytes, odd_vendors: Container[int]) -> Split:
    """The attributes of a packet whose header `decode` checked (Length == len(data)):
    ((key, raw value) pairs, the Message-Authenticator's offset or NO_MA / DUPLICATE_MA,
    the Proxy-State count). The reference for `aaa._speedups.split_attributes`."""
    length = len(data)
    attributes: list[tuple[AttrKey, bytes]] = []
    append = attributes.append
    ma_at = NO_MA
    proxy_states = 0
    pos = MIN_LENGTH
    while pos < length:
        try:
            kind = data[pos]
            end = pos + data[pos + 1]
        except IndexError:
            raise MalformedPacket(f"attribute header at offset {pos} is cut off") from None
        if not pos + 2 <= end <= length:  # one test on the hot path; diagnose after
            if end < pos + 2:
                raise MalformedPacket(f"attribute {kind} at offset {pos} has length < 2")
            raise MalformedPacket(f"attribute {kind} at offset {pos} runs past the packet")
        if kind not in _SPECIAL_KINDS:  # the common case: one set lookup, then store it
            append((kind, data[pos + 2 : end]))
            pos = end
            continue
        if kind == 26:
            if end - pos > 6:
                vendor = int.from_bytes(data[pos + 2 : pos + 6], "big")
                if vendor not in odd_vendors:
                    subs = _split_vsa(data, pos + 6, end, vendor)
                    if subs:
                        attributes.extend(subs)
                        pos = end
                        continue
            # Not in the layout we know: the whole VSA stays raw under key 26.
        elif kind == MESSAGE_AUTHENTICATOR:
            ma_at = pos if ma_at == NO_MA else DUPLICATE_MA
        elif kind == PROXY_STATE:
            proxy_states += 1
        append((kind, data[pos + 2 : end]))
        pos = end
    return tuple(attributes), ma_at, proxy_states


_new_packet = object.__new__

_compiled_split: Callable[[bytes, Container[int]], Split | None] | None
try:
    from aaa._speedups import split_attributes as _compiled_split
except ImportError:  # built without a C compiler: the Python loop does the same work
    _compiled_split = None
