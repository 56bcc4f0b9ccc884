"""Disconnect-Request and CoA-Request per NAS vendor, and reading the NAS's answer. Pure.

A session is identified by User-Name, Acct-Session-Id, Framed-IP-Address (when known) and
NAS-IP-Address. A CoA carries the new speed in the vendor's attributes: MikroTik's
Mikrotik-Rate-Limit, Huawei's input/output average and peak rates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aaa.policy.vendors import ReplyAttribute
from aaa.radius import (
    MalformedPacket,
    PacketCode,
    build_request,
    decode,
    encode_attributes,
    verify_reply,
)
from aaa.radius.dictionary import Dictionary

DISCONNECT, COA = "disconnect", "coa"
_CODES = {DISCONNECT: PacketCode.DISCONNECT_REQUEST, COA: PacketCode.COA_REQUEST}
_ACKS = {PacketCode.DISCONNECT_ACK, PacketCode.COA_ACK}
_NAKS = {PacketCode.DISCONNECT_NAK, PacketCode.COA_NAK}
SPEED_ATTRIBUTES = frozenset({
    "Mikrotik-Rate-Limit", "Huawei-Input-Average-Rate", "Huawei-Input-Peak-Rate",
    "Huawei-Output-Average-Rate", "Huawei-Output-Peak-Rate",
})


@dataclass(frozen=True, slots=True)
class SessionRef:
    login: str
    acct_session_id: str | None
    framed_ip: str | None
    nas_ip: str


@dataclass(frozen=True, slots=True)
class Answer:
    result: str  # ack | nak
    error_cause: int | None


class BadAnswer(Exception):
    """The NAS's answer is malformed, forged, or for another request."""


def identification(session: SessionRef) -> list[tuple[str, object]]:
    attrs: list[tuple[str, object]] = [("User-Name", session.login)]
    if session.acct_session_id:
        attrs.append(("Acct-Session-Id", session.acct_session_id))
    if session.framed_ip:
        attrs.append(("Framed-IP-Address", session.framed_ip))
    if ":" not in session.nas_ip:
        attrs.append(("NAS-IP-Address", session.nas_ip))
    return attrs


def speed_attributes(reply: Sequence[ReplyAttribute]) -> list[tuple[str, object]]:
    """The speed-carrying attributes of a decision's reply."""
    return [(name, value) for name, value in reply if name in SPEED_ATTRIBUTES]


def build(kind: str, session: SessionRef, identifier: int, secret: bytes, dictionary: Dictionary,
          extra: Sequence[tuple[str, object]] = ()) -> bytes:
    attributes = encode_attributes(dictionary, [*identification(session), *extra])
    return build_request(_CODES[kind], identifier, attributes, secret)


def read_answer(data: bytes, request: bytes, secret: bytes, dictionary: Dictionary) -> Answer:
    """ACK or NAK with its Error-Cause; BadAnswer for anything forged or unrelated."""
    try:
        reply = decode(data, dictionary)
    except MalformedPacket as exc:
        raise BadAnswer(str(exc)) from None
    if reply.identifier != request[1]:
        raise BadAnswer("identifier does not match")
    if not verify_reply(reply, request[4:20], secret):
        raise BadAnswer("bad response authenticator")
    if reply.code in _ACKS:
        return Answer("ack", None)
    if reply.code in _NAKS:
        cause = reply.get_raw(101)
        return Answer("nak", int.from_bytes(cause, "big") if cause and len(cause) == 4 else None)
    raise BadAnswer(f"unexpected code {reply.code}")
