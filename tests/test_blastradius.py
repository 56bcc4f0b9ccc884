"""BlastRADIUS and forgery: what the server does with unsigned, forged and oversized
requests, and what it puts in its own replies.

Covered elsewhere and referenced here:
- a request without Message-Authenticator from a NAS that requires it is dropped and
  counted: tests/test_daemon_handler.py::test_missing_message_authenticator_dropped_when_required
  (and end-to-end in tests/test_daemon_e2e.py);
- a forged or altered CoA/Disconnect answer (other secret, other source) does not settle
  the job and is counted: tests/test_coa_dispatcher.py::test_forged_answer_is_ignored_and_counted;
- the fuzzer (tests/fuzz) checks on every mutated input that any Access-* reply carries
  Message-Authenticator first and verifies against its request.
"""

from __future__ import annotations

import os

import pytest

from aaa.accounting.handler import AcctHandler
from aaa.accounting.index import OpenSessionIndex
from aaa.coa.requests import BadAnswer, read_answer
from aaa.daemon.handler import MAX_PROXY_STATES, AuthHandler, HandlerSettings
from aaa.daemon.metrics import Metrics
from aaa.policy.view import NasFacts, PlanFacts, ServiceFacts, SubscriberView
from aaa.radius import (
    ACCESS_REPLIES,
    PacketCode,
    build_reply,
    build_request,
    chap_response,
    decode,
    encode_attributes,
    load_dictionary,
    mschap2_nt_response,
    nt_password_hash,
    verify_reply,
)

DICT = load_dictionary()
SECRET = b"blast-secret"
MK = NasFacts(1, "mk1", "10.0.0.1", "mikrotik", SECRET, require_message_authenticator=True)
HW = NasFacts(2, "hw1", "10.0.0.2", "huawei", SECRET, require_message_authenticator=False)
VIEW = SubscriberView.build([ServiceFacts(1, "ana", "s3nha", "enabled", 1),
                             ServiceFacts(2, "bia", "pw", "suspended_debt", 1)],
                            [PlanFacts(1, "FIBRA", 100_000, 50_000, "pool-fibra")], [MK, HW], {}, 1)


def auth_handler() -> AuthHandler:
    return AuthHandler(DICT, VIEW, HandlerSettings(), Metrics(), lambda record, mac: None)


def dropped(metrics: Metrics, reason: str, nas: str) -> float:
    return metrics.registry.get_sample_value("aaa_radius_dropped_total", {"reason": reason, "nas": nas}) or 0


def access_request(items: list[tuple[str, object]], ma: bool = True, ident: int = 1) -> bytes:
    auth = os.urandom(16)
    attrs = encode_attributes(DICT, items, secret=SECRET, authenticator=auth)
    return build_request(PacketCode.ACCESS_REQUEST, ident, attrs, SECRET, authenticator=auth,
                         message_authenticator=ma)


def requests_of_every_kind() -> dict[str, bytes]:
    chap_auth = os.urandom(16)
    auth_challenge, peer = os.urandom(16), os.urandom(16)
    nt = mschap2_nt_response(auth_challenge, peer, b"ana", nt_password_hash("s3nha"))
    return {
        "pap_accept": access_request([("User-Name", "ana"), ("User-Password", "s3nha")]),
        "pap_reject_password": access_request([("User-Name", "ana"), ("User-Password", "no")]),
        "pap_reject_status": access_request([("User-Name", "bia"), ("User-Password", "pw")]),
        "pap_unknown_login": access_request([("User-Name", "nobody"), ("User-Password", "x")]),
        "chap_accept": build_request(PacketCode.ACCESS_REQUEST, 2, encode_attributes(
            DICT, [("User-Name", "ana"), ("CHAP-Password", chap_response(1, b"s3nha", chap_auth))]),
            SECRET, authenticator=chap_auth),
        "mschapv2_accept": access_request([("User-Name", "ana"), ("MS-CHAP-Challenge", auth_challenge),
                                           ("MS-CHAP2-Response", bytes((7, 0)) + peer + bytes(8) + nt)]),
        "status_server": build_request(PacketCode.STATUS_SERVER, 3, b"", SECRET),
        "no_ma_from_lax_nas": access_request([("User-Name", "ana"), ("User-Password", "s3nha")], ma=False),
    }


