"""Decoding and encoding: framing validation, every data type, VSAs, tags, splitting."""

from __future__ import annotations

import pytest

from aaa.radius import (
    EncodeError,
    MalformedPacket,
    PacketCode,
    Tagged,
    build_reply,
    build_request,
    decode,
    encode_attribute,
    encode_attributes,
    encode_packet,
    load_dictionary,
    new_authenticator,
    proxy_states,
    verify_message_authenticator,
    verify_reply,
    verify_request_authenticator,
)

DICT = load_dictionary()
AUTH = bytes(range(16))


def packet(attributes: bytes, code: int = 1, identifier: int = 9) -> bytes:
    return encode_packet(code, identifier, AUTH, attributes)


def test_too_short_and_too_long_datagrams_are_malformed() -> None:
    """Datagrams under 20 or over 4096 octets raise MalformedPacket with a reason."""
    with pytest.raises(MalformedPacket, match="shorter"):
        decode(b"\x01" * 19, DICT)
    with pytest.raises(MalformedPacket, match="longer"):
        decode(b"\x01\x00\x10\x01" + bytes(4093), DICT)


def test_length_field_checks_and_trailing_padding() -> None:
    """Length < 20 or beyond the datagram is malformed; octets after Length are ignored."""
    good = packet(encode_attributes(DICT, [("User-Name", "ana")]))
    with pytest.raises(MalformedPacket, match="Length field 19"):
        decode(good[:2] + b"\x00\x13" + good[4:], DICT)
    with pytest.raises(MalformedPacket, match="runs past"):
        decode(good[:2] + (len(good) + 1).to_bytes(2, "big") + good[4:], DICT)
    padded = decode(good + b"\xff\xff\xff", DICT)
    assert padded.get("User-Name") == "ana"
    assert padded.raw == good


def test_bad_attribute_lengths_are_malformed() -> None:
    """An attribute length < 2, one running past the end, or a cut header is malformed."""
    for attrs in (b"\x01\x01a", b"\x01\x00", b"\x01\x08abc", b"\x01\x05abc\x01"):
        with pytest.raises(MalformedPacket):
            decode(packet(attrs), DICT)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("User-Name", "joão.silva"),
        ("Class", b"\x00\xffclass"),
        ("Framed-IP-Address", "100.64.0.10"),
        ("NAS-IPv6-Address", "2001:db8::1"),
        ("Framed-IPv6-Prefix", "2001:db8:1::/48"),
        ("Delegated-IPv6-Prefix", "2001:db8:ff00::/56"),
        ("Session-Timeout", 4294967295),
        ("Event-Timestamp", 1700000000),
        ("Framed-Interface-Id", "211:22ff:fe33:4455"),
        ("Mikrotik-Rate-Limit", "10M/20M 0/0 0/0 0/0 8 5M/10M"),
        ("Mikrotik-Host-IP", "10.0.0.1"),
        ("Huawei-Input-Average-Rate", 102400000),
        ("Huawei-DNS-Server-IPv6-address", "2001:4860:4860::8888"),
        ("MS-CHAP-Challenge", bytes(16)),
    ],
)
def test_typed_round_trip(name: str, value: object) -> None:
    """Each data type encodes and decodes back to the same typed value."""
    decoded = decode(packet(encode_attributes(DICT, [(name, value)])), DICT)
    assert decoded.get(name) == value


def test_extra_types_round_trip() -> None:
    """integer64, byte, short, signed, ether, ipv4prefix (types FreeRADIUS files use)."""
    extra = load_dictionary("/usr/share/freeradius") if _has_freeradius() else None
    from aaa.radius.codecs import codec_for

    cases = [
        ("integer64", 2**64 - 1),
        ("byte", 255),
        ("short", 65535),
        ("signed", -5),
        ("ether", "00:11:22:aa:bb:cc"),
        ("ipv4prefix", "10.1.0.0/16"),
        ("combo-ip", "2001:db8::2"),
    ]
    for type_name, value in cases:
        codec = codec_for(type_name)
        assert codec.decode(codec.encode(value)) == value, type_name
    if extra is not None:
        assert extra["Acct-Input-Octets-64"].type_name == "integer64"


