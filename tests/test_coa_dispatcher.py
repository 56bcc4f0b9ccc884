"""The CoA dispatcher driven by a fake clock, on SQLite and on PostgreSQL.

Time is `twisted.internet.task.Clock`; the database work runs synchronously (no thread);
the UDP port is a fake transport that keeps what the dispatcher wrote, and the tests
answer as the NAS would by handing bytes to the client. Jobs are queued by the real
management functions (suspend, set_plan, `coa.request`) on a real database, and the
history rows are read back from it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from twisted.internet.defer import maybeDeferred
from twisted.internet.task import Clock

from aaa.coa.dispatcher import CoaDispatcher
from aaa.config import CoaConfig
from aaa.daemon.metrics import CoaMetrics
from aaa.db.engine import make_engine, session_factory
from aaa.db.models import AcctSession, CoaAttempt, CoaJob
from aaa.db.views import load_view
from aaa.policy.rules import PolicySettings
from aaa.radius import (
    PacketCode,
    build_reply,
    decode,
    encode_attributes,
    load_dictionary,
    verify_request_authenticator,
)
from aaa.radius.packet import Packet
from management import coa, network, services, variables
from management.context import Context, load_actor
from tests import factories
from tests.conftest import NOW, ZONE

DICT = load_dictionary()
MK_IP, HW_IP, MK_SECRET, HW_SECRET = "127.0.0.1", "127.0.0.2", "mksecret", "hwsecret"
TIMEOUTS = (2.0, 4.0, 8.0)


class FakeUdp:
    """Stands in for the UDP port: keeps (bytes, address, time) of every datagram."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.sent: list[tuple[bytes, tuple[str, int], float]] = []

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((data, addr, self.clock.seconds()))