@pytest.mark.parametrize("kind", list(requests_of_every_kind()))
def test_message_authenticator_first_in_every_access_reply(kind: str) -> None:
    """Accept, Reject (wrong password, suspended, unknown login), CHAP, MS-CHAPv2 (with
    MPPE keys), Status-Server, and a request that came without one: our reply carries
    Message-Authenticator as its first attribute, and it verifies."""
    handler = auth_handler()
    request = requests_of_every_kind()[kind]
    host = HW.ip if kind == "no_ma_from_lax_nas" else MK.ip
    reply = handler.handle(request, host, 5000, 1000.0)
    assert reply is not None
    packet = decode(reply, DICT)
    assert packet.code in ACCESS_REPLIES
    assert packet.attributes[0][0] == 80 and reply[20] == 80 and reply[21] == 18
    assert verify_reply(packet, request[4:20], SECRET)
    if kind.endswith("_accept"):
        assert packet.code == PacketCode.ACCESS_ACCEPT
    if kind == "mschapv2_accept":
        assert packet.get_raw("MS-CHAP2-Success") is not None


def test_status_server_without_message_authenticator_is_dropped() -> None:
    """RFC 5997: Status-Server must be signed, even from a NAS that does not require it."""
    handler = auth_handler()
    unsigned = build_request(PacketCode.STATUS_SERVER, 3, b"", SECRET, message_authenticator=False)
    assert handler.handle(unsigned, HW.ip, 5000, 1000.0) is None
    assert dropped(handler.metrics, "missing_message_authenticator", "hw1") == 1


def test_altered_request_is_dropped() -> None:
    """One flipped bit anywhere in a signed Access-Request (header, authenticator or
    attributes) is caught by Message-Authenticator: silence, counted."""
    handler = auth_handler()
    request = access_request([("User-Name", "ana"), ("User-Password", "s3nha")])
    answered = 0
    for offset in range(len(request)):
        if offset in (2, 3):  # the Length field: decode refuses it as malformed instead
            continue
        forged = bytearray(request)
        forged[offset] ^= 0x01
        if handler.handle(bytes(forged), MK.ip, 6000 + offset, 1000.0) is not None:
            answered += 1
    assert answered == 0
    assert dropped(handler.metrics, "bad_authenticator", "mk1") >= len(request) - 20


def test_altered_coa_answer_is_detected_by_the_client() -> None:
    """Every single-bit alteration of a genuine Disconnect-ACK/CoA-NAK is refused by the
    answer check the dispatcher uses (BadAnswer), as is an answer signed with another
    secret; the genuine one is read."""
    request = build_request(PacketCode.DISCONNECT_REQUEST, 9, encode_attributes(
        DICT, [("User-Name", "ana"), ("Acct-Session-Id", "1")]), SECRET)
    packet = decode(request, DICT)
    for answer in (build_reply(packet, PacketCode.DISCONNECT_ACK, SECRET),
                   build_reply(packet, PacketCode.COA_NAK, SECRET,
                               encode_attributes(DICT, [("Error-Cause", 503)]))):
        assert read_answer(answer, request, SECRET, DICT).result in ("ack", "nak")
        for offset in range(len(answer)):
            for bit in range(8):
                altered = bytearray(answer)
                altered[offset] ^= 1 << bit
                with pytest.raises(BadAnswer):
                    read_answer(bytes(altered), request, SECRET, DICT)
    with pytest.raises(BadAnswer):
        read_answer(build_reply(packet, PacketCode.DISCONNECT_ACK, b"forged"), request, SECRET, DICT)


def proxy_states(count: int, size: int = 10) -> list[tuple[str, object]]:
    return [("Proxy-State", bytes([i]) * size) for i in range(count)]


