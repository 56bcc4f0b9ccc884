"""Accounting end to end: `aaa serve` as a real process on SQLite and on PostgreSQL, fed
Accounting-Requests by FreeRADIUS's `radclient`, by pyrad and by our NAS-like UDP client
(which re-sends the very same octets), and read back through `aaa report connections`
and `aaa sessions online`.

One daemon per backend serves the module. Its database holds two NAS told apart by
source address (Linux answers for all of 127/8) — `mk` at 127.0.0.1 and `mk2` at
127.0.0.2, both MikroTik, secret testing123, Message-Authenticator not required
(radclient sends none by default) — and one service per login. Each test uses logins of
its own (and only the Accounting-On/Off test uses `mk2`), so the tests do not depend on
each other's order.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.acct_process import (
    ACCOUNTING_OFF,
    ACCOUNTING_ON,
    BIND,
    INTERIM,
    SECRET,
    START,
    STOP,
    AcctClient,
    aaa_ok,
    acct_daemon,
    acct_port,
    acct_request,
    is_response_to,
    poll,
    populate,
    session_attrs,
)
from tests.conftest import Database
from tests.daemon_process import Daemon

RADCLIENT = shutil.which("radclient")
PASSWORD = "s3nh@Forte"
MK2_IP = "127.0.0.2"
LOGINS = ("ana", "bia", "carla", "davi", "eva", "fabio", "gil", "hugo", "iara", "joao", "kiko",
          "lia", "mara")
GIGA = 1 << 32
SIMULTANEOUS = "simultaneous use limit 1 reached"


@dataclass
class World:
    url: str
    cwd: Path
    daemon: Daemon = field(init=False)

    @property
    def acct_port(self) -> int:
        return acct_port(self.daemon)

    def ok(self, *args: str) -> Any:
        return aaa_ok(self.url, self.cwd, *args)

    def statement(self, login: str) -> list[dict[str, Any]]:
        """`aaa report connections --login L --format json` (newest first)."""
        return list(self.ok("report", "connections", "--login", login))

    def online(self, nas: str | None = None) -> list[dict[str, Any]]:
        return list(self.ok("sessions", "online", *(("--nas", nas) if nas else ())))


@pytest.fixture(scope="module")
def world(template_db: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A fresh database of this backend with the two NAS and the services, and `aaa serve`
    (auth, accounting and metrics ports chosen by the kernel) running on it."""
    if RADCLIENT is None:
        if os.environ.get("AAA_REQUIRE_RADCLIENT") == "1":
            pytest.fail("radclient is required (AAA_REQUIRE_RADCLIENT=1) but not installed")
        pytest.skip("radclient (Debian freeradius-utils) is not installed")
    world = World(template_db.make_copy(), tmp_path_factory.mktemp(f"acct-{template_db.backend}"))
    populate(world.url, world.cwd, LOGINS, PASSWORD, nas=(("mk", BIND), ("mk2", MK2_IP)))
    with acct_daemon(world.url, world.cwd) as daemon:
        world.daemon = daemon
        yield world


# --- clients ------------------------------------------------------------------------------------


def radclient(world: World, command: str, pairs: str, source: str = BIND,
              count: int = 1) -> tuple[str, list[tuple[str, str]]]:
    """One request through `radclient -x` (`-c count` sends it `count` times); the reply
    code and attributes it printed ("" when no reply came)."""
    assert RADCLIENT is not None
    if source != BIND:
        pairs += f", Packet-Src-IP-Address = {source}"
    port = world.acct_port if command == "acct" else world.daemon.auth_port
    process = subprocess.run(
        [RADCLIENT, "-x", "-t", "1", "-r", "2", "-c", str(count), f"{BIND}:{port}", command, SECRET],
        input=pairs + "\n", capture_output=True, text=True, timeout=30, check=False)
    code, attributes = "", list[tuple[str, str]]()
    lines = process.stdout.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("Received "):
            code = line.split()[1]
            attributes = []
            for attribute_line in lines[index + 1:]:
                if not attribute_line.startswith("\t"):
                    break
                name, _, value = attribute_line.strip().partition(" = ")
                attributes.append((name, value.strip('"')))
    return code, attributes