def _has_freeradius() -> bool:
    from pathlib import Path

    return Path("/usr/share/freeradius/dictionary").exists()


def test_invalid_typed_values_raise_malformed_on_access() -> None:
    """A 3-octet ipaddr or 5-octet integer decodes lazily and raises MalformedPacket
    only when read."""
    decoded = decode(packet(b"\x08\x05\x01\x02\x03" + b"\x1b\x07\x00\x00\x00\x00\x01"), DICT)
    with pytest.raises(MalformedPacket):
        decoded.get("Framed-IP-Address")
    with pytest.raises(MalformedPacket):
        decoded.get("Session-Timeout")
    with pytest.raises(MalformedPacket):
        list(decoded.items())


def test_vendor_specific_with_several_subattributes() -> None:
    """One Vendor-Specific holding two MikroTik sub-attributes splits into both."""
    sub = b"\x08\x0a10M/10M\x00"[:-1] + b""  # Mikrotik-Rate-Limit "10M/10M"
    sub = bytes((8, 9)) + b"10M/10M" + bytes((19, 7)) + b"block"
    vsa = bytes((26, 6 + len(sub))) + (14988).to_bytes(4, "big") + sub
    decoded = decode(packet(vsa + b"\x01\x05ana"), DICT)
    assert decoded.get("Mikrotik-Rate-Limit") == "10M/10M"
    assert decoded.get("Mikrotik-Address-List") == "block"
    assert decoded.get((14988, 19)) == "block"
    assert decoded.get("User-Name") == "ana"


def test_unknown_and_odd_attributes_stay_raw() -> None:
    """Unknown attributes/vendors stay raw octets; a VSA with broken inner TLVs is kept
    whole under key 26 instead of failing the packet."""
    broken = bytes((26, 9)) + (14988).to_bytes(4, "big") + b"\x08\x09x"
    unknown_vendor = bytes((26, 9)) + (99999).to_bytes(4, "big") + b"\x01\x03z"
    decoded = decode(packet(b"\xf0\x04hi" + broken + unknown_vendor), DICT)
    assert decoded.get(240) == b"hi"
    assert decoded.get_all_raw(26) == [broken[2:]]
    assert decoded.get((99999, 1)) == b"z"
    names = [d.name for d, _ in decoded.items()]
    assert names == ["Attr-240", "Vendor-Specific", "Vendor-99999-Attr-1"]


def test_tagged_attributes() -> None:
    """has_tag integers carry the tag in the first octet; tagged strings when it is <= 0x1F."""
    blob = encode_attributes(
        DICT,
        [
            ("Tunnel-Type", Tagged(1, 3)),
            ("Tunnel-Medium-Type", "IPv4"),
            ("Tunnel-Private-Group-Id", Tagged(2, "vlan100")),
        ],
    )
    assert blob[:6] == b"\x40\x06\x01\x00\x00\x03"
    decoded = decode(packet(blob), DICT)
    assert decoded.get("Tunnel-Type") == Tagged(1, 3)
    assert decoded.get("Tunnel-Medium-Type") == Tagged(0, 1)
    assert decoded.get("Tunnel-Private-Group-Id") == Tagged(2, "vlan100")


def test_tunnel_password_tagged_and_salted() -> None:
    """Tunnel-Password keeps its tag in clear and salt-encrypts the rest."""
    secret = b"s"
    attr = encode_attribute(DICT["Tunnel-Password"], Tagged(3, "tunnelpw"), secret=secret, authenticator=AUTH)
    assert attr[2] == 3 and attr[3] & 0x80
    decoded = decode(packet(attr), DICT)
    assert decoded.reveal("Tunnel-Password", secret) == Tagged(3, "tunnelpw")


