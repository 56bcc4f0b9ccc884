"""The sans-IO Access-Request pipeline: drops, duplicates, methods, reply layout."""

from __future__ import annotations

import os

import pytest

from aaa.daemon.handler import AuthHandler, HandlerSettings
from aaa.daemon.metrics import Metrics
from aaa.db.authlog import AuthRecord
from aaa.policy.view import NasFacts, PlanFacts, ServiceFacts, SubscriberView
from aaa.radius import (
    PacketCode,
    build_request,
    chap_response,
    decode,
    encode_attributes,
    load_dictionary,
    verify_reply,
)

DICT = load_dictionary()
SECRET = b"testing123"
MK = NasFacts(1, "mk1", "10.0.0.1", "mikrotik", SECRET, require_message_authenticator=True)
LAX = NasFacts(2, "lax", "10.0.0.2", "mikrotik", SECRET, require_message_authenticator=False)
PLAN = PlanFacts(1, "FIBRA", 100_000, 50_000, "pool-fibra")
ANA = ServiceFacts(1, "ana", "s3nha", "enabled", 1, mac_binding="learn")


learned: list[str] = []


def make_handler() -> tuple[AuthHandler, list[AuthRecord]]:
    view = SubscriberView.build([ANA], [PLAN], [MK, LAX], {}, 1)
    rows: list[AuthRecord] = []
    learned.clear()

    def sink(record: AuthRecord, learn_mac: str | None) -> None:
        rows.append(record)
        if learn_mac:
            learned.append(learn_mac)

    return AuthHandler(DICT, view, HandlerSettings(), Metrics(), sink), rows


def pap(login: str = "ana", password: str = "s3nha", ma: bool = True, ident: int = 7,
        extra: list[tuple[str, object]] | None = None) -> tuple[bytes, bytes]:
    auth = os.urandom(16)
    attrs = encode_attributes(DICT, [("User-Name", login), ("User-Password", password),
                                     *(extra or [])], secret=SECRET, authenticator=auth)
    return build_request(PacketCode.ACCESS_REQUEST, ident, attrs, SECRET, authenticator=auth,
                         message_authenticator=ma), auth


def counter(handler: AuthHandler, name: str, **labels: str) -> float:
    value = handler.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


def test_accept_has_message_authenticator_first_and_verifies() -> None:
    """The Accept is signed, Message-Authenticator first, with the policy's attributes."""
    handler, rows = make_handler()
    packet, auth = pap()
    reply = handler.handle(packet, "10.0.0.1", 5000, 1000.0)
    assert reply is not None
    decoded = decode(reply, DICT)
    assert decoded.code == PacketCode.ACCESS_ACCEPT and verify_reply(decoded, auth, SECRET)
    assert decoded.attributes[0][0] == 80
    assert decoded.get("Mikrotik-Rate-Limit") == "50000k/100000k"
    assert rows[0].result == "accept" and rows[0].login == "ana"


def test_the_auth_log_record_has_every_field_in_its_place() -> None:
    """The record handed to the auth log (built positionally, for speed) equals one built
    field by field by name: a MAC learned, the interface given, the plan's pool and speed."""
    handler, rows = make_handler()
    packet, _ = pap(extra=[("Calling-Station-Id", "aa:bb:cc:dd:ee:01"), ("NAS-Port-Id", "vlan100")])
    assert handler.handle(packet, "10.0.0.1", 5000, 1000.0) is not None
    assert type(rows[0]) is AuthRecord
    assert rows[0] == AuthRecord(
        at=1000.0, login="ana", service_id=1, nas_id=1, nas_ip="10.0.0.1", result="accept",
        reason="learning MAC AA:BB:CC:DD:EE:01; speed from plan FIBRA", mac="aa:bb:cc:dd:ee:01",
        mac_differs=False, interface="vlan100", interface_differs=False, ip=None, pool="pool-fibra",
        download_kbps=100_000, upload_kbps=50_000)
    assert learned == ["AA:BB:CC:DD:EE:01"]


def test_unknown_client_is_silent_and_counted() -> None:
    """A datagram from an address that is no NAS gets no reply and is counted once."""
    handler, rows = make_handler()
    packet, _ = pap()
    assert handler.handle(packet, "192.0.2.9", 5000, 1000.0) is None
    assert counter(handler, "aaa_radius_dropped_total", reason="unknown_client", nas="unknown") == 1
    assert rows == []


@pytest.mark.parametrize("data", [b"", b"\x01", b"\x01\x07\x00\x14" + bytes(15),
                                  b"\x01\x07\x00\x30" + bytes(16) + b"\x01\x00",
                                  os.urandom(300)])