def rad_acct(world: World, login: str, session_id: str, status: str, source: str = BIND,
             count: int = 1, extra: dict[str, object] | None = None, **values: object) -> None:
    """An Accounting-Request through radclient (attributes from `extra` and `values`,
    `_` for `-` in the names); insists on the Accounting-Response."""
    pairs = [f'Acct-Status-Type = {status}', f'User-Name = "{login}"',
             f'Acct-Session-Id = "{session_id}"', f"NAS-IP-Address = {source}"]
    pairs += [f"{name.replace('_', '-')} = {value}" for name, value in {**(extra or {}),
                                                                          **values}.items()]
    code, _ = radclient(world, "acct", ", ".join(pairs), source, count)
    assert code == "Accounting-Response", (login, session_id, status)


def pap(world: World, login: str) -> tuple[str, list[tuple[str, str]]]:
    """A PAP Access-Request through radclient: the reply code and its Reply-Message(s)."""
    code, attributes = radclient(world, "auth", f'User-Name = "{login}", User-Password = "{PASSWORD}"')
    return code, [(name, value) for name, value in attributes if name == "Reply-Message"]


PYRAD_DICTIONARY = """\
ATTRIBUTE	User-Name		1	string
ATTRIBUTE	NAS-IP-Address		4	ipaddr
ATTRIBUTE	NAS-Port		5	integer
ATTRIBUTE	Framed-IP-Address	8	ipaddr
ATTRIBUTE	Reply-Message		18	string
ATTRIBUTE	Calling-Station-Id	31	string
ATTRIBUTE	NAS-Identifier		32	string
ATTRIBUTE	Acct-Status-Type	40	integer
ATTRIBUTE	Acct-Delay-Time		41	integer
ATTRIBUTE	Acct-Input-Octets	42	integer
ATTRIBUTE	Acct-Output-Octets	43	integer
ATTRIBUTE	Acct-Session-Id		44	string
ATTRIBUTE	Acct-Session-Time	46	integer
ATTRIBUTE	Acct-Terminate-Cause	49	integer
ATTRIBUTE	Acct-Input-Gigawords	52	integer
ATTRIBUTE	Acct-Output-Gigawords	53	integer
ATTRIBUTE	NAS-Port-Id		87	string
VALUE	Acct-Status-Type	Start			1
VALUE	Acct-Status-Type	Stop			2
VALUE	Acct-Status-Type	Interim-Update		3
VALUE	Acct-Status-Type	Accounting-On		7
VALUE	Acct-Status-Type	Accounting-Off		8
VALUE	Acct-Terminate-Cause	User-Request		1
VALUE	Acct-Terminate-Cause	Lost-Carrier		2
VALUE	Acct-Terminate-Cause	Idle-Timeout		4
"""


class Pyrad:
    """pyrad's Client on the daemon's accounting port (pyrad checks the Response
    Authenticator of every reply it returns)."""

    def __init__(self, world: World, tmp_path: Path, source: str = BIND) -> None:
        client_module = pytest.importorskip("pyrad.client")
        dictionary_module = pytest.importorskip("pyrad.dictionary")
        path = tmp_path / "pyrad-dictionary"
        path.write_text(PYRAD_DICTIONARY)
        self.client = client_module.Client(
            server=BIND, authport=world.daemon.auth_port, acctport=world.acct_port,
            secret=SECRET.encode(), dict=dictionary_module.Dictionary(str(path)),
            retries=2, timeout=1)
        self.client.bind((source, 0))
        self.source = source

    def acct(self, **attributes: object) -> None:
        request = self.client.CreateAcctPacket(NAS_IP_Address=self.source)
        for name, value in attributes.items():
            request[name.replace("_", "-")] = value
        reply = self.client.SendPacket(request)
        assert reply.code == 5, reply.code  # Accounting-Response


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- 1. Start / Interim / Stop → the statement --------------------------------------------------