def test_long_values_split_or_refused() -> None:
    """EAP-Message (concat) over 253 octets splits and rejoins; a long User-Name is refused."""
    eap = bytes(range(256)) * 3
    blob = encode_attributes(DICT, [("EAP-Message", eap)])
    assert blob.count(b"\x4f\xff") == 3
    assert decode(packet(blob), DICT).get("EAP-Message") == eap
    with pytest.raises(EncodeError, match="cannot be split"):
        encode_attributes(DICT, [("User-Name", "x" * 254)])
    with pytest.raises(EncodeError, match="cannot be split"):
        encode_attributes(DICT, [("Mikrotik-Rate-Limit", "x" * 248)])
    encode_attributes(DICT, [("Mikrotik-Rate-Limit", "x" * 247)])


def test_encode_type_errors() -> None:
    """Wrong Python types or out-of-range values raise EncodeError, hidden attributes
    without a secret too, and encrypt=3 is refused."""
    for name, value in [
        ("Session-Timeout", "soon"),
        ("Session-Timeout", -1),
        ("Framed-IP-Address", "300.1.1.1"),
        ("Framed-IPv6-Prefix", "10.0.0.0/8"),
        ("User-Password", "x"),
    ]:
        with pytest.raises(EncodeError):
            encode_attributes(DICT, [(name, value)])
    from dataclasses import replace

    ascend = replace(DICT["User-Password"], encrypt=3)
    with pytest.raises(EncodeError, match="encrypt=3"):
        encode_attribute(ascend, "x", secret=b"s", authenticator=AUTH)


def test_pre_encoded_blob_concatenates_into_replies() -> None:
    """A pre-encoded blob reused in replies to two requests gives valid, distinct replies."""
    blob = encode_attributes(DICT, [("Framed-Pool", "p1"), ("Mikrotik-Rate-Limit", "1M/1M")])
    for identifier in (1, 2):
        request = decode(build_request(PacketCode.ACCESS_REQUEST, identifier, b"\x01\x03a", b"k"), DICT)
        reply = decode(build_reply(request, PacketCode.ACCESS_ACCEPT, b"k", [blob]), DICT)
        assert reply.identifier == identifier
        assert reply.get("Mikrotik-Rate-Limit") == "1M/1M"
        assert verify_reply(reply, request.authenticator, b"k")


def test_proxy_state_copied_in_order() -> None:
    """Proxy-State attributes of the request come back in the reply in the same order."""
    attrs = b"\x21\x03a\x01\x03u\x21\x04bb"
    request = decode(build_request(PacketCode.ACCESS_REQUEST, 5, attrs, b"k"), DICT)
    assert proxy_states(request) == b"\x21\x03a\x21\x04bb"
    reply = decode(build_reply(request, PacketCode.ACCESS_REJECT, b"k"), DICT)
    assert reply.get_all("Proxy-State") == [b"a", b"bb"]
    assert reply.attributes[0][0] == 80


def test_hashed_request_authenticators() -> None:
    """Accounting/CoA/Disconnect-Request authenticators verify, with or without
    Message-Authenticator, and fail after tampering; replies to them verify."""
    secret = b"coa-secret"
    for code in (
        PacketCode.ACCOUNTING_REQUEST,
        PacketCode.COA_REQUEST,
        PacketCode.DISCONNECT_REQUEST,
    ):
        for with_ma in (False, True):
            raw = build_request(
                code, 3, b"\x01\x05ana" + b"\x2c\x05abc", secret, message_authenticator=with_ma
            )
            request = decode(raw, DICT)
            assert verify_request_authenticator(request, secret)
            assert verify_message_authenticator(request, secret) is with_ma
            bad = decode(raw[:-1] + b"X", DICT)
            assert not verify_request_authenticator(bad, secret)
            ack = decode(build_reply(request, code + 1, secret), DICT)
            assert ack.has_message_authenticator is with_ma
            assert verify_reply(ack, request.authenticator, secret)
    with pytest.raises(ValueError):
        verify_request_authenticator(decode(build_request(1, 1, b"", secret), DICT), secret)


