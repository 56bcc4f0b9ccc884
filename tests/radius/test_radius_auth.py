"""PAP and CHAP checks (MS-CHAP vectors are in test_radius_vectors.py)."""

from __future__ import annotations

from aaa.radius import (
    PacketCode,
    build_request,
    chap_response,
    check_chap,
    check_pap,
    decode,
    encode_attributes,
    load_dictionary,
    new_authenticator,
    strip_domain,
)

DICT = load_dictionary()


def test_pap() -> None:
    """PAP compares the unhidden password with the stored one."""
    auth = new_authenticator()
    attrs = encode_attributes(
        DICT, [("User-Name", "u"), ("User-Password", "senha123")], secret=b"s", authenticator=auth
    )
    request = decode(build_request(PacketCode.ACCESS_REQUEST, 1, attrs, b"s", authenticator=auth), DICT)
    password = request.user_password(b"s")
    assert password is not None
    assert check_pap(password, b"senha123")
    assert not check_pap(password, b"senha124")
    assert request.user_password(b"other") != b"senha123"


def test_chap_with_request_authenticator_and_with_chap_challenge() -> None:
    """CHAP uses CHAP-Challenge when present, else the Request Authenticator."""
    auth = new_authenticator()
    response = chap_response(7, b"senha", auth)
    assert check_chap(response, auth, b"senha")
    assert not check_chap(response, auth, b"senhA")
    assert not check_chap(response[:16], auth, b"senha")
    challenge = b"0123456789abcdefXYZ"
    response = chap_response(9, b"senha", challenge)
    assert check_chap(response, challenge, b"senha")
    assert not check_chap(response, auth, b"senha")


def test_strip_domain() -> None:
    """MS-CHAP hashes the user part of DOMAIN\\user."""
    assert strip_domain(b"EMPRESA\\joao") == b"joao"
    assert strip_domain(b"joao") == b"joao"