def test_radclient_start_interim_stop_statement(world: World) -> None:
    """radclient's Start, Interim-Update and Stop make one statement row: start and stop
    (stop − start = the Stop's Acct-Session-Time), duration, bytes in/out including
    Gigawords (64-bit), Framed-IP-Address, the MAC in canonical form, the NAS, NAS-Port-Id
    as the interface, and the terminate cause by name; `sessions online` lists the session
    between Start and Stop only."""
    common: dict[str, object] = {"Framed-IP-Address": "100.64.1.10",
                                 "Calling-Station-Id": '"aa-bb-cc-00-01-01"',
                                 "NAS-Port-Id": '"vlan101"', "NAS-Port": 7}
    rad_acct(world, "ana", "ana-1", "Start", extra=common)
    [row] = world.statement("ana")
    assert row["stop"] is None and row["cause"] is None
    assert [s["login"] for s in world.online("mk")].count("ana") == 1
    rad_acct(world, "ana", "ana-1", "Interim-Update", Acct_Session_Time=60,
             Acct_Input_Octets=500, Acct_Input_Gigawords=1, Acct_Output_Octets=7000, extra=common)
    [row] = world.statement("ana")
    assert (row["bytes_in"], row["bytes_out"], row["stop"]) == (GIGA + 500, 7000, None)
    rad_acct(world, "ana", "ana-1", "Stop", Acct_Session_Time=3600, Acct_Input_Octets=1234,
             Acct_Input_Gigawords=2, Acct_Output_Octets=99, Acct_Output_Gigawords=3,
             Acct_Terminate_Cause="Lost-Carrier", extra=common)
    [row] = world.statement("ana")
    assert row["bytes_in"] == 2 * GIGA + 1234
    assert row["bytes_out"] == 3 * GIGA + 99
    assert row["duration_seconds"] == 3600
    assert (moment(row["stop"]) - moment(row["start"])).total_seconds() == 3600
    assert row["ip"] == "100.64.1.10"
    assert row["mac"] == "AA:BB:CC:00:01:01"
    assert row["nas_ip"] == BIND
    assert row["interface"] == "vlan101"
    assert row["cause"] == "Lost-Carrier"
    assert row["session_id"] == "ana-1"
    assert "ana" not in [s["login"] for s in world.online()]


def test_pyrad_start_interim_stop_statement(world: World, tmp_path: Path) -> None:
    """The same session life through pyrad: Start, two Interim-Updates, Stop → one row
    with the Stop's counters (64-bit), IP, MAC, interface and cause; the NAS filter of
    the report finds it."""
    client = Pyrad(world, tmp_path)
    common: dict[str, object] = {"User_Name": "bia", "Acct_Session_Id": "bia-1", "NAS_Port": 9,
                                 "NAS_Port_Id": "vlan202", "Framed_IP_Address": "100.64.2.20",
                                 "Calling_Station_Id": "AA:BB:CC:00:02:02"}
    client.acct(Acct_Status_Type="Start", **common)
    for minute in (1, 2):
        client.acct(Acct_Status_Type="Interim-Update", Acct_Session_Time=60 * minute,
                    Acct_Input_Octets=1000 * minute, Acct_Output_Octets=2000 * minute, **common)
    client.acct(Acct_Status_Type="Stop", Acct_Session_Time=185, Acct_Input_Octets=5,
                Acct_Input_Gigawords=4, Acct_Output_Octets=6000, Acct_Terminate_Cause="User-Request",
                **common)
    [row] = world.statement("bia")
    assert (row["bytes_in"], row["bytes_out"]) == (4 * GIGA + 5, 6000)
    assert row["duration_seconds"] == 185
    assert (moment(row["stop"]) - moment(row["start"])).total_seconds() == 185
    assert (row["ip"], row["mac"], row["interface"], row["cause"]) == (
        "100.64.2.20", "AA:BB:CC:00:02:02", "vlan202", "User-Request")
    by_nas = world.ok("report", "connections", "--nas", "mk")
    assert [r["session_id"] for r in by_nas].count("bia-1") == 1
    assert not [r for r in world.ok("report", "connections", "--nas", "mk2") if r["login"] == "bia"]