def test_message_authenticator_first_in_access_request_and_duplicates_rejected() -> None:
    """build_request puts Message-Authenticator first; two of them never verify."""
    raw = build_request(PacketCode.ACCESS_REQUEST, 1, b"\x01\x03a", b"k", authenticator=new_authenticator())
    request = decode(raw, DICT)
    assert request.attributes[0][0] == 80
    assert verify_message_authenticator(request, b"k")
    doubled = raw[:2] + (len(raw) + 18).to_bytes(2, "big") + raw[4:] + raw[20:38]
    assert not verify_message_authenticator(decode(doubled, DICT), b"k")


def test_freeradius_dictionaries_load_on_top() -> None:
    """A FreeRADIUS installation's dictionaries load on top of ours without errors."""
    if not _has_freeradius():
        pytest.skip("no /usr/share/freeradius dictionaries here")
    merged = load_dictionary("/usr/share/freeradius")
    assert merged["Mikrotik-Rate-Limit"].key == (14988, 8)
    assert merged["Huawei-Qos-Profile-Name"].key == (2011, 31)
    assert merged["MS-MPPE-Send-Key"].encrypt == 2
    assert len(merged.by_name) > 5 * len(DICT.by_name)
    assert "user-name" in merged and merged["user-name"].key == 1


def test_dictionary_parses_project_files(tmp_path: object) -> None:
    """The builtin dictionaries hold the vendor attributes the BRAS side needs."""
    expected = {
        "Mikrotik-Rate-Limit": (14988, 8),
        "Mikrotik-Address-List": (14988, 19),
        "Mikrotik-Delegated-IPv6-Pool": (14988, 22),
        "Huawei-Input-Average-Rate": (2011, 2),
        "Huawei-Output-Peak-Rate": (2011, 6),
        "Huawei-Qos-Profile-Name": (2011, 31),
        "Huawei-Framed-Pool": (2011, 88),
        "Huawei-Domain-Name": (2011, 138),
        "Huawei-Delegated-IPv6-Prefix-Pool": (2011, 191),
        "MS-CHAP2-Success": (311, 26),
        "MS-MPPE-Recv-Key": (311, 17),
        "Error-Cause": 101,
        "Delegated-IPv6-Prefix-Pool": 171,
    }
    for name, key in expected.items():
        assert DICT[name].key == key, name
    assert DICT["Error-Cause"].values["Session-Context-Not-Found"] == 503
    assert DICT["EAP-Message"].concat
    assert DICT["Tunnel-Password"].has_tag and DICT["Tunnel-Password"].encrypt == 2


def test_ascend_encrypt3_refused_on_read_too() -> None:
    """An encrypt=3 (Ascend) attribute is refused with MalformedPacket when revealed."""
    from dataclasses import replace

    from aaa.radius.packet import reveal_value

    ascend = replace(DICT["User-Password"], encrypt=3)
    with pytest.raises(MalformedPacket, match="encrypt=3"):
        reveal_value(ascend, bytes(16), b"s", AUTH)


def test_repeated_attributes_and_access_by_key_or_definition() -> None:
    """get returns the first occurrence, get_all every one in order; names, wire keys
    and AttributeDef objects address the same attribute."""
    blob = encode_attributes(DICT, [("Reply-Message", "a"), ("Class", b"c"), ("Reply-Message", "b")])
    decoded = decode(packet(blob, code=2), DICT)
    definition = DICT["Reply-Message"]
    assert decoded.get("Reply-Message") == decoded.get(18) == decoded.get(definition) == "a"
    assert decoded.get_all(definition) == ["a", "b"]
    assert decoded["Class"] == b"c"
    assert "Class" in decoded and "State" not in decoded
    assert decoded.get("State", b"none") == b"none"
    with pytest.raises(KeyError):
        decoded.get("No-Such-Attribute")
