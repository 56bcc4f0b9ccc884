"""The sans-IO Access-Request pipeline: drops, duplicates, methods, reply layout."""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from aaa.daemon.handler import AuthHandler, HandlerSettings
from aaa.daemon.metrics import Metrics
from aaa.db.authlog import AuthRecord
from aaa.policy.rules import PolicySettings
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


# --- the two lanes, and kept decisions ----------------------------------------------------------

FIXED = ServiceFacts(2, "bia", "pw-bia", "enabled", 1, ipv4="200.1.1.9", mac="02:00:00:00:00:02",
                     mac_binding="enforce", interface="vlan100")
OWING = ServiceFacts(3, "caio", "pw-caio", "suspended_debt", 1,
                     trust_unlock_until=datetime(2026, 11, 24, 12, 0, tzinfo=UTC))
PARTIAL = ServiceFacts(4, "duda", "pw-duda", "suspended_partial", 1, nas_id=2)


def lane_cases() -> list[bytes]:
    """Requests of every kind the fast lane takes, and some it leaves to the general one."""
    cases = []
    for login, password in (("ana", "s3nha"), ("ana", "wrong"), ("nobody", "x"), ("bia", "pw-bia"),
                            ("caio", "pw-caio"), ("duda", "pw-duda")):
        for extra in ([], [("Calling-Station-Id", "02-00-00-00-00-02"), ("NAS-Port-Id", "VLAN100")],
                      [("Calling-Station-Id", "aa:bb:cc:dd:ee:ff"), ("Proxy-State", b"p1"),
                       ("Proxy-State", b"p2")]):
            cases.append(pap(login, password, extra=extra)[0])
    auth = os.urandom(16)
    chap = bytes([3]) + chap_response(3, b"s3nha", auth)
    cases.append(build_request(PacketCode.ACCESS_REQUEST, 3, encode_attributes(
        DICT, [("User-Name", "ana"), ("CHAP-Password", chap)]), SECRET, authenticator=auth))
    cases.append(pap(ma=False)[0])  # the general lane (LAX NAS below answers it)
    return cases


def answer_all(lane: str, cases: list[bytes], monkeypatch: pytest.MonkeyPatch,
               taken: list[int] | None = None) -> tuple[list[bytes | None], list[AuthRecord], str]:
    """Every case on both NAS through one lane; `taken` counts the fast lane's requests."""
    from prometheus_client import generate_latest

    from aaa.daemon import handler as handler_module
    from aaa.radius import fastlane

    parse = fastlane.python_parse_access_request if lane == "python" else handler_module.parse_access_request

    def counted(data: bytes, secret: bytes) -> fastlane.AccessRequest | None:
        request = None if lane == "general" else parse(data, secret)
        if taken is not None and request is not None:
            taken.append(1)
        return request

    monkeypatch.setattr(handler_module, "parse_access_request", counted)
    if lane == "python":
        monkeypatch.setattr(fastlane, "_sign", fastlane.python_sign_access_reply)
    view = SubscriberView.build([ANA, FIXED, OWING, PARTIAL], [PLAN], [MK, LAX],
                                {"POOL_SUSPENSAO_TOTAL": "bloqueados"}, 1)
    rows: list[AuthRecord] = []
    handler = AuthHandler(DICT, view, HandlerSettings(), Metrics(), lambda r, m: rows.append(r))
    now = datetime(2026, 11, 24, 11, 0, tzinfo=UTC).timestamp()
    replies = [handler.handle(data, nas, 5000 + i, now + i) for i, data in enumerate(cases)
               for nas in ("10.0.0.1", "10.0.0.2")]
    monkeypatch.undo()
    metrics = "\n".join(line for line in generate_latest(handler.metrics.registry).decode().splitlines()
                        if line.startswith(("aaa_radius_requests_total", "aaa_radius_dropped_total")))
    return replies, rows, metrics


