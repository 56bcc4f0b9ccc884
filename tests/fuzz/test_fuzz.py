"""Fuzzing in CI: the seed corpus, every saved crasher, hypothesis properties over the
decoder and the pipelines, and a short run of the mutation fuzzer (tests/fuzz/run.py
runs the long one: python -m tests.fuzz.run --count 1000000)."""

from __future__ import annotations

import contextlib
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aaa.coa.requests import read_answer
from aaa.radius import MalformedPacket, PacketCode, build_request, decode
from tests.fuzz.harness import (
    HW_IP,
    MK_IP,
    SECRET,
    Mutator,
    Target,
    dictionary,
    load_corpus,
    load_crashers,
    resign,
)
from tests.fuzz.run import fuzz

DICT = dictionary()
CORPUS = load_corpus()
CRASHERS = load_crashers()
SHARED = Target()  # one pipeline for all hypothesis examples: building one costs more than a run


def test_corpus_holds_every_kind_of_packet() -> None:
    """The seeds cover PAP, CHAP, MS-CHAPv2, Status-Server, accounting Start/Interim/Stop,
    CoA/Disconnect ACK and NAK, and VSAs of MikroTik, Huawei and Microsoft."""
    names = {name for name, _ in CORPUS}
    for needed in ("pap_mikrotik", "chap_mikrotik", "mschapv2", "status_server", "acct_start",
                   "acct_interim", "acct_stop", "coa_ack", "coa_nak_404", "disconnect_ack",
                   "disconnect_nak_503", "pap_no_ma_huawei", "acct_huawei_vsa"):
        assert f"{needed}.bin" in names
    vendors = set()
    for _, data in CORPUS:
        vendors |= {key[0] for key, _ in decode(data, DICT).attributes if isinstance(key, tuple)}
    assert {14988, 2011, 311} <= vendors


def test_seeds_reach_the_deep_stages() -> None:
    """The seeds are real: the MikroTik PAP, CHAP and MS-CHAPv2 seeds are accepted, the
    accounting seeds answered once durable, the CoA answers read as ACK/NAK."""
    target = Target()
    seeds = dict(CORPUS)
    for name in ("pap_mikrotik.bin", "chap_mikrotik.bin", "mschapv2.bin"):
        reply = target.auth.handle(seeds[name], MK_IP, 4000, 1000.0)
        assert reply is not None and reply[0] == PacketCode.ACCESS_ACCEPT, name
    assert target.auth.handle(seeds["pap_no_ma_huawei.bin"], HW_IP, 4000, 1000.0) is not None
    for name in ("acct_start.bin", "acct_interim.bin", "acct_stop.bin"):
        target.acct.handle(seeds[name], MK_IP, 4001, 1000.0)
    target.acct.finish(target.pending, True, 1000.1)
    assert target.sent == 3
    assert read_answer(seeds["disconnect_ack.bin"], target.coa, SECRET, DICT).result == "ack"
    assert read_answer(seeds["coa_nak_404.bin"], target.coa, SECRET, DICT).error_cause == 404


@pytest.mark.parametrize(("name", "data"), CORPUS + CRASHERS, ids=[n for n, _ in CORPUS + CRASHERS])
def test_corpus_and_crashers_do_not_crash(name: str, data: bytes) -> None:
    """Every seed and every input that ever crashed a pipeline now passes through cleanly,
    as sent and re-signed."""
    target = Target()
    target.run(data)
    target.run(resign(data))


def test_short_mutation_run_finds_nothing() -> None:
    """20,000 mutated inputs (bit flips, truncations, length lies, VSAs, Proxy-State
    floods, re-signed) through decode and the handlers: 0 crashes."""
    crashes = fuzz(20_000, seed=20261123, save=False, quiet=True)
    assert crashes == [], crashes[0][1]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4200))
def test_decode_refuses_only_with_malformed_packet(data: bytes) -> None:
    """Arbitrary octets decode to a Packet or raise MalformedPacket, nothing else; typed
    access of every attribute raises nothing else either."""
    try:
        packet = decode(data, DICT)
    except MalformedPacket:
        return
    for _key, _raw in packet.attributes:
        pass
    with contextlib.suppress(MalformedPacket):
        list(packet.items())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4200))
def test_handlers_on_arbitrary_octets(data: bytes) -> None:
    """Arbitrary octets through both handlers and the CoA answer check: None or bytes."""
    SHARED.run(data)


ATTRIBUTE = st.tuples(st.sampled_from([1, 2, 3, 4, 5, 8, 18, 24, 25, 26, 31, 32, 33, 40, 41, 42, 44, 45,
                                       60, 61, 79, 80, 87, 95, 101, 0, 255]),
                      st.binary(max_size=60))
VSA = st.tuples(st.sampled_from([14988, 2011, 311, 9, 0]), st.integers(0, 255), st.binary(max_size=40))


def _attributes(plain: list[tuple[int, bytes]], vsas: list[tuple[int, int, bytes]]) -> bytes:
    out = b"".join(bytes((kind, len(value) + 2)) + value for kind, value in plain if kind != 80)
    for vendor, kind, value in vsas:
        sub = bytes((kind, len(value) + 2)) + value
        out += bytes((26, len(sub) + 6)) + vendor.to_bytes(4, "big") + sub
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(code=st.sampled_from([1, 4, 12, 40, 41, 43, 44, 2, 3]), identifier=st.integers(0, 255),
       login=st.sampled_from(["ana", "bia", "caio", "duda@isp", "eva", "zz", ""]),
       plain=st.lists(ATTRIBUTE, max_size=12), vsas=st.lists(VSA, max_size=4),
       with_ma=st.booleans())
def test_handlers_on_well_signed_random_requests(code: int, identifier: int, login: str,
                                                 plain: list[tuple[int, bytes]],
                                                 vsas: list[tuple[int, int, bytes]], with_ma: bool) -> None:
    """Correctly framed and signed requests with random attributes get past the
    authenticator checks into authorize/authenticate/decide/encode and the accounting
    event builder: the only outcomes are a valid reply (Message-Authenticator first for
    Access-*) or silence."""
    body = (bytes((1, len(login) + 2)) + login.encode()) if login else b""
    body += _attributes(plain, vsas)
    if len(body) > 4000:
        body = body[:4000]
    if code in (PacketCode.ACCESS_REQUEST, PacketCode.ACCOUNTING_REQUEST, PacketCode.COA_REQUEST,
                PacketCode.DISCONNECT_REQUEST):
        try:
            data = build_request(code, identifier, body, SECRET, message_authenticator=with_ma)
        except ValueError:
            return
    else:
        data = bytes((code, identifier)) + (20 + len(body)).to_bytes(2, "big") + bytes(16) + body
        data = resign(data)
    SHARED.run(data)


def test_mutator_is_deterministic_per_seed() -> None:
    """The same seed gives the same inputs, so a failing CI run can be replayed."""
    seeds = [data for _, data in CORPUS]
    a = Mutator(seeds, random.Random(5))
    b = Mutator(seeds, random.Random(5))
    assert [a() for _ in range(50)] == [b() for _ in range(50)]
