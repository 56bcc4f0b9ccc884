"""Published test vectors: RFC 2865 §7.1, RFC 2433, RFC 2759 §9.2, RFC 3079 §3.5."""

from __future__ import annotations

import hashlib
import hmac

from aaa.radius import (
    PacketCode,
    build_reply,
    check_mschap1,
    check_mschap2,
    decode,
    encode_attributes,
    load_dictionary,
    mppe_master_key,
    mppe_start_key,
    mschap2_authenticator_response,
    mschap2_nt_response,
    nt_password_hash,
    verify_message_authenticator,
    verify_reply,
)
from aaa.radius.auth import challenge_response

DICT = load_dictionary()

# RFC 2865 §7.1: user "nemo", password "arctangent", secret "xyzzy5461".
RFC2865_REQUEST = bytes.fromhex(
    "010000380f403f9473978057bd83d5cb98f4227a"
    "01066e656d6f"
    "02120dbe708d93d413ce3196e43f782a0aee"
    "0406c0a80110"
    "050600000003"
)
RFC2865_ACCEPT = bytes.fromhex("0200002686fe220e7624ba2a1005f6bf9b55e0b20606000000010f06000000000e06c0a80103")
SECRET = b"xyzzy5461"


def test_rfc2865_access_request_decodes() -> None:
    """The RFC 2865 §7.1 Access-Request decodes to its documented values and password."""
    packet = decode(RFC2865_REQUEST, DICT)
    assert packet.code == PacketCode.ACCESS_REQUEST
    assert packet.identifier == 0
    assert packet.get("User-Name") == "nemo"
    assert packet.get("NAS-IP-Address") == "192.168.1.16"
    assert packet.get("NAS-Port") == 3
    assert packet.user_password(SECRET) == b"arctangent"
    assert packet.reveal("User-Password", SECRET) == "arctangent"


def test_rfc2865_request_reencodes_byte_exact() -> None:
    """Encoding the same values with the same authenticator gives the RFC's octets."""
    packet = decode(RFC2865_REQUEST, DICT)
    attributes = encode_attributes(
        DICT,
        [
            ("User-Name", "nemo"),
            ("User-Password", "arctangent"),
            ("NAS-IP-Address", "192.168.1.16"),
            ("NAS-Port", 3),
        ],
        secret=SECRET,
        authenticator=packet.authenticator,
    )
    assert RFC2865_REQUEST[20:] == attributes


def test_rfc2865_access_accept_response_authenticator() -> None:
    """The RFC's Access-Accept verifies against the request's authenticator, and a
    one-bit change does not."""
    request = decode(RFC2865_REQUEST, DICT)
    accept = decode(RFC2865_ACCEPT, DICT)
    assert accept.get("Service-Type") == 1
    assert accept.get("Login-IP-Host") == "192.168.1.3"
    assert verify_reply(accept, request.authenticator, SECRET)
    tampered = bytearray(RFC2865_ACCEPT)
    tampered[-1] ^= 1
    assert not verify_reply(decode(bytes(tampered), DICT), request.authenticator, SECRET)
    assert not verify_reply(accept, request.authenticator, b"wrong")


def test_rfc2865_reply_we_build_matches_rfc_attributes() -> None:
    """Our Access-Accept to the RFC request carries Message-Authenticator first and then
    exactly the RFC's attributes, and verifies both ways."""
    request = decode(RFC2865_REQUEST, DICT)
    blob = encode_attributes(
        DICT,
        [
            ("Service-Type", "Login-User"),
            ("Login-Service", "Telnet"),
            ("Login-IP-Host", "192.168.1.3"),
        ],
    )
    reply = decode(build_reply(request, PacketCode.ACCESS_ACCEPT, SECRET, blob), DICT)
    assert reply.attributes[0][0] == 80
    assert reply.raw[38:] == RFC2865_ACCEPT[20:]
    assert verify_reply(reply, request.authenticator, SECRET)
    assert verify_message_authenticator(reply, SECRET, request.authenticator)


