"""`aaa serve` end to end: a real daemon process on 127.0.0.1, on SQLite and on PostgreSQL,
spoken to like a NAS would — FreeRADIUS's `radclient` (PAP, CHAP), pyrad (MS-CHAPv2) and
raw UDP sockets for what well-behaved clients never send.

One daemon per backend serves the whole module (starting one costs about a second). Its
database holds three NAS, told apart by source address (Linux answers for all of 127/8):

    127.0.0.1  mk      MikroTik, Message-Authenticator not required (radclient's default)
    127.0.0.2  hw      Huawei, idem (radclient sends from it with Packet-Src-IP-Address)
    127.0.0.4  strict  MikroTik requiring Message-Authenticator (the default)
    127.0.0.3  —       no NAS: unknown client

and one subscriber per situation. Tests that change data use logins of their own, and
the one that sets the suspension pool variables puts them back, so tests do not depend on
each other's order (except the last, which stops the daemon).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from aaa.db.engine import make_engine
from aaa.db.models import Service
from aaa.radius import (
    PacketCode,
    build_request,
    decode,
    encode_attributes,
    load_dictionary,
    mppe_master_key,
    mppe_start_key,
    mschap2_authenticator_response,
    mschap2_nt_response,
    new_authenticator,
    nt_password_hash,
    salt_decrypt,
    verify_reply,
)
from aaa.radius.packet import Packet
from tests.conftest import CliResult, Database
from tests.daemon_process import Daemon, running_daemon
from tests.factories import cpf

DICT = load_dictionary()
PASSWORD = "s3nh@Forte"
MK_IP, HW_IP, UNKNOWN_IP, STRICT_IP = "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"
SECRETS = {MK_IP: "testing123", HW_IP: "hwsecret", STRICT_IP: "strictsecret"}
VENDOR_IP = {"mikrotik": MK_IP, "huawei": HW_IP}
NAS_NAME = {MK_IP: "mk", HW_IP: "hw", STRICT_IP: "strict"}
PLAN_DOWN, PLAN_UP, POOL = 100_000, 50_000, "pool-fibra"
FIXED_IP, IPV6_PREFIX = "200.200.0.2", "2001:db8:100::/56"
NAV_DOWN, NAV_UP = 500_000, 250_000
REGISTERED_MAC, OTHER_MAC = "AA:BB:CC:00:00:01", "AA-BB-CC-00-00-02"
REFRESH_BOUND = 1.5  # seconds: the refresher's 1 s poll (SQLite) plus the work around it
RADCLIENT = shutil.which("radclient")

# --- the world: one database and one daemon per backend ---------------------------------------

SERVICES: dict[str, list[str]] = {
    "ana": [],
    "bia": ["--status", "suspended_partial"],
    "caio": ["--status", "suspended_debt"],
    "davi": ["--status", "suspended_request"],
    "eva": [],  # cancelled below: a service cannot be created cancelled
    "fabio": ["--status", "awaiting_install"],
    "gil": ["--ip", FIXED_IP],
    "hugo": ["--ipv6-prefix", IPV6_PREFIX],
    "iris": [],  # custom navigation, set below
    "julia": [],  # suspended live by test_suspend_in_another_process...
    "maria": ["--mac", REGISTERED_MAC, "--interface", "vlan100"],
    "nina": ["--mac", "AA:BB:CC:00:00:03", "--mac-binding", "enforce"],
    "lucas": ["--mac-binding", "learn"],
    "otto": [],  # MS-CHAPv2
    "paulo": [],  # auth log: reject rows
}


@dataclass
class World:
    url: str
    cwd: Path
    daemon: Daemon = field(init=False)

    def aaa(self, *args: str) -> CliResult:
        """`aaa ARGS` in-process on the world's database (as the `cli` fixture does)."""
        from aaa.cli import root
        from aaa.cliutil import run_cli

        out, err = io.StringIO(), io.StringIO()
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("AAA_DATABASE_URL", self.url)
            patch.delenv("AAA_CONFIG", raising=False)
            patch.delenv("AAA_OPERATOR", raising=False)
            patch.chdir(self.cwd)
            with redirect_stdout(out), redirect_stderr(err):
                code = run_cli(root, list(args))
        return CliResult(code, out.getvalue(), err.getvalue())

    def ok(self, *args: str) -> Any:
        """Run `aaa --format json ARGS`, insist on success, return the parsed output."""
        result = self.aaa("--format", "json", *args)
        assert result.code == 0, (args, result.err)
        return result.json if result.out.strip() else None

    def aaa_process(self, *args: str) -> subprocess.Popen[str]:
        """`aaa ARGS` started as a process of its own, on the same database."""
        env = {k: v for k, v in os.environ.items() if k not in ("AAA_CONFIG", "AAA_OPERATOR")}
        env["AAA_DATABASE_URL"] = self.url
        return subprocess.Popen([sys.executable, "-m", "aaa.cli", *args], cwd=self.cwd, env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)