def test_both_lanes_answer_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast lane (compiled, or its Python reference) and the general lane give the same
    reply octets, the same auth-log rows and the same counters for the same requests:
    accepts, rejects, fixed IP, MAC enforce, interface, trust unlock, partial suspension,
    Proxy-States, CHAP; a request without Message-Authenticator is dropped on the NAS that
    requires it and answered on the other."""
    cases = lane_cases()
    taken: list[int] = []
    fast = answer_all("fast", cases, monkeypatch, taken)
    assert len(taken) == 2 * (len(cases) - 1)  # all but the one without Message-Authenticator
    assert fast == answer_all("general", cases, monkeypatch)
    python_taken: list[int] = []
    assert fast == answer_all("python", cases, monkeypatch, python_taken)
    assert python_taken == taken
    replies, rows, metrics = fast
    assert sum(reply is None for reply in replies) == 1
    assert {row.result for row in rows} == {"accept", "reject"}
    assert 'result="accept"' in metrics and 'reason="missing_message_authenticator"' in metrics


def test_a_kept_decision_ends_with_the_trust_unlock() -> None:
    """The same request answered twice is decided once, but not past the moment the trust
    unlock ends: from then on the blocked pool; nor before the moment it was made (a clock
    set back decides again)."""
    view = SubscriberView.build([OWING], [PLAN], [MK], {"POOL_SUSPENSAO_TOTAL": "bloqueados"}, 1)
    rows: list[AuthRecord] = []
    handler = AuthHandler(DICT, view, HandlerSettings(), Metrics(), lambda r, m: rows.append(r))
    ends = OWING.trust_unlock_until
    assert ends is not None

    def pool_at(moment: float) -> str | None:
        reply = handler.handle(pap("caio", "pw-caio")[0], MK.ip, 5000, moment)
        return str(decode(reply or b"", DICT).get("Framed-Pool"))

    assert pool_at(ends.timestamp() - 60) == "pool-fibra"
    assert pool_at(ends.timestamp() - 0.001) == "pool-fibra"
    assert len(handler._decisions) == 1
    assert pool_at(ends.timestamp()) == "bloqueados"
    assert pool_at(ends.timestamp() + 3600) == "bloqueados"
    assert pool_at(ends.timestamp() - 120) == "pool-fibra"  # the clock set back
    assert [row.pool for row in rows] == ["pool-fibra", "pool-fibra", "bloqueados", "bloqueados",
                                          "pool-fibra"]


def test_kept_decisions_are_dropped_with_the_view_and_the_settings() -> None:
    """A new view or new settings: the next request is decided afresh."""
    handler, _ = make_handler()
    first = decode(handler.handle(pap()[0], MK.ip, 5000, 1000.0) or b"", DICT)
    assert first.get("Acct-Interim-Interval") == 300
    handler.reconfigure(HandlerSettings(policy=PolicySettings(acct_interim_interval=600)), DICT)
    second = decode(handler.handle(pap()[0], MK.ip, 5000, 1001.0) or b"", DICT)
    assert second.get("Acct-Interim-Interval") == 600
    handler.swap_view(handler.view.with_changes(services=[replace(ANA, status="cancelled")], seq=2))
    third = decode(handler.handle(pap()[0], MK.ip, 5000, 1002.0) or b"", DICT)
    assert third.code == PacketCode.ACCESS_REJECT


def test_kept_decisions_and_cached_replies_leave_the_cyclic_collector_alone() -> None:
    """What the handler keeps per request (decisions, duplicate-cache entries) holds plain
    values only, so the collector stops tracking it at first sight (the duplicate cache's
    dicts are never tracked at all): 10,000s of kept
    decisions must not make every full collection (a pause in the reader) walk them."""
    handler, _ = make_handler()
    for login, password in (("ana", "s3nha"), ("ana", "wrong"), ("nobody", "x")):
        handler.handle(pap(login, password)[0], MK.ip, 5000, 1000.0)
    gc.collect()
    assert len(handler._decisions) == 3
    assert not any(gc.is_tracked(kept) for kept in handler._decisions.values())
    assert not any(gc.is_tracked(key) for key in handler._decisions)
    assert not gc.is_tracked(handler.dedup._replies) and not gc.is_tracked(handler.dedup._expires)


def test_settings_and_views_swapped_from_another_thread_reach_the_next_answer() -> None:
    """The auth port's reader answers while the reactor thread swaps views and settings
    (change feed, SIGHUP): no answer fails meanwhile, and once a swap has returned, the
    reader's next answer follows it, never a decision kept from before."""
    handler, _ = make_handler()
    requests = [pap()[0] for _ in range(200)]
    failures: list[BaseException] = []
    done = threading.Event()

    answered = [0]

    def answer() -> None:
        moment = 1000.0
        try:
            while not done.is_set():
                for data in requests:  # a new source port each time: no duplicate-cache hit
                    moment += 0.001
                    if handler.handle(data, MK.ip, 1024 + answered[0] % 60000, moment) is None:
                        raise AssertionError("no answer")
                    answered[0] += 1
        except BaseException as exc:  # reported by the test thread
            failures.append(exc)

    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)  # the daemon's: the threads interleave finely
    reader = threading.Thread(target=answer)
    reader.start()
    base = handler.view
    try:
        for round_ in range(300):
            interval = 300 + 60 * (round_ % 5)
            handler.reconfigure(HandlerSettings(policy=PolicySettings(acct_interim_interval=interval)), DICT)
            handler.swap_view(base.with_changes(services=[ANA], seq=round_ + 2))
            time.sleep(0.0005)
    finally:
        done.set()
        reader.join(10)
        sys.setswitchinterval(switch_interval)
    assert answered[0] > 1000
    assert not failures and not reader.is_alive()
    handler.reconfigure(HandlerSettings(policy=PolicySettings(acct_interim_interval=900)), DICT)
    after = decode(handler.handle(pap()[0], MK.ip, 6000, 9999.0) or b"", DICT)
    assert after.get("Acct-Interim-Interval") == 900
    handler.swap_view(base.with_changes(services=[replace(ANA, status="cancelled")], seq=999))
    assert decode(handler.handle(pap()[0], MK.ip, 6000, 9999.5) or b"", DICT).code == PacketCode.ACCESS_REJECT