# --- 2. duplicates and reordering ---------------------------------------------------------------


def test_retransmitted_octets_are_answered_once_stored_once(world: World) -> None:
    """The very same Accounting-Request octets sent three times (a NAS retransmitting) get
    the same Accounting-Response each time; the request is counted once in
    aaa_acct_requests_total, the duplicates in aaa_radius_duplicates_total, and the row
    carries the counters once (no sum)."""
    requests_before = world.daemon.sample("aaa_acct_requests_total", nas="mk", status="interim")
    duplicates_before = world.daemon.sample("aaa_radius_duplicates_total", nas="mk")
    with AcctClient(world.acct_port) as client:
        assert client.one(session_attrs("carla", "carla-1", START))
        octets = acct_request(session_attrs("carla", "carla-1", INTERIM, session_time=60,
                                            octets_in=GIGA + 10, octets_out=20), identifier=77)
        client.sock.settimeout(2)
        replies = []
        for _ in range(3):
            client.sock.sendto(octets, (BIND, world.acct_port))
            replies.append(client.sock.recv(4096))
    assert all(is_response_to(reply, octets) for reply in replies)
    assert replies[0] == replies[1] == replies[2]
    assert world.daemon.sample("aaa_acct_requests_total", nas="mk",
                               status="interim") == requests_before + 1
    assert world.daemon.sample("aaa_radius_duplicates_total", nas="mk") == duplicates_before + 2
    [row] = world.statement("carla")
    assert (row["bytes_in"], row["bytes_out"], row["duration_seconds"]) == (GIGA + 10, 20, 60)


def test_resent_records_do_not_double_count(world: World) -> None:
    """Records sent again as new packets (radclient `-c 3`: three sends of each record,
    and the same Start/Interim/Stop replayed once more afterwards) leave one row whose
    counters are those of the Stop, not a sum."""
    rad_acct(world, "davi", "davi-1", "Start", count=3)
    rad_acct(world, "davi", "davi-1", "Interim-Update", count=3, Acct_Session_Time=60,
             Acct_Input_Octets=100, Acct_Output_Octets=200)
    rad_acct(world, "davi", "davi-1", "Stop", count=3, Acct_Session_Time=90,
             Acct_Input_Octets=150, Acct_Output_Octets=300, Acct_Terminate_Cause="User-Request")
    rad_acct(world, "davi", "davi-1", "Start")
    rad_acct(world, "davi", "davi-1", "Interim-Update", Acct_Session_Time=60,
             Acct_Input_Octets=100, Acct_Output_Octets=200)
    [row] = world.statement("davi")
    assert (row["bytes_in"], row["bytes_out"], row["duration_seconds"]) == (150, 300, 90)
    assert row["stop"] is not None and row["cause"] == "User-Request"
    assert "davi" not in [s["login"] for s in world.online()]


def test_reordering_never_reopens_or_rewinds(world: World) -> None:
    """Out of order: a Stop before the Interim that preceded it, and an Interim after the
    Stop, leave the Stop's counters and the session closed (not reopened, in the database
    or in the open-session index: the login is still accepted); a Stop with no Start
    creates the closed session, and its late Start changes nothing."""
    rad_acct(world, "eva", "eva-1", "Start")
    rad_acct(world, "eva", "eva-1", "Stop", Acct_Session_Time=300, Acct_Input_Octets=3000,
             Acct_Output_Octets=6000, Acct_Terminate_Cause="Idle-Timeout")
    rad_acct(world, "eva", "eva-1", "Interim-Update", Acct_Session_Time=200,
             Acct_Input_Octets=2000, Acct_Output_Octets=4000)
    rad_acct(world, "eva", "eva-1", "Interim-Update", Acct_Session_Time=400,  # after the Stop
             Acct_Input_Octets=1, Acct_Output_Octets=1)
    [row] = world.statement("eva")
    assert row["stop"] is not None and row["cause"] == "Idle-Timeout"
    assert (row["bytes_in"], row["bytes_out"]) == (3000, 6000)
    assert "eva" not in [s["login"] for s in world.online()]
    assert pap(world, "eva")[0] == "Access-Accept"

    rad_acct(world, "fabio", "fabio-1", "Stop", Acct_Session_Time=50, Acct_Input_Octets=5,
             Acct_Output_Octets=6, Acct_Terminate_Cause="User-Request")
    rad_acct(world, "fabio", "fabio-1", "Start")
    [row] = world.statement("fabio")
    assert row["stop"] is not None and row["duration_seconds"] == 50
    assert (moment(row["stop"]) - moment(row["start"])).total_seconds() == 50
    assert (row["bytes_in"], row["bytes_out"], row["cause"]) == (5, 6, "User-Request")
    assert "fabio" not in [s["login"] for s in world.online()]
    assert pap(world, "fabio")[0] == "Access-Accept"