def _populate(world: World) -> None:
    world.ok("plan", "add", "FIBRA-100", "--download", str(PLAN_DOWN), "--upload", str(PLAN_UP),
             "--price", "99.90", "--pool", POOL)
    world.ok("subnet", "add", "200.200.0.0/29")
    world.ok("nas", "add", "mk", "--ip", MK_IP, "--secret", SECRETS[MK_IP], "--vendor", "mikrotik",
             "--no-require-message-authenticator")
    world.ok("nas", "add", "hw", "--ip", HW_IP, "--secret", SECRETS[HW_IP], "--vendor", "huawei",
             "--no-require-message-authenticator")
    world.ok("nas", "add", "strict", "--ip", STRICT_IP, "--secret", SECRETS[STRICT_IP],
             "--vendor", "mikrotik")
    document = cpf()
    world.ok("customer", "add", "--name", "Cliente E2E", "--document", document)
    for login, extra in SERVICES.items():
        world.ok("service", "add", "--customer", document, "--plan", "FIBRA-100", "--login", login,
                 "--password", PASSWORD, *extra)
    world.ok("service", "cancel", "eva")
    world.ok("service", "navigation", "iris", "--download", str(NAV_DOWN), "--upload", str(NAV_UP),
             "--until", "2099-12-31")


