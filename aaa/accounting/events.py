"""Accounting events: what one Accounting-Request says, as an immutable value.

Pure: built from a decoded packet, the NAS it came from and the time it arrived. The
same value is written to the database, to the journal (as JSON) and to the open-session
index, so a replay applies exactly what was acknowledged.
"""

from __future__ import annotations

import re
import socket
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from aaa.policy.mac import canonical_mac
from aaa.policy.view import NasFacts
from aaa.radius import MalformedPacket, Packet
from aaa.radius.digest import new_md5 as _md5

START, STOP, INTERIM, NAS_ON, NAS_OFF = "start", "stop", "interim", "nas_on", "nas_off"
STATUS_TYPES = {1: START, 2: STOP, 3: INTERIM, 7: NAS_ON, 8: NAS_OFF}
NAS_EVENTS = frozenset({NAS_ON, NAS_OFF})

_USER_NAME, _NAS_IP, _NAS_PORT, _FRAMED_IP = 1, 4, 5, 8
_CALLING, _NAS_IDENTIFIER = 31, 32
_DELAY, _IN_OCTETS, _OUT_OCTETS, _SESSION_ID, _SESSION_TIME = 41, 42, 43, 44, 46
_TERMINATE, _IN_GIGA, _OUT_GIGA, _NAS_PORT_ID, _STATUS = 49, 52, 53, 87, 40
_FRAMED_IPV6_PREFIX, _DELEGATED_PREFIX = 97, 123


class AcctEvent(NamedTuple):  # a NamedTuple: built once per record, cheaper than a frozen dataclass
    kind: str
    at: datetime  # when it happened: arrival minus Acct-Delay-Time
    nas_id: int
    nas_ip: str
    unique_id: str = ""
    acct_session_id: str = ""
    login: str = ""
    service_id: int | None = None
    nas_port_id: str | None = None
    mac: str | None = None
    framed_ip: str | None = None
    ipv6_prefix: str | None = None
    delegated_ipv6_prefix: str | None = None
    session_time: int = 0
    input_octets: int = 0
    output_octets: int = 0
    terminate_cause: str | None = None

    @property
    def started_at(self) -> datetime:
        return self.at - timedelta(seconds=self.session_time) if self.kind != START else self.at

    def to_json(self) -> dict[str, Any]:
        data = self._asdict()
        data["at"] = self.at.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AcctEvent:
        return cls(**{**data, "at": datetime.fromisoformat(data["at"])})


def unique_session_id(user: bytes, session_id: bytes, nas_ip: str, identifier: bytes,
                      port_id: bytes, port: str) -> str:
    """FreeRADIUS 3's default Acct-Unique-Session-Id: md5 of the comma-joined fields."""
    text = b",".join((user, session_id, nas_ip.encode(), identifier, port_id, port.encode()))
    return _md5(text).hexdigest()


def _text(raw: bytes | None) -> str | None:
    return raw.decode("utf-8", "replace") if raw is not None else None


def _int(raw: bytes | None, key: int) -> int:
    if raw is None:
        return 0
    if len(raw) != 4:
        raise MalformedPacket(f"attribute {key} must be 4 octets")
    return int.from_bytes(raw, "big")


def _ipv4(raw: bytes | None) -> str | None:
    return socket.inet_ntoa(raw) if raw is not None and len(raw) == 4 else None


_CANONICAL_MAC = re.compile(r"[0-9A-F]{2}(?::[0-9A-F]{2}){5}")
# acct_sessions.mac holds 64 characters; a Calling-Station-Id may carry 253 octets of other
# text (a circuit or port description). Longer text would make the database refuse the
# whole group, and every later one behind it in the journal: it is cut instead.
MAC_LENGTH = 64


def _mac(calling: str) -> str:
    """Calling-Station-Id as a canonical MAC when it is one (as MikroTik already sends it),
    else the text, cut to the column."""
    if _CANONICAL_MAC.fullmatch(calling):
        return calling
    return canonical_mac(calling) or calling[:MAC_LENGTH]


def event_from_packet(packet: Packet, nas: NasFacts, source_ip: str, arrived: datetime,
                      service_id: int | None, login: str) -> AcctEvent:
    """The event an Accounting-Request describes; MalformedPacket when it describes none."""
    values = packet.first_values()  # one pass over the attributes, then dict look-ups
    get = values.get
    status = STATUS_TYPES.get(_int(get(_STATUS), _STATUS))
    if status is None:
        raise MalformedPacket("missing or unsupported Acct-Status-Type")
    delay = get(_DELAY)
    at = arrived - timedelta(seconds=_int(delay, _DELAY)) if delay is not None else arrived
    if status in NAS_EVENTS:
        return AcctEvent(status, at, nas.id, nas.ip)
    session_id = get(_SESSION_ID)
    if not session_id:
        raise MalformedPacket("Acct-Session-Id missing")
    nas_ip = _ipv4(get(_NAS_IP)) or source_ip
    port_raw = get(_NAS_PORT)
    port_id = get(_NAS_PORT_ID)
    unique = unique_session_id(
        get(_USER_NAME) or b"", session_id, nas_ip, get(_NAS_IDENTIFIER) or b"",
        port_id or b"", str(int.from_bytes(port_raw, "big")) if port_raw else "")
    calling = _text(get(_CALLING))
    cause_name = None
    if status == STOP and _TERMINATE in values:
        terminate = packet.get(_TERMINATE)
        if isinstance(terminate, int):
            cause_name = packet.dictionary.attribute(_TERMINATE).value_name(terminate) or str(terminate)
    prefix = packet.get(_FRAMED_IPV6_PREFIX) if _FRAMED_IPV6_PREFIX in values else None
    delegated = packet.get(_DELEGATED_PREFIX) if _DELEGATED_PREFIX in values else None
    in_giga, out_giga = get(_IN_GIGA), get(_OUT_GIGA)
    # Every field, in AcctEvent's order, straight into the tuple: the NamedTuple's keyword
    # constructor costs ~1.1 us more per record (tests/test_accounting_handler.py pins the fields).
    return _new_event(AcctEvent, (
        status, at, nas.id, nas.ip, unique,  # kind, at, nas_id, nas_ip, unique_id
        session_id.decode("utf-8", "replace"), login, service_id,  # acct_session_id, login, service_id
        _text(port_id), _mac(calling) if calling else None,  # nas_port_id, mac
        _ipv4(get(_FRAMED_IP)),  # framed_ip
        str(prefix) if prefix is not None else None,  # ipv6_prefix
        str(delegated) if delegated is not None else None,  # delegated_ipv6_prefix
        _int(get(_SESSION_TIME), _SESSION_TIME),  # session_time
        (_int(in_giga, _IN_GIGA) << 32 if in_giga is not None else 0)
        | _int(get(_IN_OCTETS), _IN_OCTETS),  # input_octets
        (_int(out_giga, _OUT_GIGA) << 32 if out_giga is not None else 0)
        | _int(get(_OUT_OCTETS), _OUT_OCTETS),  # output_octets
        cause_name,  # terminate_cause
    ))


_new_event = tuple.__new__