def test_interim_without_start_opens_the_session(world: World) -> None:
    """An Interim-Update whose Start was lost creates the open session (with its
    counters and IP), and a later Stop closes that same row."""
    rad_acct(world, "gil", "gil-1", "Interim-Update", Acct_Session_Time=600,
             Acct_Input_Octets=10, Acct_Output_Octets=20, Framed_IP_Address="100.64.7.7")
    [row] = world.statement("gil")
    assert row["stop"] is None and row["ip"] == "100.64.7.7"
    assert (row["bytes_in"], row["bytes_out"]) == (10, 20)
    assert [s["login"] for s in world.online("mk")].count("gil") == 1
    rad_acct(world, "gil", "gil-1", "Stop", Acct_Session_Time=660, Acct_Input_Octets=11,
             Acct_Output_Octets=21, Acct_Terminate_Cause="User-Request")
    [row] = world.statement("gil")
    assert row["stop"] is not None and row["duration_seconds"] == 660
    assert (row["bytes_in"], row["bytes_out"]) == (11, 21)


# --- 3. Accounting-On / Accounting-Off ------------------------------------------------------------


def test_accounting_on_closes_the_nas_sessions(world: World, tmp_path: Path) -> None:
    """Accounting-On from a NAS (radclient, from 127.0.0.2) closes every open session of
    that NAS with cause NAS-Reboot, and none of another NAS; the closed logins pass the
    simultaneous-use check again. Accounting-Off (pyrad) does the same for sessions opened
    after the reboot."""
    rad_acct(world, "hugo", "hugo-1", "Start", source=MK2_IP)
    rad_acct(world, "iara", "iara-1", "Interim-Update", source=MK2_IP, Acct_Session_Time=30,
             Acct_Input_Octets=300, Acct_Output_Octets=400)
    rad_acct(world, "joao", "joao-1", "Start")  # on mk: must stay open
    assert sorted(s["login"] for s in world.online("mk2")) == ["hugo", "iara"]
    assert pap(world, "hugo") == ("Access-Reject", [("Reply-Message", SIMULTANEOUS)])

    code, _ = radclient(world, "acct", f"Acct-Status-Type = Accounting-On, "
                                       f"NAS-IP-Address = {MK2_IP}", source=MK2_IP)
    assert code == "Accounting-Response"
    assert world.online("mk2") == []
    for login in ("hugo", "iara"):
        [row] = world.statement(login)
        assert row["stop"] is not None and row["cause"] == "NAS-Reboot", row
    [row] = world.statement("iara")
    assert (row["bytes_in"], row["bytes_out"]) == (300, 400)
    [row] = world.statement("joao")
    assert row["stop"] is None and row["cause"] is None
    assert pap(world, "hugo")[0] == "Access-Accept"
    assert pap(world, "joao") == ("Access-Reject", [("Reply-Message", SIMULTANEOUS)])

    client = Pyrad(world, tmp_path, source=MK2_IP)
    client.acct(Acct_Status_Type="Start", User_Name="hugo", Acct_Session_Id="hugo-2")
    assert [s["session_id"] for s in world.online("mk2")] == ["hugo-2"]
    client.acct(Acct_Status_Type="Accounting-Off")
    assert world.online("mk2") == []
    assert [r["cause"] for r in world.statement("hugo")] == ["NAS-Reboot", "NAS-Reboot"]
    rad_acct(world, "joao", "joao-1", "Stop", Acct_Session_Time=5,
             Acct_Terminate_Cause="User-Request")


