"""The Accounting-Request pipeline: events from packets, answers only once durable."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from aaa.accounting.committer import Pending
from aaa.accounting.events import AcctEvent, event_from_packet
from aaa.accounting.handler import AcctHandler
from aaa.accounting.index import OpenSessionIndex
from aaa.daemon.metrics import Metrics
from aaa.policy.view import NasFacts, PlanFacts, ServiceFacts, SubscriberView
from aaa.radius import PacketCode, build_request, decode, encode_attributes, load_dictionary, verify_reply

DICT = load_dictionary()
SECRET = b"testing123"
NAS = NasFacts(1, "mk1", "10.0.0.1", "mikrotik", SECRET)
VIEW = SubscriberView.build([ServiceFacts(5, "ana", "pw", "enabled", 1)],
                            [PlanFacts(1, "P", 1, 1, None)], [NAS], {}, 1)


def acct(status: str, ident: int = 1, **attrs: Any) -> bytes:
    items: list[tuple[str, object]] = [("User-Name", "ana"), ("Acct-Status-Type", status),
                                       ("Acct-Session-Id", "81a00003"), ("NAS-IP-Address", "10.0.0.1"),
                                       ("NAS-Port", 15728643), ("NAS-Port-Id", "vlan100")]
    items += list(attrs.items())
    return build_request(PacketCode.ACCOUNTING_REQUEST, ident, encode_attributes(DICT, items), SECRET)


def handler() -> tuple[AcctHandler, list[Pending], list[tuple[bytes, tuple[str, int]]]]:
    submitted: list[Pending] = []
    sent: list[tuple[bytes, tuple[str, int]]] = []

    def submit(pending: Pending) -> bool:
        submitted.append(pending)
        return True

    h = AcctHandler(DICT, lambda: VIEW, submit, OpenSessionIndex(), Metrics())
    h.send = lambda reply, addr: sent.append((reply, addr))
    return h, submitted, sent


def test_event_fields_gigawords_delay_and_unique_id() -> None:
    """Octets include Gigawords, the time subtracts Acct-Delay-Time, the unique id is FreeRADIUS's."""
    packet = decode(acct("Stop", **{"Acct-Input-Octets": 10, "Acct-Input-Gigawords": 2,
                                    "Acct-Output-Octets": 5, "Acct-Session-Time": 3600,
                                    "Acct-Delay-Time": 4, "Acct-Terminate-Cause": "User-Request",
                                    "Framed-IP-Address": "100.64.0.9",
                                    "Calling-Station-Id": "aabb.ccdd.eeff"}), DICT)
    arrived = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    event = event_from_packet(packet, NAS, "10.0.0.1", arrived, 5, "ana")
    assert event.kind == "stop" and event.at == arrived - timedelta(seconds=4)
    assert event.input_octets == (2 << 32) + 10 and event.output_octets == 5
    assert (event.terminate_cause, event.framed_ip, event.mac) == ("User-Request", "100.64.0.9",
                                                                   "AA:BB:CC:DD:EE:FF")
    expected = hashlib.md5(b"ana,81a00003,10.0.0.1,,vlan100,15728643").hexdigest()
    assert event.unique_id == expected and event.service_id == 5


def test_event_has_every_field_in_its_place() -> None:
    """The event (built positionally, for speed) equals one built field by field by name."""
    packet = decode(acct("Interim-Update", **{
        "Acct-Input-Octets": 7, "Acct-Output-Octets": 9, "Acct-Output-Gigawords": 1,
        "Acct-Session-Time": 60, "Framed-IP-Address": "100.64.0.9",
        "Framed-IPv6-Prefix": "2001:db8:1::/64", "Delegated-IPv6-Prefix": "2001:db8:2::/56",
        "Calling-Station-Id": "AA:BB:CC:DD:EE:01"}), DICT)
    arrived = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    event = event_from_packet(packet, NAS, "10.0.0.1", arrived, 5, "ana")
    assert type(event) is AcctEvent
    assert event == AcctEvent(
        kind="interim", at=arrived, nas_id=NAS.id, nas_ip=NAS.ip,
        unique_id=hashlib.md5(b"ana,81a00003,10.0.0.1,,vlan100,15728643").hexdigest(),
        acct_session_id="81a00003", login="ana", service_id=5, nas_port_id="vlan100",
        mac="AA:BB:CC:DD:EE:01", framed_ip="100.64.0.9", ipv6_prefix="2001:db8:1::/64",
        delegated_ipv6_prefix="2001:db8:2::/56", session_time=60, input_octets=7,
        output_octets=(1 << 32) + 9, terminate_cause=None)


def test_answer_only_after_durable() -> None:
    """Nothing is sent when the request arrives; the response goes out when the group is durable."""
    h, submitted, sent = handler()
    packet = acct("Start")
    assert h.handle(packet, "10.0.0.1", 4000, 100.0) is None and sent == []
    assert submitted[0].event.kind == "start"
    h.finish(submitted, True, 100.1)
    reply = decode(sent[0][0], DICT)
    assert reply.code == PacketCode.ACCOUNTING_RESPONSE and sent[0][1] == ("10.0.0.1", 4000)
    assert verify_reply(reply, decode(packet, DICT).authenticator, SECRET)
    assert h.index.count(5) == 1


def test_retransmissions_while_storing_and_after() -> None:
    """A retransmission while storing is not stored twice; after, it gets the cached response."""
    h, submitted, sent = handler()
    packet = acct("Interim-Update")
    h.handle(packet, "10.0.0.1", 4000, 100.0)
    assert h.handle(packet, "10.0.0.1", 4000, 100.5) is None and len(submitted) == 1
    h.finish(submitted, True, 101.0)
    assert h.handle(packet, "10.0.0.1", 4000, 102.0) == sent[0][0] and len(submitted) == 1


def test_not_durable_means_no_answer_and_a_retry_is_processed() -> None:
    """When storage fails (journal full) no response is sent, and the NAS's retry is taken anew."""
    h, submitted, sent = handler()
    packet = acct("Start")
    h.handle(packet, "10.0.0.1", 4000, 100.0)
    h.finish(submitted, False, 100.1)
    assert sent == []
    h.handle(packet, "10.0.0.1", 4000, 101.0)
    assert len(submitted) == 2


def test_bad_authenticator_and_missing_status_dropped() -> None:
    """A wrong secret, or no Acct-Status-Type, gets no answer and is counted."""
    h, submitted, _ = handler()
    forged = build_request(PacketCode.ACCOUNTING_REQUEST, 1, encode_attributes(
        DICT, [("User-Name", "ana"), ("Acct-Status-Type", "Start")]), b"wrong")
    assert h.handle(forged, "10.0.0.1", 4000, 100.0) is None
    no_status = build_request(PacketCode.ACCOUNTING_REQUEST, 2, encode_attributes(
        DICT, [("User-Name", "ana")]), SECRET)
    assert h.handle(no_status, "10.0.0.1", 4000, 100.0) is None
    registry = h.metrics.registry
    assert registry.get_sample_value("aaa_radius_dropped_total",
                                     {"reason": "bad_authenticator", "nas": "mk1"}) == 1
    assert registry.get_sample_value("aaa_radius_dropped_total",
                                     {"reason": "malformed", "nas": "mk1"}) == 1
    assert submitted == []
