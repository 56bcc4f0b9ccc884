"""CoA and Disconnect end to end, over real UDP, on SQLite and on PostgreSQL.

`aaa serve` runs as a process (tests.daemon_process); its CoA client talks to test NAS:
real UDP listeners of ours on 127.0.0.5 (MikroTik) and 127.0.0.6 (Huawei) — Linux
answers for all of 127/8 — registered with `aaa nas add ... --coa-port N`, N being the
port the listener got from the kernel. A test NAS checks nothing itself: it keeps every
request (bytes and arrival time) and answers per request code with an ACK, a NAK with a
chosen Error-Cause, or silence; the tests verify the request authenticator with the
NAS's secret and the exact attributes.

Subscribers come online with a real Accounting-Request Start sent from the NAS's address
to the daemon's accounting port; re-authentication is a raw Access-Request (PAP) from the
same address. The daemon's CoA timeouts are shortened by an `aaa.toml` in its working
directory (`[coa] timeouts = [0.4, 0.8]`) so that a silent NAS costs 1.2 s. Each test uses
logins of its own.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from aaa.radius import (
    PacketCode,
    build_reply,
    build_request,
    decode,
    encode_attributes,
    load_dictionary,
    new_authenticator,
    verify_reply,
    verify_request_authenticator,
)
from aaa.radius.packet import Packet
from tests.acct_process import (
    START,
    STOP,
    AcctClient,
    aaa,
    aaa_ok,
    aaa_process,
    acct_daemon,
    acct_port,
    poll,
    session_attrs,
)
from tests.conftest import Database
from tests.daemon_process import Daemon

DICT = load_dictionary()
MK_IP, HW_IP = "127.0.0.5", "127.0.0.6"
SECRETS = {MK_IP: "mk-coa-secret", HW_IP: "hw-coa-secret"}
PASSWORD = "s3nh@Forte"
BLOCKED_POOL = "bloqueados"
TIMEOUTS = (0.4, 0.8)
ANSWERS = {PacketCode.DISCONNECT_REQUEST: (PacketCode.DISCONNECT_ACK, PacketCode.DISCONNECT_NAK),
           PacketCode.COA_REQUEST: (PacketCode.COA_ACK, PacketCode.COA_NAK)}
LOGINS = ("ana", "bia", "caio", "davi", "eva", "fabio", "gil", "hugo")


@dataclass
class Received:
    packet: Packet
    data: bytes
    source: tuple[str, int]
    at: float  # time.monotonic()


class TestNas:
    """A NAS's CoA port: a real UDP listener that answers as told. `answers` maps a
    request code to "ack", ("nak", cause) or "silent"; unlisted codes are ACKed."""

    __test__ = False

    def __init__(self, ip: str, secret: str) -> None:
        self.ip, self.secret = ip, secret.encode()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))
        self.sock.settimeout(0.05)
        self.port = int(self.sock.getsockname()[1])
        self.answers: dict[int, Any] = {}
        self.received: list[Received] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"test-nas-{ip}", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, source = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            packet = decode(data, DICT)
            self.received.append(Received(packet, data, source, time.monotonic()))
            how = self.answers.get(packet.code, "ack")
            if how == "silent" or packet.code not in ANSWERS:
                continue
            ack, nak = ANSWERS[packet.code]
            if how == "ack":
                self.sock.sendto(build_reply(packet, ack, self.secret), source)
            else:
                attrs = encode_attributes(DICT, [("Error-Cause", how[1])])
                self.sock.sendto(build_reply(packet, nak, self.secret, attrs), source)

    def requests_for(self, login: str) -> list[Received]:
        return [r for r in list(self.received) if r.packet.get("User-Name") == login]

    def wait_for(self, login: str, count: int = 1, timeout: float = 5.0) -> list[Received]:
        return list(poll(lambda: len(self.requests_for(login)) >= count and self.requests_for(login),
                         timeout, 0.01) or self.requests_for(login))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@dataclass
class World:
    url: str
    cwd: Path
    nas: dict[str, TestNas]
    daemon: Daemon = field(init=False)
    serial: int = 0

    def ok(self, *args: str) -> Any:
        return aaa_ok(self.url, self.cwd, *args)

    def online(self, login: str, nas_ip: str = MK_IP) -> str:
        """Accounting Start from the NAS for `login` (Framed-IP-Address `framed_ip(login)`);
        the session is open when the Accounting-Response arrives."""
        self.serial += 1
        session_id = f"{nas_ip.rsplit('.', 1)[1]}{self.serial:07d}"
        attrs = session_attrs(login, session_id, START, nas_ip=nas_ip, ip=framed_ip(login),
                              mac=None)
        with AcctClient(acct_port(self.daemon), source=nas_ip, secret=SECRETS[nas_ip]) as client:
            assert client.one(attrs), f"accounting Start for {login} not acknowledged"
        assert any(s["session_id"] == session_id for s in self.ok("sessions", "online"))
        return session_id

    def offline(self, login: str, session_id: str, nas_ip: str = MK_IP) -> None:
        """Accounting Stop (Admin-Reset), as the NAS sends after a Disconnect."""
        attrs = session_attrs(login, session_id, STOP, nas_ip=nas_ip, ip=framed_ip(login),
                              mac=None, session_time=30, cause=6)
        with AcctClient(acct_port(self.daemon), source=nas_ip, secret=SECRETS[nas_ip]) as client:
            assert client.one(attrs), f"accounting Stop for {login} not acknowledged"

    def access(self, login: str, nas_ip: str = MK_IP) -> Packet | None:
        """A PAP Access-Request from the NAS's address; the verified reply (None: silence)."""
        secret = SECRETS[nas_ip].encode()
        authenticator = new_authenticator()
        attrs = encode_attributes(DICT, [("User-Name", login), ("User-Password", PASSWORD),
                                         ("NAS-IP-Address", nas_ip)],
                                  secret=secret, authenticator=authenticator)
        request = build_request(PacketCode.ACCESS_REQUEST, 7, attrs, secret,
                                authenticator=authenticator)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((nas_ip, 0))
            sock.settimeout(2.0)
            sock.sendto(request, ("127.0.0.1", self.daemon.auth_port))
            try:
                raw = sock.recv(4096)
            except TimeoutError:
                return None
        reply = decode(raw, DICT)
        assert verify_reply(reply, authenticator, secret)
        return reply

    def history(self, login: str) -> list[dict[str, Any]]:
        return list(self.ok("coa", "history", login))