@pytest.fixture(scope="module")
def world(template_db: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A fresh database of this backend (a copy of the migrated template, like `cli`'s)
    with the NAS and subscribers above, and `aaa serve` running on it."""
    if RADCLIENT is None:
        if os.environ.get("AAA_REQUIRE_RADCLIENT") == "1":
            pytest.fail("radclient is required (AAA_REQUIRE_RADCLIENT=1) but not installed")
        pytest.skip("radclient (Debian freeradius-utils) is not installed")
    world = World(template_db.make_copy(), tmp_path_factory.mktemp(f"daemon-{template_db.backend}"))
    _populate(world)
    with running_daemon(world.url, world.cwd) as daemon:
        world.daemon = daemon
        yield world


# --- clients ------------------------------------------------------------------------------------


@dataclass
class Reply:
    code: str  # "Access-Accept" / "Access-Reject"
    attributes: list[tuple[str, str]]  # in the order radclient printed them (wire order)

    @property
    def body(self) -> list[tuple[str, str]]:
        """The attributes after Message-Authenticator, which must come first."""
        assert self.attributes and self.attributes[0][0] == "Message-Authenticator", self.attributes
        return self.attributes[1:]


def parse_radclient(output: str) -> Reply | None:
    """The `Received ...` block of `radclient -x` output, or None if no reply came."""
    lines = output.splitlines()
    for index, line in enumerate(lines):
        match = re.match(r"Received (\S+) Id \d+ ", line)
        if not match:
            continue
        attributes = []
        for attribute_line in lines[index + 1:]:
            if not attribute_line.startswith("\t"):
                break
            name, _, value = attribute_line.strip().partition(" = ")
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            attributes.append((name, value))
        return Reply(match.group(1), attributes)
    return None


def radclient(world: World, pairs: str, source: str = MK_IP, secret: str | None = None,
              command: str = "auth") -> Reply:
    """One request through radclient (`-t 1 -r 2`), sent from `source`."""
    assert RADCLIENT is not None
    if source != MK_IP:
        pairs += f", Packet-Src-IP-Address = {source}"
    process = subprocess.run(
        [RADCLIENT, "-x", "-t", "1", "-r", "2", f"127.0.0.1:{world.daemon.auth_port}", command,
         secret or SECRETS[source]],
        input=pairs + "\n", capture_output=True, text=True, timeout=15, check=False)
    reply = parse_radclient(process.stdout)
    assert reply is not None, process.stdout + process.stderr
    return reply


def pap(world: World, login: str, password: str = PASSWORD, source: str = MK_IP,
        extra: str = "") -> Reply:
    return radclient(world, f'User-Name = "{login}", User-Password = "{password}"{extra}', source)


def chap(world: World, login: str, password: str = PASSWORD, source: str = MK_IP) -> Reply:
    return radclient(world, f'User-Name = "{login}", CHAP-Password = "{password}"', source)


def pap_request(login: str, password: str = PASSWORD, secret: str = SECRETS[MK_IP],
                message_authenticator: bool = True, identifier: int = 7,
                extra: list[tuple[str, object]] | None = None) -> tuple[bytes, bytes]:
    """A PAP Access-Request built with our codec: (packet octets, its authenticator)."""
    authenticator = new_authenticator()
    attributes = encode_attributes(
        DICT, [("User-Name", login), ("User-Password", password.encode()), *(extra or [])],
        secret=secret.encode(), authenticator=authenticator)
    packet = build_request(PacketCode.ACCESS_REQUEST, identifier, attributes, secret.encode(),
                           authenticator=authenticator, message_authenticator=message_authenticator)
    return packet, authenticator


SILENCE = 0.5  # seconds to wait before calling a drop a drop
ANSWER = 3.0  # seconds an answer may take on a loaded machine


def udp_exchange(world: World, datagrams: list[bytes], source: str = MK_IP,
                 timeout: float | list[float] = ANSWER) -> list[bytes | None]:
    """Send each datagram in turn from one socket bound to `source`, waiting `timeout`
    (one for all, or one per datagram) for its reply; the replies, None for silence."""
    waits = timeout if isinstance(timeout, list) else [timeout] * len(datagrams)
    replies: list[bytes | None] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        for datagram, wait in zip(datagrams, waits, strict=True):
            sock.settimeout(wait)
            sock.sendto(datagram, ("127.0.0.1", world.daemon.auth_port))
            try:
                replies.append(sock.recv(4096))
            except TimeoutError:
                replies.append(None)
    return replies


def checked_reply(raw: bytes | None, request_authenticator: bytes, secret: str) -> Packet:
    """Decode a reply, checking its Response Authenticator and that Message-Authenticator
    is its first attribute, on the raw octets."""
    assert raw is not None, "no reply"
    reply = decode(raw, DICT)
    assert verify_reply(reply, request_authenticator, secret.encode())
    assert raw[20] == 80 and raw[21] == 18, "Message-Authenticator is not the first attribute"
    assert reply.attributes[0][0] == 80
    return reply


def poll(check: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Call `check` until it returns something truthy or `timeout` passes; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def dropped(world: World, reason: str, nas: str) -> float:
    return world.daemon.sample("aaa_radius_dropped_total", reason=reason, nas=nas)


# --- what each vendor should receive ------------------------------------------------------------


def speed(vendor: str, download: int, upload: int) -> list[tuple[str, str]]:
    if vendor == "mikrotik":  # rx/tx from the router: rx is the subscriber's upload
        return [("Mikrotik-Rate-Limit", f"{upload}k/{download}k")]
    up, down = str(upload * 1000), str(download * 1000)
    return [("Huawei-Input-Average-Rate", up), ("Huawei-Input-Peak-Rate", up),
            ("Huawei-Output-Average-Rate", down), ("Huawei-Output-Peak-Rate", down)]


INTERIM = [("Acct-Interim-Interval", "300")]


def accept(vendor: str, first: list[tuple[str, str]], download: int = PLAN_DOWN,
           upload: int = PLAN_UP) -> tuple[str, list[tuple[str, str]]]:
    return "Access-Accept", first + speed(vendor, download, upload) + INTERIM


def reject(message: str) -> tuple[str, list[tuple[str, str]]]:
    return "Access-Reject", [("Reply-Message", message)]


CASES: dict[str, Callable[[str], tuple[str, list[tuple[str, str]]]]] = {
    "enabled": lambda v: accept(v, [("Framed-Pool", POOL)]),
    "partial_without_pool_variable": lambda v: accept(v, [("Framed-Pool", POOL)],
                                                      PLAN_DOWN // 2, PLAN_UP // 2),
    "debt_without_pool_variable": lambda v: reject("service suspended for debt"),
    "suspended_request": lambda v: reject("service suspended at the customer's request"),
    "cancelled": lambda v: reject("service cancelled"),
    "awaiting_install": lambda v: reject("service awaiting installation"),
    "fixed_ip": lambda v: accept(v, [("Framed-IP-Address", FIXED_IP)]),
    "ipv6_prefix": lambda v: accept(v, [("Framed-Pool", POOL), ("Delegated-IPv6-Prefix", IPV6_PREFIX)]),
    "custom_navigation": lambda v: accept(v, [("Framed-Pool", POOL)], NAV_DOWN, NAV_UP),
    "wrong_password": lambda v: reject("wrong password"),
    "unknown_login": lambda v: reject("unknown login"),
    "mac_enforced_mismatch": lambda v: reject("MAC address not allowed"),
}
CASE_REQUEST = {  # case → (login, password, extra radclient pairs)
    "enabled": ("ana", PASSWORD, ""),
    "partial_without_pool_variable": ("bia", PASSWORD, ""),
    "debt_without_pool_variable": ("caio", PASSWORD, ""),
    "suspended_request": ("davi", PASSWORD, ""),
    "cancelled": ("eva", PASSWORD, ""),
    "awaiting_install": ("fabio", PASSWORD, ""),
    "fixed_ip": ("gil", PASSWORD, ""),
    "ipv6_prefix": ("hugo", PASSWORD, ""),
    "custom_navigation": ("iris", PASSWORD, ""),
    "wrong_password": ("ana", PASSWORD + "x", ""),
    "unknown_login": ("ghost", PASSWORD, ""),
    "mac_enforced_mismatch": ("nina", PASSWORD, ', Calling-Station-Id = "AA-BB-CC-00-00-99"'),
}


# --- 1. every status, exact replies, both vendors, PAP and CHAP ---------------------------------


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("vendor", ["mikrotik", "huawei"])
def test_reply_per_status_pap(world: World, vendor: str, case: str) -> None:
    """radclient PAP from a MikroTik / Huawei NAS gets exactly the reply code and attributes
    (in order, Message-Authenticator first) that the subscriber's situation calls for:
    plan speed rendered per vendor (MikroTik "UPk/DOWNk", Huawei CIR/PIR in bit/s), pool
    or fixed IP, IPv6 prefix, custom navigation, partial-suspension reduction, and a
    Reply-Message naming the reason on every reject."""
    login, password, extra = CASE_REQUEST[case]
    reply = pap(world, login, password, VENDOR_IP[vendor], extra)
    code, attributes = CASES[case](vendor)
    assert (reply.code, reply.body) == (code, attributes)


@pytest.mark.parametrize("case", ["enabled", "fixed_ip", "wrong_password", "cancelled"])
@pytest.mark.parametrize("vendor", ["mikrotik", "huawei"])
def test_reply_per_status_chap(world: World, vendor: str, case: str) -> None:
    """CHAP (radclient computes CHAP-Password over its Request Authenticator) verifies like
    PAP and yields the same exact reply."""
    login, password, _ = CASE_REQUEST[case]
    reply = chap(world, login, password, VENDOR_IP[vendor])
    code, attributes = CASES[case](vendor)
    assert (reply.code, reply.body) == (code, attributes)


def test_suspension_pool_variables(world: World) -> None:
    """POOL_SUSPENSAO_PARCIALMENTE / POOL_SUSPENSAO_TOTAL, set while the daemon runs, take
    effect without a restart: partial suspension goes to the partial pool with the
    reduced speed, debt suspension is accepted into the blocked pool at the minimal
    256 kbit/s (instead of rejected); cleared again, the replies go back."""
    assert pap(world, "caio").code == "Access-Reject"
    world.ok("var", "set", "POOL_SUSPENSAO_PARCIALMENTE", "reduzidos")
    world.ok("var", "set", "POOL_SUSPENSAO_TOTAL", "bloqueados")
    try:
        assert poll(lambda: pap(world, "caio").code == "Access-Accept", 3 * REFRESH_BOUND, 0.1)
        for vendor, source in VENDOR_IP.items():
            partial = pap(world, "bia", source=source)
            assert (partial.code, partial.body) == accept(
                vendor, [("Framed-Pool", "reduzidos")], PLAN_DOWN // 2, PLAN_UP // 2)
            debt = chap(world, "caio", source=source)
            assert (debt.code, debt.body) == accept(vendor, [("Framed-Pool", "bloqueados")], 256, 256)
            # the variables do not touch enabled subscribers
            assert pap(world, "ana", source=source).body == accept(vendor, [("Framed-Pool", POOL)])[1]
    finally:
        world.ok("var", "set", "POOL_SUSPENSAO_PARCIALMENTE", "")
        world.ok("var", "set", "POOL_SUSPENSAO_TOTAL", "")
    assert poll(lambda: pap(world, "caio").code == "Access-Reject", 3 * REFRESH_BOUND, 0.1)
    assert pap(world, "bia").body == accept("mikrotik", [("Framed-Pool", POOL)],
                                            PLAN_DOWN // 2, PLAN_UP // 2)[1]


def test_required_message_authenticator_from_radclient(world: World) -> None:
    """A NAS that requires Message-Authenticator (the default) accepts radclient's request
    when it carries one (`Message-Authenticator = 0x00`: radclient computes it) and
    answers with the MikroTik reply; without it the request is dropped and counted."""
    reply = radclient(world, f'User-Name = "ana", User-Password = "{PASSWORD}", '
                             "Message-Authenticator = 0x00", STRICT_IP)
    assert (reply.code, reply.body) == accept("mikrotik", [("Framed-Pool", POOL)])
    before = dropped(world, "missing_message_authenticator", "strict")
    packet, _ = pap_request("ana", secret=SECRETS[STRICT_IP], message_authenticator=False)
    assert udp_exchange(world, [packet], STRICT_IP, SILENCE) == [None]
    assert poll(lambda: dropped(world, "missing_message_authenticator", "strict") == before + 1, 2)


def test_message_authenticator_first_on_raw_replies(world: World) -> None:
    """On the wire, Message-Authenticator is the first attribute of both Access-Accept and
    Access-Reject, and the Response Authenticator verifies against the request's."""
    good, good_auth = pap_request("ana", identifier=1)
    bad, bad_auth = pap_request("ana", "nope", identifier=2)
    accept_raw, reject_raw = udp_exchange(world, [good, bad])
    accepted = checked_reply(accept_raw, good_auth, SECRETS[MK_IP])
    assert accepted.code == PacketCode.ACCESS_ACCEPT and accepted.identifier == 1
    assert accepted.get("Framed-Pool") == POOL
    rejected = checked_reply(reject_raw, bad_auth, SECRETS[MK_IP])
    assert rejected.code == PacketCode.ACCESS_REJECT and rejected.get("Reply-Message") == "wrong password"


# --- 2. MS-CHAPv2 with pyrad --------------------------------------------------------------------

PYRAD_DICTIONARY = """\
ATTRIBUTE	User-Name		1	string
ATTRIBUTE	User-Password		2	string
ATTRIBUTE	Reply-Message		18	string
ATTRIBUTE	Message-Authenticator	80	octets
ATTRIBUTE	Acct-Interim-Interval	85	integer
ATTRIBUTE	Framed-Pool		88	string
VENDOR		Microsoft		311
BEGIN-VENDOR	Microsoft
ATTRIBUTE	MS-CHAP-Response	1	octets
ATTRIBUTE	MS-CHAP-Error		2	string
ATTRIBUTE	MS-MPPE-Encryption-Policy	7	integer
ATTRIBUTE	MS-MPPE-Encryption-Types	8	integer
ATTRIBUTE	MS-CHAP-Challenge	11	octets
ATTRIBUTE	MS-MPPE-Send-Key	16	octets
ATTRIBUTE	MS-MPPE-Recv-Key	17	octets
ATTRIBUTE	MS-CHAP2-Response	25	octets
ATTRIBUTE	MS-CHAP2-Success	26	octets
END-VENDOR	Microsoft
VENDOR		Mikrotik		14988
BEGIN-VENDOR	Mikrotik
ATTRIBUTE	Mikrotik-Rate-Limit	8	string
END-VENDOR	Mikrotik
"""


def mschap2_exchange(world: World, tmp_path: Path, login: str,
                     password: str) -> tuple[Any, bytes, dict[str, bytes]]:
    """One MS-CHAPv2 Access-Request through pyrad (which checks the reply's Response
    Authenticator and Message-Authenticator); returns the reply, the request
    authenticator and what the client computed."""
    pyrad_client = pytest.importorskip("pyrad.client")
    pyrad_dictionary = pytest.importorskip("pyrad.dictionary")
    path = tmp_path / "dictionary"
    path.write_text(PYRAD_DICTIONARY)
    client = pyrad_client.Client(server="127.0.0.1", authport=world.daemon.auth_port,
                                 secret=SECRETS[MK_IP].encode(),
                                 dict=pyrad_dictionary.Dictionary(str(path)),
                                 retries=2, timeout=1, enforce_ma=True)
    auth_challenge, peer_challenge, ident = os.urandom(16), os.urandom(16), 0x42
    nt_hash = nt_password_hash(password)
    nt_response = mschap2_nt_response(auth_challenge, peer_challenge, login.encode(), nt_hash)
    request = client.CreateAuthPacket(User_Name=login)
    request["MS-CHAP-Challenge"] = auth_challenge
    request["MS-CHAP2-Response"] = bytes((ident, 0)) + peer_challenge + bytes(8) + nt_response
    reply = client.SendPacket(request)
    master = mppe_master_key(nt_hash, nt_response)
    expected = {
        "success": bytes((ident,)) + mschap2_authenticator_response(
            nt_hash, nt_response, peer_challenge, auth_challenge, login.encode()).encode(),
        "send": mppe_start_key(master, is_send=True, is_server=True),
        "recv": mppe_start_key(master, is_send=False, is_server=True),
    }
    return reply, request.authenticator, expected


def test_mschapv2_with_pyrad(world: World, tmp_path: Path) -> None:
    """MS-CHAPv2 from pyrad: Access-Accept whose MS-CHAP2-Success is the ident followed by
    "S=" + the RFC 2759 authenticator response, whose MS-MPPE-Send/Recv-Key decrypt (RFC
    2548 salt) to the RFC 3079 server keys, with the plan's MikroTik attributes; and
    Message-Authenticator first on the raw reply."""
    reply, authenticator, expected = mschap2_exchange(world, tmp_path, "otto", PASSWORD)
    assert reply.code == PacketCode.ACCESS_ACCEPT
    secret = SECRETS[MK_IP].encode()
    assert reply["MS-CHAP2-Success"] == [expected["success"]]
    assert expected["success"][1:3] == b"S=" and len(expected["success"]) == 43
    assert salt_decrypt(reply["MS-MPPE-Send-Key"][0], secret, authenticator) == expected["send"]
    assert salt_decrypt(reply["MS-MPPE-Recv-Key"][0], secret, authenticator) == expected["recv"]
    assert reply["Mikrotik-Rate-Limit"] == [f"{PLAN_UP}k/{PLAN_DOWN}k"]
    assert reply["Framed-Pool"] == [POOL]
    checked_reply(reply.raw_packet, authenticator, SECRETS[MK_IP])


def test_mschapv2_wrong_password_with_pyrad(world: World, tmp_path: Path) -> None:
    """An MS-CHAPv2 response computed from the wrong password gets Access-Reject with
    "wrong password" and none of the MS-CHAP2-Success / MPPE attributes."""
    reply, _, _ = mschap2_exchange(world, tmp_path, "otto", PASSWORD + "!")
    assert reply.code == PacketCode.ACCESS_REJECT
    assert reply["Reply-Message"] == ["wrong password"]
    assert "MS-CHAP2-Success" not in reply and "MS-MPPE-Send-Key" not in reply


# --- 3. a change committed by another process is in force within 1 s ---------------------------


def test_suspend_in_another_process_changes_next_answer(world: World) -> None:
    """`aaa service suspend LOGIN --mode debt` run as a separate process changes the
    daemon's answer (enabled → rejected for debt, no blocked pool configured) without a
    restart, within the refresh bound — measured both from the moment the change is
    visible in the database (while that process is still winding down) and from its exit."""
    before = pap(world, "julia")
    assert (before.code, before.body) == accept("mikrotik", [("Framed-Pool", POOL)])
    engine = make_engine(world.url)
    query = select(Service.status).where(Service.login == "julia")

    def committed() -> bool:
        with engine.connect() as connection:
            return connection.execute(query).scalar_one() == "suspended_debt"

    process = world.aaa_process("service", "suspend", "julia", "--mode", "debt", "--note", "e2e")
    committed_at = changed_at = exited_at = None
    try:
        deadline = time.monotonic() + 30
        while changed_at is None and time.monotonic() < deadline:
            if exited_at is None and process.poll() is not None:
                exited_at = time.monotonic()
            if committed_at is None and committed():
                committed_at = time.monotonic()
            if committed_at is not None and pap(world, "julia").code == "Access-Reject":
                changed_at = time.monotonic()
            time.sleep(0.01)
        _, errors = process.communicate(timeout=30)
        exited_at = exited_at or time.monotonic()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        engine.dispose()
    assert process.returncode == 0, errors
    assert committed_at is not None and changed_at is not None, "the suspension never reached the daemon"
    assert changed_at - committed_at <= REFRESH_BOUND, f"{changed_at - committed_at:.2f}s after commit"
    assert changed_at - exited_at <= REFRESH_BOUND, f"{changed_at - exited_at:.2f}s after exit"
    after = pap(world, "julia")
    assert (after.code, after.body) == reject("service suspended for debt")
    assert len(world.daemon.events("start")) == 1  # same process, no restart


# --- 4. what gets silence, and is counted ---------------------------------------------------------


def test_unknown_client_gets_silence(world: World) -> None:
    """A request from an address that is no NAS (127.0.0.3) gets no reply, is counted as
    unknown_client (one label for all unknown sources) and logged at a bounded rate: a
    burst gives one log line."""
    def logged() -> list[dict[str, str]]:
        return [e for e in world.daemon.events("unknown_client") if e.get("source") == UNKNOWN_IP]

    before, lines_before = dropped(world, "unknown_client", "unknown"), len(logged())
    packets = [pap_request("ana", identifier=i)[0] for i in range(3)]
    assert udp_exchange(world, packets, UNKNOWN_IP, SILENCE) == [None, None, None]
    assert poll(lambda: dropped(world, "unknown_client", "unknown") == before + 3, 2)
    assert logged() and len(logged()) - lines_before <= 1


def test_wrong_secret_gets_silence(world: World) -> None:
    """A request signed with the wrong secret (its Message-Authenticator does not verify)
    gets no reply and counts as bad_authenticator for that NAS — what a MikroTik operator
    sees as "bad replies" when the secrets differ."""
    before = dropped(world, "bad_authenticator", "mk")
    packet, _ = pap_request("ana", secret="not-the-secret")
    assert udp_exchange(world, [packet], timeout=SILENCE) == [None]
    assert poll(lambda: dropped(world, "bad_authenticator", "mk") == before + 1, 2)


@pytest.mark.parametrize("kind", ["truncated_header", "length_beyond_datagram", "bad_attribute",
                                  "garbage"])
def test_malformed_datagrams_get_silence(world: World, kind: str) -> None:
    """Truncated and garbage datagrams from a known NAS get no reply, count as malformed,
    and the server keeps serving: the next good request is answered."""
    packet, authenticator = pap_request("ana")
    bad = {
        "truncated_header": packet[:15],
        "length_beyond_datagram": packet[:-3],
        "bad_attribute": packet[:20] + b"\x01\x01" + packet[22:],  # attribute length 1
        "garbage": b"GET / HTTP/1.0\r\n\r\n" + os.urandom(40),
    }[kind]
    before = dropped(world, "malformed", "mk")
    silence, answer = udp_exchange(world, [bad, packet], timeout=[SILENCE, ANSWER])
    assert silence is None
    assert checked_reply(answer, authenticator, SECRETS[MK_IP]).code == PacketCode.ACCESS_ACCEPT
    assert poll(lambda: dropped(world, "malformed", "mk") == before + 1, 2)


def test_server_keeps_serving_after_drops(world: World) -> None:
    """After unknown-client, bad-authenticator, missing-Message-Authenticator and malformed
    traffic, radclient from both vendors is still answered as before."""
    assert udp_exchange(world, [pap_request("ana")[0]], UNKNOWN_IP, 0.2) == [None]
    junk = [pap_request("ana", secret="x")[0], b"\x01\x02", os.urandom(64)]
    assert udp_exchange(world, junk, timeout=0.2) == [None, None, None]
    unsigned = pap_request("ana", secret=SECRETS[STRICT_IP], message_authenticator=False)[0]
    assert udp_exchange(world, [unsigned], STRICT_IP, 0.2) == [None]
    for vendor, source in VENDOR_IP.items():
        reply = pap(world, "ana", source=source)
        assert (reply.code, reply.body) == accept(vendor, [("Framed-Pool", POOL)])
    assert world.daemon.process.poll() is None


# --- 5, 6. duplicates and Status-Server -----------------------------------------------------------


def test_duplicate_request_gets_identical_reply(world: World) -> None:
    """The same request octets sent twice from the same socket (a NAS retransmission) get
    byte-identical replies from the duplicate cache, counted in aaa_radius_duplicates_total,
    and the request is evaluated (and counted as a request) once."""
    dup_before = world.daemon.sample("aaa_radius_duplicates_total", nas="mk")
    requests_before = world.daemon.sample("aaa_radius_requests_total", nas="mk", method="pap",
                                          result="accept")
    packet, authenticator = pap_request("ana", identifier=99)
    first, second = udp_exchange(world, [packet, packet])
    assert first is not None and first == second
    checked_reply(first, authenticator, SECRETS[MK_IP])
    assert poll(lambda: world.daemon.sample("aaa_radius_duplicates_total", nas="mk") == dup_before + 1, 2)
    assert world.daemon.sample("aaa_radius_requests_total", nas="mk", method="pap",
                               result="accept") == requests_before + 1


def test_status_server(world: World) -> None:
    """Status-Server (RFC 5997) with Message-Authenticator is answered with Access-Accept
    (Message-Authenticator first); without one it gets silence."""
    secret = SECRETS[MK_IP].encode()
    authenticator = new_authenticator()
    packet = build_request(PacketCode.STATUS_SERVER, 12, b"", secret, authenticator=authenticator)
    bare = build_request(PacketCode.STATUS_SERVER, 13, b"", secret, message_authenticator=False)
    answer, silence = udp_exchange(world, [packet, bare], timeout=[ANSWER, SILENCE])
    reply = checked_reply(answer, authenticator, SECRETS[MK_IP])
    assert reply.code == PacketCode.ACCESS_ACCEPT and reply.identifier == 12
    assert silence is None
    status = radclient(world, "Message-Authenticator = 0x00", command="status")
    assert status.code == "Access-Accept" and status.body == []


# --- 7. the authentication log ------------------------------------------------------------------


def auth_log(world: World, *args: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = world.ok("report", "auth-log", *args)
    return rows


def test_auth_log_rows_and_filters(world: World) -> None:
    """Every decision lands in the auth log (written off the hot path, within ~2 s) with
    result, reason, NAS, MAC and interface seen, whether they differ from the registered
    ones, and the pool/speed given; --result, --mac-differs and --interface-differs filter."""
    other = f', Calling-Station-Id = "{OTHER_MAC}", NAS-Port-Id = "vlan200"'
    assert pap(world, "maria", extra=other).code == "Access-Accept"  # binding off: flagged only
    same = f', Calling-Station-Id = "{REGISTERED_MAC.lower()}", NAS-Port-Id = "vlan100"'
    assert pap(world, "maria", source=HW_IP, extra=same).code == "Access-Accept"
    assert pap(world, "paulo", "wrong").code == "Access-Reject"
    assert pap(world, "nobody-here").code == "Access-Reject"

    def maria_rows() -> list[dict[str, Any]] | None:
        rows = auth_log(world, "--login", "maria")
        return rows if len(rows) == 2 else None

    rows = poll(maria_rows, 3)
    assert rows, "auth log rows for maria never appeared"
    by_nas = {row["nas_ip"]: row for row in rows}
    flagged, clean = by_nas[MK_IP], by_nas[HW_IP]
    assert flagged["result"] == "accept" and flagged["mac"] == OTHER_MAC
    assert flagged["mac_differs"] is True and flagged["interface"] == "vlan200"
    assert flagged["interface_differs"] is True
    assert (flagged["pool"], flagged["ip"]) == (POOL, None)
    assert (flagged["download_kbps"], flagged["upload_kbps"]) == (PLAN_DOWN, PLAN_UP)
    assert REGISTERED_MAC in flagged["reason"]
    # the registered MAC in another spelling, and the registered interface: nothing differs
    assert clean["mac_differs"] is False and clean["interface_differs"] is False
    assert clean["result"] == "accept"

    rejected = poll(lambda: auth_log(world, "--login", "paulo", "--result", "reject"), 3)
    assert [(r["result"], r["reason"]) for r in rejected] == [("reject", "wrong password")]
    unknown = poll(lambda: auth_log(world, "--login", "nobody-here"), 3)
    assert [(r["result"], r["reason"]) for r in unknown] == [("reject", "unknown login")]
    assert auth_log(world, "--login", "paulo", "--result", "accept") == []

    mac_rows = auth_log(world, "--mac-differs")
    assert mac_rows and all(r["mac_differs"] for r in mac_rows)
    assert ("maria", MK_IP) in {(r["login"], r["nas_ip"]) for r in mac_rows}
    assert ("maria", HW_IP) not in {(r["login"], r["nas_ip"]) for r in mac_rows}
    interface_rows = auth_log(world, "--interface-differs", "--login", "maria")
    assert [r["nas_ip"] for r in interface_rows] == [MK_IP]


def test_mac_learned_on_first_login(world: World) -> None:
    """A service with --mac-binding learn and no MAC gets the first Calling-Station-Id it
    is seen with stored (through the management layer, with history), within a couple of
    seconds, while the request itself is accepted at once."""
    assert world.ok("service", "show", "lucas")["mac"] in (None, "")
    reply = pap(world, "lucas", extra=', Calling-Station-Id = "aa:bb:cc:00:00:09"')
    assert reply.code == "Access-Accept"
    assert poll(lambda: world.ok("service", "show", "lucas")["mac"] == "AA:BB:CC:00:00:09", 3, 0.1)
    history = world.aaa("--format", "json", "history", "lucas")
    assert history.code == 0 and "learn_mac" in history.out


# --- 8. explain says what the daemon does ---------------------------------------------------------


@pytest.mark.parametrize("nas", ["mk", "hw"])
def test_explain_matches_daemon(world: World, nas: str) -> None:
    """`aaa explain LOGIN --nas NAS --format json` runs the daemon's decision on the
    database: its verdict and reply attributes are exactly what the daemon answered for
    the same login from that NAS, and it states the reasons."""
    source = {"mk": MK_IP, "hw": HW_IP}[nas]
    for login in ("ana", "bia", "caio", "davi", "eva", "fabio", "gil", "hugo", "iris", "ghost"):
        explained = world.ok("explain", login, "--nas", nas)
        answered = pap(world, login, source=source)
        assert explained["verdict"] == {"Access-Accept": "accept", "Access-Reject": "reject"}[answered.code]
        assert [(a["attribute"], str(a["value"])) for a in explained["reply"]] == answered.body, login
        assert explained["reasons"], login
    mac = world.ok("explain", "maria", "--nas", nas, "--mac", OTHER_MAC, "--port-id", "vlan200")
    assert "mac_differs" in mac["flags"] and "interface_differs" in mac["flags"]
    answered = pap(world, "maria", source=source,
                   extra=f', Calling-Station-Id = "{OTHER_MAC}", NAS-Port-Id = "vlan200"')
    assert [(a["attribute"], str(a["value"])) for a in mac["reply"]] == answered.body


# --- last: graceful stop ----------------------------------------------------------------------------


def test_sigterm_stops_gracefully(world: World) -> None:
    """SIGTERM makes the daemon log `event=stop` and exit 0 within the timeout, with the
    last request's auth-log row written. (Runs last: it stops the module's daemon.)"""
    assert pap(world, "ana", extra=', NAS-Port-Id = "last-before-stop"').code == "Access-Accept"
    assert world.daemon.stop() == 0
    assert len(world.daemon.events("stop")) == 1
    rows = auth_log(world, "--login", "ana")
    assert any(r["interface"] == "last-before-stop" for r in rows)
    assert json.dumps(rows)  # plain JSON types only