def test_proxy_states_up_to_the_limit_are_echoed() -> None:
    """A request with MAX_PROXY_STATES Proxy-States is answered with all of them in order."""
    handler = auth_handler()
    request = access_request([("User-Name", "ana"), ("User-Password", "s3nha"),
                              *proxy_states(MAX_PROXY_STATES)])
    reply = decode(handler.handle(request, MK.ip, 5000, 1000.0) or b"", DICT)
    assert reply.get_all("Proxy-State") == [bytes([i]) * 10 for i in range(MAX_PROXY_STATES)]


def test_too_many_proxy_states_dropped_and_counted() -> None:
    """One Proxy-State over the limit: silence, aaa_radius_dropped_total{reason=proxy_state_limit}."""
    handler = auth_handler()
    request = access_request([("User-Name", "ana"), ("User-Password", "s3nha"),
                              *proxy_states(MAX_PROXY_STATES + 1)])
    assert handler.handle(request, MK.ip, 5000, 1000.0) is None
    assert dropped(handler.metrics, "proxy_state_limit", "mk1") == 1


def padded_to_limit(size: int = 4090) -> bytes:
    """An Access-Request for "ana" padded with Proxy-States to `size` octets: it fits, but
    the Accept (our attributes are larger than her request's own) plus the echoed
    Proxy-States would not."""
    base: list[tuple[str, object]] = [("User-Name", "ana"), ("User-Password", "s3nha")]
    room = size - len(access_request(base))
    states: list[tuple[str, object]] = []
    while room >= 3:
        value = min(253, room - 2)
        states.append(("Proxy-State", b"p" * value))
        room -= value + 2
    request = access_request([*base, *states])
    assert 4080 <= len(request) <= 4096
    return request


def test_reply_that_would_exceed_4096_octets_dropped_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A request whose reply would not fit in 4096 octets gets silence and a
    proxy_state_limit drop, not an exception. The fuzzer found this one (build_reply's
    EncodeError escaped the handler; the input is kept in tests/fuzz/crashers). With at
    most 8 Proxy-States the overflow is out of reach, so the count limit drops it first;
    with the count limit lifted, the size check still does."""
    handler = auth_handler()
    assert handler.handle(padded_to_limit(), MK.ip, 5000, 1000.0) is None
    assert dropped(handler.metrics, "proxy_state_limit", "mk1") == 1
    monkeypatch.setattr("aaa.daemon.handler.MAX_PROXY_STATES", 1000)
    handler = auth_handler()
    assert handler.handle(padded_to_limit(), MK.ip, 5001, 1000.0) is None
    assert dropped(handler.metrics, "proxy_state_limit", "mk1") == 1
    small = access_request([("User-Name", "ana"), ("User-Password", "s3nha"), *proxy_states(20)])
    assert handler.handle(small, MK.ip, 5002, 1000.0) is not None  # only the size mattered


def test_accounting_proxy_state_limit() -> None:
    """Accounting-Requests obey the same limit: over it, silence and a counted drop,
    nothing submitted for storage."""
    submitted: list[object] = []

    def submit(pending: object) -> bool:
        submitted.append(pending)
        return True

    handler = AcctHandler(DICT, lambda: VIEW, submit, OpenSessionIndex(), Metrics())
    items: list[tuple[str, object]] = [("User-Name", "ana"), ("Acct-Status-Type", "Start"),
                                       ("Acct-Session-Id", "s1")]
    over = build_request(PacketCode.ACCOUNTING_REQUEST, 1,
                         encode_attributes(DICT, [*items, *proxy_states(MAX_PROXY_STATES + 1)]), SECRET)
    assert handler.handle(over, MK.ip, 5000, 1000.0) is None and submitted == []
    assert dropped(handler.metrics, "proxy_state_limit", "mk1") == 1
    within = build_request(PacketCode.ACCOUNTING_REQUEST, 2,
                           encode_attributes(DICT, [*items, *proxy_states(MAX_PROXY_STATES)]), SECRET)
    handler.handle(within, MK.ip, 5000, 1000.0)
    assert len(submitted) == 1