def test_malformed_is_silent_and_counted(data: bytes) -> None:
    """Truncated and garbage datagrams from a known NAS are dropped and counted."""
    handler, _ = make_handler()
    assert handler.handle(data, "10.0.0.2", 5000, 1000.0) is None
    total = sum(counter(handler, "aaa_radius_dropped_total", reason=r, nas="lax")
                for r in ("malformed", "unexpected_code", "missing_message_authenticator",
                          "no_user_name", "bad_authenticator"))
    assert total == 1


def test_missing_message_authenticator_dropped_when_required() -> None:
    """BlastRADIUS: without Message-Authenticator a NAS that requires it gets silence."""
    handler, _ = make_handler()
    packet, _ = pap(ma=False)
    assert handler.handle(packet, "10.0.0.1", 5000, 1000.0) is None
    assert counter(handler, "aaa_radius_dropped_total", reason="missing_message_authenticator",
                   nas="mk1") == 1
    assert handler.handle(packet, "10.0.0.2", 5000, 1000.0) is not None  # the lax NAS accepts


def test_wrong_secret_detected_by_message_authenticator() -> None:
    """A request signed with another secret is dropped as bad_authenticator, per NAS."""
    handler, _ = make_handler()
    auth = os.urandom(16)
    attrs = encode_attributes(DICT, [("User-Name", "ana"), ("User-Password", "s3nha")],
                              secret=b"other", authenticator=auth)
    packet = build_request(1, 1, attrs, b"other", authenticator=auth)
    assert handler.handle(packet, "10.0.0.1", 5000, 1000.0) is None
    assert counter(handler, "aaa_radius_dropped_total", reason="bad_authenticator", nas="mk1") == 1


def test_duplicate_gets_cached_reply_without_reevaluation() -> None:
    """A retransmission within the window gets the same bytes and no second decision."""
    handler, rows = make_handler()
    packet, _ = pap()
    first = handler.handle(packet, "10.0.0.1", 5000, 1000.0)
    again = handler.handle(packet, "10.0.0.1", 5000, 1001.0)
    assert first == again and len(rows) == 1
    assert counter(handler, "aaa_radius_duplicates_total", nas="mk1") == 1
    later = handler.handle(packet, "10.0.0.1", 5000, 1010.0)  # window passed: decided again
    assert later is not None and len(rows) == 2


def test_chap_and_wrong_password() -> None:
    """CHAP with the Request Authenticator as challenge is accepted; a wrong PAP password rejected."""
    handler, rows = make_handler()
    auth = os.urandom(16)
    chap = chap_response(5, b"s3nha", auth)
    attrs = encode_attributes(DICT, [("User-Name", "ana"), ("CHAP-Password", chap)])
    packet = build_request(1, 9, attrs, SECRET, authenticator=auth)
    reply = handler.handle(packet, "10.0.0.1", 5000, 1000.0)
    assert reply is not None and reply[0] == PacketCode.ACCESS_ACCEPT
    bad, _ = pap(password="nope", ident=10)
    rejected = decode(handler.handle(bad, "10.0.0.1", 5001, 1000.0) or b"", DICT)
    assert rejected.code == PacketCode.ACCESS_REJECT and rejected.get("Reply-Message") == "wrong password"
    assert [r.result for r in rows] == ["accept", "reject"]


def test_learn_mac_and_proxy_state() -> None:
    """The first MAC is handed to the writer to learn; Proxy-State is echoed in order."""
    handler, _ = make_handler()
    packet, _ = pap(extra=[("Calling-Station-Id", "aa-bb-cc-dd-ee-ff"), ("Proxy-State", b"one"),
                           ("Proxy-State", b"two")])
    reply = decode(handler.handle(packet, "10.0.0.1", 5000, 1000.0) or b"", DICT)
    assert reply.get_all("Proxy-State") == [b"one", b"two"]
    assert learned[0] == "AA:BB:CC:DD:EE:FF"


def test_status_server_answered() -> None:
    """Status-Server with Message-Authenticator gets an Access-Accept (RFC 5997)."""
    handler, rows = make_handler()
    packet = build_request(PacketCode.STATUS_SERVER, 3, b"", SECRET)
    reply = handler.handle(packet, "10.0.0.1", 5000, 1000.0)
    assert reply is not None and reply[0] == PacketCode.ACCESS_ACCEPT and rows == []


def test_view_swap_changes_next_answer() -> None:
    """A new view swapped in is used by the next request."""
    handler, _ = make_handler()
    suspended = handler.view.with_changes(services=[ServiceFacts(1, "ana", "s3nha", "cancelled", 1)],
                                          seq=2)
    handler.swap_view(suspended)
    packet, _ = pap()
    reply = decode(handler.handle(packet, "10.0.0.1", 5000, 1000.0) or b"", DICT)
    assert reply.code == PacketCode.ACCESS_REJECT and reply.get("Reply-Message") == "service cancelled"