def test_accounting_on_and_off_from_our_client(world: World) -> None:
    """Accounting-On and Accounting-Off built by our codec are answered (they carry no
    session) and change nothing on a NAS with no open session."""
    with AcctClient(world.acct_port, source=MK2_IP) as client:
        assert client.one([("Acct-Status-Type", ACCOUNTING_ON), ("NAS-IP-Address", MK2_IP)])
        assert client.one([("Acct-Status-Type", ACCOUNTING_OFF), ("NAS-IP-Address", MK2_IP)])
    assert world.online("mk2") == []


# --- 4. simultaneous use ------------------------------------------------------------------------


def test_simultaneous_use_rejects_while_open_and_accepts_after_stop(world: World) -> None:
    """With a session open (its Start acknowledged), a second Access-Request for the same
    login is rejected with "simultaneous use limit 1 reached"; once the Stop is
    acknowledged it is accepted again; a new session's Start closes the door again."""
    assert pap(world, "kiko")[0] == "Access-Accept"
    rad_acct(world, "kiko", "kiko-1", "Start")
    assert pap(world, "kiko") == ("Access-Reject", [("Reply-Message", SIMULTANEOUS)])
    rad_acct(world, "kiko", "kiko-1", "Stop", Acct_Session_Time=10,
             Acct_Terminate_Cause="User-Request")
    assert pap(world, "kiko")[0] == "Access-Accept"
    with AcctClient(world.acct_port) as client:
        assert client.one(session_attrs("kiko", "kiko-2", START))
        assert pap(world, "kiko")[0] == "Access-Reject"
        assert client.one(session_attrs("kiko", "kiko-2", STOP, session_time=3, cause=1))
    assert pap(world, "kiko")[0] == "Access-Accept"
    assert [r["session_id"] for r in world.statement("kiko")] == ["kiko-2", "kiko-1"]


# --- 5. what is not stored is not answered --------------------------------------------------------


def test_wrong_secret_gets_silence_and_no_row(world: World) -> None:
    """An Accounting-Request signed with the wrong secret gets no answer (the NAS would
    retry) and stores nothing; it is counted in aaa_radius_dropped_total."""
    before = world.daemon.sample("aaa_radius_dropped_total", reason="bad_authenticator", nas="mk")
    with AcctClient(world.acct_port, secret="wrong-secret", timeout=0.3, retries=1) as client:
        assert client.exchange([session_attrs("lia", "lia-1", START)], deadline=5) == [False]
    assert world.statement("lia") == []
    assert world.daemon.sample("aaa_radius_dropped_total", reason="bad_authenticator",
                               nas="mk") == before + 2


# --- 6. stale sessions ----------------------------------------------------------------------------


def test_close_stale_frees_simultaneous_use_in_the_running_daemon(world: World) -> None:
    """A session whose NAS went silent (power loss: no Stop, no Accounting-On) locks its
    login out through simultaneous use until `aaa sessions close-stale` closes it (cause
    Stale); from then on the running daemon accepts the login again (bounded wait: its
    open-session index follows the database)."""
    rad_acct(world, "mara", "mara-stale", "Start")
    assert pap(world, "mara") == ("Access-Reject", [("Reply-Message", SIMULTANEOUS)])
    closed = world.ok("sessions", "close-stale", "--at", "2099-01-01T00:00:00+00:00")
    assert closed["closed"] >= 1
    [row] = world.statement("mara")
    assert row["stop"] is not None and row["cause"] == "Stale"
    assert poll(lambda: pap(world, "mara")[0] == "Access-Accept", 10, 0.25)  # index: every 5 s
    rad_acct(world, "mara", "mara-stale", "Interim-Update", Acct_Session_Time=900)  # NAS is back
    [row] = world.statement("mara")
    assert row["cause"] == "Stale"
    assert pap(world, "mara")[0] == "Access-Accept"