@dataclass
class Rig:
    sessions: sessionmaker[Session]
    clock: Clock
    wire: FakeUdp
    metrics: CoaMetrics
    registry: CollectorRegistry
    config: CoaConfig
    engine: Any = None
    dispatcher: CoaDispatcher = field(init=False)
    serial: int = 0

    def ctx(self, session: Session) -> Context:
        return Context(session=session, actor=load_actor(session, "admin"), now=self.now, zone=ZONE)

    @property
    def now(self) -> Any:
        from datetime import UTC, datetime

        return datetime.fromtimestamp(self.clock.seconds(), UTC)

    def online(self, login: str, nas_ip: str = MK_IP, nas_id: int | str | None = "lookup",
               framed_ip: str | None = "100.64.0.10") -> str:
        """An open accounting session for `login` on the NAS at `nas_ip`; its Acct-Session-Id."""
        from aaa.db.models import Nas, Service

        self.serial += 1
        session_id = f"8{self.serial:07d}"
        with self.sessions() as s, s.begin():
            service = s.scalar(select(Service).where(Service.login == login))
            assert service is not None
            if nas_id == "lookup":
                nas_id = s.scalar(select(Nas.id).where(Nas.ip == nas_ip))
            s.add(AcctSession(unique_id=f"{self.serial:032d}", acct_session_id=session_id,
                              nas_id=nas_id, nas_ip=nas_ip, login=login, service_id=service.id,
                              framed_ip=framed_ip, started_at=self.now, updated_at=self.now,
                              session_time=0, input_octets=0, output_octets=0))
        return session_id

    def jobs(self) -> list[CoaJob]:
        with self.sessions() as s:
            return list(s.scalars(select(CoaJob).order_by(CoaJob.id)))

    def attempts(self) -> list[CoaAttempt]:
        with self.sessions() as s:
            return list(s.scalars(select(CoaAttempt).order_by(CoaAttempt.id)))

    def packets(self) -> list[Packet]:
        return [decode(data, DICT) for data, _, _ in self.wire.sent]

    def answer(self, index: int, code: int, secret: str = MK_SECRET, cause: int | None = None,
               source: tuple[str, int] | None = None) -> None:
        """The NAS answers the `index`-th datagram sent (ACK/NAK, optional Error-Cause)."""
        data, addr, _ = self.wire.sent[index]
        request = decode(data, DICT)
        attrs = encode_attributes(DICT, [("Error-Cause", cause)]) if cause is not None else b""
        self.dispatcher.client.datagramReceived(build_reply(request, code, secret.encode(), attrs),
                                                source or addr)

    def sample(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


def make_rig(url: str, config: CoaConfig | None = None) -> Rig:
    config = config or CoaConfig(timeouts=TIMEOUTS)
    engine = make_engine(url)
    sessions = session_factory(engine)
    clock = Clock()
    clock.advance(NOW.timestamp())
    registry = CollectorRegistry()
    rig = Rig(sessions, clock, FakeUdp(clock), CoaMetrics(registry), registry, config, engine)
    with sessions() as s, s.begin():
        ctx = rig.ctx(s)
        factories.plan(ctx, "FIBRA-100", download_kbps=100_000, upload_kbps=50_000)
        factories.plan(ctx, "FIBRA-300", download_kbps=300_000, upload_kbps=150_000)
        network.create_nas(ctx, "mk", MK_IP, MK_SECRET, "mikrotik")
        network.create_nas(ctx, "hw", HW_IP, HW_SECRET, "huawei", coa_port=3800)
        owner = factories.customer(ctx)
        for login in ("ana", "bia", "caio"):
            factories.service(ctx, login, owner=owner)
        variables.set_variable(ctx, "POOL_SUSPENSAO_TOTAL", "bloqueados")
    with sessions() as s, s.begin():
        view = load_view(s)  # older than what the tests change: the dispatcher refreshes it
    rig.dispatcher = CoaDispatcher(
        sessions, clock, lambda f, *args: maybeDeferred(f, *args), lambda: view, PolicySettings,
        lambda: DICT, config, rig.metrics, claimer="test")
    rig.dispatcher.client.transport = rig.wire  # type: ignore[assignment]
    return rig


@pytest.fixture
def rig(fresh_db_url: str) -> Iterator[Rig]:
    made = make_rig(fresh_db_url)
    yield made
    made.engine.dispose()


def act(rig: Rig, action: Any) -> None:
    with rig.sessions() as s, s.begin():
        action(rig.ctx(s))


def attrs_of(packet: Packet) -> dict[str, Any]:
    return {definition.name: value for definition, value in packet.items()}


# --- Disconnect ---------------------------------------------------------------------------------


def test_suspension_sends_disconnect_and_records_the_ack(rig: Rig) -> None:
    """A suspension of an online subscriber sends one Disconnect-Request to the NAS's CoA
    port, signed with its secret and naming the session; the ACK makes the job done with
    one 'ack' history row carrying the operator and the reason."""
    session_id = rig.online("ana")
    act(rig, lambda ctx: services.suspend(ctx, "ana", "debt"))
    rig.dispatcher.wake()
    [(data, addr, _)] = rig.wire.sent
    assert addr == (MK_IP, 3799)
    packet = decode(data, DICT)
    assert packet.code == PacketCode.DISCONNECT_REQUEST
    assert verify_request_authenticator(packet, MK_SECRET.encode())
    assert attrs_of(packet) == {"User-Name": "ana", "Acct-Session-Id": session_id,
                                "Framed-IP-Address": "100.64.0.10", "NAS-IP-Address": MK_IP}
    assert rig.jobs()[0].status == "sending"
    rig.answer(0, PacketCode.DISCONNECT_ACK)
    [job] = rig.jobs()
    assert (job.status, job.kind) == ("done", "disconnect")
    assert "disconnect ack" in (job.result or "")
    [row] = rig.attempts()
    assert (row.result, row.request_type, row.attempt, row.error_cause) == ("ack", "disconnect", 1, None)
    assert (row.login, row.nas_ip, row.acct_session_id, row.operator_login) == (
        "ana", MK_IP, session_id, "admin")
    assert "suspended_debt" in row.reason and row.latency_ms == 0.0
    assert rig.sample("aaa_coa_requests_total", nas="mk", type="disconnect", result="ack") == 1
    assert rig.sample("aaa_coa_queue_depth") == 1  # counted when claimed (it was being sent)


def test_silence_retries_with_backoff_then_fails(rig: Rig) -> None:
    """No answer: the very same datagram is sent again after 2 s and 6 s (timeouts 2, 4, 8),
    the job fails after 14 s saying so, and each try is a 'timeout' row at its moment."""
    rig.online("ana")
    act(rig, lambda ctx: services.suspend(ctx, "ana", "debt"))
    start = rig.clock.seconds()
    rig.dispatcher.wake()
    for step, tries in ((1.5, 1), (0.5, 2), (3.5, 2), (0.5, 3), (7.5, 3)):
        rig.clock.advance(step)
        assert (rig.jobs()[0].status, len(rig.wire.sent)) == ("sending", tries)
    assert [at - start for _, _, at in rig.wire.sent] == pytest.approx([0.0, 2.0, 6.0])
    assert len({data for data, _, _ in rig.wire.sent}) == 1
    rig.clock.advance(0.5)
    [job] = rig.jobs()
    assert job.status == "failed" and "unanswered after 3 tries" in (job.result or "")
    rows = rig.attempts()
    assert [(r.result, r.attempt) for r in rows] == [("timeout", 1), ("timeout", 2), ("timeout", 3)]
    assert [r.at.timestamp() - start for r in rows] == pytest.approx([0.0, 2.0, 6.0])
    assert rig.sample("aaa_coa_requests_total", nas="mk", type="disconnect", result="timeout") == 3
    assert not rig.dispatcher.busy


def test_answer_to_a_retransmission(rig: Rig) -> None:
    """An ACK after the second try: a 'timeout' row, then an 'ack' row timed from the
    second transmission."""
    rig.online("ana")
    act(rig, lambda ctx: services.suspend(ctx, "ana", "debt"))
    rig.dispatcher.wake()
    rig.clock.advance(2.0)
    rig.clock.advance(0.25)
    rig.answer(1, PacketCode.DISCONNECT_ACK)
    rows = rig.attempts()
    assert [(r.result, r.attempt) for r in rows] == [("timeout", 1), ("ack", 2)]
    assert rows[1].latency_ms == pytest.approx(250.0)
    assert rig.jobs()[0].status == "done"
    assert len(rig.wire.sent) == 2
    rig.clock.advance(30)  # nothing more is sent once answered
    assert len(rig.wire.sent) == 2


def test_forged_answer_is_ignored_and_counted(rig: Rig) -> None:
    """An answer signed with another secret, or from another address, does not settle the
    request; it is counted, and the genuine answer still is."""
    rig.online("ana")
    act(rig, lambda ctx: services.suspend(ctx, "ana", "debt"))
    rig.dispatcher.wake()
    rig.answer(0, PacketCode.DISCONNECT_ACK, secret="not-the-secret")
    rig.answer(0, PacketCode.DISCONNECT_ACK, source=("127.0.0.9", 3799))
    assert rig.jobs()[0].status == "sending"
    assert rig.sample("aaa_coa_answers_rejected_total") == 2
    rig.answer(0, PacketCode.DISCONNECT_ACK)
    assert rig.jobs()[0].status == "done"


def test_nak_with_error_cause_fails_the_job(rig: Rig) -> None:
    """A Disconnect-NAK 504 is one 'nak' row with the Error-Cause; the job fails naming it."""
    rig.online("ana")
    act(rig, lambda ctx: services.suspend(ctx, "ana", "debt"))
    rig.dispatcher.wake()
    rig.answer(0, PacketCode.DISCONNECT_NAK, cause=504)
    [row] = rig.attempts()
    assert (row.result, row.error_cause) == ("nak", 504)
    [job] = rig.jobs()
    assert job.status == "failed" and "504 Session Context Not Removable" in (job.result or "")
    assert rig.sample("aaa_coa_error_causes_total", nas="mk", cause="504") == 1


def test_nak_503_means_already_gone(rig: Rig) -> None:
    """NAK 503 (Session Context Not Found): the session is gone already, the job is done."""
    rig.online("ana")
    act(rig, lambda ctx: services.suspend(ctx, "ana", "debt"))
    rig.dispatcher.wake()
    rig.answer(0, PacketCode.DISCONNECT_NAK, cause=503)
    [job] = rig.jobs()
    assert job.status == "done" and "already gone" in (job.result or "")


def test_every_open_session_gets_its_request(rig: Rig) -> None:
    """Two open sessions (two NAS): two requests; the job is done only when both ACK."""
    first = rig.online("ana")
    second = rig.online("ana", nas_ip=HW_IP, framed_ip=None)
    act(rig, lambda ctx: services.suspend(ctx, "ana", "debt"))
    rig.dispatcher.wake()
    by_session = {attrs_of(p)["Acct-Session-Id"]: i for i, p in enumerate(rig.packets())}
    assert set(by_session) == {first, second}
    assert rig.wire.sent[by_session[second]][1] == (HW_IP, 3800)
    assert "Framed-IP-Address" not in attrs_of(rig.packets()[by_session[second]])
    rig.answer(by_session[first], PacketCode.DISCONNECT_ACK)
    assert rig.jobs()[0].status == "sending"
    rig.answer(by_session[second], PacketCode.DISCONNECT_ACK, secret=HW_SECRET)
    assert rig.jobs()[0].status == "done"
    assert sorted(r.nas_ip for r in rig.attempts()) == [MK_IP, HW_IP]


# --- CoA ------------------------------------------------------------------------------------------


def test_plan_change_sends_coa_with_mikrotik_rate_limit(rig: Rig) -> None:
    """set_plan → CoA-Request with the new plan's Mikrotik-Rate-Limit (upload/download)."""
    session_id = rig.online("ana")
    act(rig, lambda ctx: services.set_plan(ctx, "ana", "FIBRA-300"))
    rig.dispatcher.wake()
    [packet] = rig.packets()
    assert packet.code == PacketCode.COA_REQUEST
    assert verify_request_authenticator(packet, MK_SECRET.encode())
    assert attrs_of(packet) == {"User-Name": "ana", "Acct-Session-Id": session_id,
                                "Framed-IP-Address": "100.64.0.10", "NAS-IP-Address": MK_IP,
                                "Mikrotik-Rate-Limit": "150000k/300000k"}
    rig.answer(0, PacketCode.COA_ACK)
    [row] = rig.attempts()
    assert (row.request_type, row.result) == ("coa", "ack")
    assert rig.jobs()[0].status == "done"


def test_plan_change_sends_coa_with_huawei_rates(rig: Rig) -> None:
    """On a Huawei NAS the CoA carries input (upload) and output (download) average and
    peak rates in bit/s."""
    rig.online("bia", nas_ip=HW_IP)
    act(rig, lambda ctx: services.set_plan(ctx, "bia", "FIBRA-300"))
    rig.dispatcher.wake()
    [packet] = rig.packets()
    assert packet.code == PacketCode.COA_REQUEST
    assert verify_request_authenticator(packet, HW_SECRET.encode())
    attrs = attrs_of(packet)
    assert {k: v for k, v in attrs.items() if k.startswith("Huawei-")} == {
        "Huawei-Input-Average-Rate": 150_000_000, "Huawei-Input-Peak-Rate": 150_000_000,
        "Huawei-Output-Average-Rate": 300_000_000, "Huawei-Output-Peak-Rate": 300_000_000}
    assert attrs["NAS-IP-Address"] == HW_IP and "Mikrotik-Rate-Limit" not in attrs


def test_coa_nak_falls_back_to_disconnect(rig: Rig) -> None:
    """A CoA-NAK (401 Unsupported Attribute) is followed by a Disconnect-Request; its ACK
    settles the job as done, both requests in the history."""
    rig.online("ana")
    act(rig, lambda ctx: services.set_plan(ctx, "ana", "FIBRA-300"))
    rig.dispatcher.wake()
    rig.answer(0, PacketCode.COA_NAK, cause=401)
    assert [p.code for p in rig.packets()] == [PacketCode.COA_REQUEST, PacketCode.DISCONNECT_REQUEST]
    rig.answer(1, PacketCode.DISCONNECT_ACK)
    rows = rig.attempts()
    assert [(r.request_type, r.result, r.error_cause) for r in rows] == [
        ("coa", "nak", 401), ("disconnect", "ack", None)]
    [job] = rig.jobs()
    assert job.status == "done" and "fallback disconnect ack" in (job.result or "")


def test_coa_nak_without_fallback_fails(fresh_db_url: str) -> None:
    """With coa.fallback_disconnect = false a CoA-NAK fails the job, no Disconnect sent."""
    rig = make_rig(fresh_db_url, CoaConfig(timeouts=TIMEOUTS, fallback_disconnect=False))
    rig.online("ana")
    act(rig, lambda ctx: services.set_plan(ctx, "ana", "FIBRA-300"))
    rig.dispatcher.wake()
    rig.answer(0, PacketCode.COA_NAK, cause=401)
    assert len(rig.wire.sent) == 1
    [job] = rig.jobs()
    assert job.status == "failed" and "401 Unsupported Attribute" in (job.result or "")


def test_coa_for_a_debt_suspended_service_disconnects(rig: Rig) -> None:
    """`coa update` for a service suspended for debt: a speed cannot move it to the blocked
    pool, so the dispatcher sends a Disconnect instead."""
    act(rig, lambda ctx: services.suspend(ctx, "caio", "debt"))  # offline: no job
    assert rig.jobs() == []
    rig.online("caio")
    act(rig, lambda ctx: coa.request(ctx, "caio", coa.COA, "operator: update"))
    rig.dispatcher.wake()
    assert [p.code for p in rig.packets()] == [PacketCode.DISCONNECT_REQUEST]


def test_partial_suspension_speed_by_coa(rig: Rig) -> None:
    """`coa update` for a partially suspended service sends the reduced speed (50 % off)."""
    act(rig, lambda ctx: services.suspend(ctx, "bia", "partial"))
    rig.online("bia")
    act(rig, lambda ctx: coa.request(ctx, "bia", coa.COA, "operator: update"))
    rig.dispatcher.wake()
    [packet] = rig.packets()
    assert packet.code == PacketCode.COA_REQUEST
    assert attrs_of(packet)["Mikrotik-Rate-Limit"] == "25000k/50000k"


# --- jobs that cannot be sent --------------------------------------------------------------------


def test_session_closed_before_dispatch_is_done(rig: Rig) -> None:
    """The session stopped between the change and the dispatch: nothing to send, job done."""
    rig.online("ana")
    act(rig, lambda ctx: services.suspend(ctx, "ana", "debt"))
    with rig.sessions() as s, s.begin():
        for row in s.scalars(select(AcctSession)):
            row.stopped_at = rig.now
    rig.dispatcher.wake()
    assert rig.wire.sent == []
    [job] = rig.jobs()
    assert (job.status, job.result) == ("done", "no open session")
    assert rig.attempts() == []


def test_session_on_unknown_nas_is_an_error_row(rig: Rig) -> None:
    """A session whose NAS is not in our table: one 'error' row, the job fails saying so."""
    rig.online("ana", nas_ip="10.9.9.9", nas_id=None)
    act(rig, lambda ctx: services.suspend(ctx, "ana", "debt"))
    rig.dispatcher.wake()
    assert rig.wire.sent == []
    [row] = rig.attempts()
    assert (row.result, row.nas_ip, row.nas_id) == ("error", "10.9.9.9", None)
    [job] = rig.jobs()
    assert job.status == "failed" and "no NAS" in (job.result or "")


def test_jobs_do_not_wait_for_a_silent_nas(rig: Rig) -> None:
    """A job stuck on a silent NAS does not hold back a later job for another NAS: the
    next poll sends it at once."""
    rig.online("ana", nas_ip=HW_IP)
    act(rig, lambda ctx: services.suspend(ctx, "ana", "debt"))
    rig.dispatcher.start(lambda protocol: None)  # polls every second on the fake clock
    assert len(rig.wire.sent) == 1
    rig.online("bia")
    act(rig, lambda ctx: services.suspend(ctx, "bia", "debt"))
    rig.clock.advance(1.0)
    assert [addr for _, addr, _ in rig.wire.sent] == [(HW_IP, 3800), (MK_IP, 3799)]
    rig.answer(1, PacketCode.DISCONNECT_ACK)
    assert [j.status for j in rig.jobs()] == ["sending", "done"]
    rig.dispatcher.stop()


def test_stop_puts_jobs_in_flight_back_in_the_queue(rig: Rig) -> None:
    """Stopping the daemon mid-request releases the claim: the job is pending again."""
    rig.online("ana")
    act(rig, lambda ctx: services.suspend(ctx, "ana", "debt"))
    rig.dispatcher.wake()
    assert rig.dispatcher.busy
    rig.dispatcher.stop()
    [job] = rig.jobs()
    assert (job.status, job.claimed_by) == ("pending", None)


def test_identifiers_are_reused_only_when_free(rig: Rig) -> None:
    """More than 256 requests for one NAS: the 257th waits for a free Identifier and is
    sent as soon as one request is settled."""
    rig.online("ana")
    for _ in range(256):
        act(rig, lambda ctx: coa.request(ctx, "ana", coa.DISCONNECT, "bulk"))
    act(rig, lambda ctx: coa.request(ctx, "ana", coa.DISCONNECT, "one more"))
    rig.dispatcher.wake()
    assert len(rig.wire.sent) == 256
    assert len({data[1] for data, _, _ in rig.wire.sent}) == 256
    rig.answer(10, PacketCode.DISCONNECT_ACK)
    assert len(rig.wire.sent) == 257 and rig.wire.sent[256][0][1] == rig.wire.sent[10][0][1]



def test_reconfigure_applies_new_timeouts_and_poll_interval(rig: Rig) -> None:
    """SIGHUP's reconfigure: the poll runs at the new interval (nothing sent 1 s after it,
    the job sent once 5 s pass) and the new timeouts set the retransmission schedule."""
    rig.dispatcher.start(lambda protocol: None)
    rig.dispatcher.reconfigure(CoaConfig(timeouts=(3.0,), poll_interval=5.0))
    rig.online("ana")
    act(rig, lambda ctx: services.suspend(ctx, "ana", "debt"))
    rig.clock.advance(1.0)
    assert rig.wire.sent == []
    rig.clock.advance(4.0)
    assert len(rig.wire.sent) == 1
    rig.clock.advance(3.0)  # one try of 3 s: no retransmission, the job fails
    assert len(rig.wire.sent) == 1
    [job] = rig.jobs()
    assert job.status == "failed"
    rig.dispatcher.stop()