def test_message_authenticator_over_known_packet() -> None:
    """Message-Authenticator equals HMAC-MD5 (stdlib) over the packet with the MA zeroed
    (RFC 3579 §3.2), and we verify the one pyrad would produce the same way."""
    attrs = RFC2865_REQUEST[20:] + b"\x50\x12" + bytes(16)
    header = bytes((1, 7)) + (20 + len(attrs)).to_bytes(2, "big")
    auth = RFC2865_REQUEST[4:20]
    mac = hmac.new(SECRET, header + auth + attrs, hashlib.md5).digest()
    packet = header + auth + attrs[:-16] + mac
    assert mac.hex() == hmac.new(SECRET, header + auth + attrs, "md5").hexdigest()
    decoded = decode(packet, DICT)
    assert verify_message_authenticator(decoded, SECRET)
    assert not verify_message_authenticator(decoded, b"xyzzy5462")
    assert not verify_message_authenticator(decode(RFC2865_REQUEST, DICT), SECRET)


# RFC 2433 appendix B (MS-CHAPv1).
def test_rfc2433_mschap1_vectors() -> None:
    """NtPasswordHash("MyPw") and the NT challenge response of RFC 2433 appendix B."""
    nt_hash = nt_password_hash("MyPw")
    assert nt_hash.hex().upper() == "FC156AF7EDCD6C0EDDE3337D427F4EAC"
    challenge = bytes.fromhex("102DB5DF085D3041")
    nt_response = challenge_response(challenge, nt_hash)
    assert nt_response.hex().upper() == "4E9D3C8F9CFD385D5BF4D3246791956CA4C351AB409A3D61"
    response = bytes((1, 1)) + bytes(24) + nt_response
    assert check_mschap1(challenge, response, nt_hash)
    assert not check_mschap1(challenge, response, nt_password_hash("MyPW"))


# RFC 2759 §9.2 (MS-CHAPv2) and RFC 3079 §3.5.3 (MPPE keys) share these inputs.
AUTH_CHALLENGE = bytes.fromhex("5B5D7C7D7B3F2F3E3C2C602132262628")
PEER_CHALLENGE = bytes.fromhex("21402324255E262A28295F2B3A337C7E")
NT_RESPONSE = bytes.fromhex("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")


def test_rfc2759_mschap2_vectors() -> None:
    """NT-Response and the authenticator response "S=407A..." of RFC 2759 §9.2."""
    nt_hash = nt_password_hash("clientPass")
    assert nt_hash.hex().upper() == "44EBBA8D5312B8D611474411F56989AE"
    assert mschap2_nt_response(AUTH_CHALLENGE, PEER_CHALLENGE, b"User", nt_hash) == NT_RESPONSE
    assert (
        mschap2_authenticator_response(nt_hash, NT_RESPONSE, PEER_CHALLENGE, AUTH_CHALLENGE, b"User")
        == "S=407A5589115FD0D6209F510FE9C04566932CDA56"
    )


def test_rfc2759_check_mschap2_builds_success_and_keys() -> None:
    """check_mschap2 accepts the RFC response, returns MS-CHAP2-Success = ident + S=...
    and rejects a wrong password or user name."""
    nt_hash = nt_password_hash("clientPass")
    response = bytes((0x21, 0)) + PEER_CHALLENGE + bytes(8) + NT_RESPONSE
    result = check_mschap2(AUTH_CHALLENGE, response, b"User", nt_hash)
    assert result is not None
    assert result.success == b"\x21S=407A5589115FD0D6209F510FE9C04566932CDA56"
    assert result.send_key.hex().upper() == "8B7CDC149B993A1BA118CB153F56DCCB"
    assert len(result.recv_key) == 16 and result.recv_key != result.send_key
    assert check_mschap2(AUTH_CHALLENGE, response, b"User", nt_password_hash("clientpass")) is None
    assert check_mschap2(AUTH_CHALLENGE, response, b"user", nt_hash) is None
    assert check_mschap2(AUTH_CHALLENGE, response[:49], b"User", nt_hash) is None


def test_rfc3079_mppe_key_vectors() -> None:
    """MasterKey and SendStartKey128 of RFC 3079 §3.5.3; the server's send key is the
    client's receive key."""
    nt_hash = nt_password_hash("clientPass")
    master = mppe_master_key(nt_hash, NT_RESPONSE)
    assert master.hex().upper() == "FDECE3717A8C838CB388E527AE3CDD31"
    server_send = mppe_start_key(master, is_send=True, is_server=True)
    assert server_send.hex().upper() == "8B7CDC149B993A1BA118CB153F56DCCB"
    assert mppe_start_key(master, is_send=False, is_server=False) == server_send
    assert mppe_start_key(master, is_send=True, is_server=False) == mppe_start_key(
        master, is_send=False, is_server=True
    )
    assert mppe_start_key(master, True, True, length=8).hex().upper() == "8B7CDC149B993A1B"