@pytest.fixture(scope="module")
def world(template_db: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A fresh database with the two NAS (CoA ports: the test listeners'), two plans, the
    blocked-pool variable and one service per login; `aaa serve` running on it."""
    cwd = tmp_path_factory.mktemp(f"coa-{template_db.backend}")
    (cwd / "aaa.toml").write_text(f"[coa]\ntimeouts = [{', '.join(map(str, TIMEOUTS))}]\n")
    nas = {MK_IP: TestNas(MK_IP, SECRETS[MK_IP]), HW_IP: TestNas(HW_IP, SECRETS[HW_IP])}
    world = World(template_db.make_copy(), cwd, nas)
    try:
        world.ok("plan", "add", "FIBRA-100", "--download", "100000", "--upload", "50000",
                 "--price", "99.90")
        world.ok("plan", "add", "FIBRA-300", "--download", "300000", "--upload", "150000",
                 "--price", "149.90")
        for name, ip, vendor in (("mk", MK_IP, "mikrotik"), ("hw", HW_IP, "huawei")):
            world.ok("nas", "add", name, "--ip", ip, "--secret", SECRETS[ip], "--vendor", vendor,
                     "--no-require-message-authenticator", "--coa-port", str(nas[ip].port))
        world.ok("customer", "add", "--name", "Cliente CoA", "--document", "52998224725")
        for login in LOGINS:
            world.ok("service", "add", "--customer", "52998224725", "--plan", "FIBRA-100",
                     "--login", login, "--password", PASSWORD)
        world.ok("var", "set", "POOL_SUSPENSAO_TOTAL", BLOCKED_POOL)
        with acct_daemon(world.url, cwd) as daemon:
            world.daemon = daemon
            yield world
    finally:
        for listener in nas.values():
            listener.close()


def framed_ip(login: str) -> str:
    return f"100.64.1.{LOGINS.index(login) + 1}"


def attrs_of(packet: Packet) -> dict[str, Any]:
    return {definition.name: value for definition, value in packet.items()}


def test_suspension_disconnects_within_two_seconds(world: World) -> None:
    """The full chain: subscriber online → `aaa service suspend LOGIN --mode debt` in a
    process of its own → the Disconnect-Request, signed with the NAS's secret and naming
    the session, reaches the NAS within 2 s of the command's exit → the ACK is in the
    history → re-authentication lands in POOL_SUSPENSAO_TOTAL."""
    mk = world.nas[MK_IP]
    before = world.access("ana")
    assert before is not None and before.code == PacketCode.ACCESS_ACCEPT
    assert before.get("Framed-Pool") != BLOCKED_POOL
    session_id = world.online("ana")
    done = aaa_process(world.url, world.cwd, "service", "suspend", "ana", "--mode", "debt")
    exited = time.monotonic()
    assert done.returncode == 0, done.stderr
    [got] = mk.wait_for("ana", timeout=5.0)
    assert got.at - exited <= 2.0, f"Disconnect-Request {got.at - exited:.2f}s after the commit"
    assert got.packet.code == PacketCode.DISCONNECT_REQUEST
    assert verify_request_authenticator(got.packet, SECRETS[MK_IP].encode())
    assert attrs_of(got.packet) == {"User-Name": "ana", "Acct-Session-Id": session_id,
                                    "Framed-IP-Address": framed_ip("ana"), "NAS-IP-Address": MK_IP}
    rows = poll(lambda: [r for r in world.history("ana") if r["result"] == "ack"], 5.0)
    [row] = rows
    assert (row["type"], row["nas"], row["session"], row["operator"]) == (
        "disconnect", "mk", session_id, "admin")
    assert "suspended_debt" in row["reason"]
    world.offline("ana", session_id)  # the NAS reports the session it just ended

    def blocked() -> bool:
        reply = world.access("ana")
        return reply is not None and reply.code == PacketCode.ACCESS_ACCEPT \
            and reply.get("Framed-Pool") == BLOCKED_POOL

    assert poll(blocked, 3.0), "re-authentication did not land in the blocked pool"
    assert world.daemon.sample("aaa_coa_requests_total", nas="mk", type="disconnect",
                               result="ack") >= 1


def test_plan_change_sends_coa_within_two_seconds(world: World) -> None:
    """`aaa service set-plan LOGIN FIBRA-300` in a process of its own → a CoA-Request with
    the new Mikrotik-Rate-Limit within 2 s; the job is done."""
    mk = world.nas[MK_IP]
    session_id = world.online("bia")
    done = aaa_process(world.url, world.cwd, "service", "set-plan", "bia", "FIBRA-300")
    exited = time.monotonic()
    assert done.returncode == 0, done.stderr
    [got] = mk.wait_for("bia", timeout=5.0)
    assert got.at - exited <= 2.0
    assert got.packet.code == PacketCode.COA_REQUEST
    assert verify_request_authenticator(got.packet, SECRETS[MK_IP].encode())
    attrs = attrs_of(got.packet)
    assert attrs == {"User-Name": "bia", "Acct-Session-Id": session_id,
                     "Framed-IP-Address": framed_ip("bia"), "NAS-IP-Address": MK_IP,
                     "Mikrotik-Rate-Limit": "150000k/300000k"}
    jobs = poll(lambda: [j for j in world.ok("coa", "jobs", "--login", "bia")
                         if j["status"] == "done"], 5.0)
    assert jobs and jobs[0]["kind"] == "coa"


def test_huawei_update_by_hand(world: World) -> None:
    """`aaa coa update LOGIN --wait` on a Huawei session: a CoA-Request with the input
    (upload) and output (download) average and peak rates; prints the settled job."""
    hw = world.nas[HW_IP]
    session_id = world.online("caio", nas_ip=HW_IP)
    job = world.ok("coa", "update", "caio", "--reason", "cliente reclamou", "--wait", "10")
    assert (job["status"], job["kind"], job["reason"]) == ("done", "coa", "cliente reclamou")
    assert isinstance(job["id"], int)
    [got] = hw.requests_for("caio")
    assert verify_request_authenticator(got.packet, SECRETS[HW_IP].encode())
    assert attrs_of(got.packet) == {
        "User-Name": "caio", "Acct-Session-Id": session_id,
        "Framed-IP-Address": framed_ip("caio"), "NAS-IP-Address": HW_IP,
        "Huawei-Input-Average-Rate": 50_000_000, "Huawei-Input-Peak-Rate": 50_000_000,
        "Huawei-Output-Average-Rate": 100_000_000, "Huawei-Output-Peak-Rate": 100_000_000}


def test_nak_error_cause_in_history_in_both_languages(world: World) -> None:
    """A Disconnect-NAK with Error-Cause 404: `aaa coa disconnect --wait` exits 1 naming
    it, and `aaa coa history` shows the cause, its name and meaning in English and in
    Portuguese (json and table)."""
    mk = world.nas[MK_IP]
    world.online("davi")
    mk.answers[PacketCode.DISCONNECT_REQUEST] = ("nak", 404)
    try:
        result = aaa(world.url, world.cwd, "--format", "json", "coa", "disconnect", "davi",
                     "--wait", "10")
    finally:
        mk.answers.clear()
    assert result.code == 1 and "coa.failed" in result.err and "404 Invalid Request" in result.err
    assert result.json["status"] == "failed"
    [row] = world.history("davi")
    assert (row["result"], row["error_cause"], row["error_name"]) == ("nak", 404, "Invalid Request")
    assert row["meaning"] == "the NAS found the request invalid or unsupported: call support"
    assert row["meaning_pt"] == ("O sistema enviou uma requisição inválida ou não suportada. "
                                 "Chamar o Suporte.")
    assert row["operator"] == "admin" and row["reason"] == "operator: disconnect"
    table = aaa(world.url, world.cwd, "coa", "history", "davi")
    assert table.code == 0 and "Chamar o Suporte" in table.out and "Invalid Request" in table.out
    assert world.daemon.sample("aaa_coa_error_causes_total", nas="mk", cause="404") == 1


def test_silent_nas_retries_then_fails(world: World) -> None:
    """A NAS that never answers gets the same datagram once per configured timeout
    (0.4 s then 0.8 s); the history holds one 'timeout' row per try; the job fails."""
    mk = world.nas[MK_IP]
    world.online("eva")
    mk.answers[PacketCode.DISCONNECT_REQUEST] = "silent"
    try:
        result = aaa(world.url, world.cwd, "--format", "json", "coa", "disconnect", "eva",
                     "--wait", "10")
    finally:
        mk.answers.clear()
    assert result.code == 1 and "unanswered after 2 tries" in result.err
    got = mk.requests_for("eva")
    assert len(got) == 2 and got[0].data == got[1].data
    assert 0.3 <= got[1].at - got[0].at <= 1.0
    rows = sorted(world.history("eva"), key=lambda r: r["attempt"])
    assert [(r["result"], r["attempt"], r["type"]) for r in rows] == [
        ("timeout", 1, "disconnect"), ("timeout", 2, "disconnect")]


def test_coa_nak_falls_back_to_disconnect(world: World) -> None:
    """A CoA-NAK (401 Unsupported Attribute) is followed by a Disconnect-Request to the
    same session; with its ACK the job is done and both are in the history."""
    mk = world.nas[MK_IP]
    session_id = world.online("fabio")
    mk.answers[PacketCode.COA_REQUEST] = ("nak", 401)
    try:
        job = world.ok("coa", "update", "fabio", "--wait", "10")
    finally:
        mk.answers.clear()
    assert job["status"] == "done" and "fallback disconnect ack" in job["result"]
    codes = [r.packet.code for r in mk.requests_for("fabio")]
    assert codes == [PacketCode.COA_REQUEST, PacketCode.DISCONNECT_REQUEST]
    assert attrs_of(mk.requests_for("fabio")[1].packet)["Acct-Session-Id"] == session_id
    rows = world.history("fabio")
    assert sorted((r["type"], r["result"], r["error_cause"]) for r in rows) == [
        ("coa", "nak", 401), ("disconnect", "ack", None)]
    nak = next(r for r in rows if r["result"] == "nak")
    assert nak["meaning_pt"] == "O sistema enviou um atributo não suportado, verificar o tipo de NAS."


def test_coa_by_hand_needs_an_open_session(world: World) -> None:
    """`aaa coa disconnect` for a subscriber with no open session is refused (exit 1)."""
    result = aaa(world.url, world.cwd, "coa", "disconnect", "gil")
    assert result.code == 1 and "coa.no_open_session" in result.err
